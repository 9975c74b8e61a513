//! Atomics shim: `core` atomics normally, `loom`'s under `cfg(masstree_loom)`,
//! so the loom models check the code that ships.

#[cfg(not(masstree_loom))]
pub(crate) use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(masstree_loom))]
pub(crate) use core::sync::atomic::{Ordering, fence};

#[cfg(masstree_loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize};
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
