//! The one test allocator: counts, fails on request, logs addresses.
//!
//! Shared by the crate's unit tests (`src/lib.rs` includes this file as
//! `test_alloc`), the integration tests (`tests/common`) and the memory
//! benchmark (`bench/compare`, as its `#[global_allocator]`). It uses only
//! `std` and `allocator_api2` by their own names, so it compiles in all three.
//!
//! * [`Ledger`] holds the books: live and total counts, a failure plan, an
//!   optional address log. It is an `allocator_api2` allocator on `Global`
//!   (use it by reference) and a [`GlobalAlloc`] on `System` (a `static`).
//! * [`TestAlloc`] is a cloneable handle to a shared [`Ledger`]: a test keeps
//!   one clone to read the books and gives another to the tree.
//! * [`PerThread`] is a global allocator on `System` that keeps each
//!   thread's books (requests, live bytes), so that a test, on a thread of
//!   its own, counts only its own global allocations.
//! * [`SystemAlloc`] is an `allocator_api2` allocator straight on `System`:
//!   a backend on it takes nothing from the global allocator, so
//!   [`PerThread`] does not see the tree's own memory.
//!
//! Sizes are counted as requested (`layout.size()`), so the numbers do not
//! depend on how the underlying allocator rounds.
#![allow(dead_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ops::Deref;
use core::ptr::NonNull;
use std::alloc::System;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use allocator_api2::alloc::{AllocError, Allocator, Global};

/// Counters, failure plan and address log of a test allocator.
///
/// Every counter is `SeqCst`: tests read them from other threads and after
/// joins, and the cost does not matter here.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// Bytes currently allocated (signed, so that a bug shows as negative).
    live_bytes: AtomicIsize,
    /// The most `live_bytes` has been since the last [`Ledger::reset_peak`].
    peak_bytes: AtomicIsize,
    /// Allocations currently live.
    live_allocs: AtomicIsize,
    /// Successful allocations ever.
    total_allocs: AtomicUsize,
    /// Deallocations ever.
    total_frees: AtomicUsize,
    /// Requests (allocations and grows) since the last [`Ledger::fail_at`].
    requests: AtomicUsize,
    /// The request (0-based, from the last `fail_at`) that fails first;
    /// `usize::MAX`: none.
    fail_at: AtomicUsize,
    /// How many requests fail from `fail_at` on.
    burst: AtomicUsize,
    /// If not 0: besides, every request whose number is 1 less than a
    /// multiple of this fails.
    every: AtomicUsize,
    /// Requests for more bytes than this fail.
    fail_above: AtomicUsize,
    /// Requests refused so far.
    failed: AtomicUsize,
    /// Whether `blocks` is kept (fixed at construction).
    logging: AtomicBool,
    /// Live blocks' addresses and layouts, if `logging`.
    blocks: Mutex<Vec<(usize, Layout)>>,
}

impl Ledger {
    /// Empty books, no failures planned, no address log.
    pub(crate) const fn new() -> Self {
        Ledger {
            live_bytes: AtomicIsize::new(0),
            peak_bytes: AtomicIsize::new(0),
            live_allocs: AtomicIsize::new(0),
            total_allocs: AtomicUsize::new(0),
            total_frees: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(usize::MAX),
            burst: AtomicUsize::new(0),
            every: AtomicUsize::new(0),
            fail_above: AtomicUsize::new(usize::MAX),
            failed: AtomicUsize::new(0),
            logging: AtomicBool::new(false),
            blocks: Mutex::new(Vec::new()),
        }
    }

    /// Empty books that also log every live block's address and layout, and
    /// check at each free that the block was allocated with that layout.
    /// (Not for a global allocator: the log itself allocates.)
    pub(crate) const fn with_log() -> Self {
        let mut l = Self::new();
        l.logging = AtomicBool::new(true);
        l
    }

