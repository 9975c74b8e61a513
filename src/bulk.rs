//! Bulk load: a tree built bottom-up in one pass from keys in strictly
//! increasing order, with leaves packed full (or to a chosen fill).
//!
//! The loader keeps one builder per trie layer it is inside. A key longer
//! than its layer's slice waits as the layer's *pending* key until the next
//! key shows whether another key shares its slice (then both go into a new
//! layer) or not (then it becomes a suffixed entry). Leaves are filled left to
//! right, never splitting the keys of one ikey across two leaves; each full
//! node is handed to the internode builder of the level above, whose
//! separators are the `low` keys of the nodes to their right, as the
//! invariant of split and remove requires. On bad input or a failed
//! allocation, every builder is closed into a valid tree, which is dropped:
//! nothing is left half-built or leaked. The builders live in memory from the
//! backend's allocator, like the nodes.

use core::fmt;
use core::ptr::NonNull;

use crate::backend::NodeAllocatorGeneric;
use crate::buf::Buf;
use crate::internode::{IWIDTH, Internode};
use crate::key::{KSUF, LAYER, SLICE, common_prefix, ikey_of};
use crate::leaf::Leaf;
use crate::node::{MAX_LEVELS, NodeBase, set_parent};
use crate::nodeversion::NodeVersion;
use crate::permuter::{Permuter, WIDTH};
use crate::raw::{FreeWord, RawTree};
use crate::suffix::Suffix;
use crate::sync::Ordering;
use crate::tree::Tree;
use crate::value::ValueStorage;

/// Why a bulk load stopped. Everything loaded so far was dropped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BulkLoadError {
    /// The key at this position (0-based) was not greater than the one before.
    NotIncreasing {
        /// Position of the offending key in the input.
        position: usize,
    },
    /// The backend ran out of memory while loading the key at this position.
    OutOfMemory {
        /// Position of the key being loaded.
        position: usize,
    },
}

impl fmt::Display for BulkLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BulkLoadError::NotIncreasing { position } => {
                write!(
                    f,
                    "masstree bulk load: key {position} is not greater than the key before it"
                )
            }
            BulkLoadError::OutOfMemory { position } => {
                write!(f, "masstree bulk load: out of memory at key {position}")
            }
        }
    }
}

impl core::error::Error for BulkLoadError {}

/// Loads sorted input into a new tree; see [`Tree::from_sorted_in`].
#[derive(Debug)]
pub struct BulkLoader<A> {
    backend: A,
    fill: usize,
}

impl<A: NodeAllocatorGeneric> BulkLoader<A> {
    /// A loader that packs leaves full.
    pub fn new(backend: A) -> Self {
        BulkLoader {
            backend,
            fill: WIDTH,
        }
    }

    /// Entries per leaf, `1..=15` (clamped): fewer leaves room for later
    /// inserts without splits. Keys that share an 8-byte slice always share a
    /// leaf, so a leaf may hold a few more.
    pub fn leaf_fill(mut self, fill: usize) -> Self {
        self.fill = fill.clamp(1, WIDTH);
        self
    }

