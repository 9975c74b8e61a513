//! Remove (`masstree_remove.hh`).
//!
//! A key leaves its leaf's permutation under the leaf lock with a dirty mark,
//! so every reader that read the old permutation fails validation (this is
//! what lets later inserts fill the freed slot without a dirty mark of their
//! own). A leaf left empty is deleted: marked `DELETED`, unlinked from its
//! neighbours ([`crate::leaflink::unlink`]), then taken out of its parent; its
//! key range joins its left neighbour's. Internodes left without children go
//! the same way. The leftmost leaf of a layer is never removed; when it is
//! the last leaf of an empty layer below layer 0, the whole layer is removed
//! from the slot that points to it ([`RawTree::gc_layer`]). Whoever meets a
//! deleted node starts again from the top of the tree.

use core::ptr::NonNull;

use crate::backend::NodeAllocatorGeneric;
use crate::internode::{Internode, PAST_END};
use crate::key::Key;
use crate::leaf::{Leaf, SlotKind, slot_kind};
use crate::leaflink;
use crate::locate::{Hint, Located};
use crate::node::{NodeBase, NodeRef, find_locked, layer_root, locked_parent, search, version};
use crate::nodeversion::LockGuard;
use crate::raw::RawTree;
use crate::sync::{Ordering, spin_loop};

impl<A: NodeAllocatorGeneric> RawTree<A> {
    /// Removes a key, starting at `hint`'s leaf if there is one; returns its
    /// value word, which the caller must retire.
    ///
    /// # Safety
    /// The caller holds `guard`, a guard of this tree's backend; a hint comes
    /// from a lookup of `full` under it.
    pub(crate) unsafe fn remove_from(
        &self,
        full: &[u8],
        hint: Option<Hint>,
        guard: &A::Guard<'_>,
    ) -> Option<*mut ()> {
        // SAFETY: the caller's guarantees; without making layers nothing allocates.
        let at = unsafe { self.locate_from(full, false, hint, guard) }.ok()??;
        at.current()?;
        // SAFETY: as above.
        Some(unsafe { self.remove_at(at, full, guard) })
    }

    /// Removes a present key; returns its value word (the caller retires it).
    /// Unlocks the leaf, and deletes it if it is left empty.
    ///
    /// # Safety
    /// The caller holds `guard`; `full` is the key `at` was located for.
    pub(crate) unsafe fn remove_at(
        &self,
        at: Located<'_>,
        full: &[u8],
        guard: &A::Guard<'_>,
    ) -> *mut () {
        let value = at.current().expect("remove of an absent key");
        at.lock.mark_insert();
        let mut p = at.perm;
        p.remove_to_back(at.pos);
        at.leaf.permutation.publish(p);
        if let Some(s) = at.record {
            // SAFETY: unlinked from the slot; readers that loaded it hold guards.
            unsafe {
                self.alloc
                    .retire_suffix(NonNull::new_unchecked(s.as_ptr()), guard)
            };
        }
        self.len.sub(1);
        if p.len() == 0 {
            // SAFETY: we hold the leaf's lock and a guard.
            let layer_left_empty = unsafe { self.remove_leaf(at.leaf, at.lock, guard) };
            if layer_left_empty && at.depth > 0 {
                // SAFETY: we hold a guard and no lock.
                unsafe { self.gc_layer(full, at.depth, guard) };
            }
        }
        value
    }

