//! Batched operations against a `BTreeMap` model: `get_batch` and
//! `get_batch_with` (interleaved lookups) give each key what `get` gives,
//! once per key, across trie layers; `insert_batch`, `extend` and
//! `fallible().extend` leave the tree as inserts one by one would (and a
//! failed allocation stops at the pair it hands back with nothing lost);
//! `remove_batch` as removes one by one would.
//! Concurrent writers: tests/stress (readers check `get_batch` results).
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::strategies::{byte, config, prefixes};
use common::{TestAlloc, shaped_key, vec_key};
use proptest::prelude::*;
use proptest::sample::select;

/// Keys sharing slices (layers, suffixes, trailing zeros) or not.
fn key() -> impl Strategy<Value = Vec<u8>> {
    (
        select(prefixes()),
        prop_oneof![3 => 0..=3usize, 2 => 4..=20usize, 1 => 20..=60usize]
            .prop_flat_map(|n| prop::collection::vec(byte(), n)),
    )
        .prop_map(|(mut p, t)| {
            p.extend_from_slice(&t);
            p
        })
}

fn pairs() -> impl Strategy<Value = Vec<(Vec<u8>, u64)>> {
    prop::collection::vec((key(), any::<u64>()), 0..200)
}

for_each_backend! {
    use std::cell::Cell;

    /// Looks `probes` up with both batched forms and checks them against
    /// the model and against `get`.
    fn check_batches(tree: &ITree<u64>, model: &BTreeMap<Vec<u8>, u64>, probes: &[Vec<u8>]) {
        let g = tree.guard();
        let mut out = vec![Some(u64::MAX); probes.len()];
        tree.get_batch(probes, &mut out, &g);
        for (k, got) in probes.iter().zip(&out) {
            assert_eq!(*got, model.get(k).copied(), "get_batch of {k:?}");
            assert_eq!(*got, tree.get(k, &g), "get_batch and get of {k:?}");
        }
        let calls: Vec<Cell<u32>> = probes.iter().map(|_| Cell::new(0)).collect();
        tree.get_batch_with(probes, &g, |i, v| {
            calls[i].set(calls[i].get() + 1);
            assert_eq!(v, model.get(&probes[i]).copied(), "get_batch_with of {:?}", probes[i]);
        });
        assert!(calls.iter().all(|c| c.get() == 1), "each index reported once");
    }

    proptest! {
        #![proptest_config(config(64))]

        /// Batched lookups of present keys, absent keys, neighbours that
        /// differ in a last byte, and repeats, after inserts and removes.
        #[test]
        fn get_batch_matches_model(
            ops in pairs(),
            removes in prop::collection::vec(any::<prop::sample::Index>(), 0..60),
            extra in prop::collection::vec(key(), 0..40),
        ) {
            let tree = new_itree::<u64>();
            let mut model = BTreeMap::new();
            {
                let g = tree.guard();
                for (k, v) in &ops {
                    tree.insert(k, *v, &g);
                    model.insert(k.clone(), *v);
                }
                for ix in &removes {
                    if ops.is_empty() {
                        break;
                    }
                    let k = &ops[ix.index(ops.len())].0;
                    prop_assert_eq!(tree.remove(k, &g), model.remove(k));
                }
            }
            let mut probes: Vec<Vec<u8>> = ops.iter().map(|(k, _)| k.clone()).collect();
            for (k, _) in ops.iter().take(20) {
                let mut near = k.clone();
                near.push(0);
                probes.push(near);
                if let Some(b) = k.last() {
                    let mut other = k.clone();
                    *other.last_mut().unwrap() = b.wrapping_add(1);
                    probes.push(other);
                }
            }
            probes.extend(extra);
            check_batches(&tree, &model, &probes);
            // Every batch size up to two windows and beyond.
            for n in [0, 1, 2, 15, 16, 17, 33] {
                check_batches(&tree, &model, &probes[..n.min(probes.len())]);
            }
        }

        /// `insert_batch` and `Extend` store what inserts one by one store
        /// (the later of two pairs with one key wins).
        #[test]
        fn insert_batch_matches_model(first in pairs(), second in pairs()) {
            let mut tree = new_itree::<u64>();
            let mut model = BTreeMap::new();
            tree.insert_batch(first.iter().map(|(k, v)| (k.as_slice(), *v)), &tree.guard());
            model.extend(first.iter().cloned());
            prop_assert_eq!(tree.len(), model.len());
            tree.extend(second.iter().cloned());
            model.extend(second.iter().cloned());
            prop_assert_eq!(tree.len(), model.len());
            let g = tree.guard();
            let got: Vec<(Vec<u8>, u64)> = tree.iter(&g).map(vec_key).collect();
            let want: Vec<(Vec<u8>, u64)> = model.into_iter().collect();
            prop_assert_eq!(got, want);
        }

        /// `remove_batch` removes what removes one by one remove, reporting
        /// each key's value once, in the keys' order (a repeated key is
        /// absent the second time).
        #[test]
        fn remove_batch_matches_model(
            items in pairs(),
            extra in prop::collection::vec(key(), 0..40),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..80),
        ) {
            let tree = new_itree::<u64>();
            let g = tree.guard();
            tree.insert_batch(items.iter().cloned(), &g);
            let mut model: BTreeMap<Vec<u8>, u64> = items.iter().cloned().collect();
            let mut keys: Vec<Vec<u8>> = extra;
            for ix in &picks {
                if !items.is_empty() {
                    keys.push(items[ix.index(items.len())].0.clone());
                }
            }
            let mut seen = Vec::new();
            tree.remove_batch(&keys, &g, |i, old| seen.push((i, old)));
            let want: Vec<(usize, Option<u64>)> =
                keys.iter().enumerate().map(|(i, k)| (i, model.remove(k))).collect();
            prop_assert_eq!(seen, want);
            prop_assert_eq!(tree.len(), model.len());
            let got: Vec<(Vec<u8>, u64)> = tree.iter(&g).map(vec_key).collect();
            prop_assert_eq!(got, model.into_iter().collect::<Vec<_>>());
        }

        /// A failed allocation in `fallible().extend` hands back the pair it
        /// could not store; the pairs before it are in, nothing after it.
        #[test]
        fn extend_stops_at_failed_pair(items in pairs(), fail_at in 1usize..40) {
            let alloc = TestAlloc::new();
            let tree = new_tree_in::<u64, _>(&alloc);
            alloc.fail_at(fail_at, usize::MAX);
            let g = tree.guard();
            let r = tree.fallible().extend(items.iter().cloned(), &g);
            alloc.disarm();
            let mut model = BTreeMap::new();
            match r {
                Ok(()) => model.extend(items.iter().cloned()),
                Err(e) => {
                    let (k, v) = e.into_value();
                    let at = items
                        .iter()
                        .position(|(ik, iv)| *ik == k && *iv == v)
                        .expect("the failed pair is one of the input's");
                    model.extend(items[..at].iter().cloned());
                }
            }
            prop_assert_eq!(tree.len(), model.len());
            for (k, v) in &model {
                prop_assert_eq!(tree.get(k, &g), Some(v));
            }
        }
    }

    /// A batch over a tree too large for the caches, keys of every shape
    /// (several layers, suffixes, trailing zeros), half of them absent.
    #[test]
    fn large_batches_match_get() {
        let tree = new_itree::<u64>();
        let n = common::scaled(40_000) as u64;
        let g = tree.guard();
        for id in (0..n).filter(|id| id % 2 == 0) {
            tree.insert(&shaped_key(id), id, &g);
        }
        let keys: Vec<Vec<u8>> = (0..n).rev().map(shaped_key).collect();
        let mut out = vec![None; keys.len()];
        tree.get_batch(&keys, &mut out, &g);
        for (i, got) in out.iter().enumerate() {
            let id = n - 1 - i as u64;
            assert_eq!(*got, (id % 2 == 0).then_some(id), "key {id}");
        }
    }

    /// An empty tree answers every key with `None`; no key, no call.
    #[test]
    fn empty_tree_and_empty_batch() {
        let tree = new_tree::<String>();
        let g = tree.guard();
        let junk = String::from("junk");
        let mut out = [Some(&junk); 3];
        tree.get_batch(&["a", "", "b"], &mut out, &g);
        assert_eq!(out, [None, None, None]);
        tree.get_batch_with(&[] as &[&str], &g, |_, _| panic!("no key, no call"));
    }
}
