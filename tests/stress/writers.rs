//! Driver 1: concurrent writers (disjoint and overlapping keys) and readers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::check::{Coherence, Progress, batched, join_all, must_get, until_done};
use crate::common::{Rng, hex, shaped_key};
use crate::map::{DoneOnDrop, Session, StressMap, Tag};

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
    let plan = Plan::new(cfg);
    let (lasts, reader_iters) = std::thread::scope(|s| {
        let plan = &plan;
        let writers: Vec<_> = (0..plan.nw)
            .map(|w| s.spawn(move || plan.writer(map, w)))
            .collect();
        let readers: Vec<_> = (0..cfg.readers)
            .map(|r| s.spawn(move || plan.reader(map, cfg, r)))
            .collect();
        let lasts = join_all(writers, "writer");
        (lasts, join_all(readers, "reader").into_iter().sum::<u64>())
    });
    plan.check_final(map, &lasts);
    eprintln!(
        "run_stress {cfg:?}: {} writes, {reader_iters} reader iterations, {:?}",
        plan.schedules.iter().map(Vec::len).sum::<usize>(),
        start.elapsed()
    );
}

/// Writer `w`'s schedule (`[seq - 1]` = key id): its own keys and the shared
/// ones, shuffled anew for each round.
fn schedule(cfg: &StressCfg, w: u32, disj_total: u32, universe: u32) -> Vec<u32> {
    let nw = cfg.writers as u32;
    let mut own: Vec<u32> = (0..cfg.disjoint as u32).map(|j| j * nw + w).collect();
    own.extend(disj_total..universe);
    let mut rng = Rng::new(cfg.seed ^ ((w as u64) << 40));
    let mut sched = Vec::with_capacity(own.len() * cfg.rounds);
    for _ in 0..cfg.rounds {
        own = rng
            .permutation(own.len())
            .into_iter()
            .map(|i| own[i])
            .collect();
        sched.extend_from_slice(&own);
    }
    assert!(sched.len() < u32::MAX as usize);
    sched
}

/// The keys, the writers' schedules and what the writers publish.
struct Plan {
    nw: u32,
    /// ids below: owned by writer `id % nw`; from here to `universe`: shared
    disj_total: u32,
    universe: u32,
    keys: Vec<Vec<u8>>,
    schedules: Vec<Vec<u32>>,
    first_round_len: usize,
    progress: Progress,
    /// per writer, how many writes of its first round (every key once) are done
    first_done: Vec<AtomicUsize>,
    writers_done: AtomicUsize,
}

/// What one reader has seen: keys seen must never disappear, sequence
/// numbers per (key, writer) never go back.
struct ReaderState {
    r: usize,
    rng: Rng,
    seen: HashSet<u32>,
    seen_vec: Vec<u32>,
    cursor: usize,
    coherence: Coherence<(u32, u32)>,
    iters: u64,
}

impl Plan {
    fn new(cfg: &StressCfg) -> Plan {
        let nw = cfg.writers as u32;
        assert!((1..16).contains(&nw));
        let disj_total = cfg.disjoint as u32 * nw;
        let universe = disj_total + cfg.overlap as u32;
        Plan {
            nw,
            disj_total,
            universe,
            keys: (0..universe).map(|id| shaped_key(id as u64)).collect(),
            schedules: (0..nw)
                .map(|w| schedule(cfg, w, disj_total, universe))
                .collect(),
            first_round_len: cfg.disjoint + cfg.overlap,
            progress: Progress::new(cfg.writers),
            first_done: (0..nw).map(|_| AtomicUsize::new(0)).collect(),
            writers_done: AtomicUsize::new(0),
        }
    }

    fn key(&self, id: u32) -> &[u8] {
        &self.keys[id as usize]
    }

    fn owner(&self, id: u32) -> Option<u32> {
        (id < self.disj_total).then_some(id % self.nw)
    }

