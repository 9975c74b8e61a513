//! The pool backend: nodes in slabs of equal slots, reused; retired memory
//! waits until an explicit quiescent point. No `std`, no global allocator:
//! every byte comes from an `allocator_api2` allocator `A`.
//!
//! Leaves and internodes share one slot size (a leaf's, 320 bytes on 64-bit
//! targets), 50 to a slab of [`SLAB_BYTES`], so memory freed by one kind
//! serves the other. A slab whose last node is freed goes back to `A` at
//! once, except one kept empty for the next split. Nothing retired is reused
//! while the tree is shared: retired nodes, values and suffix records wait
//! until [`Tree::reclaim`](crate::Tree::reclaim) (`&mut`, so no guard is
//! alive) or drop, which also return every empty slab.
//! [`PoolBackend::with_max_slab_bytes`] caps the slab memory (cap `A` for a
//! hard total); past it node allocation fails, which
//! [`Tree::insert`](crate::Tree::insert) treats as fatal, like `Vec::push`,
//! and `tree.fallible()` reports.
//!
//! Cost: a tree that churns while always shared grows until `reclaim`,
//! [`Tree::clear`](crate::Tree::clear) or drop; after scattered removals a
//! slab stays while any of its nodes lives. `A` must serve blocks of
//! [`SLAB_BYTES`] aligned to their size.
//!
//! ```
//! use masstree::{InlineMassTree, alloc_backends::pool::PoolBackend};
//!
//! let backend = PoolBackend::with_capacity(64, 8).unwrap();
//! assert_eq!(backend.stats().slabs, 2);
//! let mut tree: InlineMassTree<u64, PoolBackend> = InlineMassTree::new_in(backend);
//! {
//!     let g = tree.guard();
//!     tree.insert(b"x", 1, &g);
//!     assert_eq!(tree.remove(b"x", &g), Some(1));
//! }
//! tree.reclaim(); // no guard alive: retired memory is reusable, empty slabs go back
//! assert_eq!(tree.backend().stats().slabs, 1);
//! ```

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

#[cfg(feature = "alloc")]
use allocator_api2::alloc::Global;
use allocator_api2::alloc::{AllocError, Allocator};

use super::NODE_SLOT;
use super::header::{self, place};
use super::limbo::{Free, Limbo, Linked, Record, Stack, release_value};
use super::slabs::Slabs;
use crate::backend::{AddressGuard, Internode, Leaf, NodeAllocatorGeneric, Suffix};

/// Bytes of one slab: 50 node slots and the header's slot.
pub const SLAB_BYTES: usize = 16 << 10;

/// The node slabs.
type NodeSlabs = Slabs<SLAB_BYTES, NODE_SLOT, false>;

/// The pool backend on allocator `A` (default: the global allocator); see
/// the [module docs](self).
pub struct PoolBackend<
    #[cfg(feature = "alloc")] A: Allocator = Global,
    #[cfg(not(feature = "alloc"))] A: Allocator,
> {
    slabs: NodeSlabs,
    /// Live leaves and internodes: statistics.
    leaves: AtomicUsize,
    internodes: AtomicUsize,
    /// Retired nodes, linked through their backend word.
    retired_leaves: Stack<Leaf>,
    retired_internodes: Stack<Internode>,
    /// Retired values and suffix records.
    records: Limbo,
    alloc: A,
}

/// Usage figures of a [`PoolBackend`], from [`PoolBackend::stats`]. Exact
/// when no operation is in flight;
/// `slots == leaves + internodes + retired_nodes + free_slots`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Slabs obtained from the allocator and held.
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

impl Linked for Leaf {
    unsafe fn link(this: NonNull<Self>) -> *mut *mut Self {
        Leaf::backend_word(this).cast()
    }
}

impl Linked for Internode {
    unsafe fn link(this: NonNull<Self>) -> *mut *mut Self {
        Internode::backend_word(this).cast()
    }
}

on_global!(PoolBackend, "An empty pool on the global allocator.");

