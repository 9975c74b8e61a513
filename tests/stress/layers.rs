//! Driver 2: racing layer creation (all threads add keys sharing a fresh
//! 8-byte slice in lockstep); driver 3: a handful of hot keys (constant
//! replacement of out-of-line values while readers dereference them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::common::hex;
use crate::map::{Session, StressMap, Tag};
use crate::writers::{StressCfg, run_stress};

/// A spinning barrier that does not deadlock when a participant panics: a
/// panicking thread poisons it (via [`PoisonOnUnwind`]) and every waiter then
/// panics too, so the test fails instead of hanging.
pub(crate) struct Lockstep {
    pub(crate) n: usize,
    pub(crate) arrived: AtomicUsize,
    pub(crate) generation: AtomicUsize,
    pub(crate) poisoned: std::sync::atomic::AtomicBool,
}

impl Lockstep {
    pub(crate) fn new(n: usize) -> Self {
        Lockstep {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: std::sync::atomic::AtomicBool::new(false),
        }
    }
    pub(crate) fn wait(&self) {
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

pub(crate) struct PoisonOnUnwind<'a>(pub(crate) &'a Lockstep);
impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Release);
        }
    }
}

// Driver 2: racing layer creation (all threads add keys sharing a fresh 8-byte
// slice in lockstep)

pub(crate) fn layer_keys(round: usize, t: usize) -> [Vec<u8>; 4] {
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

pub(crate) fn run_layer_race<M: StressMap>(map: &M, threads: usize, rounds: usize) {
    let start = Instant::now();
    let race = LayerRace {
        threads,
        barrier: Lockstep::new(threads),
    };
    std::thread::scope(|s| {
        for t in 0..threads {
            let race = &race;
            s.spawn(move || {
                let _poison = PoisonOnUnwind(&race.barrier);
                for round in 0..rounds {
                    race.barrier.wait();
                    map.session(|sess| race.round(sess, round, t));
                }
            });
        }
    });
    map.session(|sess| {
        for round in 0..rounds {
            for t in 0..threads {
                race.expect_keys(sess, round, t, "final");
            }
        }
    });
    assert_eq!(map.count(), rounds * threads * 4);
    eprintln!(
        "run_layer_race threads={threads} rounds={rounds}: {:?}",
        start.elapsed()
    );
}

/// `threads` threads adding their [`layer_keys`] round by round in lockstep.
struct LayerRace {
    threads: usize,
    barrier: Lockstep,
}

impl LayerRace {
    fn tag(&self, round: usize, t: usize, i: usize) -> Tag {
        Tag {
            id: ((round * self.threads + t) * 4 + i) as u32,
            w: t as u32,
            seq: round as u32 + 1,
        }
    }

    /// Thread `t`'s part of `round`: its fresh keys go in and are found;
    /// every key of the previous round (finished before the barrier) is
    /// there; the other threads' keys of this round are absent or exact.
    fn round(&self, sess: &mut Session<'_>, round: usize, t: usize) {
        for (i, k) in layer_keys(round, t).iter().enumerate() {
            assert_eq!(
                (sess.insert)(k, self.tag(round, t, i)),
                None,
                "round {round} thread {t}: fresh key {} already present",
                hex(k)
            );
        }
        self.expect_keys(
            sess,
            round,
            t,
            &format!("round {round} thread {t}: own key"),
        );
        if round > 0 {
            for u in 0..self.threads {
                let what = format!(
                    "round {round} thread {t}: of round {} thread {u}",
                    round - 1
                );
                self.expect_keys(sess, round - 1, u, &what);
            }
        }
        for u in 0..self.threads {
            for (i, k) in layer_keys(round, u).iter().enumerate() {
                let got = (sess.get)(k);
                assert!(
                    got.is_none() || got == Some(self.tag(round, u, i)),
                    "round {round}: key {} has {got:?}",
                    hex(k)
                );
            }
        }
    }

    /// The keys of thread `t` in `round` hold their values.
    fn expect_keys(&self, sess: &mut Session<'_>, round: usize, t: usize, what: &str) {
        for (i, k) in layer_keys(round, t).iter().enumerate() {
            assert_eq!(
                (sess.get)(k),
                Some(self.tag(round, t, i)),
                "{what}: key {}",
                hex(k)
            );
        }
    }
}

// Driver 3: hammer a handful of keys (constant replacement of out-of-line
// values while readers dereference them)

pub(crate) fn run_hot_keys<M: StressMap>(map: &M, cfg: &StressCfg) {
    // Same checks as run_stress, tiny universe, many rounds.
    run_stress(map, cfg);
}
