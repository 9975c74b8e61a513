//! The node layer: what every operation shares about nodes.
//!
//! [`NodeRef`] (a node reached through the tree), the accessors that work on
//! a node of either kind ([`version`], [`parent_of`], [`layer_root`]), the
//! prefetch hints, and the descent and locking primitives that lookups,
//! writers and scans are built from: [`search`] (a key's place in a leaf),
//! [`reach_leaf`] (lock-free descent, `reach_leaf` in `masstree_struct.hh`),
//! [`advance`] (B-link move right after a failed validation),
//! [`lock_covering`]/[`find_locked`] (a writer's locked leaf) and
//! [`locked_parent`] (hand-over-hand, children before parents).

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::internode::Internode;
use crate::key::{Key, rank};
use crate::leaf::Leaf;
pub(crate) use crate::nodeversion::NodeBase;
use crate::nodeversion::{LockGuard, NodeVersion, Version};
use crate::permuter::Permuter;
use crate::sync::{AtomicPtr, Ordering, spin_loop};

/// A node reached through the tree: derefs for access, and keeps the pointer
/// as it was stored (with its full provenance), so that it can be stored again
/// or freed. A pointer rebuilt from a `&Leaf` could do neither.
pub(crate) struct NodeRef<'a, T> {
    ptr: NonNull<T>,
    _life: PhantomData<&'a T>,
}

impl<T> Clone for NodeRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for NodeRef<'_, T> {}

impl<T> NodeRef<'_, T> {
    /// # Safety
    /// `ptr` must point to a live node that outlives the chosen lifetime.
    #[inline]
    pub(crate) unsafe fn new(ptr: *mut T) -> Self {
        // SAFETY: the caller guarantees a live, hence non-null, node.
        NodeRef {
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            _life: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn as_ptr(self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<'a, T> NodeRef<'a, T> {
    /// The node, for all of `'a` (not only for the borrow of this handle):
    /// what a lock guard borrowing the node's version needs.
    #[inline]
    pub(crate) fn get(self) -> &'a T {
        // SAFETY: `new`'s caller guaranteed the node outlives `'a`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> core::ops::Deref for NodeRef<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `new`'s caller guaranteed the node outlives this reference.
        unsafe { self.ptr.as_ref() }
    }
}

/// Asks the CPU to start loading the cache lines of a node we are about to
/// search, so their misses overlap instead of following one another. Reads
/// no memory; a no-op where no prefetch instruction is wired up.
#[inline(always)]
pub(crate) fn prefetch_node(n: *const NodeBase) {
    // A leaf is the larger node; an internode is one line shorter, and the
    // extra prefetch touches nothing.
    for i in 0..size_of::<Leaf>() / 64 {
        prefetch_line(n.cast::<u8>().wrapping_add(64 * i));
    }
}

/// Starts loading the cache line at `p` (a hint; never faults, reads no
/// memory; a no-op where no prefetch instruction is wired up).
#[inline(always)]
pub(crate) fn prefetch_line(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(masstree_loom)))]
    // SAFETY: prefetching never faults and reads nothing observable.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(masstree_loom))))]
    let _ = p;
}

/// The version word of a node of either kind.
///
/// # Safety
/// `n` must point to a live leaf or internode that outlives `'a`.
#[inline]
pub(crate) unsafe fn version<'a>(n: *mut NodeBase) -> &'a NodeVersion {
    // SAFETY: both node kinds start with their version (`repr(C)`).
    unsafe { &(*n).version }
}

/// The parent link of a node of either kind.
///
/// # Safety
/// As [`version`].
#[inline]
pub(crate) unsafe fn parent_link<'a>(n: *mut NodeBase) -> &'a AtomicPtr<Internode> {
    // SAFETY: the leaf bit never changes, so the node kind read here is right.
    unsafe {
        if version(n).load().is_leaf() {
            &(*n.cast::<Leaf>()).parent
        } else {
            &(*n.cast::<Internode>()).parent
        }
    }
}

