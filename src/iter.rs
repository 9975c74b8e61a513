//! Cursors and iterators over a [`Tree`]: the safe faces of [`crate::scan`].
//!
//! The cursor and the iterators keep their key and frame buffers in memory
//! from the backend's allocator. Only the iterators that hand out owned
//! keys ([`KeyBuf`]: inline up to 63 bytes, else on the heap) need the
//! `alloc` feature.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;
use core::fmt;
use core::iter::FusedIterator;
use core::ops::{self, Bound, ControlFlow};

use crate::backend::NodeAllocatorGeneric;
use crate::buf::Buf;
#[cfg(feature = "alloc")]
use crate::key_buf::KeyBuf;
use crate::scan::{Dir, RawCursor, Start};
use crate::tree::Tree;
use crate::value::ValueStorage;
use allocator_api2::alloc::Allocator;

impl<S: ValueStorage, A: NodeAllocatorGeneric> Tree<S, A> {
    /// A cursor, before the first entry; see [`Cursor`].
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn cursor<'g>(&self, guard: &'g A::Guard<'_>) -> Cursor<'_, 'g, S, A>
    where
        S: 'g,
    {
        self.check(guard);
        Cursor::new(self)
    }

    /// The entries whose keys fall in `range`, in key order (and reversed with
    /// `.rev()`), as with `BTreeMap::range`. Any range of byte-string-like
    /// keys works (`&[u8]`, `&str`, `Vec<u8>`, `[u8; N]`...), and so does a
    /// pair of `Bound`s of them; see [`KeyRange`].
    /// An empty or inverted range yields nothing (where `BTreeMap` panics).
    /// See [`Range`] for what a scan guarantees under concurrent writes.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
    ///     tree.insert(k, i as u64, &g);
    /// }
    /// let keys: Vec<_> = tree.range(&b"b"[..]..&b"d"[..], &g).map(|(k, _)| k).collect();
    /// assert_eq!(keys, [b"b", b"c"]);
    /// let (last, v) = tree.range(&b"b"[..].., &g).next_back().unwrap();
    /// assert_eq!((last, v), (b"d".into(), 3));
    /// assert_eq!(tree.range(.., &g).count(), 4);
    /// assert_eq!(tree.range("b"..="c", &g).count(), 2);
    /// let from = String::from("c");
    /// assert_eq!(tree.range(from.., &g).count(), 2);
    /// ```
    ///
    /// Each key comes as a [`KeyBuf`]: keys of up to 63 bytes are inline, so
    /// a loop over them allocates nothing per entry.
    ///
    /// Needs the `alloc` feature (the items own their keys); without it,
    /// [`Tree::cursor`] lends each key.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    #[track_caller]
    pub fn range<'g, R: KeyRange>(&self, range: R, guard: &'g A::Guard<'_>) -> Range<'_, 'g, S, A>
    where
        S: 'g,
    {
        self.check(guard);
        let (start, end) = range.bounds();
        Range::new(self, start, end)
    }

    /// All entries in key order, each key a [`KeyBuf`] (no allocation for
    /// keys of up to 63 bytes).
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// tree.insert("b", 2, &g);
    /// tree.insert("a", 1, &g);
    /// let mut seen = Vec::new();
    /// for (k, v) in tree.iter(&g) {
    ///     seen.push((k[0], v));
    /// }
    /// assert_eq!(seen, [(b'a', 1), (b'b', 2)]);
    /// ```
    ///
    /// Needs the `alloc` feature (the items own their keys); without it,
    /// [`Tree::cursor`] lends each key.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    #[track_caller]
    pub fn iter<'g>(&self, guard: &'g A::Guard<'_>) -> Range<'_, 'g, S, A>
    where
        S: 'g,
    {
        self.range(.., guard)
    }

