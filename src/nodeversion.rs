//! The node version word (`nodeversion.hh` in the C++ original).
//!
//! Every node carries one 32-bit version. Writers lock the node through it and
//! mark what they are doing; readers never write it: they take a *stable*
//! version, read the node, and check that the version has not changed.
//!
//! | bits    | name        | meaning                                                        |
//! |---------|-------------|----------------------------------------------------------------|
//! | 0       | `LOCKED`    | a writer holds the node                                        |
//! | 1       | `INSERTING` | the locked writer is changing visible slots (dirty)            |
//! | 2       | `SPLITTING` | the locked writer is moving keys to a new sibling (dirty)      |
//! | 3..=10  | `VINSERT`   | counter, bumped on unlock after `INSERTING`                    |
//! | 11..=28 | `VSPLIT`    | counter, bumped on unlock after `SPLITTING`                    |
//! | 29      | `DELETED`   | the node has been unlinked; whoever finds it retries           |
//! | 30      | `ROOT`      | the node is the root of its trie layer                         |
//! | 31      | `LEAF`      | the node is a leaf (border node), else an internode            |
//!
//! A version with `INSERTING` or `SPLITTING` set is *dirty*: [`NodeVersion::stable`]
//! waits until neither is set. [`NodeVersion::has_changed`] compares everything
//! above the lock bit, so a dirty mark, a counter bump or a flag change all count.
//! Counters wrap inside their own field and never carry into the flags.

use crate::sync::{AtomicU32, Ordering, fence, spin_loop};

pub(crate) const LOCKED: u32 = 1 << 0;
pub(crate) const INSERTING: u32 = 1 << 1;
pub(crate) const SPLITTING: u32 = 1 << 2;
const DIRTY: u32 = INSERTING | SPLITTING;
const VINSERT_LOW: u32 = 1 << 3;
const VINSERT_MASK: u32 = 0xff << 3;
const VSPLIT_LOW: u32 = 1 << 11;
const VSPLIT_MASK: u32 = 0x3_ffff << 11;
pub(crate) const DELETED: u32 = 1 << 29;
pub(crate) const ROOT: u32 = 1 << 30;
pub(crate) const LEAF: u32 = 1 << 31;

/// A snapshot of a node's version word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Version(u32);

impl Version {
    #[inline]
    pub(crate) fn is_leaf(self) -> bool {
        self.0 & LEAF != 0
    }
    #[inline]
    pub(crate) fn is_root(self) -> bool {
        self.0 & ROOT != 0
    }
    #[inline]
    pub(crate) fn is_deleted(self) -> bool {
        self.0 & DELETED != 0
    }
    #[inline]
    pub(crate) fn is_locked(self) -> bool {
        self.0 & LOCKED != 0
    }
    #[inline]
    fn is_dirty(self) -> bool {
        self.0 & DIRTY != 0
    }
    /// True if `newer` differs from `self` by a split (or a flag change):
    /// anything from the vsplit counter up.
    #[inline]
    pub(crate) fn has_split(self, newer: Version) -> bool {
        (self.0 ^ newer.0) >= VSPLIT_LOW
    }

    #[cfg(test)]
    pub(crate) fn bits(self) -> u32 {
        self.0
    }
}

/// Bumps the counter selected by `mask` (with lowest bit `low`) without
/// carrying into the neighbouring fields.
#[inline]
fn bump(v: u32, low: u32, mask: u32) -> u32 {
    (v & !mask) | (v.wrapping_add(low) & mask)
}

/// The version word of one node. See the module docs for the bit layout.
#[repr(transparent)]
pub(crate) struct NodeVersion(AtomicU32);

/// The common head of leaves and internodes: a pointer to either can be read
/// as a `NodeBase` to find out which it is.
#[repr(C)]
pub(crate) struct NodeBase {
    pub(crate) version: NodeVersion,
}

impl NodeVersion {
    /// A fresh, unlocked version with the given `LEAF`/`ROOT` flags.
    pub(crate) fn new(flags: u32) -> Self {
        debug_assert_eq!(flags & !(LEAF | ROOT), 0);
        NodeVersion(AtomicU32::new(flags))
    }

