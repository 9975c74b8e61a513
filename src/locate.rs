//! Finding a key's place with its leaf locked (`masstree_tcursor.hh`): the
//! [`Located`] place that insert ([`RawTree::add`], [`RawTree::replace`]),
//! remove ([`RawTree::remove_at`]) and the atomic updates work on.

use core::ptr;

use crate::backend::{AllocError, NodeAllocatorGeneric};
use crate::key::Key;
use crate::leaf::{Leaf, SlotKind, slot_kind};
use crate::node::{NodeBase, NodeRef, layer_root, lock_covering, reach_leaf, search};
use crate::nodeversion::{LockGuard, Version};
use crate::permuter::Permuter;
use crate::raw::RawTree;
use crate::suffix::Suffix;
use crate::sync::spin_loop;

/// Runs user code (an `update` or `get_or_insert_with` closure) while this
/// thread holds a leaf lock of the tree at `tree`. In debug builds with
/// `std`, a write to that tree from inside `f` (which would wait for that
/// lock forever) panics instead; see [`check_reentry`].
pub(crate) fn holding_lock<R>(tree: *const (), f: impl FnOnce() -> R) -> R {
    #[cfg(all(debug_assertions, feature = "std"))]
    {
        struct Restore(usize);
        impl Drop for Restore {
            fn drop(&mut self) {
                HOLDING.with(|h| h.set(self.0));
            }
        }
        let _restore = Restore(HOLDING.with(|h| h.replace(tree.addr())));
        f()
    }
    #[cfg(not(all(debug_assertions, feature = "std")))]
    {
        let _ = tree;
        f()
    }
}

#[cfg(all(debug_assertions, feature = "std"))]
std::thread_local! {
    /// The address of the tree whose leaf lock this thread holds while user
    /// code runs (0: none).
    static HOLDING: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// Panics (debug builds with `std`) if this thread is inside user code that
/// holds a leaf lock of the tree at `tree`: the write would deadlock.
#[inline]
#[track_caller]
pub(crate) fn check_reentry(tree: *const ()) {
    #[cfg(all(debug_assertions, feature = "std"))]
    assert!(
        HOLDING.with(|h| h.get()) != tree.addr(),
        "masstree: write to a tree from inside its own `update` or `get_or_insert_with` \
         closure, which holds a leaf lock the write would wait for forever; \
         write after the closure returns"
    );
    #[cfg(not(all(debug_assertions, feature = "std")))]
    let _ = tree;
}

/// A key's place in its leaf, with the leaf locked.
pub(crate) struct Located<'a> {
    pub(crate) leaf: NodeRef<'a, Leaf>,
    pub(crate) lock: LockGuard<'a>,
    pub(crate) perm: Permuter,
    pub(crate) pos: usize,
    /// The entry's slot, if the key is present.
    pub(crate) slot: Option<usize>,
    /// The suffix record of a present suffixed key (it holds the value word).
    pub(crate) record: Option<NodeRef<'a, Suffix>>,
    /// The key, at the layer of `leaf`.
    pub(crate) key: Key<'a>,
    /// That layer's depth (0 for the top).
    pub(crate) depth: usize,
}

impl Located<'_> {
    /// The key's value word, if present.
    pub(crate) fn current(&self) -> Option<*mut ()> {
        match (self.slot, self.record) {
            (_, Some(s)) => Some(s.value()),
            (Some(slot), None) => Some(self.leaf.value(slot)),
            (None, _) => None,
        }
    }
}

/// Where a lookup of a key ended: the leaf that covered the key's slice at
/// stable version `v`, in the key's layer `depth`. A batched lookup
/// ([`RawTree::get_batch`]) leaves one per key, so that the write that
/// follows can lock that leaf instead of descending again
/// ([`RawTree::locate_from`]).
#[derive(Clone, Copy)]
pub(crate) struct Hint {
    pub(crate) leaf: *const Leaf,
    pub(crate) v: Version,
    pub(crate) depth: usize,
}

/// The root of the next layer down if, at `v`, the key's slot in `leaf`
/// holds a layer whose root is the one it points to. `None` whenever anything
/// else holds (no such slot, a value or suffix there, a changed, deleted or
/// split leaf, a layer root that split and is to be repointed): the caller
/// then locks the leaf and takes the locked path, which handles all of those.
///
/// # Safety
/// `leaf` covered the key's slice at its stable version `v` (as
/// [`reach_leaf`] returns them), and the caller holds a guard.
#[inline]
unsafe fn passing_layer(leaf: &Leaf, v: Version, key: &Key<'_>) -> Option<*mut NodeBase> {
    if v.is_deleted() {
        return None;
    }
    let slot = search(leaf, leaf.permutation.load(), key).slot?;
    // The word before the keylenx, as in `get`: see `insert::make_layer`.
    let word = leaf.value(slot);
    let kind = slot_kind(leaf.keylenx(slot));
    if kind != SlotKind::Layer || leaf.version.has_changed(v) {
        return None;
    }
    // SAFETY: a validated layer word points into a live layer.
    (unsafe { layer_root(word.cast()) } == word.cast()).then_some(word.cast())
}

