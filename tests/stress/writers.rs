//! Driver 1: concurrent writers (disjoint and overlapping keys) and readers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use crate::common::{Rng, hex, shaped_key};
use crate::map::{DoneOnDrop, StressMap, Tag};

#[derive(Clone, Debug)]
pub(crate) struct StressCfg {
    pub(crate) writers: usize,
    pub(crate) readers: usize,
    /// keys owned by each writer (interleaved ids: key j*writers + w)
    pub(crate) disjoint: usize,
    /// keys written by every writer
    pub(crate) overlap: usize,
    pub(crate) rounds: usize,
    pub(crate) seed: u64,
}

pub(crate) fn run_stress<M: StressMap>(map: &M, cfg: &StressCfg) {
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