    /// Deletes an empty leaf, unless it is the leftmost of its layer, and
    /// unlocks it. Returns true if its layer may now be empty (its leftmost
    /// leaf empty and alone), for the caller to try [`Self::gc_layer`].
    ///
    /// # Safety
    /// `lock` locks `leaf`, which is empty; the caller holds `guard`.
    pub(crate) unsafe fn remove_leaf(
        &self,
        leaf: NodeRef<'_, Leaf>,
        lock: LockGuard<'_>,
        guard: &A::Guard<'_>,
    ) -> bool {
        // Acquire: pairs with the Release stores of `prev` in `leaflink`.
        if leaf.prev.load(Ordering::Acquire).is_null() {
            return leaf.next_leaf().is_null();
        }
        lock.mark_deleted();
        leaflink::unlink(leaf);
        // SAFETY: the leaf is locked and deleted; we hold a guard.
        unsafe { self.remove_child(leaf.as_ptr().cast(), leaf.low, guard) };
        drop(lock);
        // Acquire: as above. Our left neighbour when we were unlinked.
        let prev = leaf.prev.load(Ordering::Acquire);
        // SAFETY: unreachable from the list (unlinked) and the tree (removed
        // from its parent); readers that hold it have guards.
        unsafe {
            self.alloc
                .retire_leaf(NonNull::new_unchecked(leaf.as_ptr()), guard)
        };
        // If that was the last leaf but the leftmost, the layer may be empty.
        // Look under the neighbour's lock: whoever emptied it looked at its
        // `next` under the same lock, so one of us sees the other's change.
        // SAFETY: leaves live while the guard does; we hold no other lock.
        let prev = unsafe { NodeRef::<Leaf>::new(prev) };
        let plock = prev.get().version.lock();
        // Acquire (prev.prev): as above.
        !plock.current().is_deleted()
            && prev.prev.load(Ordering::Acquire).is_null()
            && prev.next_leaf().is_null()
            && prev.permutation.load().len() == 0
    }

    /// Takes the deleted, locked node `n`, whose key range starts at `low`,
    /// out of its parent. A parent left without children is deleted too; when
    /// `n` was the first child, the separator above that pointed at `low` is
    /// redirected first, so that keys in `n`'s range route to the left
    /// neighbour before any route through the parent can reach a node whose
    /// `low` is above them.
    ///
    /// # Safety
    /// `n` is locked, marked deleted and not a layer root; the caller holds a guard.
    unsafe fn remove_child(&self, n: *mut NodeBase, low: u64, guard: &A::Guard<'_>) {
        // SAFETY: `n` is live and locked by us; we hold a guard.
        let (p, plock) = unsafe { locked_parent(n) }
            .expect("only layer roots have no parent, and they are never removed");
        let nk = p.nkeys();
        let i = (0..=nk)
            .find(|&i| p.child(i) == n)
            .expect("a locked parent lists its child");
        if nk == 0 {
            plock.mark_deleted();
            // SAFETY: `p` is locked and deleted; it is not a root, or `n` would
            // be the leftmost leaf of its layer.
            unsafe { self.remove_child(p.as_ptr().cast(), low, guard) };
            drop(plock);
            // SAFETY: out of the tree now; readers that hold it have guards.
            unsafe {
                self.alloc
                    .retire_internode(NonNull::new_unchecked(p.as_ptr()), guard)
            };
            return;
        }
        if i == 0 {
            // SAFETY: `p` is locked by us; we hold a guard.
            unsafe { redirect(p.as_ptr().cast(), low, p.ikey(0)) };
        }
        plock.mark_insert();
        // Drop child `i` and the separator to its left (the right one for child 0).
        let gone = i.saturating_sub(1);
        for j in gone..nk - 1 {
            p.set_ikey(j, p.ikey(j + 1));
        }
        p.set_ikey(nk - 1, PAST_END);
        for j in i..nk {
            p.set_child(j, p.child(j + 1));
        }
        p.set_nkeys(nk - 1);
    }

