//! The epoch-reclamation backend: memory from an `allocator_api2` allocator,
//! retirement through a [`seize::Collector`] owned by the tree.
//!
//! Retired nodes, suffix records and values are freed once every guard that
//! was active at retirement has been dropped, or at the latest when the tree
//! is dropped. Deferred reclaimers are plain functions, so each retired object
//! carries a pointer to where it goes back: a leaf to the allocator and an
//! internode to the backend's internode slabs, in their backend word; suffix
//! records and values to the backend's home (allocator, slabs, kept panic),
//! in a one-word header. The allocator and the slabs live in memory the
//! allocator allocated, so those pointers stay valid when the tree moves.
//!
//! Internodes come from one-page slabs of their own (4 KiB, 15 internodes
//! each), taken from the allocator; leaves, suffix records and values come
//! from the allocator one by one. A descent reads one internode per level:
//! packed together, the internodes of a tree of a million keys (about
//! 2.5 MiB) sit on about 650 pages, whose translations stay in the TLB,
//! where scattered among the leaves each would sit on a page of its own. A
//! lookup then walks the page tables for its leaf only.
//!
//! # Panicking destructors
//!
//! A removed or replaced value is dropped by a reclaimer, when the last
//! guard that could see it drops (on whichever thread that guard lives), or
//! by `reclaim()`, `clear()` or the tree's drop. If its destructor panics
//! there, the panic is caught: the value's memory is still freed, the rest
//! of its batch is still dropped and freed, and the first such panic is kept
//! (later ones are dropped) and re-raised by the next call on the tree that
//! starts from a quiescent point: [`guard()`](NodeAllocatorGeneric::guard)
//! (on any thread), `reclaim()`/`clear()`, or the tree's drop (unless that
//! thread is already panicking, then the kept panic is dropped). A guard's
//! drop and the operations that retire never unwind from a destructor.
//!
//! # Guards in async code
//!
//! `tree.guard()` returns a [`SeizeGuard`] of the calling thread: cheap, and
//! not `Send`, so a future that holds one across an `.await` is not `Send`
//! either. [`Tree::owned_guard`](crate::Tree::owned_guard) returns an
//! [`OwnedGuard`]: a critical section of its own, independent of threads,
//! `Send + Sync`, and usable wherever the tree takes a guard (it derefs to a
//! [`SeizeGuard`]). It costs more to enter and to drop (seize gives it a
//! thread slot of its own); memory retired while it lives waits for it, as
//! for any guard, so drop it as soon as the task no longer reads.

use core::alloc::Layout;
use core::any::Any;
use core::ops::Deref;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::boxed::Box;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, PoisonError};

use allocator_api2::alloc::{AllocError, Allocator, Global};
use seize::{Collector, LocalGuard};

use super::header::{self, place};
use super::slabs::Slabs;
use crate::backend::{Internode, Leaf, NodeAllocatorGeneric, Suffix};

/// Bytes of one internode slab: a 4 KiB page (the smallest on the targets
/// this backend runs on), so that each holds internodes only.
const INTERNODE_SLAB: usize = 4096;
/// Bytes of one internode slot (internodes only: 256, where a slot for
/// either node would take 320 and fit 11 to a page).
const INTERNODE_SLOT: usize = size_of::<Internode>().next_multiple_of(super::NODE_ALIGN);

/// The internodes' slabs.
type InternodeSlabs = Slabs<INTERNODE_SLAB, INTERNODE_SLOT, false>;

/// What the backend keeps in memory from its allocator, so that the
/// reclaimers' pointers to it stay valid when the tree moves.
struct Home<A> {
    alloc: A,
    internodes: InternodeSlabs,
    panic: KeptPanic,
}

/// A panic payload.
type Payload = Box<dyn Any + Send>;

/// The first panic of a destructor run by a reclaimer, kept until a call
/// on the tree re-raises it (see the module's docs). On cache lines of its
/// own: every `guard()` reads `pending`, and the internode slabs' lock
/// beside it is written.
#[repr(align(128))]
struct KeptPanic {
    /// A payload may be waiting (only ever changed under `payload`'s lock).
    pending: AtomicBool,
    payload: Mutex<Option<Payload>>,
}

impl KeptPanic {
    fn new() -> Self {
        KeptPanic {
            pending: AtomicBool::new(false),
            payload: Mutex::new(None),
        }
    }

