//! Ordered scans (`masstree_scan.hh`): one cursor engine for both directions.
//!
//! A [`RawCursor`] keeps one frame per trie layer it is inside (a leaf, its
//! version, a snapshot of its permutation, a position, and the slice that
//! leads into the layer) and the full key it last yielded, the *bound*
//! (written once per yield, in place). Each step reads the next entry of the innermost
//! frame and validates the leaf's version before using it. Whenever anything
//! changed under it (a split, a remove, a deleted leaf, a collected layer) the
//! cursor throws its frames away and seeks again from the top of the tree to
//! the first key beyond the bound. So, under concurrent writes:
//!
//! * keys come out strictly increasing (or decreasing), never twice;
//! * a key present for the whole scan is yielded (leaves are only left
//!   through validated links, or by re-seeking past the bound);
//! * every pair yielded was present at the moment its leaf validated.
//!
//! Forward steps follow `next` links (the B-link direction); backward steps
//! follow `prev` when the link is consistent (see [`left_neighbour`]), else
//! re-descend to the leaf that covers the ikey just below the current leaf's
//! `low`. A leaf reached by descending is positioned relative to the bound, so
//! a leaf that absorbed a removed neighbour's range never yields a key twice;
//! a leaf reached through a validated link holds only keys beyond the bound
//! (leaves' ranges grow only upward, and `low` never changes), so it is
//! entered at its edge.

use core::cmp::Ordering;

use allocator_api2::alloc::Allocator;

use crate::backend::NodeAllocatorGeneric;
use crate::buf::Buf;
use crate::internode::IWIDTH;
use crate::key::{KSUF, Key, LAYER, SLICE, ikey_of};
use crate::leaf::{Leaf, SlotKind, slot_kind};
use crate::node::{NodeBase, NodeRef, prefetch_line, prefetch_node, reach_leaf, search};
use crate::nodeversion::Version;
use crate::permuter::Permuter;
use crate::raw::RawTree;
use crate::suffix::Suffix;
use crate::sync::spin_loop;

/// How many leaves ahead of the one it enters a scan starts loading.
const AHEAD: usize = 4;

/// Scan direction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    Forward,
    Backward,
}

/// Where a scan starts (or resumes) relative to a key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Start {
    /// From the first (forward) or last (backward) key of the tree.
    Edge,
    /// From the key itself, if present, on.
    Inclusive,
    /// From the first key beyond it in the scan direction.
    Exclusive,
}

/// One trie layer the cursor is inside.
struct Frame<'g> {
    /// The node the layer was entered from (a possibly former root).
    root: *mut NodeBase,
    leaf: NodeRef<'g, Leaf>,
    version: Version,
    perm: Permuter,
    /// Position of the entry yielded or descended into last (may be -1 or
    /// `len` before the first step).
    pos: isize,
    /// The slice of the layer entry this layer hangs from (unused for the
    /// top layer): the layer's keys start with the slices of the frames
    /// above and this one.
    slice: u64,
}

/// What the next position of a frame holds.
enum Entry {
    /// The entry at position `pos`, validated.
    At {
        pos: isize,
        ikey: u64,
        keylenx: u8,
        word: *mut (),
    },
    /// No more entries in this leaf in that direction.
    LeafDone,
    /// The leaf changed (or is deleted): seek again.
    Changed,
}