impl<A: NodeAllocatorGeneric> RawTree<A> {
    /// Walks the layers to the leaf that holds (or would hold) `full`, and
    /// locks it. With `make_layers`, a suffixed key that shares the slice but
    /// not the suffix is moved into a new layer on the way (the tree's content
    /// does not change); without, the key is reported absent there.
    ///
    /// # Safety
    /// The caller holds `guard`, a guard of this tree's backend, for `'a`.
    pub(crate) unsafe fn locate<'a>(
        &self,
        full: &'a [u8],
        make_layers: bool,
        guard: &A::Guard<'_>,
    ) -> Result<Option<Located<'a>>, AllocError> {
        // SAFETY: the caller's guarantees; no hint.
        unsafe { self.locate_from(full, make_layers, None, guard) }
    }

    /// [`Self::locate`], starting at `hint`'s leaf rather than at the top
    /// if there is one. The leaf may have split, been emptied or lost its
    /// layer since: locking it checks, as after any descent, and moves right
    /// or starts again from the top.
    ///
    /// # Safety
    /// As [`Self::locate`]; a hint comes from a lookup of `full` in this tree
    /// under `guard`, held since.
    pub(crate) unsafe fn locate_from<'a>(
        &self,
        full: &'a [u8],
        make_layers: bool,
        mut hint: Option<Hint>,
        guard: &A::Guard<'_>,
    ) -> Result<Option<Located<'a>>, AllocError> {
        check_reentry(ptr::from_ref(self).cast());
        'top: loop {
            let mut key = Key::new(full);
            let mut root = if make_layers {
                self.root_or_init()?
            } else {
                self.top_root()
            };
            if root.is_null() {
                return Ok(None);
            }
            let mut depth = 0;
            let mut start = None;
            if let Some(h) = hint.take() {
                key = Key::at_depth(full, h.depth);
                depth = h.depth;
                // SAFETY: the caller's guarantee: the hint's leaf was read
                // from this tree under the guard we still hold.
                start = Some((unsafe { NodeRef::new(h.leaf.cast_mut()) }, h.v));
            }
            loop {
                let (leaf, v) = if let Some(at) = start.take() {
                    at
                } else {
                    // Through a layer the key only passes through, go down
                    // as a reader does, without locking: writers into the
                    // same deeper layers (keys with a common prefix) would
                    // otherwise all take this leaf's lock, one after another.
                    // SAFETY: `root` is a node of a live layer; we hold a guard.
                    let (leaf, v) = unsafe { reach_leaf(root, key.ikey()) };
                    // A key that ends in this slice cannot pass into a
                    // layer (its rank sorts it before a layer slot's): no
                    // search to waste before the one under the lock.
                    let lower = if key.has_suffix() {
                        // SAFETY: `reach_leaf`'s leaf and version; we hold a guard.
                        unsafe { passing_layer(&leaf, v, &key) }
                    } else {
                        None
                    };
                    if let Some(lower) = lower {
                        root = lower;
                        key.shift();
                        depth += 1;
                        continue;
                    }
                    (leaf, v)
                };
                // Lock the leaf just reached rather than descending again.
                // SAFETY: `reach_leaf`'s leaf and version, or the hint's,
                // which a lookup validated the same way; we hold a guard.
                let Some((leaf, lock)) = (unsafe { lock_covering(leaf, v, key.ikey()) }) else {
                    // Removed under us (a leaf, or a whole layer): start
                    // over, letting the remover finish its routing first.
                    spin_loop();
                    continue 'top;
                };
                let perm = leaf.permutation.load();
                let at = search(&leaf, perm, &key);
                let mut found = Located {
                    leaf,
                    lock,
                    perm,
                    pos: at.pos,
                    slot: at.slot,
                    record: None,
                    key,
                    depth,
                };
                let Some(slot) = at.slot else {
                    return Ok(Some(found));
                };
                let stored = leaf.value(slot);
                match slot_kind(leaf.keylenx(slot)) {
                    SlotKind::Value => return Ok(Some(found)),
                    SlotKind::Layer => {
                        // SAFETY: a layer word under the lock points into a live layer.
                        let real = unsafe { layer_root(stored.cast()) };
                        if real.cast() != stored {
                            // The layer's root split: repoint the slot (either
                            // pointer leads readers to the right root).
                            leaf.set_value(slot, real.cast());
                        }
                        root = real;
                    }
                    SlotKind::Suffix => {
                        // SAFETY: suffix records of live slots are live.
                        let s = unsafe { NodeRef::new(Leaf::suffix_of(stored)) };
                        // SAFETY: as above.
                        if unsafe { Suffix::bytes(s.as_ptr()) } == key.suffix() {
                            found.record = Some(s);
                            return Ok(Some(found));
                        }
                        if !make_layers {
                            found.slot = None;
                            return Ok(Some(found));
                        }
                        root = self.make_layer(
                            &found.leaf,
                            &found.lock,
                            slot,
                            s,
                            key.suffix(),
                            guard,
                        )?;
                    }
                }
                drop(found);
                key.shift();
                depth += 1;
            }
        }
    }
}
