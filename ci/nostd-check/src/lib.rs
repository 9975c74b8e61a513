//! no_std check for the `masstree` core: see `ci/test.sh` (step `nostd`) and
//! this crate's `Cargo.toml`.
//!
//! This crate is `#![no_std]`, provides its own `#[panic_handler]`, and is
//! built for a bare-metal target. If `std` leaked into the core, the build
//! fails: on a bare-metal target because there is no `std` to link, on the
//! host because `std`'s panic handler would clash with ours (duplicate
//! `panic_impl` lang item).
//!
//! Without the `alloc` feature it has no `#[global_allocator]` and does not
//! link the `alloc` crate: the trees take every byte from [`Bump`], an
//! `allocator_api2` allocator over a static buffer, through the backends'
//! `new_in`. If anything in the core (or a dependency) linked `alloc`, the
//! staticlib would not build ("no global memory allocator found but one is
//! required"), and `ci/test.sh` also checks its symbols for the global
//! allocator's. With `alloc`, the same buffer is the global allocator as
//! well, and the global-allocator constructors are exercised.
//!
//! With the `pool` / `arena` features it also runs real trees on those
//! no_std backends; `ci/test.sh` links the host build into `harness.c` and
//! runs it.
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use masstree::allocator_api2::alloc::{AllocError, Allocator};

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

/// Hands out disjoint ranges of `HEAP`; frees nothing.
pub struct Bump {
    /// Offset of the first free byte in `HEAP`.
    next: AtomicUsize,
}

impl Bump {
    /// A block of `layout` from `HEAP`, or null if it does not fit.
    fn take(&self, layout: Layout) -> *mut u8 {
        let base = HEAP.0.get().cast::<u8>();
        // Relaxed: the counter only hands out disjoint ranges; no other
        // memory is published through it.
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
            // Relaxed (both): as above.
            match self
                .next
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return base.wrapping_add(start),
                Err(now) => cur = now,
            }
        }
    }
}

// SAFETY: every returned block lies inside `HEAP`, is aligned and sized as
// requested, and is never handed out twice (the bump offset only grows);
// `deallocate` keeps nothing, so a block stays valid until the program ends.
unsafe impl Allocator for Bump {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let p = NonNull::new(self.take(layout)).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: Layout) {}
}

/// The allocator every tree below takes its memory from.
static BUMP: Bump = Bump {
    next: AtomicUsize::new(0),
};

/// With `alloc`: the same buffer is the global allocator.
#[cfg(feature = "alloc")]
mod global {
    use core::alloc::{GlobalAlloc, Layout};

    struct OnBump;

    // SAFETY: as `Bump`'s `Allocator` impl: disjoint, aligned blocks of
    // `HEAP`, never freed.
    unsafe impl GlobalAlloc for OnBump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            super::BUMP.take(layout)
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
    }

    #[global_allocator]
    static ALLOCATOR: OnBump = OnBump;
}

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

/// Builds a tree on `backend`, inserts keys (short, layered and suffixed),
/// reads them back, scans them with a cursor both ways and removes one:
/// names the core's `Tree`/`InlineMassTree`, `NodeAllocatorGeneric`,
/// `new_in`, `guard`, `insert`, `get`, `cursor`, `remove` and `len`.
/// Generic, so it is type-checked even when no backend feature is on
/// (nothing is monomorphized then). Returns true if every answer was right.
pub fn roundtrip<A: masstree::backend::NodeAllocatorGeneric>(backend: A) -> bool {
    const KEYS: [&[u8]; 5] = [
        b"key",
        b"layer/shared/1",
        b"layer/shared/2",
        b"a-key-long-enough-for-a-suffix-record",
        b"z",
    ];
    let tree: masstree::InlineMassTree<usize, A> = masstree::Tree::new_in(backend);
    let guard = tree.guard();
    let mut ok = true;
    for (i, k) in KEYS.iter().enumerate() {
        ok &= tree.insert(k, i, &guard).is_none();
    }
    for (i, k) in KEYS.iter().enumerate() {
        ok &= tree.get(k, &guard) == Some(i);
    }
    let mut cursor = tree.cursor(&guard);
    let (mut forward, mut sum) = (0, 0);
    while let Some((key, v)) = cursor.next() {
        ok &= KEYS.get(v) == Some(&key);
        forward += 1;
        sum += v;
    }
    let mut backward = 0;
    let mut at = cursor.seek_last();
    while at.is_some() {
        backward += 1;
        at = cursor.prev();
    }
    ok &= forward == KEYS.len() && backward == KEYS.len() && sum == 10;
    drop(cursor);
    ok &= tree.remove(b"key", &guard) == Some(0);
    drop(guard);
    ok && tree.len() == KEYS.len() - 1
}