#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
impl PoolBackend<Global> {
    /// [`Self::with_capacity_in`] on the global allocator. Needs the
    /// `alloc` feature.
    pub fn with_capacity(leaves: usize, internodes: usize) -> Result<Self, AllocError> {
        Self::with_capacity_in(leaves, internodes, Global)
    }
}

impl<A: Allocator> PoolBackend<A> {
    /// An empty pool on `alloc`; allocates nothing yet.
    pub const fn new_in(alloc: A) -> Self {
        PoolBackend {
            slabs: NodeSlabs::new(),
            leaves: AtomicUsize::new(0),
            internodes: AtomicUsize::new(0),
            retired_leaves: Stack::new(),
            retired_internodes: Stack::new(),
            records: Limbo::new(),
            alloc,
        }
    }

    /// A pool on `alloc` with room for `leaves` leaves and `internodes`
    /// internodes, or an error if `alloc` cannot give it.
    pub fn with_capacity_in(
        leaves: usize,
        internodes: usize,
        alloc: A,
    ) -> Result<Self, AllocError> {
        let pool = Self::new_in(alloc);
        pool.reserve(leaves, internodes)?;
        Ok(pool)
    }

    /// Caps the slab memory at `max_slab_bytes`: once no slot is free and
    /// one more slab would pass the cap, node allocation fails with
    /// [`AllocError`]. Slabs already held stay, even past the cap.
    pub fn with_max_slab_bytes(mut self, max_slab_bytes: usize) -> Self {
        self.slabs.set_max_bytes(max_slab_bytes);
        self
    }

    /// Makes sure at least `leaves + internodes` slots are free, adding
    /// empty slabs if needed (kept until used, or until `reclaim`).
    pub fn reserve(&self, leaves: usize, internodes: usize) -> Result<(), AllocError> {
        let want = leaves.checked_add(internodes).ok_or(AllocError)?;
        self.slabs.reserve(want, &self.alloc)
    }

    /// Current usage; see [`PoolStats`].
    pub fn stats(&self) -> PoolStats {
        let c = self.slabs.counts();
        let slots = c.slabs * (NodeSlabs::SLOTS - 1);
        PoolStats {
            slabs: c.slabs,
            slab_bytes: c.slabs * SLAB_BYTES,
            slots,
            // Relaxed (both): statistics.
            leaves: self.leaves.load(Ordering::Relaxed),
            internodes: self.internodes.load(Ordering::Relaxed),
            retired_nodes: self.retired_leaves.len() + self.retired_internodes.len(),
            free_slots: slots - c.slots_in_use,
            retired_records: self.records.len(),
            max_slab_bytes: c.max_bytes,
        }
    }

    /// The allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// A slot for a node, counted in `live`.
    #[inline]
    fn take_slot(&self, live: &AtomicUsize) -> Result<NonNull<u8>, AllocError> {
        let slot = self.slabs.take(&self.alloc)?;
        // Relaxed: a statistic.
        live.fetch_add(1, Ordering::Relaxed);
        Ok(slot)
    }

    /// Frees a node's slot, counted in `live`.
    ///
    /// # Safety
    /// `slot` came from `take_slot(live)` and nobody can reach it.
    #[inline]
    unsafe fn free_slot(&self, slot: NonNull<u8>, live: &AtomicUsize) {
        // Relaxed: a statistic.
        live.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the caller guarantees the slot is ours and unreachable.
        unsafe { self.slabs.give(slot, &self.alloc) }
    }

    /// `payload` in memory from `A`, behind room for a [`Record`].
    fn alloc_record(&self, payload: Layout) -> Result<NonNull<u8>, AllocError> {
        header::alloc::<Record>(payload, |l| Ok(self.alloc.allocate(l)?.cast()))
    }

