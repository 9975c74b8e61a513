//! Splits (`masstree_split.hh`).
//!
//! Before a full leaf changes, the ancestors its split will change are
//! locked bottom-up (every full one, and the first that is not full) and the
//! nodes the split needs are allocated; if one cannot be, the locks are
//! dropped unmarked and nothing changed. Then the leaf is marked `SPLITTING`:
//! the upper keys move to a new right sibling that starts locked (a copy of
//! the left's version), the sibling is linked into the leaf list, and the
//! separator goes into the (already locked) parent before the children are
//! released. A full parent splits the same way; a split root gets a new root
//! above it. Readers that meet a splitting node wait in `stable()`, and
//! readers that validated before the split see `VSPLIT` change and move right
//! along the leaf links.

use core::ptr::NonNull;

use crate::backend::{AllocError, NodeAllocatorGeneric};
use crate::internode::{IWIDTH, Internode, PAST_END};
use crate::leaf::Leaf;
use crate::leaflink;
use crate::node::{MAX_LEVELS, NodeBase, NodeRef, locked_parent, parent_of, set_parent, version};
use crate::nodeversion::{LockGuard, NodeVersion, ROOT};
use crate::permuter::{Permuter, WIDTH};
use crate::raw::RawTree;
use crate::sync::Ordering;

/// Where to cut `WIDTH + 1` sorted entries (the leaf's plus the new one at
/// `pos`): `[0, m)` stay, `[m, WIDTH]` move. Entries with the same ikey must
/// stay together (internodes route by ikey alone). An append at the far end
/// (sequential inserts) moves only the new key, leaving the left leaf full.
fn split_point(ikey_at: impl Fn(usize) -> u64, pos: usize) -> usize {
    let ok = |m: usize| ikey_at(m - 1) != ikey_at(m);
    if pos == WIDTH && ok(WIDTH) {
        return WIDTH;
    }
    let mid = WIDTH.div_ceil(2);
    // Search outward from the middle; at most 10 entries share an ikey
    // (lengths 0..=8 and one longer key), so a cut always exists.
    (0..WIDTH)
        .flat_map(|d| [mid + d, mid.wrapping_sub(d)])
        .find(|&m| (1..=WIDTH).contains(&m) && ok(m))
        .expect("16 entries always hold two distinct ikeys")
}

/// The ancestors a split will change, locked before anything changes: every
/// full ancestor from the leaf's parent up, and the first one that is not
/// full. Locking bottom-up while holding the leaf's lock is the order every
/// split and remove takes, so it cannot deadlock. While they are locked no
/// other writer can fill or split them, so the count of internodes the split
/// needs (one per full ancestor, plus a new root if all are full) is exact.
struct Path<'a> {
    /// Locked ancestors, nearest first: `nodes[next..len]` are not yet used.
    nodes: [Option<(NodeRef<'a, Internode>, LockGuard<'a>)>; MAX_LEVELS],
    len: usize,
    next: usize,
    /// Internodes the split will allocate.
    need: usize,
    /// Those internodes, once reserved.
    spares: Spares,
}

impl<'a> Path<'a> {
    /// Locks the ancestors of the locked node `n` that a split of `n` changes.
    ///
    /// # Safety
    /// `n` is a live node that the caller has locked; the caller holds a guard.
    unsafe fn lock(mut n: *mut NodeBase) -> Self {
        let mut path = Path {
            nodes: [const { None }; MAX_LEVELS],
            len: 0,
            next: 0,
            need: 1,
            spares: Spares::EMPTY,
        };
        // SAFETY: `n` and then each ancestor is live and locked by us.
        while let Some((p, lock)) = unsafe { locked_parent(n) } {
            let full = p.nkeys() == IWIDTH;
            n = p.as_ptr().cast();
            path.nodes[path.len] = Some((p, lock));
            path.len += 1;
            if !full {
                path.need -= 1;
                break;
            }
            path.need += 1;
        }
        path
    }

    /// The next ancestor up, with its lock; `None` above the layer's root.
    fn pop(&mut self) -> Option<(NodeRef<'a, Internode>, LockGuard<'a>)> {
        if self.next == self.len {
            return None;
        }
        self.next += 1;
        self.nodes[self.next - 1].take()
    }
}

/// The internodes a split needs, allocated before anything changes.
struct Spares {
    nodes: [*mut Internode; MAX_LEVELS],
    len: usize,
}

impl Spares {
    const EMPTY: Spares = Spares {
        nodes: [core::ptr::null_mut(); MAX_LEVELS],
        len: 0,
    };

