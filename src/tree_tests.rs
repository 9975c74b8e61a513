//! Unit tests of the whole tree on the test backend (small enough for Miri).

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use crate::node::{NodeBase, layer_root, reach_leaf, version};
use crate::test_backend::{TestBackend, TestGuard};
use crate::{Inline, OutOfLine, Tree};

type Words = Tree<Inline<usize>, TestBackend>;

fn scale(n: usize) -> usize {
    if cfg!(miri) { (n / 200).max(16) } else { n }
}

#[path = "../tests/common/rng.rs"]
mod rng;
use rng::Rng;

fn check_against(tree: &Words, model: &BTreeMap<Vec<u8>, usize>) {
    let g = tree.guard();
    assert_eq!(tree.len(), model.len());
    for (k, v) in model {
        assert_eq!(tree.get(k, &g), Some(*v), "key {k:?}");
    }
}

#[test]
fn empty_tree() {
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    assert!(t.is_empty());
    assert_eq!(t.get(b"", &g), None);
    assert_eq!(t.get(b"abc", &g), None);
    assert_eq!(format!("{t:?}"), "{}");
    t.insert(b"a\0\xff", 3, &g);
    t.insert(b"", 1, &g);
    assert_eq!(format!("{t:?}"), r#"{b"": 1, b"a\x00\xff": 3}"#);
}

#[test]
fn long_keys_share_many_layers() {
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    let base = vec![7u8; if cfg!(miri) { 100 } else { 3000 }];
    let mut model = BTreeMap::new();
    for i in 0..scale(500) {
        let mut k = base.clone();
        k.extend_from_slice(format!("{i}").as_bytes());
        t.insert(&k, i, &g);
        model.insert(k, i);
    }
    model.insert(base.clone(), 9);
    t.insert(&base, 9, &g);
    check_against(&t, &model);
    assert_eq!(t.get(&base[..base.len() - 1], &g), None);
}

#[test]
fn out_of_line_values_are_freed_once() {
    let backend = TestBackend::new();
    let t: Tree<OutOfLine<String>, TestBackend> = Tree::new_in(backend);
    {
        let g = t.guard();
        for i in 0..scale(5000) {
            let k = format!("key-{i:08}-with-a-long-suffix");
            t.insert(&k, format!("v{i}"), &g);
        }
        for i in 0..scale(5000) / 2 {
            let k = format!("key-{i:08}-with-a-long-suffix");
            let old = t.insert(&k, format!("w{i}"), &g);
            assert_eq!(old.map(String::as_str), Some(format!("v{i}").as_str()));
        }
        assert_eq!(
            t.get("key-00000000-with-a-long-suffix", &g)
                .map(String::as_str),
            Some("w0")
        );
    }
    let live = t.backend().live.clone();
    drop(t);
    assert_eq!(live.load(core::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn nothing_leaks_at_drop() {
    let t = Words::new_in(TestBackend::new());
    {
        let g = t.guard();
        let mut rng = Rng::new(42);
        for i in 0..scale(10_000) {
            let r = rng.next_u64();
            let k = format!("{:x}/{:x}", r % 64, r);
            t.insert(&k, i, &g);
        }
    }
    let mut t = t;
    // SAFETY: exclusive access.
    unsafe {
        t.raw
            .free_all(<Inline<usize> as crate::ValueStorage>::free::<TestBackend>)
    };
    assert_eq!(
        t.backend().live.load(core::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
#[should_panic(expected = "different tree")]
fn foreign_guard_panics() {
    let a = Words::new_in(TestBackend::new());
    let b = Words::new_in(TestBackend::new());
    let g = b.guard();
    a.get(b"x", &g);
}

#[test]
fn concurrent_inserts_and_reads() {
    let t = Words::new_in(TestBackend::new());
    let threads = 4;
    let per = scale(5000);
    std::thread::scope(|s| {
        for id in 0..threads {
            let t = &t;
            s.spawn(move || {
                let g = t.guard();
                for i in 0..per {
                    let k = format!("{:06}/{id}", i * 7 % per);
                    t.insert(&k, i * threads + id, &g);
                    let probe = format!("{:06}/{}", i * 7 % per, (id + 1) % threads);
                    if let Some(v) = t.get(&probe, &g) {
                        assert_eq!(v % threads, (id + 1) % threads);
                    }
                }
            });
        }
    });
    let g = t.guard();
    assert_eq!(t.len(), threads * per);
    for id in 0..threads {
        for i in 0..per {
            let k = format!("{:06}/{id}", i * 7 % per);
            assert_eq!(t.get(&k, &g), Some(i * threads + id));
        }
    }
}

/// Regression: a split that put the new key left once read the separator
/// after overwriting the slot it came from.
#[test]
fn every_key_visible_after_each_insert_around_splits() {
    for rev in [false, true] {
        let sizes: &[usize] = if cfg!(miri) {
            &[15, 16, 31]
        } else {
            &[14, 15, 16, 17, 31, 250]
        };
        for &n in sizes {
            let t = Words::new_in(TestBackend::new());
            let g = t.guard();
            let order: Vec<usize> = if rev {
                (0..n).rev().collect()
            } else {
                (0..n).collect()
            };
            for (done, &i) in order.iter().enumerate() {
                t.insert(&(i as u64).to_be_bytes(), i, &g);
                for &j in &order[..=done] {
                    assert_eq!(
                        t.get(&(j as u64).to_be_bytes(), &g),
                        Some(j),
                        "n={n} rev={rev} after {i}: key {j}"
                    );
                }
            }
        }
    }
}

fn live(t: &Words) -> isize {
    t.backend().live.load(core::sync::atomic::Ordering::Relaxed)
}

#[test]
fn remove_matches_model_across_layers() {
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    let mut model: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut rng = Rng::new(7);
    let prefixes: [&[u8]; 3] = [
        b"",
        b"0123456789abcdef",
        b"\xff\xff\xff\xff\xff\xff\xff\xffz",
    ];
    for i in 0..scale(40_000) {
        let r = rng.next_u64();
        let mut k = prefixes[(r % 3) as usize].to_vec();
        for j in 0..(r >> 4) % 12 {
            k.push(b"a\0\xff"[((r >> (8 + 2 * j)) % 3) as usize]);
        }
        if (r >> 40) % 3 == 0 {
            assert_eq!(t.remove(&k, &g), model.remove(&k), "remove {k:?}");
        } else {
            assert_eq!(
                t.insert(&k, i, &g),
                model.insert(k.clone(), i),
                "insert {k:?}"
            );
        }
        assert_eq!(t.len(), model.len());
    }
    check_against(&t, &model);
    for k in model.keys() {
        assert!(t.remove(k, &g).is_some());
    }
    assert!(t.is_empty());
    for k in model.keys() {
        assert_eq!(t.get(k, &g), None);
    }
}

#[test]
fn removing_everything_returns_the_memory() {
    let n = scale(30_000);
    let mut t = Words::new_in(TestBackend::new());
    let mut rng = Rng::new(99);
    let keys: Vec<Vec<u8>> = (0..n)
        .map(|i| match i % 3 {
            0 => rng.next_u64().to_be_bytes().to_vec(),
            1 => format!("user/{:016x}/profile", rng.next_u64()).into_bytes(),
            _ => format!("same-prefix-{}", i).into_bytes(),
        })
        .collect();
    {
        let g = t.guard();
        for (i, k) in keys.iter().enumerate() {
            t.insert(k, i, &g);
        }
    }
    let loaded = live(&t);
    {
        let g = t.guard();
        for k in &keys {
            assert!(t.remove(k, &g).is_some(), "{k:?}");
        }
    }
    t.reclaim();
    // What stays: the leftmost leaf of layer 0 and the internodes above it
    // (one key-less internode per level); no layer, suffix or value.
    let (leaves, internodes, layers) = census(&t);
    assert_eq!((leaves, layers), (1, 0));
    assert!(internodes <= 4, "{internodes} internodes left");
    assert_eq!(
        live(&t),
        (leaves + internodes) as isize,
        "of {loaded} allocations"
    );
    // Still usable.
    let g = t.guard();
    t.insert(b"again", 1, &g);
    assert_eq!(t.get(b"again", &g), Some(1));
}

#[test]
fn remove_then_reinsert_same_keys() {
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    for round in 0..3 {
        for i in 0..scale(3000) {
            let k = format!("k{:05}/with/a/suffix", i);
            assert_eq!(t.insert(&k, i + round, &g), None);
        }
        for i in 0..scale(3000) {
            let k = format!("k{:05}/with/a/suffix", i);
            assert_eq!(t.remove(&k, &g), Some(i + round));
        }
        assert!(t.is_empty());
    }
    assert_eq!(t.insert(b"", 1, &g), None);
    assert_eq!(t.remove(b"", &g), Some(1));
    assert_eq!(t.remove(b"", &g), None);
}

#[test]
fn clear_frees_everything() {
    let mut t: Tree<OutOfLine<String>, TestBackend> = Tree::new_in(TestBackend::new());
    {
        let g = t.guard();
        for i in 0..scale(2000) {
            t.insert(&format!("{i:x}-{i}"), format!("{i}"), &g);
        }
    }
    t.clear();
    assert!(t.is_empty());
    assert_eq!(
        t.backend().live.load(core::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn concurrent_insert_remove_owned_keys() {
    let t = Words::new_in(TestBackend::new());
    let threads = 4;
    let per = scale(4000);
    let logs: Vec<BTreeMap<std::string::String, usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|id| {
                let t = &t;
                s.spawn(move || {
                    let g = t.guard();
                    let mut rng = Rng::new(id as u64 + 1);
                    let mut mine = std::collections::BTreeMap::new();
                    for i in 0..per {
                        let r = rng.next_u64();
                        let k = format!("{:03}/{id}/{}", r % 300, (r >> 20) % 4);
                        if r % 3 == 0 {
                            assert_eq!(t.remove(&k, &g), mine.remove(&k));
                        } else {
                            assert_eq!(t.insert(&k, i, &g), mine.insert(k.clone(), i));
                        }
                        assert_eq!(t.get(&k, &g), mine.get(&k).copied());
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // At the end the tree is exactly the union of the threads' logs.
    let g = t.guard();
    let union: Vec<(Vec<u8>, usize)> = logs
        .iter()
        .flat_map(|m| m.iter().map(|(k, v)| (k.clone().into_bytes(), *v)))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    assert_eq!(t.iter(&g).collect::<Vec<_>>(), union);
    assert_eq!(t.len(), union.len());
}

/// (leaves, internodes, layers) reachable from the root.
fn census(t: &Words) -> (usize, usize, usize) {
    use crate::leaf::{Leaf, SlotKind, slot_kind};

    unsafe fn walk(n: *mut NodeBase, acc: &mut (usize, usize, usize)) {
        unsafe {
            if version(n).load().is_leaf() {
                acc.0 += 1;
                let l = &*n.cast::<Leaf>();
                for s in l.permutation.load().iter() {
                    if slot_kind(l.keylenx(s)) == SlotKind::Layer {
                        acc.2 += 1;
                        walk(layer_root(l.value(s).cast()), acc);
                    }
                }
            } else {
                acc.1 += 1;
                let i = &*n.cast::<crate::backend::Internode>();
                for c in 0..=i.nkeys() {
                    walk(i.child(c), acc);
                }
            }
        }
    }
    let mut acc = (0, 0, 0);
    let r = t.raw.top_root();
    if !r.is_null() {
        unsafe { walk(layer_root(r), &mut acc) };
    }
    acc
}

fn scan_keys(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let prefixes: [&[u8]; 4] = [
        b"",
        b"abcdefgh",
        b"abcdefghijklmnop",
        b"\xff\xff\xff\xff\xff\xff\xff\xff",
    ];
    (0..n)
        .map(|_| {
            let r = rng.next_u64();
            let mut k = prefixes[(r % 4) as usize].to_vec();
            for j in 0..(r >> 3) % 11 {
                k.push(b"a\0\xffq"[((r >> (10 + 2 * j)) % 4) as usize]);
            }
            k
        })
        .collect()
}

fn bound(rng: &mut Rng, keys: &[Vec<u8>]) -> core::ops::Bound<Vec<u8>> {
    use core::ops::Bound;
    let r = rng.next_u64();
    let k = if r % 2 == 0 && !keys.is_empty() {
        keys[(r >> 8) as usize % keys.len()].clone()
    } else {
        scan_keys(rng, 1).pop().unwrap()
    };
    match (r >> 4) % 3 {
        0 => Bound::Included(k),
        1 => Bound::Excluded(k),
        _ => Bound::Unbounded,
    }
}

#[test]
fn ranges_match_btreemap_both_ways() {
    use core::ops::Bound;
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    let mut rng = Rng::new(2024);
    let mut model = BTreeMap::new();
    let keys = scan_keys(&mut rng, scale(3000));
    for (i, k) in keys.iter().enumerate() {
        t.insert(k, i, &g);
        model.insert(k.clone(), i);
    }
    for k in keys.iter().step_by(3) {
        t.remove(k, &g);
        model.remove(k);
    }
    let all: Vec<(Vec<u8>, usize)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(t.iter(&g).collect::<Vec<_>>(), all);
    assert_eq!(
        t.iter(&g).rev().collect::<Vec<_>>(),
        all.iter().rev().cloned().collect::<Vec<_>>()
    );
    for _ in 0..scale(300) {
        let (lo, hi) = (bound(&mut rng, &keys), bound(&mut rng, &keys));
        let expect: Vec<(Vec<u8>, usize)> = all
            .iter()
            .filter(|(k, _)| {
                let above = match &lo {
                    Bound::Included(s) => k >= s,
                    Bound::Excluded(s) => k > s,
                    Bound::Unbounded => true,
                };
                let below = match &hi {
                    Bound::Included(e) => k <= e,
                    Bound::Excluded(e) => k < e,
                    Bound::Unbounded => true,
                };
                above && below
            })
            .cloned()
            .collect();
        let r = (
            lo.as_ref().map(Vec::as_slice),
            hi.as_ref().map(Vec::as_slice),
        );
        let fwd: Vec<_> = t.range::<[u8], _>(r, &g).collect();
        assert_eq!(fwd, expect, "range {lo:?}..{hi:?}");
        let rev: Vec<_> = t.range::<[u8], _>(r, &g).rev().collect();
        assert_eq!(
            rev,
            expect.iter().rev().cloned().collect::<Vec<_>>(),
            "rev range {lo:?}..{hi:?}"
        );
        // Alternate ends: the two cursors meet without overlap.
        let mut it = t.range::<[u8], _>(r, &g);
        let mut mixed = (Vec::new(), Vec::new());
        for i in 0.. {
            let e = if i % 3 == 0 {
                it.next_back().map(|e| (true, e))
            } else {
                it.next().map(|e| (false, e))
            };
            match e {
                Some((true, e)) => mixed.1.push(e),
                Some((false, e)) => mixed.0.push(e),
                None => break,
            }
        }
        mixed.1.reverse();
        mixed.0.extend(mixed.1);
        assert_eq!(mixed.0, expect, "mixed range {lo:?}..{hi:?}");
        assert!(it.next().is_none() && it.next_back().is_none());
    }
}

#[test]
fn prefixes_and_cursor_seeks_match_btreemap() {
    use crate::Seek;
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    let mut rng = Rng::new(77);
    let mut model = BTreeMap::new();
    for (i, k) in scan_keys(&mut rng, scale(2000)).into_iter().enumerate() {
        t.insert(&k, i, &g);
        model.insert(k, i);
    }
    for _ in 0..scale(400) {
        let p = scan_keys(&mut rng, 1).pop().unwrap();
        for cut in [0, 1, 7, 8, 9, 16, p.len()] {
            let p = &p[..cut.min(p.len())];
            let got: Vec<_> = t.prefix(p, &g).map(|(k, _)| k).collect();
            let want: Vec<_> = model.keys().filter(|k| k.starts_with(p)).cloned().collect();
            assert_eq!(got, want, "prefix {p:?}");
        }
        let mut c = t.cursor(&g);
        use core::ops::Bound::*;
        let ge = model.range::<[u8], _>((Included(&p[..]), Unbounded)).next();
        assert_eq!(
            c.seek(&p, Seek::Ge).map(|(k, v)| (k.to_vec(), v)),
            ge.map(|(k, v)| (k.clone(), *v))
        );
        let gt = model.range::<[u8], _>((Excluded(&p[..]), Unbounded)).next();
        assert_eq!(
            c.seek(&p, Seek::Gt).map(|(k, v)| (k.to_vec(), v)),
            gt.map(|(k, v)| (k.clone(), *v))
        );
        let le = model
            .range::<[u8], _>((Unbounded, Included(&p[..])))
            .next_back();
        assert_eq!(
            c.seek(&p, Seek::Le).map(|(k, v)| (k.to_vec(), v)),
            le.map(|(k, v)| (k.clone(), *v))
        );
        let lt = model
            .range::<[u8], _>((Unbounded, Excluded(&p[..])))
            .next_back();
        assert_eq!(
            c.seek(&p, Seek::Lt).map(|(k, v)| (k.to_vec(), v)),
            lt.map(|(k, v)| (k.clone(), *v))
        );
        // Step both ways from there.
        if let Some((k, _)) = lt {
            let next = model.range::<[u8], _>((Excluded(&k[..]), Unbounded)).next();
            assert_eq!(
                c.next().map(|(k, _)| k.to_vec()),
                next.map(|(k, _)| k.clone())
            );
            assert_eq!(c.prev().map(|(k, _)| k.to_vec()), Some(k.clone()));
        }
    }
    let (first, last) = (
        model.iter().next().unwrap(),
        model.iter().next_back().unwrap(),
    );
    assert_eq!(t.first(&g), Some((first.0.clone(), *first.1)));
    assert_eq!(t.last(&g), Some((last.0.clone(), *last.1)));
    let mut c = t.cursor(&g);
    assert_eq!(c.prev().map(|(k, _)| k.to_vec()), Some(last.0.clone()));
    assert_eq!(c.next(), None);
    assert_eq!(c.prev().map(|(k, _)| k.to_vec()), Some(last.0.clone()));
}

/// Every entry of `t`, forward or backward (through the iterator in even
/// rounds, the cursor's `for_each_*` in odd ones), checked to come out
/// strictly ordered (no key twice).
fn full_scan(t: &Words, g: &TestGuard<'_>, backward: bool, round: usize) -> Vec<(Vec<u8>, usize)> {
    let items: Vec<(Vec<u8>, usize)> = match (round % 2, backward) {
        (0, true) => t.iter(g).rev().collect(),
        (0, false) => t.iter(g).collect(),
        // Odd rounds: the cursor's batch visit (its tight in-leaf loop).
        (_, backward) => {
            let mut items = Vec::new();
            let mut c = t.cursor(g);
            let visit = |k: &[u8], v: usize| {
                items.push((k.to_vec(), v));
                core::ops::ControlFlow::<()>::Continue(())
            };
            let _ = if backward {
                c.for_each_prev(visit)
            } else {
                c.for_each_next(visit)
            };
            items
        }
    };
    for w in items.windows(2) {
        let ordered = if backward {
            w[0].0 > w[1].0
        } else {
            w[0].0 < w[1].0
        };
        assert!(
            ordered,
            "out of order or repeated: {:?} then {:?}",
            w[0].0, w[1].0
        );
    }
    items
}

/// Scans in both directions while writers insert and remove whole leaves'
/// worth of keys between stable ones: strictly ordered, no duplicates, every
/// stable key seen, every value one that was written for its key.
#[test]
fn scans_under_concurrent_writes() {
    let t = Words::new_in(TestBackend::new());
    let stable: Vec<Vec<u8>> = (0..scale(2000))
        .map(|i| format!("s{:06}", i * 10).into_bytes())
        .collect();
    {
        let g = t.guard();
        for k in &stable {
            t.insert(k, value_of(k), &g);
        }
    }
    fn value_of(k: &[u8]) -> usize {
        k.iter()
            .fold(7usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize))
    }
    let rounds = if cfg!(miri) { 2 } else { 30 };
    std::thread::scope(|s| {
        for w in 0..2usize {
            let t = &t;
            s.spawn(move || {
                let g = t.guard();
                for r in 0..rounds {
                    // Churn keys between the stable ones, and long keys that
                    // make layers, then take them all out again.
                    let churn: Vec<Vec<u8>> = (0..scale(2000))
                        .map(|i| {
                            format!(
                                "s{:06}{}",
                                i * 10 + 1 + w + (r % 3),
                                if i % 7 == 0 { "/deeper/layer/key" } else { "" }
                            )
                            .into_bytes()
                        })
                        .collect();
                    for k in &churn {
                        t.insert(k, value_of(k), &g);
                    }
                    for k in &churn {
                        t.remove(k, &g);
                    }
                }
            });
        }
        for backward in [false, true] {
            let t = &t;
            let stable = &stable;
            s.spawn(move || {
                for round in 0..rounds {
                    let g = t.guard();
                    let items = full_scan(t, &g, backward, round);
                    for (k, v) in &items {
                        assert_eq!(*v, value_of(k), "value for {k:?}");
                    }
                    let seen: std::collections::BTreeSet<&[u8]> =
                        items.iter().map(|(k, _)| &k[..]).collect();
                    for k in stable {
                        assert!(seen.contains(&k[..]), "stable key {k:?} missing");
                    }
                }
            });
        }
    });
}

/// Scans in both directions while writers fill the wide gaps between sparse
/// stable keys with whole leaves of keys and remove them again, so leaves are
/// split, emptied and unlinked under the scans (the backward step follows
/// `prev` links when they are consistent): strictly ordered, every stable key
/// seen, values as written.
#[test]
fn scans_while_leaves_are_unlinked() {
    let t = Words::new_in(TestBackend::new());
    // Under Miri: a few gaps, one round, two scans per direction.
    let gaps = if cfg!(miri) { 4 } else { 400 };
    let key = |i: usize| format!("k{i:08}").into_bytes();
    let stable: Vec<usize> = (0..gaps).map(|i| i * 64).collect();
    {
        let g = t.guard();
        for &i in &stable {
            t.insert(&key(i), i, &g);
        }
    }
    let rounds = if cfg!(miri) { 1 } else { 40 };
    let done = core::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let (t, done, stable) = (&t, &done, &stable);
        s.spawn(move || {
            let g = t.guard();
            for r in 0..rounds {
                // 40 keys per gap: whole leaves of churn between stable keys.
                let churn: Vec<usize> = (0..gaps)
                    .flat_map(|gap| (1..=40).map(move |j| gap * 64 + j + (r % 3)))
                    .collect();
                for &i in &churn {
                    t.insert(&key(i), i, &g);
                }
                for &i in churn.iter().rev() {
                    t.remove(&key(i), &g);
                }
            }
            // Relaxed: only a stop signal for the scanners; nothing is
            // published through it (the scope's join orders the rest).
            done.store(true, core::sync::atomic::Ordering::Relaxed);
        });
        for backward in [false, true] {
            s.spawn(move || {
                let mut scans = 0;
                // Relaxed: pairs with nothing; see the store above.
                let more = || !cfg!(miri) && !done.load(core::sync::atomic::Ordering::Relaxed);
                while scans < 2 || more() {
                    scans += 1;
                    let g = t.guard();
                    let items = full_scan(t, &g, backward, scans);
                    for (k, v) in &items {
                        assert_eq!(k, &key(*v), "value for {k:?}");
                    }
                    let seen: std::collections::BTreeSet<&[u8]> =
                        items.iter().map(|(k, _)| &k[..]).collect();
                    for &i in stable {
                        assert!(
                            seen.contains(&key(i)[..]),
                            "stable key {i} missing (backward: {backward})"
                        );
                    }
                }
            });
        }
    });
}

/// The backward step trusts a `prev` link only if it is consistent: a stale
/// `prev` (here: pointing two leaves back, as a reader could see it while the
/// left neighbour splits) is refused, a good one accepted.
#[test]
fn left_neighbour_checks_the_link() {
    use crate::scan::left_neighbour;
    use crate::sync::Ordering::Relaxed;
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    for i in 0..100u64 {
        t.insert(&i.to_be_bytes(), i as usize, &g);
    }
    // SAFETY: we hold a guard; the tree is not changed meanwhile.
    unsafe {
        let (c, cv) = reach_leaf(t.raw().top_root(), 99);
        // Relaxed (these loads): single-threaded, nothing to order with.
        let b = c.prev.load(Relaxed);
        let a = (*b).prev.load(Relaxed);
        assert!(!a.is_null(), "at least three leaves");
        let got = left_neighbour(&c, cv).map(|(l, _)| l.as_ptr());
        assert_eq!(got, Some(b), "a consistent link is taken");
        // Relaxed (both stores): single-threaded; the check reads it back
        // on this thread.
        c.prev.store(a, Relaxed);
        let got = left_neighbour(&c, cv).map(|(l, _)| l.as_ptr());
        c.prev.store(b, Relaxed);
        assert_eq!(got, None, "a stale link is refused");
    }
    // Backward iteration still sees everything.
    let keys: Vec<Vec<u8>> = t.iter(&g).rev().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 100);
}

#[test]
fn compare_exchange_counter_loses_no_increment() {
    let t = Words::new_in(TestBackend::new());
    let (threads, per) = (4, scale(2000));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let t = &t;
            s.spawn(move || {
                let g = t.guard();
                for _ in 0..per {
                    let mut cur = t.get(b"counter/with/a/long/key", &g);
                    loop {
                        let new = cur.unwrap_or(0) + 1;
                        match t.compare_exchange(b"counter/with/a/long/key", cur.as_ref(), new, &g)
                        {
                            Ok(_) => break,
                            Err(e) => cur = e.current,
                        }
                    }
                }
            });
        }
    });
    let g = t.guard();
    assert_eq!(t.get(b"counter/with/a/long/key", &g), Some(threads * per));
}

#[test]
fn get_or_insert_with_inserts_once() {
    let t: Tree<OutOfLine<String>, TestBackend> = Tree::new_in(TestBackend::new());
    let calls = core::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for id in 0..4 {
            let (t, calls) = (&t, &calls);
            s.spawn(move || {
                let g = t.guard();
                for i in 0..scale(500) {
                    let v = t.get_or_insert_with(
                        &format!("key{i}"),
                        || {
                            calls.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                            format!("{i}-{id}")
                        },
                        &g,
                    );
                    assert!(v.starts_with(&format!("{i}-")));
                }
            });
        }
    });
    assert_eq!(calls.into_inner(), scale(500));
    assert_eq!(t.len(), scale(500));
}

#[test]
fn update_matches_model() {
    use crate::Change;
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    let mut model: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut rng = Rng::new(5);
    for _ in 0..scale(20_000) {
        let r = rng.next_u64();
        let k = scan_keys(&mut rng, 1).pop().unwrap();
        let change = match r % 4 {
            0 => Change::Keep,
            1 => Change::Remove,
            _ => Change::Set((r >> 8) as usize),
        };
        let before = model.get(&k).copied();
        let prev = t.update(
            &k,
            |cur| {
                assert_eq!(cur, before);
                change.clone()
            },
            &g,
        );
        assert_eq!(prev, before);
        match change {
            Change::Keep => {}
            Change::Remove => {
                model.remove(&k);
            }
            Change::Set(v) => {
                model.insert(k.clone(), v);
            }
        }
        assert_eq!(t.get(&k, &g), model.get(&k).copied());
    }
    check_against(&t, &model);
}

#[test]
#[cfg_attr(miri, ignore = "unwinding through the test backend is slow under Miri")]
fn panicking_closure_leaves_tree_consistent() {
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    for i in 0..100usize {
        t.insert(&format!("key-{i:03}-long-enough"), i, &g);
    }
    let r = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        t.update(b"key-050-long-enough", |_| panic!("closure fails"), &g);
    }));
    assert!(r.is_err());
    let r = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
        // A new key sharing a slice with suffixed keys: a layer may be made
        // before the closure runs; the content must stay the same.
        t.get_or_insert_with(b"key-050-long-enough-and-more", || panic!("no value"), &g);
    }));
    assert!(r.is_err());
    // The leaf is unlocked and nothing changed.
    assert_eq!(t.insert(b"key-050-long-enough", 7, &g), Some(50));
    assert_eq!(t.len(), 100);
    assert_eq!(t.iter(&g).count(), 100);
    assert_eq!(t.get(b"key-050-long-enough-and-more", &g), None);
}

