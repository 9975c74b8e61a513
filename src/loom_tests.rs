//! loom models of the small protocols, run on the shipped types through
//! `crate::sync` (`RUSTFLAGS="--cfg masstree_loom" cargo test --release --lib loom`).
//!
//! The writer runs on the model's main thread and the reader on a spawned
//! one: loom's DPOR remembers only the last access to each atomic, so a reader
//! that runs first in the initial schedule would hide the races from it.

use std::vec::Vec;

use loom::sync::Arc;
use loom::thread;

use crate::nodeversion::{LEAF, NodeVersion};
use crate::sync::{AtomicU64, Ordering};
use crate::test_backend::TestBackend;
use crate::{Inline, Tree};

type Words = Tree<Inline<usize>, TestBackend>;

/// A reader that validates never sees a half-done write, and two writers
/// never hold the lock at once.
#[test]
fn loom_version_lock_and_validation() {
    loom::model(|| {
        struct Node {
            version: NodeVersion,
            a: AtomicU64,
            b: AtomicU64,
        }
        let n = Arc::new(Node {
            version: NodeVersion::new(LEAF),
            a: AtomicU64::new(0),
            b: AtomicU64::new(0),
        });
        let v0 = n.version.stable();
        let writers: Vec<_> = (1..=2u64)
            .map(|w| {
                let n = n.clone();
                thread::spawn(move || {
                    let lock = n.version.lock();
                    lock.mark_insert();
                    // Relaxed: ordered by the dirty mark's fence and unlock (the protocol under test).
                    let a = n.a.load(Ordering::Relaxed);
                    n.a.store(a + w, Ordering::Relaxed);
                    n.b.store(a + w, Ordering::Relaxed);
                })
            })
            .collect();
        let v = n.version.stable();
        // Relaxed: validated by `has_changed` (the protocol under test).
        let (a, b) = (n.a.load(Ordering::Relaxed), n.b.load(Ordering::Relaxed));
        if !n.version.has_changed(v) {
            assert_eq!(a, b, "validated read saw a torn write");
        }
        for w in writers {
            w.join().unwrap();
        }
        // Both increments happened under mutual exclusion.
        assert_eq!(n.a.load(Ordering::Relaxed), 3);
        // Each unlock after an insert mark bumped VINSERT (bit 3) once.
        assert_eq!(n.version.stable().bits() - v0.bits(), 2 << 3);
    });
}

fn key(i: usize) -> [u8; 8] {
    (i as u64).to_be_bytes()
}

/// A tree's guard on the test backend.
type G<'a> = crate::Guard<'a, TestBackend>;

