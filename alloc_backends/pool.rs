//! The pool backend: nodes in slabs of fixed-size slots, reused through a
//! free list; retired memory waits in a limbo list until an explicit
//! quiescent point. No `std`, no global allocator: every byte comes from an
//! `allocator_api2` allocator `A`.
//!
//! # Design
//!
//! * **Slots.** Leaves and internodes share *one* size class: a slot is as
//!   large and as aligned as the larger node (a 320-byte leaf on 64-bit
//!   targets; internodes are 256 bytes). Internodes are about a tenth of the
//!   nodes, so the bytes lost in them are about 2% of node memory, and in
//!   return any free slot serves either kind: a workload that frees leaves
//!   and then needs internodes (or the other way round) never strands memory
//!   in the wrong class, and there is one free list, one lock and one set of
//!   counters. Slabs come from `A`, each a 64-byte header followed by the
//!   slots; a new slab doubles the pool's slot count, from 16 slots up to
//!   slabs of 1024 slots (320 KiB), clamped to the cap.
//! * **Locking.** The free list, the never-used tail of the newest slab, the
//!   slab list, the retired nodes and the counters sit behind one
//!   [`spin::mutex::SpinMutex`], held for a few instructions per node
//!   allocation, free or retirement (and across the call to `A` when a new
//!   slab is needed, once per 16 or more nodes). A lock-free Treiber stack
//!   would need ABA protection (tagged pointers or hazard pointers) for its
//!   concurrent pops. Nodes are allocated once per split, not once per key,
//!   and values never take the lock, so it is short and rarely contended.
//! * **Reclamation.** Without `std` there are no thread-local epochs, so
//!   nothing retired is reused while the tree is shared. Retired nodes go on
//!   a limbo list linked through their backend word
//!   ([`Leaf::backend_word`]); retired values and suffix records go on a
//!   lock-free push-only list linked through a 16-byte header in front of
//!   each (link + type-erased release function). Both lists are emptied only
//!   by [`NodeAllocatorGeneric::reclaim`] (`&mut self`: guards borrow the
//!   backend, so none is alive, and no reader can hold retired memory) and at
//!   drop: retired slots join the free list, values are dropped, values and
//!   suffix records go back to `A`. Until then retired memory is written
//!   only in the backend word or the header, never where readers look.
//! * **Values and suffix records** are variable-sized and come from `A`
//!   directly, each with the header above.
//! * **Cap.** [`PoolBackend::with_max_slab_bytes`] bounds the slab memory:
//!   once no free slot is left and no slab fits under the cap,
//!   `alloc_leaf`/`alloc_internode` return [`AllocError`]. Values and suffix
//!   records are not counted (bound `A` itself for a hard total). Note that
//!   [`Tree::insert`](crate::Tree::insert) treats a failed allocation as
//!   fatal, like `Vec::push`.
//!
//! # Cost
//!
//! Memory of removed or replaced entries (nodes, values, suffix records) is
//! reused only after [`Tree::reclaim`](crate::Tree::reclaim) (or
//! [`Tree::clear`](crate::Tree::clear)), which need `&mut` and so a quiescent
//! point, or when the tree is dropped. A tree that churns while it is always
//! shared grows until it is reclaimed. Each out-of-line value and suffix
//! record carries a 16-byte header.
//!
//! ```
//! use masstree::{InlineMassTree, alloc_backends::pool::PoolBackend};
//!
//! let backend = PoolBackend::with_capacity(64, 8).unwrap();
//! let mut tree: InlineMassTree<u64, PoolBackend> = InlineMassTree::new_in(backend);
//! {
//!     let g = tree.guard();
//!     tree.insert(b"x", 1, &g);
//!     assert_eq!(tree.remove(b"x", &g), Some(1));
//! }
//! tree.reclaim(); // no guard alive: retired memory becomes reusable
//! assert_eq!(tree.backend().stats().slabs, 1);
//! ```

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator, Global};
use spin::mutex::SpinMutex;

use super::limbo::{self, Limbo};
use crate::backend::{Internode, Leaf, NodeAllocatorGeneric, Suffix};

/// Alignment of a slot: the larger node alignment (64).
const SLOT_ALIGN: usize = super::NODE_ALIGN;
/// Size of a slot: the larger node, a multiple of [`SLOT_ALIGN`].
const SLOT_SIZE: usize = super::NODE_SLOT;
/// Bytes before the first slot of a slab: the slab header, padded to a slot.
const SLAB_HEAD: usize = size_of::<Slab>().next_multiple_of(SLOT_ALIGN);
/// Slots in the first slab grown on demand.
const MIN_SLAB_SLOTS: usize = 16;
/// Slots in the largest slab grown on demand.
const MAX_SLAB_SLOTS: usize = 1024;

