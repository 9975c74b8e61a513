//! Lock-free lookup (`masstree_get.hh`, `reach_leaf` in `masstree_struct.hh`).
//!
//! Readers never write shared memory. They descend with versions: read a
//! child pointer, take the child's stable version, then check that the parent
//! did not change meanwhile. At the leaf they read slots, then validate; a
//! split since their version sends them right along the leaf links (B-link).

use crate::backend::NodeAllocatorGeneric;
use crate::key::Key;
use crate::leaf::{Leaf, SlotKind, slot_kind};
use crate::node::{advance, reach_leaf, search};
use crate::raw::RawTree;
use crate::suffix::Suffix;
use crate::sync::spin_loop;

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
