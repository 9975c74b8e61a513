//! Insert (`masstree_insert.hh`, `masstree_tcursor.hh`).
//!
//! A writer locks the leaf that covers its key (moving right if a split got
//! there first), then either replaces a value word in place, descends into the
//! next layer, turns a colliding suffixed key into a new layer, or fills a free
//! slot and publishes it with one permutation store. A full leaf splits
//! (see [`crate::split`]).

use core::ptr::NonNull;

use crate::backend::{AllocError, NodeAllocatorGeneric};
use crate::key::{KSUF, LAYER, SLICE, common_prefix, ikey_of};
use crate::leaf::{LAYER_ROOT, Leaf};
use crate::locate::{Hint, Located};
use crate::node::{NodeBase, NodeRef};
use crate::nodeversion::LockGuard;
use crate::permuter::WIDTH;
use crate::raw::RawTree;
use crate::suffix::Suffix;
use crate::sync::NARROW;

/// What an insert found.
pub(crate) enum Inserted {
    /// The key was new.
    New,
    /// The key existed; this was its value word (now unlinked, to be retired).
    Replaced(*mut ()),
}

impl<A: NodeAllocatorGeneric> RawTree<A> {
    /// Inserts or replaces, starting at `hint`'s leaf if there is one. On
    /// allocation failure nothing visible changed (at most a colliding key
    /// was moved, intact, into a new layer).
    ///
    /// # Safety
    /// The caller holds `guard`, a guard of this tree's backend; `word` is a
    /// value word the tree may own from now on (if `Ok`); a hint comes from
    /// a lookup of `full` under `guard`.
    pub(crate) unsafe fn insert(
        &self,
        full: &[u8],
        word: *mut (),
        hint: Option<Hint>,
        guard: &A::Guard<'_>,
    ) -> Result<Inserted, AllocError> {
        // SAFETY: the caller's guarantees.
        let at =
            unsafe { self.locate_from(full, true, hint, guard) }?.expect("locate makes the root");
        if at.current().is_some() {
            return Ok(Inserted::Replaced(self.replace(&at, word)));
        }
        self.add(at, word)?;
        Ok(Inserted::New)
    }

    /// Moves the suffixed key in `slot` down, because `incoming`, another key
    /// with the same slice, arrived (`rest` is the part of it past the slice).
    /// Builds, privately and in one pass, the chain of one-entry layers for
    /// the slices both keys still share, with the old key at its bottom, and
    /// publishes it with one store into the slot. Returns the chain's top.
    ///
    /// The old key's bytes are copied once, into a record for what is left
    /// past the chain: keys sharing `L` bytes cost `O(L)` time and memory.
    pub(crate) fn make_layer(
        &self,
        leaf: &Leaf,
        lock: &LockGuard<'_>,
        slot: usize,
        old: NodeRef<'_, Suffix>,
        incoming: &[u8],
        guard: &A::Guard<'_>,
    ) -> Result<*mut NodeBase, AllocError> {
        // SAFETY: `old` is the live record of `slot`.
        let rest = unsafe { Suffix::bytes(old.as_ptr()) };
        // Layer `j` of the chain holds the old key's slice `j`; it leads on
        // into layer `j + 1` while both keys share that slice and go past it.
        let shared = common_prefix(rest, incoming) / SLICE;
        let depth = shared.min((rest.len().min(incoming.len()) - 1) / SLICE);
        let bottom_rest = &rest[SLICE * depth..];
        let value = old.value();
        let (keylenx, word) = if bottom_rest.len() > SLICE {
            (KSUF, self.new_suffix(&bottom_rest[SLICE..], value)?.cast())
        } else {
            (bottom_rest.len() as u8, value)
        };
        // Bottom-up: each new layer's one entry leads to the one built before.
        let mut top: *mut NodeBase = core::ptr::null_mut();
        for j in (0..=depth).rev() {
            let p = match self.alloc.alloc_leaf() {
                Ok(p) => p,
                Err(e) => {
                    // SAFETY: the chain and record were never published.
                    unsafe { self.free_chain(top, keylenx, word) };
                    return Err(e);
                }
            };
            // SAFETY: fresh memory, private until the slot store below publishes it.
            let layer = unsafe { Leaf::init_at(p, LAYER_ROOT, 0) };
            // SAFETY: as above.
            let l = unsafe { layer.as_ref() };
            if top.is_null() {
                l.set_slot(0, ikey_of(bottom_rest), keylenx, word);
            } else {
                l.set_slot(0, ikey_of(&rest[SLICE * j..]), LAYER, top.cast());
            }
            l.permutation.publish(crate::permuter::Permuter::sorted(1));
            top = layer.as_ptr().cast();
        }

        lock.mark_insert();
        // Order matters for lock-free readers, which read the word first and
        // then the keylenx: keylenx first here, so a reader that sees the new
        // word (Release/Acquire) also sees LAYER, and one that sees KSUF has the
        // old record's word. Either way it validates before using them.
        leaf.set_keylenx(slot, LAYER);
        leaf.set_value(slot, top.cast());
        // SAFETY: the record is unlinked from the slot; readers that loaded it
        // hold guards. Its value word now belongs to the chain's bottom.
        unsafe {
            self.alloc
                .retire_suffix(core::ptr::NonNull::new_unchecked(old.as_ptr()), guard)
        };
        Ok(top)
    }