    /// Builds the tree. Keys must be strictly increasing.
    pub fn load<S, K, I>(self, iter: I) -> Result<Tree<S, A>, BulkLoadError>
    where
        S: ValueStorage,
        K: AsRef<[u8]>,
        I: IntoIterator<Item = (K, S::Value)>,
    {
        let tree = Tree::<S, A>::new_in(self.backend);
        let raw = tree.raw();
        let iter = iter.into_iter();
        // Node count for the keys the input promises, if they do not share
        // slices: full leaves, and internodes of IWIDTH + 1 children above.
        let leaves = iter.size_hint().0.div_ceil(self.fill);
        let mut internodes = 0;
        let mut level = leaves;
        while level > 1 {
            level = level.div_ceil(IWIDTH + 1);
            internodes += level;
        }
        raw.alloc.reserve_nodes(leaves, internodes);
        let mut load = Closing {
            load: Load {
                raw,
                free_word: S::free::<A>,
                layers: Buf::new_in(raw.alloc.raw_allocator()),
                levels: Buf::new_in(raw.alloc.raw_allocator()),
                fill: self.fill,
                len: 0,
            },
            prev: None,
            open: true,
        };
        let mut result = Ok(());
        let mut count = 0;
        for (position, (owned, value)) in iter.enumerate() {
            count = position + 1;
            let key = owned.as_ref();
            let last = load.prev.as_ref().map_or(&[][..], AsRef::as_ref);
            // The common prefix with the previous key orders the two keys
            // and tells which layers the new key stays inside.
            let lcp = common_prefix(key, last);
            let increasing = lcp < key.len() && (lcp == last.len() || key[lcp] > last[lcp]);
            if position > 0 && !increasing {
                result = Err(BulkLoadError::NotIncreasing { position });
                break;
            }
            let Ok(word) = S::into_word(&raw.alloc, value) else {
                result = Err(BulkLoadError::OutOfMemory { position });
                break;
            };
            if load.load.push(last, key, lcp, word).is_err() {
                result = Err(BulkLoadError::OutOfMemory { position });
                break;
            }
            load.prev = Some(owned);
        }
        if result.is_ok() && load.close().is_err() {
            result = Err(BulkLoadError::OutOfMemory {
                position: count.saturating_sub(1),
            });
        }
        drop(load);
        result.map(|()| tree)
    }
}

/// A load in progress and the last key it took (kept as given, no copy).
/// Closing it (at the end, on an error, or while a panic from the input
/// unwinds) closes every open layer: the tree is then valid, and dropping it
/// frees everything exactly once.
struct Closing<'t, A: NodeAllocatorGeneric, K: AsRef<[u8]>> {
    load: Load<'t, A>,
    prev: Option<K>,
    open: bool,
}

impl<A: NodeAllocatorGeneric, K: AsRef<[u8]>> Closing<'_, A, K> {
    fn close(&mut self) -> Result<(), Failed> {
        if !core::mem::replace(&mut self.open, false) {
            return Ok(());
        }
        let (root, closed) = self
            .load
            .finish(self.prev.as_ref().map_or(&[][..], AsRef::as_ref));
        // Relaxed: the tree is private until returned.
        self.load.raw.root.store(root, Ordering::Relaxed);
        self.load.raw.len.set(self.load.len);
        closed
    }
}

impl<A: NodeAllocatorGeneric, K: AsRef<[u8]>> Drop for Closing<'_, A, K> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl<S: ValueStorage, A: NodeAllocatorGeneric> Tree<S, A> {
    /// A tree built in O(n) from `(key, value)` pairs in strictly increasing
    /// key order, leaves packed full; see [`BulkLoader`] for a fill option.
    ///
    /// ```
    /// use masstree::{InlineMassTree, alloc_backends::seize::SeizeBackend};
    /// let keys = (0..1000u64).map(|i| (i.to_be_bytes(), i));
    /// let tree = InlineMassTree::from_sorted_in(SeizeBackend::new(), keys).unwrap();
    /// let g = tree.guard();
    /// assert_eq!(tree.get(&7u64.to_be_bytes(), &g), Some(7));
    /// let bad = InlineMassTree::<u64>::from_sorted_in(SeizeBackend::new(), [("b", 1), ("a", 2)]);
    /// assert_eq!(bad.unwrap_err(), masstree::BulkLoadError::NotIncreasing { position: 1 });
    /// ```
    ///
    /// # Errors
    /// [`BulkLoadError`] if a key is not greater than the one before it, or
    /// the backend runs out of memory; nothing is left allocated then.
    pub fn from_sorted_in<K: AsRef<[u8]>, I: IntoIterator<Item = (K, S::Value)>>(
        backend: A,
        iter: I,
    ) -> Result<Self, BulkLoadError> {
        BulkLoader::new(backend).load(iter)
    }
}

/// An entry for a leaf: a value word, a suffix record or a layer root.
#[derive(Clone, Copy)]
struct Entry {
    ikey: u64,
    keylenx: u8,
    word: *mut (),
}