/// The parent of a node (null for a layer root).
///
/// # Safety
/// As [`version`].
#[inline]
pub(crate) unsafe fn parent_of(n: *mut NodeBase) -> *mut Internode {
    // SAFETY: the caller guarantees a live node.
    // Acquire: pairs with the Release in `set_parent`: a new parent (created by
    // a split) is fully built before we follow the link.
    unsafe { parent_link(n) }.load(Ordering::Acquire)
}

/// Sets a node's parent. Caller holds the lock of the (new or old) parent.
///
/// # Safety
/// As [`version`].
#[inline]
pub(crate) unsafe fn set_parent(n: *mut NodeBase, p: *mut Internode) {
    // SAFETY: the caller guarantees a live node.
    // Release: publishes the new parent's contents; pairs with `parent_of`.
    unsafe { parent_link(n) }.store(p, Ordering::Release);
}

/// Climbs from a node that may have lost its root bit to the root of its layer.
///
/// # Safety
/// `n` must be a live node of a live layer, under a guard.
#[inline]
pub(crate) unsafe fn layer_root(mut n: *mut NodeBase) -> *mut NodeBase {
    // SAFETY: nodes reachable through parent links live as long as the guard.
    unsafe {
        while !version(n).load().is_root() {
            let p = parent_of(n);
            if p.is_null() {
                break;
            }
            n = p.cast();
        }
    }
    n
}

/// The root of the layer of `n` (climbing from a node that may have lost
/// its root bit), with its stable version.
///
/// # Safety
/// As [`layer_root`].
#[inline]
pub(crate) unsafe fn stable_root(mut n: *mut NodeBase) -> (*mut NodeBase, Version) {
    // SAFETY: nodes reachable through parent links live as long as the guard.
    unsafe {
        let mut v = version(n).stable();
        while !v.is_root() {
            let p = parent_of(n);
            if p.is_null() {
                break;
            }
            n = p.cast();
            v = version(n).stable();
        }
        (n, v)
    }
}

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
/// It branches, unlike the internode search: on real path-like keys a get
/// crosses many small leaves where this loop ends after a step or two,
/// which a fixed number of conditional-move steps would not (see
/// ARCHITECTURE.md, "Performance").
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
            prefetch_node(root);
            let (mut n, mut v) = stable_root(root);
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
            let next = leaf.next_leaf();
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
    let mut lock = leaf.get().version.lock();
    if lock.current().is_deleted() {
        return None;
    }
    if v.has_split(lock.current()) {
        // Keys at or above a right sibling's `low` moved there: follow the
        // links, locking hand-over-hand, left to right.
        loop {
            let next = leaf.next_leaf();
            // SAFETY: linked leaves live while the guard does; `low` is immutable.
            if next.is_null() || ikey < unsafe { (*next).low } {
                break;
            }
            // SAFETY: as above.
            let next = unsafe { NodeRef::<'a, Leaf>::new(next) };
            // SAFETY: as above.
            let next_lock = next.get().version.lock();
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

/// Locks the parent of `n`, re-checking the link after locking (a concurrent
/// split of the parent may have moved `n` to a new internode).
///
/// # Safety
/// `n` is a live node that the caller has locked; the caller holds a guard.
pub(crate) unsafe fn locked_parent<'a>(
    n: *mut NodeBase,
) -> Option<(NodeRef<'a, Internode>, LockGuard<'a>)> {
    loop {
        // SAFETY: parents of live nodes are live while the guard lives.
        let p = unsafe { parent_of(n) };
        if p.is_null() {
            return None;
        }
        // SAFETY: as above.
        let p = unsafe { NodeRef::<'a, Internode>::new(p) };
        // SAFETY: as above; the lock borrows the parent's version.
        let lock = p.get().version.lock();
        // SAFETY: as above.
        if unsafe { parent_of(n) } == p.as_ptr() {
            return Some((p, lock));
        }
    }
}

/// Levels a layer can have: 2^64 ikeys in internodes of at least 8 children
/// (every split leaves both halves at least half full) need fewer than 24.
pub(crate) const MAX_LEVELS: usize = 24;

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;
    use crate::key::rank;
    use crate::permuter::Permuter;
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