    /// All keys in order, as [`KeyBuf`]s. Needs the `alloc` feature (the
    /// keys are owned); without it, [`Tree::cursor`] lends each key.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    #[track_caller]
    pub fn keys<'g>(
        &self,
        guard: &'g A::Guard<'_>,
    ) -> impl DoubleEndedIterator<Item = KeyBuf> + FusedIterator
    where
        S: 'g,
    {
        self.iter(guard).map(|(k, _)| k)
    }

    /// All values in key order.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn values<'g>(
        &self,
        guard: &'g A::Guard<'_>,
    ) -> impl DoubleEndedIterator<Item = S::Ref<'g>> + FusedIterator
    where
        S: 'g,
    {
        self.check(guard);
        Values(Span::new(self, Bound::Unbounded, Bound::Unbounded))
    }

    /// The entries whose keys start with `prefix`, in key order. A prefix of 8
    /// bytes or more goes straight down to the trie layer that holds it.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// for k in ["user/1/name", "user/1/mail", "user/2/name", "users"] {
    ///     tree.insert(k, 0, &g);
    /// }
    /// assert_eq!(tree.prefix(b"user/1/", &g).count(), 2);
    /// ```
    ///
    /// Needs the `alloc` feature (the items own their keys); without it,
    /// [`Cursor::seek`] to the prefix lends each key.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    #[track_caller]
    pub fn prefix<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        prefix: &K,
        guard: &'g A::Guard<'_>,
    ) -> Range<'_, 'g, S, A>
    where
        S: 'g,
    {
        let p = prefix.as_ref();
        match prefix_end(p) {
            Some(end) => self.range((Bound::Included(p), Bound::Excluded(&end[..])), guard),
            None => self.range((Bound::Included(p), Bound::Unbounded), guard),
        }
    }

    /// The first entry in key order. Needs the `alloc` feature (the key is
    /// owned); without it, [`Cursor::seek_first`] lends it.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    #[track_caller]
    pub fn first<'g>(&self, guard: &'g A::Guard<'_>) -> Option<(KeyBuf, S::Ref<'g>)>
    where
        S: 'g,
    {
        self.iter(guard).next()
    }

    /// The last entry in key order. Needs the `alloc` feature (the key is
    /// owned); without it, [`Cursor::seek_last`] lends it.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    #[track_caller]
    pub fn last<'g>(&self, guard: &'g A::Guard<'_>) -> Option<(KeyBuf, S::Ref<'g>)>
    where
        S: 'g,
    {
        self.iter(guard).next_back()
    }
}

/// The backend's allocator as the cursors hold it: behind `dyn`, so that
/// the cursor and iterator types need no bound on their backend (only a
/// buffer's growth and its free, both rare, go through the vtable).
type RawAlloc<'t> = &'t dyn Allocator;

/// A range of byte-string keys, what [`Tree::range`] takes: `..`, `a..b`,
/// `a..`, `..b`, `a..=b`, `..=b` and `(Bound, Bound)` pairs of any
/// `AsRef<[u8]>` key type (`&[u8]`, `&str`, `Vec<u8>`, `String`, `&[u8; N]`),
/// without naming the key type.
///
/// ```
/// use core::ops::Bound;
/// use masstree::KeyRange;
/// assert_eq!((..).bounds(), (Bound::Unbounded, Bound::Unbounded));
/// assert_eq!(("a".."b").bounds(), (Bound::Included(&b"a"[..]), Bound::Excluded(&b"b"[..])));
/// let lo = vec![1u8];
/// assert_eq!((Bound::Excluded(&lo), Bound::Unbounded).bounds().0, Bound::Excluded(&[1u8][..]));
/// ```
pub trait KeyRange {
    /// The start and end bounds as byte strings.
    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>);
}

impl KeyRange for ops::RangeFull {
    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (Bound::Unbounded, Bound::Unbounded)
    }
}

/// `KeyRange` for a std range type, from its two `Bound`s.
macro_rules! key_range {
    ($($t:ident),*) => {$(
        impl<K: AsRef<[u8]>> KeyRange for ops::$t<K> {
            fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
                use ops::RangeBounds;
                let start = self.start_bound().map(AsRef::as_ref);
                (start, self.end_bound().map(AsRef::as_ref))
            }
        }
    )*};
}
key_range!(Range, RangeFrom, RangeTo, RangeInclusive, RangeToInclusive);

