//! A small `allocator_api2` allocator over one byte buffer: blocks are bumped
//! from the buffer; freed blocks (and gaps skipped for alignment) go on a
//! list and are handed out again to requests they fit (best fit; the tail of
//! a larger block goes back on the list; no coalescing). One spin lock; no
//! global allocator, no heap.

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use masstree::allocator_api2::alloc::{AllocError, Allocator};

/// A freed block, written into the block itself.
#[repr(C)]
struct Free {
    next: *mut Free,
    size: usize,
}

struct State {
    base: *mut u8,
    len: usize,
    /// Offset of the first never-used byte.
    bumped: usize,
    free: *mut Free,
    /// Bytes handed out and not returned.
    in_use: usize,
}

/// The allocator; share it as `&Heap`.
pub struct Heap {
    locked: AtomicBool,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only touched with `locked` held (see `with`), and the
// buffer it points to belongs to the heap alone (`Heap::new`'s contract).
unsafe impl Sync for Heap {}
// SAFETY: as above; nothing in the heap is tied to the thread that made it.
unsafe impl Send for Heap {}

impl Heap {
    /// A heap over `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` must be aligned for a `usize`, `base..base + len` valid for
    /// reads and writes, and used by nothing but this heap (and the blocks it hands out) for as long as the
    /// heap or any block from it is alive.
    pub unsafe fn new(base: *mut u8, len: usize) -> Self {
        assert!(
            base.addr() % align_of::<Free>() == 0,
            "heap buffer not word-aligned"
        );
        let state = State {
            base,
            len,
            bumped: 0,
            free: ptr::null_mut(),
            in_use: 0,
        };
        Heap {
            locked: AtomicBool::new(false),
            state: UnsafeCell::new(state),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // Acquire/Release: the lock orders every access to `state`.
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to `state`.
        let r = f(unsafe { &mut *self.state.get() });
        // Release: publishes the writes to `state` to the next Acquire of the lock.
        self.locked.store(false, Ordering::Release);
        r
    }

    /// (bytes handed out and not returned, bytes of the buffer ever bumped).
    pub fn usage(&self) -> (usize, usize) {
        self.with(|s| (s.in_use, s.bumped))
    }
}

/// What a block for `layout` takes: room for a `Free` when it comes back.
fn rounded(layout: Layout) -> (usize, usize) {
    let align = layout.align().max(align_of::<Free>());
    (
        layout
            .size()
            .max(size_of::<Free>())
            .next_multiple_of(align_of::<Free>()),
        align,
    )
}

// SAFETY: every block handed out is a range of the buffer that no other live
// block overlaps (bumped once, or taken off the free list), aligned as asked
// and at least as large; `deallocate` gets it back with its layout.
unsafe impl Allocator for Heap {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let (size, align) = rounded(layout);
        let block = self.with(|s| {
            // Best fit among the free blocks that are aligned and large enough.
            let mut best: Option<(*mut *mut Free, usize)> = None;
            let mut link: *mut *mut Free = &mut s.free;
            // SAFETY: each free block holds a `Free` written by `push` and is
            // owned by the list, which only code under the lock touches.
            unsafe {
                while !(*link).is_null() {
                    let b = *link;
                    if b.addr() % align == 0
                        && (*b).size >= size
                        && best.is_none_or(|(_, bs)| (*b).size < bs)
                    {
                        best = Some((link, (*b).size));
                    }
                    link = &raw mut (*b).next;
                }
                if let Some((link, bsize)) = best {
                    let b = *link;
                    *link = (*b).next;
                    // The tail goes back to the list if a `Free` fits in it
                    // (`size` keeps it aligned for one).
                    if bsize - size >= size_of::<Free>() {
                        push(s, b.cast::<u8>().add(size), bsize - size);
                    }
                    s.in_use += size;
                    return Some(b.cast::<u8>());
                }
            }
            let start = (s.base.addr() + s.bumped).next_multiple_of(align) - s.base.addr();
            let end = start.checked_add(size).filter(|&e| e <= s.len)?;
            // The gap skipped for alignment goes on the list if a `Free` fits.
            let gap = s.bumped.next_multiple_of(align_of::<Free>());
            s.bumped = end;
            s.in_use += size;
            // SAFETY: `gap..end` lies inside the buffer (`end <= len`) and was
            // never handed out; `base` is aligned for `Free` (`Heap::new`), so
            // `gap` is too, and `start` (aligned for `Free` as well) is >= `gap`.
            unsafe {
                if start - gap >= size_of::<Free>() {
                    push(s, s.base.add(gap), start - gap);
                }
                Some(s.base.add(start))
            }
        });
        let p = block.ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(
            NonNull::new(p).ok_or(AllocError)?,
            size,
        ))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let (size, _) = rounded(layout);
        self.with(|s| {
            // SAFETY: the caller returns a block of ours, `size` bytes (as
            // `allocate` rounded them) aligned for `Free`; it is the list's now.
            unsafe { push(s, ptr.as_ptr(), size) };
            s.in_use -= size;
        });
    }
}

/// Puts `size` bytes at `p` on the free list.
///
/// # Safety
/// `p` is aligned for `Free`, `size >= size_of::<Free>()`, and the bytes are
/// the heap's own and in no one's use; the lock is held (`s` is the state).
unsafe fn push(s: &mut State, p: *mut u8, size: usize) {
    let b = p.cast::<Free>();
    // SAFETY: the caller's contract: room for an aligned `Free` nobody uses.
    unsafe { b.write(Free { next: s.free, size }) };
    s.free = b;
}
