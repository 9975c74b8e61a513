//! [`TypedTree`]: a tree keyed by typed values, stored under their
//! order-preserving encodings ([`crate::keycode`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::ops::{Bound, RangeBounds, RangeFull};

use crate::backend::NodeAllocatorGeneric;
use crate::iter::Range;
use crate::key_buf::KeyBuf;
use crate::keycode::{KeyDecode, KeyEncode, KeyPrefix};
use crate::tree::Tree;
use crate::update::Change;
use crate::value::{OutOfLine, ValueStorage};

/// A concurrent ordered map keyed by `K` (integers, `bool`, `char`, strings,
/// byte strings, options and tuples of these): keys are stored encoded so
/// that their byte order is their `Ord` order, and come back decoded.
///
/// It is a [`Tree`] underneath, with the same guards, backends and
/// concurrency; tuple keys share trie layers by their leading elements, and
/// [`TypedTree::prefix`] scans all keys that start with given elements.
///
/// ```
/// use masstree::TypedMassTree;
/// let tree: TypedMassTree<(String, u32), &str> = TypedMassTree::new();
/// let g = tree.guard();
/// tree.insert(&("bob".to_string(), 7), "seven", &g);
/// tree.insert(&("amy".to_string(), 10), "ten", &g);
/// tree.insert(&("amy".to_string(), 9), "nine", &g);
/// let amy: Vec<u32> = tree.prefix(&("amy",), &g).map(|((_, n), _)| n).collect();
/// assert_eq!(amy, [9, 10]);
/// assert_eq!(tree.get(&("bob".to_string(), 7), &g), Some(&"seven"));
/// ```
pub struct TypedTree<K, S, A> {
    tree: Tree<S, A>,
    _keys: PhantomData<fn(K) -> K>,
}

/// A [`TypedTree`] whose values (of any type) are stored out of line.
#[cfg(feature = "seize")]
pub type TypedMassTree<K, V, A = crate::alloc_backends::seize::SeizeBackend> =
    TypedTree<K, OutOfLine<V>, A>;
/// A [`TypedTree`] whose values (of any type) are stored out of line.
#[cfg(not(feature = "seize"))]
pub type TypedMassTree<K, V, A> = TypedTree<K, OutOfLine<V>, A>;

/// The encoding of `key`.
fn encoded<Q: KeyEncode + ?Sized>(key: &Q) -> Vec<u8> {
    let mut out = Vec::new();
    key.encode(&mut out);
    out
}

#[cfg(feature = "seize")]
impl<K: KeyDecode, S: ValueStorage> TypedTree<K, S, crate::alloc_backends::seize::SeizeBackend> {
    /// An empty tree on the [`seize`](crate::alloc_backends::seize) backend.
    pub fn new() -> Self {
        Self::new_in(crate::alloc_backends::seize::SeizeBackend::new())
    }
}

#[cfg(feature = "seize")]
impl<K, S, A: allocator_api2::alloc::Allocator>
    TypedTree<K, S, crate::alloc_backends::seize::SeizeBackend<A>>
{
    /// A read guard that is `Send + Sync`, for async tasks and other threads;
    /// see [`Tree::owned_guard`].
    ///
    /// ```
    /// let tree = masstree::TypedMassTree::<u32, &str>::new();
    /// tree.insert(&1, "one", &tree.guard());
    /// let tree = &tree;
    /// let g = tree.owned_guard();
    /// let v = std::thread::scope(|s| s.spawn(move || *tree.get(&1, &g).unwrap()).join().unwrap());
    /// assert_eq!(v, "one");
    /// ```
    pub fn owned_guard(&self) -> crate::OwnedGuard<'_> {
        self.tree.owned_guard()
    }
}

impl<K: KeyDecode, S: ValueStorage, A: NodeAllocatorGeneric + Default> Default
    for TypedTree<K, S, A>
{
    fn default() -> Self {
        Self::new_in(A::default())
    }
}

impl<K: KeyDecode, S: ValueStorage, A: NodeAllocatorGeneric> TypedTree<K, S, A> {
    /// An empty tree whose nodes and values come from `backend`.
    pub fn new_in(backend: A) -> Self {
        TypedTree {
            tree: Tree::new_in(backend),
            _keys: PhantomData,
        }
    }

