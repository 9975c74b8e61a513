//! Insert (`masstree_insert.hh`, `masstree_tcursor.hh`).
//!
//! A writer locks the leaf that covers its key (moving right if a split got
//! there first), then either replaces a value word in place, descends into the
//! next layer, turns a colliding suffixed key into a new layer, or fills a free
//! slot and publishes it with one permutation store. A full leaf splits
//! (see [`crate::split`]).

use crate::backend::{AllocError, NodeAllocatorGeneric};
use crate::get::reach_leaf;
use crate::key::{KSUF, LAYER, SLICE, ikey_of};
use crate::leaf::{LAYER_ROOT, Leaf, NodeBase};
use crate::leaflink;
use crate::nodeversion::{LockGuard, Version};
use crate::raw::{NodeRef, RawTree};
use crate::suffix::Suffix;
use crate::sync::spin_loop;

/// What an insert found.
pub(crate) enum Inserted {
    /// The key was new.
    New,
    /// The key existed; this was its value word (now unlinked, to be retired).
    Replaced(*mut ()),
}

/// Locks the leaf that covers `ikey` in the layer of `root`, or returns
/// `None` if the leaf found was deleted (removed, or its whole layer was):
/// the caller starts again from the top of the tree.
///
/// # Safety
/// `root` is a node of a live layer; the caller holds a guard.
pub(crate) unsafe fn find_locked<'a>(
    root: *mut NodeBase,
    ikey: u64,
) -> Option<(NodeRef<'a, Leaf>, LockGuard<'a>)> {
    // SAFETY: the caller's guarantees.
    let (leaf, v) = unsafe { reach_leaf(root, ikey) };
    // SAFETY: `reach_leaf` returns a leaf that covered `ikey` at `v`.
    unsafe { lock_covering(leaf, v, ikey) }
}

/// Locks `leaf`, which covered `ikey` at its stable version `v`, or the right
/// sibling a split since `v` moved `ikey` to. `None` if `leaf` was deleted:
/// the caller starts again from the top of the tree.
///
/// # Safety
/// `leaf` covered `ikey` at `v` (as [`reach_leaf`] returns them); the caller
/// holds a guard.
pub(crate) unsafe fn lock_covering<'a>(
    mut leaf: NodeRef<'a, Leaf>,
    v: Version,
    ikey: u64,
) -> Option<(NodeRef<'a, Leaf>, LockGuard<'a>)> {
    // SAFETY: the leaf lives as long as the guard; the lock borrows its version.
    let mut lock = unsafe { &*leaf.as_ptr() }.version.lock();
    if lock.current().is_deleted() {
        return None;
    }
    if v.has_split(lock.current()) {
        // Keys at or above a right sibling's `low` moved there: follow the
        // links, locking hand-over-hand, left to right.
        loop {
            let next = leaflink::next(&leaf);
            // SAFETY: linked leaves live while the guard does; `low` is immutable.
            if next.is_null() || ikey < unsafe { (*next).low } {
                break;
            }
            // SAFETY: as above.
            let next = unsafe { NodeRef::<'a, Leaf>::new(next) };
            // SAFETY: as above.
            let next_lock = unsafe { &*next.as_ptr() }.version.lock();
            if next_lock.current().is_deleted() {
                // Its remover unlinked it before unlocking: read our link again.
                drop(next_lock);
                spin_loop();
                continue;
            }
            drop(lock);
            (leaf, lock) = (next, next_lock);
        }
    }
    Some((leaf, lock))
}

impl<A: NodeAllocatorGeneric> RawTree<A> {
    /// Inserts or replaces. On allocation failure nothing visible changed
    /// (at most a colliding key was moved, intact, into a new layer).
    ///
    /// # Safety
    /// The caller holds `guard`, a guard of this tree's backend; `word` is a
    /// value word the tree may own from now on (if `Ok`).
    pub(crate) unsafe fn insert(
        &self,
        full: &[u8],
        word: *mut (),
        guard: &A::Guard<'_>,
    ) -> Result<Inserted, AllocError> {
        // SAFETY: the caller's guarantees.
        let at = unsafe { self.locate(full, true, guard) }?.expect("locate makes the root");
        if at.current().is_some() {
            return Ok(Inserted::Replaced(self.replace(&at, word)));
        }
        self.add(at, word)?;
        Ok(Inserted::New)
    }

    /// Turns the suffixed key in `slot` into a one-key layer, because another
    /// key with the same slice arrived. Returns the new layer's root.
    pub(crate) fn make_layer(
        &self,
        leaf: &Leaf,
        lock: &LockGuard<'_>,
        slot: usize,
        old: NodeRef<'_, Suffix>,
        guard: &A::Guard<'_>,
    ) -> Result<*mut NodeBase, AllocError> {
        // SAFETY: `old` is the live record of `slot`.
        let rest = unsafe { Suffix::bytes(old.as_ptr()) };
        let value = old.value();
        let p = self.alloc.alloc_leaf()?;
        let (keylenx, word) = if rest.len() > SLICE {
            match self.new_suffix(&rest[SLICE..], value) {
                Ok(s) => (KSUF, s.cast()),
                Err(e) => {
                    // SAFETY: never published.
                    unsafe { self.alloc.free_leaf(p) };
                    return Err(e);
                }
            }
        } else {
            (rest.len() as u8, value)
        };
        // SAFETY: fresh memory, private until the slot store below publishes it.
        let layer = unsafe { Leaf::init_at(p, LAYER_ROOT, 0) };
        // SAFETY: as above.
        let l = unsafe { layer.as_ref() };
        l.set_slot(0, ikey_of(rest), keylenx, word);
        l.permutation.publish(crate::permuter::Permuter::sorted(1));

        lock.mark_insert();
        // Order matters for lock-free readers, which read the word first and
        // then the keylenx: keylenx first here, so a reader that sees the new
        // word (Release/Acquire) also sees LAYER, and one that sees KSUF has the
        // old record's word. Either way it validates before using them.
        leaf.set_keylenx(slot, LAYER);
        leaf.set_value(slot, layer.as_ptr().cast());
        // SAFETY: the record is unlinked from the slot; readers that loaded it
        // hold guards. Its value word now belongs to the new layer.
        unsafe {
            self.alloc
                .retire_suffix(core::ptr::NonNull::new_unchecked(old.as_ptr()), guard)
        };
        Ok(layer.as_ptr().cast())
    }
}