impl<K: AsRef<[u8]>> KeyRange for (Bound<K>, Bound<K>) {
    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            self.0.as_ref().map(AsRef::as_ref),
            self.1.as_ref().map(AsRef::as_ref),
        )
    }
}

/// Where [`Cursor::seek`] lands, relative to the key it is given.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Seek {
    /// The first key `>=` the given one.
    Ge,
    /// The first key `>` the given one.
    Gt,
    /// The last key `<=` the given one.
    Le,
    /// The last key `<` the given one.
    Lt,
}

/// A position in a tree that moves both ways, lending each key from an
/// internal buffer (no allocation per step). Made by [`Tree::cursor`].
///
/// The buffer, and one frame per trie layer the cursor is inside, are in
/// memory from the backend's allocator
/// ([`raw_allocator`](crate::backend::NodeAllocatorGeneric::raw_allocator)):
/// a few dozen bytes, grown with the longest key seen, kept across seeks and
/// freed when the cursor drops. A cursor needs no global allocator. If the
/// allocator refuses to grow them, the cursor goes to the same out-of-memory
/// handler as [`Tree::insert`].
///
/// Under concurrent writes a cursor sees keys in strictly increasing order
/// while it moves forward (decreasing backward), and every key that is present
/// the whole time.
///
/// ```
/// use masstree::{InlineMassTree, Seek};
/// let tree = InlineMassTree::<u64>::new();
/// let g = tree.guard();
/// for (i, k) in ["apple", "banana", "cherry"].iter().enumerate() {
///     tree.insert(k, i as u64, &g);
/// }
/// let mut c = tree.cursor(&g);
/// assert_eq!(c.seek(b"b", Seek::Ge), Some((&b"banana"[..], 1)));
/// assert_eq!(c.next(), Some((&b"cherry"[..], 2)));
/// assert_eq!(c.next(), None);
/// assert_eq!(c.prev(), Some((&b"cherry"[..], 2)));
/// assert_eq!(c.prev(), Some((&b"banana"[..], 1)));
/// ```
pub struct Cursor<'t, 'g, S, A> {
    tree: &'t Tree<S, A>,
    raw: RawCursor<'g, RawAlloc<'t>>,
    /// The word of the entry the cursor is on, if any.
    on: Option<*mut ()>,
    /// Whether anything was ever found (so the buffer holds a real key).
    moved: bool,
}

