//! Model-based tests: the tree against `std::collections::BTreeMap`.
//!
//! Proptest sequences of insert (new key / update of an existing key) and get,
//! with a key distribution built to stress Masstree's layering (shared 8-byte
//! slices, 0x00/0xFF-heavy bytes, trailing zero bytes, lengths on and around
//! slice boundaries, the empty key, long keys), plus large deterministic
//! workloads.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]
// Guards are dropped explicitly to end read sections; some backends' guards
// have no destructor.
#![allow(clippy::drop_non_drop)]

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::strategies::{byte, config, prefixes};
use common::{Rng, hex, key_hash, scaled, shaped_key};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

const MAX_KEY_LEN: usize = 300;

/// Length of the random tail appended to a prefix.
fn tail_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0..=3usize,
        3 => select(vec![7usize, 8, 9, 15, 16, 17, 23, 24, 25]),
        2 => 0..=40usize,
        1 => 0..=MAX_KEY_LEN,
    ]
}

fn bytes_of_len(n: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(byte(), n)
}

/// Keys stressing layering.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // the empty key
        1 => Just(Vec::new()),
        // shared prefix + weighted tail
        8 => (select(prefixes()), tail_len().prop_flat_map(bytes_of_len)).prop_map(|(mut p, t)| {
            p.extend_from_slice(&t);
            p.truncate(MAX_KEY_LEN);
            p
        }),
        // keys differing only by trailing zero bytes: "a", "a\0", "a\0\0", ...
        3 => (
            select(
                [&b""[..], b"a", b"abcdefgh", b"abcdefghi", &[0xFF; 8], &[0x00; 8]]
                    .map(<[u8]>::to_vec)
                    .to_vec()
            ),
            0..=20usize,
        )
            .prop_map(|(mut p, z)| {
                p.extend(std::iter::repeat_n(0u8, z));
                p
            }),
        // lengths exactly on / around slice boundaries
        2 => select(vec![0usize, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33])
            .prop_flat_map(bytes_of_len),
        // anything up to MAX_KEY_LEN
        1 => (0..=MAX_KEY_LEN).prop_flat_map(bytes_of_len),
    ]
}

/// Values: the extremes are weighted in case the inline representation uses
/// sentinel values.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => Just(1u64),
        1 => Just(1u64 << 63),
        6 => any::<u64>(),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    /// insert pool[idx] = value (update if present)
    Insert(Index, u64),
    /// get pool[idx]
    Get(Index),
    /// get an arbitrary (probably absent) key
    GetOther(Vec<u8>),
    /// remove pool[idx]
    Remove(Index),
    /// remove an arbitrary (probably absent) key
    RemoveOther(Vec<u8>),
}

/// `remove_weight` 0 gives insert/get-only sequences; high weights keep the
/// tree small so that leaves and layers empty (and are collected) and refill.
fn op(remove_weight: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<Index>(), value()).prop_map(|(i, v)| Op::Insert(i, v)),
        4 => any::<Index>().prop_map(Op::Get),
        1 => key().prop_map(Op::GetOther),
        remove_weight => any::<Index>().prop_map(Op::Remove),
        remove_weight.div_ceil(2) => key().prop_map(Op::RemoveOther),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop_oneof![
        1 => prop::collection::vec(op(0), 1..400),
        3 => (1u32..=8).prop_flat_map(|rw| prop::collection::vec(op(rw), 1..400)),
    ]
}

/// A pool of keys (so that ops hit the same keys repeatedly) and a sequence.
fn scenario() -> impl Strategy<Value = (Vec<Vec<u8>>, Vec<Op>)> {
    (prop::collection::vec(key(), 1..48), ops())
}

// ---------------------------------------------------------------------------
// Model checker (backend- and value-representation agnostic)
// ---------------------------------------------------------------------------

/// The tree under test, through closures (so that the checker needs neither
/// the guard type nor the value representation).
struct Map<I, G, R, L> {
    insert: I,
    get: G,
    remove: R,
    len: L,
}

type Model = BTreeMap<Vec<u8>, u64>;