/// Runs `spawned` on a new thread against `main` on the model's main
/// thread (see the module docs for why the reader is the spawned one), over
/// a tree that `setup` filled, then `check` on the result. Loom gets room
/// for the many atomic steps of building a tree of several nodes.
fn race(
    setup: fn(&Words, &G<'_>),
    spawned: fn(&Words, &G<'_>),
    main: fn(&Words, &G<'_>),
    check: fn(&Words, &G<'_>),
) {
    let mut model = loom::model::Builder::new();
    model.max_branches = 10_000;
    model.check(move || {
        let t = Arc::new(Words::new_in(TestBackend::new()));
        setup(&t, &t.guard());
        let other = {
            let t = t.clone();
            thread::spawn(move || spawned(&t, &t.guard()))
        };
        let g = t.guard();
        main(&t, &g);
        other.join().unwrap();
        check(&t, &g);
    });
}

/// Inserts keys `2i` with values `i` for `i` in `0..15`: one full leaf.
fn full_leaf(t: &Words, g: &G<'_>) {
    for i in 0..15 {
        t.insert(&key(2 * i), i, g);
    }
}

/// A lock-free reader racing an insert into the same leaf sees the old keys
/// with their values, and the new key either absent or complete.
#[test]
fn loom_reader_races_insert_into_leaf() {
    race(
        |t, g| {
            t.insert(&key(1), 10, g);
            t.insert(&key(3), 30, g);
        },
        |t, g| {
            let two = t.get(&key(2), g);
            assert!(two.is_none() || two == Some(20));
            let one = t.get(&key(1), g);
            assert!(one == Some(10) || one == Some(11));
            assert_eq!(t.get(&key(3), g), Some(30));
        },
        |t, g| {
            assert_eq!(t.insert(&key(2), 20, g), None);
            assert_eq!(t.insert(&key(1), 11, g), Some(10));
        },
        |t, g| assert_eq!(t.get(&key(2), g), Some(20)),
    );
}

/// A reader racing a leaf split finds keys that move to the new right leaf
/// (waiting on the splitting version, or moving right along the link).
#[test]
fn loom_reader_races_leaf_split() {
    race(
        full_leaf,
        |t, g| {
            // Key 14 moves to the new right leaf, and its old slot is
            // recycled for key 1: a reader must not trust the old slot.
            assert_eq!(t.get(&key(14), g), Some(7));
            let one = t.get(&key(1), g);
            assert!(one.is_none() || one == Some(100));
        },
        |t, g| {
            t.insert(&key(1), 100, g);
        },
        |t, g| {
            assert_eq!(t.get(&key(28), g), Some(14));
            assert_eq!(t.get(&key(1), g), Some(100));
        },
    );
}

/// A batched reader ([`RawTree::get_batch`](crate::raw::RawTree), steps of
/// its lookups interleaved) racing the same split: each of its lookups
/// keeps `get`'s protocol across its yields, so key 14 is found wherever the
/// split put it, and key 1 is absent or complete.
#[test]
fn loom_batched_reader_races_leaf_split() {
    race(
        full_leaf,
        |t, g| {
            let mut out = [None; 3];
            t.get_batch(&[key(14), key(1), key(28)], &mut out, g);
            assert_eq!(out[0], Some(7));
            assert!(out[1].is_none() || out[1] == Some(100));
            assert_eq!(out[2], Some(14));
        },
        |t, g| {
            t.insert(&key(1), 100, g);
        },
        |t, g| {
            let mut out = [None; 2];
            t.get_batch(&[key(28), key(1)], &mut out, g);
            assert_eq!(out, [Some(14), Some(100)]);
        },
    );
}

/// A suffixed key turning into a chain of two new layers (the keys share
/// two slices past the first) while a reader looks it up: the chain is
/// published by one store, so the reader finds the key in the old record or
/// at the chain's bottom.
#[test]
fn loom_reader_races_new_layer() {
    race(
        |t, g| {
            t.insert(b"abcdefgh-first-ijklmnop-1", 1, g);
        },
        |t, g| {
            assert_eq!(t.get(b"abcdefgh-first-ijklmnop-1", g), Some(1));
            let s = t.get(b"abcdefgh-first-ijklmnop-2", g);
            assert!(s.is_none() || s == Some(2));
        },
        |t, g| {
            t.insert(b"abcdefgh-first-ijklmnop-2", 2, g);
        },
        |t, g| assert_eq!(t.get(b"abcdefgh-first-ijklmnop-2", g), Some(2)),
    );
}

/// A reader racing a remove and the reuse of the freed slot by an insert
/// never sees the new key's value under the old key.
#[test]
fn loom_reader_races_remove_and_slot_reuse() {
    race(
        full_leaf,
        |t, g| {
            let x = t.get(&key(10), g);
            assert!(x.is_none() || x == Some(5), "read {x:?} for key 10");
            let y = t.get(&key(11), g);
            assert!(y.is_none() || y == Some(99), "read {y:?} for key 11");
        },
        |t, g| {
            assert_eq!(t.remove(&key(10), g), Some(5));
            // The leaf has one free slot now: the one key 10 used.
            assert_eq!(t.insert(&key(11), 99, g), None);
        },
        |t, g| assert_eq!(t.get(&key(10), g), None),
    );
}

/// An insert headed for a leaf that a remove empties and unlinks is not
/// lost: it notices the deleted bit and retries from the top.
#[test]
fn loom_insert_races_unlink() {
    race(
        |t, g| {
            // Sequential inserts: a full leaf 0..=14, then key 15 alone in a
            // right leaf (an append split moves only the new key).
            for i in 0..16 {
                t.insert(&key(i), i, g);
            }
        },
        |t, g| assert_eq!(t.insert(&key(16), 16, g), None),
        // Empties the right leaf: it is unlinked and taken out of the root.
        |t, g| assert_eq!(t.remove(&key(15), g), Some(15)),
        |t, g| {
            assert_eq!(t.get(&key(16), g), Some(16));
            assert_eq!(t.get(&key(15), g), None);
            assert_eq!(t.get(&key(14), g), Some(14));
            assert_eq!(t.len(), 16);
        },
    );
}

/// An insert that passes through a layer without locking (its slot read
/// and validated as a reader would) while a remove empties and collects that
/// layer is not lost: it finds the layer's leaf deleted and starts again.
#[test]
fn loom_insert_passing_layer_races_layer_collection() {
    race(
        one_key_layer,
        |t, g| assert_eq!(t.insert(b"abcdefgh-3", 3, g), None),
        collect_the_layer,
        key_3_survives,
    );
}

/// "abcdefgh" becomes a layer holding "-1"; "z" keeps the top leaf.
fn one_key_layer(t: &Words, g: &G<'_>) {
    t.insert(b"abcdefgh-1", 1, g);
    t.insert(b"abcdefgh-2", 2, g);
    assert_eq!(t.remove(b"abcdefgh-2", g), Some(2));
    t.insert(b"z", 0, g);
}

/// Empties the layer of [`one_key_layer`]: it is collected and its slot removed.
fn collect_the_layer(t: &Words, g: &G<'_>) {
    assert_eq!(t.remove(b"abcdefgh-1", g), Some(1));
}

/// After an insert of "abcdefgh-3" raced [`collect_the_layer`].
fn key_3_survives(t: &Words, g: &G<'_>) {
    assert_eq!(t.get(b"abcdefgh-3", g), Some(3));
    assert_eq!(t.get(b"abcdefgh-1", g), None);
    assert_eq!(t.len(), 2);
}

/// An insert into a link of a chain (a layer holding only the way down)
/// racing the collection of the chain, which holds the link's lock from
/// its pass until the link is deleted: the insert lands in the link before
/// the pass (which then stops the collection there), or finds it deleted
/// and starts again from the top.
#[test]
fn loom_insert_into_link_races_chain_collection() {
    race(
        |t, g| {
            // Layer 1 holds only "ijklmnop", the way to layer 2 ("-1").
            t.insert(b"abcdefghijklmnop-1", 1, g);
            t.insert(b"abcdefghijklmnop-2", 2, g);
            assert_eq!(t.remove(b"abcdefghijklmnop-2", g), Some(2));
            t.insert(b"z", 0, g);
        },
        |t, g| assert_eq!(t.insert(b"abcdefgh-3", 3, g), None),
        // Empties layer 2: layer 2, and layer 1 if still a link, go.
        |t, g| assert_eq!(t.remove(b"abcdefghijklmnop-1", g), Some(1)),
        |t, g| {
            assert_eq!(t.get(b"abcdefgh-3", g), Some(3));
            assert_eq!(t.get(b"abcdefghijklmnop-1", g), None);
            assert_eq!(t.len(), 2);
        },
    );
}

/// A batched insert ([`Tree::insert_batch`](crate::Tree::insert_batch): a
/// lookup, then the insert from the leaf the lookup ended at) racing the
/// collection of that leaf's layer: the insert finds its hinted leaf deleted
/// and starts again from the top, so the key is not lost in a dead layer.
#[test]
fn loom_batched_insert_races_layer_collection() {
    race(
        one_key_layer,
        |t, g| t.insert_batch([(b"abcdefgh-3", 3)], g),
        collect_the_layer,
        key_3_survives,
    );
}

/// A batched insert racing a split of the leaf its lookup ended at: the
/// insert follows the split (moves right if its key went to the new leaf)
/// instead of trusting the hint.
#[test]
fn loom_batched_insert_races_leaf_split() {
    race(
        full_leaf,
        |t, g| t.insert_batch([(key(29), 29)], g),
        |t, g| {
            t.insert(&key(1), 100, g);
        },
        |t, g| {
            assert_eq!(t.get(&key(29), g), Some(29));
            assert_eq!(t.get(&key(1), g), Some(100));
            assert_eq!(t.get(&key(28), g), Some(14));
        },
    );
}