#[test]
fn std_traits() {
    let pairs: Vec<(Vec<u8>, usize)> = (0..scale(3000))
        .map(|i| (format!("k/{:x}/{}", i * 7919, i).into_bytes(), i))
        .collect();
    let a: Words = pairs.iter().cloned().collect();
    let mut b = Words::default();
    b.extend(pairs.iter().rev().cloned());
    assert_eq!(a.len(), pairs.len());
    assert!(a == b);
    let c = a.clone();
    assert!(c == a);
    {
        let g = b.guard();
        b.insert(&pairs[0].0, 999_999, &g);
    }
    assert!(a != b, "a changed value differs");
    {
        let g = b.guard();
        b.insert(&pairs[0].0, pairs[0].1, &g);
        b.insert(b"extra", 1, &g);
    }
    assert!(a != b, "an extra key differs");
    let s: Tree<OutOfLine<String>, TestBackend> = [("x", String::from("1"))].into_iter().collect();
    assert_eq!(format!("{s:?}"), r#"{b"x": "1"}"#);
    let s2 = s.clone();
    assert!(s == s2);
}

/// For every k: the k-th allocation of a workload fails. The failing insert
/// hands its value back, the tree still equals the model, later operations
/// work, and nothing leaks.
#[test]
fn failed_allocations_change_nothing() {
    use core::sync::atomic::Ordering::Relaxed;
    let mut rng = Rng::new(31);
    let ops: Vec<(Vec<u8>, String)> = (0..scale(600))
        .map(|i| {
            let r = rng.next_u64();
            let k = match r % 3 {
                0 => (r >> 8).to_be_bytes()[..(r as usize >> 40) % 9].to_vec(),
                1 => format!("shared-prefix/{}", (r >> 8) % 97).into_bytes(),
                _ => format!("{:x}", r >> 20).into_bytes(),
            };
            (k, format!("v{i}"))
        })
        .collect();
    let mut k = 0;
    loop {
        let t: Tree<OutOfLine<String>, TestBackend> = Tree::new_in(TestBackend::new());
        t.backend().fail_in.store(k, Relaxed);
        let mut model = BTreeMap::new();
        let mut failed = false;
        {
            let g = t.guard();
            for (key, v) in &ops {
                match t.fallible().insert(key, v.clone(), &g) {
                    Ok(prev) => assert_eq!(
                        prev,
                        model.insert(key.clone(), v.clone()).as_ref(),
                        "{key:?}"
                    ),
                    Err(e) => {
                        assert!(!failed, "only one allocation fails");
                        failed = true;
                        assert_eq!(e.into_value(), *v, "the value comes back");
                        assert_eq!(t.len(), model.len());
                        assert_eq!(
                            t.iter(&g).map(|(k, v)| (k, v.clone())).collect::<Vec<_>>(),
                            model
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect::<Vec<_>>(),
                            "tree changed by a failed insert (k = {k})"
                        );
                    }
                }
            }
            for (key, v) in &model {
                assert_eq!(t.get(key, &g), Some(v));
            }
        }
        let mut t = t;
        t.clear();
        assert_eq!(
            t.backend().live.load(Relaxed),
            0,
            "leak after a failure at k = {k}"
        );
        if !failed {
            break;
        }
        k += if cfg!(miri) { 7 } else { 1 };
    }
    assert!(
        k > if cfg!(miri) { 0 } else { 100 },
        "the workload allocates ({k} allocations)"
    );
}

#[test]
fn bulk_load_matches_model() {
    use crate::{BulkLoadError, BulkLoader};
    let mut rng = Rng::new(404);
    for (n, fill) in [
        (0usize, 15usize),
        (1, 15),
        (15, 15),
        (16, 15),
        (scale(5000), 15),
        (scale(5000), 10),
        (scale(3000), 1),
    ] {
        let model: BTreeMap<Vec<u8>, usize> = scan_keys(&mut rng, n).into_iter().zip(0..).collect();
        let t: Words = BulkLoader::new(TestBackend::new())
            .leaf_fill(fill)
            .load(model.iter().map(|(k, v)| (k.clone(), *v)))
            .unwrap();
        check_against(&t, &model);
        let g = t.guard();
        let all: Vec<_> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(t.iter(&g).collect::<Vec<_>>(), all, "n={n} fill={fill}");
        assert_eq!(t.iter(&g).rev().count(), all.len());
        // Still a normal tree: inserts and removes work after the load.
        for (i, k) in scan_keys(&mut rng, n / 2).into_iter().enumerate() {
            t.insert(&k, i, &g);
        }
        for k in model.keys().step_by(2) {
            t.remove(k, &g);
        }
        if fill == 15 && n > 100 {
            // Packed full: about n / 15 leaves.
            let (leaves, _, _) = census(&t);
            assert!(leaves > 0);
        }
    }
    // Unsorted and duplicate input: an error naming the position, nothing leaked.
    let live = std::sync::Arc::new(core::sync::atomic::AtomicIsize::new(0));
    let r = Words::from_sorted_in(
        TestBackend::counting(&live),
        [
            (&b"a"[..], 1),
            (b"b\xff\xff\xff\xff\xff\xff\xff\xffq", 2),
            (b"b", 3),
        ],
    );
    assert_eq!(r.err(), Some(BulkLoadError::NotIncreasing { position: 2 }));
    assert_eq!(live.load(core::sync::atomic::Ordering::Relaxed), 0);
    let r = Words::from_sorted_in(TestBackend::new(), [(&b"b"[..], 1), (b"a", 2)]);
    assert_eq!(r.err(), Some(BulkLoadError::NotIncreasing { position: 1 }));
}

/// Regression: when a level's last internode was exactly full it had been
/// handed up already, and closing the layer lost the whole subtree.
#[test]
fn bulk_load_exact_multiples_of_the_fanout() {
    for n in [
        15usize,
        16,
        15 * 15,
        15 * 15 + 1,
        15 * 15 * 15,
        if cfg!(miri) {
            15 * 15
        } else {
            15 * 15 * 15 * 15
        },
    ] {
        let t: Words = Words::from_sorted_in(
            TestBackend::new(),
            (0..n).map(|i| ((i as u64).to_be_bytes(), i)),
        )
        .unwrap();
        let g = t.guard();
        assert_eq!(t.iter(&g).count(), n, "n = {n}");
        assert_eq!(t.get(&((n - 1) as u64).to_be_bytes(), &g), Some(n - 1));
        // Layers made by the loader close the same way.
        let t: Words = Words::from_sorted_in(
            TestBackend::new(),
            (0..n).map(|i| (format!("same-prefix/{i:08}"), i)),
        )
        .unwrap();
        assert_eq!(t.iter(&g_of(&t)).count(), n, "layered, n = {n}");
    }
    fn g_of(t: &Words) -> crate::test_backend::TestGuard<'_> {
        t.guard()
    }
}

