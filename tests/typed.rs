//! Typed keys: the order-preserving encoding (byte order equals `Ord` order,
//! exact round trip, embedded zero bytes) and `TypedTree` against a
//! `BTreeMap` model on every backend.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]

#[macro_use]
mod common;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Bound;

use common::strategies::config;
use masstree::keycode::{DecodeError, KeyDecode, KeyEncode};
use proptest::prelude::*;

fn enc<T: KeyEncode + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(&mut out);
    out
}

/// Byte order of the encodings equals `Ord` order, and both decode exactly.
fn check_pair<T: KeyDecode + Ord + Debug>(a: &T, b: &T) -> Result<(), TestCaseError> {
    let (ea, eb) = (enc(a), enc(b));
    prop_assert_eq!(
        ea.cmp(&eb),
        a.cmp(b),
        "{:?} vs {:?}: {:?} vs {:?}",
        a,
        b,
        ea,
        eb
    );
    prop_assert_eq!(&T::decode_all(&ea).unwrap(), a);
    prop_assert_eq!(&T::decode_all(&eb).unwrap(), b);
    Ok(())
}

/// Byte strings rich in zeros and 0xFF, the escape's edge cases.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![Just(0u8), Just(0xFF), Just(1), any::<u8>()],
        0..12,
    )
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn integers_order(a: i64, b: i64, c: u128, d: u128, e: i8, f: i8, g: i128, h: i128) {
        check_pair(&a, &b)?;
        check_pair(&c, &d)?;
        check_pair(&e, &f)?;
        check_pair(&g, &h)?;
    }

    #[test]
    fn scalars_order(a: char, b: char, c: bool, d: bool, e: Option<i16>, f: Option<i16>) {
        check_pair(&a, &b)?;
        check_pair(&c, &d)?;
        check_pair(&e, &f)?;
    }

    #[test]
    fn byte_strings_order(a in bytes(), b in bytes()) {
        check_pair(&a, &b)?;
    }

    #[test]
    fn strings_order(a in "[a\u{0}\u{ff}é]{0,6}", b in "[a\u{0}\u{ff}é]{0,6}") {
        check_pair(&a, &b)?;
        // `str` encodes as its `String` does, for borrowed lookups.
        prop_assert_eq!(enc(a.as_str()), enc(&a));
    }

    #[test]
    fn composite_keys_order(
        a in (bytes(), any::<i32>(), bytes()),
        b in (bytes(), any::<i32>(), bytes()),
    ) {
        check_pair(&a, &b)?;
        // A leading part of a tuple encodes as a byte prefix of the whole.
        let head = enc(&(&a.0, &a.1));
        prop_assert!(enc(&a).starts_with(&head));
    }

    #[test]
    fn composite_keys_with_options_order(
        a in (any::<Option<u8>>(), "[\u{0}x]{0,3}", any::<bool>()),
        b in (any::<Option<u8>>(), "[\u{0}x]{0,3}", any::<bool>()),
    ) {
        check_pair(&a, &b)?;
    }

    #[test]
    fn garbage_never_panics(junk in proptest::collection::vec(any::<u8>(), 0..20)) {
        let _ = <(String, u16, Option<char>)>::decode_all(&junk);
        let _ = <Vec<u8>>::decode_all(&junk);
    }
}