    /// Frees a chain of one-entry layers that [`Self::make_layer`] built but
    /// could not publish (`top` may be null: none built), and the bottom
    /// entry's suffix record (`keylenx`, `word`), but not the value word,
    /// which still belongs to the old record.
    ///
    /// # Safety
    /// The chain and the record are private to the caller.
    unsafe fn free_chain(&self, mut top: *mut NodeBase, keylenx: u8, word: *mut ()) {
        while !top.is_null() {
            let leaf = top.cast::<Leaf>();
            // SAFETY: the caller's guarantees: a private leaf with one entry.
            unsafe {
                top = if (*leaf).keylenx(0) == LAYER {
                    (*leaf).value(0).cast()
                } else {
                    core::ptr::null_mut()
                };
                self.alloc.free_leaf(NonNull::new_unchecked(leaf));
            }
        }
        if keylenx == KSUF {
            // SAFETY: the caller's guarantees.
            unsafe { self.alloc.free_suffix(NonNull::new_unchecked(word.cast())) };
        }
    }

    /// Replaces the value word of a present key; returns the old one (the
    /// caller retires it).
    pub(crate) fn replace(&self, at: &Located<'_>, word: *mut ()) -> *mut () {
        match (at.record, at.slot) {
            (Some(s), _) => s.replace_value(word),
            (None, Some(slot)) => at.leaf.replace_value(slot, word),
            (None, None) => unreachable!("replace of an absent key"),
        }
    }

    /// Adds an absent key with value `word`, splitting the leaf if it is full.
    /// Unlocks the leaf. On `Err` nothing changed and `word` is still the
    /// caller's.
    pub(crate) fn add(&self, at: Located<'_>, word: *mut ()) -> Result<(), AllocError> {
        debug_assert!(at.slot.is_none());
        let key = at.key;
        let stored = if key.has_suffix() {
            self.new_suffix(key.suffix(), word)?.cast()
        } else {
            word
        };
        if at.perm.len() < WIDTH {
            let mut p = at.perm;
            let slot = p.insert_from_back(at.pos);
            // The slot is free in every permutation a reader can hold
            // under its version (see ARCHITECTURE.md): no dirty mark needed,
            // unless the permutation is stored in two halves, which a reader
            // could see one of: the mark then fails its validation.
            if NARROW {
                at.lock.mark_insert();
            }
            at.leaf.set_slot(slot, key.ikey(), key.keylenx(), stored);
            at.leaf.permutation.publish(p);
            drop(at.lock);
        } else if let Err(e) =
            self.split_insert(at.leaf, at.lock, at.pos, key.ikey(), key.keylenx(), stored)
        {
            if key.has_suffix() {
                // SAFETY: the record was never published.
                unsafe {
                    self.alloc
                        .free_suffix(NonNull::new_unchecked(stored.cast()))
                };
            }
            return Err(e);
        }
        self.len.add(1);
        Ok(())
    }
}