    /// Keeps `p` if no panic is kept yet, or drops it.
    fn keep(&self, p: Payload) {
        let extra = {
            let mut kept = self.payload.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.is_some() {
                Some(p)
            } else {
                *kept = Some(p);
                // Relaxed: written under the lock, which orders the payload
                // for whoever takes it; the flag is only `raise`'s hint.
                self.pending.store(true, Ordering::Relaxed);
                None
            }
        };
        if let Some(p) = extra {
            drop_payload(p);
        }
    }

    /// Takes the kept panic, if any.
    fn take(&self) -> Option<Payload> {
        // Relaxed: a hint; a payload kept concurrently and missed here is
        // raised by a later call (the lock orders the payload itself).
        if !self.pending.load(Ordering::Relaxed) {
            return None;
        }
        let mut kept = self.payload.lock().unwrap_or_else(PoisonError::into_inner);
        // Relaxed: written under the lock, as in `keep`.
        self.pending.store(false, Ordering::Relaxed);
        kept.take()
    }

    /// Re-raises the kept panic, if any, unless this thread is already
    /// unwinding (then it stays kept).
    #[inline]
    fn raise(&self) {
        // Relaxed: a hint, as in `take`; the common case is this one load.
        if self.pending.load(Ordering::Relaxed) {
            self.raise_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn raise_slow(&self) {
        if std::thread::panicking() {
            return;
        }
        if let Some(p) = self.take() {
            panic::resume_unwind(p);
        }
    }
}

/// Drops a panic payload that will not be raised; a panic from the
/// payload's own destructor is forgotten, not propagated.
fn drop_payload(p: Payload) {
    if let Err(inner) = panic::catch_unwind(AssertUnwindSafe(move || drop(p))) {
        core::mem::forget(inner);
    }
}

/// How many retired objects a thread gathers before handing them to
/// reclamation, unless [`SeizeBackend::with_batch_size`] says otherwise.
///
/// Each hand-off is a process-wide memory barrier (on Linux an interrupt to
/// every core running the process), so small batches (seize's default is
/// 32) tax writers running side by side; large ones keep more retired
/// memory waiting (at most 255 objects per thread, 80 KiB of leaves).
pub const DEFAULT_BATCH_SIZE: usize = 256;

/// The read guard of a [`SeizeBackend`] (what `tree.guard()` returns, and
/// what an [`OwnedGuard`] derefs to): while it lives, nothing retired after
/// it was made is freed, so everything read through it stays valid.
///
/// The one `tree.guard()` returns belongs to the calling thread and is not
/// `Send`:
///
/// ```compile_fail,E0277
/// let tree = masstree::InlineMassTree::<u64>::new();
/// let tree = &tree;
/// let g = tree.guard();
/// std::thread::scope(|s| {
///     s.spawn(move || tree.get("k", &g));
/// });
/// ```
///
/// For a guard that moves between threads (an async task held across
/// `.await`), see [`OwnedGuard`].
pub struct SeizeGuard<'a> {
    /// The collector slot of the backend it was entered from, for
    /// `owns_guard`: a guard borrows its backend, so no other live backend
    /// has a slot at this address.
    owner: &'a CollectorSlot,
    /// Never read: holds the critical section open until it drops.
    section: Section<'a>,
}

/// The seize guard behind a [`SeizeGuard`].
enum Section<'a> {
    /// The calling thread's (re-entrant, cheap; not `Send`).
    Local(#[allow(dead_code, reason = "held for its Drop")] LocalGuard<'a>),
    /// A thread slot of its own (`Send + Sync`).
    Owned(#[allow(dead_code, reason = "held for its Drop")] seize::OwnedGuard<'a>),
}

impl core::fmt::Debug for SeizeGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match self.section {
            Section::Local(_) => "local",
            Section::Owned(_) => "owned",
        };
        f.debug_tuple("SeizeGuard").field(&kind).finish()
    }
}

/// A read guard of a [`SeizeBackend`] that is `Send + Sync`: hold it across
/// `.await` in a task that a work-stealing runtime may resume on another
/// thread, or hand it to another thread. It derefs to a [`SeizeGuard`], so
/// `&owned` goes wherever the tree takes `&guard`; the tree still refuses a
/// guard of another tree. From
/// [`Tree::owned_guard`](crate::Tree::owned_guard) (or
/// [`SeizeBackend::owned_guard`]).
///
/// Entering and dropping cost more than `tree.guard()` (a thread slot is
/// taken and given back, under a lock); prefer `tree.guard()` for code that
/// stays on one thread. Memory retired while it lives waits for it: drop it
/// when the task stops reading.
///
/// ```
/// use masstree::MassTree;
///
/// let tree: MassTree<String> = MassTree::new();
/// tree.insert("k", "v".to_string(), &tree.guard());
/// let tree = &tree;
/// let g = tree.owned_guard();
/// std::thread::scope(|s| {
///     // The guard moves to another thread.
///     s.spawn(move || {
///         let v = tree.get("k", &g).unwrap();
///         tree.insert("k", "w".to_string(), &g);
///         assert_eq!(v, "v"); // replaced, still readable while `g` lives
///         assert_eq!(tree.get("k", &g).map(String::as_str), Some("w"));
///     });
/// });
///
/// // Or it is shared: `&OwnedGuard` is `Send` too.
/// let g = tree.owned_guard();
/// let v = tree.get("k", &g).unwrap();
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         s.spawn(|| assert_eq!(tree.get("k", &g), Some(v)));
///     }
/// });
/// ```
pub struct OwnedGuard<'a>(SeizeGuard<'a>);

