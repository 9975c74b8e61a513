//! The std-style map surface (entry, pop_first/pop_last, retain, owned
//! iteration, contains_key, get_key_value) against a `BTreeMap` model, on
//! every backend.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::strategies::{byte, config, prefixes};
use common::vec_key;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Insert(Vec<u8>, u64),
    /// `entry(k).and_modify(+d).or_insert(v)` (with `modify`), or `or_insert(v)`.
    Entry(Vec<u8>, u64, Option<u64>),
    PopFirst,
    PopLast,
    /// Keeps the values not divisible by this.
    Retain(u64),
    Contains(Vec<u8>),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    let pre = prefixes();
    (0..pre.len(), proptest::collection::vec(byte(), 0..10))
        .prop_map(move |(p, tail)| [pre[p].clone(), tail].concat())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), 0..100u64).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (key(), 0..100u64, proptest::option::of(1..5u64)).prop_map(|(k, v, d)| Op::Entry(k, v, d)),
        1 => Just(Op::PopFirst),
        1 => Just(Op::PopLast),
        1 => (2..5u64).prop_map(Op::Retain),
        1 => key().prop_map(Op::Contains),
    ]
}

for_each_backend! {
    proptest! {
        #![proptest_config(config(64))]
        #[test]
        fn map_surface_matches_btreemap(ops in proptest::collection::vec(op(), 1..120)) {
            let tree = new_itree::<u64>();
            let mut model = BTreeMap::<Vec<u8>, u64>::new();
            {
                let g = tree.guard();
                for op in &ops {
                    match op {
                        Op::Insert(k, v) => {
                            prop_assert_eq!(tree.insert(k, *v, &g), model.insert(k.clone(), *v));
                        }
                        Op::Entry(k, v, d) => {
                            let got = match d {
                                Some(d) => tree.entry(k, &g).and_modify(|x| x + d).or_insert(*v),
                                None => tree.entry(k, &g).or_insert(*v),
                            };
                            let want = *model
                                .entry(k.clone())
                                .and_modify(|x| *x += d.unwrap_or(0))
                                .or_insert(*v);
                            prop_assert_eq!(got, want);
                        }
                        Op::PopFirst => prop_assert_eq!(tree.pop_first(&g).map(vec_key), model.pop_first()),
                        Op::PopLast => prop_assert_eq!(tree.pop_last(&g).map(vec_key), model.pop_last()),
                        Op::Retain(m) => {
                            tree.retain(|_, v| v % m != 0, &g);
                            model.retain(|_, v| *v % m != 0);
                        }
                        Op::Contains(k) => {
                            prop_assert_eq!(tree.contains_key(k, &g), model.contains_key(k));
                            let want = model.get(k).map(|v| (&k[..], *v));
                            prop_assert_eq!(tree.get_key_value(k, &g), want);
                        }
                    }
                    prop_assert_eq!(tree.len(), model.len());
                }
            }
            // Owned iteration, from both ends alternately.
            let mut it = tree.into_iter();
            prop_assert_eq!(it.len(), model.len());
            let mut front = true;
            while let Some((k, v)) = if front { it.next() } else { it.next_back() } {
                let want = if front { model.pop_first() } else { model.pop_last() };
                prop_assert_eq!(Some((k.into_vec(), v)), want);
                front = !front;
            }
            prop_assert!(model.is_empty());
        }
    }

    /// Values an owned iteration does not reach are dropped with it, once.
    #[test]
    fn into_iter_drops_the_rest() {
        use std::sync::Arc;
        let tree = new_tree::<Arc<()>>();
        let probe = Arc::new(());
        {
            let g = tree.guard();
            for i in 0..200u32 {
                tree.insert(&i.to_be_bytes(), probe.clone(), &g);
            }
        }
        let mut it = tree.into_iter();
        let (k, v) = it.next().unwrap();
        assert_eq!(k, 0u32.to_be_bytes());
        drop(v);
        assert_eq!(it.next_back().unwrap().0, 199u32.to_be_bytes());
        drop(it);
        assert_eq!(Arc::strong_count(&probe), 1);
    }
}