#[test]
fn decode_errors_are_reported() {
    assert!(u32::decode_all(&[1, 2, 3]).is_err());
    assert!(bool::decode_all(&[2]).is_err());
    assert!(<Vec<u8>>::decode_all(b"ab").is_err(), "no terminator");
    assert!(<Vec<u8>>::decode_all(&[b'a', 0, 7]).is_err(), "bad escape");
    assert!(String::decode_all(&[0xC3, 0, 0]).is_err(), "not UTF-8");
    let err: DecodeError = u8::decode_all(&[1, 2]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a key encoding: trailing bytes after the key"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Insert((String, u16), u32),
    Remove((String, u16)),
    Range(u16, u16),
    Prefix(String),
}

fn name() -> impl Strategy<Value = String> {
    "[ab\u{0}]{0,3}"
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => ((name(), 0..6u16), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (name(), 0..6u16).prop_map(Op::Remove),
        1 => (0..6u16, 0..6u16).prop_map(|(a, b)| Op::Range(a, b)),
        1 => name().prop_map(Op::Prefix),
    ]
}

for_each_backend! {
    proptest! {
        #![proptest_config(config(64))]
        #[test]
        fn typed_tree_matches_btreemap(ops in proptest::collection::vec(op(), 1..100)) {
            let tree = masstree::TypedTree::<(String, u16), masstree::Inline<u32>, _>::new_in(backend());
            let mut model = BTreeMap::<(String, u16), u32>::new();
            let g = tree.guard();
            for op in &ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(tree.insert(k, *v, &g), model.insert(k.clone(), *v)),
                    Op::Remove(k) => prop_assert_eq!(tree.remove(k, &g), model.remove(k)),
                    Op::Range(a, b) => {
                        // Keys from ("", a) up to but excluding ("\u{0}", b): ties on
                        // the string, then the integer.
                        let (lo, hi) = ((String::new(), *a), ("\u{0}".to_string(), *b));
                        if lo <= hi {
                            let got: Vec<_> = tree.range(lo.clone()..hi.clone(), &g).collect();
                            let want: Vec<_> = model.range(lo..hi).map(|(k, v)| (k.clone(), *v)).collect();
                            prop_assert_eq!(got, want);
                        }
                    }
                    Op::Prefix(p) => {
                        let got: Vec<_> = tree.prefix(&(p.as_str(),), &g).rev().collect();
                        let want: Vec<_> = model
                            .iter()
                            .filter(|((s, _), _)| s == p)
                            .rev()
                            .map(|(k, v)| (k.clone(), *v))
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(tree.len(), model.len());
            }
            let all: Vec<_> = tree.iter(&g).collect();
            let want: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(all, want);
        }
    }
    proptest! {
        #![proptest_config(config(64))]

        /// Ranges of `String` keys with `&str` bounds (in every range
        /// form) hold the keys the model's owned bounds select; names with
        /// zero bytes and proper prefixes of each other test the escape
        /// and the terminator of the bounds' encoding.
        #[test]
        fn str_bounds_match_btreemap(
            keys in proptest::collection::btree_set(name(), 0..24),
            ranges in proptest::collection::vec((end(name), end(name)), 1..16),
        ) {
            let tree = masstree::TypedTree::<String, masstree::Inline<u32>, _>::new_in(backend());
            let g = tree.guard();
            for k in &keys {
                tree.insert(k.as_str(), 0, &g);
            }
            for (lo, hi) in &ranges {
                let want: Vec<String> = keys
                    .iter()
                    .filter(|k| between(lo, hi, |b| k.as_str().cmp(b)))
                    .cloned()
                    .collect();
                prop_assert_eq!(str_range(&tree, lo, hi, &g), want, "{:?}..{:?}", lo, hi);
            }
        }

        /// Ranges of `(String, u16)` keys bounded by `(&str, u16)` tuples
        /// or by `(&str,)` leading parts.
        #[test]
        fn tuple_bounds_match_model(
            keys in proptest::collection::btree_set((name(), 0..4u16), 0..24),
            ranges in proptest::collection::vec(pair_range(), 1..16),
        ) {
            let tree = masstree::TypedTree::<(String, u16), masstree::Inline<u32>, _>::new_in(backend());
            let g = tree.guard();
            for k in &keys {
                tree.insert(k, 0, &g);
            }
            for r in &ranges {
                let got: Vec<(String, u16)> = match r {
                    PairRange::Whole(lo, hi) => {
                        tree.range((whole_bound(lo), whole_bound(hi)), &g).map(|(k, _)| k).collect()
                    }
                    PairRange::Leading(lo, hi) => {
                        tree.range((leading_bound(lo), leading_bound(hi)), &g).map(|(k, _)| k).collect()
                    }
                };
                let want: Vec<(String, u16)> = keys
                    .iter()
                    .filter(|(s, n)| match r {
                        PairRange::Whole(lo, hi) => between(lo, hi, |(bs, bn)| (s.as_str(), *n).cmp(&(bs.as_str(), *bn))),
                        // A key that starts with the bound's element is above it.
                        PairRange::Leading(lo, hi) => between(lo, hi, |bs| s.as_str().cmp(bs).then(Ordering::Greater)),
                    })
                    .cloned()
                    .collect();
                prop_assert_eq!(got, want, "{:?}", r);
            }
        }
    }

    /// Bounds by value, by reference and borrowed, for each kind of key,
    /// all without type annotations.
    #[test]
    fn borrowed_bounds_of_every_kind() {
        let ints = masstree::TypedTree::<i32, masstree::Inline<u32>, _>::new_in(backend());
        let g = ints.guard();
        for k in -5..5 {
            ints.insert(&k, 0, &g);
        }
        let (lo, hi) = (-2, 1);
        let got: Vec<i32> = ints.range(&lo..&hi, &g).map(|(k, _)| k).collect();
        assert_eq!(got, [-2, -1, 0]);
        assert_eq!(ints.range(lo..=hi, &g).count(), 4);
        assert_eq!(ints.range((Bound::Excluded(&lo), Bound::Unbounded), &g).count(), 6);
        assert_eq!(ints.range(..=&hi, &g).next_back().map(|(k, _)| k), Some(1));

        let strings = masstree::TypedTree::<String, masstree::Inline<u32>, _>::new_in(backend());
        let g = strings.guard();
        for k in ["", "a", "a\0", "ab", "b"] {
            strings.insert(k, 0, &g);
        }
        let (a, b) = ("a".to_string(), "b".to_string());
        let owned: Vec<String> = strings.range(a.clone()..b.clone(), &g).map(|(k, _)| k).collect();
        assert_eq!(owned, ["a", "a\0", "ab"]);
        let by_ref: Vec<String> = strings.range(&a..&b, &g).map(|(k, _)| k).collect();
        assert_eq!(by_ref, owned);
        let by_str: Vec<String> = strings.range("a".."b", &g).map(|(k, _)| k).collect();
        assert_eq!(by_str, owned);
        assert_eq!(strings.range("a\0"..="ab", &g).count(), 2);
        assert_eq!(strings.range((Bound::Excluded("a"), Bound::Excluded("b")), &g).count(), 2);

        let bytes = masstree::TypedTree::<Vec<u8>, masstree::Inline<u32>, _>::new_in(backend());
        let g = bytes.guard();
        for k in [&b"\0"[..], b"\0\0", b"\x01", b"\xff"] {
            bytes.insert(k, 0, &g);
        }
        let got: Vec<Vec<u8>> = bytes.range(&b"\0"[..]..&b"\x01"[..], &g).map(|(k, _)| k).collect();
        assert_eq!(got, [b"\0".to_vec(), b"\0\0".to_vec()]);

        let options = masstree::TypedTree::<Option<i16>, masstree::Inline<u32>, _>::new_in(backend());
        let g = options.guard();
        for k in [None, Some(-1), Some(0), Some(7)] {
            options.insert(&k, 0, &g);
        }
        let zero = 0i16;
        let got: Vec<Option<i16>> = options.range(..Some(&zero), &g).map(|(k, _)| k).collect();
        assert_eq!(got, [None, Some(-1)]);
        assert_eq!(options.range(Some(0).., &g).count(), 2);

        let triples = masstree::TypedTree::<(char, bool, u8), masstree::Inline<u32>, _>::new_in(backend());
        let g = triples.guard();
        for k in [('a', false, 1), ('a', true, 0), ('a', true, 9), ('b', false, 0)] {
            triples.insert(&k, 0, &g);
        }
        assert_eq!(triples.range(('a', true)..('b', false), &g).count(), 2);
        assert_eq!(triples.range(('a', true, 1).., &g).count(), 2);
        assert_eq!(triples.range(..=('a',), &g).count(), 0, "('a',) is below every key that starts with 'a'");
    }
}

/// One end of a generated range.
#[derive(Clone, Debug)]
enum End<T> {
    In(T),
    Ex(T),
    Un,
}

impl<T> End<T> {
    fn to_bound<U: ?Sized>(&self, f: impl Fn(&T) -> &U) -> Bound<&U> {
        match self {
            End::In(t) => Bound::Included(f(t)),
            End::Ex(t) => Bound::Excluded(f(t)),
            End::Un => Bound::Unbounded,
        }
    }
}

fn end<S: Strategy>(value: impl Fn() -> S) -> impl Strategy<Value = End<S::Value>>
where
    S::Value: Clone + Debug,
{
    prop_oneof![
        value().prop_map(End::In),
        value().prop_map(End::Ex),
        Just(End::Un),
    ]
}

/// Whether `key` lies between `lo` and `hi`, given how it compares with a bound.
fn between<T>(lo: &End<T>, hi: &End<T>, cmp: impl Fn(&T) -> Ordering) -> bool {
    let above = match lo {
        End::In(b) => cmp(b) != Ordering::Less,
        End::Ex(b) => cmp(b) == Ordering::Greater,
        End::Un => true,
    };
    let below = match hi {
        End::In(b) => cmp(b) != Ordering::Greater,
        End::Ex(b) => cmp(b) == Ordering::Less,
        End::Un => true,
    };
    above && below
}

/// `tree.range` over `&str` bounds, in the range syntax that the two ends
/// allow (each form is its own `KeyRange` impl), else as a `Bound` pair.
fn str_range<S, A>(
    tree: &masstree::TypedTree<String, S, A>,
    lo: &End<String>,
    hi: &End<String>,
    g: &A::Guard<'_>,
) -> Vec<String>
where
    S: masstree::ValueStorage,
    A: masstree::backend::NodeAllocatorGeneric,
{
    let keys = |r: masstree::TypedRange<'_, '_, String, S, A>| r.map(|(k, _)| k).collect();
    match (lo, hi) {
        (End::In(a), End::Ex(b)) => keys(tree.range(a.as_str()..b.as_str(), g)),
        (End::In(a), End::In(b)) => keys(tree.range(a.as_str()..=b.as_str(), g)),
        (End::In(a), End::Un) => keys(tree.range(a.as_str().., g)),
        (End::Un, End::Ex(b)) => keys(tree.range(..b.as_str(), g)),
        (End::Un, End::In(b)) => keys(tree.range(..=b.as_str(), g)),
        (End::Un, End::Un) => keys(tree.range(.., g)),
        _ => keys(tree.range(
            (lo.to_bound(String::as_str), hi.to_bound(String::as_str)),
            g,
        )),
    }
}

/// A generated range of `(String, u16)` keys: whole keys as bounds, or
/// their first element alone (a leading part, which sorts before every key
/// that starts with it).
#[derive(Clone, Debug)]
enum PairRange {
    Whole(End<(String, u16)>, End<(String, u16)>),
    Leading(End<String>, End<String>),
}

/// A whole-key bound as `(&str, u16)`.
fn whole_bound(end: &End<(String, u16)>) -> Bound<(&str, u16)> {
    match end {
        End::In((s, n)) => Bound::Included((s.as_str(), *n)),
        End::Ex((s, n)) => Bound::Excluded((s.as_str(), *n)),
        End::Un => Bound::Unbounded,
    }
}

/// A leading-part bound as `(&str,)`.
fn leading_bound(end: &End<String>) -> Bound<(&str,)> {
    match end {
        End::In(s) => Bound::Included((s.as_str(),)),
        End::Ex(s) => Bound::Excluded((s.as_str(),)),
        End::Un => Bound::Unbounded,
    }
}

fn pair_range() -> impl Strategy<Value = PairRange> {
    let whole = || (name(), 0..4u16);
    prop_oneof![
        (end(whole), end(whole)).prop_map(|(a, b)| PairRange::Whole(a, b)),
        (end(name), end(name)).prop_map(|(a, b)| PairRange::Leading(a, b)),
    ]
}
