//! Batched lookups: interleaved descents (asynchronous memory access
//! chaining, "AMAC").
//!
//! A lookup in a large tree waits on a chain of cache misses, one per node,
//! each depending on the last. Lookups of different keys are independent,
//! so a batch keeps [`WINDOW`] of them in flight: each step of a lookup
//! visits the node whose lines it prefetched at its previous step, finds the
//! next node, prefetches it and yields to the next lookup, whose node has
//! had a round's time to arrive. The misses of the window overlap instead of
//! following one another.
//!
//! Each lookup is exactly [`RawTree::get`] cut at its node boundaries: the
//! same stable versions, in the same order (a child's version is taken
//! before its parent's is validated), the same restarts and moves right. So
//! each lookup is linearizable on its own, as a `get` would be; the batch as
//! a whole is not a snapshot.

use crate::backend::NodeAllocatorGeneric;
use crate::internode::Internode;
use crate::key::Key;
use crate::leaf::{Leaf, SlotKind, slot_kind};
use crate::locate::Hint;
use crate::node::{
    NodeBase, NodeRef, advance, prefetch_line, prefetch_node, search, stable_root, version,
};
use crate::nodeversion::Version;
use crate::raw::RawTree;
use crate::suffix::Suffix;
use crate::sync::spin_loop;
use crate::tree::{Tree, out_of_memory};
use crate::value::ValueStorage;

/// Lookups in flight at once. Enough to cover a DRAM miss with the work of
/// the others' steps (a step costs some 20-40 ns, a miss 80-100 ns) without
/// the window's prefetched lines evicting each other from L1.
pub(crate) const WINDOW: usize = 16;

/// Where a lookup is.
#[derive(Clone, Copy)]
enum At {
    /// At the start, or starting again: layer 0's root, whole key.
    Top,
    /// At a node (prefetched) of the current layer whose root is `root`.
    Root(*mut NodeBase),
    /// Going down from `parent`, stable at `pv`, to `child` (prefetched).
    Child {
        root: *mut NodeBase,
        parent: *const Internode,
        pv: Version,
        child: *mut NodeBase,
    },
    /// At a key's suffix record (prefetched), to compare the rest of the key.
    Suffix(*const Suffix),
}

/// One lookup of a batch.
struct Probe<'k> {
    full: &'k [u8],
    key: Key<'k>,
    index: usize,
    at: At,
    /// The last leaf that covered the key, validated: where a write of the
    /// key would start ([`RawTree::locate_from`]).
    hint: Option<Hint>,
}

impl<'k> Probe<'k> {
    fn new(full: &'k [u8], index: usize) -> Self {
        Probe {
            full,
            key: Key::new(full),
            index,
            at: At::Top,
            hint: None,
        }
    }

    /// Runs the lookup to its next prefetch: `None` while it goes on, the
    /// value word (or its absence) when done.
    ///
    /// # Safety
    /// The caller holds a guard of `tree`'s backend, and has held it since
    /// this lookup started.
    #[inline]
    unsafe fn step<A: NodeAllocatorGeneric>(
        &mut self,
        tree: &RawTree<A>,
    ) -> Option<Option<*mut ()>> {
        // SAFETY (the whole body): every node pointer was read from the tree
        // (or a node of it) under the guard, which keeps it allocated.
        unsafe {
            match self.at {
                At::Top => {
                    self.key = Key::new(self.full);
                    let root = tree.top_root();
                    if root.is_null() {
                        return Some(None);
                    }
                    // The top root is hot in every batch: no need to wait.
                    self.enter(root)
                }
                At::Root(root) => self.enter(root),
                At::Child {
                    root,
                    parent,
                    pv,
                    child,
                } => {
                    let cv = version(child).stable();
                    if !(*parent).version.has_changed(pv) {
                        return self.descend(root, child, cv);
                    }
                    let now = (*parent).version.stable();
                    if pv.has_split(now) {
                        // Our key may have moved to a sibling we cannot see
                        // from here: again from the layer's root.
                        return self.enter(root);
                    }
                    self.descend(root, parent.cast_mut().cast(), now)
                }
                At::Suffix(s) => {
                    Some((Suffix::bytes(s) == self.key.suffix()).then(|| (*s).value()))
                }
            }
        }
    }

