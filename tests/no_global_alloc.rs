//! A pool-backed tree over a user's allocator makes no global allocation
//! once it exists: inserts, lookups, removes, updates, the entry API, cursor
//! scans both ways with seeks, `values`, `retain`, comparisons, a bulk load,
//! `clear` and `reclaim` all take their memory from the backend's allocator
//! (issue 16, "No global allocator needed").
//!
//! The `#[global_allocator]` (`common::PerThread`) counts each thread's
//! allocations; a test counts its own around the work. The user's
//! allocator goes to `System` directly, so its blocks are not counted.
#![cfg(feature = "pool")]
#![allow(
    clippy::drop_non_drop,
    reason = "guards are dropped where any backend's would have to be"
)]

mod common;

use core::alloc::{GlobalAlloc, Layout};
use core::ops::ControlFlow;
use core::ptr::NonNull;
use std::alloc::System;
use std::sync::atomic::{AtomicUsize, Ordering};

use masstree::alloc_backends::pool::PoolBackend;
use masstree::allocator_api2::alloc::{AllocError, Allocator};
use masstree::{BulkLoader, Change, InlineMassTree, MassTree, Seek, Tree};

use common::PerThread;

/// Counts each thread's requests: a test sees only its own.
#[global_allocator]
static GLOBAL: PerThread = PerThread;

/// Runs `f` and returns what it returned and how many global allocations
/// this thread made meanwhile.
fn global_allocs_in<R>(f: impl FnOnce() -> R) -> (R, usize) {
    PerThread::requests_in(f)
}

// ---------------------------------------------------------------------------
// The user's allocator: `System` directly, with its own books.
// ---------------------------------------------------------------------------

/// Counts its blocks, and refuses every request once `left` reaches zero.
struct UserAlloc {
    allocs: AtomicUsize,
    live: AtomicUsize,
    left: AtomicUsize,
}

impl UserAlloc {
    const fn new() -> Self {
        Self::failing_after(usize::MAX)
    }

    /// Grants `n` requests, then refuses.
    const fn failing_after(n: usize) -> Self {
        UserAlloc {
            allocs: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            left: AtomicUsize::new(n),
        }
    }
}

