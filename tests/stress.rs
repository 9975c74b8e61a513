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
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use common::{Rng, hex, key_hash, scaled, shaped_key};

// ---------------------------------------------------------------------------
// Value tags and the map abstraction used by the drivers
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tag {
    id: u32,
    w: u32,
    seq: u32,
}

impl Tag {
    fn pack(self) -> u64 {
        assert!(self.id < (1 << 28) && self.w < 16);
        ((self.id as u64) << 36) | ((self.w as u64) << 32) | self.seq as u64
    }
    fn unpack(v: u64) -> Tag {
        Tag {
            id: (v >> 36) as u32,
            w: ((v >> 32) & 0xF) as u32,
            seq: v as u32,
        }
    }
}

/// An out-of-line value: the tag, the key it was written for, and a checksum
/// over both (so a freed / reused / torn value is likely detected).
#[derive(Debug)]
struct Val {
    tag: Tag,
    key: Box<[u8]>,
    check: u64,
}

impl Val {
    fn new(key: &[u8], tag: Tag) -> Val {
        Val {
            tag,
            key: key.into(),
            check: key_hash(key) ^ tag.pack().rotate_left(17),
        }
    }
    /// Verify integrity (and, if given, that it belongs to `key`); return the tag.
    fn verify(&self, key: Option<&[u8]>) -> Tag {
        assert_eq!(
            self.check,
            key_hash(&self.key) ^ self.tag.pack().rotate_left(17),
            "corrupt out-of-line value {:?}",
            self.tag
        );
        if let Some(k) = key {
            assert!(
                &*self.key == k,
                "value written for key {} returned for key {}",
                hex(&self.key),
                hex(k)
            );
        }
        self.tag
    }
}

/// Operations available while one guard is held.
struct Session<'a> {
    insert: &'a mut dyn FnMut(&[u8], Tag) -> Option<Tag>,
    get: &'a mut dyn FnMut(&[u8]) -> Option<Tag>,
    remove: &'a mut dyn FnMut(&[u8]) -> Option<Tag>,
}