/// Runs `ops` against the tree and `model`, comparing every result, then
/// sweeps every pool and model key.
fn check_ops<I, G, R, L>(
    keys: &[Vec<u8>],
    ops: &[Op],
    model: &mut Model,
    mut m: Map<I, G, R, L>,
) -> Result<(), TestCaseError>
where
    I: FnMut(&[u8], u64) -> Option<u64>,
    G: FnMut(&[u8]) -> Option<u64>,
    R: FnMut(&[u8]) -> Option<u64>,
    L: Fn() -> usize,
{
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Insert(i, v) => {
                let k = i.get(keys);
                let expected = model.insert(k.clone(), *v);
                let got = (m.insert)(k, *v);
                prop_assert_eq!(
                    got,
                    expected,
                    "step {}: insert({}, {}) returned wrong previous value",
                    step,
                    hex(k),
                    v
                );
            }
            Op::Get(i) => {
                let k = i.get(keys);
                let got = (m.get)(k);
                prop_assert_eq!(got, model.get(k).copied(), "step {}: get({})", step, hex(k));
            }
            Op::GetOther(k) => {
                let got = (m.get)(k);
                prop_assert_eq!(got, model.get(k).copied(), "step {}: get({})", step, hex(k));
            }
            Op::Remove(i) => {
                let k = i.get(keys);
                let got = (m.remove)(k);
                prop_assert_eq!(got, model.remove(k), "step {}: remove({})", step, hex(k));
            }
            Op::RemoveOther(k) => {
                let got = (m.remove)(k);
                prop_assert_eq!(got, model.remove(k), "step {}: remove({})", step, hex(k));
            }
        }
        prop_assert_eq!((m.len)(), model.len(), "step {}: len()", step);
    }
    // final sweep: every pool key, every model key
    for k in keys.iter().chain(model.keys()) {
        prop_assert_eq!((m.get)(k), model.get(k).copied(), "final get({})", hex(k));
    }
    prop_assert_eq!((m.len)(), model.len(), "final len()");
    Ok(())
}

/// Out-of-line value encoding: ties the value to its key so that a value
/// returned for the wrong key is detected.
fn encode(k: &[u8], v: u64) -> String {
    format!("{v}/{:016x}/{}", key_hash(k), k.len())
}

fn decode(k: &[u8], s: &str) -> u64 {
    let mut parts = s.split('/');
    let v: u64 = parts.next().unwrap().parse().expect("corrupt value");
    assert_eq!(
        parts.next(),
        Some(format!("{:016x}", key_hash(k)).as_str()),
        "value {s:?} does not belong to key {}",
        hex(k)
    );
    assert_eq!(parts.next(), Some(k.len().to_string().as_str()));
    v
}

