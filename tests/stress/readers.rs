//! Driver 4: readers spin on keys while a writer restructures around them
//! (suffix -> layer conversion, leaf splits). A key, once published, must be
//! visible with its exact value at every instant.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::check::{Coherence, Progress, join_all, must_get, until_done};
use crate::common::{Rng, hex};
use crate::map::{DoneOnDrop, Session, StressMap, Tag};

/// The pair of keys of round `r`: `a` is inserted first (alone in its slice,
/// so typically stored with a suffix), `b` shares `a`'s slice(s) and forces
/// the slot of `a` to become a new layer (or a chain of layers).
pub(crate) fn conversion_pair(r: usize) -> (Vec<u8>, Vec<u8>) {
    let p = (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes();
    let cat = |parts: &[&[u8]]| parts.concat();
    match r % 6 {
        0 => (cat(&[&p, b"A-long-suffix"]), cat(&[&p, b"B-long-suffix"])),
        1 => (
            cat(&[&p, b"sameQQQQ", b"A-tail"]),
            cat(&[&p, b"sameQQQQ", b"B-tail"]),
        ),
        2 => (cat(&[&p, &[0u8; 8], b"x"]), cat(&[&p, &[0u8; 8], b"y"])),
        3 => (p.to_vec(), cat(&[&p, b"suffix"])),
        4 => (cat(&[&p, b"abc"]), cat(&[&p, b"abd"])),
        _ => (
            cat(&[&p, b"sameQQQQsameRRRR"]),
            cat(&[&p, b"sameQQQQsameRRRR", b"\0"]),
        ),
    }
}

pub(crate) fn run_conversion_under_readers<M: StressMap>(map: &M, rounds: usize, readers: usize) {
    let start = Instant::now();
    let conv = Conversion {
        pub_a: AtomicUsize::new(0),
        pub_b: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    };
    let checks = std::thread::scope(|s| {
        let conv = &conv;
        s.spawn(move || conv.writer(map, rounds));
        let hs: Vec<_> = (0..readers)
            .map(|i| s.spawn(move || conv.reader(map, i)))
            .collect();
        join_all(hs, "reader").into_iter().sum::<u64>()
    });
    map.session(|sess| {
        for r in 0..rounds {
            let (a, b) = conversion_pair(r);
            assert_eq!((sess.get)(&a), Some(conv_tag(r, 0)), "final a {}", hex(&a));
            assert_eq!((sess.get)(&b), Some(conv_tag(r, 1)), "final b {}", hex(&b));
        }
    });
    assert_eq!(map.count(), 2 * rounds);
    eprintln!(
        "run_conversion_under_readers rounds={rounds}: {checks} reader checks, {:?}",
        start.elapsed()
    );
}

/// The value of key `a` (`which` 0) or `b` (1) of round `r`.
fn conv_tag(r: usize, which: u32) -> Tag {
    Tag {
        id: r as u32,
        w: which,
        seq: 1,
    }
}

/// How far the writer of the conversion driver has got.
struct Conversion {
    /// rounds whose `a` is inserted
    pub_a: AtomicUsize,
    /// rounds whose `b` is inserted
    pub_b: AtomicUsize,
    done: AtomicUsize,
}

impl Conversion {
    /// Round by round: insert `a`, publish, wait a little, insert `b`, publish.
    fn writer<M: StressMap>(&self, map: &M, rounds: usize) {
        let _d = DoneOnDrop(&self.done);
        for r in 0..rounds {
            let (a, b) = conversion_pair(r);
            map.session(|sess| {
                assert_eq!((sess.insert)(&a, conv_tag(r, 0)), None, "a of round {r}");
                self.pub_a.store(r + 1, Ordering::Release);
                // widen the window in which only `a` exists
                for _ in 0..(r % 4) * 64 {
                    std::hint::spin_loop();
                }
                assert_eq!((sess.insert)(&b, conv_tag(r, 1)), None, "b of round {r}");
                self.pub_b.store(r + 1, Ordering::Release);
            });
        }
    }

    /// Reader `i` checks the latest rounds (being converted right now) and an
    /// older one until the writer is done; returns how many rounds it checked.
    fn reader<M: StressMap>(&self, map: &M, i: usize) -> u64 {
        let mut checks = 0u64;
        let mut rng = Rng::new(i as u64);
        until_done(&self.done, 1, || {
            map.session(|sess| {
                for _ in 0..32 {
                    let na = self.pub_a.load(Ordering::Acquire);
                    let nb = self.pub_b.load(Ordering::Acquire);
                    let mut rs = vec![na.wrapping_sub(1), na.wrapping_sub(2)];
                    if na > 0 {
                        rs.push(rng.below(na as u64) as usize);
                    }
                    for r in rs.into_iter().filter(|&r| r < na) {
                        check_round(sess, r, r < nb, i);
                        checks += 1;
                    }
                }
            })
        });
        checks
    }
}

/// Round `r`'s `a` (published) is visible with its value; `b` is too if
/// `b_published`, else absent or exact.
fn check_round(sess: &mut Session<'_>, r: usize, b_published: bool, i: usize) {
    let (a, b) = conversion_pair(r);
    assert_eq!(
        (sess.get)(&a),
        Some(conv_tag(r, 0)),
        "reader {i}: key a {} of round {r} (variant {}) not visible (b published: {b_published})",
        hex(&a),
        r % 6,
    );
    let gb = (sess.get)(&b);
    if b_published {
        assert_eq!(
            gb,
            Some(conv_tag(r, 1)),
            "reader {i}: key b {} of round {r} (variant {})",
            hex(&b),
            r % 6
        );
    } else {
        assert!(gb.is_none() || gb == Some(conv_tag(r, 1)));
    }
}

/// A fixed set of keys is read continuously while writers insert many keys
/// around them (splitting their leaves over and over) and update them.
pub(crate) fn run_splits_under_readers<M: StressMap>(
    map: &M,
    key: impl Fn(u64) -> Vec<u8> + Sync,
    fixed: u64,
    fillers_per_gap: u64,
    writers: usize,
    readers: usize,
) {
    let start = Instant::now();
    let stride = fillers_per_gap + 1;
    let sp = Splits {
        key,
        fixed,
        stride,
        // fixed keys: id = i * stride; fillers: the ids in between
        fixed_ids: (0..fixed).map(|i| i * stride).collect(),
        writers,
        updates: Progress::new(1),
        done: AtomicUsize::new(0),
    };
    map.session(|sess| {
        for &id in &sp.fixed_ids {
            assert_eq!((sess.insert)(&(sp.key)(id), fixed_tag(id, 0)), None);
        }
    });
    std::thread::scope(|s| {
        let sp = &sp;
        for w in 0..writers {
            s.spawn(move || sp.writer(map, w));
        }
        for r in 0..readers {
            s.spawn(move || sp.reader(map, r));
        }
    });
    map.session(|sess| {
        for id in 0..fixed * stride {
            let t = must_get(sess, &(sp.key)(id), || format!("key {id} missing"));
            assert_eq!(t.id, id as u32);
        }
    });
    assert_eq!(map.count(), (fixed * stride) as usize);
    eprintln!("run_splits_under_readers: {:?}", start.elapsed());
}

/// The value of fixed key `id` after `seq` updates.
fn fixed_tag(id: u64, seq: u32) -> Tag {
    Tag {
        id: id as u32,
        w: 0,
        seq,
    }
}

/// Fixed keys and the fillers around them.
struct Splits<K> {
    key: K,
    fixed: u64,
    stride: u64,
    fixed_ids: Vec<u64>,
    writers: usize,
    /// writer 0 also updates the fixed keys: its update count, published
    /// before each update round
    updates: Progress,
    done: AtomicUsize,
}

impl<K: Fn(u64) -> Vec<u8> + Sync> Splits<K> {
    /// Writer `w` inserts its share of the fillers in random order, 64 per
    /// guard; writer 0 then updates every fixed key.
    fn writer<M: StressMap>(&self, map: &M, w: usize) {
        let _d = DoneOnDrop(&self.done);
        let ids: Vec<u64> = (0..self.fixed * self.stride)
            .filter(|id| id % self.stride != 0 && (id % self.writers as u64) == w as u64)
            .collect();
        let mut rng = Rng::new(w as u64 + 77);
        let fillers: Vec<u64> = rng
            .permutation(ids.len())
            .into_iter()
            .map(|i| ids[i])
            .collect();
        for (n, chunk) in fillers.chunks(64).enumerate() {
            map.session(|sess| {
                for &id in chunk {
                    let t = Tag {
                        id: id as u32,
                        w: w as u32,
                        seq: 1,
                    };
                    assert_eq!((sess.insert)(&(self.key)(id), t), None);
                }
                if w == 0 {
                    self.update_fixed(sess, n as u32 + 1);
                }
            });
        }
    }

    /// Update round `seq`: every fixed key goes from `seq - 1` to `seq`.
    fn update_fixed(&self, sess: &mut Session<'_>, seq: u32) {
        self.updates.publish(0, seq);
        for &id in &self.fixed_ids {
            let old = (sess.insert)(&(self.key)(id), fixed_tag(id, seq))
                .expect("fixed key vanished during update");
            assert_eq!(old, fixed_tag(id, seq - 1));
        }
    }

    /// Reader `r`: every fixed key, over and over until the writers are
    /// done, is present with its own value, never going back, never ahead.
    fn reader<M: StressMap>(&self, map: &M, r: usize) {
        let mut coherence: Coherence<u64> = Coherence::new();
        until_done(&self.done, self.writers, || {
            map.session(|sess| {
                for &id in &self.fixed_ids {
                    let k = (self.key)(id);
                    let t = must_get(sess, &k, || {
                        format!("reader {r}: fixed key {} vanished", hex(&k))
                    });
                    assert_eq!((t.id, t.w), (id as u32, 0), "reader {r}: wrong value");
                    coherence.advance(id, t.seq, || format!("reader {r}: key {id}"));
                    assert!(t.seq <= self.updates.started(0), "value from the future");
                }
            })
        });
    }
}
