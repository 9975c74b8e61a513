//! Out-of-line key suffixes (the role of `stringbag.hh` in the C++ original).
//!
//! A key that continues past its slice and is alone with that slice keeps the
//! rest of its bytes in a [`Suffix`] record; the slot's value word points at
//! the record, and the record holds the key's value word. Bytes never change
//! after the record is published; only the value word is replaced in place.
//! A record is retired (not freed) when its key moves to a new layer.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use crate::sync::{AtomicPtr, Ordering};

/// An out-of-line key suffix with the key's value word. Opaque: backends only
/// allocate and free it, using [`Suffix::layout`] and [`Suffix::layout_of`].
#[repr(C)]
pub struct Suffix {
    value: AtomicPtr<()>,
    len: usize,
    // `len` bytes follow.
}

impl Suffix {
    /// The layout of a record holding `len` suffix bytes.
    pub fn layout(len: usize) -> Layout {
        let (l, _) = Layout::new::<Suffix>()
            .extend(Layout::array::<u8>(len).expect("suffix too long"))
            .expect("suffix too long");
        l.pad_to_align()
    }

    /// The layout of an initialized record.
    ///
    /// # Safety
    /// `p` must point to a record built by the tree (its length field is read).
    pub unsafe fn layout_of(p: NonNull<Suffix>) -> Layout {
        // SAFETY: the caller guarantees an initialized record; `len` never changes.
        Self::layout(unsafe { (*p.as_ptr()).len })
    }

    /// Builds a record in place.
    ///
    /// # Safety
    /// `p` must be valid for writes of `Suffix::layout(bytes.len())`.
    pub(crate) unsafe fn init_at(p: NonNull<Suffix>, bytes: &[u8], value: *mut ()) {
        let p = p.as_ptr();
        // SAFETY: the caller guarantees the allocation covers the header and bytes.
        unsafe {
            ptr::addr_of_mut!((*p).value).write(AtomicPtr::new(value));
            ptr::addr_of_mut!((*p).len).write(bytes.len());
            let data = p.cast::<u8>().add(size_of::<Suffix>());
            ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        }
    }

    /// The suffix bytes.
    ///
    /// # Safety
    /// `p` must point to an initialized record that outlives `'a`.
    pub(crate) unsafe fn bytes<'a>(p: *const Suffix) -> &'a [u8] {
        // SAFETY: the caller guarantees a live record; its bytes are immutable.
        unsafe {
            let data = p.cast::<u8>().add(size_of::<Suffix>());
            core::slice::from_raw_parts(data, (*p).len)
        }
    }

    /// The key's value word.
    #[inline]
    pub(crate) fn value(&self) -> *mut () {
        // Acquire: pairs with the Release in `init_at`'s publication and in
        // `replace_value`, so an out-of-line value is fully built when read.
        self.value.load(Ordering::Acquire)
    }

    /// Replaces the value word, returning the old one. Caller holds the leaf lock.
    #[inline]
    pub(crate) fn replace_value(&self, value: *mut ()) -> *mut () {
        // AcqRel: Release publishes the new value's contents to readers' Acquire
        // loads in `value`; Acquire lets us retire the old one we take over.
        self.value.swap(value, Ordering::AcqRel)
    }
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn layout_holds_bytes() {
        let l = Suffix::layout(13);
        assert!(l.size() >= size_of::<Suffix>() + 13);
        assert_eq!(l.align(), align_of::<Suffix>());
        let mut buf = [0u64; 8];
        let p = NonNull::new(buf.as_mut_ptr().cast::<Suffix>()).unwrap();
        // SAFETY: `buf` has 64 bytes, more than the layout of a 13-byte suffix.
        unsafe {
            Suffix::init_at(p, b"hello, suffix", ptr::null_mut());
            assert_eq!(Suffix::bytes(p.as_ptr()), b"hello, suffix");
            assert_eq!(Suffix::layout_of(p), l);
        }
    }
}