// SAFETY: the inner guard is always `Section::Owned`, a `seize::OwnedGuard`,
// which is `Send` (it owns its thread slot and no thread-local state); the
// owner reference is to an atomic, which is `Sync`.
unsafe impl Send for OwnedGuard<'_> {}
// SAFETY: as for `Send`; `seize::OwnedGuard` is `Sync`, and what `&SeizeGuard`
// allows (comparing the owner's address) reads nothing mutable.
unsafe impl Sync for OwnedGuard<'_> {}

impl<'a> Deref for OwnedGuard<'a> {
    type Target = SeizeGuard<'a>;

    #[inline]
    fn deref(&self) -> &SeizeGuard<'a> {
        &self.0
    }
}

impl core::fmt::Debug for OwnedGuard<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("OwnedGuard").finish()
    }
}

/// Nodes and values from an allocator `A` (default: the global allocator),
/// reclaimed through a [`seize::Collector`]. `A` is asked for leaves (320
/// bytes, aligned to 64), suffix records and values (with a one-word
/// header), and 4 KiB blocks aligned to 4 KiB, the internode slabs: with an
/// allocator that refuses those, a tree cannot grow beyond one leaf.
///
/// A new backend holds 256 bytes from `A` (its home) and nothing else: the
/// collector, 16 KiB that seize takes from the global allocator for its
/// thread slots, is made at the first guard; leaves and internode slabs at
/// the first insert.
pub struct SeizeBackend<A: Allocator = Global> {
    /// Null until the first guard (see [`CollectorSlot`]); dropped first
    /// (see `Drop`), running pending reclaimers while `alloc` lives.
    collector: CollectorSlot,
    /// What the collector is made with.
    batch_size: usize,
    home: NonNull<Home<A>>,
}

/// Where a backend keeps its collector: a `Box` from the global allocator
/// (where seize takes the collector's own memory too), made at the first
/// guard. A `seize::Collector` takes 16 KiB when it is made (two tables of
/// 32 thread slots of 256 bytes), so a backend that made it at once cost
/// 16 KiB even for a tree that is never used; made lazily, an unused tree
/// costs its home (256 bytes). Every guard pays one load and a branch that
/// is always taken the same way after the first.
type CollectorSlot = AtomicPtr<Collector>;

// SAFETY: the backend owns its allocator; reclaimers use it from any thread
// through a shared reference, hence `Sync` too. The collector (`Send +
// Sync`) is owned through its slot, an atomic.
unsafe impl<A: Allocator + Send + Sync> Send for SeizeBackend<A> {}
// SAFETY: every thread uses the allocator through `&A`.
unsafe impl<A: Allocator + Send + Sync> Sync for SeizeBackend<A> {}

on_global!(SeizeBackend, "A backend on the global allocator.");

impl<A: Allocator> SeizeBackend<A> {
    /// A backend on `alloc`. Aborts if `alloc` cannot hold its own handle.
    pub fn new_in(alloc: A) -> Self {
        match Self::try_new_in(alloc) {
            Ok(b) => b,
            Err(_) => alloc::alloc::handle_alloc_error(Layout::new::<Home<A>>()),
        }
    }

    /// A backend on `alloc`, or an error if `alloc` cannot hold its own handle.
    pub fn try_new_in(alloc: A) -> Result<Self, AllocError> {
        let home = alloc.allocate(Layout::new::<Home<A>>())?.cast::<Home<A>>();
        let internodes = InternodeSlabs::new();
        let panic = KeptPanic::new();
        // SAFETY: fresh memory with `Home<A>`'s layout.
        unsafe {
            home.write(Home {
                alloc,
                internodes,
                panic,
            })
        };
        Ok(SeizeBackend {
            collector: AtomicPtr::new(ptr::null_mut()),
            batch_size: DEFAULT_BATCH_SIZE,
            home,
        })
    }

