//! no_std link check for the `masstree` core: see `ci/test.sh` and this
//! crate's `Cargo.toml`.
//!
//! This crate is `#![no_std]`, provides its own `#[panic_handler]` and
//! `#[global_allocator]`, and is built for a bare-metal target. If `std`
//! leaked into the core, the build fails: on a bare-metal target because
//! there is no `std` to link, on the host fallback because `std`'s panic
//! handler would clash with ours (duplicate `panic_impl` lang item).
#![no_std]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------------------
// Trivial bump allocator over a static buffer (never frees).
// ---------------------------------------------------------------------------

const HEAP_SIZE: usize = 256 * 1024;

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
    loop {
        core::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------
// References into the core, so that it is actually compiled and linked in.
// ---------------------------------------------------------------------------

/// Names the core's tree type, backend trait and operations for any backend.
///
/// A generic function is fully type-checked but not monomorphized, so this
/// needs no concrete backend (there is none without `std` yet), only the
/// public API: `Tree`/`InlineMassTree`, `NodeAllocatorGeneric`, `new_in`,
/// `guard`, `insert`, `get`, `len`.
pub fn roundtrip<A: masstree::NodeAllocatorGeneric>(backend: A) -> (Option<u64>, usize) {
    let tree: masstree::InlineMassTree<u64, A> = masstree::Tree::new_in(backend);
    let guard = tree.guard();
    tree.insert(b"key", 7u64, &guard);
    let got = tree.get(b"key", &guard);
    let len = tree.len();
    drop(guard);
    (got, len)
}

/// Exported entry point, so the staticlib has a symbol and the global
/// allocator and panic handler above are linked.
#[unsafe(no_mangle)]
pub extern "C" fn masstree_nostd_check() -> usize {
    // Exercise `alloc` through the global allocator above.
    let v: alloc::vec::Vec<u8> = alloc::vec![1, 2, 3];
    v.len() + core::mem::size_of::<Option<u64>>()
}