/// A tree under test, seen through tags.
trait StressMap: Sync {
    /// Run `f` with one guard held for its whole duration.
    fn session<R>(&self, f: impl FnOnce(&mut Session<'_>) -> R) -> R;
    fn count(&self) -> usize;
}

/// Decrements nothing, increments `counter` when dropped (also on unwind), so
/// that readers stop even when a writer panics.
struct DoneOnDrop<'a>(&'a AtomicUsize);
impl Drop for DoneOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------
// Driver 1: concurrent writers (disjoint + overlapping keys) and readers
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct StressCfg {
    writers: usize,
    readers: usize,
    /// keys owned by each writer (interleaved ids: key j*writers + w)
    disjoint: usize,
    /// keys written by every writer
    overlap: usize,
    rounds: usize,
    seed: u64,
}

fn run_stress<M: StressMap>(map: &M, cfg: &StressCfg) {
    let start = Instant::now();
    let nw = cfg.writers as u32;
    assert!((1..16).contains(&nw));
    let disj_total = cfg.disjoint as u32 * nw;
    let universe = disj_total + cfg.overlap as u32;
    let keys: Vec<Vec<u8>> = (0..universe).map(|id| shaped_key(id as u64)).collect();
    let owner = |id: u32| if id < disj_total { Some(id % nw) } else { None };

    // schedules[w][seq - 1] = key id
    let mut first_round_len = 0;
    let schedules: Vec<Vec<u32>> = (0..nw)
        .map(|w| {
            let mut own: Vec<u32> = (0..cfg.disjoint as u32).map(|j| j * nw + w).collect();
            own.extend(disj_total..universe);
            first_round_len = own.len();
            let mut rng = Rng::new(cfg.seed ^ ((w as u64) << 40));
            let mut sched = Vec::with_capacity(own.len() * cfg.rounds);
            for _ in 0..cfg.rounds {
                // Fisher-Yates with the deterministic rng
                for i in (1..own.len()).rev() {
                    let j = rng.below(i as u64 + 1) as usize;
                    own.swap(i, j);
                }
                sched.extend_from_slice(&own);
            }
            assert!(sched.len() < u32::MAX as usize);
            sched
        })
        .collect();
    let progress: Vec<AtomicU32> = (0..nw).map(|_| AtomicU32::new(0)).collect();
    let first_done: Vec<AtomicUsize> = (0..nw).map(|_| AtomicUsize::new(0)).collect();
    let writers_done = AtomicUsize::new(0);

    // Checks that `t`, observed for key `id`, was really written for it.
    // Must be called after the observation (it loads `progress`).
    let validate = |t: Tag, id: u32, what: &str| {
        assert_eq!(
            t.id, id,
            "{what}: value for key id {} observed under key id {id}",
            t.id
        );
        assert!(t.w < nw, "{what}: bogus writer in {t:?}");
        assert!(t.seq >= 1, "{what}: bogus seq in {t:?}");
        let p = progress[t.w as usize].load(Ordering::Acquire);
        assert!(
            t.seq <= p,
            "{what}: observed {t:?} but writer {} has only started write {p} \
             (missing acquire/release synchronization?)",
            t.w
        );
        assert_eq!(
            schedules[t.w as usize][t.seq as usize - 1],
            id,
            "{what}: writer {} never wrote {t:?} to key id {id}",
            t.w
        );
        if let Some(o) = owner(id) {
            assert_eq!(
                t.w, o,
                "{what}: key {id} is only written by writer {o}, saw {t:?}"
            );
        }
    };

    let (lasts, reader_iters) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..nw)
            .map(|w| {
                let (keys, schedules, progress, first_done, writers_done, validate) = (
                    &keys,
                    &schedules,
                    &progress,
                    &first_done,
                    &writers_done,
                    &validate,
                );
                s.spawn(move || {
                    let _done = DoneOnDrop(writers_done);
                    let sched = &schedules[w as usize];
                    let mut last: HashMap<u32, u32> = HashMap::new();
                    // even writers hold a guard for 64 writes, odd ones one guard per write
                    let batch = if w % 2 == 0 { 64 } else { 1 };
                    let mut pos = 0usize;
                    while pos < sched.len() {
                        map.session(|sess| {
                            for _ in 0..batch {
                                if pos == sched.len() {
                                    break;
                                }
                                let id = sched[pos];
                                let seq = pos as u32 + 1;
                                progress[w as usize].store(seq, Ordering::Release);
                                let old = (sess.insert)(&keys[id as usize], Tag { id, w, seq });
                                if owner(id).is_some() {
                                    let expected = last.get(&id).map(|&seq| Tag { id, w, seq });
                                    assert_eq!(
                                        old,
                                        expected,
                                        "writer {w}: wrong previous value for own key {id} ({})",
                                        hex(&keys[id as usize])
                                    );
                                } else {
                                    if last.contains_key(&id) {
                                        assert!(
                                            old.is_some(),
                                            "writer {w}: key {id} it inserted earlier vanished"
                                        );
                                    }
                                    if let Some(t) = old {
                                        validate(t, id, "writer's previous value");
                                    }
                                }
                                last.insert(id, seq);
                                pos += 1;
                                if pos <= first_round_len {
                                    first_done[w as usize].store(pos, Ordering::Release);
                                }
                            }
                        });
                    }
                    last
                })
            })
            .collect();