impl Frame<'_> {
    /// Reads the entry at the next position in direction `dir`, validated
    /// against the frame's version (the caller moves `pos` there).
    #[inline]
    fn next_entry(&self, dir: Dir) -> Entry {
        if self.version.is_deleted() {
            return Entry::Changed;
        }
        let pos = match dir {
            Dir::Forward => self.pos + 1,
            Dir::Backward => self.pos - 1,
        };
        if pos < 0 || pos >= self.perm.len() as isize {
            return Entry::LeafDone;
        }
        let slot = self.perm.get(pos as usize);
        let leaf = &self.leaf;
        let (ikey, keylenx, word) = (leaf.ikey(slot), leaf.keylenx(slot), leaf.value(slot));
        if leaf.version.has_changed(self.version) {
            return Entry::Changed;
        }
        Entry::At {
            pos,
            ikey,
            keylenx,
            word,
        }
    }

    /// Starts loading the suffix records and lower-layer roots of the
    /// entries in the frame's permutation.
    fn prefetch_out_of_line(&self) {
        for i in 0..self.perm.len() {
            let slot = self.perm.get(i);
            let kind = slot_kind(self.leaf.keylenx(slot));
            if kind == SlotKind::Value {
                continue;
            }
            // Relaxed: only a hint; `next_entry` reads the word again
            // (Acquire) before it is used.
            let word = self.leaf.values[slot].load(crate::sync::Ordering::Relaxed);
            match kind {
                SlotKind::Layer => prefetch_node(word.cast()),
                _ => prefetch_line(Leaf::suffix_of(word).cast()),
            }
        }
    }
}

/// The engine behind cursors and iterators. Keys are lent from `bound`.
/// Both buffers are in memory from `R`, the backend's allocator (see
/// [`NodeAllocatorGeneric::raw_allocator`]); a cursor keeps them while it
/// is reset and frees them when it drops.
pub(crate) struct RawCursor<'g, R: Allocator> {
    dir: Dir,
    frames: Buf<Frame<'g>, R>,
    /// The bound: the key yielded last (or sought); entries not beyond it
    /// (in `dir`) are skipped. Written only when an entry is yielded.
    bound: Buf<u8, R>,
    /// How many layers below the top the bound shares with the frames: the
    /// bound's first `8 * shared` bytes are the slices of `frames[1..=shared]`.
    shared: usize,
    start: Start,
    /// True once the bound is a key of this scan (after the first yield or a
    /// keyed seek); false while scanning from an edge.
    bounded: bool,
    exhausted: bool,
}

/// How an entry relates to the bound at its layer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rel {
    Below,
    Equal,
    Above,
    /// A layer whose keys straddle the bound: look inside.
    Straddles,
}

impl<'g, R: Allocator + Copy> RawCursor<'g, R> {
    /// A cursor before the first entry in direction `dir`, its buffers in
    /// memory from `alloc` (none taken yet).
    pub(crate) fn new(dir: Dir, alloc: R) -> Self {
        RawCursor {
            dir,
            frames: Buf::new_in(alloc),
            bound: Buf::new_in(alloc),
            shared: 0,
            start: Start::Edge,
            bounded: false,
            exhausted: false,
        }
    }
}

impl<'g, R: Allocator> RawCursor<'g, R> {
    /// Back to before the first entry in direction `dir`, as a new cursor,
    /// keeping the buffers' memory.
    pub(crate) fn reset(&mut self, dir: Dir) {
        self.dir = dir;
        self.frames.clear();
        self.bound.clear();
        self.shared = 0;
        self.start = Start::Edge;
        self.bounded = false;
        self.exhausted = false;
    }

    /// Positions the cursor so the next step yields the first key at or beyond
    /// `key` (per `start`) in its direction.
    pub(crate) fn seek(&mut self, key: &[u8], start: Start) {
        self.bound.clear();
        self.bound.extend_from_slice(key);
        self.start = start;
        self.bounded = start != Start::Edge;
        self.frames.clear();
        self.exhausted = false;
    }

    /// The key of the entry yielded last.
    pub(crate) fn key(&self) -> &[u8] {
        &self.bound
    }

    /// The scan direction.
    pub(crate) fn dir(&self) -> Dir {
        self.dir
    }

    /// Turns the cursor around: the next step yields the first key beyond the
    /// last one yielded (`inclusive`: or that key itself) in direction `dir`.
    pub(crate) fn turn(&mut self, dir: Dir, inclusive: bool) {
        self.dir = dir;
        self.frames.clear();
        self.exhausted = false;
        if self.bounded {
            self.start = if inclusive {
                Start::Inclusive
            } else {
                Start::Exclusive
            };
        }
    }

