//! Huge-page slabs: an [`Allocator`] that packs node-sized blocks into 2 MiB
//! slabs and, on Linux with `std`, asks the kernel to back each slab with
//! one huge page. A lookup in a tree much larger than the cache then misses
//! the TLB less: the 32 MiB of leaves of a million 8-byte keys with inline
//! values need 16 TLB entries instead of about 8,000. It goes under any
//! backend that takes an allocator; it is made for
//! [`SeizeBackend`](super::seize::SeizeBackend):
//!
//! ```
//! # #[cfg(feature = "seize")] {
//! use masstree::InlineMassTree;
//! use masstree::alloc_backends::{huge_pages::HugePageSlabs, seize::SeizeBackend};
//!
//! let backend = SeizeBackend::new_in(HugePageSlabs::new());
//! let tree: InlineMassTree<u64, SeizeBackend<HugePageSlabs>> = InlineMassTree::new_in(backend);
//! let g = tree.guard();
//! tree.insert(b"x", 1, &g);
//! assert_eq!(tree.get(b"x", &g), Some(1));
//! assert_eq!(tree.backend().allocator().stats().slabs, 1);
//! # }
//! ```
//!
//! Requests aligned to exactly 64 bytes and 1 to [`SLOT_BYTES`] long (the
//! leaves, and anything else that fits) take a slot of a slab of
//! [`SLAB_BYTES`], aligned to its size, from the slab allocator the pool and
//! the seize backend's internodes use too: one empty slab is kept so that a
//! tree at a slab boundary does not fault in 2 MiB per split
//! ([`HugePageSlabs::trim`] returns it). Everything else goes to the inner
//! allocator `A`, the seize backend's one-page internode slabs included.
//! The advice needs transparent huge pages set to `always` or `madvise`;
//! without it, or without `std`, off Linux or under Miri, the slabs are
//! ordinary memory, still packed.
//!
//! Cost: memory in 2 MiB steps; after scattered removals a slab stays while
//! any one of its nodes lives; a request smaller than a leaf still takes a
//! 320-byte slot.

use core::alloc::Layout;
use core::ptr::NonNull;

#[cfg(feature = "alloc")]
use allocator_api2::alloc::Global;
use allocator_api2::alloc::{AllocError, Allocator};

use super::NODE_ALIGN;
use super::slabs::Slabs;

/// Bytes of one slab: one huge page on x86-64 and on AArch64 with 4 KiB
/// base pages (64 KiB under Miri, which is slow to fill a slab).
pub const SLAB_BYTES: usize = if cfg!(miri) { 64 << 10 } else { 2 << 20 };
/// Bytes of one slot, the node slot of every slab in this crate. Requests
/// up to this long (and aligned to 64) are served from slabs.
pub const SLOT_BYTES: usize = super::NODE_SLOT;

/// The slab allocator, with huge-page advice.
type Core = Slabs<SLAB_BYTES, SLOT_BYTES, true>;

/// Usage figures of a [`HugePageSlabs`], from [`HugePageSlabs::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HugePageStats {
    /// Slabs held, the empty one included.
    pub slabs: usize,
    /// Bytes of those slabs.
    pub slab_bytes: usize,
    /// Slots handed out and not freed: nodes (and other 64-aligned requests).
    pub slots_in_use: usize,
    /// Slabs taken so far for which the kernel accepted the huge-page advice
    /// (which is not a huge page: `AnonHugePages` in `/proc/self/smaps` says
    /// what it granted).
    pub advised: usize,
}

/// Node slabs on huge pages over allocator `A` (default: the global
/// allocator), which serves every other request; see the [module docs](self).
pub struct HugePageSlabs<
    #[cfg(feature = "alloc")] A: Allocator = Global,
    #[cfg(not(feature = "alloc"))] A: Allocator,
> {
    slabs: Core,
    alloc: A,
}

on_global!(HugePageSlabs, "Slabs from the global allocator.");