    /// Sets how many retired objects a thread gathers before handing them
    /// to reclamation (see [`DEFAULT_BATCH_SIZE`]). A destructor's panic
    /// while the old collector drops is kept, as in a reclaimer.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        // By value, so no guard borrows the backend: the old collector, if
        // made, runs whatever it still holds while `alloc` lives; the next
        // guard makes a new one.
        self.drop_collector();
        self.batch_size = batch_size;
        self
    }

    /// The allocator.
    pub fn allocator(&self) -> &A {
        &self.home().alloc
    }

    /// The collector that reclaims retired memory; made here if no guard
    /// has made it yet.
    #[inline]
    pub fn collector(&self) -> &Collector {
        // Acquire: pairs with the Release exchange in `make_collector`, so
        // the collector it published is seen initialized.
        let c = self.collector.load(Ordering::Acquire);
        if c.is_null() {
            return self.make_collector();
        }
        // SAFETY: a collector published by `make_collector`, freed only by
        // `drop_collector`, which takes `&mut self`.
        unsafe { &*c }
    }

    /// Makes the collector, at the first guard; of two threads that race
    /// here, one's collector is kept and the other's dropped unused.
    #[cold]
    #[inline(never)]
    fn make_collector(&self) -> &Collector {
        let made = Box::into_raw(Box::new(Collector::new().batch_size(self.batch_size)));
        // AcqRel: the Release publishes the collector just made to the
        // Acquire loads in `collector`; on failure, Acquire pairs with the
        // winner's Release, so its collector is seen initialized.
        match self.collector.compare_exchange(
            ptr::null_mut(),
            made,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: published just now; freed only by `drop_collector`
            // (`&mut self`).
            Ok(_) => unsafe { &*made },
            Err(winner) => {
                // SAFETY: `made` was never published: ours alone, unused.
                drop(unsafe { Box::from_raw(made) });
                // SAFETY: as in `collector`.
                unsafe { &*winner }
            }
        }
    }

    /// Drops the collector, if made, which runs every reclaimer it still
    /// holds (the home must be alive); the next guard makes a new one.
    fn drop_collector(&mut self) {
        let c = core::mem::replace(self.collector.get_mut(), ptr::null_mut());
        if !c.is_null() {
            // SAFETY: made by `make_collector` from a `Box`, no longer
            // reachable (the slot is cleared); `&mut self`: no guard borrows it.
            drop(unsafe { Box::from_raw(c) });
        }
    }

    /// A guard that is `Send + Sync`, for async tasks and hand-offs between
    /// threads; see [`OwnedGuard`]. Like `guard()`, re-raises a destructor's
    /// panic that a reclaimer kept (see the module's docs).
    ///
    /// ```
    /// use masstree::backend::NodeAllocatorGeneric;
    ///
    /// let tree = masstree::InlineMassTree::<u8>::new();
    /// let g = tree.backend().owned_guard();
    /// assert!(tree.backend().owns_guard(&g));
    /// tree.insert("k", 1, &g);
    /// ```
    pub fn owned_guard(&self) -> OwnedGuard<'_> {
        self.home().panic.raise();
        OwnedGuard(SeizeGuard {
            owner: &self.collector,
            section: Section::Owned(self.collector().enter_owned()),
        })
    }

    fn home(&self) -> &Home<A> {
        // SAFETY: written in `try_new_in`, freed only in `drop`.
        unsafe { self.home.as_ref() }
    }

    /// Where the allocator lives, for the reclaimers (derived from the
    /// home's own pointer, not from a reference to it).
    fn alloc_ptr(&self) -> *const A {
        // SAFETY: the home is live (written in `try_new_in`, freed only in
        // `drop`); this only computes a field's address.
        unsafe { &raw const (*self.home.as_ptr()).alloc }
    }

    /// `payload` in memory from the allocator, behind a header pointing to
    /// the home.
    fn alloc_with_header(&self, payload: Layout) -> Result<NonNull<u8>, AllocError> {
        let p =
            header::alloc::<*const Home<A>>(payload, |l| Ok(self.allocator().allocate(l)?.cast()))?;
        // SAFETY: `p` has room for the header in front.
        unsafe { header::of::<*const Home<A>>(p, payload.align()).write(self.home.as_ptr()) };
        Ok(p)
    }
}

