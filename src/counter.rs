//! The key count, striped by thread: writers on different threads add to
//! different cache lines instead of bouncing one line between their cores
//! (with two threads removing, one shared counter cost about a quarter of
//! the throughput).

use crate::sync::{AtomicUsize, Ordering};

/// Stripes, one cache line each. Under loom one, as the shared counter it
/// replaces: the count is a statistic, not part of any protocol, and with
/// stripes picked by stack address a model's threads land on stripes that
/// differ from run to run, which once tripped loom's own store-history
/// assertion ("TODO: this sometimes fails", `loom/src/rt/atomic.rs`).
const STRIPES: usize = if cfg!(masstree_loom) { 1 } else { 8 };

#[repr(align(64))]
struct Stripe(AtomicUsize);

/// A count many threads change. A thread picks its stripe by the address of
/// its stack (no thread-locals in `no_std`): stacks of different threads lie
/// megabytes apart, so two threads share a stripe only when their stacks
/// fall in the same 2 MiB window modulo the stripe count. A stripe may wrap
/// below zero (a key counted in on one thread and out on another); the sum,
/// taken with wrapping arithmetic, is exact whenever no change is in flight.
pub(crate) struct StripedCounter([Stripe; STRIPES]);

impl StripedCounter {
    pub(crate) fn new() -> Self {
        StripedCounter(core::array::from_fn(|_| Stripe(AtomicUsize::new(0))))
    }

    /// This thread's stripe.
    #[inline]
    fn mine(&self) -> &AtomicUsize {
        let here = 0u8;
        let window = core::ptr::addr_of!(here).addr() >> 21;
        &self.0[window % STRIPES].0
    }

    #[inline]
    pub(crate) fn add(&self, n: usize) {
        // Relaxed: a statistic; nothing is published through it.
        self.mine().fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn sub(&self, n: usize) {
        // Relaxed: as in `add`.
        self.mine().fetch_sub(n, Ordering::Relaxed);
    }

    /// The sum (0 if changes in flight make it look negative).
    pub(crate) fn get(&self) -> usize {
        let sum = self
            .0
            .iter()
            // Relaxed: as in `add`.
            .fold(0usize, |s, x| s.wrapping_add(x.0.load(Ordering::Relaxed)));
        if (sum as isize) < 0 { 0 } else { sum }
    }

    /// Sets the count to `n`. Only when no other thread changes it.
    pub(crate) fn set(&self, n: usize) {
        for (i, x) in self.0.iter().enumerate() {
            // Relaxed: as in `add`; the caller has the counter to itself.
            x.0.store(if i == 0 { n } else { 0 }, Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;

    /// Adds on one thread and subtracts on others: the sum is exact once
    /// they are done, though single stripes wrap below zero.
    #[test]
    fn sum_is_exact_across_threads() {
        let c = StripedCounter::new();
        let per = if cfg!(miri) { 50 } else { 10_000 };
        std::thread::scope(|s| {
            for t in 0..4 {
                let c = &c;
                s.spawn(move || {
                    for _ in 0..per {
                        if t == 0 { c.add(3) } else { c.sub(1) }
                    }
                });
            }
        });
        assert_eq!(c.get(), 0);
        c.add(5);
        assert_eq!(c.get(), 5);
        c.set(42);
        assert_eq!(c.get(), 42);
        c.sub(50);
        assert_eq!(c.get(), 0, "a negative-looking sum reads as 0");
    }
}