impl<'t, 'g, S: ValueStorage, A: NodeAllocatorGeneric> Cursor<'t, 'g, S, A>
where
    S: 'g,
{
    pub(crate) fn new(tree: &'t Tree<S, A>) -> Self {
        Cursor {
            tree,
            raw: RawCursor::new(Dir::Forward, tree.backend().raw_allocator() as RawAlloc<'t>),
            on: None,
            moved: false,
        }
    }

    fn entry(&self) -> Option<(&[u8], S::Ref<'g>)> {
        // SAFETY: the word was read under the guard the cursor borrows for 'g.
        self.on.map(|w| (self.raw.key(), unsafe { S::as_ref(w) }))
    }

    fn step(&mut self) -> Option<(&[u8], S::Ref<'g>)> {
        // SAFETY: `Tree::cursor` checked that the guard (held for 'g) is ours.
        self.on = unsafe { self.raw.step(self.tree.raw()) };
        self.moved |= self.on.is_some();
        self.entry()
    }

    /// Moves to the entry `to` says, relative to `key`, and returns it; `None`
    /// (and no position) if there is none.
    pub fn seek<K: AsRef<[u8]> + ?Sized>(
        &mut self,
        key: &K,
        to: Seek,
    ) -> Option<(&[u8], S::Ref<'g>)> {
        let (dir, start) = match to {
            Seek::Ge => (Dir::Forward, Start::Inclusive),
            Seek::Gt => (Dir::Forward, Start::Exclusive),
            Seek::Le => (Dir::Backward, Start::Inclusive),
            Seek::Lt => (Dir::Backward, Start::Exclusive),
        };
        self.raw.reset(dir);
        self.raw.seek(key.as_ref(), start);
        self.step()
    }

    /// Moves to the first entry of the tree.
    pub fn seek_first(&mut self) -> Option<(&[u8], S::Ref<'g>)> {
        self.raw.reset(Dir::Forward);
        self.step()
    }

    /// Moves to the last entry of the tree.
    pub fn seek_last(&mut self) -> Option<(&[u8], S::Ref<'g>)> {
        self.raw.reset(Dir::Backward);
        self.step()
    }

    /// The entry the cursor is on.
    pub fn current(&self) -> Option<(&[u8], S::Ref<'g>)> {
        self.entry()
    }

    /// Moves to the next entry in key order and returns it. From before the
    /// first entry (a new cursor) this is the first entry; after the last it
    /// stays past the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<(&[u8], S::Ref<'g>)> {
        self.go(Dir::Forward)
    }

    /// Moves to the previous entry in key order and returns it.
    pub fn prev(&mut self) -> Option<(&[u8], S::Ref<'g>)> {
        self.go(Dir::Backward)
    }

    /// Calls `f` on each entry after the cursor's position, in key order,
    /// until `f` breaks or the entries run out, and returns what `f` broke
    /// with. The cursor ends on the entry `f` broke on, or past the end.
    ///
    /// The entries are those a loop of [`next`](Self::next) would yield, with
    /// the same guarantees under concurrent writes, for less work per entry:
    /// within a leaf, a tight loop.
    ///
    /// ```
    /// use core::ops::ControlFlow;
    /// use masstree::{InlineMassTree, Seek};
    /// let tree = InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// for i in 0..100u64 {
    ///     tree.insert(&i.to_be_bytes(), i, &g);
    /// }
    /// // The sum of the 10 values from key 20 on.
    /// let mut c = tree.cursor(&g);
    /// c.seek(&20u64.to_be_bytes(), Seek::Lt);
    /// let (mut sum, mut n) = (0, 0);
    /// let stopped = c.for_each_next(|_key, v| {
    ///     sum += v;
    ///     n += 1;
    ///     if n == 10 { ControlFlow::Break(v) } else { ControlFlow::Continue(()) }
    /// });
    /// assert_eq!((sum, stopped), ((20..30).sum(), ControlFlow::Break(29)));
    /// assert_eq!(c.current(), Some((&29u64.to_be_bytes()[..], 29)));
    /// ```
    pub fn for_each_next<B>(
        &mut self,
        f: impl FnMut(&[u8], S::Ref<'g>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        self.run(Dir::Forward, f)
    }

    /// As [`for_each_next`](Self::for_each_next), downward: each entry before
    /// the cursor's position, in descending key order.
    pub fn for_each_prev<B>(
        &mut self,
        f: impl FnMut(&[u8], S::Ref<'g>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        self.run(Dir::Backward, f)
    }

    fn run<B>(
        &mut self,
        dir: Dir,
        mut f: impl FnMut(&[u8], S::Ref<'g>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        self.face(dir);
        let mut broke = None;
        let mut visited = false;
        // SAFETY: `Tree::cursor` checked that the guard (held for 'g) is ours.
        self.on = unsafe {
            self.raw.run(self.tree.raw(), |key, word| {
                visited = true;
                // SAFETY: read under the guard held for 'g.
                match f(key, S::as_ref(word)) {
                    ControlFlow::Continue(()) => true,
                    ControlFlow::Break(b) => {
                        broke = Some(b);
                        false
                    }
                }
            })
        };
        self.moved |= visited;
        match broke {
            Some(b) => ControlFlow::Break(b),
            None => ControlFlow::Continue(()),
        }
    }

    fn go(&mut self, dir: Dir) -> Option<(&[u8], S::Ref<'g>)> {
        self.face(dir);
        self.step()
    }

    /// Turns the cursor to move in direction `dir` next.
    fn face(&mut self, dir: Dir) {
        if self.raw.dir() != dir {
            if self.moved {
                // From an entry: the one beyond it. From past an end: the
                // last entry we saw, which is the first one back.
                let inclusive = self.on.is_none();
                self.raw.turn(dir, inclusive);
            } else {
                self.raw.reset(dir);
            }
        }
    }
}

impl<S: ValueStorage, A: NodeAllocatorGeneric> fmt::Debug for Cursor<'_, '_, S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor")
            .field("key", &self.on.map(|_| self.raw.key()))
            .finish()
    }
}

/// An iterator over the entries of a key range, in key order, from both ends.
/// Made by [`Tree::range`], [`Tree::iter`] and [`Tree::prefix`]; each item
/// is a key, copied out into a [`KeyBuf`] (inline up to 63 bytes, so no
/// allocation per entry for such keys), and a value. Needs the `alloc`
/// feature.
///
/// Under concurrent writes it yields keys strictly increasing from the front
/// (decreasing from the back) without duplicates, every key present in the
/// range for the whole iteration, and only pairs that were present at some
/// moment during it. The guard it borrows keeps all of it alive: to let a long
/// scan release memory now and then, drop the iterator, drop or refresh the
/// guard, and start a new range just beyond the last key seen
/// (`tree.range(&last[..].., &guard)` then skip it, or
/// `tree.range((Bound::Excluded(&last[..]), Bound::Unbounded), &guard)`).
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub struct Range<'t, 'g, S, A>(Span<'t, 'g, S, A>);

/// The values of a tree in key order, from both ends: what
/// [`Tree::values`] returns. Keys stay in the cursors' buffers, so this
/// needs no `alloc`.
struct Values<'t, 'g, S, A>(Span<'t, 'g, S, A>);

/// Two cursors walking toward each other between two bounds: the engine of
/// [`Range`] and [`Tree::values`]. Keys are lent from the cursors.
struct Span<'t, 'g, S, A> {
    tree: &'t Tree<S, A>,
    /// The front end (moving forward, from the start bound) and the back end.
    ends: [End<'g, RawAlloc<'t>>; 2],
    done: bool,
}

/// One end of a [`Span`].
struct End<'g, R: Allocator> {
    cursor: RawCursor<'g, R>,
    /// Where this end starts (its bytes in `key`); the other end stops there.
    bound: Bound<()>,
    key: Buf<u8, R>,
    started: bool,
}