/// The home named in the header of an allocation from `alloc_with_header`.
///
/// # Safety
/// `payload` came from `alloc_with_header` with alignment `align`, and the
/// home is alive for `'h`.
unsafe fn home_of<'h, A: Allocator>(payload: *mut u8, align: usize) -> &'h Home<A> {
    // SAFETY: the caller's guarantees: the header is in front, written at
    // allocation, and the home it names is alive.
    unsafe { &*header::of::<*const Home<A>>(NonNull::new_unchecked(payload), align).read() }
}

/// Frees a header-prefixed allocation whose payload is at `payload`.
///
/// # Safety
/// `payload` came from `alloc_with_header` with `layout`, and is not used again.
unsafe fn free_with_header<A: Allocator>(payload: *mut u8, layout: Layout) {
    // SAFETY: the caller guarantees the allocation shape (so the layout did
    // not overflow); the header names the home, which outlives all
    // allocations (see `Drop`).
    unsafe {
        let home = home_of::<A>(payload, layout.align());
        let h = header::of::<*const Home<A>>(NonNull::new_unchecked(payload), layout.align());
        let full = header::layout::<*const Home<A>>(layout).unwrap_unchecked();
        home.alloc.deallocate(h.cast(), full);
    }
}

/// Drops the value at `p`, then frees its memory even if the drop panics;
/// returns the panic, if any.
///
/// # Safety
/// `p` came from `alloc_value::<T>` of a backend on `A` whose home is still
/// alive, and nobody can reach it any more; called once.
unsafe fn drop_and_free<T, A: Allocator>(p: *mut T) -> Result<(), Payload> {
    // SAFETY: the caller's guarantees: a live `T`, dropped exactly once, here
    // (a destructor that panics has still dropped the fields it owns).
    let dropped = panic::catch_unwind(AssertUnwindSafe(|| unsafe { ptr::drop_in_place(p) }));
    // SAFETY: the caller's guarantees; allocated with a header.
    unsafe { free_with_header::<A>(p.cast(), Layout::new::<T>()) };
    dropped
}

/// The deferred free of a retired leaf.
///
/// # Safety
/// `p` was retired by `retire_leaf` of a backend on `A`, whose home is still
/// alive, and no guard that could see it remains; called once.
unsafe fn reclaim_leaf<A: Allocator>(p: *mut Leaf, _: &Collector) {
    // SAFETY: the caller's guarantees; `retire_leaf` stored the allocator
    // in the backend word.
    unsafe {
        let p = NonNull::new_unchecked(p);
        let alloc = &*Leaf::backend_word(p).cast::<*const A>().read();
        alloc.deallocate(p.cast(), Layout::new::<Leaf>());
    }
}

/// The deferred free of a retired internode.
///
/// # Safety
/// As for [`reclaim_leaf`], retired by `retire_internode`.
unsafe fn reclaim_internode<A: Allocator>(p: *mut Internode, _: &Collector) {
    // SAFETY: as in `reclaim_leaf`; the backend word holds the home.
    unsafe {
        let p = NonNull::new_unchecked(p);
        let home = &*Internode::backend_word(p).cast::<*const Home<A>>().read();
        home.internodes.give(p.cast(), &home.alloc);
    }
}

/// The free of a suffix record (deferred, or at once by `free_suffix`).
///
/// # Safety
/// `p` came from `alloc_suffix` of a backend on `A` whose home is still
/// alive, and nobody can reach it any more; called once.
unsafe fn reclaim_suffix<A: Allocator>(p: *mut Suffix, _: &Collector) {
    // SAFETY: the caller's guarantees; allocated with a header.
    unsafe { free_with_header::<A>(p.cast(), Suffix::layout_of(NonNull::new_unchecked(p))) }
}

/// The deferred drop and free of a value. A panic from its destructor is
/// kept in the home (see the module's docs), never unwound into the
/// collector, which would lose the rest of the batch.
///
/// # Safety
/// As for [`reclaim_suffix`], from `alloc_value::<T>`.
unsafe fn reclaim_value<T, A: Allocator>(p: *mut T, _: &Collector) {
    // SAFETY: the caller's guarantees: allocated with a header, and the home
    // outlives the allocation (it is read here, before the free).
    let home = unsafe { home_of::<A>(p.cast(), align_of::<T>()) };
    // SAFETY: the caller's guarantees.
    if let Err(payload) = unsafe { drop_and_free::<T, A>(p) } {
        home.panic.keep(payload);
    }
}

// SAFETY: leaves, records and values come from `A` with their layouts,
// internodes from internode slots (each handed out once until given back);
// the collector runs a reclaimer only after every guard active at
// retirement is gone, and all pending ones when the backend drops, before
// the slabs and the allocator go.
unsafe impl<A: Allocator> NodeAllocatorGeneric for SeizeBackend<A> {
    type Raw = A;

