//! The writes of `insert_batch`, `fallible().extend` and `remove_batch` start
//! at the leaf their window's batched lookup found (a hint), not at the top.
//! By the time a key's turn comes, the earlier writes of its own window (or
//! other threads) may have split that leaf, emptied and deleted it, turned a
//! suffixed key into a new layer below it, or collected its whole layer.
//! These tests make each of those happen inside one window, deterministically,
//! then check every key against a model; the last one does it from several
//! threads at once, each writer checking the keys it owns.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::Rng;

/// Checks the tree against the model: every key with `get`, the length, and
/// a full scan in order.
fn check<A: masstree::backend::NodeAllocatorGeneric>(
    tree: &masstree::InlineMassTree<u64, A>,
    model: &BTreeMap<Vec<u8>, u64>,
) {
    let g = tree.guard();
    for (k, v) in model {
        assert_eq!(tree.get(k, &g), Some(*v), "get {k:?}");
    }
    assert_eq!(tree.len(), model.len());
    let mut c = tree.cursor(&g);
    let mut scanned = Vec::new();
    let mut e = c.seek_first();
    while let Some((k, v)) = e {
        scanned.push((k.to_vec(), v));
        e = c.next();
    }
    let want: Vec<(Vec<u8>, u64)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(scanned, want, "scan");
}

