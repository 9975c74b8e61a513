//! Driver 5: churn with removes. Small groups of keys share 8/16-byte
//! prefixes (so their layers and leaves empty and are collected over and
//! over) while other writers insert into the same groups and readers look
//! for stable keys.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use crate::check::{Coherence, Progress, batched, join_all, until_done};
use crate::common::{Rng, hex};
use crate::map::{DoneOnDrop, Session, StressMap, Tag};

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
/// group's 8-byte prefix; slots 1-3 also share a second slice, and slot 3
/// ten more.
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
            // Slot 3 keys of a group share 88 bytes: a chain of ten layers
            // that inserts build in one pass and removes collect in one.
            k.extend_from_slice(b"deeper--deepest-");
            k.extend_from_slice(&[b'z'; 64]);
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
    let plan = ChurnPlan::new(cfg);
    map.session(|sess| {
        for (g, k) in &plan.stable {
            assert_eq!((sess.insert)(k, plan.stable_tag(*g)), None);
        }
    });
    let finals = std::thread::scope(|s| {
        let plan = &plan;
        let writers: Vec<_> = (0..plan.nw)
            .map(|w| s.spawn(move || plan.writer(map, w)))
            .collect();
        for r in 0..cfg.readers {
            s.spawn(move || plan.reader(map, cfg, r));
        }
        join_all(writers, "writer")
    });
    plan.check_final(map, &finals);
    plan.remove_all(map, &finals);
    eprintln!(
        "run_churn {cfg:?}: {} ops, {:?}",
        plan.nw * cfg.ops_per_writer,
        start.elapsed()
    );
}

/// Key id of slot `slot` of writer `w` in group `g`, with `nw` writers.
fn id_of(nw: usize, g: usize, w: usize, slot: usize) -> u32 {
    ((g * nw + w) * CHURN_SLOTS + slot) as u32
}

/// The keys, the writers' schedules and what the writers publish.
struct ChurnPlan {
    nw: usize,
    nkeys: usize,
    /// `keys[id_of(g, w, slot)] = churn_key(g, w, slot)`
    keys: Vec<Vec<u8>>,
    /// the never-removed keys, with their groups
    stable: Vec<(usize, Vec<u8>)>,
    /// `schedules[w][seq - 1]` = (key id, is_insert)
    schedules: Vec<Vec<(u32, bool)>>,
    progress: Progress,
    writers_done: AtomicUsize,
}

impl ChurnPlan {
    fn new(cfg: &ChurnCfg) -> ChurnPlan {
        let nw = cfg.writers;
        let nkeys = cfg.groups * nw * CHURN_SLOTS;
        let mut keys: Vec<Vec<u8>> = vec![Vec::new(); nkeys];
        for g in 0..cfg.groups {
            for w in 0..nw {
                for slot in 0..CHURN_SLOTS {
                    keys[id_of(nw, g, w, slot) as usize] = churn_key(g, w, slot);
                }
            }
        }
        let schedule = |w: usize| -> Vec<(u32, bool)> {
            let mut rng = Rng::new(cfg.seed ^ ((w as u64) << 32));
            (0..cfg.ops_per_writer)
                .map(|_| {
                    let g = rng.below(cfg.groups as u64) as usize;
                    let slot = rng.below(CHURN_SLOTS as u64) as usize;
                    (id_of(nw, g, w, slot), rng.below(100) < cfg.insert_pct)
                })
                .collect()
        };
        ChurnPlan {
            nw,
            nkeys,
            keys,
            stable: (0..cfg.groups)
                .step_by(2)
                .map(|g| (g, stable_key(g)))
                .collect(),
            schedules: (0..nw).map(schedule).collect(),
            progress: Progress::new(nw),
            writers_done: AtomicUsize::new(0),
        }
    }

    /// The only writer of key `id`.
    fn owner(&self, id: u32) -> usize {
        (id as usize / CHURN_SLOTS) % self.nw
    }

    fn stable_tag(&self, g: usize) -> Tag {
        Tag {
            id: (self.nkeys + g) as u32,
            w: 15,
            seq: 1,
        }
    }

    /// Checks that `t`, observed for key `id`, was inserted there by its
    /// owner. Must be called after the observation (it loads `progress`).
    fn validate(&self, t: Tag, id: u32, what: &str) {
        assert_eq!(
            t.id, id,
            "{what}: value of key id {} found under key id {id}",
            t.id
        );
        let w = self.owner(id);
        assert_eq!(
            t.w as usize, w,
            "{what}: key {id} is only written by writer {w}: {t:?}"
        );
        self.progress.check_started(t, what);
        assert_eq!(
            self.schedules[w][t.seq as usize - 1],
            (id, true),
            "{what}: writer {w} never inserted {t:?}"
        );
    }