    /// At `root` (a node of the current layer, maybe no longer its root):
    /// climbs to the layer's root, then goes down.
    ///
    /// # Safety
    /// As [`Probe::step`]; `root` is a node of the lookup's current layer.
    #[inline]
    unsafe fn enter(&mut self, root: *mut NodeBase) -> Option<Option<*mut ()>> {
        // SAFETY: parents of live nodes are live under the guard.
        unsafe {
            let (n, v) = stable_root(root);
            self.descend(root, n, v)
        }
    }

    /// At node `n`, stable at `v`: prefetches the child covering the key and
    /// yields, or, at a leaf, searches it.
    ///
    /// # Safety
    /// As [`Probe::enter`]; `n` is a node of the layer of `root`.
    #[inline]
    unsafe fn descend(
        &mut self,
        root: *mut NodeBase,
        n: *mut NodeBase,
        mut v: Version,
    ) -> Option<Option<*mut ()>> {
        let ikey = self.key.ikey();
        // SAFETY: as above.
        unsafe {
            while !v.is_leaf() {
                let inode = &*n.cast::<Internode>();
                let child = inode.child(inode.child_index(ikey));
                if !child.is_null() {
                    prefetch_node(child);
                    self.at = At::Child {
                        root,
                        parent: inode,
                        pv: v,
                        child,
                    };
                    return None;
                }
                // A null child is a torn read of a changing node.
                let now = inode.version.stable();
                if v.has_split(now) {
                    self.at = At::Root(root);
                    return None;
                }
                v = now;
            }
            self.at_leaf(NodeRef::new(n.cast()), v)
        }
    }

    /// At a leaf covering the key, stable at `v`: as [`RawTree::get`] does.
    ///
    /// # Safety
    /// As [`Probe::step`]; `leaf` covered the key at `v`.
    #[inline]
    unsafe fn at_leaf(
        &mut self,
        mut leaf: NodeRef<'_, Leaf>,
        mut v: Version,
    ) -> Option<Option<*mut ()>> {
        let ikey = self.key.ikey();
        let (kind, word) = loop {
            if v.is_deleted() {
                // Removed under us: start over once its remover is done.
                spin_loop();
                self.at = At::Top;
                return None;
            }
            let perm = leaf.permutation.load();
            let found = search(&leaf, perm, &self.key).slot.map(|slot| {
                // Read the word before the keylenx: see `insert::make_layer`.
                let word = leaf.value(slot);
                (slot_kind(leaf.keylenx(slot)), word)
            });
            if !leaf.version.has_changed(v) {
                self.hint = Some(Hint {
                    leaf: leaf.as_ptr(),
                    v,
                    depth: self.key.depth(),
                });
                match found {
                    None => return Some(None),
                    Some(f) => break f,
                }
            }
            // SAFETY: we hold a guard.
            (leaf, v) = unsafe { advance(leaf, v, ikey) };
        };
        match kind {
            SlotKind::Value => Some(Some(word)),
            SlotKind::Suffix => {
                let s = Leaf::suffix_of(word);
                prefetch_line(s.cast());
                self.at = At::Suffix(s);
                None
            }
            SlotKind::Layer => {
                let root = word.cast::<NodeBase>();
                self.key.shift();
                prefetch_node(root);
                self.at = At::Root(root);
                None
            }
        }
    }
}

impl<A: NodeAllocatorGeneric> RawTree<A> {
    /// Looks up every key, [`WINDOW`] at a time with their descents
    /// interleaved, and calls `found` once per key with its index in `keys`,
    /// its value word and the leaf where its lookup ended (if it reached
    /// one), in the order the lookups finish.
    ///
    /// # Safety
    /// The caller holds a guard of this tree's backend for the whole call and
    /// for as long as it uses the words.
    pub(crate) unsafe fn get_batch<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        mut found: impl FnMut(usize, Option<*mut ()>, Option<Hint>),
    ) {
        let mut window: [Option<Probe<'_>>; WINDOW] = [const { None }; WINDOW];
        let mut next = 0;
        let mut live = 0;
        for slot in &mut window {
            let Some(k) = keys.get(next) else { break };
            *slot = Some(Probe::new(k.as_ref(), next));
            next += 1;
            live += 1;
        }
        while live > 0 {
            for slot in &mut window {
                let Some(probe) = slot else { continue };
                // SAFETY: the caller's guard covers the whole batch.
                let Some(word) = (unsafe { probe.step(self) }) else {
                    continue;
                };
                found(probe.index, word, probe.hint);
                if let Some(k) = keys.get(next) {
                    *slot = Some(Probe::new(k.as_ref(), next));
                    next += 1;
                } else {
                    *slot = None;
                    live -= 1;
                }
            }
        }
    }
}

