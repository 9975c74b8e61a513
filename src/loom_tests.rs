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

/// A lock-free reader racing an insert into the same leaf sees the old keys
/// with their values, and the new key either absent or complete.
#[test]
fn loom_reader_races_insert_into_leaf() {
    loom::model(|| {
        let t = Arc::new(Words::new_in(TestBackend::new()));
        {
            let g = t.guard();
            t.insert(&key(1), 10, &g);
            t.insert(&key(3), 30, &g);
        }
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                let g = t.guard();
                let two = t.get(&key(2), &g);
                assert!(two.is_none() || two == Some(20));
                let one = t.get(&key(1), &g);
                assert!(one == Some(10) || one == Some(11));
                assert_eq!(t.get(&key(3), &g), Some(30));
            })
        };
        let g = t.guard();
        assert_eq!(t.insert(&key(2), 20, &g), None);
        assert_eq!(t.insert(&key(1), 11, &g), Some(10));
        r.join().unwrap();
        assert_eq!(t.get(&key(2), &g), Some(20));
    });
}

/// A reader racing a leaf split finds keys that move to the new right leaf
/// (waiting on the splitting version, or moving right along the link).
#[test]
fn loom_reader_races_leaf_split() {
    model_with_branches(2_000, || {
        let t = Arc::new(Words::new_in(TestBackend::new()));
        {
            let g = t.guard();
            for i in 0..15 {
                t.insert(&key(2 * i), i, &g);
            }
        }
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                let g = t.guard();
                // Key 14 moves to the new right leaf, and its old slot is
                // recycled for key 1: a reader must not trust the old slot.
                assert_eq!(t.get(&key(14), &g), Some(7));
                let one = t.get(&key(1), &g);
                assert!(one.is_none() || one == Some(100));
            })
        };
        let g = t.guard();
        t.insert(&key(1), 100, &g);
        r.join().unwrap();
        assert_eq!(t.get(&key(28), &g), Some(14));
        assert_eq!(t.get(&key(1), &g), Some(100));
    });
}

/// A suffixed key turning into a new layer while a reader looks it up.
#[test]
fn loom_reader_races_new_layer() {
    loom::model(|| {
        let t = Arc::new(Words::new_in(TestBackend::new()));
        {
            let g = t.guard();
            t.insert(b"abcdefgh-first", 1, &g);
        }
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                let g = t.guard();
                assert_eq!(t.get(b"abcdefgh-first", &g), Some(1));
                let s = t.get(b"abcdefgh-second", &g);
                assert!(s.is_none() || s == Some(2));
            })
        };
        let g = t.guard();
        t.insert(b"abcdefgh-second", 2, &g);
        r.join().unwrap();
        assert_eq!(t.get(b"abcdefgh-second", &g), Some(2));
    });
}

/// A reader racing a remove and the reuse of the freed slot by an insert
/// never sees the new key's value under the old key.
#[test]
fn loom_reader_races_remove_and_slot_reuse() {
    model_with_branches(2_000, || {
        let t = Arc::new(Words::new_in(TestBackend::new()));
        {
            let g = t.guard();
            for i in 0..15 {
                t.insert(&key(2 * i), i, &g);
            }
        }
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                let g = t.guard();
                let x = t.get(&key(10), &g);
                assert!(x.is_none() || x == Some(5), "read {x:?} for key 10");
                let y = t.get(&key(11), &g);
                assert!(y.is_none() || y == Some(99), "read {y:?} for key 11");
            })
        };
        let g = t.guard();
        assert_eq!(t.remove(&key(10), &g), Some(5));
        // The leaf has one free slot now: the one key 10 used.
        assert_eq!(t.insert(&key(11), 99, &g), None);
        r.join().unwrap();
        assert_eq!(t.get(&key(10), &g), None);
    });
}

/// Runs `f` under loom with room for the many atomic steps of building a
/// tree of several nodes first (more than loom's default allows).
fn model_with_room(f: impl Fn() + Sync + Send + 'static) {
    model_with_branches(10_000, f);
}

/// Runs `f` under loom with at most `branches` branches per execution: a
/// tree of one full leaf takes a few more steps than loom's default (its
/// teardown takes each slot out before freeing it), but far fewer than
/// `model_with_room`'s, whose longer spins would take minutes to explore.
fn model_with_branches(branches: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut model = loom::model::Builder::new();
    model.max_branches = branches;
    model.check(f);
}

/// An insert headed for a leaf that a remove empties and unlinks is not
/// lost: it notices the deleted bit and retries from the top.
#[test]
fn loom_insert_races_unlink() {
    model_with_room(|| {
        let t = Arc::new(Words::new_in(TestBackend::new()));
        {
            let g = t.guard();
            // Sequential inserts: a full leaf 0..=14, then key 15 alone in a
            // right leaf (an append split moves only the new key).
            for i in 0..16 {
                t.insert(&key(i), i, &g);
            }
        }
        let w = {
            let t = t.clone();
            thread::spawn(move || {
                let g = t.guard();
                assert_eq!(t.insert(&key(16), 16, &g), None);
            })
        };
        let g = t.guard();
        // Empties the right leaf: it is unlinked and taken out of the root.
        assert_eq!(t.remove(&key(15), &g), Some(15));
        w.join().unwrap();
        assert_eq!(t.get(&key(16), &g), Some(16));
        assert_eq!(t.get(&key(15), &g), None);
        assert_eq!(t.get(&key(14), &g), Some(14));
        assert_eq!(t.len(), 16);
    });
}

/// An insert that passes through a layer without locking (its slot read
/// and validated as a reader would) while a remove empties and collects that
/// layer is not lost: it finds the layer's leaf deleted and starts again.
#[test]
fn loom_insert_passing_layer_races_layer_collection() {
    model_with_room(|| {
        let t = Arc::new(Words::new_in(TestBackend::new()));
        {
            let g = t.guard();
            // "abcdefgh" becomes a layer holding "-1"; "z" keeps the top leaf.
            t.insert(b"abcdefgh-1", 1, &g);
            t.insert(b"abcdefgh-2", 2, &g);
            assert_eq!(t.remove(b"abcdefgh-2", &g), Some(2));
            t.insert(b"z", 0, &g);
        }
        let w = {
            let t = t.clone();
            thread::spawn(move || {
                let g = t.guard();
                assert_eq!(t.insert(b"abcdefgh-3", 3, &g), None);
            })
        };
        let g = t.guard();
        // Empties the layer: it is collected and its slot removed.
        assert_eq!(t.remove(b"abcdefgh-1", &g), Some(1));
        w.join().unwrap();
        assert_eq!(t.get(b"abcdefgh-3", &g), Some(3));
        assert_eq!(t.get(b"abcdefgh-1", &g), None);
        assert_eq!(t.len(), 2);
    });
}