    /// A version for a node created during a split: a copy of the splitting
    /// node's locked-and-splitting version, so nobody can lock the new sibling
    /// before its creator unlocks it, and readers that reach it wait.
    pub(crate) fn new_locked_copy(locked: Version) -> Self {
        debug_assert!(locked.is_locked());
        NodeVersion(AtomicU32::new(locked.0 & !(ROOT | DELETED)))
    }

    /// Waits until no writer is marking the node dirty, then returns the version.
    #[inline]
    pub(crate) fn stable(&self) -> Version {
        loop {
            // Acquire: pairs with the Release store in `unlock`, so everything the
            // last writer did is visible to the reads this version will validate.
            let v = Version(self.0.load(Ordering::Acquire));
            if !v.is_dirty() {
                return v;
            }
            spin_loop();
        }
    }

    /// True if the node changed since `old` was taken by [`Self::stable`]:
    /// must be called after the reads that `old` is meant to validate.
    #[inline]
    pub(crate) fn has_changed(&self, old: Version) -> bool {
        // Acquire: orders the preceding (relaxed) reads of node fields before the
        // version re-read below; pairs with the Release fence in `mark_*`, so a
        // reader that saw any field written after a dirty mark sees the mark.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above.
        let now = self.0.load(Ordering::Relaxed);
        (old.0 ^ now) > LOCKED
    }

    /// The current version, without waiting for writers.
    #[inline]
    pub(crate) fn load(&self) -> Version {
        // Acquire: pairs with the Release store in `unlock`.
        Version(self.0.load(Ordering::Acquire))
    }

    /// Locks the node (spinning), returning a guard that unlocks on drop.
    #[inline]
    pub(crate) fn lock(&self) -> LockGuard<'_> {
        // Relaxed: only a first guess for the compare-exchange below.
        let mut v = self.0.load(Ordering::Relaxed);
        loop {
            if v & LOCKED != 0 {
                spin_loop();
                // Relaxed: another guess; the successful exchange is Acquire.
                v = self.0.load(Ordering::Relaxed);
                continue;
            }
            // Acquire: pairs with the Release store of the previous `unlock`, so
            // the previous holder's writes are visible inside this critical section.
            match self
                .0
                .compare_exchange_weak(v, v | LOCKED, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return LockGuard { version: self },
                Err(now) => v = now,
            }
        }
    }

    /// Wraps a node that is already locked (one created by
    /// [`Self::new_locked_copy`]) in a guard.
    ///
    /// # Safety
    /// The caller must own the lock bit of this node and hand that ownership to
    /// the returned guard.
    #[inline]
    pub(crate) unsafe fn adopt_lock(&self) -> LockGuard<'_> {
        debug_assert!(self.load().is_locked());
        LockGuard { version: self }
    }
}

/// Holds a node's lock; unlocking (on drop) bumps the counter of whatever
/// the holder marked, and clears the dirty bits.
#[must_use = "the node unlocks as soon as the guard is dropped"]
pub(crate) struct LockGuard<'a> {
    version: &'a NodeVersion,
}