    /// Writer `w` follows its schedule (even writers hold a guard for 32
    /// operations, odd ones one guard per operation), checking every value
    /// an insert replaced or a remove took against its own record; returns
    /// that record (the value of each of its present keys).
    fn writer<M: StressMap>(&self, map: &M, w: usize) -> HashMap<u32, Tag> {
        let _d = DoneOnDrop(&self.writers_done);
        let mut state: HashMap<u32, Tag> = HashMap::new();
        let sched = &self.schedules[w];
        let batch = if w % 2 == 0 { 32 } else { 1 };
        batched(map, sched.len(), batch, |sess, pos| {
            let ((id, ins), seq) = (sched[pos], pos as u32 + 1);
            let k = &self.keys[id as usize];
            self.progress.publish(w as u32, seq);
            if ins {
                let t = Tag {
                    id,
                    w: w as u32,
                    seq,
                };
                let old = (sess.insert)(k, t);
                assert_eq!(
                    old,
                    state.insert(id, t),
                    "writer {w} op {seq}: insert {} returned a wrong previous value",
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
        });
        state
    }

    /// A reader: random churned keys (values as inserted, never going back)
    /// and stable keys (always there), until the writers are done.
    fn reader<M: StressMap>(&self, map: &M, cfg: &ChurnCfg, r: usize) {
        let mut rng = Rng::new(cfg.seed.wrapping_add(500 + r as u64));
        let mut coherence: Coherence<u32> = Coherence::new();
        until_done(&self.writers_done, self.nw, || {
            map.session(|sess| {
                self.reader_batch(sess, &mut rng, &mut coherence, r);
                for i in 0..64 {
                    let id = rng.below(self.nkeys as u64) as u32;
                    if let Some(t) = (sess.get)(&self.keys[id as usize]) {
                        self.validate(t, id, "reader");
                        coherence.advance(id, t.seq, || format!("reader {r}: key {id}"));
                    }
                    if i % 4 == 0 {
                        let (g, k) = &self.stable[rng.below(self.stable.len() as u64) as usize];
                        self.check_stable(sess, *g, k, || format!("reader {r}: stable key"));
                    }
                }
            })
        });
    }

    /// The reader's checks on a batch looked up together (`get_batch`):
    /// distinct random churned keys and, every fourth, a stable key.
    fn reader_batch(
        &self,
        sess: &mut Session<'_>,
        rng: &mut Rng,
        coherence: &mut Coherence<u32>,
        r: usize,
    ) {
        let mut ids: Vec<u32> = Vec::with_capacity(24);
        let mut keys: Vec<&[u8]> = Vec::with_capacity(32);
        let mut stable: Vec<usize> = Vec::new();
        for i in 0..24 {
            let id = rng.below(self.nkeys as u64) as u32;
            // Distinct keys: two lookups of one key may finish in either order.
            if !ids.contains(&id) {
                ids.push(id);
                keys.push(&self.keys[id as usize]);
            }
            if i % 4 == 0 {
                let g = rng.below(self.stable.len() as u64) as usize;
                stable.push(g);
            }
        }
        let churned = keys.len();
        keys.extend(stable.iter().map(|&g| &self.stable[g].1[..]));
        let mut out = vec![None; keys.len()];
        (sess.get_batch)(&keys, &mut out);
        for (&id, got) in ids.iter().zip(&out) {
            if let Some(t) = *got {
                self.validate(t, id, "reader get_batch");
                coherence.advance(id, t.seq, || format!("reader {r}: key {id} (get_batch)"));
            }
        }
        for (&g, got) in stable.iter().zip(&out[churned..]) {
            let (group, k) = &self.stable[g];
            assert_eq!(
                *got,
                Some(self.stable_tag(*group)),
                "reader {r}: stable key {} of group {group} (get_batch)",
                hex(k)
            );
        }
    }

    /// The stable key `k` of group `g` holds its value.
    fn check_stable(
        &self,
        sess: &mut Session<'_>,
        g: usize,
        k: &[u8],
        what: impl FnOnce() -> String,
    ) {
        let got = (sess.get)(k);
        assert_eq!(
            got,
            Some(self.stable_tag(g)),
            "{} {} of group {g}",
            what(),
            hex(k)
        );
    }

    /// The value key `id` ends with: its owner's record.
    fn expected(&self, finals: &[HashMap<u32, Tag>], id: u32) -> Option<Tag> {
        finals[self.owner(id)].get(&id).copied()
    }

    /// After the join: exactly the writers' records and the stable keys,
    /// and `len()` counts them.
    fn check_final<M: StressMap>(&self, map: &M, finals: &[HashMap<u32, Tag>]) {
        let mut present = self.stable.len();
        map.session(|sess| {
            for id in 0..self.nkeys as u32 {
                let expected = self.expected(finals, id);
                present += expected.is_some() as usize;
                let k = &self.keys[id as usize];
                assert_eq!(
                    (sess.get)(k),
                    expected,
                    "final value of key {id} ({})",
                    hex(k)
                );
            }
            for (g, k) in &self.stable {
                self.check_stable(sess, *g, k, || "final stable key".to_string());
            }
        });
        assert_eq!(map.count(), present, "len() after join");
    }

    /// Removing everything empties the tree, which stays usable.
    fn remove_all<M: StressMap>(&self, map: &M, finals: &[HashMap<u32, Tag>]) {
        map.session(|sess| {
            for (id, k) in self.keys.iter().enumerate() {
                let expected = self.expected(finals, id as u32);
                assert_eq!((sess.remove)(k), expected, "final remove {}", hex(k));
            }
            for (g, k) in &self.stable {
                assert_eq!((sess.remove)(k), Some(self.stable_tag(*g)));
            }
        });
        assert_eq!(map.count(), 0);
        map.session(|sess| {
            for (id, k) in self.keys.iter().enumerate() {
                assert_eq!((sess.get)(k), None, "key {id} after removing everything");
            }
            let t = Tag {
                id: 0,
                w: 0,
                seq: 1,
            };
            assert_eq!((sess.insert)(&self.keys[0], t), None);
            assert_eq!((sess.get)(&self.keys[0]), Some(t));
        });
    }
}