impl<'g, R: Allocator + Copy> End<'g, R> {
    fn new(dir: Dir, bound: Bound<&[u8]>, alloc: R) -> Self {
        let mut cursor = RawCursor::new(dir, alloc);
        let mut key = Buf::new_in(alloc);
        match bound {
            Bound::Included(k) => cursor.seek(k, Start::Inclusive),
            Bound::Excluded(k) => cursor.seek(k, Start::Exclusive),
            Bound::Unbounded => {}
        }
        if let Bound::Included(k) | Bound::Excluded(k) = bound {
            key.extend_from_slice(k);
        }
        End {
            cursor,
            bound: bound.map(|_| ()),
            key,
            started: false,
        }
    }

    fn bound(&self) -> Bound<&[u8]> {
        self.bound.map(|()| &self.key[..])
    }
}

impl<'t, 'g, S: ValueStorage, A: NodeAllocatorGeneric> Span<'t, 'g, S, A>
where
    S: 'g,
{
    fn new(tree: &'t Tree<S, A>, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Self {
        let alloc: RawAlloc<'t> = tree.backend().raw_allocator();
        Span {
            tree,
            ends: [
                End::new(Dir::Forward, start, alloc),
                End::new(Dir::Backward, end, alloc),
            ],
            done: false,
        }
    }

    /// The next entry from end `i` (0: front, 1: back), unless it lies
    /// beyond the other end's bound or where the other end already was;
    /// its key is then [`Self::key`]`(i)`.
    fn step(&mut self, i: usize) -> Option<S::Ref<'g>> {
        if self.done {
            return None;
        }
        // SAFETY: `Tree::range` and `Tree::values` checked that the guard
        // (held for 'g) is ours.
        let word = unsafe { self.ends[i].cursor.step(self.tree.raw()) };
        let (this, other) = (&self.ends[i], &self.ends[1 - i]);
        let key = this.cursor.key();
        // Ordered in this end's direction: `Greater` is further along.
        let along = |b: &[u8]| match this.cursor.dir() {
            Dir::Forward => key.cmp(b),
            Dir::Backward => b.cmp(key),
        };
        let stop = match other.bound() {
            Bound::Included(b) => along(b).is_gt(),
            Bound::Excluded(b) => along(b).is_ge(),
            Bound::Unbounded => false,
        } || (other.started && along(other.cursor.key()).is_ge());
        match word {
            Some(w) if !stop => {
                self.ends[i].started = true;
                // SAFETY: read under the guard held for 'g.
                Some(unsafe { S::as_ref(w) })
            }
            _ => {
                self.done = true;
                None
            }
        }
    }

    /// The key of the entry end `i` yielded last.
    #[cfg(feature = "alloc")]
    fn key(&self, i: usize) -> &[u8] {
        self.ends[i].cursor.key()
    }
}

