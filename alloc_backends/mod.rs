//! Node allocator backends, each behind its own feature.
//!
//! | backend | feature | memory | reclamation |
//! |---------|---------|--------|-------------|
#![cfg_attr(
    feature = "seize",
    doc = "| [`seize::SeizeBackend`] | `seize` (std) | one allocation per node, value and suffix | epoch-style, through a [`::seize::Collector`] owned by the tree |"
)]
#![cfg_attr(
    feature = "pool",
    doc = "| [`pool::PoolBackend`] | `pool` (no_std) | nodes in slabs of slots, reused through a free list; values and suffixes one allocation each | none while shared: retired memory waits in a limbo list until [`Tree::reclaim`](crate::Tree::reclaim) (`&mut`) or drop |"
)]
#![cfg_attr(
    feature = "arena",
    doc = "| [`arena::ArenaBackend`] | `arena` (no_std) | everything bump-allocated from growing chunks, never reused | none: chunks are freed at drop; retired values are dropped at [`Tree::reclaim`](crate::Tree::reclaim) or drop |"
)]
//!
//! (The table lists the backends of the enabled features.) All take their
//! memory from an [`allocator_api2::alloc::Allocator`] (default:
//! [`Global`](allocator_api2::alloc::Global)) and report exhaustion as
//! [`AllocError`](crate::backend::AllocError).
#![cfg_attr(
    feature = "huge-pages",
    doc = "\n[`huge_pages::HugePageSlabs`] (feature `huge-pages`, no_std) is such an allocator: it packs node-sized blocks (under the seize backend, the leaves) into 2 MiB slabs, backed by huge pages with `std` on Linux, and passes every other request on."
)]

#[cfg(feature = "seize")]
pub mod seize;

#[cfg(feature = "pool")]
pub mod pool;

#[cfg(feature = "arena")]
pub mod arena;

#[cfg(feature = "huge-pages")]
pub mod huge_pages;

#[cfg(any(feature = "seize", feature = "huge-pages"))]
mod slabs;

/// Allocation with a one-word header in front, holding a pointer back to the
/// allocator, so that deferred reclaimers (plain `fn`s) can find it.
#[cfg(feature = "seize")]
mod header {
    use core::alloc::Layout;

    /// The full layout and the offset of the payload.
    pub(crate) fn with_header<A>(payload: Layout) -> (Layout, usize) {
        let (l, off) = Layout::new::<*const A>()
            .extend(payload)
            .expect("layout overflow");
        (l.pad_to_align(), off)
    }
}

/// The larger of the two node alignments (both are 64 today): what a
/// memory region that holds nodes of either kind must be aligned to.
#[cfg(any(
    feature = "pool",
    feature = "arena",
    feature = "huge-pages",
    feature = "seize"
))]
const NODE_ALIGN: usize = {
    let (l, i) = (align_of::<crate::backend::Leaf>(), align_of::<crate::backend::Internode>());
    if l > i { l } else { i }
};

/// The size of a slot that holds a node of either kind: the larger node,
/// rounded up to [`NODE_ALIGN`] (320 bytes on 64-bit targets).
#[cfg(any(feature = "pool", feature = "huge-pages"))]
const NODE_SLOT: usize = {
    let (l, i) = (size_of::<crate::backend::Leaf>(), size_of::<crate::backend::Internode>());
    (if l > i { l } else { i }).next_multiple_of(NODE_ALIGN)
};

/// Deferred records for the backends that reclaim only at a quiescent point
/// (`reclaim(&mut self)` or drop): each value or suffix record that may be
/// retired has a [`Header`](limbo::Header) in front of its payload, holding
/// the link of an intrusive [`Limbo`](limbo::Limbo) list and a type-erased
/// release function. Retiring writes only the header, never the payload,
/// which readers may still be reading. The list allocates nothing.
#[cfg(any(feature = "pool", feature = "arena"))]
mod limbo {
    use core::alloc::Layout;
    use core::ptr::{self, NonNull};
    use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    #[cfg(feature = "pool")]
    use crate::backend::Suffix;

    /// Drops a record's payload (if it has a destructor) and returns the
    /// layout of the whole allocation, header included.
    pub(crate) type Release = unsafe fn(NonNull<Header>) -> Layout;

    /// The header in front of a deferred record's payload.
    pub(crate) struct Header {
        next: *mut Header,
        release: Release,
    }