impl<A: Allocator> HugePageSlabs<A> {
    /// Slabs (and every request that is not a node) from `alloc`. Allocates
    /// nothing until the first request.
    pub const fn new_in(alloc: A) -> Self {
        HugePageSlabs {
            slabs: Core::new(),
            alloc,
        }
    }

    /// The inner allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// Current usage.
    pub fn stats(&self) -> HugePageStats {
        let c = self.slabs.counts();
        HugePageStats {
            slabs: c.slabs,
            slab_bytes: c.slabs * SLAB_BYTES,
            slots_in_use: c.slots_in_use,
            advised: c.advised,
        }
    }

    /// Returns the empty slab, if one is kept, to the inner allocator.
    pub fn trim(&self) {
        self.slabs.trim(&self.alloc);
    }

    /// Whether `layout` is served from a slab (not if zero-sized: that would
    /// cost a slot, or a whole slab).
    fn fits(layout: Layout) -> bool {
        layout.align() == NODE_ALIGN && layout.size() <= SLOT_BYTES && layout.size() != 0
    }
}

// SAFETY: slots are disjoint parts of slabs we own, handed out once until
// freed; slabs live while any slot is in use and until this allocator
// drops. Other requests go to `A` and back. A slot may be freed with any
// size from the one asked for up to `SLOT_BYTES` (what `allocate`
// reports), all of which `fits`.
unsafe impl<A: Allocator> Allocator for HugePageSlabs<A> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if !Self::fits(layout) {
            return self.alloc.allocate(layout);
        }
        let slot = self.slabs.take(&self.alloc)?;
        Ok(NonNull::slice_from_raw_parts(slot, SLOT_BYTES))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if Self::fits(layout) {
            // SAFETY: the caller's guarantees; blocks that fit came from a slot.
            unsafe { self.slabs.give(ptr, &self.alloc) }
        } else {
            // SAFETY: the caller's guarantees; such blocks came from `A`.
            unsafe { self.alloc.deallocate(ptr, layout) }
        }
    }
}

impl<A: Allocator> Drop for HugePageSlabs<A> {
    fn drop(&mut self) {
        // SAFETY: no block may be used after its allocator drops.
        unsafe { self.slabs.release_all(&self.alloc) };
    }
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;
    use crate::backend::{Internode, Leaf};
    use crate::test_alloc::Ledger;
    use std::vec::Vec;

    fn leaf() -> Layout {
        Layout::new::<Leaf>()
    }

    fn slab_of(p: NonNull<u8>) -> usize {
        Core::slab_base(p.as_ptr().addr())
    }

    /// `n` leaf-sized slots.
    fn take(slabs: &HugePageSlabs<&Ledger>, n: usize) -> Vec<NonNull<u8>> {
        (0..n)
            .map(|_| slabs.allocate(leaf()).unwrap().cast())
            .collect()
    }

    /// Frees leaf-sized slots.
    ///
    /// # Safety
    /// Each of `ps` is a slot of `slabs`, taken with [`leaf`]'s layout and
    /// not yet freed.
    unsafe fn give_back(slabs: &HugePageSlabs<&Ledger>, ps: &[NonNull<u8>]) {
        for &p in ps {
            // SAFETY: the caller's guarantees.
            unsafe { slabs.deallocate(p, leaf()) };
        }
    }

