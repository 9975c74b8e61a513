//! Multi-threaded stress tests (4-8 threads; bounded by operation budgets, not
//! wall-clock time).
//!
//! Every value written encodes `(key id, writer, writer's sequence number)`;
//! each writer follows a precomputed schedule (`schedules[w][seq - 1]` is the
//! key id of writer `w`'s write number `seq`), and publishes `progress[w] = seq`
//! *before* performing that write. A reader (or a writer reading a previous
//! value) can therefore check exactly that a value it observes was written for
//! that key by that writer, and that the write has started (`seq <=
//! progress[w]` after an acquire load, which holds iff the tree's reads
//! synchronize with its writes).
//!
//! Readers additionally check:
//! * per-key coherence: for each (key, writer), observed sequence numbers
//!   never go backwards;
//! * a key once seen never disappears (rolling re-check of all seen keys, and
//!   a final full re-check);
//! * every key a writer has published as inserted (first round) is present.
//!
//! Writers check every previous value returned by `insert` (exactly, for keys
//! owned by one writer). After the join, every key holds its final value
//! (exactly the owner's last write, or the last write of one of the writers
//! for keys written by all), and `len()` is exact.
//!
//! With out-of-line values, each value holds its key and a checksum; all
//! references obtained during a guard's lifetime (including replaced values
//! returned by `insert`) are re-verified just before the guard is dropped.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]
// Guards are dropped explicitly to end read sections; some backends' guards
// have no destructor.
#![allow(clippy::drop_non_drop)]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;
mod check;
mod churn;
mod layers;
mod map;
mod readers;
mod writers;

use std::sync::atomic::AtomicUsize;

use check::until_done;
use churn::{ChurnCfg, run_churn};
use common::{Rng, scaled};
use layers::{run_hot_keys, run_layer_race};
use map::{DoneOnDrop, Session, StressMap, Tag, Val, hold};
use readers::{run_conversion_under_readers, run_splits_under_readers};
use writers::{StressCfg, run_stress};

/// The `String` value number `v` of key `k`: the key, the number, and a
/// padding whose length depends on the number.
fn string_value(k: u64, v: u64) -> String {
    format!("key={k:08};val={v};{}", "p".repeat((v % 50) as usize))
}

/// Checks that `s` is a [`string_value`] of key `k`; returns its number.
fn check_string_value(k: u64, s: &str) -> u64 {
    let prefix = format!("key={k:08};val=");
    assert!(
        s.starts_with(&prefix),
        "value {s:?} does not belong to key {k}"
    );
    let rest = &s[prefix.len()..];
    let (v, pad) = rest.split_once(';').expect("corrupt value");
    let v: u64 = v.parse().expect("corrupt value");
    assert_eq!(pad.len() as u64, v % 50, "corrupt value {s:?}");
    v
}