    /// Allocates `need` internodes, or none.
    fn reserve<A: NodeAllocatorGeneric>(alloc: &A, need: usize) -> Result<Spares, AllocError> {
        let mut spares = Spares::EMPTY;
        for _ in 0..need {
            match alloc.alloc_internode() {
                Ok(p) => {
                    spares.nodes[spares.len] = p.as_ptr();
                    spares.len += 1;
                }
                Err(e) => {
                    spares.release(alloc);
                    return Err(e);
                }
            }
        }
        Ok(spares)
    }

    /// A reserved internode.
    fn take(&mut self) -> NonNull<Internode> {
        // The path was locked when the need was counted: it is exact.
        assert!(
            self.len > 0,
            "a split used more internodes than it reserved"
        );
        self.len -= 1;
        // SAFETY: reserved pointers are non-null allocations.
        unsafe { NonNull::new_unchecked(self.nodes[self.len]) }
    }

    /// Frees what was not used.
    fn release<A: NodeAllocatorGeneric>(&mut self, alloc: &A) {
        while self.len > 0 {
            self.len -= 1;
            // SAFETY: reserved, never initialized nor published.
            unsafe { alloc.free_internode(NonNull::new_unchecked(self.nodes[self.len])) };
        }
    }
}

impl<A: NodeAllocatorGeneric> RawTree<A> {
    /// Inserts a new entry into the full, locked `leaf` by splitting it.
    /// On `Err` nothing changed.
    pub(crate) fn split_insert(
        &self,
        leaf: NodeRef<'_, Leaf>,
        lock: LockGuard<'_>,
        pos: usize,
        ikey: u64,
        keylenx: u8,
        word: *mut (),
    ) -> Result<(), AllocError> {
        let perm = leaf.permutation.load();
        debug_assert_eq!(perm.len(), WIDTH);
        // Entry `i` of the virtual sorted array of WIDTH + 1 entries.
        let old_slot = |i: usize| perm.get(if i < pos { i } else { i - 1 });
        let ikey_at = |i: usize| {
            if i == pos {
                ikey
            } else {
                leaf.ikey(old_slot(i))
            }
        };
        let m = split_point(ikey_at, pos);
        // Read before the slots change below.
        let sep = ikey_at(m);

        // Everything the split needs, before anything changes: the
        // ancestors it changes, locked, and the nodes it adds. On failure the
        // locks are dropped unmarked, which leaves every version as it was.
        // SAFETY: we hold the leaf's lock and a guard.
        let mut path = unsafe { Path::lock(leaf.as_ptr().cast()) };
        path.spares = Spares::reserve(&self.alloc, path.need)?;
        let rp = match self.alloc.alloc_leaf() {
            Ok(p) => p,
            Err(e) => {
                path.spares.release(&self.alloc);
                return Err(e);
            }
        };
        lock.mark_split();
        // SAFETY: fresh memory; the right leaf is private until linked below,
        // and starts locked (a copy of our locked, splitting version).
        unsafe { Leaf::init_locked_at(rp, lock.current(), sep) };
        // SAFETY: initialized above, lives until retired.
        let right = unsafe { rp.as_ref() };
        // SAFETY: we own the lock bit that `init_locked_at` set.
        let rlock = unsafe { right.version.adopt_lock() };
        for (to, i) in (m..=WIDTH).enumerate() {
            if i == pos {
                right.set_slot(to, ikey, keylenx, word);
            } else {
                leaf.copy_slot(old_slot(i), right, to);
            }
        }
        right.permutation.publish(Permuter::sorted(WIDTH + 1 - m));
        // Relaxed: the parent link is read only under locks or after the link
        // below (Release) publishes the leaf.
        right
            .parent
            .store(leaf.parent.load(Ordering::Relaxed), Ordering::Relaxed);

        // SAFETY: `rp` is built and stays allocated until retired.
        leaflink::link_split(leaf, unsafe { NodeRef::new(rp.as_ptr()) });

        let mut p = perm;
        if pos < m {
            p.truncate(m - 1);
            let slot = p.insert_from_back(pos);
            // The slot we reuse moved right; `leaf` is marked splitting, so no
            // reader can validate a read of it.
            leaf.set_slot(slot, ikey, keylenx, word);
        } else {
            p.truncate(m);
        }
        leaf.permutation.publish(p);

        self.insert_into_parent(
            leaf.as_ptr().cast(),
            lock,
            rp.as_ptr().cast(),
            rlock,
            sep,
            &mut path,
        );
        debug_assert_eq!(path.spares.len, 0, "the reservation is exact");
        path.spares.release(&self.alloc);
        Ok(())
    }