    /// Removes the empty layer that the slot for `full`'s first `depth` slices
    /// points to, if it is still empty, with the chain of layers above it
    /// that held nothing but the way down to it; if that empties the leaf of
    /// the slot above the chain, removes that leaf too, and so on up.
    ///
    /// One pass from the top: in each layer the key passes through, lock the
    /// leaf of its slot. A layer whose only node is that leaf and whose only
    /// entry is that slot (a *link* of the chain) keeps its lock; any other
    /// layer becomes the *cut*, and the locks of the cut and links above it
    /// are released. At the bottom, if the layer is empty, the cut's slot is
    /// removed and every link is deleted under the lock it has held since
    /// the pass went through: nothing can have entered them. So a chain of
    /// `n` layers (keys that shared a long prefix) goes in `O(n)`, whatever
    /// its length, and with no memory: the links are found again by
    /// following their slots, which their locks keep as they were.
    ///
    /// Locks go top-down across layers and bottom-up within a layer, as
    /// everywhere else.
    ///
    /// # Safety
    /// The caller holds `guard` and no lock.
    pub(crate) unsafe fn gc_layer(&self, full: &[u8], mut depth: usize, guard: &A::Guard<'_>) {
        'top: while depth > 0 {
            let mut key = Key::new(full);
            let mut root = self.top_root();
            let mut cut: Option<Cut<'_>> = None;
            for k in 0..depth {
                // SAFETY: `root` is a node of a live layer; we hold a guard.
                let found = unsafe { find_locked(root, key.ikey()) };
                let Some((leaf, lock)) = found else {
                    // SAFETY: the links below the cut are locked by us.
                    unsafe { release(cut, k) };
                    spin_loop();
                    continue 'top;
                };
                let perm = leaf.permutation.load();
                let at = search(&leaf, perm, &key);
                let slot = at
                    .slot
                    .filter(|&s| slot_kind(leaf.keylenx(s)) == SlotKind::Layer);
                let Some(slot) = slot else {
                    drop(lock);
                    // SAFETY: as above.
                    unsafe { release(cut, k) };
                    return;
                };
                if k > 0 && perm.len() == 1 && lock.current().is_root() {
                    // A link: its lock is held until the end of the pass
                    // (released or adopted again by walking the chain).
                    core::mem::forget(lock);
                } else {
                    // SAFETY: as above.
                    unsafe { release(cut, k) };
                    cut = Some(Cut {
                        leaf,
                        lock,
                        perm,
                        pos: at.pos,
                        slot,
                        depth: k,
                    });
                }
                // SAFETY: a layer slot under its leaf's lock points into a live layer.
                root = unsafe { layer_root(leaf.value(slot).cast()) };
                key.shift();
            }
            let cut = cut.expect("layer 0 is always the cut");
            let top = root;
            let mut n = top;
            // SAFETY: nodes of a live layer; the leftmost spine never changes
            // its first children (splits keep child 0, removals spare it).
            while !unsafe { version(n) }.load().is_leaf() {
                n = unsafe { &*n.cast::<Internode>() }.child(0);
            }
            // SAFETY: as above.
            let leaf = unsafe { NodeRef::<Leaf>::new(n.cast()) };
            let llock = leaf.get().version.lock();
            // Acquire (prev): pairs with the Release stores in `leaflink`.
            let alone = !llock.current().is_deleted()
                && leaf.permutation.load().len() == 0
                && leaf.prev.load(Ordering::Acquire).is_null()
                && leaf.next_leaf().is_null();
            // With the cut's leaf, the links and the layer's only leaf locked,
            // nothing in the chain can change: inserts need the leaves, and
            // so do splits.
            // SAFETY: we hold those locks and a guard.
            if !alone || !unsafe { self.delete_spine(leaf.as_ptr().cast(), top, guard) } {
                drop(llock);
                // SAFETY: the links below the cut are locked by us.
                unsafe { release(Some(cut), depth) };
                return;
            }
            llock.mark_deleted();
            // The first link (or the bottom layer), before the slot goes.
            let mut link = cut.leaf.value(cut.slot).cast::<NodeBase>();
            cut.lock.mark_insert();
            let mut p = cut.perm;
            p.remove_to_back(cut.pos);
            cut.leaf.permutation.publish(p);
            drop(llock);
            // SAFETY: the layer is unreachable from the slot now.
            unsafe {
                self.alloc
                    .retire_leaf(NonNull::new_unchecked(leaf.as_ptr()), guard)
            };
            for _ in cut.depth + 1..depth {
                // SAFETY: a link, locked by us since the pass, unreachable
                // now; its slot still leads to the next link.
                unsafe {
                    let l = layer_root(link).cast::<Leaf>();
                    link = (*l).value((*l).permutation.load().get(0)).cast();
                    let lock = (*l).version.adopt_lock();
                    lock.mark_deleted();
                    drop(lock);
                    self.alloc.retire_leaf(NonNull::new_unchecked(l), guard);
                }
            }
            if p.len() > 0 {
                return;
            }
            // SAFETY: we hold the cut leaf's lock, and it is empty.
            if !unsafe { self.remove_leaf(cut.leaf, cut.lock, guard) } {
                return;
            }
            depth = cut.depth;
        }
    }

    /// Locks the internodes from `n`'s parent up to `top`, the layer root,
    /// bottom-up, and if each has no key (a single child), marks them all
    /// deleted and retires them; returns false, changing nothing, otherwise.
    ///
    /// # Safety
    /// `n` is locked by the caller; we hold a guard.
    unsafe fn delete_spine(
        &self,
        n: *mut NodeBase,
        top: *mut NodeBase,
        guard: &A::Guard<'_>,
    ) -> bool {
        if n == top {
            return true;
        }
        // SAFETY: the caller's guarantees.
        let Some((p, plock)) = (unsafe { locked_parent(n) }) else {
            return false;
        };
        // SAFETY: as above, `p` now locked by us.
        if p.nkeys() != 0 || !unsafe { self.delete_spine(p.as_ptr().cast(), top, guard) } {
            return false;
        }
        plock.mark_deleted();
        drop(plock);
        // SAFETY: unreachable once the caller removes the layer's slot; readers
        // that hold it have guards, and retired memory outlives them.
        unsafe {
            self.alloc
                .retire_internode(NonNull::new_unchecked(p.as_ptr()), guard)
        };
        true
    }
}