#[test]
fn bulk_load_packs_leaves_full() {
    let n = scale(15 * 400);
    let t: Words = Words::from_sorted_in(
        TestBackend::new(),
        (0..n).map(|i| ((i as u64).to_be_bytes(), i)),
    )
    .unwrap();
    let (leaves, internodes, layers) = census(&t);
    assert_eq!(leaves, n.div_ceil(15));
    assert_eq!(layers, 0);
    assert!(
        internodes <= leaves.div_ceil(14) + 3,
        "{internodes} internodes for {leaves} leaves"
    );
    assert_eq!(t.len(), n);
}

/// The bulk loader allocates only the nodes the tree keeps: a lone node gets
/// no parent made (and freed) for it, so a layer of one leaf costs one leaf,
/// as it does when the keys are inserted one by one.
#[test]
fn bulk_load_allocates_only_what_it_keeps() {
    use core::sync::atomic::Ordering::Relaxed;
    const BUDGET: usize = 1 << 40;
    // Pairs of 17-byte keys sharing 16 bytes: two small layers per pair.
    let keys: Vec<Vec<u8>> = (0..scale(2000))
        .flat_map(|i| [format!("{i:08}/{i:07}a"), format!("{i:08}/{i:07}b")])
        .map(String::into_bytes)
        .collect();
    let counted = |t: &Words| -> usize {
        let (leaves, internodes, _) = census(t);
        leaves + internodes
    };
    let b = TestBackend::new();
    // Relaxed (store and load): a counter used on this thread only.
    b.fail_in.store(BUDGET, Relaxed);
    let bulk: Words = Tree::from_sorted_in(b, keys.iter().zip(0..)).unwrap();
    let allocated = BUDGET - bulk.raw().alloc.fail_in.load(Relaxed);
    assert_eq!(allocated, counted(&bulk), "nodes allocated vs kept");
    let inserted: Words = Tree::new_in(TestBackend::new());
    let g = inserted.guard();
    for (i, k) in keys.iter().enumerate() {
        inserted.insert(k, i, &g);
    }
    assert!(
        counted(&bulk) <= counted(&inserted),
        "bulk {} nodes, inserted {}",
        counted(&bulk),
        counted(&inserted)
    );
    assert_eq!(bulk, inserted);
}