/// Bulk-loads 1,000 keys into a tree on `backend` and range-checks it with
/// a cursor seek.
pub fn bulk<A: masstree::backend::NodeAllocatorGeneric>(backend: A) -> bool {
    let pairs = (0..1000u64).map(|i| (i.to_be_bytes(), i as usize));
    let Ok(tree) = masstree::BulkLoader::new(backend).load::<masstree::Inline<usize>, _, _>(pairs)
    else {
        return false;
    };
    let guard = tree.guard();
    let mut cursor = tree.cursor(&guard);
    let hit = cursor.seek(&500u64.to_be_bytes(), masstree::Seek::Gt);
    hit.map(|(_, v)| v) == Some(501) && tree.len() == 1000
}

/// Exported entry point, so the staticlib has a symbol and the panic
/// handler (and, with `alloc`, the global allocator) above are linked. With a
/// backend feature on, it runs real trees on that backend, monomorphizing the
/// core.
///
/// Returns the number of backends exercised, or `usize::MAX` if anything
/// gave a wrong answer.
#[unsafe(no_mangle)]
pub extern "C" fn masstree_nostd_check() -> usize {
    #[cfg(feature = "alloc")]
    {
        // Exercise `alloc` through the global allocator above.
        let v: alloc::vec::Vec<u8> = alloc::vec![1, 2, 3];
        if v.iter().sum::<u8>() != 6 {
            return usize::MAX;
        }
    }
    #[allow(unused_mut)]
    let mut backends = 0;

    #[cfg(feature = "pool")]
    {
        use masstree::alloc_backends::pool::PoolBackend;
        if !roundtrip(PoolBackend::new_in(&BUMP)) || !bulk(PoolBackend::new_in(&BUMP)) {
            return usize::MAX;
        }
        #[cfg(feature = "alloc")]
        if !roundtrip(PoolBackend::new()) {
            return usize::MAX;
        }
        backends += 1;
    }
    #[cfg(feature = "arena")]
    {
        use masstree::alloc_backends::arena::ArenaBackend;
        if !roundtrip(ArenaBackend::new_in(&BUMP)) || !bulk(ArenaBackend::new_in(&BUMP)) {
            return usize::MAX;
        }
        #[cfg(feature = "alloc")]
        if !roundtrip(ArenaBackend::new()) {
            return usize::MAX;
        }
        backends += 1;
    }
    #[cfg(feature = "huge-pages")]
    {
        // The pool's slabs are larger than a node, so they pass through;
        // a node-sized request takes a slot of a 2 MiB slab.
        use masstree::alloc_backends::{huge_pages::HugePageSlabs, pool::PoolBackend};
        let slabs = HugePageSlabs::new_in(&BUMP);
        let node = Layout::from_size_align(320, 64).unwrap();
        let Ok(slot) = slabs.allocate(node) else {
            return usize::MAX;
        };
        if slabs.stats().slots_in_use != 1 {
            return usize::MAX;
        }
        // SAFETY: allocated just above with this layout.
        unsafe { slabs.deallocate(slot.cast(), node) };
        if !roundtrip(PoolBackend::new_in(slabs)) {
            return usize::MAX;
        }
        backends += 1;
    }
    backends
}