    /// The next entry in the cursor's direction: its value word (the key is
    /// in [`Self::key`]).
    ///
    /// # Safety
    /// The caller holds a guard of `tree`'s backend for `'g`, and always
    /// passes the same tree.
    pub(crate) unsafe fn step<A: NodeAllocatorGeneric>(
        &mut self,
        tree: &RawTree<A>,
    ) -> Option<*mut ()> {
        if self.exhausted {
            return None;
        }
        loop {
            if self.frames.is_empty() {
                // SAFETY: the caller's guarantees.
                if !unsafe { self.descend_from_top(tree) } {
                    self.exhausted = true;
                    return None;
                }
            }
            // SAFETY: as above.
            match unsafe { self.advance() } {
                Step::Yield(word) => {
                    self.start = Start::Exclusive;
                    self.bounded = true;
                    return Some(word);
                }
                Step::Again => {}
                Step::Restart => {
                    // Something changed under us: seek again past the bound,
                    // after letting the writer finish.
                    spin_loop();
                    self.frames.clear();
                }
                Step::End => {
                    self.exhausted = true;
                    return None;
                }
            }
        }
    }

    /// Builds the frames from the top root down to the layer that holds the
    /// first entry beyond the bound. False if the tree is empty.
    ///
    /// # Safety
    /// As [`Self::step`].
    unsafe fn descend_from_top<A: NodeAllocatorGeneric>(&mut self, tree: &RawTree<A>) -> bool {
        let root = tree.top_root();
        if root.is_null() {
            return false;
        }
        self.shared = 0;
        // SAFETY: the caller's guarantees.
        unsafe { self.enter_layer(root, 0, self.bounded) };
        true
    }

    /// Pushes a frame for the layer rooted at `root`, which hangs from an
    /// entry with slice `slice` in the innermost frame (anything for the top
    /// layer), positioned relative to the bound if `bounded`, else at the edge.
    ///
    /// # Safety
    /// `root` is a node of a live layer; a guard is held for `'g`.
    unsafe fn enter_layer(&mut self, root: *mut NodeBase, slice: u64, bounded: bool) {
        let depth = self.frames.len();
        let ikey = if bounded {
            ikey_of(self.bound.get(SLICE * depth..).unwrap_or(&[]))
        } else {
            match self.dir {
                Dir::Forward => 0,
                Dir::Backward => u64::MAX,
            }
        };
        // SAFETY: the caller's guarantees.
        let (leaf, version) = unsafe { reach_leaf(root, ikey) };
        self.frames.push(Frame {
            root,
            leaf,
            version,
            perm: Permuter::EMPTY,
            pos: 0,
            slice,
        });
        self.position(bounded);
    }

