//! Node allocator backends, each behind its own feature.
//!
//! | backend | feature | memory | reclamation |
//! |---------|---------|--------|-------------|
//! | `seize::SeizeBackend` | `seize` (std) | leaves, values and suffixes one allocation each; internodes in one-page slabs | epoch-style, through a `seize::Collector` owned by the tree |
//! | `pool::PoolBackend` | `pool` (no_std) | nodes in slabs of slots, reused; values and suffixes one allocation each | none while shared: retired memory waits until [`Tree::reclaim`](crate::Tree::reclaim) (`&mut`) or drop, which also return empty slabs |
//! | `arena::ArenaBackend` | `arena` (no_std) | everything bump-allocated from growing chunks, never reused | none: chunks are freed at drop; retired values are dropped at [`Tree::reclaim`](crate::Tree::reclaim) or drop |
//!
//! All take their memory from an [`allocator_api2::alloc::Allocator`]
//! (default: [`Global`](allocator_api2::alloc::Global)) and report
//! exhaustion as [`AllocError`](crate::backend::AllocError).
//! `huge_pages::HugePageSlabs` (feature `huge-pages`, no_std) is such an
//! allocator: it packs node-sized blocks into 2 MiB slabs, backed by huge
//! pages with `std` on Linux. The pool and the arena free nothing while the
//! tree is shared, so their guard is
//! [`AddressGuard`](crate::backend::AddressGuard), a token.

/// `new()` on the global allocator, and `Default` as `new()`, for a type
/// generic over its allocator with a `new_in(alloc)` (with the `alloc`
/// feature: the global allocator is the `alloc` crate's).
#[allow(unused_macros, reason = "unused when no backend feature is on")]
macro_rules! on_global {
    ($ty:ident, $doc:literal) => {
        #[cfg(feature = "alloc")]
        #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
        impl $ty<allocator_api2::alloc::Global> {
            #[doc = $doc]
            ///
            /// Needs the `alloc` feature.
            pub fn new() -> Self {
                Self::new_in(allocator_api2::alloc::Global)
            }
        }

        #[cfg(feature = "alloc")]
        impl Default for $ty<allocator_api2::alloc::Global> {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

/// `Debug` as the backend's `stats()`, for a type generic over its allocator.
#[allow(unused_macros, reason = "unused without the pool and arena features")]
macro_rules! debug_as_stats {
    ($ty:ident) => {
        impl<A: Allocator> core::fmt::Debug for $ty<A> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("stats", &self.stats())
                    .finish_non_exhaustive()
            }
        }
    };
}

/// The guard items of a `NodeAllocatorGeneric` impl whose guard is an
/// [`AddressGuard`](crate::backend::AddressGuard).
#[allow(unused_macros, reason = "unused without the pool and arena features")]
macro_rules! address_guard {
    () => {
        type Guard<'a>
            = AddressGuard<'a>
        where
            Self: 'a;

        fn guard(&self) -> AddressGuard<'_> {
            AddressGuard::new(self)
        }

        fn owns_guard(&self, guard: &AddressGuard<'_>) -> bool {
            guard.is_of(self)
        }
    };
}

#[cfg(feature = "seize")]
pub mod seize;

#[cfg(feature = "pool")]
pub mod pool;

#[cfg(feature = "arena")]
pub mod arena;

#[cfg(feature = "huge-pages")]
pub mod huge_pages;

#[cfg(any(feature = "seize", feature = "huge-pages", feature = "pool"))]
mod slabs;

/// The nodes' alignment (64, both kinds): what memory for nodes is aligned to.
#[allow(dead_code, reason = "unused when no backend feature is on")]
const NODE_ALIGN: usize = align_of::<crate::backend::Leaf>();

/// The slot that holds a node of either kind: a leaf's size, the larger
/// (320 bytes on 64-bit targets; internodes are 256).
#[cfg(any(feature = "pool", feature = "huge-pages"))]
const NODE_SLOT: usize = {
    use crate::backend::{Internode, Leaf};
    assert!(align_of::<Internode>() == NODE_ALIGN && size_of::<Internode>() <= size_of::<Leaf>());
    size_of::<Leaf>().next_multiple_of(NODE_ALIGN)
};

/// Allocations with a header of type `H` in front of the payload, at a
/// distance that depends only on the payload's alignment, so that the
/// header is found from the payload's address: the seize backend's points
/// to the allocator, the pool's and the arena's is a [`limbo::Record`].
#[cfg(any(feature = "seize", feature = "pool", feature = "arena"))]
mod header {
    use core::alloc::Layout;
    use core::ptr::NonNull;

    use allocator_api2::alloc::AllocError;