    /// Checks that `t`, observed for key `id`, was really written for it.
    /// Must be called after the observation (it loads `progress`).
    fn validate(&self, t: Tag, id: u32, what: &str) {
        assert_eq!(
            t.id, id,
            "{what}: value for key id {} observed under key id {id}",
            t.id
        );
        assert!(t.w < self.nw, "{what}: bogus writer in {t:?}");
        self.progress.check_started(t, what);
        assert_eq!(
            self.schedules[t.w as usize][t.seq as usize - 1],
            id,
            "{what}: writer {} never wrote {t:?} to key id {id}",
            t.w
        );
        if let Some(o) = self.owner(id) {
            assert_eq!(
                t.w, o,
                "{what}: key {id} is only written by writer {o}, saw {t:?}"
            );
        }
    }

    /// Writer `w` follows its schedule (even writers hold a guard for 64
    /// writes, odd ones one guard per write) and checks every previous
    /// value; returns the last sequence number it wrote to each key.
    fn writer<M: StressMap>(&self, map: &M, w: u32) -> HashMap<u32, u32> {
        let _done = DoneOnDrop(&self.writers_done);
        let sched = &self.schedules[w as usize];
        let mut last: HashMap<u32, u32> = HashMap::new();
        let batch = if w % 2 == 0 { 64 } else { 1 };
        batched(map, sched.len(), batch, |sess, pos| {
            let (id, seq) = (sched[pos], pos as u32 + 1);
            self.progress.publish(w, seq);
            let old = (sess.insert)(self.key(id), Tag { id, w, seq });
            self.check_previous(w, id, old, &last);
            last.insert(id, seq);
            if pos < self.first_round_len {
                self.first_done[w as usize].store(pos + 1, Ordering::Release);
            }
        });
        last
    }

    /// The value writer `w`'s insert into `id` replaced: exactly its own last
    /// write for an owned key; for a shared key, present once `w` wrote it,
    /// and a value some writer wrote.
    fn check_previous(&self, w: u32, id: u32, old: Option<Tag>, last: &HashMap<u32, u32>) {
        if self.owner(id).is_some() {
            let expected = last.get(&id).map(|&seq| Tag { id, w, seq });
            assert_eq!(
                old,
                expected,
                "writer {w}: wrong previous value for own key {id} ({})",
                hex(self.key(id))
            );
            return;
        }
        if last.contains_key(&id) {
            assert!(
                old.is_some(),
                "writer {w}: key {id} it inserted earlier vanished"
            );
        }
        if let Some(t) = old {
            self.validate(t, id, "writer's previous value");
        }
    }

    /// A reader: random keys, rolling re-checks of keys seen and checks of
    /// published keys until the writers are done, then every key it saw.
    fn reader<M: StressMap>(&self, map: &M, cfg: &StressCfg, r: usize) -> u64 {
        let mut st = ReaderState {
            r,
            rng: Rng::new(cfg.seed.wrapping_add(1000 + r as u64)),
            seen: HashSet::new(),
            seen_vec: Vec::new(),
            cursor: 0,
            coherence: Coherence::new(),
            iters: 0,
        };
        until_done(&self.writers_done, self.nw as usize, || {
            map.session(|sess| {
                for _ in 0..64 {
                    self.reader_step(sess, &mut st);
                }
                self.reader_batch(sess, &mut st);
            })
        });
        // final: everything ever seen is still there
        map.session(|sess| {
            for &id in &st.seen_vec {
                let t = must_get(sess, self.key(id), || {
                    format!("reader {r}: key {id} disappeared")
                });
                self.observe(&mut st.coherence, t, id, "reader final re-check");
            }
        });
        st.iters
    }

    /// Validates `t` (seen for `id`) and that it is not older than before.
    fn observe(&self, coherence: &mut Coherence<(u32, u32)>, t: Tag, id: u32, what: &str) {
        self.validate(t, id, what);
        coherence.advance((id, t.w), t.seq, || {
            format!("{what}: key {id}, writer {}", t.w)
        });
    }