    /// Snapshots the innermost frame's permutation and sets its position just
    /// before the first entry to visit.
    fn position(&mut self, bounded: bool) {
        let depth = self.frames.len() - 1;
        let f = self.frames.last_mut().expect("a frame");
        f.perm = f.leaf.permutation.load();
        // The leaves after this one in the scan direction are most likely the
        // next ones visited: start loading them while this one is read. A
        // leaf takes longer to arrive from memory than the steps through one
        // leaf take, so one leaf ahead is not enough. (Hints: a stale pointer
        // only wastes a prefetch.)
        let neighbour = |leaf: &Leaf| match self.dir {
            // Relaxed (both): only hints; the steps validate whatever they read.
            Dir::Forward => crate::leaf::unmarked(leaf.next.load(crate::sync::Ordering::Relaxed)),
            Dir::Backward => leaf.prev.load(crate::sync::Ordering::Relaxed),
        };
        let first = neighbour(&f.leaf);
        if !first.is_null() {
            prefetch_node(first.cast());
        }
        // The leaves after that: the parent's children beside this leaf,
        // known without walking the links (the parent may be changing, or a
        // former parent: the pointers read are only prefetched).
        // Relaxed: only a hint.
        let parent = f.leaf.parent.load(crate::sync::Ordering::Relaxed);
        if !parent.is_null() {
            // SAFETY: the leaf was reachable under our guard, and so was every
            // parent it has pointed to since: retired, if at all, after the
            // guard began, so still allocated.
            let parent = unsafe { &*parent };
            let at = parent.child_index(f.leaf.low);
            for d in 2..=AHEAD {
                let i = match self.dir {
                    Dir::Forward => at + d,
                    Dir::Backward => at.wrapping_sub(d),
                };
                if i <= IWIDTH {
                    // Relaxed: only a hint (`child` would load Acquire).
                    prefetch_node(parent.children[i].load(crate::sync::Ordering::Relaxed));
                }
            }
        }
        // Suffix records and lower layers are read one by one as the scan
        // reaches them, each a likely cache miss: start loading them all now
        // so the misses overlap (hints; a torn read only wastes a prefetch).
        // One branch-free pass over the key lengths first skips the loop for
        // leaves with neither (all of them, with keys of up to 8 bytes).
        if f.leaf.keylenx_union() & (KSUF | LAYER) != 0 {
            f.prefetch_out_of_line();
        }
        let n = f.perm.len() as isize;
        f.pos = match (bounded, self.dir) {
            (false, Dir::Forward) => -1,
            (false, Dir::Backward) => n,
            (true, dir) => {
                let at = &self.bound[(SLICE * depth).min(self.bound.len())..];
                // The first position whose (ikey, rank) is not below the
                // bound's, and the entry there if it ties with the bound.
                let found = search(&f.leaf, f.perm, &Key::new(at));
                let lb = found.pos as isize;
                // The frame position is "just before" the first entry to
                // visit; a straddling layer entry is visited (descended into).
                let rel = found
                    .slot
                    .map(|slot| relation(&f.leaf, f.version, slot, at));
                let inclusive = self.start != Start::Exclusive;
                match dir {
                    Dir::Forward => match rel {
                        Some(Rel::Below) => lb,
                        Some(Rel::Equal) if !inclusive => lb,
                        _ => lb - 1,
                    },
                    Dir::Backward => match rel {
                        Some(Rel::Above) => lb,
                        Some(Rel::Equal) if !inclusive => lb,
                        Some(_) => lb + 1,
                        None => lb,
                    },
                }
            }
        };
    }

    /// One step of the innermost frame.
    ///
    /// # Safety
    /// As [`Self::step`].
    #[inline]
    unsafe fn advance(&mut self) -> Step {
        let depth = self.frames.len() - 1;
        let dir = self.dir;
        let f = self.frames.last_mut().expect("a frame");
        let (ikey, keylenx, word) = match f.next_entry(dir) {
            Entry::At {
                pos,
                ikey,
                keylenx,
                word,
            } => {
                f.pos = pos;
                (ikey, keylenx, word)
            }
            // SAFETY: the caller's guarantees.
            Entry::LeafDone => return unsafe { self.next_leaf() },
            Entry::Changed => return Step::Restart,
        };
        match slot_kind(keylenx) {
            SlotKind::Value => {
                self.write_value_key(depth, ikey, keylenx);
                Step::Yield(word)
            }
            // SAFETY: a validated suffix word.
            SlotKind::Suffix => Step::Yield(unsafe { self.write_suffix_key(depth, ikey, word) }),
            SlotKind::Layer => {
                // The layer straddles the bound if the bound runs through it.
                let bytes = ikey.to_be_bytes();
                let through = self.shared >= depth
                    && self.bound.len() >= SLICE * (depth + 1)
                    && self.bound[SLICE * depth..SLICE * (depth + 1)] == bytes;
                let straddles = self.bounded && through && self.bound.len() > SLICE * (depth + 1);
                self.shared = if through {
                    depth + 1
                } else {
                    self.shared.min(depth)
                };
                // SAFETY: a validated layer word points into a live layer.
                unsafe { self.enter_layer(word.cast(), ikey, straddles) };
                Step::Again
            }
        }
    }

    /// Makes the bound the key of an inline entry of the innermost layer.
    #[inline]
    fn write_value_key(&mut self, depth: usize, ikey: u64, keylenx: u8) {
        self.write_prefix(depth);
        // A fixed-size copy, then cut: no variable-length memcpy.
        self.bound.extend_from_slice(&ikey.to_be_bytes());
        self.bound.truncate(SLICE * depth + keylenx as usize);
    }