const _: () = assert!(SLOT_SIZE >= size_of::<FreeSlot>() && SLOT_ALIGN >= align_of::<FreeSlot>());

/// Nodes from slabs of slots reused through a free list; values and suffix
/// records from the allocator `A` (default: the global allocator); retired
/// memory reclaimed at [`Tree::reclaim`](crate::Tree::reclaim) or drop. See
/// the [module docs](self).
pub struct PoolBackend<A: Allocator = Global> {
    slots: SpinMutex<Slots>,
    /// Retired values and suffix records.
    limbo: Limbo,
    alloc: A,
}

// SAFETY: the backend owns its slabs and records (raw pointers into memory
// from `A`) and frees them through `A` on whichever thread drops it.
unsafe impl<A: Allocator + Send + Sync> Send for PoolBackend<A> {}
// SAFETY: shared state is behind the spin lock or atomic (the limbo list);
// every thread uses the allocator through `&A`.
unsafe impl<A: Allocator + Send + Sync> Sync for PoolBackend<A> {}

/// Usage figures of a [`PoolBackend`], from [`PoolBackend::stats`]. Exact
/// when no operation is in flight;
/// `slots == leaves + internodes + retired_nodes + free_slots`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Slabs obtained from the allocator.
    pub slabs: usize,
    /// Bytes of those slabs: the memory the pool holds for nodes.
    pub slab_bytes: usize,
    /// Node slots in all slabs.
    pub slots: usize,
    /// Slots holding a live leaf.
    pub leaves: usize,
    /// Slots holding a live internode.
    pub internodes: usize,
    /// Slots holding a retired node: reusable after `reclaim`.
    pub retired_nodes: usize,
    /// Slots ready to be handed out.
    pub free_slots: usize,
    /// Retired values and suffix records waiting for `reclaim`.
    pub retired_records: usize,
    /// The cap on `slab_bytes` (`usize::MAX` if none).
    pub max_slab_bytes: usize,
}

impl PoolStats {
    /// Slots not ready to be handed out: live or retired nodes.
    pub fn slots_in_use(&self) -> usize {
        self.leaves + self.internodes + self.retired_nodes
    }
}

/// A read-side guard of a [`PoolBackend`]: a token naming the backend it
/// borrows (reads need no work: nothing is freed while the backend is shared).
#[derive(Debug)]
pub struct PoolGuard<'a> {
    /// The backend's address: unique among live backends, and the borrow
    /// keeps the backend alive and in place while the guard exists.
    backend: usize,
    _borrow: PhantomData<&'a ()>,
}

/// The head of a slab, at its start; the slots follow at [`SLAB_HEAD`].
struct Slab {
    next: *mut Slab,
    slots: usize,
}

/// A free slot's first word.
struct FreeSlot {
    next: *mut FreeSlot,
}

/// Everything behind the lock.
struct Slots {
    /// Free slots, linked through their first word.
    free: *mut FreeSlot,
    /// The never-used tail of the newest slab: `fresh_left` slots from `fresh`.
    fresh: *mut u8,
    fresh_left: usize,
    /// All slabs, newest first.
    slabs: *mut Slab,
    /// Retired leaves, linked through their backend word.
    retired_leaves: *mut Leaf,
    /// Retired internodes, linked through their backend word.
    retired_internodes: *mut Internode,
    stats: PoolStats,
}

/// Which counter a slot moves.
#[derive(Clone, Copy)]
enum Kind {
    Leaf,
    Internode,
}

impl Slots {
    const fn new() -> Self {
        Slots {
            free: ptr::null_mut(),
            fresh: ptr::null_mut(),
            fresh_left: 0,
            slabs: ptr::null_mut(),
            retired_leaves: ptr::null_mut(),
            retired_internodes: ptr::null_mut(),
            stats: PoolStats {
                slabs: 0,
                slab_bytes: 0,
                slots: 0,
                leaves: 0,
                internodes: 0,
                retired_nodes: 0,
                free_slots: 0,
                retired_records: 0,
                max_slab_bytes: usize::MAX,
            },
        }
    }

    fn count(&mut self, kind: Kind) -> &mut usize {
        match kind {
            Kind::Leaf => &mut self.stats.leaves,
            Kind::Internode => &mut self.stats.internodes,
        }
    }

    /// A free slot, if there is one.
    #[inline]
    fn pop(&mut self) -> Option<NonNull<u8>> {
        if let Some(slot) = NonNull::new(self.free) {
            // SAFETY: slots on the free list are ours and hold a `FreeSlot`.
            self.free = unsafe { slot.as_ref().next };
            self.stats.free_slots -= 1;
            return Some(slot.cast());
        }
        self.take_fresh()
    }