    #[test]
    fn nodes_share_a_slab_and_it_goes_back() {
        let inner = Ledger::new();
        let slabs = HugePageSlabs::new_in(&inner);
        let ps = take(&slabs, 100);
        let internode = slabs
            .allocate(Layout::new::<Internode>())
            .unwrap()
            .cast::<u8>();
        let mut addrs: Vec<usize> = ps.iter().map(|p| p.as_ptr().addr()).collect();
        addrs.push(internode.as_ptr().addr());
        addrs.sort_unstable();
        for w in addrs.windows(2) {
            assert!(w[1] - w[0] >= SLOT_BYTES, "slots overlap");
        }
        for &a in &addrs {
            assert_eq!(a % NODE_ALIGN, 0);
            assert_eq!(Core::slab_base(a), slab_of(ps[0]));
            assert_ne!(a, slab_of(ps[0]), "the first slot holds the header");
        }
        let st = slabs.stats();
        assert_eq!(
            (st.slabs, st.slab_bytes, st.slots_in_use),
            (1, SLAB_BYTES, 101)
        );
        assert_eq!(inner.live_allocs(), 1);
        // SAFETY: allocated above with these layouts.
        unsafe {
            give_back(&slabs, &ps);
            slabs.deallocate(internode, Layout::new::<Internode>());
        }
        // The empty slab stays as the spare until trimmed.
        assert_eq!((slabs.stats().slabs, slabs.stats().slots_in_use), (1, 0));
        let again = slabs.allocate(leaf()).unwrap().cast::<u8>();
        assert_eq!(
            slab_of(again),
            Core::slab_base(addrs[0]),
            "the spare is reused"
        );
        // SAFETY: as above.
        unsafe { slabs.deallocate(again, leaf()) };
        slabs.trim();
        assert_eq!(slabs.stats().slabs, 0);
        assert_eq!(inner.live_allocs(), 0);
    }

    #[test]
    fn full_slabs_fill_again_and_empty_ones_are_returned() {
        let inner = Ledger::new();
        let slabs = HugePageSlabs::new_in(&inner);
        let per = Core::SLOTS - 1;
        let ps = take(&slabs, per + 1);
        assert_eq!(slabs.stats().slabs, 2);
        assert_eq!(
            slab_of(ps[0]),
            slab_of(ps[per - 1]),
            "a slab holds {per} slots"
        );
        assert_ne!(slab_of(ps[0]), slab_of(ps[per]));
        // A slot freed in the full slab is the next one handed out.
        // SAFETY: allocated above with this layout.
        unsafe { slabs.deallocate(ps[7], leaf()) };
        let p = slabs.allocate(leaf()).unwrap().cast::<u8>();
        assert_eq!(p, ps[7]);
        // Emptying both: one is kept as the spare, the other returned.
        // SAFETY: as above (`ps[7]` was handed out again).
        unsafe { give_back(&slabs, &ps) };
        assert_eq!(slabs.stats().slabs, 1);
        assert_eq!(inner.live_allocs(), 1);
        drop(slabs);
        assert_eq!(inner.live_allocs(), 0);
    }

    #[test]
    fn other_requests_pass_through() {
        let inner = Ledger::new();
        let slabs = HugePageSlabs::new_in(&inner);
        for l in [
            Layout::from_size_align(24, 8).unwrap(),
            Layout::from_size_align(SLOT_BYTES, 128).unwrap(),
            Layout::from_size_align(SLOT_BYTES + 64, 64).unwrap(),
        ] {
            let p = slabs.allocate(l).unwrap();
            assert_eq!(slabs.stats().slabs, 0, "{l:?} went to a slab");
            assert_eq!(inner.live_allocs(), 1);
            // SAFETY: allocated above with this layout.
            unsafe { slabs.deallocate(p.cast(), l) };
            assert_eq!(inner.live_allocs(), 0);
        }
    }

    #[test]
    fn sizes_between_asked_and_given_free_to_the_slot() {
        let inner = Ledger::new();
        let slabs = HugePageSlabs::new_in(&inner);
        let small = Layout::from_size_align(100, 64).unwrap();
        let full = Layout::from_size_align(SLOT_BYTES, 64).unwrap();
        let a = slabs.allocate(small).unwrap();
        assert_eq!(a.len(), SLOT_BYTES, "a slot is reported whole");
        let b = slabs.allocate(full).unwrap();
        assert_eq!(slabs.stats().slots_in_use, 2);
        // SAFETY: allocated above; any size from the asked one to the given
        // one is a valid layout to free with.
        unsafe {
            slabs.deallocate(a.cast(), full);
            slabs.deallocate(b.cast(), small.align_to(64).unwrap().pad_to_align());
        }
        assert_eq!(slabs.stats().slots_in_use, 0);
        // Zero-sized requests take no slot.
        let z = Layout::from_size_align(0, 64).unwrap();
        let p = slabs.allocate(z).unwrap();
        assert_eq!(slabs.stats().slots_in_use, 0);
        // SAFETY: allocated above with this layout.
        unsafe { slabs.deallocate(p.cast(), z) };
    }

