//! no_std check for the `masstree` core: see `ci/test.sh` (step `nostd`) and
//! this crate's `Cargo.toml`.
//!
//! This crate is `#![no_std]`, provides its own `#[panic_handler]` and
//! `#[global_allocator]`, and is built for a bare-metal target. If `std`
//! leaked into the core, the build fails: on a bare-metal target because
//! there is no `std` to link, on the host because `std`'s panic handler would
//! clash with ours (duplicate `panic_impl` lang item).
//!
//! With the `pool` / `arena` features it also runs a real tree on those
//! no_std backends; `ci/test.sh` links the host build into `harness.c` and
//! runs it.
#![no_std]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------
// Trivial bump allocator over a static buffer (never frees).
// ---------------------------------------------------------------------------

// Room for a 2 MiB slab aligned to its size (feature `huge-pages`).
const HEAP_SIZE: usize = 8 * 1024 * 1024;

#[repr(C, align(4096))]
struct Heap(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: disjoint ranges of the buffer are handed out by an atomic bump
// pointer; the buffer itself is never accessed through `&Heap`.
unsafe impl Sync for Heap {}

static HEAP: Heap = Heap(UnsafeCell::new([0; HEAP_SIZE]));

struct Bump {
    /// Offset of the first free byte in `HEAP`.
    next: AtomicUsize,
}

// SAFETY: every returned block lies inside `HEAP`, is aligned as requested,
// and is never handed out twice (the bump offset only grows).
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = HEAP.0.get().cast::<u8>();
        // Relaxed: the counter only hands out disjoint ranges.
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let misalign = base.wrapping_add(cur).align_offset(layout.align());
            let Some(start) = cur.checked_add(misalign) else {
                return ptr::null_mut();
            };
            let end = match start.checked_add(layout.size()) {
                Some(end) if end <= HEAP_SIZE => end,
                _ => return ptr::null_mut(),
            };
            match self
                .next
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return base.wrapping_add(start),
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    next: AtomicUsize::new(0),
};

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // Bare metal: nothing to return to.
    #[cfg(target_os = "none")]
    loop {
        core::hint::spin_loop();
    }
    // Hosted (the C harness of ci/test.sh): end the process, so a panic in
    // the core fails the run instead of hanging it.
    #[cfg(not(target_os = "none"))]
    {
        unsafe extern "C" {
            fn abort() -> !;
        }
        // SAFETY: libc's abort takes no arguments and never returns.
        unsafe { abort() }
    }
}

// ---------------------------------------------------------------------------
// The core, used through its public API.
// ---------------------------------------------------------------------------

/// Builds a tree on `backend`, inserts one key and reads it back: names the
/// core's `Tree`/`InlineMassTree`, `NodeAllocatorGeneric`, `new_in`, `guard`,
/// `insert`, `get` and `len`. Generic, so it is type-checked even when no
/// backend feature is on (nothing is monomorphized then).
pub fn roundtrip<A: masstree::backend::NodeAllocatorGeneric>(backend: A) -> (Option<u64>, usize) {
    let tree: masstree::InlineMassTree<u64, A> = masstree::Tree::new_in(backend);
    let guard = tree.guard();
    tree.insert(b"key", 7u64, &guard);
    let got = tree.get(b"key", &guard);
    let len = tree.len();
    drop(guard);
    (got, len)
}

/// Exported entry point, so the staticlib has a symbol and the global
/// allocator and panic handler above are linked. With a backend feature on,
/// it runs a real tree on that backend, monomorphizing the core.
///
/// Returns the number of backends exercised, or `usize::MAX` if anything
/// gave a wrong answer.
#[unsafe(no_mangle)]
pub extern "C" fn masstree_nostd_check() -> usize {
    // Exercise `alloc` through the global allocator above.
    let v: alloc::vec::Vec<u8> = alloc::vec![1, 2, 3];
    if v.iter().sum::<u8>() != 6 {
        return usize::MAX;
    }
    #[allow(unused_mut)]
    let mut backends = 0;

    #[cfg(feature = "pool")]
    {
        if roundtrip(masstree::alloc_backends::pool::PoolBackend::new()) != (Some(7), 1) {
            return usize::MAX;
        }
        backends += 1;
    }
    #[cfg(feature = "arena")]
    {
        if roundtrip(masstree::alloc_backends::arena::ArenaBackend::new()) != (Some(7), 1) {
            return usize::MAX;
        }
        backends += 1;
    }
    #[cfg(feature = "huge-pages")]
    {
        // The pool's slabs are larger than a node, so they pass through;
        // a node-sized request takes a slot of a 2 MiB slab.
        use masstree::alloc_backends::{huge_pages::HugePageSlabs, pool::PoolBackend};
        use masstree::allocator_api2::alloc::Allocator;
        let slabs = HugePageSlabs::new();
        let node = Layout::from_size_align(320, 64).unwrap();
        let Ok(slot) = slabs.allocate(node) else {
            return usize::MAX;
        };
        if slabs.stats().slots_in_use != 1 {
            return usize::MAX;
        }
        // SAFETY: allocated just above with this layout.
        unsafe { slabs.deallocate(slot.cast(), node) };
        if roundtrip(PoolBackend::new_in(slabs)) != (Some(7), 1) {
            return usize::MAX;
        }
        backends += 1;
    }
    backends
}