        let readers: Vec<_> = (0..cfg.readers)
            .map(|r| {
                let (keys, schedules, first_done, writers_done, validate) =
                    (&keys, &schedules, &first_done, &writers_done, &validate);
                s.spawn(move || {
                    let mut rng = Rng::new(cfg.seed.wrapping_add(1000 + r as u64));
                    let mut seen: HashSet<u32> = HashSet::new();
                    let mut seen_vec: Vec<u32> = Vec::new();
                    let mut cursor = 0usize;
                    let mut last_seq: HashMap<(u32, u32), u32> = HashMap::new();
                    let mut iters = 0u64;
                    let mut observe = |t: Tag, id: u32, what: &str| {
                        validate(t, id, what);
                        let e = last_seq.entry((id, t.w)).or_insert(0);
                        assert!(
                            t.seq >= *e,
                            "{what}: key {id} went back in time: saw seq {} of writer {} \
                             after seq {}",
                            t.seq,
                            t.w,
                            *e
                        );
                        *e = t.seq;
                    };
                    loop {
                        let finished = writers_done.load(Ordering::Acquire) == nw as usize;
                        map.session(|sess| {
                            for _ in 0..64 {
                                iters += 1;
                                let id = rng.below(universe as u64) as u32;
                                match (sess.get)(&keys[id as usize]) {
                                    Some(t) => {
                                        observe(t, id, "reader get");
                                        if seen.insert(id) {
                                            seen_vec.push(id);
                                        }
                                    }
                                    None => assert!(
                                        !seen.contains(&id),
                                        "reader {r}: key {id} ({}) disappeared",
                                        hex(&keys[id as usize])
                                    ),
                                }
                                if !seen_vec.is_empty() {
                                    let id2 = seen_vec[cursor % seen_vec.len()];
                                    cursor += 1;
                                    let t = (sess.get)(&keys[id2 as usize]).unwrap_or_else(|| {
                                        panic!(
                                            "reader {r}: key {id2} ({}) disappeared",
                                            hex(&keys[id2 as usize])
                                        )
                                    });
                                    observe(t, id2, "reader re-check");
                                }
                                if iters % 8 == 0 {
                                    let w = rng.below(nw as u64) as usize;
                                    let done = first_done[w].load(Ordering::Acquire);
                                    if done > 0 {
                                        let id3 = schedules[w][rng.below(done as u64) as usize];
                                        let t =
                                            (sess.get)(&keys[id3 as usize]).unwrap_or_else(|| {
                                                panic!(
                                                    "reader {r}: key {id3} ({}) published as \
                                                     inserted by writer {w} is missing",
                                                    hex(&keys[id3 as usize])
                                                )
                                            });
                                        observe(t, id3, "reader published-key check");
                                    }
                                }
                            }
                        });
                        if finished {
                            break;
                        }
                    }
                    // final: everything ever seen is still there
                    map.session(|sess| {
                        for &id in &seen_vec {
                            let t = (sess.get)(&keys[id as usize])
                                .unwrap_or_else(|| panic!("reader {r}: key {id} disappeared"));
                            observe(t, id, "reader final re-check");
                        }
                    });
                    iters
                })
            })
            .collect();

        let lasts: Vec<HashMap<u32, u32>> = writers
            .into_iter()
            .map(|h| h.join().expect("writer panicked"))
            .collect();
        let iters: u64 = readers
            .into_iter()
            .map(|h| h.join().expect("reader panicked"))
            .sum();
        (lasts, iters)
    });

    // Final state.
    map.session(|sess| {
        for id in 0..universe {
            let t = (sess.get)(&keys[id as usize]).unwrap_or_else(|| {
                panic!("key {id} ({}) missing after join", hex(&keys[id as usize]))
            });
            validate(t, id, "final");
            match owner(id) {
                Some(o) => assert_eq!(
                    t,
                    Tag {
                        id,
                        w: o,
                        seq: lasts[o as usize][&id]
                    },
                    "key {id}: final value is not the owner's last write"
                ),
                None => assert!(
                    lasts[t.w as usize].get(&id) == Some(&t.seq),
                    "key {id}: final value {t:?} is not the last write of writer {} \
                     (its last was {:?})",
                    t.w,
                    lasts[t.w as usize].get(&id)
                ),
            }
        }
    });
    assert_eq!(map.count(), universe as usize, "len() after join");
    eprintln!(
        "run_stress {cfg:?}: {} writes, {reader_iters} reader iterations, {:?}",
        schedules.iter().map(Vec::len).sum::<usize>(),
        start.elapsed()
    );
}

/// A spinning barrier that does not deadlock when a participant panics: a
/// panicking thread poisons it (via [`PoisonOnUnwind`]) and every waiter then
/// panics too, so the test fails instead of hanging.
struct Lockstep {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: std::sync::atomic::AtomicBool,
}

impl Lockstep {
    fn new(n: usize) -> Self {
        Lockstep {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: std::sync::atomic::AtomicBool::new(false),
        }
    }
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(
                !self.poisoned.load(Ordering::Acquire),
                "another thread panicked"
            );
            std::thread::yield_now();
        }
    }
}

struct PoisonOnUnwind<'a>(&'a Lockstep);
impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Release);
        }
    }
}

// ---------------------------------------------------------------------------
// Driver 2: racing layer creation (all threads add keys sharing a fresh 8-byte
// slice in lockstep)
// ---------------------------------------------------------------------------