/// Failures at every allocation of a bulk load: an error, and nothing leaks.
#[test]
fn bulk_load_failures_leak_nothing() {
    use core::sync::atomic::Ordering::Relaxed;
    let mut rng = Rng::new(8);
    let model: BTreeMap<Vec<u8>, String> = scan_keys(&mut rng, scale(800))
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, format!("v{i}")))
        .collect();
    let mut failures = 0;
    for k in (0..).step_by(if cfg!(miri) { 41 } else { 3 }) {
        let live = std::sync::Arc::new(core::sync::atomic::AtomicIsize::new(0));
        let b = TestBackend::counting(&live);
        b.fail_in.store(k, Relaxed);
        let r: Result<Tree<OutOfLine<String>, TestBackend>, _> =
            Tree::from_sorted_in(b, model.iter().map(|(k, v)| (k.clone(), v.clone())));
        match r {
            Ok(t) => {
                let g = t.guard();
                assert_eq!(t.len(), model.len());
                for (key, v) in &model {
                    assert_eq!(t.get(key, &g), Some(v));
                }
                break;
            }
            Err(e) => {
                assert!(
                    matches!(e, crate::BulkLoadError::OutOfMemory { .. }),
                    "{e:?}"
                );
                assert_eq!(
                    live.load(Relaxed),
                    0,
                    "leak after a failure at allocation {k}"
                );
                failures += 1;
            }
        }
    }
    assert!(
        failures >= if cfg!(miri) { 1 } else { 10 },
        "{failures} failures injected"
    );
}

