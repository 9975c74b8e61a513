//! Unit tests of the whole tree on the test backend (small enough for Miri).

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use crate::test_backend::TestBackend;
use crate::{Inline, OutOfLine, Tree};

type Words = Tree<Inline<usize>, TestBackend>;

fn scale(n: usize) -> usize {
    if cfg!(miri) { n / 50 } else { n }
}

/// A deterministic xorshift generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

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
    assert_eq!(format!("{t:?}"), "MassTree { len: 0, .. }");
}

#[test]
fn sequential_and_reverse_keys_split_leaves_and_internodes() {
    for rev in [false, true] {
        let t = Words::new_in(TestBackend::new());
        let g = t.guard();
        let n = scale(20_000);
        let mut model = BTreeMap::new();
        for i in 0..n {
            let i = if rev { n - 1 - i } else { i };
            let k = (i as u64).to_be_bytes().to_vec();
            assert_eq!(t.insert(&k, i, &g), None);
            model.insert(k, i);
        }
        for i in 0..n {
            let k = (i as u64).to_be_bytes();
            assert_eq!(t.insert(&k, i + 1, &g), Some(i));
            model.insert(k.to_vec(), i + 1);
        }
        check_against(&t, &model);
        assert_eq!(t.get(&(n as u64).to_be_bytes(), &g), None);
    }
}

#[test]
fn random_keys_with_layers_and_suffixes() {
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    let mut model = BTreeMap::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let prefixes: [&[u8]; 4] = [
        b"",
        b"user/000",
        b"user/000/profile/",
        b"\0\0\0\0\0\0\0\0\xff",
    ];
    for i in 0..scale(20_000) {
        let r = rng.next();
        let mut k = prefixes[(r % 4) as usize].to_vec();
        let len = (r >> 8) % 24;
        for j in 0..len {
            k.push(b"ab\0\xff"[((r >> (16 + j)) % 4) as usize]);
        }
        let prev = t.insert(&k, i, &g);
        assert_eq!(prev, model.insert(k.clone(), i), "key {k:?}");
    }
    check_against(&t, &model);
}

#[test]
fn keys_differing_only_by_trailing_zeros() {
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    let mut model = BTreeMap::new();
    for n in 0..40 {
        let k = {
            let mut k = b"a".to_vec();
            k.resize(1 + n, 0);
            k
        };
        t.insert(&k, n, &g);
        model.insert(k, n);
        t.insert(&vec![0u8; n], 100 + n, &g);
        model.insert(vec![0u8; n], 100 + n);
    }
    check_against(&t, &model);
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
    let live = &t.backend().live as *const core::sync::atomic::AtomicIsize;
    drop(t);
    let _ = live; // the backend is gone with the tree; leaks would show under Miri
}

#[test]
fn nothing_leaks_at_drop() {
    let t = Words::new_in(TestBackend::new());
    {
        let g = t.guard();
        let mut rng = Rng(42);
        for i in 0..scale(10_000) {
            let r = rng.next();
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
        for n in [14usize, 15, 16, 17, 31, if cfg!(miri) { 46 } else { 250 }] {
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
    let mut rng = Rng(7);
    let prefixes: [&[u8]; 3] = [
        b"",
        b"0123456789abcdef",
        b"\xff\xff\xff\xff\xff\xff\xff\xffz",
    ];
    for i in 0..scale(40_000) {
        let r = rng.next();
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
    let mut rng = Rng(99);
    let keys: Vec<Vec<u8>> = (0..n)
        .map(|i| match i % 3 {
            0 => rng.next().to_be_bytes().to_vec(),
            1 => format!("user/{:016x}/profile", rng.next()).into_bytes(),
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
    std::thread::scope(|s| {
        for id in 0..threads {
            let t = &t;
            s.spawn(move || {
                let g = t.guard();
                let mut rng = Rng(id as u64 + 1);
                let mut mine = std::collections::BTreeMap::new();
                for i in 0..per {
                    let r = rng.next();
                    let k = format!("{:03}/{id}/{}", r % 300, (r >> 20) % 4);
                    if r % 3 == 0 {
                        assert_eq!(t.remove(&k, &g), mine.remove(&k));
                    } else {
                        assert_eq!(t.insert(&k, i, &g), mine.insert(k.clone(), i));
                    }
                    assert_eq!(t.get(&k, &g), mine.get(&k).copied());
                }
                mine
            });
        }
    });
}

/// (leaves, internodes, layers) reachable from the root.
fn census(t: &Words) -> (usize, usize, usize) {
    use crate::leaf::{Leaf, NodeBase, SlotKind, slot_kind};
    use crate::raw::{layer_root, version};
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
                let i = &*n.cast::<crate::Internode>();
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
