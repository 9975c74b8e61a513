//! Lock-free lookup (`masstree_get.hh`, `reach_leaf` in `masstree_struct.hh`).
//!
//! Readers never write shared memory. They descend with versions: read a
//! child pointer, take the child's stable version, then check that the parent
//! did not change meanwhile. At the leaf they read slots, then validate; a
//! split since their version sends them right along the leaf links (B-link).

use crate::allocator::NodeAllocatorGeneric;
use crate::internode::Internode;
use crate::key::{Key, rank};
use crate::leaf::{Leaf, NodeBase, SlotKind, slot_kind};
use crate::leaflink;
use crate::nodeversion::Version;
use crate::permuter::Permuter;
use crate::raw::{NodeRef, RawTree, parent_of, prefetch_node, version};
use crate::suffix::Suffix;
use crate::sync::spin_loop;

/// Where a key is, or would go, in a leaf.
pub(crate) struct Position {
    /// Position in the permutation (the insertion point if not found).
    pub(crate) pos: usize,
    /// The slot of the matching entry, if any.
    pub(crate) slot: Option<usize>,
}

/// Binary search of a leaf by `(ikey, rank)`. Reads may be torn when the
/// caller does not hold the lock; the caller validates.
#[inline]
pub(crate) fn search(leaf: &Leaf, perm: Permuter, key: &Key<'_>) -> Position {
    let ikey = key.ikey();
    let (mut lo, mut hi) = (0, perm.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let slot = perm.get(mid);
        let k = leaf.ikey(slot);
        // The ikey decides but for ties; only then is the keylenx read.
        let order = if ikey != k {
            ikey.cmp(&k)
        } else {
            rank(key.keylenx()).cmp(&rank(leaf.keylenx(slot)))
        };
        match order {
            core::cmp::Ordering::Greater => lo = mid + 1,
            core::cmp::Ordering::Less => hi = mid,
            core::cmp::Ordering::Equal => {
                return Position {
                    pos: mid,
                    slot: Some(slot),
                };
            }
        }
    }
    Position {
        pos: lo,
        slot: None,
    }
}

/// Descends from (a possibly former) layer root to the leaf covering `ikey`.
/// Returns the leaf and a stable version under which it covered `ikey`.
///
/// # Safety
/// `root` must be a node of a live layer and the caller must hold a guard.
#[inline]
pub(crate) unsafe fn reach_leaf<'a>(
    root: *mut NodeBase,
    ikey: u64,
) -> (NodeRef<'a, Leaf>, Version) {
    'retry: loop {
        // SAFETY: nodes stay allocated while the guard lives; every pointer
        // followed here was read from a node of this layer.
        unsafe {
            let mut n = root;
            prefetch_node(n);
            let mut v = version(n).stable();
            while !v.is_root() {
                let p = parent_of(n);
                if p.is_null() {
                    break;
                }
                n = p.cast();
                v = version(n).stable();
            }
            while !v.is_leaf() {
                let inode = &*n.cast::<Internode>();
                let child = inode.child(inode.child_index(ikey));
                // A null child is a torn read of a changing node: its version
                // will say how it changed.
                prefetch_node(child);
                let cv = (!child.is_null()).then(|| version(child).stable());
                if !inode.version.has_changed(v) {
                    if let Some(cv) = cv {
                        n = child;
                        v = cv;
                        continue;
                    }
                }
                let now = inode.version.stable();
                if v.has_split(now) {
                    // Our key may have moved to a new sibling we cannot see
                    // from here: start again from the layer's root.
                    continue 'retry;
                }
                v = now;
            }
            return (NodeRef::new(n.cast::<Leaf>()), v);
        }
    }
}

/// After a failed validation at `leaf`: the new stable version, having moved
/// right along the leaf links if a split sent `ikey` there. The version may
/// say `deleted`: the caller then starts again from the top.
///
/// # Safety
/// The caller holds a guard.
pub(crate) unsafe fn advance(
    mut leaf: NodeRef<'_, Leaf>,
    old: Version,
    ikey: u64,
) -> (NodeRef<'_, Leaf>, Version) {
    let mut v = leaf.version.stable();
    if old.has_split(v) {
        while !v.is_deleted() {
            let next = leaflink::next(&leaf);
            // SAFETY: linked leaves live while the guard does; `low` is immutable.
            if next.is_null() || ikey < unsafe { (*next).low } {
                break;
            }
            // SAFETY: as above.
            leaf = unsafe { NodeRef::new(next) };
            v = leaf.version.stable();
        }
    }
    (leaf, v)
}

impl<A: NodeAllocatorGeneric> RawTree<A> {
    /// Looks a key up; returns its value word.
    ///
    /// # Safety
    /// The caller holds a guard of this tree's backend for as long as it uses
    /// the returned word.
    pub(crate) unsafe fn get(&self, full: &[u8]) -> Option<*mut ()> {
        'top: loop {
            let mut key = Key::new(full);
            let mut root = self.top_root();
            if root.is_null() {
                return None;
            }
            loop {
                let ikey = key.ikey();
                // SAFETY: `root` is a node of a live layer; we hold a guard.
                let (mut leaf, mut v) = unsafe { reach_leaf(root, ikey) };
                let (kind, word) = loop {
                    if v.is_deleted() {
                        // Removed under us (a leaf, or a whole layer): start
                        // over, letting the remover finish its routing first.
                        spin_loop();
                        continue 'top;
                    }
                    let perm = leaf.permutation.load();
                    let found = search(&leaf, perm, &key).slot.map(|slot| {
                        // Read the word before the keylenx: see `insert::make_layer`.
                        let word = leaf.value(slot);
                        (slot_kind(leaf.keylenx(slot)), word)
                    });
                    if !leaf.version.has_changed(v) {
                        match found {
                            None => return None,
                            Some(f) => break f,
                        }
                    }
                    // SAFETY: we hold a guard.
                    (leaf, v) = unsafe { advance(leaf, v, ikey) };
                };
                // The slot was consistent at validation; what it points to stays
                // allocated while the guard lives.
                match kind {
                    SlotKind::Value => return Some(word),
                    SlotKind::Suffix => {
                        let s = Leaf::suffix_of(word);
                        // SAFETY: a validated suffix word; records are retired, not freed.
                        return unsafe { (Suffix::bytes(s) == key.suffix()).then(|| (*s).value()) };
                    }
                    SlotKind::Layer => {
                        // A validated layer word points into a live layer;
                        // `reach_leaf` climbs to its current root.
                        root = word.cast();
                        key.shift();
                    }
                }
            }
        }
    }
}