/// The cursor's batch visits yield what loops of `next`/`prev` yield, from
/// every start, across inline keys, suffixes and layers, and stop where told,
/// leaving the cursor there.
#[test]
fn for_each_matches_single_steps() {
    use crate::Seek;
    use core::ops::ControlFlow;
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for i in 0..scale(300) {
        keys.push(format!("{i:05}").into_bytes()); // inline
        keys.push(format!("k{i:07}/x").into_bytes()); // suffixes
        keys.push(format!("same/prefix/{:03}", i % 40).into_bytes()); // layers
        keys.push(vec![i as u8; 1 + i % 20]);
    }
    for (i, k) in keys.iter().enumerate() {
        t.insert(k, i, &g);
    }
    let starts: Vec<Vec<u8>> = keys
        .iter()
        .step_by(7)
        .cloned()
        .chain([vec![], vec![0xff; 30]])
        .collect();
    for start in &starts {
        for seek in [Seek::Ge, Seek::Gt, Seek::Le, Seek::Lt] {
            let forward = matches!(seek, Seek::Ge | Seek::Gt);
            // Reference: the entry the seek lands on, then single steps.
            let mut c = t.cursor(&g);
            let first = c.seek(start, seek).map(|(k, v)| (k.to_vec(), v));
            let mut want: Vec<(Vec<u8>, usize)> = first.into_iter().collect();
            loop {
                let e = if forward { c.next() } else { c.prev() };
                match e {
                    Some((k, v)) => want.push((k.to_vec(), v)),
                    None => break,
                }
            }
            // Batch: from just before that entry (a fresh cursor if nothing
            // is before it).
            let mut c = t.cursor(&g);
            let before = match seek {
                Seek::Ge => Seek::Lt,
                Seek::Gt => Seek::Le,
                Seek::Le => Seek::Gt,
                Seek::Lt => Seek::Ge,
            };
            let had_before = c.seek(start, before).is_some();
            if !had_before {
                c = t.cursor(&g);
            }
            let mut got = Vec::new();
            let visit = |k: &[u8], v: usize| {
                got.push((k.to_vec(), v));
                ControlFlow::<()>::Continue(())
            };
            let r = if forward {
                c.for_each_next(visit)
            } else {
                c.for_each_prev(visit)
            };
            assert_eq!(r, ControlFlow::Continue(()));
            assert_eq!(got, want, "from {start:?} {seek:?}");
            assert_eq!(c.current(), None, "past the end after a full visit");
            // Stop after k entries: the cursor is on the k-th, and single
            // steps go on from there.
            for k in [1, 2, 15, 16, 50] {
                if k > want.len() {
                    continue;
                }
                let mut c = t.cursor(&g);
                if had_before {
                    c.seek(start, before);
                }
                let mut n = 0;
                let visit = |_: &[u8], v: usize| {
                    n += 1;
                    if n == k {
                        ControlFlow::Break(v)
                    } else {
                        ControlFlow::Continue(())
                    }
                };
                let r = if forward {
                    c.for_each_next(visit)
                } else {
                    c.for_each_prev(visit)
                };
                assert_eq!(r, ControlFlow::Break(want[k - 1].1));
                assert_eq!(
                    c.current().map(|(k, v)| (k.to_vec(), v)),
                    Some(want[k - 1].clone())
                );
                let after = if forward { c.next() } else { c.prev() };
                assert_eq!(after.map(|(k, v)| (k.to_vec(), v)), want.get(k).cloned());
            }
        }
    }
}
