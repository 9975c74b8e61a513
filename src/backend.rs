//! For people who write backends: the node allocator contract, the node
//! types a backend allocates (opaque: only their layouts and backend words
//! are visible), and [`AddressGuard`], the guard of backends that free
//! nothing while the tree is shared.
//!
//! Users of the tree need none of this; the backends they pick live in
//! [`crate::alloc_backends`].

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr::NonNull;

pub use allocator_api2::alloc::AllocError;
use allocator_api2::alloc::Allocator;

pub use crate::internode::Internode;
pub use crate::leaf::Leaf;
pub use crate::suffix::Suffix;

/// Where the tree's nodes, key suffixes and out-of-line values come from, and
/// how they are reclaimed once no reader can see them.
///
/// The tree never calls the global allocator for these; every byte goes
/// through a backend. Backends live in [`crate::alloc_backends`].
///
/// # Safety
///
/// Implementations must uphold this contract; the tree's memory safety rests on it.
///
/// - `alloc_*` return memory that is valid for reads and writes of the given
///   type (or of the given `Layout` for suffixes), properly aligned (nodes to
///   64 bytes), not aliased by any other live allocation, or an error. They
///   never return memory that a reader may still be using (see retirement).
/// - `free_*` take memory back at once. The tree calls them only for memory
///   no other thread can reach (never published, or the tree is being dropped).
/// - `retire_*` take memory back *later*: the memory must stay valid until
///   every guard that existed when `retire_*` was called has been dropped.
///   Guards created after the call may be ignored: the tree unlinks memory
///   before retiring it. `retire_value` and `free_value` run the value's
///   destructor exactly once.
/// - `free_leaf`/`free_internode`/`retire_leaf`/`retire_internode` must not
///   read the node (other than the word at [`Leaf::backend_word`] /
///   [`Internode::backend_word`], which the backend may use freely between
///   retirement and reclamation). `free_suffix`/`retire_suffix` may read the
///   record's length through [`Suffix::layout_of`], nothing else.
/// - A `Guard<'a>` borrows the backend for `'a` (it must not be possible to
///   get `&mut` to the backend while a guard lives): [`Self::reclaim`] and
///   the tree's `reclaim`/`clear` rely on `&mut self` proving no guard is alive.
/// - `owns_guard` returns true only for guards created by this very backend
///   (and alive: compare something that cannot be reused while the guard
///   borrows the backend, such as its address, or a collector identity).
pub unsafe trait NodeAllocatorGeneric {
    /// Proof that a thread is inside a read-side critical section: memory
    /// retired after the guard was created stays valid while it lives.
    type Guard<'a>
    where
        Self: 'a;

    /// The allocator the backend takes its memory from. The tree takes its
    /// scratch memory from it too: the key and frame buffers of cursors and
    /// iterators and the bulk loader's per-layer builders (a few hundred
    /// bytes, freed when the cursor or the load ends), so nothing the tree
    /// does at run time needs the global allocator.
    type Raw: Allocator;

    /// The allocator of [`Self::Raw`] the backend holds.
    fn raw_allocator(&self) -> &Self::Raw;

    /// Enters a critical section.
    fn guard(&self) -> Self::Guard<'_>;

