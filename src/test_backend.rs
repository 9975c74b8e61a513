//! A minimal backend for the core's unit tests (and Miri): memory from the
//! global allocator, retired memory kept until the backend drops. Counts live
//! allocations so tests can check that nothing leaks.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use allocator_api2::alloc::{AllocError, Allocator, Global};

use crate::backend::{Internode, Leaf, NodeAllocatorGeneric, Suffix};

type Reclaim = unsafe fn(*mut u8);

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

pub(crate) struct TestBackend {
    id: usize,
    pub(crate) live: Arc<AtomicIsize>,
    /// Allocations left before one fails (`usize::MAX`: never).
    pub(crate) fail_in: AtomicUsize,
    retired: Mutex<Vec<(*mut u8, Reclaim)>>,
}

// SAFETY: the raw pointers in `retired` are owned allocations, freed once.
unsafe impl Send for TestBackend {}
// SAFETY: as above; the list is behind a mutex.
unsafe impl Sync for TestBackend {}

/// Borrows the backend, as the trait's contract asks.
pub(crate) struct TestGuard<'a>(usize, core::marker::PhantomData<&'a TestBackend>);

impl TestBackend {
    pub(crate) fn new() -> Self {
        TestBackend {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            live: Arc::new(AtomicIsize::new(0)),
            fail_in: AtomicUsize::new(usize::MAX),
            retired: Mutex::new(Vec::new()),
        }
    }
    fn raw(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let left = self.fail_in.load(Ordering::Relaxed);
        if left != usize::MAX {
            if left == 0 {
                // Fail this one, then never again.
                self.fail_in.store(usize::MAX, Ordering::Relaxed);
                return Err(AllocError);
            }
            self.fail_in.store(left - 1, Ordering::Relaxed);
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(Global.allocate(layout)?.cast())
    }
    unsafe fn unraw(&self, p: NonNull<u8>, layout: Layout) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: allocated by `raw` with `layout`.
        unsafe { Global.deallocate(p, layout) }
    }
    fn defer(&self, p: *mut u8, f: Reclaim) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.retired.lock().unwrap().push((p, f));
    }
}

unsafe fn reclaim<T>(p: *mut u8) {
    // SAFETY: `p` came from `Global` with `T`'s layout.
    unsafe { Global.deallocate(NonNull::new_unchecked(p), Layout::new::<T>()) }
}
unsafe fn reclaim_value<T>(p: *mut u8) {
    // SAFETY: `p` is a live `T` from `Global`.
    unsafe {
        core::ptr::drop_in_place(p.cast::<T>());
        reclaim::<T>(p)
    }
}
unsafe fn reclaim_suffix(p: *mut u8) {
    // SAFETY: an initialized record from `Global`.
    unsafe {
        let l = Suffix::layout_of(NonNull::new_unchecked(p.cast()));
        Global.deallocate(NonNull::new_unchecked(p), l)
    }
}

#[cfg(not(masstree_loom))]
impl TestBackend {
    /// A backend that counts its live allocations in `live`.
    pub(crate) fn counting(live: &Arc<AtomicIsize>) -> Self {
        let mut b = Self::new();
        b.live = live.clone();
        b
    }
}

impl Default for TestBackend {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh backend (as `Tree::clone` expects).
impl Clone for TestBackend {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl TestBackend {
    fn free_retired(&mut self) {
        for (p, f) in self.retired.get_mut().unwrap().drain(..) {
            // SAFETY: every entry is retired memory nobody can reach any more.
            unsafe { f(p) }
        }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.free_retired();
    }
}

// SAFETY: memory from `Global` with the right layouts; retired memory is kept
// until the backend drops, which outlives every guard.
unsafe impl NodeAllocatorGeneric for TestBackend {
    type Raw = Global;
    fn raw_allocator(&self) -> &Global {
        &Global
    }
    type Guard<'a> = TestGuard<'a>;
    fn guard(&self) -> TestGuard<'_> {
        TestGuard(self.id, core::marker::PhantomData)
    }
    fn owns_guard(&self, g: &TestGuard<'_>) -> bool {
        g.0 == self.id
    }
    fn alloc_leaf(&self) -> Result<NonNull<Leaf>, AllocError> {
        Ok(self.raw(Layout::new::<Leaf>())?.cast())
    }
    fn alloc_internode(&self) -> Result<NonNull<Internode>, AllocError> {
        Ok(self.raw(Layout::new::<Internode>())?.cast())
    }
    fn alloc_suffix(&self, layout: Layout) -> Result<NonNull<Suffix>, AllocError> {
        Ok(self.raw(layout)?.cast())
    }
    fn alloc_value<T>(&self, value: T) -> Result<NonNull<T>, T> {
        match self.raw(Layout::new::<T>()) {
            Ok(p) => {
                let p = p.cast::<T>();
                // SAFETY: fresh memory for a `T`.
                unsafe { p.as_ptr().write(value) };
                Ok(p)
            }
            Err(_) => Err(value),
        }
    }
    unsafe fn free_leaf(&self, p: NonNull<Leaf>) {
        // SAFETY: contract of the trait.
        unsafe { self.unraw(p.cast(), Layout::new::<Leaf>()) }
    }
    unsafe fn free_internode(&self, p: NonNull<Internode>) {
        // SAFETY: contract of the trait.
        unsafe { self.unraw(p.cast(), Layout::new::<Internode>()) }
    }
    unsafe fn free_suffix(&self, p: NonNull<Suffix>) {
        // SAFETY: contract of the trait.
        unsafe { self.unraw(p.cast(), Suffix::layout_of(p)) }
    }
    unsafe fn free_value<T>(&self, p: NonNull<T>) {
        // SAFETY: contract of the trait.
        unsafe {
            core::ptr::drop_in_place(p.as_ptr());
            self.unraw(p.cast(), Layout::new::<T>())
        }
    }
    unsafe fn retire_leaf(&self, p: NonNull<Leaf>, _: &TestGuard<'_>) {
        self.defer(p.as_ptr().cast(), reclaim::<Leaf>);
    }
    unsafe fn retire_internode(&self, p: NonNull<Internode>, _: &TestGuard<'_>) {
        self.defer(p.as_ptr().cast(), reclaim::<Internode>);
    }
    unsafe fn retire_suffix(&self, p: NonNull<Suffix>, _: &TestGuard<'_>) {
        self.defer(p.as_ptr().cast(), reclaim_suffix);
    }
    unsafe fn retire_value<T>(&self, p: NonNull<T>, _: &TestGuard<'_>) {
        self.defer(p.as_ptr().cast(), reclaim_value::<T>);
    }
    fn reclaim(&mut self) {
        self.free_retired();
    }
}
