//! Lock-free lookup (`masstree_get.hh`, `reach_leaf` in `masstree_struct.hh`).
//!
//! Readers never write shared memory. They descend with versions: read a
//! child pointer, take the child's stable version, then check that the parent
//! did not change meanwhile. At the leaf they read slots, then validate; a
//! split since their version sends them right along the leaf links (B-link).

use crate::backend::NodeAllocatorGeneric;
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
///
/// It branches, unlike the internode search: a version in four fixed steps
/// of conditional moves was faster with random 8-byte keys in a cached tree,
/// but slower on the real `/usr` paths (get hit 1.31x -> 1.10x of 0.9.5,
/// medians of four runs each), whose gets cross many small leaves where
/// this loop ends after a step or two.
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

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;
    use crate::key::rank;
    use crate::permuter::WIDTH;
    use crate::sync::Ordering;
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use core::ptr::NonNull;

    /// `search` finds the lower bound of `(ikey, rank)` and the matching
    /// slot, for every key count, keys inserted in scrambled order (so
    /// positions and slots differ), stale keys in the free slots, and
    /// probes below, on, between and above keys that tie on the ikey.
    #[test]
    fn search_is_the_lower_bound() {
        // Keys over {0, 1, 2} of up to 3 bytes (ikeys tie: "a" and "a\0"),
        // plus 9-byte keys (suffixed; one per ikey in a leaf).
        let mut pool: Vec<Vec<u8>> = Vec::new();
        for len in 0..=3u32 {
            for code in 0..3u32.pow(len) {
                pool.push((0..len).map(|d| (code / 3u32.pow(d) % 3) as u8).collect());
            }
        }
        for b in 0..3u8 {
            pool.push(alloc::vec![b, 1, 0, 0, 0, 0, 0, 0, 9]);
        }
        let order = |k: &Vec<u8>| {
            let key = Key::new(k);
            (key.ikey(), rank(key.keylenx()))
        };
        let mut mem = Box::new(core::mem::MaybeUninit::<Leaf>::uninit());
        let p = NonNull::new(mem.as_mut_ptr()).unwrap();
        // SAFETY: a private, writable allocation of the right layout.
        let leaf = unsafe { Leaf::init_at(p, 0, 0).as_ref() };
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Miri runs this 100x slower; two orders per key count still
        // cover every count, tie and probe.
        let trials = if cfg!(miri) { 2 } else { 20 };
        for n in 0..=WIDTH {
            for _trial in 0..trials {
                // Stale keys everywhere first.
                for slot in 0..WIDTH {
                    leaf.ikeys[slot].store((next() % 4) << 56, Ordering::Relaxed);
                    leaf.keylenx[slot].store((next() % 10) as u8, Ordering::Relaxed);
                }
                // `n` distinct (ikey, rank) keys, inserted in random order.
                let mut chosen: Vec<Vec<u8>> = Vec::new();
                while chosen.len() < n {
                    let k = &pool[next() as usize % pool.len()];
                    if !chosen.iter().any(|c| order(c) == order(k)) {
                        chosen.push(k.clone());
                    }
                }
                let mut perm = Permuter::EMPTY;
                let mut sorted: Vec<(u64, u8)> = Vec::new();
                for k in &chosen {
                    let at = sorted.partition_point(|&o| o < order(k));
                    sorted.insert(at, order(k));
                    let slot = perm.insert_from_back(at);
                    let key = Key::new(k);
                    leaf.ikeys[slot].store(key.ikey(), Ordering::Relaxed);
                    leaf.keylenx[slot].store(key.keylenx(), Ordering::Relaxed);
                }
                for probe in &pool {
                    let want = sorted.partition_point(|&o| o < order(probe));
                    let found = search(leaf, perm, &Key::new(probe));
                    assert_eq!(found.pos, want, "n={n} probe={probe:?}");
                    let hit = sorted.get(want) == Some(&order(probe));
                    assert_eq!(found.slot.is_some(), hit, "n={n} probe={probe:?}");
                    if let Some(slot) = found.slot {
                        assert_eq!(slot, perm.get(want));
                    }
                }
            }
        }
    }
}
