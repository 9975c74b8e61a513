//! [`Buf`], a growable buffer in memory from an `allocator_api2` allocator:
//! the scratch memory of cursors, iterators and the bulk loader, taken from
//! the backend's allocator ([`NodeAllocatorGeneric::raw_allocator`]) so that
//! nothing the tree does at run time needs the global allocator.
//!
//! Only what those users need: push and pop, `extend_from_slice` and
//! `truncate` (the cursor's key writes, kept small and inline), slices
//! through `Deref`. It grows by doubling through [`Allocator::grow`]; the
//! infallible forms send a failure to the tree's out-of-memory handler, the
//! `try_` forms return [`AllocError`].
//!
//! [`NodeAllocatorGeneric::raw_allocator`]: crate::backend::NodeAllocatorGeneric::raw_allocator

use core::alloc::Layout;
use core::fmt;
use core::mem::{align_of, needs_drop, size_of};
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator};

/// A growable array of `T` in memory from `R`.
///
/// Invariants: `ptr` is dangling while `cap == 0`, else the start of a block
/// from `alloc` with the layout of `cap` elements (`Layout::array::<T>(cap)`);
/// the first `len <= cap` elements are initialized.
pub(crate) struct Buf<T, R: Allocator> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
    alloc: R,
}

impl<T, R: Allocator> Buf<T, R> {
    /// Elements the first allocation holds.
    const MIN_CAP: usize = if size_of::<T>() == 1 { 32 } else { 4 };

    /// An empty buffer; allocates nothing yet.
    #[inline]
    pub(crate) const fn new_in(alloc: R) -> Self {
        // The cursor's and the loader's elements are never zero-sized; this
        // keeps the layout arithmetic simple.
        const { assert!(size_of::<T>() != 0, "Buf does not hold zero-sized types") };
        Buf {
            ptr: NonNull::dangling(),
            len: 0,
            cap: 0,
            alloc,
        }
    }

    /// Makes room for `additional` more elements, or reports that the
    /// allocator refused (the buffer unchanged).
    #[inline]
    pub(crate) fn try_reserve(&mut self, additional: usize) -> Result<(), AllocError> {
        if self.cap - self.len >= additional {
            return Ok(());
        }
        self.grow(additional)
    }

    /// Makes room for `additional` more elements; a refusal goes to the
    /// tree's out-of-memory handler.
    #[inline]
    pub(crate) fn reserve(&mut self, additional: usize) {
        if self.cap - self.len < additional {
            self.grow_or_die(additional);
        }
    }

    #[cold]
    #[inline(never)]
    fn grow_or_die(&mut self, additional: usize) {
        if self.grow(additional).is_err() {
            let layout = Layout::array::<T>(self.len.saturating_add(additional))
                .unwrap_or(Layout::new::<T>());
            crate::tree::out_of_memory_for(layout);
        }
    }

    /// Grows to at least `len + additional` elements (at least double).
    #[cold]
    #[inline(never)]
    fn grow(&mut self, additional: usize) -> Result<(), AllocError> {
        let need = self.len.checked_add(additional).ok_or(AllocError)?;
        let cap = need.max(self.cap.saturating_mul(2)).max(Self::MIN_CAP);
        let new = Layout::array::<T>(cap).map_err(|_| AllocError)?;
        let block = if self.cap == 0 {
            self.alloc.allocate(new)?
        } else {
            // SAFETY: the invariant: `ptr` is a block from `alloc` with the
            // layout of `self.cap` elements, which is valid (it was made) and
            // no larger than `new` (same alignment, `cap > self.cap`).
            unsafe {
                let old =
                    Layout::from_size_align_unchecked(self.cap * size_of::<T>(), align_of::<T>());
                self.alloc.grow(self.ptr.cast(), old, new)?
            }
        };
        self.ptr = block.cast();
        self.cap = cap;
        Ok(())
    }