    /// A read guard; see [`Tree::guard`].
    pub fn guard(&self) -> A::Guard<'_> {
        self.tree.guard()
    }

    /// The value of `key`, if present.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn get<'g, Q>(&self, key: &Q, guard: &'g A::Guard<'_>) -> Option<S::Ref<'g>>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        self.tree.get(&encoded(key), guard)
    }

    /// True if `key` is present.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn contains_key<Q>(&self, key: &Q, guard: &A::Guard<'_>) -> bool
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        self.get(key, guard).is_some()
    }

    /// Inserts `value` under `key`, returning the previous value; see
    /// [`Tree::insert`].
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn insert<'g, Q>(
        &self,
        key: &Q,
        value: S::Value,
        guard: &'g A::Guard<'_>,
    ) -> Option<S::Ref<'g>>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        self.tree.insert(&encoded(key), value, guard)
    }

    /// Removes `key`, returning its value; see [`Tree::remove`].
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn remove<'g, Q>(&self, key: &Q, guard: &'g A::Guard<'_>) -> Option<S::Ref<'g>>
    where
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        self.tree.remove(&encoded(key), guard)
    }

    /// Changes the value of `key` as `f` decides, atomically; see
    /// [`Tree::update`].
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn update<'g, Q>(
        &self,
        key: &Q,
        f: impl FnOnce(Option<S::Ref<'g>>) -> Change<S::Value>,
        guard: &'g A::Guard<'_>,
    ) -> Option<S::Ref<'g>>
    where
        S: 'g,
        K: Borrow<Q>,
        Q: KeyEncode + ?Sized,
    {
        self.tree.update(&encoded(key), f, guard)
    }

    /// The entries whose keys lie in `range`, in key order. The bounds are
    /// keys or what keys borrow as, by value or by reference (the trait
    /// `KeyBound`): `&str` for `String` keys, `(&str, u32)` for
    /// `(String, u32)` keys, or a leading part of a tuple key, which sorts
    /// before every key that starts with it.
    ///
    /// ```
    /// let tree = masstree::TypedMassTree::<i32, ()>::new();
    /// let g = tree.guard();
    /// for k in -3..3 {
    ///     tree.insert(&k, (), &g);
    /// }
    /// let keys: Vec<i32> = tree.range(-2..1, &g).map(|(k, _)| k).collect();
    /// assert_eq!(keys, [-2, -1, 0]);
    /// let (lo, hi) = (-1, 1);
    /// assert_eq!(tree.range(&lo..=&hi, &g).count(), 3);
    /// ```
    ///
    /// Borrowed bounds for `String` keys, and tuple keys bounded by whole
    /// tuples or by their leading elements:
    ///
    /// ```
    /// use std::ops::Bound::{Excluded, Unbounded};
    /// use masstree::TypedMassTree;
    ///
    /// let words: TypedMassTree<String, u32> = TypedMassTree::new();
    /// let g = words.guard();
    /// for (i, w) in ["apple", "kiwi", "mango", "pear"].into_iter().enumerate() {
    ///     words.insert(w, i as u32, &g);
    /// }
    /// let a_to_m: Vec<String> = words.range("a".."m", &g).map(|(w, _)| w).collect();
    /// assert_eq!(a_to_m, ["apple", "kiwi"]);
    /// let after = String::from("kiwi");
    /// assert_eq!(words.range((Excluded(after.as_str()), Unbounded), &g).count(), 2);
    ///
    /// let scores: TypedMassTree<(String, u32), ()> = TypedMassTree::new();
    /// let g = scores.guard();
    /// for (name, n) in [("amy", 1), ("amy", 7), ("bob", 3), ("cat", 2)] {
    ///     scores.insert(&(name.to_string(), n), (), &g);
    /// }
    /// // From ("amy", 5) up to ("bob", 3), excluded.
    /// let some: Vec<(String, u32)> = scores.range(("amy", 5)..("bob", 3), &g).map(|(k, _)| k).collect();
    /// assert_eq!(some, [("amy".to_string(), 7)]);
    /// // Leading elements as bounds: every key of amy and bob, then from bob on.
    /// assert_eq!(scores.range(("amy",)..("cat",), &g).count(), 3);
    /// assert_eq!(scores.range(("bob",).., &g).count(), 2);
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn range<'g, R: KeyRange<K>>(
        &self,
        range: R,
        guard: &'g A::Guard<'_>,
    ) -> TypedRange<'_, 'g, K, S, A>
    where
        S: 'g,
    {
        TypedRange::new(self.tree.range(range.encoded_bounds(), guard))
    }

    /// All entries in key order.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn iter<'g>(&self, guard: &'g A::Guard<'_>) -> TypedRange<'_, 'g, K, S, A>
    where
        S: 'g,
    {
        self.range(.., guard)
    }

    /// The entries whose keys start with the elements of `prefix` (a tuple
    /// of references to leading elements of `K`), in key order.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn prefix<'g, P: KeyPrefix<K>>(
        &self,
        prefix: &P,
        guard: &'g A::Guard<'_>,
    ) -> TypedRange<'_, 'g, K, S, A>
    where
        S: 'g,
    {
        TypedRange::new(self.tree.prefix(&encoded(prefix), guard))
    }

    /// The number of entries; see [`Tree::len`].
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// True if the tree holds no entry.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Removes every entry; see [`Tree::clear`].
    pub fn clear(&mut self) {
        self.tree.clear();
    }
}