    fn raw_allocator(&self) -> &A {
        self.allocator()
    }

    type Guard<'a>
        = SeizeGuard<'a>
    where
        Self: 'a;

    /// Re-raises a destructor's panic that a reclaimer kept (see the
    /// module's docs), then enters a critical section of this thread.
    #[inline]
    fn guard(&self) -> SeizeGuard<'_> {
        self.home().panic.raise();
        SeizeGuard {
            owner: &self.collector,
            section: Section::Local(self.collector().enter()),
        }
    }

    /// By address: a guard borrows its backend, so no other live backend
    /// has its collector slot at this one's address.
    #[inline]
    fn owns_guard(&self, guard: &SeizeGuard<'_>) -> bool {
        ptr::eq(guard.owner, &self.collector)
    }

    fn alloc_leaf(&self) -> Result<NonNull<Leaf>, AllocError> {
        Ok(self.allocator().allocate(Layout::new::<Leaf>())?.cast())
    }

    fn alloc_internode(&self) -> Result<NonNull<Internode>, AllocError> {
        let home = self.home();
        Ok(home.internodes.take(&home.alloc)?.cast())
    }

    fn alloc_suffix(&self, layout: Layout) -> Result<NonNull<Suffix>, AllocError> {
        Ok(self.alloc_with_header(layout)?.cast())
    }

    fn alloc_value<T>(&self, value: T) -> Result<NonNull<T>, T> {
        // SAFETY: room for a `T`, if any.
        unsafe { place(self.alloc_with_header(Layout::new::<T>()), value) }
    }

    unsafe fn free_leaf(&self, leaf: NonNull<Leaf>) {
        // SAFETY: the caller guarantees `leaf` is ours and unreachable.
        unsafe {
            self.allocator()
                .deallocate(leaf.cast(), Layout::new::<Leaf>())
        }
    }

    unsafe fn free_internode(&self, node: NonNull<Internode>) {
        let home = self.home();
        // SAFETY: the caller guarantees `node` is ours (so from the
        // internode slabs, with this allocator) and unreachable.
        unsafe { home.internodes.give(node.cast(), &home.alloc) }
    }

    unsafe fn free_suffix(&self, suffix: NonNull<Suffix>) {
        // SAFETY: the caller guarantees an unreachable, initialized record
        // of ours: from `alloc_suffix`, behind a header, of the layout its
        // length gives (as in `reclaim_suffix`, which needs a collector).
        unsafe { free_with_header::<A>(suffix.as_ptr().cast(), Suffix::layout_of(suffix)) }
    }

    unsafe fn free_value<T>(&self, value: NonNull<T>) {
        // SAFETY: the caller guarantees an unreachable value of ours.
        if let Err(payload) = unsafe { drop_and_free::<T, A>(value.as_ptr()) } {
            // The memory is freed; the caller sees the panic now.
            panic::resume_unwind(payload);
        }
    }

    unsafe fn retire_leaf(&self, leaf: NonNull<Leaf>, _: &SeizeGuard<'_>) {
        // SAFETY: the backend word is ours to use; the caller guarantees the
        // leaf is unlinked, so the collector may free it after current guards.
        unsafe {
            Leaf::backend_word(leaf)
                .cast::<*const A>()
                .write(self.alloc_ptr());
            self.collector().retire(leaf.as_ptr(), reclaim_leaf::<A>);
        }
    }

    unsafe fn retire_internode(&self, node: NonNull<Internode>, _: &SeizeGuard<'_>) {
        // SAFETY: as in `retire_leaf`.
        unsafe {
            Internode::backend_word(node)
                .cast::<*const Home<A>>()
                .write(self.home.as_ptr());
            self.collector()
                .retire(node.as_ptr(), reclaim_internode::<A>);
        }
    }

    unsafe fn retire_suffix(&self, suffix: NonNull<Suffix>, _: &SeizeGuard<'_>) {
        // SAFETY: the caller guarantees the record is unlinked.
        unsafe {
            self.collector()
                .retire(suffix.as_ptr(), reclaim_suffix::<A>)
        }
    }

    unsafe fn retire_value<T>(&self, value: NonNull<T>, _: &SeizeGuard<'_>) {
        // SAFETY: the caller guarantees the value is unlinked.
        unsafe {
            self.collector()
                .retire(value.as_ptr(), reclaim_value::<T, A>)
        }
    }

    fn reclaim(&mut self) {
        // No collector yet: no guard was ever taken, so nothing was retired.
        let c = *self.collector.get_mut();
        if !c.is_null() {
            // SAFETY: a collector from `make_collector`, alive until
            // `drop_collector`; `&mut self`: guards borrow the backend, so
            // none is alive, and no thread can be inside a critical section
            // of this collector.
            unsafe { (*c).reclaim_all() };
        }
        // And the empty internode slab, if one is kept.
        let home = self.home();
        home.internodes.trim(&home.alloc);
        // Everything is freed: now a destructor's panic may surface.
        home.panic.raise();
    }
}