    /// Appends `value`; a refusal to grow goes to the out-of-memory handler.
    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        self.reserve(1);
        // SAFETY: room for one more was just made.
        unsafe { self.push_unchecked(value) }
    }

    /// Appends `value`, or gives it back if the allocator refuses to grow.
    #[inline]
    pub(crate) fn try_push(&mut self, value: T) -> Result<(), T> {
        if self.try_reserve(1).is_err() {
            return Err(value);
        }
        // SAFETY: room for one more was just made.
        unsafe { self.push_unchecked(value) };
        Ok(())
    }

    /// # Safety
    /// `len < cap`.
    #[inline]
    unsafe fn push_unchecked(&mut self, value: T) {
        // SAFETY: the caller's guarantee: slot `len` is inside the block.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
    }

    /// Removes and returns the last element.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the element at the old `len - 1` is initialized, and no
        // longer counted, so it is read out exactly once.
        Some(unsafe { self.ptr.as_ptr().add(self.len).read() })
    }

    /// Drops the elements from `len` on (nothing if there are fewer).
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let tail = ptr::slice_from_raw_parts_mut(
            // SAFETY: `len < self.len <= cap`: inside the block.
            unsafe { self.ptr.as_ptr().add(len) },
            self.len - len,
        );
        self.len = len;
        if needs_drop::<T>() {
            // SAFETY: the tail was initialized and is no longer counted, so
            // it is dropped exactly once (after `len` is set: a panicking
            // destructor leaves no element counted twice).
            unsafe { ptr::drop_in_place(tail) };
        }
    }

    /// Drops every element; keeps the memory.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.truncate(0);
    }

    /// The initialized elements.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` elements are initialized (`ptr` is
        // dangling and well aligned when `len == 0`).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The initialized elements, mutably.
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy, R: Allocator> Buf<T, R> {
    /// Appends a copy of `items`; a refusal to grow goes to the
    /// out-of-memory handler.
    #[inline]
    pub(crate) fn extend_from_slice(&mut self, items: &[T]) {
        self.reserve(items.len());
        // SAFETY: room for `items.len()` more was just made; `items` cannot
        // overlap the spare room (it is not initialized, so not borrowed).
        unsafe {
            ptr::copy_nonoverlapping(items.as_ptr(), self.ptr.as_ptr().add(self.len), items.len());
        }
        self.len += items.len();
    }
}

impl<T, R: Allocator> Deref for Buf<T, R> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T, R: Allocator> DerefMut for Buf<T, R> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: fmt::Debug, R: Allocator> fmt::Debug for Buf<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl<T, R: Allocator> Drop for Buf<T, R> {
    fn drop(&mut self) {
        self.clear();
        if self.cap != 0 {
            // SAFETY: the invariant: a block from `alloc` with this (valid)
            // layout, given back once.
            unsafe {
                let layout =
                    Layout::from_size_align_unchecked(self.cap * size_of::<T>(), align_of::<T>());
                self.alloc.deallocate(self.ptr.cast(), layout);
            }
        }
    }
}

// SAFETY: a `Buf` owns its elements and its block, like a `Vec<T, R>`: it may
// move to another thread if the elements and the allocator may.
unsafe impl<T: Send, R: Allocator + Send> Send for Buf<T, R> {}
// SAFETY: `&Buf` gives only `&[T]` and `&R`.
unsafe impl<T: Sync, R: Allocator + Sync> Sync for Buf<T, R> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_alloc::TestAlloc;

    #[test]
    fn grows_copies_and_frees() {
        let a = TestAlloc::new();
        {
            let mut b = Buf::<u8, _>::new_in(&*a);
            assert_eq!(a.total_allocs(), 0);
            for i in 0..100u8 {
                b.extend_from_slice(&[i, i]);
                b.truncate(b.len() - 1);
            }
            assert_eq!(&b[..], &(0..100).collect::<std::vec::Vec<u8>>()[..]);
            // Doubling: 32, 64, 128 bytes.
            assert_eq!(a.requests(), 3);
            assert_eq!(a.live_allocs(), 1);
            b.clear();
            assert!(b.is_empty());
            b.extend_from_slice(b"abc");
            assert_eq!(&b[..], b"abc");
        }
        a.assert_empty();
    }

    #[test]
    fn drops_elements_once_and_reports_refusal() {
        let a = TestAlloc::new();
        let drops = std::rc::Rc::new(());
        {
            let mut b = Buf::new_in(&*a);
            for _ in 0..10 {
                b.push(drops.clone());
            }
            assert_eq!(std::rc::Rc::strong_count(&drops), 11);
            drop(b.pop());
            b.truncate(4);
            assert_eq!(std::rc::Rc::strong_count(&drops), 5);
            if let Some(last) = b.last_mut() {
                *last = std::rc::Rc::new(());
            }
            assert_eq!(std::rc::Rc::strong_count(&drops), 4);
            // Full at 4 (the first block held 4, grown to 8, then 16): refuse
            // the next growth.
            while b.len() < b.cap {
                b.push(drops.clone());
            }
            a.refuse(true);
            let back = b.try_push(drops.clone());
            assert!(back.is_err());
            assert_eq!(b.try_reserve(1), Err(AllocError));
            a.refuse(false);
        }
        assert_eq!(std::rc::Rc::strong_count(&drops), 1);
        a.assert_empty();
    }
}