/// The builder of the parents of one level of a layer (level 0: leaves).
/// No internode is made for a single node: the first node of a level waits
/// until a second one comes (or becomes the layer's root), so a layer of one
/// leaf costs one leaf.
#[derive(Clone, Copy)]
struct Level {
    /// The open parent internode (children at this level, at least two),
    /// its child count and its lowest key.
    open: Option<(NonNull<Internode>, usize, u64)>,
    /// A finished node of this level, with its lowest key, that has no
    /// parent yet (never together with `open`).
    waiting: Option<(*mut NodeBase, u64)>,
    /// Nodes of this level attached so far.
    added: usize,
}

const NO_LEVEL: Level = Level {
    open: None,
    waiting: None,
    added: 0,
};

/// The builder of one layer.
struct LayerBuild {
    /// The open leaf and its entry count.
    leaf: Option<(NonNull<Leaf>, usize)>,
    /// The last finished leaf (for links).
    last_leaf: *mut Leaf,
    /// Where this layer's levels start in [`Load::levels`].
    levels_at: usize,
    /// The value word of the previous key, if it is longer than this layer's
    /// slice and waits for the next key to decide: suffix or new layer.
    pending: Option<*mut ()>,
}

/// Allocation failed; whatever could not be attached was freed.
struct Failed;

struct Load<'t, A: NodeAllocatorGeneric> {
    raw: &'t RawTree<A>,
    free_word: FreeWord<A>,
    /// One builder per trie layer the load is inside, in memory from the
    /// backend's allocator.
    layers: Buf<LayerBuild, &'t A::Raw>,
    /// Per level, from the leaves up, the parents being built: the levels
    /// of each layer in `layers`, one after another. Only the innermost
    /// layer adds levels, so each layer's levels are a stretch that ends
    /// where the next layer's start, and a chain of one-leaf layers (keys
    /// sharing a long prefix) costs one level each, not [`MAX_LEVELS`].
    levels: Buf<Level, &'t A::Raw>,
    fill: usize,
    len: usize,
}