impl<A: Allocator> Drop for SeizeBackend<A> {
    fn drop(&mut self) {
        // Dropping the collector runs every pending reclaimer, which needs
        // the home: it is still alive here.
        self.drop_collector();
        // SAFETY: the home is moved out of its memory, the internode slabs
        // are given back (the tree freed its nodes before its backend drops),
        // and the memory is freed; nothing uses the home after this.
        let panic = unsafe {
            let mut home = self.home.read();
            home.internodes.release_all(&home.alloc);
            home.alloc
                .deallocate(self.home.cast(), Layout::new::<Home<A>>());
            home.panic.take()
        };
        // Everything is freed: a destructor's panic kept meanwhile surfaces,
        // unless this thread is already unwinding.
        if let Some(p) = panic {
            if std::thread::panicking() {
                drop_payload(p);
            } else {
                panic::resume_unwind(p);
            }
        }
    }
}

impl<S, A: Allocator> crate::Tree<S, SeizeBackend<A>> {
    /// A read guard that is `Send + Sync`: hold it across `.await` in a task
    /// that may resume on another thread, or move it to another thread. It
    /// goes wherever the tree takes a guard (`&owned`, through `Deref`).
    /// Costs more than [`guard`](crate::Tree::guard) to enter and drop;
    /// see [`OwnedGuard`].
    ///
    /// ```
    /// use masstree::InlineMassTree;
    ///
    /// // An async task: the future holds the guard across an await point,
    /// // so it is `Send` only because the guard is.
    /// async fn sum(tree: &InlineMassTree<u64>, keys: &[&str]) -> u64 {
    ///     let g = tree.owned_guard();
    ///     let mut total = 0;
    ///     for k in keys {
    ///         total += tree.get(k, &g).unwrap_or(0);
    ///         std::future::ready(()).await; // a runtime's yield point
    ///     }
    ///     total
    /// }
    /// fn spawnable<F: std::future::Future + Send>(f: F) -> F {
    ///     f
    /// }
    ///
    /// let tree = InlineMassTree::new();
    /// tree.insert("a", 1, &tree.guard());
    /// tree.insert("b", 2, &tree.guard());
    /// let mut task = std::pin::pin!(spawnable(sum(&tree, &["a", "b", "c"])));
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// assert_eq!(task.as_mut().poll(&mut cx), std::task::Poll::Ready(3));
    /// ```
    ///
    /// # Panics
    /// Re-raises a value destructor's panic that a reclaimer kept (see
    /// [the seize backend](super::seize)).
    pub fn owned_guard(&self) -> OwnedGuard<'_> {
        self.raw.alloc.owned_guard()
    }
}

/// A new backend (with its own collector) on a clone of the allocator; used
/// by `Tree::clone`.
impl<A: Allocator + Clone> Clone for SeizeBackend<A> {
    fn clone(&self) -> Self {
        Self::new_in(self.allocator().clone()).with_batch_size(self.batch_size)
    }
}

