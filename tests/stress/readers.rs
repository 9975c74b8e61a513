//! Driver 4: readers spin on keys while a writer restructures around them
//! (suffix -> layer conversion, leaf splits). A key, once published, must be
//! visible with its exact value at every instant.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use crate::common::{Rng, hex};
use crate::map::{DoneOnDrop, StressMap, Tag};

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
    let pub_a = AtomicUsize::new(0); // rounds whose `a` is inserted
    let pub_b = AtomicUsize::new(0); // rounds whose `b` is inserted
    let done = AtomicUsize::new(0);
    let tag = |r: usize, which: u32| Tag {
        id: r as u32,
        w: which,
        seq: 1,
    };
    let checks = std::thread::scope(|s| {
        s.spawn(|| {
            let _d = DoneOnDrop(&done);
            for r in 0..rounds {
                let (a, b) = conversion_pair(r);
                map.session(|sess| {
                    assert_eq!((sess.insert)(&a, tag(r, 0)), None, "a of round {r}");
                    pub_a.store(r + 1, Ordering::Release);
                    // widen the window in which only `a` exists
                    for _ in 0..(r % 4) * 64 {
                        std::hint::spin_loop();
                    }
                    assert_eq!((sess.insert)(&b, tag(r, 1)), None, "b of round {r}");
                    pub_b.store(r + 1, Ordering::Release);
                });
            }
        });
        let hs: Vec<_> = (0..readers)
            .map(|i| {
                let (pub_a, pub_b, done) = (&pub_a, &pub_b, &done);
                s.spawn(move || {
                    let mut checks = 0u64;
                    let mut rng = Rng::new(i as u64);
                    loop {
                        let finished = done.load(Ordering::Acquire) == 1;
                        map.session(|sess| {
                            for _ in 0..32 {
                                let na = pub_a.load(Ordering::Acquire);
                                let nb = pub_b.load(Ordering::Acquire);
                                // the latest rounds (being converted right now) and an older one
                                let mut rs = vec![na.wrapping_sub(1), na.wrapping_sub(2)];
                                if na > 0 {
                                    rs.push(rng.below(na as u64) as usize);
                                }
                                for r in rs.into_iter().filter(|&r| r < na) {
                                    let (a, b) = conversion_pair(r);
                                    assert_eq!(
                                        (sess.get)(&a),
                                        Some(tag(r, 0)),
                                        "reader {i}: key a {} of round {r} (variant {}) not \
                                         visible (b published: {})",
                                        hex(&a),
                                        r % 6,
                                        r < nb
                                    );
                                    let gb = (sess.get)(&b);
                                    if r < nb {
                                        assert_eq!(
                                            gb,
                                            Some(tag(r, 1)),
                                            "reader {i}: key b {} of round {r} (variant {})",
                                            hex(&b),
                                            r % 6
                                        );
                                    } else {
                                        assert!(gb.is_none() || gb == Some(tag(r, 1)));
                                    }
                                    checks += 1;
                                }
                            }
                        });
                        if finished {
                            break;
                        }
                    }
                    checks
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("reader panicked"))
            .sum::<u64>()
    });
    map.session(|sess| {
        for r in 0..rounds {
            let (a, b) = conversion_pair(r);
            assert_eq!((sess.get)(&a), Some(tag(r, 0)), "final a {}", hex(&a));
            assert_eq!((sess.get)(&b), Some(tag(r, 1)), "final b {}", hex(&b));
        }
    });
    assert_eq!(map.count(), 2 * rounds);
    eprintln!(
        "run_conversion_under_readers rounds={rounds}: {checks} reader checks, {:?}",
        start.elapsed()
    );
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
    // fixed keys: id = i * stride; fillers: the ids in between
    let fixed_ids: Vec<u64> = (0..fixed).map(|i| i * stride).collect();
    let keyref = &key;
    // writer 0 also updates the fixed keys; `progress` = its update count,
    // published before each update round
    let updates = AtomicU32::new(0);
    let done = AtomicUsize::new(0);
    map.session(|sess| {
        for &id in &fixed_ids {
            assert_eq!(
                (sess.insert)(
                    &key(id),
                    Tag {
                        id: id as u32,
                        w: 0,
                        seq: 0
                    }
                ),
                None
            );
        }
    });
    std::thread::scope(|s| {
        for w in 0..writers {
            let (done, updates, fixed_ids) = (&done, &updates, &fixed_ids);
            s.spawn(move || {
                let _d = DoneOnDrop(done);
                let mut fillers: Vec<u64> = (0..fixed * stride)
                    .filter(|id| id % stride != 0 && (id % writers as u64) == w as u64)
                    .collect();
                let mut rng = Rng::new(w as u64 + 77);
                for i in (1..fillers.len()).rev() {
                    fillers.swap(i, rng.below(i as u64 + 1) as usize);
                }
                for (n, chunk) in fillers.chunks(64).enumerate() {
                    map.session(|sess| {
                        for &id in chunk {
                            let t = Tag {
                                id: id as u32,
                                w: w as u32,
                                seq: 1,
                            };
                            assert_eq!((sess.insert)(&keyref(id), t), None);
                        }
                        if w == 0 {
                            let seq = n as u32 + 1;
                            updates.store(seq, Ordering::Release);
                            for &id in fixed_ids {
                                let old = (sess.insert)(
                                    &keyref(id),
                                    Tag {
                                        id: id as u32,
                                        w: 0,
                                        seq,
                                    },
                                )
                                .expect("fixed key vanished during update");
                                assert_eq!(
                                    old,
                                    Tag {
                                        id: id as u32,
                                        w: 0,
                                        seq: seq - 1
                                    }
                                );
                            }
                        }
                    });
                }
            });
        }
        for r in 0..readers {
            let (done, updates, fixed_ids) = (&done, &updates, &fixed_ids);
            s.spawn(move || {
                let mut last: Vec<u32> = vec![0; fixed_ids.len()];
                loop {
                    let finished = done.load(Ordering::Acquire) == writers;
                    map.session(|sess| {
                        for (j, &id) in fixed_ids.iter().enumerate() {
                            let t = (sess.get)(&keyref(id)).unwrap_or_else(|| {
                                panic!("reader {r}: fixed key {} vanished", hex(&keyref(id)))
                            });
                            assert_eq!((t.id, t.w), (id as u32, 0), "reader {r}: wrong value");
                            assert!(t.seq >= last[j], "reader {r}: key {id} went back in time");
                            assert!(
                                t.seq <= updates.load(Ordering::Acquire),
                                "value from the future"
                            );
                            last[j] = t.seq;
                        }
                    });
                    if finished {
                        break;
                    }
                }
            });
        }
    });
    map.session(|sess| {
        for id in 0..fixed * stride {
            let t = (sess.get)(&key(id)).unwrap_or_else(|| panic!("key {id} missing"));
            assert_eq!(t.id, id as u32);
        }
    });
    assert_eq!(map.count(), (fixed * stride) as usize);
    eprintln!("run_splits_under_readers: {:?}", start.elapsed());
}