    /// Releases every retired value and suffix record; a panicking
    /// destructor still lets the rest be released and freed (see
    /// [`Limbo::release`]), then goes on.
    fn release_records(records: &mut Limbo, alloc: &A) {
        // SAFETY: the caller has the backend by `&mut`: no guard is alive,
        // so no reader sees a retired record; each came from `alloc_record`.
        unsafe { records.release(|p, l| alloc.deallocate(p, l)) };
    }
}

/// Releases a suffix record (no destructor): frees the allocation through
/// `free`.
///
/// # Safety
/// `h` heads an initialized [`Suffix`] allocated behind a [`Record`], not
/// used again.
unsafe fn release_suffix(h: NonNull<Record>, free: Free<'_>) {
    // SAFETY: the caller guarantees an initialized record at the payload;
    // its layout did not overflow when it was allocated.
    let layout = unsafe {
        let off = header::offset::<Record>(align_of::<Suffix>());
        let payload = Suffix::layout_of(h.cast::<u8>().add(off).cast());
        header::layout::<Record>(payload).unwrap_unchecked()
    };
    free(h.cast(), layout);
}

/// The record header of a suffix record or a `T` from this backend.
///
/// # Safety
/// `p` came from `alloc_suffix` (`T` = [`Suffix`]) or `alloc_value::<T>`.
unsafe fn record_of<T>(p: NonNull<T>) -> NonNull<Record> {
    // SAFETY: the caller's guarantees: allocated behind a record header.
    unsafe { header::of::<Record>(p.cast(), align_of::<T>()) }
}

// SAFETY: 1. nodes are slots of the node slabs, large and aligned enough for
// either node, each handed out once until given back; 2. freed slots go back
// at once, retired ones only at `reclaim(&mut self)` or drop, when no guard
// (which borrows the backend) is alive; 3. retirement writes only the
// backend word or the record header; 4. values are dropped once, by
// `free_value` or the limbo; 5. `AddressGuard` names live backends.
unsafe impl<A: Allocator> NodeAllocatorGeneric for PoolBackend<A> {
    address_guard!();

    type Raw = A;

    fn raw_allocator(&self) -> &A {
        &self.alloc
    }

    fn alloc_leaf(&self) -> Result<NonNull<Leaf>, AllocError> {
        Ok(self.take_slot(&self.leaves)?.cast())
    }

    fn alloc_internode(&self) -> Result<NonNull<Internode>, AllocError> {
        Ok(self.take_slot(&self.internodes)?.cast())
    }

    fn alloc_suffix(&self, layout: Layout) -> Result<NonNull<Suffix>, AllocError> {
        Ok(self.alloc_record(layout)?.cast())
    }

    fn alloc_value<T>(&self, value: T) -> Result<NonNull<T>, T> {
        // SAFETY: room for a `T`, if any.
        unsafe { place(self.alloc_record(Layout::new::<T>()), value) }
    }

    unsafe fn free_leaf(&self, leaf: NonNull<Leaf>) {
        // SAFETY: the caller guarantees `leaf` is ours and unreachable.
        unsafe { self.free_slot(leaf.cast(), &self.leaves) }
    }

    unsafe fn free_internode(&self, node: NonNull<Internode>) {
        // SAFETY: as in `free_leaf`.
        unsafe { self.free_slot(node.cast(), &self.internodes) }
    }

    unsafe fn free_suffix(&self, suffix: NonNull<Suffix>) {
        // SAFETY: the caller guarantees an initialized record of ours that
        // nobody can reach, allocated behind a header; released once, here.
        unsafe { release_suffix(record_of(suffix), &mut |p, l| self.alloc.deallocate(p, l)) }
    }

    unsafe fn free_value<T>(&self, value: NonNull<T>) {
        // SAFETY: as in `free_suffix`; the value is dropped exactly once,
        // here, and its memory freed even if its destructor panics.
        unsafe { release_value::<T>(record_of(value), &mut |p, l| self.alloc.deallocate(p, l)) }
    }

    unsafe fn retire_leaf(&self, leaf: NonNull<Leaf>, _: &AddressGuard<'_>) {
        // Relaxed: a statistic.
        self.leaves.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the backend word is ours from retirement on; the caller
        // guarantees the leaf is ours, unlinked and retired once.
        unsafe { self.retired_leaves.push(leaf) };
    }