    /// Dropping the allocator with slots still handed out (allowed: blocks
    /// just may not be used afterwards) returns every slab: full, partial
    /// and spare.
    #[test]
    fn drop_returns_full_partial_and_spare_slabs() {
        let inner = Ledger::new();
        let slabs = HugePageSlabs::new_in(&inner);
        let per = Core::SLOTS - 1;
        let ps = take(&slabs, 2 * per + 5);
        // Empty the second slab: it becomes the spare. The first stays full,
        // the third partial.
        // SAFETY: allocated above with this layout.
        unsafe { give_back(&slabs, &ps[per..2 * per]) };
        let st = slabs.stats();
        assert_eq!((st.slabs, st.slots_in_use), (3, per + 5));
        assert_eq!(inner.live_allocs(), 3);
        drop(slabs);
        assert_eq!(inner.live_allocs(), 0);
    }

    #[test]
    fn a_refused_slab_is_an_error() {
        let inner = Ledger::new();
        let slabs = HugePageSlabs::new_in(&inner);
        inner.refuse(true);
        assert!(slabs.allocate(leaf()).is_err());
        assert_eq!(slabs.stats(), HugePageStats::default());
        inner.refuse(false);
        let p = slabs.allocate(leaf()).unwrap();
        // SAFETY: allocated above with this layout.
        unsafe { slabs.deallocate(p.cast(), leaf()) };
    }

    /// Checks the marks `threads_never_share_a_slot` wrote at both ends of
    /// slot `p`, then frees it.
    ///
    /// # Safety
    /// `p` is a slot of `slabs`, held by thread `t`, that it marked.
    unsafe fn check_and_free(slabs: &HugePageSlabs<&Ledger>, p: NonNull<u8>, t: u64) {
        let w = p.cast::<u64>().as_ptr();
        // SAFETY: the caller's guarantees: the slot is ours and was written.
        unsafe {
            assert_eq!(w.read(), t, "first word overwritten");
            assert_eq!(
                w.add(SLOT_BYTES / 8 - 1).read() >> 32,
                t,
                "last word overwritten"
            );
            slabs.deallocate(p, leaf());
        }
    }

    /// Threads allocate, write their mark at both ends of every slot they
    /// hold, and check it before freeing: a slot handed out twice, slots
    /// that overlap, or a free list broken by a race show up as a foreign
    /// mark.
    #[test]
    fn threads_never_share_a_slot() {
        let inner = Ledger::new();
        let slabs = HugePageSlabs::new_in(&inner);
        let rounds = if cfg!(miri) { 50 } else { 20_000 };
        std::thread::scope(|s| {
            for t in 1..=3u64 {
                let slabs = &slabs;
                s.spawn(move || {
                    let mut held: Vec<NonNull<u8>> = Vec::new();
                    let mut x = t;
                    for i in 0..rounds {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if x % 3 != 0 || held.is_empty() {
                            let p = slabs.allocate(leaf()).unwrap().cast::<u64>();
                            // SAFETY: a fresh slot of SLOT_BYTES, 64-aligned.
                            unsafe {
                                p.as_ptr().write(t);
                                p.as_ptr().add(SLOT_BYTES / 8 - 1).write(t << 32 | i);
                            }
                            held.push(p.cast());
                        } else {
                            let p = held.swap_remove((x as usize / 3) % held.len());
                            // SAFETY: a slot we hold, written when allocated.
                            unsafe { check_and_free(slabs, p, t) };
                        }
                    }
                    for p in held {
                        // SAFETY: as above.
                        unsafe { check_and_free(slabs, p, t) };
                    }
                });
            }
        });
        assert_eq!(slabs.stats().slots_in_use, 0);
        assert!(slabs.stats().slabs <= 1, "only the spare is left");
        drop(slabs);
        assert_eq!(inner.live_allocs(), 0);
    }
}