    /// The next never-used slot of the newest slab, if any is left.
    #[inline]
    fn take_fresh(&mut self) -> Option<NonNull<u8>> {
        if self.fresh_left == 0 {
            return None;
        }
        let slot = self.fresh;
        self.fresh_left -= 1;
        // SAFETY: `fresh` has `fresh_left` slots after it in its slab (or
        // is one past the end when none is left, never dereferenced).
        self.fresh = unsafe { slot.add(SLOT_SIZE) };
        self.stats.free_slots -= 1;
        // SAFETY: inside a slab.
        Some(unsafe { NonNull::new_unchecked(slot) })
    }

    /// Puts a slot on the free list.
    ///
    /// # Safety
    /// `slot` is a slot of one of our slabs that nobody can reach any more.
    #[inline]
    unsafe fn push(&mut self, slot: NonNull<u8>) {
        let slot = slot.cast::<FreeSlot>();
        // SAFETY: the caller guarantees the slot is ours and unreachable.
        unsafe { slot.as_ptr().write(FreeSlot { next: self.free }) };
        self.free = slot.as_ptr();
        self.stats.free_slots += 1;
    }

    /// The layout of a slab of `n` slots.
    fn slab_layout(n: usize) -> Option<Layout> {
        let size = n.checked_mul(SLOT_SIZE)?.checked_add(SLAB_HEAD)?;
        Layout::from_size_align(size, SLOT_ALIGN).ok()
    }

    /// Adds a slab of `n` slots, if it fits under the cap and `A` gives it.
    /// The unused tail of the previous slab goes to the free list first.
    fn add_slab<A: Allocator>(&mut self, alloc: &A, n: usize) -> Result<(), AllocError> {
        let layout = Self::slab_layout(n).ok_or(AllocError)?;
        let budget = self
            .stats
            .max_slab_bytes
            .saturating_sub(self.stats.slab_bytes);
        if layout.size() > budget {
            return Err(AllocError);
        }
        let base = alloc.allocate(layout)?.cast::<u8>();
        while let Some(slot) = self.take_fresh() {
            // SAFETY: a never-used slot of ours.
            unsafe { self.push(slot) };
        }
        // SAFETY: fresh memory of `layout`, which starts with the header and
        // has `n` slots from `SLAB_HEAD`.
        unsafe {
            base.cast::<Slab>().write(Slab {
                next: self.slabs,
                slots: n,
            });
            self.fresh = base.as_ptr().add(SLAB_HEAD);
        }
        self.slabs = base.as_ptr().cast();
        self.fresh_left = n;
        self.stats.slabs += 1;
        self.stats.slab_bytes += layout.size();
        self.stats.slots += n;
        self.stats.free_slots += n;
        Ok(())
    }

    /// Grows by a slab that doubles the slot count (16 to 1024 slots),
    /// clamped to the cap; halves the request while `A` refuses it.
    #[cold]
    fn grow<A: Allocator>(&mut self, alloc: &A) -> Result<(), AllocError> {
        let budget = self
            .stats
            .max_slab_bytes
            .saturating_sub(self.stats.slab_bytes);
        let fits = budget.saturating_sub(SLAB_HEAD) / SLOT_SIZE;
        let mut n = self
            .stats
            .slots
            .clamp(MIN_SLAB_SLOTS, MAX_SLAB_SLOTS)
            .min(fits);
        while n > 0 {
            match self.add_slab(alloc, n) {
                Ok(()) => return Ok(()),
                Err(_) => n /= 2,
            }
        }
        Err(AllocError)
    }

    /// A slot for a node of `kind`, growing if needed.
    #[inline]
    fn alloc<A: Allocator>(&mut self, alloc: &A, kind: Kind) -> Result<NonNull<u8>, AllocError> {
        let slot = match self.pop() {
            Some(slot) => slot,
            None => {
                self.grow(alloc)?;
                self.pop().ok_or(AllocError)?
            }
        };
        *self.count(kind) += 1;
        Ok(slot)
    }

    /// Moves every retired node to the free list.
    ///
    /// # Safety
    /// No reader can still see a retired node.
    unsafe fn reclaim_nodes(&mut self) {
        while let Some(leaf) = NonNull::new(self.retired_leaves) {
            // SAFETY: `retire_leaf` linked the list through the backend
            // words; the caller guarantees nobody reads the nodes any more.
            unsafe {
                self.retired_leaves = Leaf::backend_word(leaf).cast::<*mut Leaf>().read();
                self.push(leaf.cast());
            }
            self.stats.retired_nodes -= 1;
        }
        while let Some(node) = NonNull::new(self.retired_internodes) {
            // SAFETY: as above, for `retire_internode`.
            unsafe {
                self.retired_internodes = Internode::backend_word(node)
                    .cast::<*mut Internode>()
                    .read();
                self.push(node.cast());
            }
            self.stats.retired_nodes -= 1;
        }
    }
}