#[cfg(feature = "alloc")]
impl<'t, 'g, S: ValueStorage, A: NodeAllocatorGeneric> Range<'t, 'g, S, A>
where
    S: 'g,
{
    pub(crate) fn new(tree: &'t Tree<S, A>, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Self {
        Range(Span::new(tree, start, end))
    }

    fn step(&mut self, i: usize) -> Option<(KeyBuf, S::Ref<'g>)> {
        let v = self.0.step(i)?;
        Some((KeyBuf::from(self.0.key(i)), v))
    }
}

#[cfg(feature = "alloc")]
impl<'g, S: ValueStorage, A: NodeAllocatorGeneric> Iterator for Range<'_, 'g, S, A>
where
    S: 'g,
{
    type Item = (KeyBuf, S::Ref<'g>);

    fn next(&mut self) -> Option<Self::Item> {
        self.step(0)
    }
}

#[cfg(feature = "alloc")]
impl<'g, S: ValueStorage, A: NodeAllocatorGeneric> DoubleEndedIterator for Range<'_, 'g, S, A>
where
    S: 'g,
{
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(1)
    }
}

#[cfg(feature = "alloc")]
impl<'g, S: ValueStorage, A: NodeAllocatorGeneric> FusedIterator for Range<'_, 'g, S, A> where S: 'g {}

#[cfg(feature = "alloc")]
impl<S: ValueStorage, A: NodeAllocatorGeneric> fmt::Debug for Range<'_, '_, S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Range")
            .field("start", &self.0.ends[0].bound())
            .field("end", &self.0.ends[1].bound())
            .finish_non_exhaustive()
    }
}

impl<'g, S: ValueStorage, A: NodeAllocatorGeneric> Iterator for Values<'_, 'g, S, A>
where
    S: 'g,
{
    type Item = S::Ref<'g>;

    fn next(&mut self) -> Option<S::Ref<'g>> {
        self.0.step(0)
    }
}

impl<'g, S: ValueStorage, A: NodeAllocatorGeneric> DoubleEndedIterator for Values<'_, 'g, S, A>
where
    S: 'g,
{
    fn next_back(&mut self) -> Option<S::Ref<'g>> {
        self.0.step(1)
    }
}

impl<'g, S: ValueStorage, A: NodeAllocatorGeneric> FusedIterator for Values<'_, 'g, S, A> where S: 'g
{}

/// The smallest key greater than every key that starts with `prefix`
/// (`None`: no such key, the range is unbounded above).
#[cfg(feature = "alloc")]
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let keep = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=keep].to_vec();
    end[keep] += 1;
    Some(end)
}