    pub(crate) fn live_bytes(&self) -> isize {
        self.live_bytes.load(SeqCst)
    }
    /// The most bytes live at once since the last [`Self::reset_peak`].
    pub(crate) fn peak_bytes(&self) -> isize {
        self.peak_bytes.load(SeqCst)
    }
    /// Starts measuring the peak again from the bytes live now.
    pub(crate) fn reset_peak(&self) {
        self.peak_bytes.store(self.live_bytes(), SeqCst);
    }
    pub(crate) fn live_allocs(&self) -> isize {
        self.live_allocs.load(SeqCst)
    }
    pub(crate) fn total_allocs(&self) -> usize {
        self.total_allocs.load(SeqCst)
    }
    pub(crate) fn total_frees(&self) -> usize {
        self.total_frees.load(SeqCst)
    }
    /// Nothing is left allocated.
    pub(crate) fn assert_empty(&self) {
        assert_eq!(
            (self.live_allocs(), self.live_bytes()),
            (0, 0),
            "allocations left (count, bytes)"
        );
    }

    /// From now on, request `k` (0-based, counting from this call) and the
    /// `burst - 1` after it fail.
    pub(crate) fn fail_at(&self, k: usize, burst: usize) {
        self.requests.store(0, SeqCst);
        self.burst.store(burst, SeqCst);
        self.fail_at.store(k, SeqCst);
    }
    /// Besides, every request whose number is 1 less than a multiple of
    /// `period` fails (0: none).
    pub(crate) fn fail_every(&self, period: usize) {
        self.every.store(period, SeqCst);
    }
    /// Requests for more than `bytes` fail (`usize::MAX`: none).
    pub(crate) fn fail_above(&self, bytes: usize) {
        self.fail_above.store(bytes, SeqCst);
    }
    /// Every request fails (`true`) or none does (`false`, as [`Self::disarm`]).
    pub(crate) fn refuse(&self, refuse: bool) {
        if refuse {
            self.fail_at(0, usize::MAX);
        } else {
            self.disarm();
        }
    }
    /// No more planned failures.
    pub(crate) fn disarm(&self) {
        self.fail_at.store(usize::MAX, SeqCst);
        self.every.store(0, SeqCst);
        self.fail_above.store(usize::MAX, SeqCst);
    }
    /// Requests refused so far.
    pub(crate) fn failed(&self) -> usize {
        self.failed.load(SeqCst)
    }
    /// Requests since the last [`Self::fail_at`] (or since the start).
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(SeqCst)
    }

    /// Addresses of the live blocks with this layout (needs [`Self::with_log`]).
    pub(crate) fn live_blocks(&self, layout: Layout) -> Vec<usize> {
        assert!(self.logging.load(SeqCst), "the address log is off");
        let blocks = self.blocks.lock().unwrap();
        blocks
            .iter()
            .filter(|b| b.1 == layout)
            .map(|b| b.0)
            .collect()
    }

    /// Counts a request and says whether the plan refuses it.
    fn refuses(&self, size: usize) -> bool {
        let n = self.requests.fetch_add(1, SeqCst);
        let at = self.fail_at.load(SeqCst);
        let every = self.every.load(SeqCst);
        let refuse = (n >= at && n - at < self.burst.load(SeqCst))
            || (every > 0 && n % every == every - 1)
            || size > self.fail_above.load(SeqCst);
        if refuse {
            self.failed.fetch_add(1, SeqCst);
        }
        refuse
    }

    fn on_alloc(&self, p: *mut u8, layout: Layout) {
        let live = self.live_bytes.fetch_add(layout.size() as isize, SeqCst);
        self.peak_bytes
            .fetch_max(live + layout.size() as isize, SeqCst);
        self.live_allocs.fetch_add(1, SeqCst);
        self.total_allocs.fetch_add(1, SeqCst);
        if self.logging.load(SeqCst) {
            self.blocks.lock().unwrap().push((p.addr(), layout));
        }
    }

    fn on_free(&self, p: *mut u8, layout: Layout) {
        self.live_bytes.fetch_sub(layout.size() as isize, SeqCst);
        self.live_allocs.fetch_sub(1, SeqCst);
        self.total_frees.fetch_add(1, SeqCst);
        if self.logging.load(SeqCst) {
            let mut blocks = self.blocks.lock().unwrap();
            let i = blocks
                .iter()
                .position(|&b| b == (p.addr(), layout))
                .expect("freed with the address and layout it was allocated with");
            blocks.swap_remove(i);
        }
    }

    /// Books a block that moved (grow, shrink) as one free and one allocation
    /// without touching the totals.
    fn on_move(&self, old: *mut u8, old_layout: Layout, new: *mut u8, new_layout: Layout) {
        self.on_free(old, old_layout);
        self.on_alloc(new, new_layout);
        self.total_frees.fetch_sub(1, SeqCst);
        self.total_allocs.fetch_sub(1, SeqCst);
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger {
    /// Books a fresh block from `take` unless the plan refuses it.
    fn serve(
        &self,
        layout: Layout,
        take: impl FnOnce(Layout) -> Result<NonNull<[u8]>, AllocError>,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if self.refuses(layout.size()) {
            return Err(AllocError);
        }
        let p = take(layout)?;
        self.on_alloc(p.as_ptr().cast(), layout);
        Ok(p)
    }
}

// SAFETY: every call is forwarded to `Global` (or refused before reaching
// it); the ledger only adds bookkeeping. Grow and shrink keep their default
// (allocate, copy, deallocate), so a moved block is booked as one allocation
// and one free.
unsafe impl Allocator for Ledger {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.serve(layout, |l| Global.allocate(l))
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.serve(layout, |l| Global.allocate_zeroed(l))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        self.on_free(ptr.as_ptr(), layout);
        // SAFETY: the caller's guarantees; the block came from `Global`.
        unsafe { Global.deallocate(ptr, layout) }
    }
}