/// Replaces the separator `low` above `n` (the subtree whose first child is
/// going) by `new_low`, the new lowest key of that subtree. Locks ancestors
/// bottom-up while `n` is their first child.
///
/// # Safety
/// `n` is locked by the caller; the caller holds a guard.
unsafe fn redirect(n: *mut NodeBase, low: u64, new_low: u64) {
    // SAFETY: the caller's guarantees.
    let (q, qlock) =
        unsafe { locked_parent(n) }.expect("a first child on the leftmost spine is never removed");
    let j = (0..=q.nkeys())
        .find(|&j| q.child(j) == n)
        .expect("a locked parent lists its child");
    if j == 0 {
        // SAFETY: `q` is locked by us (held until we return).
        unsafe { redirect(q.as_ptr().cast(), low, new_low) };
    } else {
        debug_assert_eq!(
            q.ikey(j - 1),
            low,
            "separators are the low keys of their right subtrees"
        );
        qlock.mark_insert();
        q.set_ikey(j - 1, new_low);
    }
    drop(qlock);
}

/// The leaf, locked, of the slot whose layer [`RawTree::gc_layer`] would
/// remove: the deepest layer on the key's way that is more than a link.
struct Cut<'a> {
    leaf: NodeRef<'a, Leaf>,
    lock: LockGuard<'a>,
    perm: crate::permuter::Permuter,
    pos: usize,
    slot: usize,
    depth: usize,
}

/// Unlocks `cut` and the links below it, down to (not including) layer
/// `below`.
///
/// # Safety
/// The links of layers `cut.depth + 1 .. below` are locked by the caller
/// (their guards forgotten); the caller holds a guard.
unsafe fn release(cut: Option<Cut<'_>>, below: usize) {
    let Some(cut) = cut else { return };
    let mut link = cut.leaf.value(cut.slot).cast::<NodeBase>();
    for _ in cut.depth + 1..below {
        // SAFETY: a link locked by us: its one slot leads to the next link.
        unsafe {
            let l = layer_root(link).cast::<Leaf>();
            link = (*l).value((*l).permutation.load().get(0)).cast();
            drop((*l).version.adopt_lock());
        }
    }
    drop(cut.lock);
}