    /// Where the payload starts, for a payload of alignment `align`.
    pub(crate) const fn offset<H>(align: usize) -> usize {
        size_of::<H>().next_multiple_of(align)
    }

    /// The layout of an `H` followed by `payload`; `None` on overflow.
    pub(crate) fn layout<H>(payload: Layout) -> Option<Layout> {
        let size = offset::<H>(payload.align()).checked_add(payload.size())?;
        let align = payload.align().max(align_of::<H>());
        Some(Layout::from_size_align(size, align).ok()?.pad_to_align())
    }

    /// Room for `payload` behind an `H` (not written), from `allocate`:
    /// returns the payload's address.
    pub(crate) fn alloc<H>(
        payload: Layout,
        allocate: impl FnOnce(Layout) -> Result<NonNull<u8>, AllocError>,
    ) -> Result<NonNull<u8>, AllocError> {
        let base = allocate(layout::<H>(payload).ok_or(AllocError)?)?;
        // SAFETY: the payload starts at `offset`, inside the block of
        // `layout::<H>(payload)` (or at its end for a zero-sized payload).
        Ok(unsafe { base.add(offset::<H>(payload.align())) })
    }

    /// The header in front of `payload`.
    ///
    /// # Safety
    /// `payload` came from [`alloc::<H>`](alloc), of alignment `align`.
    pub(crate) unsafe fn of<H>(payload: NonNull<u8>, align: usize) -> NonNull<H> {
        // SAFETY: the caller's guarantees: the header is `offset` bytes
        // before the payload, in the same allocation.
        unsafe { payload.sub(offset::<H>(align)).cast() }
    }

    /// Moves `value` into `room`, or gives it back if there is none.
    ///
    /// # Safety
    /// `room`, if `Ok`, is fresh memory with `T`'s layout.
    pub(crate) unsafe fn place<T>(
        room: Result<NonNull<u8>, AllocError>,
        value: T,
    ) -> Result<NonNull<T>, T> {
        let Ok(p) = room else { return Err(value) };
        // SAFETY: the caller's guarantees.
        unsafe { p.cast::<T>().write(value) };
        Ok(p.cast())
    }
}

/// Retired objects of the backends that reclaim only at a quiescent point
/// (`reclaim(&mut self)` or drop) wait on push-only [`Stack`]s, linked
/// through one word of each: parking writes only that word, never what
/// readers may still read, and allocates nothing.
#[cfg(any(feature = "pool", feature = "arena"))]
mod limbo {
    use core::alloc::Layout;
    use core::ptr::{self, NonNull};
    use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    use super::header;

    /// Frees a record's whole allocation (header included), given its
    /// address and layout.
    pub(crate) type Free<'a> = &'a mut dyn FnMut(NonNull<u8>, Layout);

    /// Drops a record's payload (if it has a destructor) and hands the whole
    /// allocation, header included, to the free function, even when the
    /// payload's destructor panics (the panic then goes on).
    pub(crate) type Release = unsafe fn(NonNull<Record>, Free<'_>);

    /// The [`header`] of a value or suffix record, written at retirement:
    /// its [`Limbo`] link, and how to release it.
    pub(crate) struct Record {
        next: *mut Record,
        release: Release,
    }

    /// Hands an allocation to its free function when dropped: after the
    /// payload's destructor, or while it unwinds.
    struct FreeOnDrop<'a> {
        base: NonNull<u8>,
        layout: Layout,
        free: Free<'a>,
    }