fn layer_keys(round: usize, t: usize) -> [Vec<u8>; 4] {
    let p = (round as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .to_be_bytes();
    let mut a = p.to_vec(); // p + t zero bytes (t == 0: exactly the slice)
    a.extend(std::iter::repeat_n(0u8, t));
    let mut b = p.to_vec(); // p + "commonXX" + t  (layer 1, short)
    b.extend_from_slice(b"commonXX");
    b.push(t as u8);
    let mut c = p.to_vec(); // p + 16 common bytes + be(t)  (layer 2)
    c.extend_from_slice(b"commonXXcommonYY");
    c.extend_from_slice(&(t as u64).to_be_bytes());
    let mut d = p.to_vec(); // p + long per-thread suffix (suffix storage)
    d.extend_from_slice(format!("-long-suffix-of-thread-{t}-{}", "x".repeat(t * 5)).as_bytes());
    [a, b, c, d]
}

fn run_layer_race<M: StressMap>(map: &M, threads: usize, rounds: usize) {
    let start = Instant::now();
    let barrier = Lockstep::new(threads);
    let tag = |round: usize, t: usize, i: usize| Tag {
        id: ((round * threads + t) * 4 + i) as u32,
        w: t as u32,
        seq: round as u32 + 1,
    };
    std::thread::scope(|s| {
        for t in 0..threads {
            let barrier = &barrier;
            s.spawn(move || {
                let _poison = PoisonOnUnwind(barrier);
                for round in 0..rounds {
                    barrier.wait();
                    map.session(|sess| {
                        for (i, k) in layer_keys(round, t).iter().enumerate() {
                            assert_eq!(
                                (sess.insert)(k, tag(round, t, i)),
                                None,
                                "round {round} thread {t}: fresh key {} already present",
                                hex(k)
                            );
                        }
                        for (i, k) in layer_keys(round, t).iter().enumerate() {
                            assert_eq!(
                                (sess.get)(k),
                                Some(tag(round, t, i)),
                                "round {round} thread {t}: own key {} not found",
                                hex(k)
                            );
                        }
                        // everything of the previous round (finished before the barrier)
                        if round > 0 {
                            for u in 0..threads {
                                for (i, k) in layer_keys(round - 1, u).iter().enumerate() {
                                    assert_eq!(
                                        (sess.get)(k),
                                        Some(tag(round - 1, u, i)),
                                        "round {round} thread {t}: key {} of round {} \
                                         thread {u}",
                                        hex(k),
                                        round - 1
                                    );
                                }
                            }
                        }
                        // the keys of other threads in this round: absent or exact
                        for u in 0..threads {
                            for (i, k) in layer_keys(round, u).iter().enumerate() {
                                let got = (sess.get)(k);
                                assert!(
                                    got.is_none() || got == Some(tag(round, u, i)),
                                    "round {round}: key {} has {got:?}",
                                    hex(k)
                                );
                            }
                        }
                    });
                }
            });
        }
    });
    map.session(|sess| {
        for round in 0..rounds {
            for t in 0..threads {
                for (i, k) in layer_keys(round, t).iter().enumerate() {
                    assert_eq!((sess.get)(k), Some(tag(round, t, i)), "final {}", hex(k));
                }
            }
        }
    });
    assert_eq!(map.count(), rounds * threads * 4);
    eprintln!(
        "run_layer_race threads={threads} rounds={rounds}: {:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Driver 3: hammer a handful of keys (constant replacement of out-of-line
// values while readers dereference them)
// ---------------------------------------------------------------------------

fn run_hot_keys<M: StressMap>(map: &M, cfg: &StressCfg) {
    // Same checks as run_stress, tiny universe, many rounds.
    run_stress(map, cfg);
}

// ---------------------------------------------------------------------------
// Driver 4: readers spin on keys while a writer restructures around them
// (suffix -> layer conversion, leaf splits). A key, once published, must be
// visible with its exact value at every instant.
// ---------------------------------------------------------------------------

/// The pair of keys of round `r`: `a` is inserted first (alone in its slice,
/// so typically stored with a suffix), `b` shares `a`'s slice(s) and forces
/// the slot of `a` to become a new layer (or a chain of layers).
fn conversion_pair(r: usize) -> (Vec<u8>, Vec<u8>) {
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

fn run_conversion_under_readers<M: StressMap>(map: &M, rounds: usize, readers: usize) {
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
fn run_splits_under_readers<M: StressMap>(
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

// ---------------------------------------------------------------------------
// Driver 5: churn with removes. Small groups of keys share 8/16-byte prefixes
// (so their layers and leaves empty and are collected over and over) while
// other writers insert into the same groups and readers look for stable keys.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct ChurnCfg {
    writers: usize,
    readers: usize,
    groups: usize,
    ops_per_writer: usize,
    /// percentage of inserts among writes (the rest are removes)
    insert_pct: u64,
    seed: u64,
}

const CHURN_SLOTS: usize = 4;

/// Key `slot` of writer `w` in group `g`; all keys of a group share the
/// group's 8-byte prefix; slots 1-3 also share a second slice.
fn churn_key(g: usize, w: usize, slot: usize) -> Vec<u8> {
    let mut k = ((g as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        .to_be_bytes()
        .to_vec();
    match slot {
        0 => k.push(w as u8),
        1 => {
            k.extend_from_slice(b"deeper--");
            k.push(w as u8);
        }
        2 => {
            k.extend_from_slice(b"deeper--");
            k.extend_from_slice(format!("a-long-suffix-{w}").as_bytes());
        }
        _ => {
            k.extend_from_slice(b"deeper--deepest-");
            k.extend_from_slice(&(w as u64).to_be_bytes());
        }
    }
    k
}

/// A never-removed key living in group `g` (only for even groups) next to the
/// churned ones.
fn stable_key(g: usize) -> Vec<u8> {
    let mut k = churn_key(g, 0, 1);
    k.truncate(16);
    k.extend_from_slice(b"stable");
    k
}

fn run_churn<M: StressMap>(map: &M, cfg: &ChurnCfg) {
    let start = Instant::now();
    let nw = cfg.writers;
    let id_of = |g: usize, w: usize, slot: usize| ((g * nw + w) * CHURN_SLOTS + slot) as u32;
    let nkeys = cfg.groups * nw * CHURN_SLOTS;
    let mut keys: Vec<Vec<u8>> = vec![Vec::new(); nkeys];
    for g in 0..cfg.groups {
        for w in 0..nw {
            for slot in 0..CHURN_SLOTS {
                keys[id_of(g, w, slot) as usize] = churn_key(g, w, slot);
            }
        }
    }
    let owner = |id: u32| (id as usize / CHURN_SLOTS) % nw;
    let stable: Vec<(usize, Vec<u8>)> = (0..cfg.groups)
        .step_by(2)
        .map(|g| (g, stable_key(g)))
        .collect();
    let stable_tag = |g: usize| Tag {
        id: (nkeys + g) as u32,
        w: 15,
        seq: 1,
    };
    // schedules[w][seq - 1] = (key id, is_insert)
    let schedules: Vec<Vec<(u32, bool)>> = (0..nw)
        .map(|w| {
            let mut rng = Rng::new(cfg.seed ^ ((w as u64) << 32));
            (0..cfg.ops_per_writer)
                .map(|_| {
                    let g = rng.below(cfg.groups as u64) as usize;
                    let slot = rng.below(CHURN_SLOTS as u64) as usize;
                    (id_of(g, w, slot), rng.below(100) < cfg.insert_pct)
                })
                .collect()
        })
        .collect();
    let progress: Vec<AtomicU32> = (0..nw).map(|_| AtomicU32::new(0)).collect();
    let writers_done = AtomicUsize::new(0);

    map.session(|sess| {
        for (g, k) in &stable {
            assert_eq!((sess.insert)(k, stable_tag(*g)), None);
        }
    });

    let validate = |t: Tag, id: u32, what: &str| {
        assert_eq!(
            t.id, id,
            "{what}: value of key id {} found under key id {id}",
            t.id
        );
        let w = owner(id);
        assert_eq!(
            t.w as usize, w,
            "{what}: key {id} is only written by writer {w}: {t:?}"
        );
        assert!(t.seq >= 1);
        let p = progress[w].load(Ordering::Acquire);
        assert!(
            t.seq <= p,
            "{what}: {t:?} observed before writer {w} started it ({p})"
        );
        assert_eq!(
            schedules[w][t.seq as usize - 1],
            (id, true),
            "{what}: writer {w} never inserted {t:?}"
        );
    };

    let finals =
        std::thread::scope(|s| {
            let writers: Vec<_> =
                (0..nw)
                    .map(|w| {
                        let (keys, schedules, progress, writers_done) =
                            (&keys, &schedules, &progress, &writers_done);
                        s.spawn(move || {
                            let _d = DoneOnDrop(writers_done);
                            let mut state: HashMap<u32, Tag> = HashMap::new();
                            let sched = &schedules[w];
                            let mut pos = 0;
                            let batch = if w % 2 == 0 { 32 } else { 1 };
                            while pos < sched.len() {
                                map.session(|sess| {
                            for _ in 0..batch {
                                if pos == sched.len() {
                                    break;
                                }
                                let (id, ins) = sched[pos];
                                let seq = pos as u32 + 1;
                                let k = &keys[id as usize];
                                progress[w].store(seq, Ordering::Release);
                                if ins {
                                    let t = Tag { id, w: w as u32, seq };
                                    let old = (sess.insert)(k, t);
                                    assert_eq!(
                                        old,
                                        state.insert(id, t),
                                        "writer {w} op {seq}: insert {} returned a wrong \
                                         previous value",
                                        hex(k)
                                    );
                                } else {
                                    let old = (sess.remove)(k);
                                    assert_eq!(
                                        old,
                                        state.remove(&id),
                                        "writer {w} op {seq}: remove {} returned a wrong value",
                                        hex(k)
                                    );
                                }
                                pos += 1;
                            }
                        });
                            }
                            state
                        })
                    })
                    .collect();
            for r in 0..cfg.readers {
                let (keys, stable, writers_done, validate) =
                    (&keys, &stable, &writers_done, &validate);
                s.spawn(move || {
                    let mut rng = Rng::new(cfg.seed.wrapping_add(500 + r as u64));
                    let mut last: HashMap<u32, u32> = HashMap::new();
                    loop {
                        let finished = writers_done.load(Ordering::Acquire) == nw;
                        map.session(|sess| {
                            for i in 0..64 {
                                let id = rng.below(nkeys as u64) as u32;
                                if let Some(t) = (sess.get)(&keys[id as usize]) {
                                    validate(t, id, "reader");
                                    let l = last.entry(id).or_insert(0);
                                    assert!(
                                        t.seq >= *l,
                                        "reader {r}: key {id} went back in time ({} after {})",
                                        t.seq,
                                        *l
                                    );
                                    *l = t.seq;
                                }
                                if i % 4 == 0 {
                                    let (g, k) = &stable[rng.below(stable.len() as u64) as usize];
                                    assert_eq!(
                                        (sess.get)(k),
                                        Some(stable_tag(*g)),
                                        "reader {r}: stable key {} of group {g} not visible",
                                        hex(k)
                                    );
                                }
                            }
                        });
                        if finished {
                            break;
                        }
                    }
                });
            }
            writers
                .into_iter()
                .map(|h| h.join().expect("writer panicked"))
                .collect::<Vec<_>>()
        });

    // exact final state
    let mut present = stable.len();
    map.session(|sess| {
        for id in 0..nkeys as u32 {
            let expected = finals[owner(id)].get(&id).copied();
            present += expected.is_some() as usize;
            assert_eq!(
                (sess.get)(&keys[id as usize]),
                expected,
                "final value of key {id} ({})",
                hex(&keys[id as usize])
            );
        }
        for (g, k) in &stable {
            assert_eq!(
                (sess.get)(k),
                Some(stable_tag(*g)),
                "final stable key {}",
                hex(k)
            );
        }
    });
    assert_eq!(map.count(), present, "len() after join");
    // remove everything: the tree must become empty (and stay usable)
    map.session(|sess| {
        for (id, k) in keys.iter().enumerate() {
            let expected = finals[owner(id as u32)].get(&(id as u32)).copied();
            assert_eq!((sess.remove)(k), expected, "final remove {}", hex(k));
        }
        for (g, k) in &stable {
            assert_eq!((sess.remove)(k), Some(stable_tag(*g)));
        }
    });
    assert_eq!(map.count(), 0);
    map.session(|sess| {
        for (id, k) in keys.iter().enumerate() {
            assert_eq!((sess.get)(k), None, "key {id} after removing everything");
        }
        let t = Tag {
            id: 0,
            w: 0,
            seq: 1,
        };
        assert_eq!((sess.insert)(&keys[0], t), None);
        assert_eq!((sess.get)(&keys[0]), Some(t));
    });
    eprintln!(
        "run_churn {cfg:?}: {} ops, {:?}",
        nw * cfg.ops_per_writer,
        start.elapsed()
    );
}

for_each_backend! {
    use std::cell::RefCell;

    impl StressMap for ITree<u64> {
        fn session<R>(&self, f: impl FnOnce(&mut Session<'_>) -> R) -> R {
            let g = self.guard();
            let mut ins = |k: &[u8], t: Tag| self.insert(k, t.pack(), &g).map(Tag::unpack);
            let mut get = |k: &[u8]| self.get(k, &g).map(Tag::unpack);
            let mut rem = |k: &[u8]| self.remove(k, &g).map(Tag::unpack);
            f(&mut Session { insert: &mut ins, get: &mut get, remove: &mut rem })
        }
        fn count(&self) -> usize {
            self.len()
        }
    }

    impl StressMap for Tree<Val> {
        fn session<R>(&self, f: impl FnOnce(&mut Session<'_>) -> R) -> R {
            let g = self.guard();
            // every reference obtained under `g`, re-verified before `g` is dropped
            let held: RefCell<Vec<(&Val, Tag)>> = RefCell::new(Vec::new());
            let r = {
                let mut ins = |k: &[u8], t: Tag| {
                    self.insert(k, Val::new(k, t), &g).map(|v| {
                        let tag = v.verify(Some(k));
                        held.borrow_mut().push((v, tag));
                        tag
                    })
                };
                let mut get = |k: &[u8]| {
                    self.get(k, &g).map(|v| {
                        let tag = v.verify(Some(k));
                        held.borrow_mut().push((v, tag));
                        tag
                    })
                };
                let mut rem = |k: &[u8]| {
                    self.remove(k, &g).map(|v| {
                        let tag = v.verify(Some(k));
                        held.borrow_mut().push((v, tag));
                        tag
                    })
                };
                f(&mut Session { insert: &mut ins, get: &mut get, remove: &mut rem })
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
        let mk = |k: u64, v: u64| format!("key={k:08};val={v};{}", "p".repeat((v % 50) as usize));
        let check = |k: u64, s: &str| {
            let prefix = format!("key={k:08};val=");
            assert!(s.starts_with(&prefix), "value {s:?} does not belong to key {k}");
            let rest = &s[prefix.len()..];
            let (v, pad) = rest.split_once(';').expect("corrupt value");
            let v: u64 = v.parse().expect("corrupt value");
            assert_eq!(pad.len() as u64, v % 50, "corrupt value {s:?}");
            v
        };
        {
            let g = t.guard();
            for k in 0..nkeys {
                assert!(t.insert(&k.to_be_bytes(), mk(k, 0), &g).is_none());
            }
        }
        let done = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for w in 0..2u64 {
                let (t, done) = (&t, &done);
                s.spawn(move || {
                    let _d = DoneOnDrop(done);
                    for i in 0..writes {
                        let k = (i * 7 + w) % nkeys;
                        let g = t.guard();
                        let old = t.insert(&k.to_be_bytes(), mk(k, i + 1), &g).expect("present");
                        check(k, old);
                    }
                });
            }
            for r in 0..4u64 {
                let (t, done) = (&t, &done);
                s.spawn(move || {
                    let mut rng = Rng::new(r);
                    loop {
                        let finished = done.load(Ordering::Acquire) == 2;
                        let g = t.guard();
                        let mut held: Vec<(u64, &String, String)> = Vec::new();
                        for _ in 0..256 {
                            let k = rng.below(nkeys);
                            let v = t.get(&k.to_be_bytes(), &g).expect("present");
                            check(k, v);
                            held.push((k, v, v.clone()));
                        }
                        // let writers replace (and retire) what we hold
                        std::thread::yield_now();
                        for (k, v, copy) in &held {
                            assert_eq!(*v, copy, "value of key {k} changed under a guard");
                            check(*k, v);
                        }
                        drop(held);
                        drop(g);
                        if finished {
                            break;
                        }
                    }
                });
            }
        });
        assert_eq!(t.len(), nkeys as usize);
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