impl<A: Allocator> core::fmt::Debug for SeizeBackend<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SeizeBackend")
            .field("internode_slabs", &self.home().internodes.counts())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;
    use crate::InlineMassTree;
    use crate::test_alloc::Ledger;
    use std::vec::Vec;

    /// The layout of an internode slab.
    fn slab() -> Layout {
        Layout::from_size_align(INTERNODE_SLAB, INTERNODE_SLAB).unwrap()
    }

    /// Internodes fill one-page slabs of their own, which no leaf shares;
    /// emptied slabs go back (but the spare until `reclaim`), and so do
    /// slabs emptied by retirement.
    #[test]
    fn internodes_fill_pages_of_their_own() {
        let t = Ledger::with_log();
        let mut b = SeizeBackend::new_in(&t);
        let per = InternodeSlabs::SLOTS - 1;
        let mut nodes = Vec::new();
        let mut leaves = Vec::new();
        for _ in 0..2 * per + 3 {
            nodes.push(b.alloc_internode().unwrap());
            leaves.push(b.alloc_leaf().unwrap());
        }
        let slabs = t.live_blocks(slab());
        assert_eq!(slabs.len(), 3, "{per} internodes to a slab");
        let c = b.home().internodes.counts();
        assert_eq!((c.slabs, c.slots_in_use), (3, 2 * per + 3));
        let page = |p: usize| p & !(INTERNODE_SLAB - 1);
        for (i, n) in nodes.iter().enumerate() {
            let a = n.as_ptr().addr();
            assert_eq!(page(a), page(nodes[i / per * per].as_ptr().addr()));
            assert!(slabs.contains(&page(a)), "internode outside the slabs");
            assert_ne!(a, page(a), "the first slot holds the slab's header");
            assert_eq!(a % INTERNODE_SLOT, 0);
        }
        for l in &leaves {
            assert!(
                !slabs.contains(&page(l.as_ptr().addr())),
                "a leaf in a slab"
            );
        }
        // SAFETY: allocated above, never published.
        unsafe {
            for &l in &leaves {
                b.free_leaf(l);
            }
            // Empty the first slab: it becomes the spare.
            for &n in &nodes[..per] {
                b.free_internode(n);
            }
        }
        assert_eq!(t.live_blocks(slab()).len(), 3);
        {
            let g = b.guard();
            // Empty the second by retirement: it goes back once reclaimed.
            for &n in &nodes[per..2 * per] {
                // SAFETY: never published, so unreachable.
                unsafe { b.retire_internode(n, &g) };
            }
        }
        // Retired, not yet freed: the batch waits for more.
        assert_eq!(b.home().internodes.counts().slots_in_use, per + 3);
        b.reclaim();
        // Reclaiming also returns the spare.
        assert_eq!(t.live_blocks(slab()).len(), 1);
        assert_eq!(b.home().internodes.counts().slots_in_use, 3);
        assert_eq!(t.live_blocks(Layout::new::<Leaf>()).len(), 0);
        // SAFETY: allocated above, never published.
        unsafe {
            for &n in &nodes[2 * per..] {
                b.free_internode(n);
            }
        }
        drop(b);
        t.assert_empty();
    }

    /// Internodes and leaves still waiting in a retirement batch when the
    /// backend drops go back before their slabs and the allocator do.
    #[test]
    fn pending_retirements_are_freed_at_drop() {
        let t = Ledger::with_log();
        let b = SeizeBackend::new_in(&t);
        let nodes: Vec<_> = (0..20).map(|_| b.alloc_internode().unwrap()).collect();
        let leaf = b.alloc_leaf().unwrap();
        {
            let g = b.guard();
            // SAFETY: never published, so unreachable.
            unsafe {
                b.retire_leaf(leaf, &g);
                for &n in &nodes {
                    b.retire_internode(n, &g);
                }
            }
        }
        assert_eq!(b.home().internodes.counts().slots_in_use, 20);
        drop(b);
        t.assert_empty();
    }

    /// A tree's internodes come from the slabs; removing every key gives
    /// them back but the one per level left above the leftmost leaf; and
    /// all of its memory goes back when the tree drops.
    #[test]
    fn a_tree_uses_internode_slabs_and_gives_everything_back() {
        let t = Ledger::with_log();
        {
            let mut tree: InlineMassTree<u64, SeizeBackend<&Ledger>> =
                InlineMassTree::new_in(SeizeBackend::new_in(&t));
            let g = tree.guard();
            for i in 0..3_000u64 {
                tree.insert(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes(), i, &g);
            }
            let slabs = t.live_blocks(slab()).len();
            assert!(slabs >= 1, "internodes came from elsewhere");
            assert_eq!(
                t.live_blocks(Layout::new::<Internode>()).len(),
                0,
                "an internode from the allocator directly"
            );
            for i in 0..3_000u64 {
                let k = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes();
                assert_eq!(tree.get(&k, &g), Some(i));
            }
            let full = tree.backend().home().internodes.counts().slots_in_use;
            assert!(full > 15, "{full} internodes for 3,000 keys");
            for i in 0..3_000u64 {
                let k = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes();
                assert_eq!(tree.remove(&k, &g), Some(i));
            }
            drop(g);
            tree.reclaim();
            let left = tree.backend().home().internodes.counts();
            assert!(left.slots_in_use <= 3, "{left:?} of {full} internodes left");
            assert_eq!(t.live_blocks(slab()).len(), left.slabs);
            assert!(
                left.slabs <= left.slots_in_use,
                "{left:?}: an empty slab kept"
            );
        }
        t.assert_empty();
    }
}
