//! The leaf permutation (`kpermuter.hh`): slot order and count in one `u64`.
//!
//! A leaf keeps its keys in slots in arrival order; the permutation says which
//! slots are live and in what (sorted) order. The low 4 bits hold the count
//! `n`; nibble `i + 1` holds the slot of the `i`-th position. Positions `0..n`
//! are the live entries in key order; positions `n..WIDTH` list the free slots,
//! next-to-use first. A writer fills a free slot and then publishes the new
//! permutation with one atomic store, so readers see either the old set of
//! keys or the new one, never a half-written slot.

use crate::sync::{AtomicU64, Ordering};

/// Slots in a leaf.
pub(crate) const WIDTH: usize = 15;

/// A permutation value. See the module docs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permuter(u64);

/// Mask of the nibbles of positions `from..to` (positions count from 0).
#[inline]
const fn positions(from: usize, to: usize) -> u64 {
    let lo = if from >= WIDTH {
        u64::MAX
    } else {
        (1u64 << (4 * from + 4)) - 1
    };
    let hi = if to >= WIDTH {
        u64::MAX
    } else {
        (1u64 << (4 * to + 4)) - 1
    };
    hi & !lo
}

impl Permuter {
    /// No live entries; free slots `0, 1, .., 14` in that order.
    pub(crate) const EMPTY: Permuter = Permuter(0xedcb_a987_6543_2100);

    /// The first `n` slots live, in slot order (a freshly filled leaf).
    pub(crate) fn sorted(n: usize) -> Permuter {
        debug_assert!(n <= WIDTH);
        Permuter((Self::EMPTY.0 & !0xf) | n as u64)
    }

    #[inline]
    pub(crate) fn len(self) -> usize {
        (self.0 & 0xf) as usize
    }

    /// The slot at position `i` (`i < WIDTH`; positions past `len` are free slots).
    #[inline]
    pub(crate) fn get(self, i: usize) -> usize {
        debug_assert!(i < WIDTH);
        ((self.0 >> (4 * i + 4)) & 0xf) as usize
    }

    /// The slot the next insert will use.
    #[inline]
    pub(crate) fn back(self) -> usize {
        self.get(self.len())
    }

    /// Makes the next free slot live at position `i`, shifting positions
    /// `i..len` up by one. Returns the slot.
    pub(crate) fn insert_from_back(&mut self, i: usize) -> usize {
        let n = self.len();
        debug_assert!(i <= n && n < WIDTH);
        let slot = self.back();
        let keep = self.0 & (positions(0, i) | 0xf);
        let shifted = (self.0 << 4) & positions(i + 1, n + 1);
        let free = self.0 & positions(n + 1, WIDTH);
        self.0 = keep | ((slot as u64) << (4 * i + 4)) | shifted | free;
        self.0 += 1;
        slot
    }

    /// Removes position `i`, shifting later positions down; its slot becomes
    /// the last free slot (reused last, so readers holding an old permutation
    /// rarely meet a recycled slot).
    pub(crate) fn remove_to_back(&mut self, i: usize) {
        let n = self.len();
        debug_assert!(i < n);
        let slot = self.get(i) as u64;
        let keep = self.0 & (positions(0, i) | 0xf);
        let shifted = (self.0 >> 4) & positions(i, WIDTH - 1);
        self.0 = keep | shifted | (slot << (4 * (WIDTH - 1) + 4));
        self.0 -= 1;
    }

    /// Keeps only the first `n` positions live (a split moved the rest out);
    /// the dropped slots become free.
    pub(crate) fn truncate(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.0 = (self.0 & !0xf) | n as u64;
    }

    /// Live slots in key order.
    pub(crate) fn iter(self) -> impl DoubleEndedIterator<Item = usize> + ExactSizeIterator {
        (0..self.len()).map(move |i| self.get(i))
    }
}

impl core::fmt::Debug for Permuter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A permutation shared with readers.
#[repr(transparent)]
pub(crate) struct AtomicPermuter(AtomicU64);

impl AtomicPermuter {
    pub(crate) fn new(p: Permuter) -> Self {
        AtomicPermuter(AtomicU64::new(p.0))
    }

    #[inline]
    pub(crate) fn load(&self) -> Permuter {
        // Acquire: pairs with the Release store in `publish`, so the slots the
        // permutation names are fully written before we read them.
        Permuter(self.0.load(Ordering::Acquire))
    }

    /// Publishes a new permutation.
    #[inline]
    pub(crate) fn publish(&self, p: Permuter) {
        // Release: the slot writes made before this store are visible to any
        // reader whose Acquire `load` sees the new permutation.
        self.0.store(p.0, Ordering::Release);
    }
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn model(p: Permuter) -> (Vec<usize>, Vec<usize>) {
        let all: Vec<usize> = (0..WIDTH).map(|i| p.get(i)).collect();
        (all[..p.len()].to_vec(), all[p.len()..].to_vec())
    }

    fn assert_is_permutation(p: Permuter) {
        let mut all: Vec<usize> = (0..WIDTH).map(|i| p.get(i)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..WIDTH).collect::<Vec<_>>(), "{p:?}");
    }

    #[test]
    fn empty_and_sorted() {
        assert_eq!(Permuter::EMPTY.len(), 0);
        assert_eq!(model(Permuter::EMPTY).1, (0..WIDTH).collect::<Vec<_>>());
        let p = Permuter::sorted(4);
        assert_eq!(model(p).0, [0, 1, 2, 3]);
        assert_eq!(p.back(), 4);
    }

    #[test]
    fn fill_in_reverse_order() {
        let mut p = Permuter::EMPTY;
        for _ in 0..WIDTH {
            p.insert_from_back(0);
        }
        assert_eq!(model(p).0, (0..WIDTH).rev().collect::<Vec<_>>());
    }

    #[test]
    fn removed_slot_goes_to_the_back() {
        let mut p = Permuter::sorted(5);
        p.remove_to_back(1);
        let (live, free) = model(p);
        assert_eq!(live, [0, 2, 3, 4]);
        assert_eq!(*free.last().unwrap(), 1);
        assert_eq!(free[0], 5);
        assert_is_permutation(p);
    }

    proptest! {
        #[test]
        #[cfg_attr(miri, ignore = "integer arithmetic only; proptest's file I/O is not allowed under Miri isolation")]
        fn matches_vec_model(ops in proptest::collection::vec((any::<bool>(), 0usize..16), 0..200)) {
            let mut p = Permuter::EMPTY;
            let (mut live, mut free) = model(p);
            for (ins, at) in ops {
                if ins && live.len() < WIDTH {
                    let i = at % (live.len() + 1);
                    let s = p.insert_from_back(i);
                    let expect = free.remove(0);
                    prop_assert_eq!(s, expect);
                    live.insert(i, s);
                } else if !live.is_empty() {
                    let i = at % live.len();
                    p.remove_to_back(i);
                    let s = live.remove(i);
                    free.push(s);
                }
                prop_assert_eq!(model(p), (live.clone(), free.clone()));
                assert_is_permutation(p);
            }
        }
    }
}