    unsafe fn retire_internode(&self, node: NonNull<Internode>, _: &AddressGuard<'_>) {
        // Relaxed: a statistic.
        self.internodes.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: as in `retire_leaf`.
        unsafe { self.retired_internodes.push(node) };
    }

    unsafe fn retire_suffix(&self, suffix: NonNull<Suffix>, _: &AddressGuard<'_>) {
        // SAFETY: the caller guarantees an initialized record of ours,
        // unlinked and retired once; its header is ours to write.
        unsafe { self.records.park(record_of(suffix), release_suffix) };
    }

    unsafe fn retire_value<T>(&self, value: NonNull<T>, _: &AddressGuard<'_>) {
        // SAFETY: as in `retire_suffix`, for a `T` from `alloc_value::<T>`.
        unsafe { self.records.park(record_of(value), release_value::<T>) };
    }

    fn reserve_nodes(&self, leaves: usize, internodes: usize) {
        // A hint: the allocations themselves report a failure.
        let _ = self.reserve(leaves, internodes);
    }

    fn reclaim(&mut self) {
        // If a destructor panics, the retired nodes stay parked, for the
        // next `reclaim` or the drop (which frees every slab).
        Self::release_records(&mut self.records, &self.alloc);
        let (slabs, alloc) = (&self.slabs, &self.alloc);
        // SAFETY: `&mut self`: no guard is alive, so no reader sees a
        // retired node; each was taken from the slabs and parked once.
        self.retired_leaves
            .drain(|n| unsafe { slabs.give(n.cast(), alloc) });
        // SAFETY: as above.
        self.retired_internodes
            .drain(|n| unsafe { slabs.give(n.cast(), alloc) });
        slabs.trim(alloc);
    }
}

impl<A: Allocator> Drop for PoolBackend<A> {
    fn drop(&mut self) {
        /// Frees every slab, which holds every node, live or retired, when
        /// dropped: also if a value's destructor panics.
        struct ReleaseSlabs<'a, A: Allocator>(&'a mut NodeSlabs, &'a A);

        impl<A: Allocator> Drop for ReleaseSlabs<'_, A> {
            fn drop(&mut self) {
                // SAFETY: the backend is being dropped, so the tree is gone:
                // no node is used again.
                unsafe { self.0.release_all(self.1) };
            }
        }

        // Values first (their destructors run), then the slabs.
        let _slabs = ReleaseSlabs(&mut self.slabs, &self.alloc);
        Self::release_records(&mut self.records, &self.alloc);
    }
}