    /// Makes the bound the key of a suffixed entry of the innermost layer;
    /// returns the entry's value word.
    ///
    /// # Safety
    /// `word` is a suffix word validated under a guard held for `'g` (records
    /// are retired, not freed, so it stays readable).
    #[inline]
    unsafe fn write_suffix_key(&mut self, depth: usize, ikey: u64, word: *mut ()) -> *mut () {
        let s = Leaf::suffix_of(word);
        self.write_prefix(depth);
        self.bound.extend_from_slice(&ikey.to_be_bytes());
        // SAFETY: the caller's guarantee.
        unsafe {
            self.bound.extend_from_slice(Suffix::bytes(s));
            (*s).value()
        }
    }

    /// Yields entries in the cursor's direction to `f` (key, value word) until
    /// it returns false or the entries run out; returns the word of the entry
    /// `f` stopped on (the cursor is on it), or `None` (past the end). The
    /// value entries of one leaf run through a tight loop; layer entries and
    /// leaf changes take [`Self::step`].
    ///
    /// # Safety
    /// As [`Self::step`].
    pub(crate) unsafe fn run<A: NodeAllocatorGeneric>(
        &mut self,
        tree: &RawTree<A>,
        mut f: impl FnMut(&[u8], *mut ()) -> bool,
    ) -> Option<*mut ()> {
        loop {
            // SAFETY: the caller's guarantees.
            let word = unsafe { self.step(tree) }?;
            if !f(&self.bound, word) {
                return Some(word);
            }
            // The rest of this leaf, while its entries are values (inline or
            // suffixed) of the layer the bound was just written for.
            let depth = self.frames.len() - 1;
            loop {
                let frame = self.frames.last_mut().expect("a frame after a yield");
                let Entry::At {
                    pos,
                    ikey,
                    keylenx,
                    word,
                } = frame.next_entry(self.dir)
                else {
                    break;
                };
                let word = match slot_kind(keylenx) {
                    SlotKind::Value => {
                        frame.pos = pos;
                        self.write_value_key(depth, ikey, keylenx);
                        word
                    }
                    SlotKind::Suffix => {
                        frame.pos = pos;
                        // SAFETY: validated by `next_entry`; we hold the guard.
                        unsafe { self.write_suffix_key(depth, ikey, word) }
                    }
                    // `step` enters the layer.
                    SlotKind::Layer => break,
                };
                if !f(&self.bound, word) {
                    return Some(word);
                }
            }
        }
    }

    /// Makes the bound the innermost layer's prefix (`8 * depth` bytes, the
    /// slices of the frames below the top), ready for an entry's bytes.
    #[inline]
    fn write_prefix(&mut self, depth: usize) {
        if self.shared < depth {
            self.write_slices(depth);
        }
        self.bound.truncate(SLICE * depth);
    }

    /// The slow part of [`Self::write_prefix`]: the bound's slices below the
    /// top differ from the frames' from layer `shared + 1` on.
    #[cold]
    fn write_slices(&mut self, depth: usize) {
        self.bound.truncate(SLICE * self.shared);
        for f in &self.frames[self.shared + 1..=depth] {
            self.bound.extend_from_slice(&f.slice.to_be_bytes());
        }
        self.shared = depth;
    }