    /// True if `guard` was created by this backend.
    fn owns_guard(&self, guard: &Self::Guard<'_>) -> bool;

    /// Uninitialized memory for a leaf.
    fn alloc_leaf(&self) -> Result<NonNull<Leaf>, AllocError>;
    /// Uninitialized memory for an internode.
    fn alloc_internode(&self) -> Result<NonNull<Internode>, AllocError>;
    /// Uninitialized memory for a suffix record of the given layout
    /// (from [`Suffix::layout`]).
    fn alloc_suffix(&self, layout: Layout) -> Result<NonNull<Suffix>, AllocError>;
    /// Moves `value` into backend memory; gives it back on failure.
    fn alloc_value<T>(&self, value: T) -> Result<NonNull<T>, T>;

    /// Frees a leaf at once.
    ///
    /// # Safety
    /// `leaf` came from `alloc_leaf` of this backend, is not freed or retired,
    /// and no other thread can reach it.
    unsafe fn free_leaf(&self, leaf: NonNull<Leaf>);
    /// Frees an internode at once.
    ///
    /// # Safety
    /// As [`Self::free_leaf`], for `alloc_internode`.
    unsafe fn free_internode(&self, node: NonNull<Internode>);
    /// Frees a suffix record at once.
    ///
    /// # Safety
    /// As [`Self::free_leaf`], for `alloc_suffix`; the record is initialized.
    unsafe fn free_suffix(&self, suffix: NonNull<Suffix>);
    /// Drops and frees a value at once.
    ///
    /// # Safety
    /// As [`Self::free_leaf`], for `alloc_value::<T>`.
    unsafe fn free_value<T>(&self, value: NonNull<T>);

    /// Frees a leaf once no current guard can see it.
    ///
    /// # Safety
    /// `leaf` came from `alloc_leaf` of this backend, is not freed or retired,
    /// and is unreachable for guards created after this call.
    unsafe fn retire_leaf(&self, leaf: NonNull<Leaf>, guard: &Self::Guard<'_>);
    /// Frees an internode once no current guard can see it.
    ///
    /// # Safety
    /// As [`Self::retire_leaf`], for `alloc_internode`.
    unsafe fn retire_internode(&self, node: NonNull<Internode>, guard: &Self::Guard<'_>);
    /// Frees a suffix record once no current guard can see it.
    ///
    /// # Safety
    /// As [`Self::retire_leaf`], for `alloc_suffix`; the record is initialized.
    unsafe fn retire_suffix(&self, suffix: NonNull<Suffix>, guard: &Self::Guard<'_>);
    /// Drops and frees a value once no current guard can see it.
    ///
    /// # Safety
    /// As [`Self::retire_leaf`], for `alloc_value::<T>`.
    unsafe fn retire_value<T>(&self, value: NonNull<T>, guard: &Self::Guard<'_>);

    /// A hint: about `leaves` leaves and `internodes` internodes are about to
    /// be allocated (the bulk loader says so, from its input's size hint).
    /// Backends that allocate in bulk may get the room now, in one piece;
    /// failing to is not an error (the allocations themselves report it).
    /// The default does nothing.
    fn reserve_nodes(&self, leaves: usize, internodes: usize) {
        let _ = (leaves, internodes);
    }

    /// Frees everything retired so far, now. `&mut self` proves that no
    /// guard of this backend is alive. The default does nothing (for backends
    /// that free at once or only at drop).
    fn reclaim(&mut self) {}
}

/// A read-side guard that is only a token naming the backend it borrows: for
/// backends that free nothing while the tree is shared (retired memory waits
/// for `reclaim(&mut self)` or drop), so entering a critical section costs
/// nothing. [`AddressGuard::is_of`] implements
/// [`NodeAllocatorGeneric::owns_guard`].
#[derive(Debug)]
pub struct AddressGuard<'a> {
    /// The backend's address: unique among live backends, and the borrow
    /// keeps the backend alive and in place while the guard exists.
    backend: usize,
    _borrow: PhantomData<&'a ()>,
}

impl<'a> AddressGuard<'a> {
    /// A guard borrowing `backend`.
    #[inline]
    pub fn new<B>(backend: &'a B) -> Self {
        AddressGuard {
            backend: core::ptr::from_ref(backend).addr(),
            _borrow: PhantomData,
        }
    }

    /// True if this guard was made from `backend` (which is alive, so no
    /// other live backend has its address).
    #[inline]
    pub fn is_of<B>(&self, backend: &B) -> bool {
        self.backend == core::ptr::from_ref(backend).addr()
    }
}