impl<A: NodeAllocatorGeneric> Load<'_, A> {
    /// Opens a layer inside the innermost one (or the top layer).
    fn open_layer(&mut self) -> Result<(), Failed> {
        let layer = LayerBuild {
            leaf: None,
            last_leaf: core::ptr::null_mut(),
            levels_at: self.levels.len(),
            pending: None,
        };
        self.layers.try_push(layer).map_err(|_| Failed)
    }

    /// Closes the innermost layer's builder (its nodes are finished).
    fn pop_layer(&mut self) {
        if let Some(layer) = self.layers.pop() {
            self.levels.truncate(layer.levels_at);
        }
    }

    /// Level `level` of layer `d` (the innermost), or an empty one.
    fn level(&self, d: usize, level: usize) -> Level {
        debug_assert_eq!(d, self.layers.len() - 1);
        let at = self.layers[d].levels_at + level;
        self.levels.get(at).copied().unwrap_or(NO_LEVEL)
    }

    /// The index in [`Self::levels`] of level `level` of layer `d` (the
    /// innermost), making room for it if the layer has not reached it yet.
    fn level_at(&mut self, d: usize, level: usize) -> Result<usize, Failed> {
        debug_assert_eq!(d, self.layers.len() - 1);
        let at = self.layers[d].levels_at + level;
        while self.levels.len() <= at {
            self.levels.try_push(NO_LEVEL).map_err(|_| Failed)?;
        }
        Ok(at)
    }

    /// Adds the next key (greater than `prev`, the key before it, sharing
    /// its first `lcp` bytes) with its value word, which the loader owns from
    /// now on, whatever happens.
    fn push(&mut self, prev: &[u8], key: &[u8], lcp: usize, word: *mut ()) -> Result<(), Failed> {
        if self.layers.is_empty() && self.open_layer().is_err() {
            self.free_unstored(word);
            return Err(Failed);
        }
        // Leave the layers the new key is not inside: the layer at depth d
        // holds the keys longer than 8 * d bytes that share the first 8 * d.
        while self.layers.len() > 1 {
            let d = self.layers.len() - 1;
            if key.len() > SLICE * d && lcp >= SLICE * d {
                break;
            }
            if let Err(f) = self.close_top(prev) {
                self.free_unstored(word);
                return Err(f);
            }
        }
        let d = self.layers.len() - 1;
        self.push_at(d, prev, key, lcp, word)?;
        self.len += 1;
        Ok(())
    }

    /// Adds the key at layer `d`, the innermost; goes down a layer for each
    /// slice it shares with a previous key that waits there (a loop, not a
    /// recursion: keys may share any number of slices).
    fn push_at(
        &mut self,
        mut d: usize,
        prev: &[u8],
        key: &[u8],
        lcp: usize,
        word: *mut (),
    ) -> Result<(), Failed> {
        while let Some(pending) = self.layers[d].pending.take() {
            // The previous key shares our slice: both go one layer down.
            if key.len() > SLICE * (d + 1) && lcp >= SLICE * (d + 1) {
                if self.open_layer().is_err() {
                    self.free_unstored(pending);
                    self.free_unstored(word);
                    return Err(Failed);
                }
                d += 1;
                // One layer down the previous key may end within the slice.
                let rest = &prev[SLICE * d..];
                if rest.len() > SLICE {
                    self.layers[d].pending = Some(pending);
                } else if let Err(f) = self.entry(
                    d,
                    Entry {
                        ikey: ikey_of(rest),
                        keylenx: rest.len() as u8,
                        word: pending,
                    },
                ) {
                    self.free_unstored(word);
                    return Err(f);
                }
                continue;
            }
            if let Err(f) = self.suffixed(prev, pending, d) {
                self.free_unstored(word);
                return Err(f);
            }
            break;
        }
        let rest = &key[SLICE * d..];
        if rest.len() > SLICE {
            self.layers[d].pending = Some(word);
            Ok(())
        } else {
            self.entry(
                d,
                Entry {
                    ikey: ikey_of(rest),
                    keylenx: rest.len() as u8,
                    word,
                },
            )
        }
    }

    /// Turns the pending key of layer `d` (whose bytes are `key`) into a
    /// suffixed entry.
    fn suffixed(&mut self, key: &[u8], word: *mut (), d: usize) -> Result<(), Failed> {
        let rest = &key[SLICE * d..];
        match self.raw.new_suffix(&rest[SLICE..], word) {
            Ok(record) => self.entry(
                d,
                Entry {
                    ikey: ikey_of(rest),
                    keylenx: KSUF,
                    word: record.cast(),
                },
            ),
            Err(_) => {
                self.free_unstored(word);
                Err(Failed)
            }
        }
    }

    /// Frees a value word the loader owns but never stored.
    fn free_unstored(&self, word: *mut ()) {
        // SAFETY: the word came from `into_word` and is in no leaf.
        unsafe { (self.free_word)(&self.raw.alloc, word) };
    }

    /// Frees an entry that could not be stored.
    fn drop_entry(&self, e: Entry) {
        // SAFETY: the entry was never published; it is ours alone.
        unsafe {
            match e.keylenx {
                LAYER => self.raw.free_subtree(e.word.cast(), self.free_word),
                KSUF => {
                    let s = e.word.cast::<Suffix>();
                    (self.free_word)(&self.raw.alloc, (*s).value());
                    self.raw.alloc.free_suffix(NonNull::new_unchecked(s));
                }
                _ => (self.free_word)(&self.raw.alloc, e.word),
            }
        }
    }

    /// Appends an entry to layer `d`'s open leaf (starting a new leaf when
    /// this one is full, or filled and the entry starts a new ikey).
    fn entry(&mut self, d: usize, e: Entry) -> Result<(), Failed> {
        let fill = self.fill;
        let open = self.layers[d].leaf;
        let start_new = match open {
            None => Some(0),
            Some((leaf, n)) => {
                // SAFETY: our private leaf.
                let l = unsafe { leaf.as_ref() };
                let last = l.ikey(n - 1);
                if n == WIDTH || (n >= fill && last != e.ikey) {
                    // Entries that share the new entry's ikey move along.
                    Some(if last == e.ikey {
                        (0..n).rfind(|&i| l.ikey(i) != e.ikey).map_or(0, |i| i + 1)
                    } else {
                        n
                    })
                } else {
                    None
                }
            }
        };
        if let Some(keep) = start_new {
            let fresh = match self.raw.alloc.alloc_leaf() {
                // SAFETY: fresh memory; `low` is set when the leaf is finished.
                Ok(p) => unsafe { Leaf::init_at(p, 0, 0) },
                Err(_) => {
                    self.drop_entry(e);
                    return Err(Failed);
                }
            };
            let moved = match open {
                Some((leaf, n)) => {
                    // SAFETY: both private.
                    let (old, new) = unsafe { (leaf.as_ref(), fresh.as_ref()) };
                    for (to, from) in (keep..n).enumerate() {
                        old.copy_slot(from, new, to);
                    }
                    self.layers[d].leaf = Some((leaf, keep));
                    let r = self.finish_leaf(d);
                    self.layers[d].leaf = Some((fresh, n - keep));
                    if let Err(f) = r {
                        self.drop_entry(e);
                        return Err(f);
                    }
                    n - keep
                }
                None => 0,
            };
            self.layers[d].leaf = Some((fresh, moved));
        }
        let (leaf, n) = self.layers[d].leaf.expect("an open leaf");
        // SAFETY: our private leaf.
        unsafe { leaf.as_ref() }.set_slot(n, e.ikey, e.keylenx, e.word);
        self.layers[d].leaf = Some((leaf, n + 1));
        Ok(())
    }

    /// Finishes layer `d`'s open leaf (permutation, `low`, links) and hands
    /// it to the level above.
    fn finish_leaf(&mut self, d: usize) -> Result<(), Failed> {
        let layer = &mut self.layers[d];
        let Some((leaf, n)) = layer.leaf.take() else {
            return Ok(());
        };
        let lp = leaf.as_ptr();
        // The layer's first leaf takes every key below the second's.
        let low = if layer.last_leaf.is_null() {
            0
        } else {
            // SAFETY: our private leaf.
            unsafe { (*lp).ikey(0) }
        };
        // SAFETY: our private leaf; `low` is written before anyone sees it.
        unsafe {
            (*lp).permutation.publish(Permuter::sorted(n));
            core::ptr::addr_of_mut!((*lp).low).write(low);
            // Relaxed: private until the tree is returned.
            (*lp).prev.store(layer.last_leaf, Ordering::Relaxed);
            if let Some(last) = layer.last_leaf.as_ref() {
                last.next.store(lp, Ordering::Relaxed);
            }
        }
        layer.last_leaf = lp;
        self.add_child(d, 0, lp.cast(), low)
    }

    /// Adds a finished node (lowest key `low`) of `level` (0: leaves) of
    /// layer `d`: as the next child of the open parent, or as the node that
    /// waits for a sibling, or with the waiting one under a new parent.
    fn add_child(
        &mut self,
        d: usize,
        level: usize,
        node: *mut NodeBase,
        low: u64,
    ) -> Result<(), Failed> {
        let Ok(at) = self.level_at(d, level) else {
            // SAFETY: as below, for a failed internode.
            unsafe { self.raw.free_subtree(node, self.free_word) };
            return Err(Failed);
        };
        let lv = self.levels[at];
        let (parent, c, plow) = match (lv.open, lv.waiting) {
            (Some(open), _) => open,
            (None, None) => {
                let lv = &mut self.levels[at];
                lv.waiting = Some((node, low));
                lv.added += 1;
                return Ok(());
            }
            (None, Some((first, first_low))) => {
                let Ok(p) = self.raw.alloc.alloc_internode() else {
                    // The node cannot be attached: free it (its keys are
                    // lost, and the load reports the failure).
                    // SAFETY: a finished private subtree nobody links to
                    // (the leaf list is not followed when a tree is freed).
                    unsafe { self.raw.free_subtree(node, self.free_word) };
                    return Err(Failed);
                };
                // SAFETY: fresh memory, private.
                unsafe { Internode::init_at(p, NodeVersion::new(0)) };
                // SAFETY: our private internode.
                unsafe { p.as_ref() }.set_child(0, first);
                // SAFETY: `first` is ours; its parent link is private until the end.
                unsafe { set_parent(first, p.as_ptr()) };
                self.levels[at].waiting = None;
                (p, 1, first_low)
            }
        };
        // SAFETY: our private internode.
        let p = unsafe { parent.as_ref() };
        p.set_ikey(c - 1, low);
        p.set_child(c, node);
        p.set_nkeys(c);
        // SAFETY: `node` is ours; its parent link is private until the end.
        unsafe { set_parent(node, parent.as_ptr()) };
        let lv = &mut self.levels[at];
        lv.added += 1;
        if c + 1 == IWIDTH + 1 {
            // Full: hand it up.
            lv.open = None;
            return self.add_child(d, level + 1, parent.as_ptr().cast(), plow);
        }
        lv.open = Some((parent, c + 1, plow));
        Ok(())
    }

    /// Closes the innermost layer (`prev` is the last key loaded): its root
    /// becomes a layer entry above.
    fn close_top(&mut self, prev: &[u8]) -> Result<(), Failed> {
        let d = self.layers.len() - 1;
        let (root, r) = self.close_layer(d, prev);
        self.pop_layer();
        let ikey = ikey_of(&prev[SLICE * (d - 1)..]);
        let entry = if root.is_null() {
            Ok(())
        } else {
            self.entry(
                d - 1,
                Entry {
                    ikey,
                    keylenx: LAYER,
                    word: root.cast(),
                },
            )
        };
        r.and(entry)
    }

    /// Finishes every builder of layer `d`; returns its root (null if empty),
    /// and whether everything could be kept.
    fn close_layer(&mut self, d: usize, prev: &[u8]) -> (*mut NodeBase, Result<(), Failed>) {
        let mut result = Ok(());
        if let Some(word) = self.layers[d].pending.take() {
            if let Err(f) = self.suffixed(prev, word, d) {
                result = Err(f);
            }
        }
        if let Err(f) = self.finish_leaf(d) {
            result = Err(f);
        }
        // Going up: the open parent or the waiting node of each level goes
        // to the level above, until a level has nothing above it: its node
        // is the root (none at the leaf level: an empty layer).
        for level in 0..=MAX_LEVELS {
            let lv = self.level(d, level);
            if let Some(slot) = self.levels.get_mut(self.layers[d].levels_at + level) {
                *slot = NO_LEVEL;
            }
            let above = level < MAX_LEVELS && self.level(d, level + 1).added > 0;
            let top = match (lv.open, lv.waiting) {
                (Some((p, _, low)), _) => Some((p.as_ptr().cast::<NodeBase>(), low)),
                (None, waiting) => waiting,
            };
            match top {
                None if !above => return (core::ptr::null_mut(), result),
                // Every node of this level is under a full parent, handed up.
                None => {}
                Some((node, _)) if !above => return (make_root(node), result),
                Some((node, low)) => {
                    if let Err(f) = self.add_child(d, level + 1, node, low) {
                        result = Err(f);
                    }
                }
            }
        }
        unreachable!("a layer has fewer than {MAX_LEVELS} levels")
    }

    /// Closes every layer (`prev` is the last key loaded); returns layer
    /// 0's root and whether all was kept.
    fn finish(&mut self, prev: &[u8]) -> (*mut NodeBase, Result<(), Failed>) {
        let mut result = Ok(());
        while self.layers.len() > 1 {
            if let Err(f) = self.close_top(prev) {
                result = Err(f);
            }
        }
        if self.layers.is_empty() {
            return (core::ptr::null_mut(), result);
        }
        let (root, r) = self.close_layer(0, prev);
        (root, result.and(r))
    }
}

/// Marks a layer's root node.
fn make_root(n: *mut NodeBase) -> *mut NodeBase {
    // SAFETY: a private node; locking it only lets us set its flags.
    let lock = unsafe { &(*n).version }.lock();
    lock.set_root(true);
    drop(lock);
    n
}