/// A value that bounds a range of keys of type `K` in
/// [`TypedTree::range`]: its encoding is the encoding of the `K` it stands
/// for, or a byte prefix of the encodings of the keys that start with it,
/// so it compares with keys as that `K` (or that leading part of a tuple
/// key) does. Implemented for
///
/// * each key type itself: the integers, `bool`, `char`, `String`,
///   `Vec<u8>`;
/// * what a key type borrows as: `str` for `String`, `[u8]` for `Vec<u8>`;
/// * references to any of these (`&str`, `&String`, `&u32`...);
/// * `Option<Q>` for `Option<K>`, and tuples of bounds for tuple keys,
///   element by element (`(&str, u32)` for `(String, u32)`);
/// * tuples of bounds for the leading elements of a longer tuple key
///   (`(&str,)` for `(String, u32)`), which sort before every key that
///   starts with them and after every smaller one.
///
/// A key type of your own (one that implements
/// [`KeyEncode`] and [`KeyDecode`]) bounds its ranges once it implements
/// this marker trait for itself: `impl KeyBound<MyKey> for MyKey {}`.
pub trait KeyBound<K>: KeyEncode {}

macro_rules! key_bound_self {
    ($($t:ty),*) => {$(
        impl KeyBound<$t> for $t {}
    )*};
}
key_bound_self!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    bool,
    char,
    String,
    Vec<u8>
);
impl KeyBound<String> for str {}
impl KeyBound<Vec<u8>> for [u8] {}
impl<K, Q: KeyBound<K> + ?Sized> KeyBound<K> for &Q {}
impl<K, Q: KeyBound<K>> KeyBound<Option<K>> for Option<Q> {}

/// Tuples of bounds for tuple keys: element by element for the whole key
/// (before `;`), and for each shorter leading part (after `;`, the key's
/// remaining elements).
macro_rules! key_bound_tuple {
    ($($k:ident $q:ident),+ ; $($rest:ident),*) => {
        impl<$($k, $q: KeyBound<$k>,)+ $($rest),*> KeyBound<($($k,)+ $($rest,)*)> for ($($q,)+) {}
    };
}
key_bound_tuple!(A QA; );
key_bound_tuple!(A QA; B);
key_bound_tuple!(A QA, B QB; );
key_bound_tuple!(A QA; B, C);
key_bound_tuple!(A QA, B QB; C);
key_bound_tuple!(A QA, B QB, C QC; );
key_bound_tuple!(A QA; B, C, D);
key_bound_tuple!(A QA, B QB; C, D);
key_bound_tuple!(A QA, B QB, C QC; D);
key_bound_tuple!(A QA, B QB, C QC, D QD; );
key_bound_tuple!(A QA; B, C, D, E);
key_bound_tuple!(A QA, B QB; C, D, E);
key_bound_tuple!(A QA, B QB, C QC; D, E);
key_bound_tuple!(A QA, B QB, C QC, D QD; E);
key_bound_tuple!(A QA, B QB, C QC, D QD, E QE; );
key_bound_tuple!(A QA; B, C, D, E, F);
key_bound_tuple!(A QA, B QB; C, D, E, F);
key_bound_tuple!(A QA, B QB, C QC; D, E, F);
key_bound_tuple!(A QA, B QB, C QC, D QD; E, F);
key_bound_tuple!(A QA, B QB, C QC, D QD, E QE; F);
key_bound_tuple!(A QA, B QB, C QC, D QD, E QE, F QF; );