impl LockGuard<'_> {
    /// The locked version word (no other thread can change it now).
    #[inline]
    pub(crate) fn current(&self) -> Version {
        // Relaxed: we own the lock, so only this thread writes the word.
        Version(self.version.0.load(Ordering::Relaxed))
    }

    #[inline]
    fn set(&self, bits: u32) {
        let v = self.current().0 | bits;
        // Relaxed: we own the lock; the fence below orders the store.
        self.version.0.store(v, Ordering::Relaxed);
        // Release: the dirty mark becomes visible no later than any field write
        // that follows; pairs with the Acquire fence in `has_changed`.
        fence(Ordering::Release);
    }

    /// Marks visible slots as about to change: readers of the old contents
    /// will fail validation, and `unlock` will bump `VINSERT`.
    #[inline]
    pub(crate) fn mark_insert(&self) {
        self.set(INSERTING);
    }

    /// Marks keys as about to move to a new sibling: `unlock` bumps `VSPLIT`,
    /// which tells readers to look right.
    #[inline]
    pub(crate) fn mark_split(&self) {
        self.set(SPLITTING);
    }

    /// Marks the node as unlinked: whoever finds it from now on retries from
    /// the top. Also dirty, so readers inside revalidate.
    #[inline]
    pub(crate) fn mark_deleted(&self) {
        self.set(DELETED | INSERTING);
    }

    /// Sets or clears the root flag (a split of the root). Dirty, as a split.
    #[inline]
    pub(crate) fn set_root(&self, root: bool) {
        self.mark_split();
        let v = self.current().0;
        let v = if root { v | ROOT } else { v & !ROOT };
        // Relaxed: ordered by the Release fence in `mark_split` and the Release
        // store in `unlock`.
        self.version.0.store(v, Ordering::Relaxed);
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let mut v = self.current().0;
        if v & SPLITTING != 0 {
            v = bump(v, VSPLIT_LOW, VSPLIT_MASK);
        } else if v & INSERTING != 0 {
            v = bump(v, VINSERT_LOW, VINSERT_MASK);
        }
        // Release: publishes every write made under the lock; pairs with the
        // Acquire loads in `stable`, `load` and `lock`.
        self.version
            .0
            .store(v & !(LOCKED | DIRTY), Ordering::Release);
    }
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn fresh_version_flags() {
        let v = NodeVersion::new(LEAF | ROOT).stable();
        assert!(v.is_leaf() && v.is_root() && !v.is_locked() && !v.is_deleted());
        let v = NodeVersion::new(0).stable();
        assert!(!v.is_leaf() && !v.is_root());
    }

    #[test]
    fn lock_then_unlock_without_marks_changes_nothing() {
        let n = NodeVersion::new(LEAF);
        let v0 = n.stable();
        {
            let g = n.lock();
            assert!(g.current().is_locked());
            // The lock bit alone is not a change.
            assert!(!n.has_changed(v0));
        }
        assert_eq!(n.stable(), v0);
    }

    #[test]
    fn insert_mark_bumps_vinsert_only() {
        let n = NodeVersion::new(LEAF);
        let v0 = n.stable();
        {
            let g = n.lock();
            g.mark_insert();
            assert!(n.has_changed(v0));
        }
        let v1 = n.stable();
        assert!(n.has_changed(v0));
        assert!(!v0.has_split(v1));
        assert_eq!(v1.bits() - v0.bits(), VINSERT_LOW);
    }

    #[test]
    fn split_mark_bumps_vsplit() {
        let n = NodeVersion::new(LEAF);
        let v0 = n.stable();
        {
            let g = n.lock();
            g.mark_insert();
            g.mark_split();
        }
        let v1 = n.stable();
        assert!(v0.has_split(v1));
        assert_eq!(v1.bits() - v0.bits(), VSPLIT_LOW, "split wins over insert");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "2^18 lock round trips; pure arithmetic, nothing for Miri to find"
    )]
    fn counters_wrap_without_touching_flags() {
        let n = NodeVersion::new(LEAF | ROOT);
        for _ in 0..300 {
            let g = n.lock();
            g.mark_insert();
        }
        for _ in 0..(1 << 18) + 3 {
            let g = n.lock();
            g.mark_split();
        }
        let v = n.stable();
        assert!(v.is_leaf() && v.is_root() && !v.is_deleted() && !v.is_locked());
        assert_eq!(v.bits() & VINSERT_MASK, (300 % 256) << 3);
        assert_eq!(v.bits() & VSPLIT_MASK, 3 << 11);
    }

    #[test]
    fn root_and_deleted_flags() {
        let n = NodeVersion::new(ROOT);
        let v0 = n.stable();
        {
            let g = n.lock();
            g.set_root(false);
        }
        let v1 = n.stable();
        assert!(!v1.is_root() && v0.has_split(v1));
        {
            let g = n.lock();
            g.mark_deleted();
            assert!(n.has_changed(v1));
        }
        let v2 = n.stable();
        assert!(v2.is_deleted() && v1.has_split(v2));
    }

    #[test]
    fn locked_copy_is_locked_and_splitting() {
        let n = NodeVersion::new(LEAF | ROOT);
        let g = n.lock();
        g.mark_split();
        let sib = NodeVersion::new_locked_copy(g.current());
        let cur = sib.load();
        assert!(cur.is_locked() && cur.is_leaf() && !cur.is_root());
        // SAFETY: `new_locked_copy` made `sib` locked and nobody else has it.
        drop(unsafe { sib.adopt_lock() });
        assert!(!sib.stable().is_locked());
    }
}