    /// One reader iteration: a random key (absent only if never seen), the
    /// next key of those seen (present), every 8th time a published key.
    fn reader_step(&self, sess: &mut Session<'_>, st: &mut ReaderState) {
        st.iters += 1;
        let r = st.r;
        let id = st.rng.below(self.universe as u64) as u32;
        match (sess.get)(self.key(id)) {
            Some(t) => {
                self.observe(&mut st.coherence, t, id, "reader get");
                if st.seen.insert(id) {
                    st.seen_vec.push(id);
                }
            }
            None => assert!(
                !st.seen.contains(&id),
                "reader {r}: key {id} ({}) disappeared",
                hex(self.key(id))
            ),
        }
        if !st.seen_vec.is_empty() {
            let id = st.seen_vec[st.cursor % st.seen_vec.len()];
            st.cursor += 1;
            let t = must_get(sess, self.key(id), || {
                format!("reader {r}: key {id} ({}) disappeared", hex(self.key(id)))
            });
            self.observe(&mut st.coherence, t, id, "reader re-check");
        }
        if st.iters % 8 == 0 {
            self.check_published(sess, st);
        }
    }

    /// The checks of [`Self::reader_step`] on a batch of distinct keys
    /// looked up together (`get_batch`): random keys, and keys seen before.
    fn reader_batch(&self, sess: &mut Session<'_>, st: &mut ReaderState) {
        let mut ids: Vec<u32> = Vec::with_capacity(24);
        for i in 0..24 {
            let id = if i % 3 == 2 && !st.seen_vec.is_empty() {
                st.seen_vec[st.rng.below(st.seen_vec.len() as u64) as usize]
            } else {
                st.rng.below(self.universe as u64) as u32
            };
            // Distinct keys: two lookups of one key may finish in either order.
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let keys: Vec<&[u8]> = ids.iter().map(|&id| self.key(id)).collect();
        let mut out = vec![None; keys.len()];
        (sess.get_batch)(&keys, &mut out);
        for (&id, got) in ids.iter().zip(out) {
            match got {
                Some(t) => {
                    self.observe(&mut st.coherence, t, id, "reader get_batch");
                    if st.seen.insert(id) {
                        st.seen_vec.push(id);
                    }
                }
                None => assert!(
                    !st.seen.contains(&id),
                    "reader {}: key {id} ({}) disappeared (get_batch)",
                    st.r,
                    hex(self.key(id))
                ),
            }
        }
    }

    /// A random key of a random writer's finished part of its first round
    /// (every key it has published as inserted) is present.
    fn check_published(&self, sess: &mut Session<'_>, st: &mut ReaderState) {
        let w = st.rng.below(self.nw as u64) as usize;
        let done = self.first_done[w].load(Ordering::Acquire);
        if done == 0 {
            return;
        }
        let id = self.schedules[w][st.rng.below(done as u64) as usize];
        let t = must_get(sess, self.key(id), || {
            let (r, k) = (st.r, hex(self.key(id)));
            format!("reader {r}: key {id} ({k}) published as inserted by writer {w} is missing")
        });
        self.observe(&mut st.coherence, t, id, "reader published-key check");
    }

    /// After the join: every key holds the last write of its owner (or, if
    /// shared, of one of the writers), and `len()` is exact.
    fn check_final<M: StressMap>(&self, map: &M, lasts: &[HashMap<u32, u32>]) {
        map.session(|sess| {
            for id in 0..self.universe {
                let t = must_get(sess, self.key(id), || {
                    format!("key {id} ({}) missing after join", hex(self.key(id)))
                });
                self.validate(t, id, "final");
                let last = lasts[t.w as usize].get(&id);
                match self.owner(id) {
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
                        last == Some(&t.seq),
                        "key {id}: final value {t:?} is not the last write of writer {} \
                         (its last was {last:?})",
                        t.w
                    ),
                }
            }
        });
        assert_eq!(map.count(), self.universe as usize, "len() after join");
    }
}