    impl Drop for FreeOnDrop<'_> {
        fn drop(&mut self) {
            (self.free)(self.base, self.layout);
        }
    }

    /// Releases a `T` record: drops the `T`, then frees the allocation
    /// through `free` (also if the `T`'s destructor panics).
    ///
    /// # Safety
    /// `h` heads a live `T` allocated behind a [`Record`], not used again.
    pub(crate) unsafe fn release_value<T>(h: NonNull<Record>, free: Free<'_>) {
        // SAFETY: the caller guarantees a live `T` at the payload; its
        // layout did not overflow when it was allocated.
        let (payload, layout) = unsafe {
            let off = header::offset::<Record>(align_of::<T>());
            let payload = h.cast::<u8>().add(off).cast::<T>();
            let layout = header::layout::<Record>(Layout::new::<T>()).unwrap_unchecked();
            (payload, layout)
        };
        let _free = FreeOnDrop {
            base: h.cast(),
            layout,
            free,
        };
        // SAFETY: the caller guarantees a live `T`, dropped once, here; the
        // memory is freed only after, by `_free`.
        unsafe { ptr::drop_in_place(payload.as_ptr()) };
    }

    /// Something a [`Stack`] links through one word of its own.
    pub(crate) trait Linked {
        /// The link word of `this`.
        ///
        /// # Safety
        /// `this` points to a live `Self`.
        unsafe fn link(this: NonNull<Self>) -> *mut *mut Self;
    }

    impl Linked for Record {
        unsafe fn link(this: NonNull<Self>) -> *mut *mut Self {
            // SAFETY: the caller guarantees a live record; a field projection.
            unsafe { &raw mut (*this.as_ptr()).next }
        }
    }

    /// A push-only intrusive stack, emptied only through `&mut self`: no
    /// concurrent pops, so no ABA problem.
    pub(crate) struct Stack<T> {
        head: AtomicPtr<T>,
        len: AtomicUsize,
    }

    /// Retired values and suffix records.
    pub(crate) type Limbo = Stack<Record>;

    impl<T: Linked> Stack<T> {
        pub(crate) const fn new() -> Self {
            Stack {
                head: AtomicPtr::new(ptr::null_mut()),
                len: AtomicUsize::new(0),
            }
        }

        /// Entries (exact when no push is in flight).
        pub(crate) fn len(&self) -> usize {
            // Relaxed: a statistic.
            self.len.load(Ordering::Relaxed)
        }

        /// Parks `e` until [`Self::drain`].
        ///
        /// # Safety
        /// `e` is live, on no stack, and nobody but the drain uses its link
        /// word or frees it from now on.
        pub(crate) unsafe fn push(&self, e: NonNull<T>) {
            // Relaxed (both): the stack is read only through `&mut self`
            // (drain), which is ordered after every push by whatever handed
            // out the `&mut`; no pops, so no ABA.
            let _ = self
                .head
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |head| {
                    // SAFETY: the caller's guarantees: the link word is ours
                    // to write; `e` is not published yet.
                    unsafe { T::link(e).write(head) };
                    Some(e.as_ptr())
                });
            // Relaxed: a statistic.
            self.len.fetch_add(1, Ordering::Relaxed);
        }

        /// Takes every entry off and hands each to `f`, which may free it.
        /// The stack is detached first, so no entry is handed out twice. If
        /// `f` panics, the rest still go to `f` while the panic unwinds (a
        /// second panic then aborts, as in `Vec`), and the panic goes on.
        pub(crate) fn drain(&mut self, f: impl FnMut(NonNull<T>)) {
            /// The entries not handed out yet, and where they go: its drop
            /// hands out the rest if the loop below unwinds.
            struct Rest<T: Linked, F: FnMut(NonNull<T>)> {
                next: *mut T,
                f: F,
            }

            impl<T: Linked, F: FnMut(NonNull<T>)> Rest<T, F> {
                /// Hands out the next entry; `false` once there is none.
                fn step(&mut self) -> bool {
                    let Some(e) = NonNull::new(self.next) else {
                        return false;
                    };
                    // SAFETY: `push`'s contract: a live entry, on the drained
                    // stack only, its link written by `push`; read before `f`
                    // frees it, and advanced past before `f` runs, so a
                    // panicking `f` does not get it again.
                    self.next = unsafe { T::link(e).read() };
                    (self.f)(e);
                    true
                }
            }

            impl<T: Linked, F: FnMut(NonNull<T>)> Drop for Rest<T, F> {
                fn drop(&mut self) {
                    // Only after a panic in `f`: otherwise the loop in
                    // `drain` has emptied the list.
                    while self.step() {}
                }
            }

            let next = core::mem::replace(self.head.get_mut(), ptr::null_mut());
            *self.len.get_mut() = 0;
            let mut rest = Rest { next, f };
            while rest.step() {}
        }
    }

    impl Limbo {
        /// Parks a record, to be released by `release` at [`Self::release`].
        ///
        /// # Safety
        /// As [`Stack::push`]; `h` heads a record that `release` accepts.
        pub(crate) unsafe fn park(&self, h: NonNull<Record>, release: Release) {
            // SAFETY: the caller's guarantees: the header is ours to write.
            unsafe {
                (&raw mut (*h.as_ptr()).release).write(release);
                self.push(h);
            }
        }

        /// Releases every parked record (see [`Release`]) and hands its
        /// allocation to `free`. A panicking destructor does not stop it:
        /// that record and the rest are still released and freed (see
        /// [`Stack::drain`]), then the panic goes on to the caller.
        ///
        /// # Safety
        /// No reader can still see a parked record.
        pub(crate) unsafe fn release(&mut self, mut free: impl FnMut(NonNull<u8>, Layout)) {
            self.drain(|h| {
                // SAFETY: the caller's guarantees; `park` wrote each
                // `release`, which is called once, on the record it was
                // parked with.
                unsafe { ((*h.as_ptr()).release)(h, &mut free) }
            });
        }
    }
}

