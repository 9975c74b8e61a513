//! Driver 5: churn with removes. Small groups of keys share 8/16-byte
//! prefixes (so their layers and leaves empty and are collected over and
//! over) while other writers insert into the same groups and readers look
//! for stable keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use crate::common::{Rng, hex};
use crate::map::{DoneOnDrop, StressMap, Tag};

#[derive(Clone, Debug)]
pub(crate) struct ChurnCfg {
    pub(crate) writers: usize,
    pub(crate) readers: usize,
    pub(crate) groups: usize,
    pub(crate) ops_per_writer: usize,
    /// percentage of inserts among writes (the rest are removes)
    pub(crate) insert_pct: u64,
    pub(crate) seed: u64,
}

pub(crate) const CHURN_SLOTS: usize = 4;

/// Key `slot` of writer `w` in group `g`; all keys of a group share the
/// group's 8-byte prefix; slots 1-3 also share a second slice.
pub(crate) fn churn_key(g: usize, w: usize, slot: usize) -> Vec<u8> {
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
pub(crate) fn stable_key(g: usize) -> Vec<u8> {
    let mut k = churn_key(g, 0, 1);
    k.truncate(16);
    k.extend_from_slice(b"stable");
    k
}

pub(crate) fn run_churn<M: StressMap>(map: &M, cfg: &ChurnCfg) {
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