impl PoolBackend<Global> {
    /// An empty pool on the global allocator; allocates nothing yet.
    pub fn new() -> Self {
        Self::new_in(Global)
    }

    /// A pool on the global allocator with room for `leaves` leaves and
    /// `internodes` internodes (one slab), or an error if it cannot get it.
    pub fn with_capacity(leaves: usize, internodes: usize) -> Result<Self, AllocError> {
        Self::with_capacity_in(leaves, internodes, Global)
    }
}

impl Default for PoolBackend<Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Allocator> PoolBackend<A> {
    /// An empty pool on `alloc`; allocates nothing yet.
    pub const fn new_in(alloc: A) -> Self {
        PoolBackend {
            slots: SpinMutex::new(Slots::new()),
            limbo: Limbo::new(),
            alloc,
        }
    }

    /// A pool on `alloc` with room for `leaves` leaves and `internodes`
    /// internodes (one slab), or an error if `alloc` cannot give it.
    pub fn with_capacity_in(
        leaves: usize,
        internodes: usize,
        alloc: A,
    ) -> Result<Self, AllocError> {
        let pool = Self::new_in(alloc);
        pool.reserve(leaves, internodes)?;
        Ok(pool)
    }

    /// Caps the slab memory at `max_slab_bytes` (slab headers included):
    /// once no free slot is left and no slab fits under the cap, node
    /// allocation fails with [`AllocError`]. Growth clamps the last slab to
    /// the cap, so the whole budget is usable. Memory already reserved is
    /// kept even if it exceeds the cap. Values and suffix records are not
    /// counted.
    pub fn with_max_slab_bytes(mut self, max_slab_bytes: usize) -> Self {
        self.slots.get_mut().stats.max_slab_bytes = max_slab_bytes;
        self
    }

    /// Makes sure at least `leaves + internodes` slots are free, adding one
    /// slab of exactly the missing number if needed.
    pub fn reserve(&self, leaves: usize, internodes: usize) -> Result<(), AllocError> {
        let want = leaves.checked_add(internodes).ok_or(AllocError)?;
        let mut s = self.slots.lock();
        let missing = want.saturating_sub(s.stats.free_slots);
        if missing == 0 {
            return Ok(());
        }
        s.add_slab(&self.alloc, missing)
    }

    /// Current usage; see [`PoolStats`].
    pub fn stats(&self) -> PoolStats {
        let mut stats = self.slots.lock().stats;
        stats.retired_records = self.limbo.len();
        stats
    }

    /// The allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    #[inline]
    fn alloc_slot(&self, kind: Kind) -> Result<NonNull<u8>, AllocError> {
        self.slots.lock().alloc(&self.alloc, kind)
    }

    /// Gives a slot back to the free list.
    ///
    /// # Safety
    /// `slot` came from `alloc_slot(kind)` and nobody can reach it.
    #[inline]
    unsafe fn free_slot(&self, slot: NonNull<u8>, kind: Kind) {
        let mut s = self.slots.lock();
        *s.count(kind) -= 1;
        // SAFETY: the caller guarantees the slot is ours and unreachable.
        unsafe { s.push(slot) };
    }

    /// `payload` in memory from `A` behind a limbo header.
    fn alloc_record(&self, payload: Layout) -> Result<NonNull<u8>, AllocError> {
        let (layout, off) = limbo::with_header(payload).ok_or(AllocError)?;
        let base = self.alloc.allocate(layout)?.cast::<u8>();
        // SAFETY: `off` is inside the allocation (or at its end for a
        // zero-sized payload).
        Ok(unsafe { base.add(off) })
    }

    /// Frees a record whose header is at `h`, with full layout `layout`.
    ///
    /// # Safety
    /// `h` heads a record from `alloc_record` of this layout, no longer used.
    unsafe fn free_record(&self, h: NonNull<limbo::Header>, layout: Layout) {
        // SAFETY: the caller guarantees the allocation and its layout.
        unsafe { self.alloc.deallocate(h.cast(), layout) }
    }

    /// Releases every retired value and suffix record.
    fn reclaim_records(&mut self) {
        let alloc = &self.alloc;
        // SAFETY: each record came from `alloc_record` with the layout its
        // release function returns.
        self.limbo
            .drain(|base, layout| unsafe { alloc.deallocate(base, layout) });
    }
}

// SAFETY:
// 1. Nodes are slots of slabs from `A`, `SLOT_SIZE` bytes, aligned to
//    `SLOT_ALIGN` (a multiple of every node's size and alignment); a slot is
//    on the free list or handed out, never both.
// 2. Freed slots return to the free list at once (the tree frees only
//    unreachable memory); retired ones only in `reclaim(&mut self)` or at
//    drop, when no guard is alive (guards borrow the backend), so retired
//    memory stays valid for every guard.
// 3. Retirement writes only the backend word or the record header.
// 4. Values are dropped exactly once: by `free_value` or by the limbo drain.
// 5. `owns_guard` compares addresses of live backends (see `PoolGuard`).
unsafe impl<A: Allocator> NodeAllocatorGeneric for PoolBackend<A> {
    type Guard<'a>
        = PoolGuard<'a>
    where
        Self: 'a;