    /// Puts `right` (new sibling of `left`, separated at `sep`) into the parent,
    /// splitting upward as needed. Both children are locked and marked
    /// splitting; they are unlocked once the parent holds the separator.
    /// `path` holds the ancestors, locked, and the internodes the split needs.
    fn insert_into_parent<'a>(
        &self,
        mut left: *mut NodeBase,
        mut llock: LockGuard<'a>,
        mut right: *mut NodeBase,
        mut rlock: LockGuard<'a>,
        mut sep: u64,
        path: &mut Path<'a>,
    ) {
        loop {
            let Some((parent, plock)) = path.pop() else {
                self.grow_root(left, &llock, right, sep, &mut path.spares);
                return;
            };
            debug_assert_eq!(
                // SAFETY: `left` is live and locked by us.
                unsafe { parent_of(left) },
                parent.as_ptr(),
                "a locked node keeps its parent"
            );
            let pp = parent.as_ptr();
            // SAFETY: `right` is ours (locked); its parent is read under locks.
            unsafe { set_parent(right, pp) };
            let n = parent.nkeys();
            let k = (0..=n)
                .find(|&i| parent.child(i) == left)
                .expect("a locked parent lists its child");
            if n < IWIDTH {
                plock.mark_insert();
                for i in (k..n).rev() {
                    parent.set_ikey(i + 1, parent.ikey(i));
                    parent.set_child(i + 2, parent.child(i + 1));
                }
                parent.set_ikey(k, sep);
                parent.set_child(k + 1, right);
                parent.set_nkeys(n + 1);
                drop(plock);
                drop(rlock);
                drop(llock);
                return;
            }
            // The parent is full: split it too.
            plock.mark_split();
            let mut keys = [0u64; IWIDTH + 1];
            let mut kids = [core::ptr::null_mut::<NodeBase>(); IWIDTH + 2];
            for (i, key) in keys.iter_mut().enumerate() {
                *key = match i {
                    _ if i < k => parent.ikey(i),
                    _ if i == k => sep,
                    _ => parent.ikey(i - 1),
                };
            }
            for (i, kid) in kids.iter_mut().enumerate() {
                *kid = match i {
                    _ if i <= k => parent.child(i),
                    _ if i == k + 1 => right,
                    _ => parent.child(i - 1),
                };
            }
            let half = IWIDTH / 2;
            let np = path.spares.take();
            // SAFETY: fresh memory, private until published in the grandparent;
            // starts locked (a copy of the parent's locked, splitting version).
            unsafe { Internode::init_locked_at(np, plock.current()) };
            // SAFETY: initialized above.
            let new = unsafe { np.as_ref() };
            // SAFETY: we own the lock bit `init_locked_at` set.
            let nlock = unsafe { new.version.adopt_lock() };
            for i in 0..half {
                parent.set_ikey(i, keys[i]);
                new.set_ikey(i, keys[half + 1 + i]);
            }
            for i in half..IWIDTH {
                parent.set_ikey(i, PAST_END);
            }
            for i in 0..=half {
                parent.set_child(i, kids[i]);
                new.set_child(i, kids[half + 1 + i]);
                // SAFETY: children are live; their parent links change under
                // the lock of the parent that lists them (ours, both halves).
                unsafe { set_parent(kids[half + 1 + i], np.as_ptr()) };
            }
            parent.set_nkeys(half);
            new.set_nkeys(half);
            // Relaxed: read under locks only, and published by unlock.
            new.parent
                .store(parent.parent.load(Ordering::Relaxed), Ordering::Relaxed);
            drop(rlock);
            drop(llock);
            (left, llock, right, rlock, sep) =
                (pp.cast(), plock, np.as_ptr().cast(), nlock, keys[half]);
        }
    }

    /// `left`, the root of its layer, split: put a new root above it.
    fn grow_root(
        &self,
        left: *mut NodeBase,
        llock: &LockGuard<'_>,
        right: *mut NodeBase,
        sep: u64,
        spares: &mut Spares,
    ) {
        let np = spares.take();
        // SAFETY: fresh memory, private until the parent links below publish it.
        unsafe { Internode::init_at(np, NodeVersion::new(ROOT)) };
        // SAFETY: initialized above.
        let root = unsafe { np.as_ref() };
        root.set_ikey(0, sep);
        root.set_child(0, left);
        root.set_child(1, right);
        root.set_nkeys(1);
        // SAFETY: both children are live and locked by us.
        unsafe {
            set_parent(left, np.as_ptr());
            set_parent(right, np.as_ptr());
        }
        // Clearing ROOT (a split-class change) sends readers that started at
        // `left` up through the parent link set above.
        llock.set_root(false);
        debug_assert!(!unsafe { version(right) }.load().is_root());
        // Release: publishes the new root to readers of the tree root; fails
        // harmlessly when `left` is the root of a lower layer (readers climb).
        let _ = self.root.compare_exchange(
            left,
            np.as_ptr().cast(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }
}
