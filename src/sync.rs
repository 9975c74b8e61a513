//! Atomics shim: `core` atomics normally, `loom`'s under `cfg(masstree_loom)`,
//! so the loom models check the code that ships.

#[cfg(all(
    not(masstree_loom),
    not(any(masstree_narrow, not(target_has_atomic = "64")))
))]
pub(crate) use core::sync::atomic::AtomicU64;
#[cfg(not(masstree_loom))]
pub(crate) use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, AtomicUsize};
#[cfg(not(masstree_loom))]
pub(crate) use core::sync::atomic::{Ordering, fence};

#[cfg(all(
    masstree_loom,
    not(any(masstree_narrow, not(target_has_atomic = "64")))
))]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(masstree_loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, AtomicUsize};
#[cfg(masstree_loom)]
pub(crate) use loom::sync::atomic::{Ordering, fence};

/// One step of a spin-wait. Under loom this yields, so that the model can
/// schedule the thread we are waiting for.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(masstree_loom))]
    core::hint::spin_loop();
    #[cfg(masstree_loom)]
    loom::thread::yield_now();
}

/// True where the 64-bit words readers load optimistically (ikeys, the
/// permutation) are kept as two 32-bit halves: targets without 64-bit
/// atomics, or any target under `cfg(masstree_narrow)` (so the host tests,
/// loom models and Miri run this form too).
pub(crate) const NARROW: bool = cfg!(any(masstree_narrow, not(target_has_atomic = "64")));

/// A 64-bit word as two 32-bit atomics, for targets without 64-bit ones.
///
/// A load may see one half from before a concurrent store and one from after
/// it (a *torn* read). Every such word is written only under its node's lock
/// and read by lock-free readers only inside a version-validated window, with
/// the writer's dirty mark set across the store wherever a reader could be
/// reading it; so a torn read always fails validation and is never used (see
/// ARCHITECTURE.md, "Narrow words"). The halves are stored high first and
/// loaded low first; the orderings are the caller's, for each half.
#[cfg(any(masstree_narrow, not(target_has_atomic = "64")))]
pub(crate) struct AtomicU64 {
    hi: AtomicU32,
    lo: AtomicU32,
}

#[cfg(any(masstree_narrow, not(target_has_atomic = "64")))]
impl AtomicU64 {
    pub(crate) fn new(v: u64) -> Self {
        AtomicU64 {
            hi: AtomicU32::new((v >> 32) as u32),
            lo: AtomicU32::new(v as u32),
        }
    }

    #[inline]
    pub(crate) fn load(&self, order: Ordering) -> u64 {
        let lo = self.lo.load(order);
        let hi = self.hi.load(order);
        (u64::from(hi) << 32) | u64::from(lo)
    }

    #[inline]
    pub(crate) fn store(&self, v: u64, order: Ordering) {
        self.hi.store((v >> 32) as u32, order);
        self.lo.store(v as u32, order);
    }
}

/// The narrow word's argument, checked: a torn read never validates while
/// the writer marks the node dirty across its store, and is seen without it.
#[cfg(all(test, masstree_loom, masstree_narrow))]
mod tests {
    use super::{AtomicU64, Ordering};
    use crate::nodeversion::{LEAF, NodeVersion};
    use loom::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    const OLD: u64 = 0x0000_0001_0000_0001;
    const NEW: u64 = 0x0000_0002_0000_0002;

    /// True if some interleaving let a reader validate a value that is
    /// neither the old nor the new one.
    fn torn_read_validates(mark: bool) -> bool {
        // One flag per variant: the two tests run at the same time.
        static TORN: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
        let torn = &TORN[usize::from(mark)];
        torn.store(false, SeqCst);
        loom::model(move || {
            let node = Arc::new((NodeVersion::new(LEAF), AtomicU64::new(OLD)));
            let writer = node.clone();
            let t = loom::thread::spawn(move || {
                let lock = writer.0.lock();
                if mark {
                    lock.mark_insert();
                }
                // Release: as a node's field stores; the reader validates.
                writer.1.store(NEW, Ordering::Release);
                drop(lock);
            });
            let v = node.0.stable();
            // Acquire: as a reader's loads of node fields.
            let x = node.1.load(Ordering::Acquire);
            if !node.0.has_changed(v) && x != OLD && x != NEW {
                torn.store(true, SeqCst);
            }
            t.join().unwrap();
        });
        torn.load(SeqCst)
    }

    #[test]
    fn loom_narrow_word_torn_read_fails_validation() {
        assert!(!torn_read_validates(true));
    }

    #[test]
    fn loom_narrow_word_unmarked_store_tears() {
        assert!(
            torn_read_validates(false),
            "without the dirty mark the model must find a torn read, or it checks nothing"
        );
    }
}