/// A range of keys of type `K` for [`TypedTree::range`]: `..`, `a..b`,
/// `a..`, `..b`, `a..=b`, `..=b` or a `(Bound, Bound)` pair, whose bounds
/// are [`KeyBound`]s of `K`. The bound type is the range's own (unlike
/// `RangeBounds<T>`, where `a..b` of references is a range of `&T` and of
/// `T` both), so `"a".."m"` bounds `String` keys and `&lo..&hi` bounds
/// integer keys without a type annotation.
pub trait KeyRange<K> {
    /// The encodings of the range's bounds.
    fn encoded_bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>);
}

impl<K> KeyRange<K> for RangeFull {
    fn encoded_bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        (Bound::Unbounded, Bound::Unbounded)
    }
}

macro_rules! key_range {
    ($($r:ty),*) => {$(
        impl<K, Q: KeyBound<K>> KeyRange<K> for $r {
            fn encoded_bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
                // `Q` named: a `Range<&T>` is also a `RangeBounds<T>`.
                let start = RangeBounds::<Q>::start_bound(self).map(encoded);
                (start, RangeBounds::<Q>::end_bound(self).map(encoded))
            }
        }
    )*};
}
key_range!(
    core::ops::Range<Q>,
    core::ops::RangeFrom<Q>,
    core::ops::RangeTo<Q>,
    core::ops::RangeInclusive<Q>,
    core::ops::RangeToInclusive<Q>,
    (Bound<Q>, Bound<Q>)
);

impl<K, S, A> fmt::Debug for TypedTree<K, S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTree").finish_non_exhaustive()
    }
}

/// The entries of a [`TypedTree`] in a key range, decoded; from
/// [`TypedTree::range`], [`TypedTree::iter`] and [`TypedTree::prefix`]. Its
/// guarantees under concurrent writes are those of [`Range`].
pub struct TypedRange<'t, 'g, K, S, A> {
    inner: Range<'t, 'g, S, A>,
    _keys: PhantomData<fn() -> K>,
}

impl<'t, 'g, K: KeyDecode, S: ValueStorage, A: NodeAllocatorGeneric> TypedRange<'t, 'g, K, S, A>
where
    S: 'g,
{
    fn new(inner: Range<'t, 'g, S, A>) -> Self {
        TypedRange {
            inner,
            _keys: PhantomData,
        }
    }

    /// Decodes an entry of the tree: every key in it was encoded from a `K`.
    fn decode((key, value): (KeyBuf, S::Ref<'g>)) -> (K, S::Ref<'g>) {
        let key = K::decode_all(&key).expect("a typed tree holds only keys it encoded");
        (key, value)
    }
}

impl<'g, K: KeyDecode, S: ValueStorage, A: NodeAllocatorGeneric> Iterator
    for TypedRange<'_, 'g, K, S, A>
where
    S: 'g,
{
    type Item = (K, S::Ref<'g>);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(Self::decode)
    }
}

impl<'g, K: KeyDecode, S: ValueStorage, A: NodeAllocatorGeneric> DoubleEndedIterator
    for TypedRange<'_, 'g, K, S, A>
where
    S: 'g,
{
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back().map(Self::decode)
    }
}

impl<'g, K: KeyDecode, S: ValueStorage, A: NodeAllocatorGeneric> FusedIterator
    for TypedRange<'_, 'g, K, S, A>
where
    S: 'g,
{
}

impl<K, S: ValueStorage, A: NodeAllocatorGeneric> fmt::Debug for TypedRange<'_, '_, K, S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedRange").field(&self.inner).finish()
    }
}
