//! Internodes (`internode` in `masstree_struct.hh`): routing by ikey.

use core::ptr::{self, NonNull};

use crate::nodeversion::{NodeBase, NodeVersion, Version};
use crate::sync::{AtomicPtr, AtomicU8, AtomicU64, Ordering};

/// Keys in an internode; it has one more child than keys.
pub(crate) const IWIDTH: usize = 14;

/// The ikey held past `nkeys`: not below any key, so the ikeys stay sorted.
pub(crate) const PAST_END: u64 = u64::MAX;

/// An internode: `nkeys` separator ikeys and `nkeys + 1` children. Child `i`
/// holds the keys in `[ikeys[i - 1], ikeys[i])`. Opaque outside the crate.
//
// The ikeys past `nkeys` are `PAST_END` in every stable version, so all
// `IWIDTH` of them are sorted and `child_index` needs no bound per probe.
///
/// Field order: version, count and parent, then the keys (searched first), then
/// the children; 14 keys make the node exactly four cache lines.
#[repr(C, align(64))]
pub struct Internode {
    pub(crate) version: NodeVersion,
    pub(crate) nkeys: AtomicU8,
    pub(crate) parent: AtomicPtr<Internode>,
    pub(crate) ikeys: [AtomicU64; IWIDTH],
    pub(crate) children: [AtomicPtr<NodeBase>; IWIDTH + 1],
    backend: usize,
}

#[cfg(all(not(masstree_loom), target_pointer_width = "64"))]
const _: () = assert!(size_of::<Internode>() == 256 && align_of::<Internode>() == 64);

impl Internode {
    /// Builds an empty internode in place with the given version.
    ///
    /// # Safety
    /// `p` must be valid for writes of an `Internode` and not reachable by others.
    pub(crate) unsafe fn init_at(p: NonNull<Internode>, version: NodeVersion) {
        let p = p.as_ptr();
        // SAFETY: the caller guarantees `p` is writable and private.
        unsafe {
            ptr::addr_of_mut!((*p).version).write(version);
            ptr::addr_of_mut!((*p).nkeys).write(AtomicU8::new(0));
            ptr::addr_of_mut!((*p).parent).write(AtomicPtr::new(ptr::null_mut()));
            for i in 0..IWIDTH {
                ptr::addr_of_mut!((*p).ikeys[i]).write(AtomicU64::new(PAST_END));
            }
            for i in 0..=IWIDTH {
                ptr::addr_of_mut!((*p).children[i]).write(AtomicPtr::new(ptr::null_mut()));
            }
            ptr::addr_of_mut!((*p).backend).write(0);
        }
    }

    /// Builds an internode that starts locked by its creator (a split sibling).
    ///
    /// # Safety
    /// As [`Self::init_at`]; `locked` must be a locked version.
    pub(crate) unsafe fn init_locked_at(p: NonNull<Internode>, locked: Version) {
        // SAFETY: as in `init_at`.
        unsafe { Self::init_at(p, NodeVersion::new_locked_copy(locked)) }
    }

    /// See [`crate::backend::Leaf::backend_word`].
    pub fn backend_word(p: NonNull<Internode>) -> *mut usize {
        // SAFETY: a field projection of the allocation, no reference is created.
        unsafe { ptr::addr_of_mut!((*p.as_ptr()).backend) }
    }

    #[inline]
    pub(crate) fn nkeys(&self) -> usize {
        // Relaxed: readers validate with the version; writers hold the lock.
        // Clamped so that a torn read can never index out of bounds.
        (self.nkeys.load(Ordering::Relaxed) as usize).min(IWIDTH)
    }