for_each_backend! {
    proptest! {
        #![proptest_config(config(256))]

        /// Inline u64 values, one guard for the whole sequence.
        #[test]
        fn inline_model((keys, ops) in scenario()) {
            let t = new_itree::<u64>();
            let g = t.guard();
            let mut model = Model::new();
            check_ops(&keys, &ops, &mut model, Map {
                insert: |k: &[u8], v| t.insert(k, v, &g),
                get: |k: &[u8]| t.get(k, &g),
                remove: |k: &[u8]| t.remove(k, &g),
                len: || t.len(),
            })?;
            prop_assert_eq!(t.is_empty(), model.is_empty());
        }

        /// Inline u64 values, a fresh guard for every operation.
        #[test]
        fn inline_model_guard_per_op((keys, ops) in scenario()) {
            let t = new_itree::<u64>();
            check_ops(&keys, &ops, &mut Model::new(), Map {
                insert: |k: &[u8], v| t.insert(k, v, &t.guard()),
                get: |k: &[u8]| t.get(k, &t.guard()),
                remove: |k: &[u8]| t.remove(k, &t.guard()),
                len: || t.len(),
            })?;
        }

        /// Three phases on one tree: ops, `reclaim()`, ops, `clear()`, ops.
        #[test]
        fn inline_model_reclaim_and_clear(
            (keys, ops1) in scenario(),
            ops2 in ops(),
            ops3 in ops(),
        ) {
            let mut t = new_itree::<u64>();
            let mut model = Model::new();
            for (phase, ops) in [&ops1, &ops2, &ops3].into_iter().enumerate() {
                match phase {
                    1 => t.reclaim(),
                    2 => {
                        t.clear();
                        model.clear();
                        prop_assert!(t.is_empty(), "clear() left {} keys", t.len());
                    }
                    _ => {}
                }
                let g = t.guard();
                check_ops(&keys, ops, &mut model, Map {
                    insert: |k: &[u8], v| t.insert(k, v, &g),
                    get: |k: &[u8]| t.get(k, &g),
                    remove: |k: &[u8]| t.remove(k, &g),
                    len: || t.len(),
                })?;
            }
        }

        /// Out-of-line `String` values, one guard for the whole sequence.
        /// Every value returned by `insert` (replaced) or `remove` is kept and
        /// re-verified at the end: it must stay readable while the guard lives.
        #[test]
        fn string_model((keys, ops) in scenario()) {
            let t = new_tree::<String>();
            let g = t.guard();
            let olds: std::cell::RefCell<Vec<(&String, String)>> = Default::default();
            check_ops(&keys, &ops, &mut Model::new(), Map {
                insert: |k: &[u8], v| t.insert(k, encode(k, v), &g).map(|s| {
                    olds.borrow_mut().push((s, s.clone()));
                    decode(k, s)
                }),
                get: |k: &[u8]| t.get(k, &g).map(|s| decode(k, s)),
                remove: |k: &[u8]| t.remove(k, &g).map(|s| {
                    olds.borrow_mut().push((s, s.clone()));
                    decode(k, s)
                }),
                len: || t.len(),
            })?;
            for (r, copy) in olds.borrow().iter() {
                prop_assert_eq!(*r, copy, "replaced/removed value changed while the guard was held");
            }
        }

        /// Out-of-line `Vec<u8>` values (the key itself plus the value), guard
        /// per op, so replaced and removed values (and emptied nodes) may
        /// actually be reclaimed mid-sequence.
        #[test]
        fn vec_model_guard_per_op((keys, ops) in scenario()) {
            let t = new_tree::<Vec<u8>>();
            let mk = |k: &[u8], v: u64| {
                let mut x = v.to_le_bytes().to_vec();
                x.extend_from_slice(k);
                x
            };
            let dec = |k: &[u8], x: &Vec<u8>| {
                assert_eq!(&x[8..], k, "value belongs to another key");
                u64::from_le_bytes(x[..8].try_into().unwrap())
            };
            check_ops(&keys, &ops, &mut Model::new(), Map {
                insert: |k: &[u8], v| {
                    let g = t.guard();
                    t.insert(k, mk(k, v), &g).map(|x| dec(k, x))
                },
                get: |k: &[u8]| {
                    let g = t.guard();
                    t.get(k, &g).map(|x| dec(k, x))
                },
                remove: |k: &[u8]| {
                    let g = t.guard();
                    t.remove(k, &g).map(|x| dec(k, x))
                },
                len: || t.len(),
            })?;
        }
    }

    // -----------------------------------------------------------------------
    // Large deterministic workloads
    // -----------------------------------------------------------------------

    fn check_bulk(keys: &[Vec<u8>]) {
        let t = new_itree::<u64>();
        let mut model: BTreeMap<&[u8], u64> = BTreeMap::new();
        {
            let g = t.guard();
            for (i, k) in keys.iter().enumerate() {
                let v = i as u64;
                let expected = model.insert(k, v);
                assert_eq!(t.insert(k, v, &g), expected, "insert #{i} key {}", hex(k));
            }
            assert_eq!(t.len(), model.len());
        }
        {
            let g = t.guard();
            for (k, v) in &model {
                assert_eq!(t.get(k, &g), Some(*v), "get {}", hex(k));
            }
        }
        // update every key once more, in reverse order
        {
            let g = t.guard();
            for (k, v) in model.iter().rev() {
                assert_eq!(t.insert(k, !v, &g), Some(*v), "update {}", hex(k));
            }
            for (k, v) in &model {
                assert_eq!(t.get(k, &g), Some(!*v), "get after update {}", hex(k));
            }
            assert_eq!(t.len(), model.len());
        }
        // remove every other key (in insertion order), check the rest
        let mut removed = std::collections::BTreeSet::new();
        {
            let g = t.guard();
            for k in keys.iter().step_by(2) {
                if removed.insert(k.as_slice()) {
                    assert_eq!(t.remove(k, &g), Some(!model[k.as_slice()]), "remove {}", hex(k));
                }
                assert_eq!(t.remove(k, &g), None, "second remove {}", hex(k));
            }
            assert_eq!(t.len(), model.len() - removed.len());
        }
        {
            let g = t.guard();
            for (k, v) in &model {
                let expected = if removed.contains(k) { None } else { Some(!*v) };
                assert_eq!(t.get(k, &g), expected, "get after removals {}", hex(k));
            }
        }
        // remove the rest in reverse key order: the tree must end up empty
        {
            let g = t.guard();
            for (k, v) in model.iter().rev() {
                if !removed.contains(k) {
                    assert_eq!(t.remove(k, &g), Some(!*v), "remove rest {}", hex(k));
                }
            }
            assert_eq!(t.len(), 0);
            assert!(t.is_empty());
            for k in model.keys() {
                assert_eq!(t.get(k, &g), None, "get after removing all {}", hex(k));
            }
        }
        // and is fully usable again
        {
            let g = t.guard();
            for (k, v) in &model {
                assert_eq!(t.insert(k, *v, &g), None, "reinsert {}", hex(k));
            }
            for (k, v) in &model {
                assert_eq!(t.get(k, &g), Some(*v), "get after reinsert {}", hex(k));
            }
            assert_eq!(t.len(), model.len());
        }
    }

    /// Keys in ascending order; under Miri still enough leaves (27) to
    /// split an internode.
    fn sequential_count() -> u64 {
        if cfg!(miri) { 400 } else { scaled(100_000) as u64 }
    }

    #[test]
    fn sequential_be_u64_100k() {
        let n = sequential_count();
        let keys: Vec<Vec<u8>> = (0..n).map(|i| i.to_be_bytes().to_vec()).collect();
        check_bulk(&keys);
    }

    #[test]
    fn sequential_be_u64_descending_100k() {
        let n = sequential_count();
        let keys: Vec<Vec<u8>> = (0..n).rev().map(|i| (i << 20).to_be_bytes().to_vec()).collect();
        check_bulk(&keys);
    }

    #[test]
    fn sequential_decimal_100k() {
        let n = scaled(100_000) as u64;
        let keys: Vec<Vec<u8>> = (0..n).map(|i| i.to_string().into_bytes()).collect();
        check_bulk(&keys);
    }

    #[test]
    fn random_keys_100k() {
        let n = scaled(100_000);
        let mut rng = Rng::new(0xDEC0DE);
        let keys: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let len = match rng.below(4) {
                    0 => rng.below(8),
                    1 => 8 + rng.below(9),
                    2 => rng.below(41),
                    _ => rng.below(4),
                } as usize;
                rng.bytes(len)
            })
            .collect();
        check_bulk(&keys);
    }

    #[test]
    fn shaped_keys_100k() {
        let n = scaled(100_000) as u64;
        let keys: Vec<Vec<u8>> = (0..n).map(shaped_key).collect();
        let distinct: std::collections::HashSet<&Vec<u8>> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "shaped_key must be injective");
        check_bulk(&keys);
    }

    /// Keys of several KiB, differing at many positions, and prefixes of each other.
    #[test]
    fn multi_kib_keys() {
        let mut rng = Rng::new(7);
        let base = rng.bytes(6 * 1024);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let count = if cfg!(miri) { 20 } else { 400 };
        for j in 0..count {
            // differ at one position
            let mut k = base.clone();
            let pos = rng.below(base.len() as u64) as usize;
            k[pos] = k[pos].wrapping_add(1 + (j % 255) as u8);
            keys.push(k);
            // prefix of the base, all lengths mod 8 represented
            let len = 4096 + rng.below(2048) as usize;
            keys.push(base[..len].to_vec());
            // base plus trailing zeros
            let mut z = base.clone();
            z.extend(std::iter::repeat_n(0u8, j % 17));
            keys.push(z);
        }
        keys.push(base.clone());
        check_bulk(&keys);
    }

    /// Keys sharing a 1000-byte prefix (125 slices: a deep chain of layers).
    #[test]
    fn shared_1000_byte_prefix() {
        let mut rng = Rng::new(1000);
        let prefix = rng.bytes(1000);
        let n = scaled(20_000) as u64;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for i in 0..n {
            let mut k = prefix.clone();
            match i % 3 {
                0 => k.extend_from_slice(&i.to_be_bytes()),
                1 => k.extend_from_slice(i.to_string().as_bytes()),
                _ => k.truncate(1000 - (i as usize % 1000)), // prefixes of the prefix
            }
            keys.push(k);
        }
        // zero-extended variants of the prefix itself
        for z in 0..20 {
            let mut k = prefix.clone();
            k.extend(std::iter::repeat_n(0u8, z));
            keys.push(k);
        }
        check_bulk(&keys);
    }

    /// Regression: a split that put the new key left once read the separator
    /// after overwriting the slot it came from. Every key inserted so far is
    /// found after each insert, at sizes around a leaf's capacity, in
    /// ascending and descending order.
    #[test]
    fn every_key_visible_after_each_insert_around_splits() {
        let sizes: &[u64] = if cfg!(miri) { &[15, 16, 31] } else { &[14, 15, 16, 17, 31, 250] };
        for rev in [false, true] {
            for &n in sizes {
                let t = new_itree::<u64>();
                let g = t.guard();
                let order: Vec<u64> = if rev { (0..n).rev().collect() } else { (0..n).collect() };
                for (done, &i) in order.iter().enumerate() {
                    t.insert(&i.to_be_bytes(), i, &g);
                    for &j in &order[..=done] {
                        assert_eq!(t.get(&j.to_be_bytes(), &g), Some(j), "n={n} rev={rev} after {i}: key {j}");
                    }
                }
            }
        }
    }

    /// Keys that differ only by trailing zeros, at every length 0..=40.
    #[test]
    fn trailing_zero_family() {
        let t = new_itree::<u64>();
        let g = t.guard();
        let bases: [&[u8]; 4] = [b"", b"a", b"abcdefgh", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff"];
        let mut expected = Vec::new();
        for (bi, b) in bases.iter().enumerate() {
            for z in 0..=40usize {
                let mut k = b.to_vec();
                k.extend(std::iter::repeat_n(0u8, z));
                let v = (bi * 1000 + z) as u64;
                assert_eq!(t.insert(&k, v, &g), None, "{} already present", hex(&k));
                expected.push((k, v));
            }
        }
        assert_eq!(t.len(), expected.len());
        for (k, v) in &expected {
            assert_eq!(t.get(k, &g), Some(*v), "get {}", hex(k));
        }
        // a key with one zero more than the longest must be absent
        let mut k = b"a".to_vec();
        k.extend(std::iter::repeat_n(0u8, 41));
        assert_eq!(t.get(&k, &g), None);
    }

    /// Out-of-line values in bulk (sequential + shaped keys), values carry the key.
    #[test]
    fn string_values_bulk() {
        let n = scaled(50_000) as u64;
        let t = new_tree::<String>();
        let g = t.guard();
        for i in 0..n {
            let k = shaped_key(i);
            assert!(t.insert(&k, encode(&k, i), &g).is_none());
        }
        assert_eq!(t.len(), n as usize);
        for i in 0..n {
            let k = shaped_key(i);
            let old = t.insert(&k, encode(&k, i + 1), &g).expect("present");
            assert_eq!(decode(&k, old), i);
        }
        for i in 0..n {
            let k = shaped_key(i);
            assert_eq!(decode(&k, t.get(&k, &g).expect("present")), i + 1);
        }
        assert_eq!(t.len(), n as usize);
    }
}