    #[inline]
    fn guard(&self) -> PoolGuard<'_> {
        PoolGuard {
            backend: ptr::from_ref(self).addr(),
            _borrow: PhantomData,
        }
    }

    #[inline]
    fn owns_guard(&self, guard: &PoolGuard<'_>) -> bool {
        guard.backend == ptr::from_ref(self).addr()
    }

    fn alloc_leaf(&self) -> Result<NonNull<Leaf>, AllocError> {
        Ok(self.alloc_slot(Kind::Leaf)?.cast())
    }

    fn alloc_internode(&self) -> Result<NonNull<Internode>, AllocError> {
        Ok(self.alloc_slot(Kind::Internode)?.cast())
    }

    fn alloc_suffix(&self, layout: Layout) -> Result<NonNull<Suffix>, AllocError> {
        Ok(self.alloc_record(layout)?.cast())
    }

    fn alloc_value<T>(&self, value: T) -> Result<NonNull<T>, T> {
        match self.alloc_record(Layout::new::<T>()) {
            Ok(p) => {
                let p = p.cast::<T>();
                // SAFETY: fresh memory with `T`'s layout.
                unsafe { p.as_ptr().write(value) };
                Ok(p)
            }
            Err(_) => Err(value),
        }
    }

    unsafe fn free_leaf(&self, leaf: NonNull<Leaf>) {
        // SAFETY: the caller guarantees `leaf` is ours and unreachable.
        unsafe { self.free_slot(leaf.cast(), Kind::Leaf) }
    }

    unsafe fn free_internode(&self, node: NonNull<Internode>) {
        // SAFETY: as in `free_leaf`.
        unsafe { self.free_slot(node.cast(), Kind::Internode) }
    }

    unsafe fn free_suffix(&self, suffix: NonNull<Suffix>) {
        // SAFETY: the caller guarantees an initialized record of ours that
        // nobody can reach; it was allocated behind a header.
        unsafe {
            let h = limbo::header_of(suffix.cast(), align_of::<Suffix>());
            self.free_record(h, limbo::release_suffix(h));
        }
    }

    unsafe fn free_value<T>(&self, value: NonNull<T>) {
        // SAFETY: as in `free_suffix`; the value is dropped exactly once, here.
        unsafe {
            let h = limbo::header_of(value.cast(), align_of::<T>());
            self.free_record(h, limbo::release_value::<T>(h));
        }
    }

    unsafe fn retire_leaf(&self, leaf: NonNull<Leaf>, _: &PoolGuard<'_>) {
        let mut s = self.slots.lock();
        // SAFETY: the backend word is ours from retirement on; the caller
        // guarantees the leaf is ours, unlinked and retired once.
        unsafe {
            Leaf::backend_word(leaf)
                .cast::<*mut Leaf>()
                .write(s.retired_leaves)
        };
        s.retired_leaves = leaf.as_ptr();
        s.stats.leaves -= 1;
        s.stats.retired_nodes += 1;
    }

    unsafe fn retire_internode(&self, node: NonNull<Internode>, _: &PoolGuard<'_>) {
        let mut s = self.slots.lock();
        // SAFETY: as in `retire_leaf`.
        unsafe {
            Internode::backend_word(node)
                .cast::<*mut Internode>()
                .write(s.retired_internodes)
        };
        s.retired_internodes = node.as_ptr();
        s.stats.internodes -= 1;
        s.stats.retired_nodes += 1;
    }

    unsafe fn retire_suffix(&self, suffix: NonNull<Suffix>, _: &PoolGuard<'_>) {
        // SAFETY: the caller guarantees an initialized record of ours,
        // unlinked and retired once; it has a header, which only we use.
        unsafe {
            let h = limbo::header_of(suffix.cast(), align_of::<Suffix>());
            self.limbo.push(h, limbo::release_suffix);
        }
    }

    unsafe fn retire_value<T>(&self, value: NonNull<T>, _: &PoolGuard<'_>) {
        // SAFETY: as in `retire_suffix`, for a `T` from `alloc_value::<T>`.
        unsafe {
            let h = limbo::header_of(value.cast(), align_of::<T>());
            self.limbo.push(h, limbo::release_value::<T>);
        }
    }

    fn reserve_nodes(&self, leaves: usize, internodes: usize) {
        // A hint: the allocations themselves report a failure (and the cap
        // of `with_max_slab_bytes` is honoured by `add_slab`).
        let _ = self.reserve(leaves, internodes);
    }

    fn reclaim(&mut self) {
        self.reclaim_records();
        // SAFETY: `&mut self`: no guard is alive, so no reader sees a retired node.
        unsafe { self.slots.get_mut().reclaim_nodes() };
    }
}