// SAFETY: blocks from `System` with the requested layout, returned to it
// with the same layout.
unsafe impl Allocator for UserAlloc {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // Relaxed: a countdown of this allocator's own requests.
        if self.left.load(Ordering::Relaxed) == 0 {
            return Err(AllocError);
        }
        self.left.fetch_sub(1, Ordering::Relaxed);
        let size = layout.size().max(1);
        // SAFETY: a non-zero size, the layout's alignment.
        let p = unsafe { System.alloc(Layout::from_size_align(size, layout.align()).unwrap()) };
        let p = NonNull::new(p).ok_or(AllocError)?;
        // Relaxed (both): statistics, read after the work on this thread.
        self.allocs.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // Relaxed: statistics.
        self.live.fetch_sub(1, Ordering::Relaxed);
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

// ---------------------------------------------------------------------------
// Keys without a heap: 8-byte integers, 20-byte keys sharing a 16-byte
// prefix (trie layers), and 40-byte keys (suffix records).
// ---------------------------------------------------------------------------

const N: u64 = 1290;

/// The `i`-th key, written into `buf`; returns its length.
fn key(i: u64, buf: &mut [u8; 40]) -> usize {
    let id = i.to_be_bytes();
    match i % 3 {
        0 => {
            buf[..8].copy_from_slice(&id);
            8
        }
        1 => {
            buf[..16].copy_from_slice(b"layer/shared/pfx");
            buf[16..20].copy_from_slice(&id[4..]);
            20
        }
        _ => {
            buf[..8].copy_from_slice(b"suffixed");
            buf[8..16].copy_from_slice(&id);
            buf[16..40].copy_from_slice(b"-a-long-tail-of-24-bytes");
            40
        }
    }
}

/// Checks a cursor sweep in one direction: `count` keys, strictly ordered.
struct Sweep {
    prev: [u8; 40],
    prev_len: usize,
    count: u64,
    ordered: bool,
}

impl Sweep {
    fn new() -> Self {
        Sweep {
            prev: [0; 40],
            prev_len: 0,
            count: 0,
            ordered: true,
        }
    }
    fn see(&mut self, k: &[u8], forward: bool) {
        if self.count > 0 {
            let prev = &self.prev[..self.prev_len];
            self.ordered &= if forward { prev < k } else { prev > k };
        }
        self.prev[..k.len()].copy_from_slice(k);
        self.prev_len = k.len();
        self.count += 1;
    }
}

type PoolTree<'a> = InlineMassTree<u64, PoolBackend<&'a UserAlloc>>;

#[test]
fn pool_tree_makes_no_global_allocation() {
    static USER: UserAlloc = UserAlloc::new();
    let mut tree: PoolTree<'_> = Tree::new_in(PoolBackend::new_in(&USER));
    let mut buf = [0u8; 40];

    let (ok, global) = global_allocs_in(|| {
        let g = tree.guard();
        let mut ok = true;
        for i in 0..N {
            let n = key(i, &mut buf);
            ok &= tree.insert(&buf[..n], i, &g).is_none();
        }
        for i in 0..N {
            let n = key(i, &mut buf);
            ok &= tree.get(&buf[..n], &g) == Some(i);
        }
        ok &= tree.len() == N as usize;

        // Cursor scans both ways, step by step.
        let mut c = tree.cursor(&g);
        let mut fwd = Sweep::new();
        while let Some((k, _)) = c.next() {
            fwd.see(k, true);
        }
        drop(c);
        let mut bwd = Sweep::new();
        let mut c = tree.cursor(&g);
        let mut at = c.seek_last();
        while let Some((k, _)) = at {
            bwd.see(k, false);
            at = c.prev();
        }
        ok &= fwd.ordered && bwd.ordered && fwd.count == N && bwd.count == N;

        // Seeks, and the visitor scan from there.
        let n = key(4, &mut buf);
        ok &= c.seek(&buf[..n], Seek::Ge).map(|(_, v)| v) == Some(4);
        ok &= c.seek(&buf[..n], Seek::Lt).is_some();
        let mut visited = 0u64;
        let _ = c.for_each_next(|_, _| {
            visited += 1;
            ControlFlow::<()>::Continue(())
        });
        let mut back = 0u64;
        let _ = tree.cursor(&g).for_each_prev(|_, _| {
            back += 1;
            ControlFlow::<()>::Continue(())
        });
        ok &= back == N && visited > 0;
        drop(c);

        // values(), both ends.
        ok &= tree.values(&g).count() as u64 == N;
        ok &= tree.values(&g).rev().count() as u64 == N;

        // Updates, compare-exchange, entry.
        let n = key(7, &mut buf);
        ok &= tree.update(
            &buf[..n],
            |v| v.map_or(Change::Keep, |v| Change::Set(v + 1)),
            &g,
        ) == Some(7);
        ok &= tree.compare_exchange(&buf[..n], Some(&8), 70, &g).is_ok();
        ok &= tree.entry(&buf[..n], &g).or_insert(0) == 70;
        ok &= matches!(tree.fallible().insert(&buf[..n], 7, &g), Ok(Some(70)));

        // Remove half, then retain a third of the rest.
        for i in (0..N).step_by(2) {
            let n = key(i, &mut buf);
            ok &= tree.remove(&buf[..n], &g) == Some(i);
        }
        tree.retain(|_, v| v % 3 != 1, &g);
        drop(g);
        tree.reclaim();

        // A bulk load into a second pool tree over the same allocator, and
        // a comparison of two trees (each scanned by a cursor).
        let keys = (0..N).map(|i| (i.to_be_bytes(), i));
        let loaded: Result<PoolTree<'_>, _> =
            BulkLoader::new(PoolBackend::new_in(&USER)).load(keys);
        let Ok(loaded) = loaded else { return false };
        let g = loaded.guard();
        ok &= loaded.len() == N as usize && loaded.get(&5u64.to_be_bytes(), &g) == Some(5);
        let mut c = loaded.cursor(&g);
        ok &= c.seek(&700u64.to_be_bytes(), Seek::Le).map(|(_, v)| v) == Some(700);
        drop(c);
        let other: Result<PoolTree<'_>, _> =
            BulkLoader::new(PoolBackend::new_in(&USER)).load((0..N).map(|i| (i.to_be_bytes(), i)));
        let Ok(other) = other else { return false };
        ok &= loaded == other;
        drop(g);
        drop(loaded);
        drop(other);
        tree.clear();
        ok &= tree.is_empty();
        ok
    });
    assert!(ok, "a check inside the counted region failed");
    assert_eq!(global, 0, "global allocations while the pool tree was used");
    // Relaxed: read on the thread that did the work.
    assert!(
        USER.allocs.load(Ordering::Relaxed) > 0,
        "the user's allocator served the tree"
    );
    drop(tree);
    assert_eq!(
        USER.live.load(Ordering::Relaxed),
        0,
        "everything given back"
    );
}

/// Out-of-line values come from the backend too.
#[test]
fn out_of_line_values_make_no_global_allocation() {
    static USER: UserAlloc = UserAlloc::new();
    let tree: MassTree<[u64; 4], PoolBackend<&UserAlloc>> =
        Tree::new_in(PoolBackend::new_in(&USER));
    let mut buf = [0u8; 40];
    let (ok, global) = global_allocs_in(|| {
        let g = tree.guard();
        let mut ok = true;
        for i in 0..N {
            let n = key(i, &mut buf);
            ok &= tree.insert(&buf[..n], [i; 4], &g).is_none();
        }
        for i in (0..N).step_by(3) {
            let n = key(i, &mut buf);
            ok &= tree.insert(&buf[..n], [i + 1; 4], &g) == Some(&[i; 4]);
            ok &= tree.remove(&buf[..n], &g) == Some(&[i + 1; 4]);
        }
        let mut sum = 0u64;
        let _ = tree.cursor(&g).for_each_next(|_, v| {
            sum += v[0];
            ControlFlow::<()>::Continue(())
        });
        ok && sum == (0..N).filter(|i| i % 3 != 0).sum::<u64>()
    });
    assert!(ok, "a check inside the counted region failed");
    assert_eq!(global, 0, "global allocations while the pool tree was used");
}

/// A bulk load takes its per-layer builders from the backend's allocator
/// too: failing any one of its requests (a slab, a value, a suffix record or
/// a builder: keys 48 bytes long open 6 layers, past the builders' first
/// block of 4) reports `OutOfMemory` and leaves nothing allocated.
#[test]
fn bulk_load_failures_report_and_leak_nothing() {
    const PREFIX: &[u8; 40] = b"a-prefix-forty-bytes-long-shared-by-all/";
    let pairs = || {
        (0..200u64).map(|i| {
            let mut k = [0u8; 48];
            k[..40].copy_from_slice(PREFIX);
            k[40..].copy_from_slice(&(i * 3).to_be_bytes());
            (k, i)
        })
    };
    for k in 0.. {
        let a = UserAlloc::failing_after(k);
        let loaded: Result<MassTree<u64, PoolBackend<&UserAlloc>>, _> =
            BulkLoader::new(PoolBackend::new_in(&a)).load(pairs());
        let done = match loaded {
            Ok(tree) => {
                // Room again: the cursor's buffers come from `a` too.
                // Relaxed: this thread's own countdown.
                a.left.store(usize::MAX, Ordering::Relaxed);
                let g = tree.guard();
                assert_eq!(tree.len(), 200);
                let mut c = tree.cursor(&g);
                assert_eq!(c.seek_last().map(|(_, v)| *v), Some(199));
                true
            }
            Err(e) => {
                assert!(
                    matches!(e, masstree::BulkLoadError::OutOfMemory { .. }),
                    "{e:?}"
                );
                false
            }
        };
        // Relaxed: this thread's own books.
        assert_eq!(
            a.live.load(Ordering::Relaxed),
            0,
            "leak after failing request {k}"
        );
        if done {
            assert!(k > 3, "the load took some memory");
            break;
        }
    }
}
