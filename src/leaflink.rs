//! The leaf list (`btree_leaflink.hh`): `next`/`prev` links between the
//! leaves of one layer, changed without taking the neighbours' locks.
//!
//! The low bit of a `next` pointer is a *mark*, a tiny lock on that one link.
//! A split of leaf `L` marks `L.next` while it threads the new sibling in; an
//! unlink of leaf `N` marks `N.next` (for good: `N` is deleted) and then swings
//! `N.prev.next` from `N` to `N.next` with a compare-exchange, which fails, and
//! is retried, while `N.prev.next` is marked or `N.prev` is being replaced.
//! Readers strip the mark ([`Leaf::next_leaf`]).
//!
//! Invariants: `prev` is null only for the leftmost leaf of a layer, which is
//! never unlinked; a leaf's `next` changes only under that leaf's lock (split)
//! or by the compare-exchange of an unlink of its right neighbour.

use crate::leaf::{Leaf, NEXT_MARK};
use crate::node::NodeRef;
use crate::sync::{Ordering, spin_loop};

#[inline]
fn is_marked(p: *mut Leaf) -> bool {
    p.addr() & NEXT_MARK != 0
}

/// Marks `leaf.next`, waiting while someone else holds the mark; returns it unmarked.
fn lock_next(leaf: &Leaf) -> *mut Leaf {
    loop {
        // Relaxed: a guess for the compare-exchange.
        let p = leaf.next.load(Ordering::Relaxed);
        if !is_marked(p) {
            // Acquire: the neighbour we will link to is fully built.
            let marked = p.map_addr(|a| a | NEXT_MARK);
            if leaf
                .next
                .compare_exchange_weak(p, marked, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return p;
            }
        }
        spin_loop();
    }
}

/// Threads `right` (new, private, built) in after `left` (locked, splitting).
pub(crate) fn link_split(left: NodeRef<'_, Leaf>, right: NodeRef<'_, Leaf>) {
    let next = lock_next(&left);
    // Relaxed: `right` is published by the Release store of `left.next` below.
    right.next.store(next, Ordering::Relaxed);
    right.prev.store(left.as_ptr(), Ordering::Relaxed);
    if !next.is_null() {
        // SAFETY: linked leaves live while the caller's guard does.
        // Release: publishes `right` to backward walkers.
        unsafe { (*next).prev.store(right.as_ptr(), Ordering::Release) };
    }
    // Release: publishes `right` to readers moving right, and unmarks the link.
    left.next.store(right.as_ptr(), Ordering::Release);
}

/// Takes `leaf` (locked, marked deleted, not the leftmost) out of the list.
pub(crate) fn unlink(leaf: NodeRef<'_, Leaf>) {
    // Stays marked for good: nobody links after a deleted leaf, and the right
    // neighbour's own unlink waits (its compare-exchange on our `next` fails)
    // until we have handed it our left neighbour.
    let next = lock_next(&leaf);
    loop {
        // Acquire: pairs with the Release stores of `prev` in `link_split` and
        // here, so the left neighbour is fully visible.
        let prev = leaf.prev.load(Ordering::Acquire);
        debug_assert!(!prev.is_null(), "the leftmost leaf is never unlinked");
        if !next.is_null() {
            // Before the exchange, not after: once `prev.next` is `next`, a
            // split of `prev` may set `next.prev` to its new sibling, and a
            // late store here would undo that. Until then only we write it.
            // SAFETY: linked leaves live while the caller's guard does.
            // Release: `next`'s unlinker reads its new left neighbour fully built.
            unsafe { (*next).prev.store(prev, Ordering::Release) };
        }
        // SAFETY: as above.
        // Release: readers that follow the new link see `next` fully built.
        // Fails while `prev` splits (its `next` is marked; the split then
        // replaces our `prev`) or is being unlinked (its `next` stays marked;
        // its unlinker replaces our `prev`).
        if unsafe { &*prev }
            .next
            .compare_exchange(leaf.as_ptr(), next, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        spin_loop();
    }
}