debug_as_stats!(PoolBackend);

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use core::sync::atomic::AtomicUsize;
    use std::vec::Vec;

    use allocator_api2::alloc::Global;

    use super::*;
    use crate::alloc_backends::testing::{self, Tracked, drops, key, scale};
    use crate::test_alloc::Ledger;
    use crate::{Inline, OutOfLine, Tree};

    type Values<'c, 'd> = Tree<OutOfLine<Tracked<'d>>, PoolBackend<&'c Ledger>>;
    type Words<'c> = Tree<Inline<u64>, PoolBackend<&'c Ledger>>;

    fn stats<S: crate::ValueStorage>(t: &Tree<S, PoolBackend<&Ledger>>) -> PoolStats {
        let s = t.backend().stats();
        assert_eq!(
            s.slots,
            s.leaves + s.internodes + s.retired_nodes + s.free_slots,
            "{s:?}"
        );
        s
    }

    /// Node slots in a slab.
    const PER_SLAB: usize = NodeSlabs::SLOTS - 1;

    #[test]
    fn slots_fit_nodes() {
        assert!(NODE_SLOT >= size_of::<Leaf>() && NODE_SLOT >= size_of::<Internode>());
        assert_eq!(NODE_SLOT % align_of::<Leaf>(), 0);
        assert_eq!(NODE_SLOT % align_of::<Internode>(), 0);
        assert_eq!(PER_SLAB, 50);
    }

    /// Everything retired is held until `reclaim`, which returns every value
    /// and suffix record to the allocator and every node slot to the free list.
    #[test]
    fn reclaim_returns_retired_memory() {
        let c = Ledger::new();
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
        // What is left: the slabs holding the empty root leaf and a chain of
        // key-less internodes; no empty slab.
        assert_eq!(c.live_allocs() as usize, s.slabs);
        assert_eq!(c.live_bytes() as usize, s.slab_bytes);
        assert!(s.slots_in_use() < 8, "{s:?}");
        assert!(s.slabs <= s.slots_in_use(), "an empty slab kept: {s:?}");
        drop(t);
        c.assert_empty();
    }

    /// Dropping the tree (and backend) without `reclaim` returns every byte
    /// and drops every value once.
    #[test]
    fn drop_returns_everything() {
        let c = Ledger::new();
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
            assert!(c.live_allocs() > 0);
        }
        assert_eq!(drops(&d) as u64, n + n.div_ceil(3));
        c.assert_empty();
    }

    /// Removed nodes are reused after `reclaim`: a second fill needs no new slab.
    #[test]
    fn slots_reused_after_remove_and_reclaim() {
        let c = Ledger::new();
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
        let c = Ledger::new();
        let cap = 2 * SLAB_BYTES + SLAB_BYTES / 2;
        let b = PoolBackend::new_in(&c).with_max_slab_bytes(cap);
        let mut leaves = Vec::new();
        while let Ok(p) = b.alloc_leaf() {
            assert_eq!(p.as_ptr().addr() % 64, 0);
            leaves.push(p);
            assert!(leaves.len() <= 2 * PER_SLAB);
        }
        let s = b.stats();
        assert_eq!(s.leaves, leaves.len());
        assert_eq!((s.free_slots, s.max_slab_bytes), (0, cap));
        assert!(s.slab_bytes <= cap, "{s:?}");
        assert!(cap - s.slab_bytes < SLAB_BYTES, "budget left unused: {s:?}");
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
        assert_eq!(c.live_allocs() as usize, s.slabs);
        drop(b);
        c.assert_empty();
    }

    /// Capacity reserved up front is empty slabs, kept until used or
    /// reclaimed; a cap below it keeps it.
    #[test]
    fn with_capacity_and_reserve() {
        let c = Ledger::new();
        let mut b = PoolBackend::with_capacity_in(100, 10, &c).unwrap();
        let s = b.stats();
        assert_eq!((s.slabs, s.slots, s.free_slots), (3, 150, 150));
        assert_eq!(s.slab_bytes, 3 * SLAB_BYTES);
        b.reserve(50, 50).unwrap();
        assert_eq!(b.stats().slabs, 3);
        b.reserve(150, 50).unwrap();
        let s = b.stats();
        assert_eq!((s.slabs, s.slots, s.free_slots), (4, 200, 200));
        b = b.with_max_slab_bytes(1);
        let got: Vec<_> = (0..200).map(|_| b.alloc_leaf().unwrap()).collect();
        assert!(b.alloc_leaf().is_err());
        for p in got {
            // SAFETY: from `alloc_leaf`, never published.
            unsafe { b.free_leaf(p) };
        }
        assert_eq!(b.stats().slabs, 1, "one empty slab kept");
        b.reclaim();
        assert_eq!(b.stats().slabs, 0);
        c.assert_empty();
    }

    /// A slab the allocator refuses is an error; the pool stays usable.
    #[test]
    fn a_refused_slab_is_an_error() {
        let c = Ledger::new();
        let b = PoolBackend::new_in(&c);
        let mut got: Vec<_> = (0..PER_SLAB).map(|_| b.alloc_leaf().unwrap()).collect();
        c.fail_above(0);
        assert!(b.alloc_leaf().is_err());
        assert!(b.alloc_value(1u8).is_err());
        assert_eq!((b.stats().slabs, b.stats().leaves), (1, PER_SLAB));
        c.fail_above(usize::MAX);
        got.push(b.alloc_leaf().unwrap());
        assert_eq!(b.stats().slabs, 2);
        for p in got {
            // SAFETY: from `alloc_leaf`, never published.
            unsafe { b.free_leaf(p) };
        }
        drop(b);
        c.assert_empty();
    }

    /// Slabs emptied by retired nodes go back to the allocator at
    /// `reclaim`, every one of them: none is kept empty.
    #[test]
    fn reclaim_returns_empty_slabs() {
        let c = Ledger::new();
        let mut b = PoolBackend::new_in(&c);
        let leaves: Vec<_> = (0..2 * PER_SLAB).map(|_| b.alloc_leaf().unwrap()).collect();
        let nodes: Vec<_> = (0..PER_SLAB)
            .map(|_| b.alloc_internode().unwrap())
            .collect();
        assert_eq!(c.live_allocs(), 3);
        {
            let g = b.guard();
            // SAFETY: never published, so unreachable; each retired once.
            unsafe {
                leaves.iter().for_each(|&p| b.retire_leaf(p, &g));
                nodes.iter().for_each(|&p| b.retire_internode(p, &g));
            }
        }
        let s = b.stats();
        assert_eq!(
            (s.slabs, s.retired_nodes, s.free_slots),
            (3, 3 * PER_SLAB, 0)
        );
        b.reclaim();
        assert_eq!(
            b.stats(),
            PoolStats {
                max_slab_bytes: usize::MAX,
                ..PoolStats::default()
            }
        );
        c.assert_empty();
    }

    /// A tree emptied by removes holds, after `reclaim`, only the slabs of
    /// the nodes that stay: a few slabs, not the slabs of the full tree.
    #[test]
    fn remove_all_and_reclaim_gives_slabs_back() {
        let c = Ledger::new();
        let n = scale(100_000) as u64;
        let mut t = Words::new_in(PoolBackend::new_in(&c));
        {
            let g = t.guard();
            for i in 0..n {
                t.insert(&key(i), i, &g);
            }
        }
        let full = stats(&t);
        assert!(full.slabs > 10 || cfg!(miri), "{full:?}");
        {
            let g = t.guard();
            for i in 0..n {
                assert_eq!(t.remove(&key(i), &g), Some(i));
            }
        }
        t.reclaim();
        let s = stats(&t);
        assert_eq!(c.live_bytes() as usize, s.slab_bytes, "only slabs are held");
        assert!(s.slabs <= s.slots_in_use() && s.slots_in_use() < 8, "{s:?}");
        drop(t);
        c.assert_empty();
    }

    #[test]
    fn values_dropped_exactly_once() {
        let c = Ledger::new();
        // Retired records include suffix records: at least the values.
        let parked = |b: &PoolBackend<&Ledger>, n: u64| {
            let r = b.stats().retired_records as u64;
            assert!(
                r >= n && (n > 0 || r == 0),
                "{r} retired records, {n} values"
            );
        };
        testing::values_dropped_exactly_once(&c, PoolBackend::new_in(&c), parked);
    }

    #[test]
    fn guards_belong_to_one_backend() {
        testing::guards_belong_to_one_backend(
            PoolBackend::new_in(Global),
            PoolBackend::new_in(Global),
        );
    }

    #[test]
    #[should_panic(expected = "different tree")]
    fn foreign_guard_panics() {
        let a: Tree<Inline<u64>, PoolBackend<Global>> = Tree::new_in(PoolBackend::new_in(Global));
        let b: Tree<Inline<u64>, PoolBackend<Global>> = Tree::new_in(PoolBackend::new_in(Global));
        let g = b.guard();
        a.get(b"x", &g);
    }

    /// Four threads insert, read, replace and remove; then everything adds up.
    #[test]
    fn concurrent_inserts_and_gets() {
        const THREADS: u64 = 4;
        let c = Ledger::new();
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