/// `prefix` followed by the 8 big-endian bytes of `i`.
fn key(prefix: &[u8], i: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// A key whose `as_ref` gives different bytes on every call: user code may
/// do that in safe Rust. The batched writes take each key's bytes once, so
/// the write lands where the lookup's hint is valid, for the bytes looked
/// up; the tree stays consistent.
struct Fickle {
    calls: std::cell::Cell<usize>,
    forms: [Vec<u8>; 2],
}

impl Fickle {
    fn new(first: &[u8], then: &[u8]) -> Self {
        Fickle {
            calls: std::cell::Cell::new(0),
            forms: [first.to_vec(), then.to_vec()],
        }
    }
}

impl AsRef<[u8]> for Fickle {
    fn as_ref(&self) -> &[u8] {
        let i = self.calls.get();
        self.calls.set(i + 1);
        &self.forms[i.min(1)]
    }
}

for_each_backend! {
    /// Windows of 16 sorted keys that all land in one full leaf: the first
    /// inserts split it, so the later keys' hints name a leaf that no longer
    /// covers them (the insert must move right). In layer 0, in a deeper
    /// layer, and with suffixed keys.
    #[test]
    fn inserts_into_leaves_their_window_splits() {
        for prefix in [&b""[..], b"layer-1-", b"a-suffix-then-"] {
            let tree = new_itree::<u64>();
            let g = tree.guard();
            let mut model = BTreeMap::new();
            // Every 17th number first, then the numbers between, in sorted
            // windows: each window fills the gap between two old keys.
            for i in (0..common::scaled(20_000) as u64).step_by(17) {
                tree.insert(&key(prefix, i), i, &g);
                model.insert(key(prefix, i), i);
            }
            let news: Vec<(Vec<u8>, u64)> = (0..common::scaled(20_000) as u64)
                .filter(|i| i % 17 != 0)
                .map(|i| (key(prefix, i), i * 3))
                .collect();
            for (k, v) in &news {
                model.insert(k.clone(), *v);
            }
            tree.insert_batch(news.iter().map(|(k, v)| (k, *v)), &g);
            check(&tree, &model);
        }
    }

    /// Windows that remove every key of a run of leaves, in order: the
    /// first removes of a window empty and delete the leaves whose hints the
    /// later keys carry. Then whole layers: each group of keys below an
    /// 8-byte prefix is removed in one window, so the layer is collected
    /// while later keys of the window still point into it.
    #[test]
    fn removes_from_leaves_and_layers_their_window_deletes() {
        let tree = new_itree::<u64>();
        let g = tree.guard();
        let mut model = BTreeMap::new();
        let n = common::scaled(20_000) as u64;
        for i in 0..n {
            tree.insert(&key(b"", i), i, &g);
            model.insert(key(b"", i), i);
        }
        // Groups of 5 keys below their own 8-byte prefix: a small layer each.
        for grp in 0..n / 10 {
            for j in 0..5u64 {
                let k = key(&(u64::MAX - grp).to_be_bytes(), j);
                tree.insert(&k, j, &g);
                model.insert(k, j);
            }
        }
        // Remove 3 of every 4 numbers in sorted runs, and every second group
        // whole, groups interleaved with the runs.
        let mut gone: Vec<Vec<u8>> = (0..n).filter(|i| i % 4 != 0).map(|i| key(b"", i)).collect();
        for grp in (0..n / 10).step_by(2) {
            for j in 0..5u64 {
                gone.push(key(&(u64::MAX - grp).to_be_bytes(), j));
            }
        }
        gone.push(key(b"", n + 1)); // absent
        let mut seen = vec![0u32; gone.len()];
        tree.remove_batch(&gone, &g, |i, old| {
            seen[i] += 1;
            assert_eq!(old, model.remove(&gone[i]), "removed value of {:?}", gone[i]);
        });
        assert!(seen.iter().all(|&c| c == 1), "each index reported once");
        check(&tree, &model);
    }

    /// A window whose first keys collide with a suffixed key (so the slot
    /// becomes a new layer) while its later keys, with the same 8-byte
    /// slice, carry the layer-0 leaf as their hint.
    #[test]
    fn inserts_below_a_layer_their_window_makes() {
        let tree = new_itree::<u64>();
        let g = tree.guard();
        let mut model = BTreeMap::new();
        for grp in 0..common::scaled(2_000) as u64 {
            let p = key(b"", grp * 7919);
            let first = key(&p, 1_000);
            tree.insert(&first, 1, &g);
            model.insert(first, 1);
            let window: Vec<(Vec<u8>, u64)> = (0..16).map(|j| (key(&p, j), j + 2)).collect();
            for (k, v) in &window {
                model.insert(k.clone(), *v);
            }
            tree.fallible()
                .extend(window.iter().map(|(k, v)| (k, *v)), &g)
                .expect("no allocation failure");
        }
        check(&tree, &model);
    }

    /// Writers on several threads, each owning the keys congruent to its
    /// number, interleaved in the same leaves and layers: each round inserts
    /// a random batch of its keys and removes another with the batched
    /// forms, so the others' splits, deletions and layer collections land
    /// between a window's lookups and its writes. Each writer checks its own
    /// keys after every round; at the end the tree holds exactly the union.
    #[test]
    fn concurrent_batched_writers_lose_nothing() {
        const WRITERS: u64 = 4;
        let tree = new_itree::<u64>();
        let rounds = common::scaled(300);
        let space = 4_000u64;
        // Keys: numbers below `space`, half of them under a shared 8-byte
        // prefix (a layer), some with a suffix.
        let name = |i: u64| match i % 3 {
            0 => key(b"", i),
            1 => key(b"shared-p", i),
            _ => key(&key(b"shared-p", i), 0xfeed),
        };
        let models: Vec<BTreeMap<Vec<u8>, u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let tree = &tree;
                    s.spawn(move || {
                        let mut rng = Rng::new(0xba7c_4000 + w);
                        let mut mine = BTreeMap::new();
                        for round in 0..rounds {
                            let g = tree.guard();
                            let pick = |rng: &mut Rng| {
                                let n = 1 + rng.below(40);
                                let mut ids: Vec<u64> = (0..n)
                                    .map(|_| rng.below(space / WRITERS) * WRITERS + w)
                                    .collect();
                                if rng.below(2) == 0 {
                                    ids.sort_unstable();
                                }
                                ids
                            };
                            let ins = pick(&mut rng);
                            let tag = (round as u64) << 32 | w;
                            tree.insert_batch(ins.iter().map(|&i| (name(i), tag ^ i)), &g);
                            for &i in &ins {
                                mine.insert(name(i), tag ^ i);
                            }
                            let del: Vec<Vec<u8>> = pick(&mut rng).into_iter().map(name).collect();
                            tree.remove_batch(&del, &g, |i, old| {
                                // A key repeated in the batch is gone the second time.
                                assert_eq!(old, mine.remove(&del[i]), "writer {w} removed {:?}", del[i]);
                            });
                            for (k, v) in &mine {
                                assert_eq!(tree.get(k, &g), Some(*v), "writer {w} lost {k:?}");
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("writer")).collect()
        });
        let all: BTreeMap<Vec<u8>, u64> = models.into_iter().flatten().collect();
        check(&tree, &all);
    }

    /// The first bytes of each key end in a deeper layer; a second call
    /// would give a short key, or one under another prefix.
    #[test]
    fn keys_that_change_their_bytes_do_not_corrupt_the_tree() {
        let tree = new_itree::<u64>();
        let g = tree.guard();
        let mut model = BTreeMap::new();
        for i in 0..100u64 {
            let k = key(b"prefix-p", i * 2);
            tree.insert(&k, i, &g);
            model.insert(k, i);
        }
        let fickle: Vec<(Fickle, u64)> = (0..40u64)
            .map(|i| {
                let then = if i % 2 == 0 { key(b"other-pr", i) } else { b"z".to_vec() };
                (Fickle::new(&key(b"prefix-p", i * 2 + 1), &then), 1000 + i)
            })
            .collect();
        for (k, v) in &fickle {
            model.insert(k.forms[0].clone(), *v);
        }
        tree.insert_batch(fickle, &g);
        check(&tree, &model);

        let gone: Vec<Fickle> = (0..40u64)
            .map(|i| Fickle::new(&key(b"prefix-p", i * 3), b"z"))
            .collect();
        let mut seen = 0;
        tree.remove_batch(&gone, &g, |i, old| {
            seen += 1;
            assert_eq!(old, model.remove(&gone[i].forms[0]), "removed {:?}", gone[i].forms[0]);
        });
        assert_eq!(seen, gone.len());
        check(&tree, &model);
    }
}