/// Helpers shared by the tests of the no_std backends.
#[cfg(all(test, not(masstree_loom), any(feature = "pool", feature = "arena")))]
mod testing {
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::vec::Vec;

    use crate::backend::NodeAllocatorGeneric;
    use crate::test_alloc::Ledger;
    use crate::{OutOfLine, Tree};

    /// Drops counted by the [`Tracked`] values on `d`.
    pub(crate) fn drops(d: &AtomicUsize) -> usize {
        // SeqCst: pairs with the increments in `Tracked::drop`.
        d.load(Ordering::SeqCst)
    }

    /// Scales a test size down under Miri.
    pub(crate) fn scale(n: usize) -> usize {
        if cfg!(miri) { (n / 20).max(8) } else { n }
    }

    /// A value that counts its drops and checks it was not dropped twice.
    pub(crate) struct Tracked<'a> {
        pub(crate) id: u64,
        drops: &'a AtomicUsize,
        alive: bool,
    }

    impl<'a> Tracked<'a> {
        pub(crate) fn new(id: u64, drops: &'a AtomicUsize) -> Self {
            Tracked {
                id,
                drops,
                alive: true,
            }
        }
    }

    impl Drop for Tracked<'_> {
        fn drop(&mut self) {
            assert!(self.alive, "value {} dropped twice", self.id);
            self.alive = false;
            // SeqCst: a test counter, read after the threads that drop
            // values are joined (see `drops`).
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Keys of three shapes: short, sharing an 8-byte slice with a long
    /// suffix (suffix records, then layers), and long distinct ones.
    pub(crate) fn key(i: u64) -> std::vec::Vec<u8> {
        match i % 3 {
            0 => i.to_be_bytes().to_vec(),
            1 => std::format!("prefix::{i:010}::tail").into_bytes(),
            _ => std::format!("{i:016x}-a-longer-key").into_bytes(),
        }
    }

    /// Every value is dropped exactly once: replaced and removed ones at
    /// `reclaim` (readable until then), the rest at `clear` and drop; then
    /// nothing is left in `c`, which `backend` allocates from.
    /// `parked(backend, n)` checks that the backend holds `n` retired values.
    pub(crate) fn values_dropped_exactly_once<B: NodeAllocatorGeneric>(
        c: &Ledger,
        backend: B,
        parked: impl Fn(&B, u64),
    ) {
        let d = AtomicUsize::new(0);
        let drops = || drops(&d) as u64;
        let n = scale(1000) as u64;
        let mut t: Tree<OutOfLine<Tracked<'_>>, B> = Tree::new_in(backend);
        {
            let g = t.guard();
            for i in 0..n {
                t.insert(&key(i), Tracked::new(i, &d), &g);
            }
            let old: Vec<&Tracked<'_>> = (0..n / 2)
                .map(|i| t.insert(&key(i), Tracked::new(n + i, &d), &g).unwrap())
                .collect();
            let removed: Vec<&Tracked<'_>> =
                (n / 2..n).map(|i| t.remove(&key(i), &g).unwrap()).collect();
            // Still readable: nothing is reclaimed while the guard lives.
            assert!(old.iter().enumerate().all(|(i, v)| v.id == i as u64));
            assert!(removed.iter().zip(n / 2..).all(|(v, i)| v.id == i));
            assert_eq!(drops(), 0);
            parked(t.backend(), n);
        }
        t.reclaim();
        assert_eq!(drops(), n);
        parked(t.backend(), 0);
        t.reclaim();
        assert_eq!(drops(), n);
        t.clear();
        assert_eq!(drops(), n + n / 2);
        {
            let g = t.guard();
            for i in 0..n {
                t.insert(&key(i), Tracked::new(2 * n + i, &d), &g);
            }
            // Retired, then dropped with the backend.
            t.insert(&key(0), Tracked::new(3 * n, &d), &g);
            t.remove(&key(1), &g);
        }
        drop(t);
        assert_eq!(drops(), 2 * n + n / 2 + 1);
        c.assert_empty();
    }

    /// A backend owns the guards it made, and no other backend's.
    pub(crate) fn guards_belong_to_one_backend<B: NodeAllocatorGeneric>(a: B, b: B) {
        let (ga, gb) = (a.guard(), b.guard());
        assert!(a.owns_guard(&ga) && b.owns_guard(&gb));
        assert!(!a.owns_guard(&gb) && !b.owns_guard(&ga));
    }
}
