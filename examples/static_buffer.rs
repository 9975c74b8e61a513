//! A tree whose every byte comes from a fixed static buffer: the pool backend
//! on a tiny bump allocator, as on a microcontroller without a heap for it.
//! When the buffer is full, inserts report an error and hand the value back;
//! the tree stays usable, and removing keys lets the pool reuse their nodes
//! after `reclaim`.
//!
//! `cargo run --example static_buffer --features pool`

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use masstree::InlineMassTree;
use masstree::alloc_backends::pool::PoolBackend;
use masstree::allocator_api2::alloc::{AllocError, Allocator};

/// 64 KiB, aligned for nodes.
#[repr(C, align(64))]
struct Buffer(UnsafeCell<[u8; 64 * 1024]>);

// SAFETY: bytes are handed out once each, by the atomic bump below.
unsafe impl Sync for Buffer {}

static BUFFER: Buffer = Buffer(UnsafeCell::new([0; 64 * 1024]));

/// A bump allocator over `BUFFER`: never frees (the pool reuses its slots).
struct StaticBump {
    next: AtomicUsize,
}

static ALLOC: StaticBump = StaticBump {
    next: AtomicUsize::new(0),
};

// SAFETY: each range of the buffer is returned at most once, aligned as asked.
unsafe impl Allocator for &StaticBump {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let base: *mut u8 = BUFFER.0.get().cast();
        let size = 64 * 1024;
        // Relaxed: the counter only hands out disjoint ranges; no data is
        // published through it.
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base as usize + cur).next_multiple_of(layout.align()) - base as usize;
            let end = start.checked_add(layout.size()).ok_or(AllocError)?;
            if end > size {
                return Err(AllocError);
            }
            match self
                .next
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    // SAFETY: `start..end` lies inside the buffer.
                    let p = unsafe { base.add(start) };
                    return Ok(NonNull::slice_from_raw_parts(
                        NonNull::new(p).ok_or(AllocError)?,
                        layout.size(),
                    ));
                }
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn deallocate(&self, _: NonNull<u8>, _: Layout) {}
}

fn main() {
    let mut tree: InlineMassTree<u64, PoolBackend<&StaticBump>> =
        InlineMassTree::new_in(PoolBackend::new_in(&ALLOC));
    let mut stored = 0u64;
    {
        let g = tree.guard();
        let refused = loop {
            match tree.fallible().insert(&stored.to_be_bytes(), stored, &g) {
                Ok(_) => stored += 1,
                Err(e) => break e.into_value(),
            }
        };
        println!(
            "64 KiB held {stored} keys; the next insert failed cleanly and returned its value {refused}"
        );
        assert_eq!(refused, stored);
        assert_eq!(tree.len() as u64, stored);
        for i in 0..stored {
            assert_eq!(tree.get(&i.to_be_bytes(), &g), Some(i));
        }
        println!("pool: {:?}", tree.backend().stats());
    }
    {
        let g = tree.guard();
        for i in 0..stored / 2 {
            tree.remove(&i.to_be_bytes(), &g);
        }
    }
    tree.reclaim();
    let g = tree.guard();
    let mut again = 0u64;
    while tree
        .fallible()
        .insert(&(1_000_000 + again).to_be_bytes(), again, &g)
        .is_ok()
    {
        again += 1;
    }
    println!("after removing half and reclaiming, {again} more keys fit in the same buffer");
    assert!(again > 0);
}
