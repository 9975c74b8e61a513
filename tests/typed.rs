//! Typed keys: the order-preserving encoding (byte order equals `Ord` order,
//! exact round trip, embedded zero bytes) and `TypedTree` against a
//! `BTreeMap` model on every backend.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;

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
}