    #[inline]
    pub(crate) fn ikey(&self, i: usize) -> u64 {
        // Relaxed: readers validate with the version.
        self.ikeys[i].load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn child(&self, i: usize) -> *mut NodeBase {
        // Acquire: pairs with the Release in `set_child`, so a child published
        // here is fully built when we read it.
        self.children[i].load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn set_child(&self, i: usize, child: *mut NodeBase) {
        // Release: publishes the child's contents; pairs with `child`'s Acquire.
        self.children[i].store(child, Ordering::Release);
    }

    #[inline]
    pub(crate) fn set_ikey(&self, i: usize, ikey: u64) {
        // Relaxed: under the lock with a dirty mark, published by unlock.
        self.ikeys[i].store(ikey, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn set_nkeys(&self, n: usize) {
        // Relaxed: under the lock with a dirty mark, published by unlock.
        self.nkeys.store(n as u8, Ordering::Relaxed);
    }

    /// Index of the child that covers `ikey`: the number of keys `<= ikey`.
    ///
    /// A 4-ary search in two rounds of three independent probes (keys 3, 7
    /// and 11 pick a group of four; three keys of that group finish it),
    /// each probe a comparison whose result is added, not branched on: no
    /// loop exit or comparison to mispredict, and two dependent loads
    /// instead of a binary search's four. The keys past `nkeys` are
    /// [`PAST_END`], so a probe there counts only for `ikey == u64::MAX`,
    /// which the final clamp to `nkeys` corrects; the clamp also keeps a
    /// torn read (garbage keys or count) in bounds.
    #[inline]
    pub(crate) fn child_index(&self, ikey: u64) -> usize {
        let counts = |i: usize| (self.ikey(i) <= ikey) as usize;
        // Keys are sorted, so "key 4m - 1 <= ikey" holds for a prefix of m.
        let lo = 4 * (counts(3) + counts(7) + counts(11));
        // For `lo == 12` the third probe repeats key 13: a count of 15 only
        // where all 14 slots count, which only `ikey == u64::MAX` or a full
        // node can do; the clamp makes it `nkeys` either way.
        let at = lo + counts(lo) + counts(lo + 1) + counts((lo + 2).min(IWIDTH - 1));
        at.min(self.nkeys())
    }
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;
    use alloc::boxed::Box;

    /// `child_index` counts the keys `<= ikey` for every key count and for
    /// probes below, on and between every key, with the slots past `nkeys`
    /// holding `PAST_END` as they do in a stable node; and with garbage
    /// (a torn read) it still returns a child index in bounds.
    #[test]
    fn child_index_counts_keys_not_above() {
        let mut mem = Box::new(core::mem::MaybeUninit::<Internode>::uninit());
        let p = NonNull::new(mem.as_mut_ptr()).unwrap();
        // SAFETY: a private, writable allocation of the right layout.
        unsafe { Internode::init_at(p, NodeVersion::new(0)) };
        // SAFETY: initialized above.
        let node = unsafe { p.as_ref() };
        for n in 0..=IWIDTH {
            for i in 0..IWIDTH {
                // Keys 10, 20, ...; slots past `n` hold `PAST_END`.
                node.set_ikey(i, if i < n { 10 * (i as u64 + 1) } else { PAST_END });
            }
            node.set_nkeys(n);
            for probe in 0..=10 * (IWIDTH as u64 + 2) {
                let want = (0..n).filter(|&i| 10 * (i as u64 + 1) <= probe).count();
                assert_eq!(node.child_index(probe), want, "n={n} probe={probe}");
            }
            assert_eq!(node.child_index(u64::MAX), n);
            if n > 0 {
                // A real separator may be `u64::MAX` too (keys of eight 0xff).
                node.set_ikey(n - 1, u64::MAX);
                assert_eq!(node.child_index(u64::MAX), n);
                assert_eq!(node.child_index(u64::MAX - 1), n - 1);
            }
            // Unsorted garbage, as a reader racing a writer may see it.
            for i in 0..IWIDTH {
                node.set_ikey(i, (i as u64 * 7919) % 13);
            }
            for probe in 0..16 {
                assert!(node.child_index(probe) <= n, "n={n} probe={probe}");
            }
        }
    }

    /// A new internode holds `PAST_END` in every key slot.
    #[test]
    fn new_internode_keys_are_past_end() {
        let mut mem = Box::new(core::mem::MaybeUninit::<Internode>::uninit());
        let p = NonNull::new(mem.as_mut_ptr()).unwrap();
        // SAFETY: a private, writable allocation of the right layout.
        unsafe { Internode::init_at(p, NodeVersion::new(0)) };
        // SAFETY: initialized above.
        let node = unsafe { p.as_ref() };
        assert!((0..IWIDTH).all(|i| node.ikey(i) == PAST_END));
    }
}