// SAFETY: every call is forwarded to `System` (or refused with null); the
// ledger only adds bookkeeping. The address log must stay off (it would
// allocate from inside the allocator).
unsafe impl GlobalAlloc for Ledger {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.refuses(layout.size()) {
            return core::ptr::null_mut();
        }
        // SAFETY: the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.on_alloc(p, layout);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.refuses(layout.size()) {
            return core::ptr::null_mut();
        }
        // SAFETY: the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.on_alloc(p, layout);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.on_free(ptr, layout);
        // SAFETY: the caller's guarantees; the block came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && self.refuses(new_size) {
            return core::ptr::null_mut();
        }
        // SAFETY: the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // SAFETY: `realloc` succeeded, so the new layout is valid.
            let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            self.on_move(ptr, layout, p, new);
        }
        p
    }
}

/// A cloneable handle to a shared [`Ledger`]; an `allocator_api2`
/// allocator on `Global`. Read the books through it (it derefs to the
/// ledger).
#[derive(Clone, Debug, Default)]
pub(crate) struct TestAlloc(Arc<Ledger>);

impl TestAlloc {
    /// A fresh ledger, no address log.
    pub(crate) fn new() -> Self {
        Self::default()
    }
    /// A fresh ledger with the address log on (see [`Ledger::with_log`]).
    pub(crate) fn with_log() -> Self {
        TestAlloc(Arc::new(Ledger::with_log()))
    }
}

impl Deref for TestAlloc {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        &self.0
    }
}

// SAFETY: forwards to the ledger, which forwards to `Global`. (The
// defaults of the other methods go through `allocate` and `deallocate`, so
// every block is booked.)
unsafe impl Allocator for TestAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.0.allocate(layout)
    }
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees.
        unsafe { self.0.deallocate(ptr, layout) }
    }
}