impl<S: ValueStorage, A: NodeAllocatorGeneric> Tree<S, A> {
    /// Looks up a batch of keys, writing each one's value to the same index
    /// of `out`. Faster than a [`get`](Tree::get) per key on a tree larger
    /// than the CPU caches: the lookups' descents are interleaved, each
    /// prefetching its next node while the others run, so their cache misses
    /// overlap. Each lookup is atomic on its own, as a `get` is; the batch is
    /// not a snapshot. Keys may come in any order, across trie layers.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u32>::new();
    /// let g = tree.guard();
    /// for (i, k) in ["ant", "bee", "cat"].iter().enumerate() {
    ///     tree.insert(k, i as u32, &g);
    /// }
    /// let mut out = [None; 4];
    /// tree.get_batch(&["cat", "dog", "ant", "bee"], &mut out, &g);
    /// assert_eq!(out, [Some(2), None, Some(0), Some(1)]);
    /// ```
    ///
    /// # Panics
    /// If `out` and `keys` differ in length, or `guard` was created by
    /// another tree.
    #[track_caller]
    pub fn get_batch<'g, K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        out: &mut [Option<S::Ref<'g>>],
        guard: &'g A::Guard<'_>,
    ) {
        assert_eq!(
            keys.len(),
            out.len(),
            "masstree: get_batch needs one output slot per key"
        );
        self.get_batch_with(keys, guard, |i, v| out[i] = v);
    }

    /// [`Tree::get_batch`] with the results handed to `found` (the key's
    /// index in `keys` and its value), once per key, in the order the
    /// lookups finish rather than the keys' order.
    ///
    /// ```
    /// let tree = masstree::MassTree::new();
    /// let g = tree.guard();
    /// tree.insert("a/very/long/key/in/a/deeper/layer", 7, &g);
    /// let mut sum = 0;
    /// tree.get_batch_with(&["a/very/long/key/in/a/deeper/layer", "b"], &g, |i, v| {
    ///     sum += (i + 1) * v.copied().unwrap_or(100);
    /// });
    /// assert_eq!(sum, 7 + 2 * 100);
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn get_batch_with<'g, K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        guard: &'g A::Guard<'_>,
        mut found: impl FnMut(usize, Option<S::Ref<'g>>),
    ) where
        S: 'g,
    {
        self.check(guard);
        // SAFETY: the guard is ours and outlives 'g, which bounds the results.
        unsafe {
            self.raw
                .get_batch(keys, |i, w, _| found(i, w.map(|w| S::as_ref(w))));
        }
    }

    /// Inserts every pair, as [`Tree::insert`] would one after another (a
    /// later pair replaces an earlier one with the same key), but faster on
    /// a tree larger than the CPU caches: a window of pairs is first looked
    /// up together with interleaved descents ([`Tree::get_batch`]), which
    /// brings their nodes into the cache with overlapping misses, and then
    /// inserted. Replaced values are retired as `insert` retires them.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// tree.insert_batch((0..1000u64).map(|i| (i.to_be_bytes(), i * 2)), &g);
    /// assert_eq!(tree.len(), 1000);
    /// assert_eq!(tree.get(&7u64.to_be_bytes(), &g), Some(14));
    /// ```
    ///
    /// If `items` panics, the pairs taken from it since the last window was
    /// inserted (at most 15) are dropped, not inserted.
    ///
    /// # Panics
    /// If `guard` was created by another tree. If the backend runs out of
    /// memory, as [`Tree::insert`]; [`Fallible::extend`](crate::Fallible::extend)
    /// is the fallible form.
    #[track_caller]
    pub fn insert_batch<K: AsRef<[u8]>, I: IntoIterator<Item = (K, S::Value)>>(
        &self,
        items: I,
        guard: &A::Guard<'_>,
    ) {
        if let Err(e) = self.fallible().extend(items, guard) {
            drop(e);
            out_of_memory();
        }
    }

    /// Removes every key, calling `removed` with each key's index in `keys`
    /// and its value (if it was present), in the keys' order, as
    /// [`Tree::remove`] one after another would; faster on a tree larger
    /// than the CPU caches, since each window of keys is first looked up
    /// together ([`Tree::get_batch`]) to bring their nodes into the cache.
    /// `removed` is called for a window's keys once all of them are
    /// removed (16 at a time), so a write it makes to this tree comes after
    /// them.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// tree.insert_batch((0..100u64).map(|i| (i.to_be_bytes(), i)), &g);
    /// let mut sum = 0;
    /// let keys = [3u64, 300, 5].map(u64::to_be_bytes);
    /// tree.remove_batch(&keys, &g, |_, old| sum += old.unwrap_or(1000));
    /// assert_eq!((sum, tree.len()), (1008, 98));
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn remove_batch<'g, K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        guard: &'g A::Guard<'_>,
        mut removed: impl FnMut(usize, Option<S::Ref<'g>>),
    ) where
        S: 'g,
    {
        self.check(guard);
        for (w, window) in keys.chunks(WINDOW).enumerate() {
            // Each key's bytes are taken once: the remove must start from
            // the hint of the very bytes that were looked up.
            let mut bytes: [&[u8]; WINDOW] = [&[]; WINDOW];
            for (b, k) in bytes.iter_mut().zip(window) {
                *b = k.as_ref();
            }
            let bytes = &bytes[..window.len()];
            let mut hints = [None; WINDOW];
            // SAFETY: the guard is ours and held for the call; only the
            // hints are kept.
            unsafe { self.raw.get_batch(bytes, |i, _, h| hints[i] = h) };
            // The whole window is removed before `removed` runs, so no user
            // code (which may write to this tree) runs while hints wait.
            let mut old: [Option<S::Ref<'g>>; WINDOW] = [const { None }; WINDOW];
            for ((o, k), hint) in old.iter_mut().zip(bytes).zip(hints) {
                // SAFETY: `check` above: the guard is ours; the hint comes
                // from the lookup of these bytes under it, just now.
                *o = unsafe { self.remove_from(k, hint, guard) };
            }
            for (i, o) in old.into_iter().take(window.len()).enumerate() {
                removed(w * WINDOW + i, o);
            }
        }
    }

    /// Runs `each` on every pair of `items`, a window at a time, after
    /// looking the window's keys up together to bring their nodes into the
    /// cache. `each` gets the key's bytes (taken once: exactly the bytes
    /// looked up), the value, and the leaf where the lookup ended (a
    /// [`Hint`] for [`RawTree::locate_from`], valid under `guard`). Stops
    /// at the first pair `each` gives back, returned with its key (the
    /// pairs after it are dropped).
    #[track_caller]
    pub(crate) fn warmed<K: AsRef<[u8]>, V>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
        guard: &A::Guard<'_>,
        mut each: impl FnMut(&[u8], V, Option<Hint>) -> Result<(), V>,
    ) -> Result<(), (K, V)> {
        self.check(guard);
        let mut items = items.into_iter();
        let mut keys: [Option<K>; WINDOW] = [const { None }; WINDOW];
        let mut values: [Option<V>; WINDOW] = [const { None }; WINDOW];
        loop {
            let mut n = 0;
            for (k, v) in items.by_ref().take(WINDOW) {
                keys[n] = Some(k);
                values[n] = Some(v);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            let failed = {
                let mut bytes: [&[u8]; WINDOW] = [&[]; WINDOW];
                for (b, k) in bytes.iter_mut().zip(&keys[..n]) {
                    *b = k.as_ref().map_or(&[], |k| k.as_ref());
                }
                let mut hints = [None; WINDOW];
                // SAFETY: the guard is ours and held for the call; only the
                // hints are kept.
                unsafe { self.raw.get_batch(&bytes[..n], |i, _, h| hints[i] = h) };
                (0..n).find_map(|i| {
                    let v = values[i].take().expect("one value per key");
                    each(bytes[i], v, hints[i]).err().map(|v| (i, v))
                })
            };
            if let Some((i, v)) = failed {
                let k = keys[i].take().expect("the failed pair's key");
                return Err((k, v));
            }
            for k in &mut keys[..n] {
                *k = None;
            }
            if n < WINDOW {
                return Ok(());
            }
        }
    }
}