for_each_backend! {
    use std::cell::RefCell;

    impl StressMap for ITree<u64> {
        fn session<R>(&self, f: impl FnOnce(&mut Session<'_>) -> R) -> R {
            let g = self.guard();
            let mut ins = |k: &[u8], t: Tag| self.insert(k, t.pack(), &g).map(Tag::unpack);
            let mut get = |k: &[u8]| self.get(k, &g).map(Tag::unpack);
            let mut rem = |k: &[u8]| self.remove(k, &g).map(Tag::unpack);
            let mut batch = |ks: &[&[u8]], out: &mut [Option<Tag>]| {
                self.get_batch_with(ks, &g, |i, v| out[i] = v.map(Tag::unpack));
            };
            f(&mut Session { insert: &mut ins, get: &mut get, remove: &mut rem, get_batch: &mut batch })
        }
        fn count(&self) -> usize {
            self.len()
        }
    }

    impl StressMap for Tree<Val> {
        fn session<R>(&self, f: impl FnOnce(&mut Session<'_>) -> R) -> R {
            let g = self.guard();
            // every reference obtained under `g`, re-verified before `g` is dropped
            let held = RefCell::new(Vec::new());
            let r = {
                let mut ins = |k: &[u8], t: Tag| {
                    self.insert(k, Val::new(k, t), &g).map(|v| hold(&held, k, v))
                };
                let mut get = |k: &[u8]| self.get(k, &g).map(|v| hold(&held, k, v));
                let mut rem = |k: &[u8]| self.remove(k, &g).map(|v| hold(&held, k, v));
                let mut batch = |ks: &[&[u8]], out: &mut [Option<Tag>]| {
                    self.get_batch_with(ks, &g, |i, v| out[i] = v.map(|v| hold(&held, ks[i], v)));
                };
                f(&mut Session {
                    insert: &mut ins,
                    get: &mut get,
                    remove: &mut rem,
                    get_batch: &mut batch,
                })
            };
            for (v, tag) in held.into_inner() {
                assert_eq!(
                    v.verify(None),
                    tag,
                    "a value changed while a guard protecting it was held"
                );
            }
            r
        }
        fn count(&self) -> usize {
            self.len()
        }
    }

    fn base_cfg(seed: u64) -> StressCfg {
        StressCfg {
            writers: 4,
            readers: 4,
            disjoint: scaled(3000),
            overlap: scaled(1000),
            rounds: 8,
            seed,
        }
    }

    fn hot_cfg(seed: u64) -> StressCfg {
        StressCfg {
            writers: 4,
            readers: 4,
            disjoint: 16,
            overlap: 16,
            rounds: scaled(4000),
            seed,
        }
    }

    #[test]
    fn inline_writers_and_readers() {
        run_stress(&new_itree::<u64>(), &base_cfg(1));
    }

    #[test]
    fn inline_many_writers() {
        let cfg = StressCfg { writers: 6, readers: 2, ..base_cfg(2) };
        run_stress(&new_itree::<u64>(), &cfg);
    }

    #[test]
    fn inline_hot_keys() {
        run_hot_keys(&new_itree::<u64>(), &hot_cfg(3));
    }

    #[test]
    fn boxed_writers_and_readers() {
        run_stress(&new_tree::<Val>(), &base_cfg(4));
    }

    #[test]
    fn boxed_many_readers() {
        let cfg = StressCfg { writers: 2, readers: 6, ..base_cfg(5) };
        run_stress(&new_tree::<Val>(), &cfg);
    }

    #[test]
    fn boxed_hot_keys() {
        run_hot_keys(&new_tree::<Val>(), &hot_cfg(6));
    }

    #[test]
    fn inline_layer_race() {
        run_layer_race(&new_itree::<u64>(), 4, scaled(1000));
    }

    #[test]
    fn boxed_layer_race() {
        run_layer_race(&new_tree::<Val>(), 6, scaled(500));
    }

    /// `String` values containing the key, read by threads that keep the
    /// references across a whole guard lifetime while writers replace them.
    #[test]
    fn string_values_replaced_under_readers() {
        let t = new_tree::<String>();
        let nkeys = 64u64;
        let writes = scaled(40_000) as u64;
        {
            let g = t.guard();
            for k in 0..nkeys {
                assert!(t.insert(&k.to_be_bytes(), string_value(k, 0), &g).is_none());
            }
        }
        let done = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let (t, done) = (&t, &done);
            for w in 0..2u64 {
                s.spawn(move || {
                    let _d = DoneOnDrop(done);
                    for i in 0..writes {
                        let k = (i * 7 + w) % nkeys;
                        let g = t.guard();
                        let old = t.insert(&k.to_be_bytes(), string_value(k, i + 1), &g);
                        check_string_value(k, old.expect("present"));
                    }
                });
            }
            for r in 0..4u64 {
                s.spawn(move || {
                    let mut rng = Rng::new(r);
                    until_done(done, 2, || string_reader_pass(t, &mut rng, nkeys));
                });
            }
        });
        assert_eq!(t.len(), nkeys as usize);
    }

    /// 256 random keys read under one guard, each checked again (same
    /// reference, same content) after the writers had a chance to replace it.
    fn string_reader_pass(t: &Tree<String>, rng: &mut Rng, nkeys: u64) {
        let g = t.guard();
        let mut held: Vec<(u64, &String, String)> = Vec::new();
        for _ in 0..256 {
            let k = rng.below(nkeys);
            let v = t.get(&k.to_be_bytes(), &g).expect("present");
            check_string_value(k, v);
            held.push((k, v, v.clone()));
        }
        // let writers replace (and retire) what we hold
        std::thread::yield_now();
        for (k, v, copy) in &held {
            assert_eq!(*v, copy, "value of key {k} changed under a guard");
            check_string_value(*k, v);
        }
        drop(held);
        drop(g);
    }

    #[test]
    fn inline_conversion_under_readers() {
        run_conversion_under_readers(&new_itree::<u64>(), scaled(20_000), 2);
    }

    #[test]
    fn boxed_conversion_under_readers() {
        run_conversion_under_readers(&new_tree::<Val>(), scaled(20_000), 2);
    }

    #[test]
    fn inline_splits_under_readers() {
        let key = |id: u64| id.to_be_bytes().to_vec();
        run_splits_under_readers(&new_itree::<u64>(), key, 64, scaled(1500) as u64, 2, 4);
    }

    #[test]
    fn boxed_splits_in_deep_layer_under_readers() {
        // all keys live in layer 3 (24-byte shared prefix), some with suffixes
        let key = |id: u64| {
            let mut k = b"shared--prefix--24bytes!".to_vec();
            k.extend_from_slice(&id.to_be_bytes());
            if id % 3 == 0 {
                k.extend_from_slice(b"-with-a-suffix");
            }
            k
        };
        run_splits_under_readers(&new_tree::<Val>(), key, 64, scaled(1000) as u64, 2, 4);
    }

    fn churn_cfg(seed: u64) -> ChurnCfg {
        ChurnCfg {
            writers: 4,
            readers: 3,
            groups: 24,
            ops_per_writer: scaled(60_000),
            insert_pct: 50,
            seed,
        }
    }

    #[test]
    fn inline_churn_with_removes() {
        run_churn(&new_itree::<u64>(), &churn_cfg(11));
    }

    #[test]
    fn inline_churn_mostly_empty() {
        // removes dominate: layers and leaves are empty most of the time
        let cfg = ChurnCfg { insert_pct: 30, groups: 6, ..churn_cfg(12) };
        run_churn(&new_itree::<u64>(), &cfg);
    }

    #[test]
    fn boxed_churn_with_removes() {
        run_churn(&new_tree::<Val>(), &churn_cfg(13));
    }

    #[test]
    fn boxed_churn_many_groups() {
        // more groups: more leaves and internodes to unlink and collect
        let cfg = ChurnCfg { groups: 400, insert_pct: 55, ..churn_cfg(14) };
        run_churn(&new_tree::<Val>(), &cfg);
    }
}