std::thread_local! {
    /// Requests (allocations, zeroed allocations, reallocations) this
    /// thread made of [`PerThread`].
    static THREAD_REQUESTS: Cell<usize> = const { Cell::new(0) };
    /// Bytes this thread allocated from [`PerThread`] and has not freed
    /// (a block freed on another thread is counted there).
    static THREAD_LIVE: Cell<isize> = const { Cell::new(0) };
}

/// A global allocator on `System` that counts per thread: the requests a
/// thread makes, and the bytes it holds. Tests run on threads of their
/// own, so each sees only its own allocations. (The counts are
/// const-initialized thread-locals without destructors: keeping them never
/// allocates.)
pub(crate) struct PerThread;

impl PerThread {
    /// Requests this thread has made so far (allocations and
    /// reallocations; frees are not requests).
    pub(crate) fn requests() -> usize {
        THREAD_REQUESTS.with(Cell::get)
    }

    /// Bytes this thread allocated and has not freed.
    pub(crate) fn live_bytes() -> isize {
        THREAD_LIVE.with(Cell::get)
    }

    /// Runs `f` and returns what it returned and how many requests this
    /// thread made meanwhile.
    pub(crate) fn requests_in<R>(f: impl FnOnce() -> R) -> (R, usize) {
        let before = Self::requests();
        let r = f();
        (r, Self::requests() - before)
    }

    /// Books a request of `size` bytes (`try_with`: the thread-locals may
    /// be gone while the thread exits).
    fn on_alloc(size: usize) {
        let _ = THREAD_REQUESTS.try_with(|c| c.set(c.get() + 1));
        let _ = THREAD_LIVE.try_with(|c| c.set(c.get() + size as isize));
    }

    fn on_free(size: usize) {
        let _ = THREAD_LIVE.try_with(|c| c.set(c.get() - size as isize));
    }
}

// SAFETY: every call is forwarded to `System`; counting has no effect on
// memory and never allocates.
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Self::on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::on_free(layout.size());
        // SAFETY: the caller's guarantees; the block came from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            Self::on_free(layout.size());
            Self::on_alloc(new_size);
        }
        p
    }
}

/// An `allocator_api2` allocator straight on `System`, past whatever
/// `#[global_allocator]` the test binary installs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SystemAlloc;

// SAFETY: blocks from `System` with the requested layout (zero sizes
// rounded up to one byte), returned to it with the same layout.
unsafe impl Allocator for SystemAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let size = layout.size().max(1);
        // SAFETY: a non-zero size, the layout's alignment (valid: it was a
        // layout's, and rounding a size up to 1 does not overflow).
        let p = unsafe { System.alloc(Layout::from_size_align_unchecked(size, layout.align())) };
        let p = NonNull::new(p).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let size = layout.size().max(1);
        // SAFETY: allocated above with this size and alignment.
        unsafe {
            System.dealloc(
                ptr.as_ptr(),
                Layout::from_size_align_unchecked(size, layout.align()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word() -> Layout {
        Layout::new::<u64>()
    }

    #[test]
    fn counts_fails_and_logs() {
        let a = TestAlloc::with_log();
        let p = a.allocate(word()).unwrap().cast::<u8>();
        assert_eq!(
            (a.live_allocs(), a.live_bytes(), a.total_allocs()),
            (1, 8, 1)
        );
        assert_eq!(a.live_blocks(word()), [p.as_ptr().addr()]);
        a.fail_at(1, 2);
        let q = a.allocate(word()).unwrap().cast::<u8>();
        assert!(a.allocate(word()).is_err() && a.allocate(word()).is_err());
        let r = a.allocate(word()).unwrap().cast::<u8>();
        assert_eq!((a.failed(), a.requests()), (2, 4));
        a.fail_above(4);
        assert!(a.allocate(word()).is_err());
        a.disarm();
        // SAFETY: each block came from `a` with this layout and is freed once.
        unsafe {
            for b in [p, q, r] {
                a.deallocate(b, word());
            }
        }
        a.assert_empty();
        assert_eq!(a.total_frees(), 3);
        assert!(a.live_blocks(word()).is_empty());
    }
}
