//! Ordered access and read-modify-write against models, on every backend:
//!
//! 1. `range` (forward, reverse, alternating ends), `prefix`, `first`/`last`,
//!    `keys`/`values` against a `BTreeMap` (proptest);
//! 2. `Cursor` seeks (every `Seek`) and steps, turning around at both ends;
//!    its batch visits (`for_each_next`/`for_each_prev`) against single steps;
//! 3. `update` / `compare_exchange` / `get_or_insert_with` against a model;
//! 4. concurrency: a `compare_exchange` counter loses nothing; racing
//!    `get_or_insert_with` makes each value once; scans in both directions
//!    while other threads insert and remove keys between stable ones (and
//!    whole leaves between sparse ones, so leaves are unlinked under them);
//! 5. failure injection: the k-th allocation fails once, for every k;
//! 6. bulk load: equal to the model, errors at the right position, no leaks;
//!    sizes at exact multiples of the fanout.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]
// Guards are dropped explicitly to end read sections; some backends' guards
// have no destructor.
#![allow(clippy::drop_non_drop)]

#[macro_use]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::ops::{Bound, ControlFlow};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::strategies::{byte, config, prefixes};
use common::{Rng, TestAlloc, hex, key_hash, scaled, shaped_key, vec_key};
use masstree::{BulkLoadError, Change, KeyBuf, Seek};
use proptest::prelude::*;
use proptest::sample::{Index, select};

// ---------------------------------------------------------------------------
// Strategies and helpers
// ---------------------------------------------------------------------------

/// Keys of length 0..40 sharing 8/16-byte prefixes.
fn key() -> impl Strategy<Value = Vec<u8>> {
    (select(prefixes()), prop::collection::vec(byte(), 0..24)).prop_map(|(mut p, t)| {
        p.extend(t);
        p.truncate(39);
        p
    })
}

fn keys() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(key(), 0..80)
}

/// A bound key: a fresh one, or one of the tree's keys (exact hits), possibly
/// cut or extended by a byte.
#[derive(Clone, Debug)]
enum BoundKey {
    Fresh(Vec<u8>),
    Existing(Index, u8),
}

fn bound_key() -> impl Strategy<Value = BoundKey> {
    prop_oneof![
        key().prop_map(BoundKey::Fresh),
        (any::<Index>(), 0..4u8).prop_map(|(i, m)| BoundKey::Existing(i, m)),
    ]
}

fn resolve(b: &BoundKey, keys: &[Vec<u8>]) -> Vec<u8> {
    match b {
        BoundKey::Fresh(k) => k.clone(),
        BoundKey::Existing(_, _) if keys.is_empty() => Vec::new(),
        BoundKey::Existing(i, m) => {
            let mut k = keys[i.index(keys.len())].clone();
            match m {
                1 => {
                    k.pop();
                }
                2 => k.push(0),
                3 => k.push(0xFF),
                _ => {}
            }
            k
        }
    }
}

fn bound_spec() -> impl Strategy<Value = (u8, BoundKey)> {
    (0..3u8, bound_key())
}

fn make_bound(kind: u8, k: Vec<u8>) -> Bound<Vec<u8>> {
    match kind {
        0 => Bound::Included(k),
        1 => Bound::Excluded(k),
        _ => Bound::Unbounded,
    }
}

fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    b.as_ref().map(|k| &k[..])
}

fn in_range(k: &[u8], lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    (match lo {
        Bound::Included(s) => k >= &s[..],
        Bound::Excluded(s) => k > &s[..],
        Bound::Unbounded => true,
    }) && (match hi {
        Bound::Included(e) => k <= &e[..],
        Bound::Excluded(e) => k < &e[..],
        Bound::Unbounded => true,
    })
}

fn show<K: AsRef<[u8]>>(v: &[(K, u64)]) -> Vec<String> {
    v.iter()
        .map(|(k, x)| format!("{}={x}", hex(k.as_ref())))
        .collect()
}

/// Position of the cursor in the model: -1 before the first key, `n` past the last.
fn model_seek(ks: &[Vec<u8>], probe: &[u8], to: Seek) -> (isize, bool) {
    let n = ks.len() as isize;
    let lt = ks.partition_point(|k| &k[..] < probe) as isize; // first >= probe
    let le = ks.partition_point(|k| &k[..] <= probe) as isize; // first > probe
    match to {
        Seek::Ge => (lt, lt < n),
        Seek::Gt => (le, le < n),
        Seek::Le => (le - 1, le > 0),
        Seek::Lt => (lt - 1, lt > 0),
    }
}

/// Keys for the failure-injection workload: splits (many keys), new layers
/// (shared 8-byte slices), long suffixes.
fn failure_keys() -> Vec<Vec<u8>> {
    let n = if cfg!(miri) { 24 } else { 64 };
    (0..n).map(|i| shaped_key(i * 3 + 1)).collect()
}

fn value_for(k: &[u8], round: u64) -> String {
    format!("{}-{round}-{}", hex(k), "x".repeat((round % 5) as usize))
}

/// Key `i` of the unlinking-scan test: fixed width, so key order is `i`'s.
fn gap_key(i: u64) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}