    /// The innermost frame's leaf is used up: move to its neighbour in the
    /// scan direction, or leave the layer.
    ///
    /// # Safety
    /// As [`Self::step`].
    #[inline(never)]
    unsafe fn next_leaf(&mut self) -> Step {
        let depth = self.frames.len() - 1;
        let f = self.frames.last().expect("a frame");
        // The neighbour, and whether it was reached by a validated link (then
        // all its keys are beyond the bound: see the module docs).
        let neighbour = match self.dir {
            Dir::Forward => {
                let next = f.leaf.next_leaf();
                if f.leaf.version.has_changed(f.version) {
                    return Step::Restart;
                }
                if next.is_null() {
                    None
                } else {
                    // SAFETY: linked leaves live while the guard does.
                    let next = unsafe { NodeRef::<'g, Leaf>::new(next) };
                    Some((next, next.version.stable(), true))
                }
            }
            Dir::Backward => {
                let low = f.leaf.low;
                if f.leaf.version.has_changed(f.version) {
                    return Step::Restart;
                }
                if low == 0 {
                    None
                } else {
                    // SAFETY: we hold a guard.
                    let linked = unsafe { left_neighbour(&f.leaf, f.version) };
                    match linked {
                        Some((left, version)) => Some((left, version, true)),
                        None => {
                            // SAFETY: `root` is a node of a live layer; we hold a guard.
                            let (leaf, version) = unsafe { reach_leaf(f.root, low - 1) };
                            // Still unchanged after the neighbour's version was
                            // taken: so at that version the neighbour had not
                            // absorbed our range (a removal would have changed
                            // us first).
                            if f.leaf.version.has_changed(f.version) {
                                return Step::Restart;
                            }
                            Some((leaf, version, false))
                        }
                    }
                }
            }
        };
        match neighbour {
            None => {
                self.frames.pop();
                if self.frames.is_empty() {
                    Step::End
                } else {
                    self.shared = self.shared.min(depth - 1);
                    Step::Again
                }
            }
            Some((leaf, version, linked)) => {
                let f = self.frames.last_mut().expect("a frame");
                f.leaf = leaf;
                f.version = version;
                // A leaf found by descending may hold keys we have passed
                // already: position it against the bound when the bound runs
                // through this layer.
                let bounded = !linked && self.bounded && self.shared >= depth;
                self.position(bounded);
                Step::Again
            }
        }
    }
}

/// The left neighbour of `leaf` through its `prev` link, with a stable
/// version, if the link is consistent: the neighbour is not deleted, its
/// `next` is `leaf`, and `leaf` is still at `version` after both were read
/// (an unlink of `leaf` marks it deleted before it changes the neighbour's
/// `next`). Then at that moment it held the keys just below `leaf.low`; a
/// later change of it fails the version checks of the steps that read it.
/// `None`: the caller finds the neighbour by descending from the root.
///
/// # Safety
/// The caller holds a guard.
pub(crate) unsafe fn left_neighbour<'g>(
    leaf: &NodeRef<'g, Leaf>,
    version: Version,
) -> Option<(NodeRef<'g, Leaf>, Version)> {
    // Acquire: pairs with the Release stores of `prev` in `leaflink`, so the
    // neighbour is fully built.
    let p = leaf.prev.load(crate::sync::Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: a leaf linked from a live leaf is unlinked (and so no longer
    // linked from it) before it is retired; we hold a guard.
    let left = unsafe { NodeRef::<'g, Leaf>::new(p) };
    let v = left.version.stable();
    let linked = !v.is_deleted() && left.next_leaf() == leaf.as_ptr();
    (linked && !leaf.version.has_changed(version)).then_some((left, v))
}

enum Step {
    Yield(*mut ()),
    Again,
    Restart,
    End,
}

/// How the entry in `slot`, whose (ikey, rank) equals the bound's at this
/// layer, relates to the bound's remaining bytes `at`. If the leaf changed
/// since `version`, the answer is arbitrary: the frame fails validation at its
/// first step and the cursor re-seeks.
fn relation(leaf: &Leaf, version: Version, slot: usize, at: &[u8]) -> Rel {
    // The word before the keylenx, as in `get`: see `insert::make_layer`.
    let word = leaf.value(slot);
    match slot_kind(leaf.keylenx(slot)) {
        SlotKind::Value => Rel::Equal,
        SlotKind::Layer => Rel::Straddles,
        SlotKind::Suffix => {
            if leaf.version.has_changed(version) {
                return Rel::Equal;
            }
            // SAFETY: a validated suffix word; records are retired, not freed,
            // and the caller holds a guard.
            match unsafe { Suffix::bytes(Leaf::suffix_of(word)) }.cmp(&at[SLICE..]) {
                Ordering::Less => Rel::Below,
                Ordering::Equal => Rel::Equal,
                Ordering::Greater => Rel::Above,
            }
        }
    }
}
