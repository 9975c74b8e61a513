//! Checks and thread plumbing shared by the drivers: what a writer has
//! published, per-key coherence, keys that must be present, batches of writes
//! under one guard, and readers that run until the writers are done.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::thread::ScopedJoinHandle;

use crate::map::{Session, StressMap, Tag};

/// Per writer, the sequence number of the write it has started. A writer
/// publishes `seq` (Release) *before* performing that write, so a value
/// observed by a reader is never ahead of what the reader then loads
/// (Acquire) — if and only if the tree's reads synchronize with its writes.
pub(crate) struct Progress(Vec<AtomicU32>);

impl Progress {
    pub(crate) fn new(writers: usize) -> Self {
        Progress((0..writers).map(|_| AtomicU32::new(0)).collect())
    }
    /// Writer `w` is about to perform its write number `seq`.
    pub(crate) fn publish(&self, w: u32, seq: u32) {
        self.0[w as usize].store(seq, Ordering::Release);
    }
    /// The write writer `w` has started last (0: none).
    pub(crate) fn started(&self, w: u32) -> u32 {
        self.0[w as usize].load(Ordering::Acquire)
    }
    /// Checks that `t` is a real write (seq >= 1) that its writer had started.
    /// Must be called after the observation of `t`.
    pub(crate) fn check_started(&self, t: Tag, what: &str) {
        assert!(t.seq >= 1, "{what}: bogus seq in {t:?}");
        let p = self.started(t.w);
        assert!(
            t.seq <= p,
            "{what}: observed {t:?} but writer {} has only started write {p} \
             (missing acquire/release synchronization?)",
            t.w
        );
    }
}

/// Per key, the last sequence number one reader saw: it never goes back.
pub(crate) struct Coherence<K>(HashMap<K, u32>);

impl<K: Hash + Eq> Coherence<K> {
    pub(crate) fn new() -> Self {
        Coherence(HashMap::new())
    }
    /// Records `seq` for `key`; `what` names the observation if it went back.
    pub(crate) fn advance(&mut self, key: K, seq: u32, what: impl FnOnce() -> String) {
        let last = self.0.entry(key).or_insert(0);
        assert!(
            seq >= *last,
            "{}: went back in time (seq {seq} after seq {})",
            what(),
            *last
        );
        *last = seq;
    }
}

/// The value of `key`, which must be present (`what` names it otherwise).
pub(crate) fn must_get(sess: &mut Session<'_>, key: &[u8], what: impl FnOnce() -> String) -> Tag {
    (sess.get)(key).unwrap_or_else(|| panic!("{}", what()))
}

/// Runs `op(session, i)` for every `i` in `0..n`, in order, `batch`
/// operations under each guard.
pub(crate) fn batched<M: StressMap>(
    map: &M,
    n: usize,
    batch: usize,
    mut op: impl FnMut(&mut Session<'_>, usize),
) {
    let mut pos = 0;
    while pos < n {
        map.session(|sess| {
            let end = (pos + batch).min(n);
            for i in pos..end {
                op(sess, i);
            }
            pos = end;
        });
    }
}

/// Runs `pass` until `done` reaches `n`, and once more after that (so the
/// last pass runs entirely after the last write).
pub(crate) fn until_done(done: &AtomicUsize, n: usize, mut pass: impl FnMut()) {
    loop {
        let finished = done.load(Ordering::Acquire) == n;
        pass();
        if finished {
            break;
        }
    }
}

/// Joins every thread, in order; a panic in one fails the test.
pub(crate) fn join_all<T>(handles: Vec<ScopedJoinHandle<'_, T>>, who: &str) -> Vec<T> {
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| panic!("{who} panicked")))
        .collect()
}