/// Asserts that `items` are strictly increasing (`backward`: decreasing) by key.
fn assert_strictly_ordered(items: &[(Vec<u8>, u64)], backward: bool) {
    for w in items.windows(2) {
        let ordered = if backward {
            w[0].0 > w[1].0
        } else {
            w[0].0 < w[1].0
        };
        assert!(
            ordered,
            "out of order or repeated: {} then {}",
            hex(&w[0].0),
            hex(&w[1].0)
        );
    }
}

/// The seek that lands just before where `seek` lands (in its direction).
fn seek_before(seek: Seek) -> Seek {
    match seek {
        Seek::Ge => Seek::Lt,
        Seek::Gt => Seek::Le,
        Seek::Le => Seek::Gt,
        Seek::Lt => Seek::Ge,
    }
}

/// Keys for the batch-visit test: inline keys, keys with suffixes, keys
/// sharing a 16-byte prefix (layers), runs of one byte.
fn visit_keys(n: usize) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for i in 0..n {
        keys.push(format!("{i:05}").into_bytes());
        keys.push(format!("k{i:07}/x").into_bytes());
        keys.push(format!("same/prefix/{:03}", i % 40).into_bytes());
        keys.push(vec![i as u8; 1 + i % 20]);
    }
    keys
}

for_each_backend! {
    // -----------------------------------------------------------------------
    // 1. Ranges, prefixes, first/last, keys/values
    // -----------------------------------------------------------------------
    proptest! {
        #![proptest_config(config(64))]

        #[test]
        fn range_matches_btreemap(
            ks in keys(),
            bounds in prop::collection::vec((bound_spec(), bound_spec(), prop::collection::vec(any::<bool>(), 0..12)), 1..8),
            prefix_picks in prop::collection::vec((bound_key(), 0..20usize), 1..6),
        ) {
            let t = new_itree::<u64>();
            let g = t.guard();
            let mut model = BTreeMap::new();
            for (i, k) in ks.iter().enumerate() {
                let v = key_hash(k) ^ i as u64;
                t.insert(k, v, &g);
                model.insert(k.clone(), v);
            }
            let all: Vec<(Vec<u8>, u64)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let sorted_keys: Vec<Vec<u8>> = model.keys().cloned().collect();
            prop_assert_eq!(t.len(), model.len());

            // whole-tree views
            let got: Vec<_> = t.iter(&g).collect();
            prop_assert_eq!(show(&got), show(&all));
            let got_rev: Vec<_> = t.iter(&g).rev().collect();
            let mut all_rev = all.clone();
            all_rev.reverse();
            prop_assert_eq!(show(&got_rev), show(&all_rev));
            prop_assert_eq!(t.keys(&g).collect::<Vec<_>>(), sorted_keys.clone());
            prop_assert_eq!(t.values(&g).collect::<Vec<_>>(), model.values().copied().collect::<Vec<_>>());
            prop_assert_eq!(t.values(&g).rev().collect::<Vec<_>>(), model.values().rev().copied().collect::<Vec<_>>());
            prop_assert_eq!(t.first(&g).map(vec_key), all.first().cloned());
            prop_assert_eq!(t.last(&g).map(vec_key), all.last().cloned());

            for ((lk, lb), (hk, hb), alternation) in &bounds {
                let lo = make_bound(*lk, resolve(lb, &sorted_keys));
                let hi = make_bound(*hk, resolve(hb, &sorted_keys));
                let expected: Vec<(Vec<u8>, u64)> =
                    all.iter().filter(|(k, _)| in_range(k, &lo, &hi)).cloned().collect();
                let range = || t.range((as_slice(&lo), as_slice(&hi)), &g);
                let fwd: Vec<_> = range().collect();
                prop_assert_eq!(show(&fwd), show(&expected), "forward {:?} {:?}", lo, hi);
                let mut rev: Vec<_> = range().rev().collect();
                rev.reverse();
                prop_assert_eq!(show(&rev), show(&expected), "reverse {:?} {:?}", lo, hi);
                // alternating ends
                let mut it = range();
                let (mut a, mut b) = (0usize, expected.len());
                for (step, &front) in alternation.iter().chain(std::iter::repeat_n(&true, expected.len() + 2)).enumerate() {
                    let front = front ^ (step % 3 == 2);
                    let want = if a < b {
                        if front { a += 1; Some(expected[a - 1].clone()) } else { b -= 1; Some(expected[b].clone()) }
                    } else {
                        None
                    };
                    let got = if front { it.next() } else { it.next_back() }.map(vec_key);
                    prop_assert_eq!(got, want, "alternating step {} front {} {:?} {:?}", step, front, lo, hi);
                }
                prop_assert_eq!(it.next(), None);
                prop_assert_eq!(it.next_back(), None);
            }

            for (pk, cut) in &prefix_picks {
                let mut p = resolve(pk, &sorted_keys);
                p.truncate(*cut);
                let expected: Vec<(Vec<u8>, u64)> =
                    all.iter().filter(|(k, _)| k.starts_with(&p)).cloned().collect();
                let got: Vec<_> = t.prefix(&p, &g).collect();
                prop_assert_eq!(show(&got), show(&expected), "prefix {}", hex(&p));
                let mut got_rev: Vec<_> = t.prefix(&p, &g).rev().collect();
                got_rev.reverse();
                prop_assert_eq!(show(&got_rev), show(&expected), "prefix rev {}", hex(&p));
            }
        }

        // -------------------------------------------------------------------
        // 2. Cursor
        // -------------------------------------------------------------------
        #[test]
        fn cursor_matches_model(
            ks in keys(),
            probes in prop::collection::vec((bound_key(), 0..6u8, prop::collection::vec(any::<bool>(), 0..10)), 1..10),
        ) {
            let t = new_itree::<u64>();
            let g = t.guard();
            let mut model = BTreeMap::new();
            for k in &ks {
                t.insert(k, key_hash(k), &g);
                model.insert(k.clone(), key_hash(k));
            }
            let sk: Vec<Vec<u8>> = model.keys().cloned().collect();
            let n = sk.len() as isize;
            let at = |pos: isize| -> Option<(Vec<u8>, u64)> {
                if (0..n).contains(&pos) {
                    let k = sk[pos as usize].clone();
                    let v = key_hash(&k);
                    Some((k, v))
                } else {
                    None
                }
            };
            let own = |e: Option<(&[u8], u64)>| e.map(|(k, v)| (k.to_vec(), v));
            // a fresh cursor: next is the first entry
            {
                let mut c = t.cursor(&g);
                prop_assert_eq!(own(c.current()), None);
                prop_assert_eq!(own(c.next()), at(0));
            }
            let mut c = t.cursor(&g);
            for (pk, how, steps) in &probes {
                let probe = resolve(pk, &sk);
                let (mut pos, got) = match how {
                    0..=3 => {
                        let to = [Seek::Ge, Seek::Gt, Seek::Le, Seek::Lt][*how as usize];
                        let (pos, found) = model_seek(&sk, &probe, to);
                        let got = own(c.seek(&probe, to));
                        prop_assert_eq!(got.clone(), if found { at(pos) } else { None }, "seek {:?} {}", to, hex(&probe));
                        (pos, got)
                    }
                    4 => (0, own(c.seek_first())),
                    _ => (n - 1, own(c.seek_last())),
                };
                prop_assert_eq!(got.clone(), at(pos));
                prop_assert_eq!(own(c.current()), got);
                // steps, including past either end and back
                for (i, &fwd) in steps.iter().enumerate() {
                    let got = if fwd {
                        pos = (pos + 1).min(n);
                        own(c.next())
                    } else {
                        pos = (pos - 1).max(-1);
                        own(c.prev())
                    };
                    prop_assert_eq!(got.clone(), at(pos), "step {} fwd {} after {}", i, fwd, hex(&probe));
                    prop_assert_eq!(own(c.current()), got);
                }
            }
            // walk off both ends and turn around
            prop_assert_eq!(own(c.seek_last()), at(n - 1));
            prop_assert_eq!(own(c.next()), None);
            prop_assert_eq!(own(c.next()), None);
            prop_assert_eq!(own(c.prev()), at(n - 1));
            prop_assert_eq!(own(c.seek_first()), at(0));
            prop_assert_eq!(own(c.prev()), None);
            prop_assert_eq!(own(c.prev()), None);
            prop_assert_eq!(own(c.next()), at(0));
            prop_assert_eq!(own(c.next()), at(1));
        }

        // -------------------------------------------------------------------
        // 3. update / compare_exchange / get_or_insert_with
        // -------------------------------------------------------------------
        #[test]
        fn rmw_matches_model(
            pool in prop::collection::vec(key(), 1..24),
            ops in prop::collection::vec((0..7u8, any::<Index>(), any::<u64>(), 0..3u8), 1..200),
        ) {
            let t = new_itree::<u64>();
            let g = t.guard();
            let mut model: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            for (op, ki, val, sub) in &ops {
                let k = &pool[ki.index(pool.len())];
                let cur = model.get(k).copied();
                let val = val % 1000;
                match op {
                    // update: Keep / Set / Remove
                    0..=2 => {
                        let mut seen = None;
                        let prev = t.update(k, |v| {
                            seen = Some(v);
                            match op {
                                0 => Change::Keep,
                                1 => Change::Set(v.unwrap_or(0) + val),
                                _ => Change::Remove,
                            }
                        }, &g);
                        prop_assert_eq!(seen, Some(cur), "update closure saw");
                        prop_assert_eq!(prev, cur);
                        match op {
                            0 => {}
                            1 => { model.insert(k.clone(), cur.unwrap_or(0) + val); }
                            _ => { model.remove(k); }
                        }
                    }
                    // compare_exchange
                    3 | 4 => {
                        let expect = match sub {
                            0 => None,
                            1 => cur.or(Some(val + 1)),
                            _ => Some(val),
                        };
                        let r = t.compare_exchange(k, expect.as_ref(), val, &g);
                        if expect == cur {
                            prop_assert_eq!(r, Ok(cur));
                            model.insert(k.clone(), val);
                        } else {
                            let e = r.unwrap_err();
                            prop_assert_eq!((e.current, e.new), (cur, val));
                        }
                    }
                    // get_or_insert_with
                    5 => {
                        let mut called = false;
                        let got = t.get_or_insert_with(k, || { called = true; val }, &g);
                        prop_assert_eq!(called, cur.is_none());
                        prop_assert_eq!(got, cur.unwrap_or(val));
                        model.entry(k.clone()).or_insert(val);
                    }
                    // plain remove (to make keys absent again)
                    _ => {
                        prop_assert_eq!(t.remove(k, &g), cur);
                        model.remove(k);
                    }
                }
                prop_assert_eq!(t.get(k, &g), model.get(k).copied());
                prop_assert_eq!(t.len(), model.len());
            }
            let got: Vec<_> = t.iter(&g).collect();
            let want: Vec<(Vec<u8>, u64)> = model.into_iter().collect();
            prop_assert_eq!(show(&got), show(&want));
        }

        // -------------------------------------------------------------------
        // 6. Bulk load
        // -------------------------------------------------------------------
        #[test]
        fn bulk_load_matches_model(
            ks in keys(),
            bad in any::<Index>(),
            dup in any::<bool>(),
        ) {
            let model: BTreeMap<Vec<u8>, String> =
                ks.iter().map(|k| (k.clone(), value_for(k, 1))).collect();
            let pairs: Vec<(Vec<u8>, String)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let c = TestAlloc::new();
            {
                let t = TreeIn::<String, TestAlloc>::from_sorted_in(backend_in(c.clone()), pairs.clone()).unwrap();
                let g = t.guard();
                prop_assert_eq!(t.len(), model.len());
                let got: Vec<(Vec<u8>, String)> = t.iter(&g).map(|(k, v)| (k.into_vec(), v.clone())).collect();
                prop_assert_eq!(&got, &pairs);
                let got_rev: Vec<KeyBuf> = t.keys(&g).rev().collect();
                prop_assert_eq!(got_rev, model.keys().rev().cloned().collect::<Vec<_>>());
                for (k, v) in &model {
                    prop_assert_eq!(t.get(k, &g), Some(v));
                }
                // the loaded tree takes writes
                t.insert(b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFFafter", "x".to_string(), &g);
                t.insert(b"", "empty".to_string(), &g);
                prop_assert_eq!(t.get(b"", &g).map(String::as_str), Some("empty"));
                let mut expected_len = model.len() + 1;
                if !model.contains_key(&b""[..]) { expected_len += 1; }
                if model.contains_key(&b"\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFFafter"[..]) { expected_len -= 1; }
                prop_assert_eq!(t.len(), expected_len);
                drop(g);
            }
            prop_assert_eq!(c.live_bytes(), 0);

            // not increasing: a duplicate or a swap at position p >= 1
            if pairs.len() >= 2 {
                let p = 1 + bad.index(pairs.len() - 1);
                let mut input = pairs.clone();
                if dup {
                    let d = input[p - 1].clone();
                    input.insert(p, d);
                } else {
                    input.swap(p - 1, p);
                }
                let c = TestAlloc::new();
                let r = TreeIn::<String, TestAlloc>::from_sorted_in(backend_in(c.clone()), input);
                prop_assert_eq!(r.err(), Some(BulkLoadError::NotIncreasing { position: p }));
                prop_assert_eq!(c.live_bytes(), 0);
            }
        }
    }

    #[test]
    fn bulk_load_shaped_keys_and_errors() {
        let n = scaled(4000) as u64;
        let model: BTreeMap<Vec<u8>, u64> = (0..n).map(|i| (shaped_key(i), i)).collect();
        let c = TestAlloc::new();
        {
            let t = ITreeIn::<u64, TestAlloc>::from_sorted_in(
                backend_in(c.clone()),
                model.iter().map(|(k, v)| (k.clone(), *v)),
            )
            .unwrap();
            let g = t.guard();
            assert_eq!(t.len(), model.len());
            assert!(t.iter(&g).map(vec_key).eq(model.iter().map(|(k, v)| (k.clone(), *v))));
            assert!(t.iter(&g).rev().map(vec_key).eq(model.iter().rev().map(|(k, v)| (k.clone(), *v))));
            // prefix through layers
            let p = b"sixteen-byte-pfx";
            assert!(t.prefix(p, &g).map(vec_key).eq(model.iter().filter(|(k, _)| k.starts_with(p)).map(|(k, v)| (k.clone(), *v))));
        }
        assert_eq!(c.live_bytes(), 0);
        // an error late in the input, after layers and splits were built
        let mut input: Vec<(Vec<u8>, u64)> = model.into_iter().collect();
        let p = input.len() - 3;
        input[p].0 = input[p - 1].0.clone();
        let c = TestAlloc::new();
        let r = ITreeIn::<u64, TestAlloc>::from_sorted_in(backend_in(c.clone()), input);
        assert_eq!(r.err(), Some(BulkLoadError::NotIncreasing { position: p }));
        assert_eq!(c.live_bytes(), 0);
    }

    // -----------------------------------------------------------------------
    // 4. Concurrency
    // -----------------------------------------------------------------------

    #[test]
    fn compare_exchange_counter_loses_nothing() {
        let per_thread = scaled(3000) as u64;
        let counters: Vec<Vec<u8>> = vec![
            b"counter".to_vec(),
            b"counter-with-a-long-suffix".to_vec(),
            b"counter-with-a-long-suffix-2".to_vec(),
        ];
        let t = new_itree::<u64>();
        std::thread::scope(|s| {
            for th in 0..4u64 {
                let (t, counters) = (&t, &counters);
                s.spawn(move || {
                    for i in 0..per_thread {
                        let k = &counters[((i + th) % counters.len() as u64) as usize];
                        let g = t.guard();
                        let mut cur = t.get(k, &g);
                        loop {
                            let new = cur.unwrap_or(0) + 1;
                            match t.compare_exchange(k, cur.as_ref(), new, &g) {
                                Ok(prev) => {
                                    assert_eq!(prev, cur);
                                    break;
                                }
                                Err(e) => {
                                    assert_eq!(e.new, new);
                                    assert_ne!(e.current, cur);
                                    cur = e.current;
                                }
                            }
                        }
                    }
                });
            }
        });
        let g = t.guard();
        let total: u64 = counters.iter().map(|k| t.get(k, &g).unwrap()).sum();
        assert_eq!(total, 4 * per_thread);
    }

    #[test]
    fn scans_under_churn() {
        const ROUND_BITS: u64 = 0xFFFF;
        let stable_n = scaled(600) as u64;
        let writer_ops = scaled(20_000) as u64;
        // stable and churn keys interleave in key order: the same shaped key
        // with a suffix byte 0x01 (stable) or 0x00/0x02 (churn)
        let base: Vec<Vec<u8>> = (0..stable_n).map(shaped_key).collect();
        let with = |k: &Vec<u8>, b: u8| {
            let mut k = k.clone();
            k.push(b);
            k
        };
        let stable: Vec<Vec<u8>> = base.iter().map(|k| with(k, 1)).collect();
        let churn: Vec<Vec<u8>> = base.iter().flat_map(|k| [with(k, 0), with(k, 2)]).collect();
        let stable_set: HashSet<Vec<u8>> = stable.iter().cloned().collect();
        let val = |k: &[u8], round: u64| (key_hash(k) & !ROUND_BITS) | (round & ROUND_BITS);
        let ok_val = |k: &[u8], v: u64| v & !ROUND_BITS == key_hash(k) & !ROUND_BITS;

        let t = new_tree::<u64>();
        {
            let g = t.guard();
            for k in &stable {
                t.insert(k, val(k, 0), &g);
            }
        }
        let done = AtomicBool::new(false);
        let writers_left = AtomicUsize::new(2);
        let scans = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for w in 0..2u64 {
                let (t, stable, churn, done, writers_left) = (&t, &stable, &churn, &done, &writers_left);
                s.spawn(move || {
                    let mut rng = Rng::new(w + 7);
                    let mut g = t.guard();
                    for i in 0..writer_ops {
                        let r = rng.below(10);
                        if r < 1 {
                            let k = &stable[rng.below(stable.len() as u64) as usize];
                            t.insert(k, val(k, i), &g);
                        } else {
                            let k = &churn[rng.below(churn.len() as u64) as usize];
                            if r < 6 {
                                t.insert(k, val(k, i), &g);
                            } else {
                                t.remove(k, &g);
                            }
                        }
                        if i % 64 == 0 {
                            drop(g);
                            g = t.guard();
                        }
                    }
                    drop(g);
                    if writers_left.fetch_sub(1, Ordering::SeqCst) == 1 {
                        done.store(true, Ordering::SeqCst);
                    }
                });
            }
            for reverse in [false, true] {
                let (t, stable_set, done, scans) = (&t, &stable_set, &done, &scans);
                s.spawn(move || {
                    let mut rounds = 0;
                    while rounds < 2 || (!done.load(Ordering::SeqCst) && rounds < 10_000) {
                        rounds += 1;
                        let g = t.guard();
                        let mut prev: Option<KeyBuf> = None;
                        let mut stable_seen = 0usize;
                        let mut check = |k: KeyBuf, v: u64| {
                            if let Some(p) = &prev {
                                if reverse {
                                    assert!(k < *p, "reverse scan not decreasing: {} then {}", hex(p), hex(&k));
                                } else {
                                    assert!(k > *p, "scan not increasing: {} then {}", hex(p), hex(&k));
                                }
                            }
                            assert!(ok_val(&k, v), "value {v:#x} was never written for {}", hex(&k));
                            if stable_set.contains(&k[..]) {
                                stable_seen += 1;
                            }
                            prev = Some(k);
                        };
                        if reverse {
                            for (k, v) in t.iter(&g).rev() {
                                check(k, *v);
                            }
                        } else {
                            for (k, v) in t.iter(&g) {
                                check(k, *v);
                            }
                        }
                        assert_eq!(stable_seen, stable_set.len(), "a stable key was missed (reverse: {reverse})");
                        // a cursor walk over a sub-range, the other way round
                        let mut c = t.cursor(&g);
                        let mut last: Option<Vec<u8>> = None;
                        let mut e = if reverse { c.seek(b"sixteen-byte-pfx", Seek::Ge) } else { c.seek_last() };
                        let mut steps = 0;
                        while let Some((k, v)) = e {
                            assert!(ok_val(k, v.to_owned()), "cursor value for {}", hex(k));
                            if let Some(l) = &last {
                                if reverse {
                                    assert!(k > &l[..], "cursor not increasing");
                                } else {
                                    assert!(k < &l[..], "cursor not decreasing");
                                }
                            }
                            last = Some(k.to_vec());
                            steps += 1;
                            if steps > 200 {
                                break;
                            }
                            e = if reverse { c.next() } else { c.prev() };
                        }
                        scans.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(scans.load(Ordering::SeqCst) >= 4);
        // final state: stable keys with their values
        let g = t.guard();
        for k in &stable {
            assert!(ok_val(k, *t.get(k, &g).unwrap()));
        }
    }

    // -----------------------------------------------------------------------
    // 5. Failure injection
    // -----------------------------------------------------------------------

    /// One failed allocation at every position k. The arena retries a refused
    /// chunk with a smaller one, so a single failure never reaches an
    /// operation there: `fail_each_allocation_burst` covers it.
    #[test]
    fn fail_each_allocation_once() {
        let failures = fail_each_allocation(1);
        if BACKEND_NAME != "arena" {
            assert!(failures > 0, "no allocation failure reached an operation");
        }
    }

    /// 16 failed allocations in a row from every position k.
    #[test]
    fn fail_each_allocation_burst() {
        assert!(fail_each_allocation(16) > 0, "no allocation failure reached an operation");
    }

    /// Threads insert through `fallible()` while every 7th allocation fails,
    /// so splits that must split full ancestors race each other and fail:
    /// every failure hands the value back and changes nothing, and the tree
    /// ends holding exactly the inserts that succeeded.
    #[test]
    fn concurrent_allocation_failures_lose_nothing() {
        const THREADS: u64 = 4;
        let per = scaled(20_000) as u64;
        let fail = TestAlloc::new();
        {
            let t = new_tree_in::<u64, _>(fail.clone());
            fail.fail_every(7);
            let done: Vec<Vec<u64>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|th| {
                        let t = &t;
                        s.spawn(move || {
                            let mut rng = Rng::new(th + 1);
                            let mut ok = Vec::new();
                            for _ in 0..per {
                                // Disjoint per thread: ids ending in the thread number.
                                let id = rng.below(1 << 40) * THREADS + th;
                                let g = t.guard();
                                match t.fallible().insert(&shaped_key(id), id, &g) {
                                    Ok(prev) => {
                                        if prev.is_none() {
                                            ok.push(id);
                                        }
                                    }
                                    Err(e) => assert_eq!(e.into_value(), id, "the value came back"),
                                }
                            }
                            ok
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            fail.disarm();
            // The arena retries a refused chunk with a smaller one, so
            // isolated failures never reach it (see the burst test).
            if BACKEND_NAME != "arena" {
                assert!(fail.failed() > 100, "only {} failures injected", fail.failed());
            }
            let mut want: Vec<(Vec<u8>, u64)> =
                done.iter().flatten().map(|&id| (shaped_key(id), id)).collect();
            want.sort();
            let g = t.guard();
            let got: Vec<(Vec<u8>, u64)> = t.iter(&g).map(|(k, v)| (k.into_vec(), *v)).collect();
            assert_eq!(got.len(), want.len(), "keys lost or invented");
            assert!(got == want, "the tree differs from the successful inserts");
            assert_eq!(t.len(), want.len());
        }
        assert_eq!(fail.live_bytes(), 0, "leaked after drop");
    }

    /// Returns how many positions made an operation fail.
    fn fail_each_allocation(burst: usize) -> usize {
        let keys = failure_keys();
        let half = keys.len() / 3;
        let mut failures_seen = 0usize;
        let mut k = 0usize;
        loop {
            let fail = TestAlloc::new();
            let mut model: BTreeMap<Vec<u8>, String> = BTreeMap::new();
            let mut failed_here = false;
            {
                let t = new_tree_in::<String, _>(fail.clone());
                let g = t.guard();
                // counted from here: construction may allocate (seize's home for
                // the allocator); the arena's first chunk comes with the first insert
                fail.fail_at(k, burst);
                // some structure first (plain inserts), then a mix of operations
                let script = keys[..half]
                    .iter()
                    .map(|key| (key, 0u64, 0usize))
                    .chain(keys.iter().enumerate().map(|(i, key)| (key, 1 + i as u64, i % 4)));
                for (key, round, op) in script {
                    let v = value_for(key, round);
                    let before = fail.failed();
                    // mix of operations, all allocating
                    let outcome: Result<(), String> = match op {
                        0 | 1 => match t.fallible().insert(key, v.clone(), &g) {
                            Ok(prev) => {
                                assert_eq!(prev, model.get(key));
                                model.insert(key.clone(), v.clone());
                                Ok(())
                            }
                            Err(e) => Err(e.into_value()),
                        },
                        2 => match t.fallible().update(key, |_| Change::Set(v.clone()), &g) {
                            Ok(prev) => {
                                assert_eq!(prev, model.get(key));
                                model.insert(key.clone(), v.clone());
                                Ok(())
                            }
                            Err(e) => match e.into_value() {
                                Some(back) => Err(back),
                                None => Err(v.clone()),
                            },
                        },
                        _ => {
                            let cur = model.get(key).cloned();
                            match t.fallible().compare_exchange(key, cur.as_ref(), v.clone(), &g) {
                                Ok(r) => {
                                    assert_eq!(r.unwrap(), model.get(key));
                                    model.insert(key.clone(), v.clone());
                                    Ok(())
                                }
                                Err(e) => Err(e.into_value()),
                            }
                        }
                    };
                    match outcome {
                        // (a backend may retry a refused allocation in another way)
                        Ok(()) => {}
                        Err(back) => {
                            assert_eq!(back, v, "k={k}: the value came back");
                            assert!(fail.failed() > before, "k={k}: Err without a failed allocation");
                            failed_here = true;
                        }
                    }
                }
                fail.disarm();
                // the tree equals the model
                let got: Vec<(Vec<u8>, String)> = t.iter(&g).map(|(k, v)| (k.into_vec(), v.clone())).collect();
                let want: Vec<(Vec<u8>, String)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(got, want, "k={k}: tree differs from the model after a failure");
                assert_eq!(t.len(), model.len());
                // later operations work
                for (i, key) in keys.iter().enumerate() {
                    let v = value_for(key, 1000 + i as u64);
                    assert_eq!(t.fallible().insert(key, v.clone(), &g).unwrap(), model.get(key));
                    model.insert(key.clone(), v);
                }
                for key in keys.iter().step_by(3) {
                    assert_eq!(t.remove(key, &g), model.get(key));
                    model.remove(key);
                }
                let extra = b"samesame-another-long-key-after-the-failure".to_vec();
                assert_eq!(t.get_or_insert_with(&extra, || "e".to_string(), &g), "e");
                model.insert(extra, "e".to_string());
                let got: Vec<(Vec<u8>, String)> = t.iter(&g).map(|(k, v)| (k.into_vec(), v.clone())).collect();
                let want: Vec<(Vec<u8>, String)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(got, want, "k={k}: later operations");
                drop(g);
            }
            assert_eq!(fail.live_bytes(), 0, "k={k}: leaked after drop");
            assert_eq!(fail.live_allocs(), 0, "k={k}: leaked after drop");
            if failed_here {
                failures_seen += 1;
            } else if fail.failed() == 0 && fail.requests() <= k {
                // the workload makes fewer than k allocations: done
                break;
            }
            k += 1;
        }
        eprintln!("{BACKEND_NAME}, burst {burst}: {failures_seen} failing positions of {k}");
        failures_seen
    }

    // -----------------------------------------------------------------------
    // 2. Cursor batch visits
    // -----------------------------------------------------------------------

    /// The cursor's batch visits yield what loops of `next`/`prev` yield, from
    /// every start, across inline keys, suffixes and layers, and stop where
    /// told, leaving the cursor there.
    #[test]
    fn for_each_matches_single_steps() {
        let t = new_itree::<u64>();
        let g = t.guard();
        let keys = visit_keys(scaled(300));
        for (i, k) in keys.iter().enumerate() {
            t.insert(k, i as u64, &g);
        }
        let starts: Vec<Vec<u8>> =
            keys.iter().step_by(7).cloned().chain([vec![], vec![0xff; 30]]).collect();
        for start in &starts {
            for seek in [Seek::Ge, Seek::Gt, Seek::Le, Seek::Lt] {
                let forward = matches!(seek, Seek::Ge | Seek::Gt);
                let want = single_steps(&t, start, seek);
                // Batch: from just before that entry (a fresh cursor if
                // nothing is before it).
                let mut c = t.cursor(&g);
                let had_before = c.seek(start, seek_before(seek)).is_some();
                if !had_before {
                    c = t.cursor(&g);
                }
                let mut got = Vec::new();
                let visit = |k: &[u8], v: u64| {
                    got.push((k.to_vec(), v));
                    ControlFlow::<()>::Continue(())
                };
                let r = if forward { c.for_each_next(visit) } else { c.for_each_prev(visit) };
                assert_eq!(r, ControlFlow::Continue(()));
                assert_eq!(got, want, "from {} {seek:?}", hex(start));
                assert_eq!(c.current(), None, "past the end after a full visit");
                for k in [1, 2, 15, 16, 50] {
                    if k <= want.len() {
                        visit_stops_after(&t, start, seek, had_before, k, &want);
                    }
                }
            }
        }
    }

    /// The entry `seek` from `start` lands on, then single steps on in its
    /// direction to the end.
    fn single_steps(t: &ITree<u64>, start: &[u8], seek: Seek) -> Vec<(Vec<u8>, u64)> {
        let forward = matches!(seek, Seek::Ge | Seek::Gt);
        let g = t.guard();
        let mut c = t.cursor(&g);
        let first = c.seek(start, seek).map(|(k, v)| (k.to_vec(), v));
        let mut want: Vec<(Vec<u8>, u64)> = first.into_iter().collect();
        while let Some((k, v)) = if forward { c.next() } else { c.prev() } {
            want.push((k.to_vec(), v));
        }
        want
    }

    /// A batch visit told to stop after `k` entries: the cursor is on the
    /// k-th, and single steps go on from there.
    fn visit_stops_after(
        t: &ITree<u64>,
        start: &[u8],
        seek: Seek,
        had_before: bool,
        k: usize,
        want: &[(Vec<u8>, u64)],
    ) {
        let forward = matches!(seek, Seek::Ge | Seek::Gt);
        let g = t.guard();
        let mut c = t.cursor(&g);
        if had_before {
            c.seek(start, seek_before(seek));
        }
        let mut n = 0;
        let visit = |_: &[u8], v: u64| {
            n += 1;
            if n == k { ControlFlow::Break(v) } else { ControlFlow::Continue(()) }
        };
        let r = if forward { c.for_each_next(visit) } else { c.for_each_prev(visit) };
        assert_eq!(r, ControlFlow::Break(want[k - 1].1));
        assert_eq!(c.current().map(|(k, v)| (k.to_vec(), v)), Some(want[k - 1].clone()));
        let after = if forward { c.next() } else { c.prev() };
        assert_eq!(after.map(|(k, v)| (k.to_vec(), v)), want.get(k).cloned());
    }

    // -----------------------------------------------------------------------
    // 4. Concurrency: get_or_insert_with, scans over unlinked leaves
    // -----------------------------------------------------------------------

    /// Four threads race `get_or_insert_with` on the same keys: each key's
    /// closure runs exactly once, and every call returns a value made for
    /// that key.
    #[test]
    fn get_or_insert_with_inserts_once() {
        let n = scaled(500);
        let t = new_tree::<String>();
        let calls = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for id in 0..4 {
                let (t, calls) = (&t, &calls);
                s.spawn(move || {
                    let g = t.guard();
                    for i in 0..n {
                        let make = || {
                            calls.fetch_add(1, Ordering::Relaxed);
                            format!("{i}-{id}")
                        };
                        let v = t.get_or_insert_with(&format!("key{i}"), make, &g);
                        assert!(v.starts_with(&format!("{i}-")), "key{i} holds {v:?}");
                    }
                });
            }
        });
        assert_eq!(calls.into_inner(), n);
        assert_eq!(t.len(), n);
    }

    /// Every entry of `t`, forward or backward (through the iterator in even
    /// rounds, the cursor's `for_each_*` in odd ones), checked to come out
    /// strictly ordered (no key twice).
    fn full_scan(t: &ITree<u64>, backward: bool, round: usize) -> Vec<(Vec<u8>, u64)> {
        let g = t.guard();
        let items: Vec<(Vec<u8>, u64)> = match (round % 2, backward) {
            (0, true) => t.iter(&g).rev().map(vec_key).collect(),
            (0, false) => t.iter(&g).map(vec_key).collect(),
            // Odd rounds: the cursor's batch visit (its tight in-leaf loop).
            (_, backward) => {
                let mut items = Vec::new();
                let mut c = t.cursor(&g);
                let visit = |k: &[u8], v: u64| {
                    items.push((k.to_vec(), v));
                    ControlFlow::<()>::Continue(())
                };
                let _ = if backward { c.for_each_prev(visit) } else { c.for_each_next(visit) };
                items
            }
        };
        assert_strictly_ordered(&items, backward);
        items
    }

    /// Scans in both directions while a writer fills the wide gaps between
    /// sparse stable keys with whole leaves of keys and removes them again,
    /// so leaves are split, emptied and unlinked under the scans (the
    /// backward step follows `prev` links when they are consistent): strictly
    /// ordered, every stable key seen, values as written.
    #[test]
    fn scans_while_leaves_are_unlinked() {
        let t = new_itree::<u64>();
        // Under Miri: a few gaps, one round, two scans per direction.
        let gaps: u64 = if cfg!(miri) { 4 } else { 400 };
        let rounds: u64 = if cfg!(miri) { 1 } else { 40 };
        let stable: Vec<u64> = (0..gaps).map(|i| i * 64).collect();
        {
            let g = t.guard();
            for &i in &stable {
                t.insert(&gap_key(i), i, &g);
            }
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (t, done, stable) = (&t, &done, &stable);
            s.spawn(move || {
                let g = t.guard();
                for r in 0..rounds {
                    // 40 keys per gap: whole leaves of churn between stable keys.
                    let churn: Vec<u64> = (0..gaps)
                        .flat_map(|gap| (1..=40).map(move |j| gap * 64 + j + (r % 3)))
                        .collect();
                    for &i in &churn {
                        t.insert(&gap_key(i), i, &g);
                    }
                    for &i in churn.iter().rev() {
                        t.remove(&gap_key(i), &g);
                    }
                }
                // Relaxed: only a stop signal for the scanners; nothing is
                // published through it (the scope's join orders the rest).
                done.store(true, Ordering::Relaxed);
            });
            for backward in [false, true] {
                s.spawn(move || {
                    let mut scans = 0;
                    // Relaxed: pairs with nothing; see the store above.
                    let more = || !cfg!(miri) && !done.load(Ordering::Relaxed);
                    while scans < 2 || more() {
                        scans += 1;
                        let items = full_scan(t, backward, scans);
                        for (k, v) in &items {
                            assert_eq!(k, &gap_key(*v), "value for {}", hex(k));
                        }
                        let seen: HashSet<&[u8]> = items.iter().map(|(k, _)| &k[..]).collect();
                        for &i in stable {
                            assert!(
                                seen.contains(&gap_key(i)[..]),
                                "stable key {i} missing (backward: {backward})"
                            );
                        }
                    }
                });
            }
        });
    }

    // -----------------------------------------------------------------------
    // 6. Bulk load at exact multiples of the fanout
    // -----------------------------------------------------------------------

    /// Regression: when a level's last internode was exactly full it had been
    /// handed up already, and closing the layer lost the whole subtree.
    #[test]
    fn bulk_load_exact_multiples_of_the_fanout() {
        let largest = if cfg!(miri) { 15 * 15 } else { 15 * 15 * 15 * 15 };
        for n in [15u64, 16, 15 * 15, 15 * 15 + 1, 15 * 15 * 15, largest] {
            let t = ITree::<u64>::from_sorted_in(backend(), (0..n).map(|i| (i.to_be_bytes(), i)))
                .unwrap();
            let g = t.guard();
            assert_eq!(t.iter(&g).count() as u64, n, "n = {n}");
            assert_eq!(t.get(&(n - 1).to_be_bytes(), &g), Some(n - 1));
            drop(g);
            // Layers made by the loader close the same way.
            let t = ITree::<u64>::from_sorted_in(
                backend(),
                (0..n).map(|i| (format!("same-prefix/{i:08}"), i)),
            )
            .unwrap();
            let g = t.guard();
            assert_eq!(t.iter(&g).count() as u64, n, "layered, n = {n}");
        }
    }
}