impl<A: Allocator> Drop for PoolBackend<A> {
    fn drop(&mut self) {
        // Values first (their destructors run), then every slab, which holds
        // every node, live or retired.
        self.reclaim_records();
        let mut slab = self.slots.get_mut().slabs;
        while let Some(s) = NonNull::new(slab) {
            // SAFETY: every slab was allocated by `add_slab` with the layout
            // of its slot count, and is freed once, here.
            unsafe {
                let Slab { next, slots } = s.as_ptr().read();
                slab = next;
                let layout = Slots::slab_layout(slots).unwrap_unchecked();
                self.alloc.deallocate(s.cast(), layout);
            }
        }
    }
}

impl<A: Allocator> core::fmt::Debug for PoolBackend<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PoolBackend")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::vec::Vec;

    use super::*;
    use crate::alloc_backends::testing::{Counting, Tracked, key, scale};
    use crate::{Inline, OutOfLine, Tree};

    type Values<'c, 'd> = Tree<OutOfLine<Tracked<'d>>, PoolBackend<&'c Counting>>;
    type Words<'c> = Tree<Inline<u64>, PoolBackend<&'c Counting>>;

    fn stats<S: crate::ValueStorage>(t: &Tree<S, PoolBackend<&Counting>>) -> PoolStats {
        let s = t.backend().stats();
        assert_eq!(
            s.slots,
            s.leaves + s.internodes + s.retired_nodes + s.free_slots,
            "{s:?}"
        );
        s
    }

    fn drops(d: &AtomicUsize) -> usize {
        d.load(Ordering::SeqCst)
    }

    #[test]
    fn slots_fit_nodes() {
        assert!(SLOT_SIZE >= size_of::<Leaf>() && SLOT_SIZE >= size_of::<Internode>());
        assert_eq!(SLOT_SIZE % align_of::<Leaf>(), 0);
        assert_eq!(SLOT_SIZE % align_of::<Internode>(), 0);
        assert_eq!(SLAB_HEAD % SLOT_ALIGN, 0);
    }

    /// Everything retired is held until `reclaim`, which returns every value
    /// and suffix record to the allocator and every node slot to the free list.
    #[test]
    fn reclaim_returns_retired_memory() {
        let c = Counting::new();
        let d = AtomicUsize::new(0);
        let n = scale(3000) as u64;
        let mut t = Values::new_in(PoolBackend::new_in(&c));
        {
            let g = t.guard();
            for i in 0..n {
                assert!(t.insert(&key(i), Tracked::new(i, &d), &g).is_none());
            }
            for i in (0..n).step_by(2) {
                let old = t.insert(&key(i), Tracked::new(n + i, &d), &g);
                assert_eq!(old.map(|v| v.id), Some(i));
            }
            for i in 0..n {
                let want = if i % 2 == 0 { n + i } else { i };
                assert_eq!(t.remove(&key(i), &g).map(|v| v.id), Some(want));
            }
            assert!(t.is_empty());
        }
        let s = stats(&t);
        assert_eq!(drops(&d), 0, "nothing is dropped before reclaim");
        assert!(s.retired_records as u64 >= n + n / 2, "{s:?}");
        assert!(s.retired_nodes > 0, "{s:?}");
        t.reclaim();
        let s = stats(&t);
        assert_eq!(drops(&d) as u64, n + n.div_ceil(2));
        assert_eq!((s.retired_records, s.retired_nodes), (0, 0));
        // What is left: the slabs, holding the empty root leaf and a chain of
        // key-less internodes.
        assert_eq!(c.allocs() as usize, s.slabs);
        assert_eq!(c.bytes() as usize, s.slab_bytes);
        assert!(s.slots_in_use() < 8, "{s:?}");
        drop(t);
        c.assert_empty();
    }

    /// Dropping the tree (and backend) without `reclaim` returns every byte
    /// and drops every value once.
    #[test]
    fn drop_returns_everything() {
        let c = Counting::new();
        let d = AtomicUsize::new(0);
        let n = scale(2000) as u64;
        {
            let t = Values::new_in(PoolBackend::new_in(&c));
            let g = t.guard();
            for i in 0..n {
                t.insert(&key(i), Tracked::new(i, &d), &g);
            }
            for i in (0..n).step_by(3) {
                t.insert(&key(i), Tracked::new(n + i, &d), &g);
            }
            for i in (0..n).step_by(2) {
                t.remove(&key(i), &g);
            }
            assert!(c.allocs() > 0);
        }
        assert_eq!(drops(&d) as u64, n + n.div_ceil(3));
        c.assert_empty();
    }

    /// Removed nodes are reused after `reclaim`: a second fill needs no new slab.
    #[test]
    fn slots_reused_after_remove_and_reclaim() {
        let c = Counting::new();
        let n = scale(5000) as u64;
        let mut t = Words::new_in(PoolBackend::new_in(&c));
        let fill = |t: &Words| {
            let g = t.guard();
            for i in 0..n {
                t.insert(&key(i), i, &g);
            }
        };
        let empty = |t: &Words| {
            let g = t.guard();
            for i in 0..n {
                assert_eq!(t.remove(&key(i), &g), Some(i));
            }
        };
        fill(&t);
        let full = stats(&t);
        assert!(full.leaves > 2 && full.internodes > 0, "{full:?}");
        empty(&t);
        let removed = stats(&t);
        assert_eq!(
            removed.slots_in_use(),
            full.slots_in_use(),
            "retired, not free"
        );
        assert!(removed.retired_nodes > 0);
        t.reclaim();
        let reclaimed = stats(&t);
        assert!(
            reclaimed.slots_in_use() < full.slots_in_use() / 4,
            "{reclaimed:?}"
        );
        assert_eq!(reclaimed.retired_nodes, 0);
        fill(&t);
        let refilled = stats(&t);
        assert_eq!(refilled.slabs, full.slabs, "{full:?} {refilled:?}");
        assert_eq!(refilled.slab_bytes, full.slab_bytes);
        // And once more, through clear().
        t.clear();
        let cleared = stats(&t);
        assert_eq!(
            (cleared.leaves, cleared.internodes, cleared.retired_nodes),
            (0, 0, 0)
        );
        fill(&t);
        assert_eq!(stats(&t).slabs, full.slabs);
        drop(t);
        c.assert_empty();
    }

    /// The cap: allocation fails cleanly (at the backend level) once no slab
    /// fits, the whole budget is usable, and freed slots serve either kind.
    #[test]
    fn cap_fails_allocation() {
        let c = Counting::new();
        let cap = SLAB_HEAD + 40 * SLOT_SIZE;
        let b = PoolBackend::new_in(&c).with_max_slab_bytes(cap);
        let mut leaves = Vec::new();
        while let Ok(p) = b.alloc_leaf() {
            assert_eq!(p.as_ptr().addr() % 64, 0);
            leaves.push(p);
            assert!(leaves.len() <= 40);
        }
        let s = b.stats();
        assert_eq!(s.leaves, leaves.len());
        assert_eq!((s.free_slots, s.max_slab_bytes), (0, cap));
        assert!(s.slab_bytes <= cap, "{s:?}");
        assert!(
            cap - s.slab_bytes < SLAB_HEAD + SLOT_SIZE,
            "budget left unused: {s:?}"
        );
        assert!(b.alloc_internode().is_err());
        assert!(b.reserve(1, 0).is_err());
        // SAFETY: from `alloc_leaf`, never published.
        unsafe { b.free_leaf(leaves.pop().unwrap()) };
        let node = b
            .alloc_internode()
            .expect("a freed leaf slot serves an internode");
        assert!(b.alloc_leaf().is_err());
        // SAFETY: as above.
        unsafe {
            b.free_internode(node);
            for p in leaves.drain(..) {
                b.free_leaf(p);
            }
        }
        let s = b.stats();
        assert_eq!((s.leaves, s.internodes, s.free_slots), (0, 0, s.slots));
        assert_eq!(c.allocs() as usize, s.slabs);
        drop(b);
        c.assert_empty();
    }

    /// Capacity reserved up front is one slab; a cap below it keeps it.
    #[test]
    fn with_capacity_and_reserve() {
        let c = Counting::new();
        let b = PoolBackend::with_capacity_in(100, 10, &c).unwrap();
        let s = b.stats();
        assert_eq!((s.slabs, s.slots, s.free_slots), (1, 110, 110));
        assert_eq!(s.slab_bytes, SLAB_HEAD + 110 * SLOT_SIZE);
        b.reserve(50, 50).unwrap();
        assert_eq!(b.stats().slabs, 1);
        b.reserve(150, 50).unwrap();
        let s = b.stats();
        assert_eq!((s.slabs, s.slots, s.free_slots), (2, 200, 200));
        let b = b.with_max_slab_bytes(1);
        let got: Vec<_> = (0..200).map(|_| b.alloc_leaf().unwrap()).collect();
        assert!(b.alloc_leaf().is_err());
        for p in got {
            // SAFETY: from `alloc_leaf`, never published.
            unsafe { b.free_leaf(p) };
        }
        drop(b);
        c.assert_empty();
    }

    /// When the allocator refuses a large slab, smaller ones are tried.
    #[test]
    fn smaller_slabs_when_allocator_refuses() {
        let c = Counting::new();
        c.fail_above
            .store(SLAB_HEAD + 5 * SLOT_SIZE, Ordering::SeqCst);
        let b = PoolBackend::new_in(&c);
        let got: Vec<_> = (0..40).map(|_| b.alloc_leaf().unwrap()).collect();
        let s = b.stats();
        assert!(s.slabs >= 8, "{s:?}");
        c.fail_above.store(0, Ordering::SeqCst);
        while b.alloc_leaf().is_ok() {}
        assert!(b.alloc_value(1u8).is_err());
        for p in got {
            // SAFETY: from `alloc_leaf`, never published.
            unsafe { b.free_leaf(p) };
        }
        drop(b);
        c.assert_empty();
    }

    /// Every value is dropped exactly once: replaced and removed ones at
    /// `reclaim` (and readable until then), the rest at `clear` and drop.
    #[test]
    fn values_dropped_exactly_once() {
        let c = Counting::new();
        let d = AtomicUsize::new(0);
        let n = scale(1000) as u64;
        let mut t = Values::new_in(PoolBackend::new_in(&c));
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
            assert_eq!(drops(&d), 0);
        }
        t.reclaim();
        assert_eq!(drops(&d) as u64, n);
        t.reclaim();
        assert_eq!(drops(&d) as u64, n);
        t.clear();
        assert_eq!(drops(&d) as u64, n + n / 2);
        {
            let g = t.guard();
            for i in 0..n {
                t.insert(&key(i), Tracked::new(2 * n + i, &d), &g);
            }
            t.remove(&key(0), &g);
        }
        drop(t);
        assert_eq!(drops(&d) as u64, 2 * n + n / 2);
        c.assert_empty();
    }

    #[test]
    fn guards_belong_to_one_backend() {
        let a = PoolBackend::new();
        let b = PoolBackend::new();
        let (ga, gb) = (a.guard(), b.guard());
        assert!(a.owns_guard(&ga) && b.owns_guard(&gb));
        assert!(!a.owns_guard(&gb) && !b.owns_guard(&ga));
    }

    #[test]
    #[should_panic(expected = "different tree")]
    fn foreign_guard_panics() {
        let a: Tree<Inline<u64>, PoolBackend> = Tree::new_in(PoolBackend::new());
        let b: Tree<Inline<u64>, PoolBackend> = Tree::new_in(PoolBackend::new());
        let g = b.guard();
        a.get(b"x", &g);
    }

    /// Four threads insert, read, replace and remove; then everything adds up.
    #[test]
    fn concurrent_inserts_and_gets() {
        const THREADS: u64 = 4;
        let c = Counting::new();
        let d = AtomicUsize::new(0);
        let per = scale(2000) as u64;
        let mut t = Values::new_in(PoolBackend::new_in(&c));
        std::thread::scope(|sc| {
            for th in 0..THREADS {
                let (t, d) = (&t, &d);
                sc.spawn(move || {
                    let g = t.guard();
                    for j in 0..per {
                        let i = j * THREADS + th;
                        assert!(t.insert(&key(i), Tracked::new(i, d), &g).is_none());
                        assert_eq!(t.get(&key(i), &g).map(|v| v.id), Some(i));
                        // Someone else's key: absent or right.
                        let o = (j * THREADS + (th + 1) % THREADS) / 2;
                        if let Some(v) = t.get(&key(o), &g) {
                            assert!(v.id == o || v.id == o + 1_000_000);
                        }
                        if j % 4 == 0 {
                            let old = t.insert(&key(i), Tracked::new(i + 1_000_000, d), &g);
                            assert_eq!(old.map(|v| v.id), Some(i));
                        }
                        if j % 8 == 1 {
                            assert!(t.remove(&key(i), &g).is_some());
                        }
                    }
                });
            }
        });
        let live = THREADS * per - THREADS * per.div_ceil(8);
        assert_eq!(t.len() as u64, live);
        {
            let g = t.guard();
            for i in 0..THREADS * per {
                let j = i / THREADS;
                let want = match (j % 8 == 1, j % 4 == 0) {
                    (true, _) => None,
                    (false, true) => Some(i + 1_000_000),
                    (false, false) => Some(i),
                };
                assert_eq!(t.get(&key(i), &g).map(|v| v.id), want);
            }
        }
        t.reclaim();
        let s = stats(&t);
        assert_eq!((s.retired_records, s.retired_nodes), (0, 0));
        let created = THREADS * per + THREADS * per.div_ceil(4);
        assert_eq!(drops(&d) as u64, created - live);
        drop(t);
        assert_eq!(drops(&d) as u64, created);
        c.assert_empty();
    }
}