    /// Where the payload starts after a header, for a payload of alignment `align`.
    #[inline]
    pub(crate) const fn payload_offset(align: usize) -> usize {
        size_of::<Header>().next_multiple_of(align)
    }

    /// The layout of a header followed by `payload`, and the payload's offset;
    /// `None` on overflow.
    #[inline]
    pub(crate) fn with_header(payload: Layout) -> Option<(Layout, usize)> {
        let off = payload_offset(payload.align());
        let size = off.checked_add(payload.size())?;
        let align = payload.align().max(align_of::<Header>());
        let layout = Layout::from_size_align(size, align).ok()?;
        Some((layout.pad_to_align(), off))
    }

    /// The header of a payload allocated behind one.
    ///
    /// # Safety
    /// `payload` was allocated by the layout of [`with_header`] for a payload
    /// of alignment `align`, at its offset.
    #[inline]
    pub(crate) unsafe fn header_of(payload: NonNull<u8>, align: usize) -> NonNull<Header> {
        // SAFETY: the caller guarantees the header sits `payload_offset(align)`
        // bytes before the payload, in the same allocation.
        unsafe { payload.sub(payload_offset(align)).cast() }
    }

    /// The payload behind a header, for a payload of alignment `align`.
    ///
    /// # Safety
    /// As [`header_of`], the other way.
    #[inline]
    pub(crate) unsafe fn payload_of(h: NonNull<Header>, align: usize) -> NonNull<u8> {
        // SAFETY: as in `header_of`.
        unsafe { h.cast::<u8>().add(payload_offset(align)) }
    }

    /// Releases a `T` record: drops the `T`, returns the allocation's layout.
    ///
    /// # Safety
    /// `h` heads a live `T` allocated behind a header; the `T` is not used again.
    pub(crate) unsafe fn release_value<T>(h: NonNull<Header>) -> Layout {
        // SAFETY: the caller guarantees a live `T` at the payload, dropped once, here.
        unsafe { ptr::drop_in_place(payload_of(h, align_of::<T>()).cast::<T>().as_ptr()) };
        // SAFETY: the layout did not overflow when the record was allocated.
        unsafe { with_header(Layout::new::<T>()).unwrap_unchecked().0 }
    }

    #[cfg(feature = "pool")]
    /// Releases a suffix record (no destructor): returns the allocation's layout.
    ///
    /// # Safety
    /// `h` heads an initialized [`Suffix`] allocated behind a header.
    pub(crate) unsafe fn release_suffix(h: NonNull<Header>) -> Layout {
        // SAFETY: the caller guarantees an initialized record at the payload.
        let payload = unsafe { Suffix::layout_of(payload_of(h, align_of::<Suffix>()).cast()) };
        // SAFETY: the layout did not overflow when the record was allocated.
        unsafe { with_header(payload).unwrap_unchecked().0 }
    }

    /// A push-only intrusive stack of retired records, emptied only through
    /// `&mut self`. Nothing pops concurrently, so a compare-exchange push has
    /// no ABA problem.
    pub(crate) struct Limbo {
        head: AtomicPtr<Header>,
        len: AtomicUsize,
    }

    impl Limbo {
        pub(crate) const fn new() -> Self {
            Limbo {
                head: AtomicPtr::new(ptr::null_mut()),
                len: AtomicUsize::new(0),
            }
        }

        /// Records waiting (exact when no push is in flight).
        pub(crate) fn len(&self) -> usize {
            // Relaxed: a statistic.
            self.len.load(Ordering::Relaxed)
        }

        /// Parks a record until [`Self::drain`].
        ///
        /// # Safety
        /// `h` heads an allocation made with [`with_header`] whose payload
        /// `release` accepts; it is on no list, and nobody frees it but the drain.
        pub(crate) unsafe fn push(&self, h: NonNull<Header>, release: Release) {
            let h = h.as_ptr();
            // SAFETY: the header is ours to write: readers only read the payload.
            unsafe { ptr::addr_of_mut!((*h).release).write(release) };
            // Relaxed: the list is read only through `&mut self` (drain), which
            // is ordered after every push by whatever handed out the `&mut`.
            let mut head = self.head.load(Ordering::Relaxed);
            loop {
                // SAFETY: as above; the record is not published yet.
                unsafe { ptr::addr_of_mut!((*h).next).write(head) };
                // Relaxed (both): as for the load above; no pops, so no ABA.
                match self
                    .head
                    .compare_exchange_weak(head, h, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(now) => head = now,
                }
            }
            // Relaxed: a statistic.
            self.len.fetch_add(1, Ordering::Relaxed);
        }

        /// Releases every parked record (dropping values), handing each
        /// allocation's start and layout to `free`.
        pub(crate) fn drain(&mut self, mut free: impl FnMut(NonNull<u8>, Layout)) {
            // The list is detached first: a panicking destructor leaks the
            // rest rather than releasing anything twice.
            let mut p = core::mem::replace(self.head.get_mut(), ptr::null_mut());
            *self.len.get_mut() = 0;
            while let Some(h) = NonNull::new(p) {
                // SAFETY: `push`'s contract: a live record, on this list only,
                // released once; `&mut self` proves no reader is left.
                unsafe {
                    p = (*h.as_ptr()).next;
                    let layout = ((*h.as_ptr()).release)(h);
                    free(h.cast(), layout);
                }
            }
        }
    }
}

/// Helpers shared by the tests of the no_std backends.
#[cfg(all(test, not(masstree_loom), any(feature = "pool", feature = "arena")))]
mod testing {
    use core::alloc::Layout;
    use core::ptr::NonNull;
    use core::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

    use allocator_api2::alloc::{AllocError, Allocator, Global};

    /// Scales a test size down under Miri.
    pub(crate) fn scale(n: usize) -> usize {
        if cfg!(miri) { (n / 20).max(8) } else { n }
    }

    /// An allocator on `Global` that counts live allocations and bytes, and
    /// fails requests above `fail_above` bytes.
    pub(crate) struct Counting {
        pub(crate) allocs: AtomicIsize,
        pub(crate) bytes: AtomicIsize,
        pub(crate) fail_above: AtomicUsize,
    }

    impl Counting {
        pub(crate) fn new() -> Self {
            Counting {
                allocs: AtomicIsize::new(0),
                bytes: AtomicIsize::new(0),
                fail_above: AtomicUsize::new(usize::MAX),
            }
        }
        pub(crate) fn allocs(&self) -> isize {
            self.allocs.load(Ordering::SeqCst)
        }
        pub(crate) fn bytes(&self) -> isize {
            self.bytes.load(Ordering::SeqCst)
        }
        /// Nothing is left allocated.
        pub(crate) fn assert_empty(&self) {
            assert_eq!((self.allocs(), self.bytes()), (0, 0), "allocations left");
        }
    }

    // SAFETY: forwards to `Global`.
    unsafe impl Allocator for Counting {
        fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
            if layout.size() > self.fail_above.load(Ordering::SeqCst) {
                return Err(AllocError);
            }
            let p = Global.allocate(layout)?;
            self.allocs.fetch_add(1, Ordering::SeqCst);
            self.bytes
                .fetch_add(layout.size() as isize, Ordering::SeqCst);
            Ok(p)
        }
        unsafe fn deallocate(&self, p: NonNull<u8>, layout: Layout) {
            self.allocs.fetch_sub(1, Ordering::SeqCst);
            self.bytes
                .fetch_sub(layout.size() as isize, Ordering::SeqCst);
            // SAFETY: allocated by `allocate` above with `layout`.
            unsafe { Global.deallocate(p, layout) }
        }
    }

    /// A value that counts its drops and checks it was not dropped twice.
    pub(crate) struct Tracked<'a> {
        pub(crate) id: u64,
        drops: &'a AtomicUsize,
        alive: bool,
    }

    impl<'a> Tracked<'a> {
        pub(crate) fn new(id: u64, drops: &'a AtomicUsize) -> Self {
            Tracked {
                id,
                drops,
                alive: true,
            }
        }
    }

    impl Drop for Tracked<'_> {
        fn drop(&mut self) {
            assert!(self.alive, "value {} dropped twice", self.id);
            self.alive = false;
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Keys of three shapes: short, sharing an 8-byte slice with a long
    /// suffix (suffix records, then layers), and long distinct ones.
    pub(crate) fn key(i: u64) -> std::vec::Vec<u8> {
        match i % 3 {
            0 => i.to_be_bytes().to_vec(),
            1 => std::format!("prefix::{i:010}::tail").into_bytes(),
            _ => std::format!("{i:016x}-a-longer-key").into_bytes(),
        }
    }
}
