//! The arena backend: nodes, suffix records and values bump-allocated from
//! chunks of an `allocator_api2` allocator `A`; nothing is freed one by one,
//! dropping the backend frees every chunk. No `std`, no global allocator.
//!
//! * **Chunks** start with a 16-byte header that links them for drop. The
//!   first is [`DEFAULT_FIRST_CHUNK`] bytes or what
//!   [`ArenaBackend::with_capacity_in`] asks for; each next one is twice as
//!   large, up to 16 MiB, or as large as a request that needs more. A
//!   request that does not fit abandons the rest of the current chunk. If
//!   `A` refuses a chunk, smaller ones are tried, down to what the request
//!   needs.
//! * **Reclamation.** Freeing or retiring a node or suffix record does
//!   nothing. A value's destructor runs once: at `free_value`, or, retired,
//!   at [`Tree::reclaim`](crate::Tree::reclaim) or drop, behind a 16-byte
//!   header that only values that need dropping get. Guards are free.
//!
//! Cost: memory is never reused: every removed or replaced entry keeps its
//! bytes until the backend drops, [`Tree::clear`](crate::Tree::clear)
//! included. The arena suits build-once or grow-only trees and bounded
//! lifetimes; for churn, use the pool backend.
//!
//! ```
//! use masstree::{MassTree, alloc_backends::arena::ArenaBackend};
//!
//! let backend = ArenaBackend::with_capacity(16 << 10).unwrap();
//! let tree: MassTree<String, ArenaBackend> = MassTree::new_in(backend);
//! let g = tree.guard();
//! tree.insert(b"x", "one".to_string(), &g);
//! assert_eq!(tree.get(b"x", &g).map(String::as_str), Some("one"));
//! assert_eq!(tree.backend().stats().chunks, 1);
//! ```

use core::alloc::Layout;
use core::mem::needs_drop;
use core::ptr::{self, NonNull};

#[cfg(feature = "alloc")]
use allocator_api2::alloc::Global;
use allocator_api2::alloc::{AllocError, Allocator};
use spin::mutex::SpinMutex;

use super::NODE_ALIGN;
use super::header::{self, place};
use super::limbo::{Limbo, Record, release_value};
use crate::backend::{AddressGuard, Internode, Leaf, NodeAllocatorGeneric, Suffix};

/// Size of the first chunk (header included) when none is reserved up front.
pub const DEFAULT_FIRST_CHUNK: usize = 64 << 10;
/// Chunks grow no larger than this, unless one request needs more.
const MAX_CHUNK: usize = 16 << 20;

/// The arena backend on allocator `A` (default: the global allocator); see
/// the [module docs](self).
pub struct ArenaBackend<
    #[cfg(feature = "alloc")] A: Allocator = Global,
    #[cfg(not(feature = "alloc"))] A: Allocator,
> {
    bump: SpinMutex<Bump>,
    /// Retired values whose destructors wait for `reclaim` or drop.
    pending: Limbo,
    alloc: A,
}

/// Usage figures of an [`ArenaBackend`], from [`ArenaBackend::stats`].
/// Exact when no operation is in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaStats {
    /// Chunks obtained from the allocator.
    pub chunks: usize,
    /// Bytes of those chunks.
    pub bytes_reserved: usize,
    /// Bytes handed out (alignment padding included); the rest of
    /// `bytes_reserved` is chunk headers, abandoned chunk tails and the free
    /// end of the current chunk.
    pub bytes_used: usize,
    /// Retired values whose destructors wait for `reclaim` or drop.
    pub pending_drops: usize,
}

/// The head of a chunk, at its start.
struct Chunk {
    next: *mut Chunk,
    size: usize,
}

/// Everything behind the lock.
struct Bump {
    /// The free part of the current chunk: `[cur, end)`; null before the first.
    cur: *mut u8,
    end: *mut u8,
    /// All chunks, newest first.
    chunks: *mut Chunk,
    /// Size of the next chunk (header included), unless a request needs more.
    next_size: usize,
    stats: ArenaStats,
}

// SAFETY: the pointers point into chunks the backend owns, used only under
// its lock.
unsafe impl Send for Bump {}

impl Bump {
    /// Room for `layout`: in the current chunk, else in a new one of the
    /// scheduled size (or what `layout` needs), which schedules the next.
    #[inline]
    fn bump<A: Allocator>(&mut self, alloc: &A, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let pad = self.cur.addr().wrapping_neg() & (layout.align() - 1);
        let need = pad.checked_add(layout.size()).ok_or(AllocError)?;
        if self.cur.is_null() || need > self.end.addr() - self.cur.addr() {
            self.add_chunk(alloc, layout, self.next_size)?;
            self.next_size = Self::after(self.next_size);
            return self.bump(alloc, layout);
        }
        // SAFETY: `cur + pad + size <= end`, all in the current chunk (so
        // not null).
        unsafe {
            let p = self.cur.add(pad);
            self.cur = p.add(layout.size());
            self.stats.bytes_used += need;
            Ok(NonNull::new_unchecked(p))
        }
    }

    /// The chunk size scheduled after one of `size`.
    fn after(size: usize) -> usize {
        size.saturating_mul(2).min(MAX_CHUNK).max(size)
    }

    /// Adds a chunk of `size` bytes, or of what `layout` needs if that is
    /// more; smaller, down to that, while `A` refuses.
    #[cold]
    fn add_chunk<A: Allocator>(
        &mut self,
        alloc: &A,
        layout: Layout,
        size: usize,
    ) -> Result<(), AllocError> {
        let need = (size_of::<Chunk>() + layout.align() - 1)
            .checked_add(layout.size())
            .ok_or(AllocError)?;
        let mut size = size.max(need);
        let base = loop {
            let l = Layout::from_size_align(size, NODE_ALIGN).map_err(|_| AllocError)?;
            match alloc.allocate(l) {
                Ok(base) => break base.cast::<u8>(),
                Err(_) if size > need => size = (size / 2).max(need),
                Err(e) => return Err(e),
            }
        };
        let next = self.chunks;
        // SAFETY: fresh memory of `size >= size_of::<Chunk>()` bytes, aligned
        // for the header.
        unsafe {
            base.cast::<Chunk>().write(Chunk { next, size });
            self.cur = base.as_ptr().add(size_of::<Chunk>());
            self.end = base.as_ptr().add(size);
        }
        self.chunks = base.as_ptr().cast();
        self.stats.chunks += 1;
        self.stats.bytes_reserved += size;
        Ok(())
    }
}

on_global!(ArenaBackend, "An empty arena on the global allocator.");

#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
impl ArenaBackend<Global> {
    /// [`Self::with_capacity_in`] on the global allocator. Needs the
    /// `alloc` feature.
    pub fn with_capacity(bytes: usize) -> Result<Self, AllocError> {
        Self::with_capacity_in(bytes, Global)
    }
}

impl<A: Allocator> ArenaBackend<A> {
    /// An empty arena on `alloc`; the first chunk ([`DEFAULT_FIRST_CHUNK`]
    /// bytes) is allocated on first use.
    pub const fn new_in(alloc: A) -> Self {
        let stats = ArenaStats {
            chunks: 0,
            bytes_reserved: 0,
            bytes_used: 0,
            pending_drops: 0,
        };
        let bump = SpinMutex::new(Bump {
            cur: ptr::null_mut(),
            end: ptr::null_mut(),
            chunks: ptr::null_mut(),
            next_size: DEFAULT_FIRST_CHUNK,
            stats,
        });
        ArenaBackend {
            bump,
            pending: Limbo::new(),
            alloc,
        }
    }

    /// An arena on `alloc` whose first chunk, allocated now, holds `bytes`
    /// bytes (plus its header); later chunks double from there. An error if
    /// `alloc` cannot give it.
    pub fn with_capacity_in(bytes: usize, alloc: A) -> Result<Self, AllocError> {
        let arena = Self::new_in(alloc);
        let size = bytes.checked_add(size_of::<Chunk>()).ok_or(AllocError)?;
        let mut b = arena.bump.lock();
        b.add_chunk(&arena.alloc, Layout::new::<()>(), size)?;
        b.next_size = Bump::after(size);
        // A smaller chunk is no reservation.
        if b.stats.bytes_reserved < size {
            return Err(AllocError);
        }
        drop(b);
        Ok(arena)
    }

    /// Makes sure the next `bytes` bytes of node-aligned requests come from
    /// one chunk: if the current chunk has less room, a chunk of exactly
    /// `bytes` (plus its header) is added now and the rest of the current one
    /// is abandoned; the bulk loader asks for its estimate (through
    /// [`NodeAllocatorGeneric::reserve_nodes`]), so a loaded tree wastes no
    /// chunk tail. An error, the arena unchanged, if `A` refuses the chunk.
    pub fn reserve(&self, bytes: usize) -> Result<(), AllocError> {
        let layout = Layout::from_size_align(bytes, NODE_ALIGN).map_err(|_| AllocError)?;
        let mut b = self.bump.lock();
        // Room after aligning the current end to a node?
        let pad = b.cur.addr().wrapping_neg() & (NODE_ALIGN - 1);
        if !b.cur.is_null() && b.end.addr() - b.cur.addr() >= bytes.saturating_add(pad) {
            return Ok(());
        }
        // Just what `layout` needs; the growth schedule is left as it was.
        b.add_chunk(&self.alloc, layout, 0)
    }

    /// Current usage; see [`ArenaStats`].
    pub fn stats(&self) -> ArenaStats {
        let mut stats = self.bump.lock().stats;
        stats.pending_drops = self.pending.len();
        stats
    }

    /// The allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// Bump-allocates `layout`.
    #[inline]
    fn bump(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.bump.lock().bump(&self.alloc, layout)
    }

    /// Runs the destructors of every retired value; a panicking one still
    /// lets the rest run (see [`Limbo::release`]), then goes on.
    fn run_pending(&mut self) {
        // SAFETY: `&mut self`: no guard is alive, so no reader sees a retired
        // value; each was parked once. Its memory stays in the chunks.
        unsafe { self.pending.release(|_, _| {}) };
    }
}

// SAFETY: 1. every allocation is a fresh range of a chunk, aligned as
// asked, never handed out twice; 2. nothing is freed before the backend
// drops, when no guard (which borrows it) is alive; 3. a value is dropped
// once: by `free_value`, or, retired (only its header written), by
// `reclaim(&mut self)` or drop; 4. `AddressGuard` names live backends.
unsafe impl<A: Allocator> NodeAllocatorGeneric for ArenaBackend<A> {
    address_guard!();

    type Raw = A;

    fn raw_allocator(&self) -> &A {
        &self.alloc
    }

    fn alloc_leaf(&self) -> Result<NonNull<Leaf>, AllocError> {
        Ok(self.bump(Layout::new::<Leaf>())?.cast())
    }

    fn alloc_internode(&self) -> Result<NonNull<Internode>, AllocError> {
        Ok(self.bump(Layout::new::<Internode>())?.cast())
    }

    fn alloc_suffix(&self, layout: Layout) -> Result<NonNull<Suffix>, AllocError> {
        Ok(self.bump(layout)?.cast())
    }

    fn alloc_value<T>(&self, value: T) -> Result<NonNull<T>, T> {
        // Behind a header if `T` needs dropping, so that it can wait for `reclaim`.
        let room = if needs_drop::<T>() {
            header::alloc::<Record>(Layout::new::<T>(), |l| self.bump(l))
        } else {
            self.bump(Layout::new::<T>())
        };
        // SAFETY: room for a `T`, if any.
        unsafe { place(room, value) }
    }

    unsafe fn free_leaf(&self, _: NonNull<Leaf>) {}

    unsafe fn free_internode(&self, _: NonNull<Internode>) {}

    unsafe fn free_suffix(&self, _: NonNull<Suffix>) {}

    unsafe fn free_value<T>(&self, value: NonNull<T>) {
        // SAFETY: the caller guarantees a live `T` of ours that nobody can
        // reach; it is dropped exactly once, here; its memory stays.
        unsafe { ptr::drop_in_place(value.as_ptr()) }
    }

    unsafe fn retire_leaf(&self, _: NonNull<Leaf>, _: &AddressGuard<'_>) {}

    unsafe fn retire_internode(&self, _: NonNull<Internode>, _: &AddressGuard<'_>) {}

    unsafe fn retire_suffix(&self, _: NonNull<Suffix>, _: &AddressGuard<'_>) {}

    unsafe fn retire_value<T>(&self, value: NonNull<T>, _: &AddressGuard<'_>) {
        if needs_drop::<T>() {
            // SAFETY: the caller guarantees a live `T` from `alloc_value::<T>`,
            // which put it behind a header since `T` needs dropping; it is
            // unlinked and retired once; only the header is written.
            unsafe {
                let h = header::of::<Record>(value.cast(), align_of::<T>());
                self.pending.park(h, release_value::<T>);
            }
        }
    }

    fn reserve_nodes(&self, leaves: usize, internodes: usize) {
        let bytes = leaves
            .saturating_mul(size_of::<Leaf>())
            .saturating_add(internodes.saturating_mul(size_of::<Internode>()));
        // A hint: the allocations themselves report a failure.
        let _ = self.reserve(bytes);
    }

    fn reclaim(&mut self) {
        self.run_pending();
    }
}

impl<A: Allocator> Drop for ArenaBackend<A> {
    fn drop(&mut self) {
        /// Frees every chunk when dropped: after the retired values'
        /// destructors (which run on memory in the chunks), also if one
        /// panics.
        struct FreeChunks<'a, A: Allocator>(*mut Chunk, &'a A);

        impl<A: Allocator> Drop for FreeChunks<'_, A> {
            fn drop(&mut self) {
                let mut chunk = self.0;
                while !chunk.is_null() {
                    // SAFETY: every chunk was allocated by `add_chunk` with
                    // its size and the nodes' alignment, and is freed once,
                    // here, as the backend drops: nothing in it is used
                    // again.
                    unsafe {
                        let Chunk { next, size } = chunk.read();
                        let layout = Layout::from_size_align_unchecked(size, NODE_ALIGN);
                        self.1
                            .deallocate(NonNull::new_unchecked(chunk.cast()), layout);
                        chunk = next;
                    }
                }
            }
        }

        let _chunks = FreeChunks(self.bump.get_mut().chunks, &self.alloc);
        // SAFETY: as in `run_pending` (inlined: `self.alloc` is borrowed);
        // the chunks are freed only after, by `_chunks`.
        unsafe { self.pending.release(|_, _| {}) };
    }
}

debug_as_stats!(ArenaBackend);

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use core::sync::atomic::AtomicUsize;
    use std::string::String;
    use std::vec::Vec;

    use allocator_api2::alloc::Global;

    use super::*;
    use crate::alloc_backends::testing::{self, Tracked, drops, key, scale};
    use crate::test_alloc::Ledger;
    use crate::{Inline, OutOfLine, Tree};

    type Values<'c, 'd> = Tree<OutOfLine<Tracked<'d>>, ArenaBackend<&'c Ledger>>;
    type Words<'c> = Tree<Inline<u64>, ArenaBackend<&'c Ledger>>;

    /// All the allocator's memory is chunks, and dropping returns it all.
    #[test]
    fn drop_returns_every_chunk() {
        let c = Ledger::new();
        let d = AtomicUsize::new(0);
        let n = scale(3000) as u64;
        {
            let mut t = Values::new_in(ArenaBackend::with_capacity_in(4096, &c).unwrap());
            {
                let g = t.guard();
                for i in 0..n {
                    t.insert(&key(i), Tracked::new(i, &d), &g);
                }
                for i in (0..n).step_by(2) {
                    t.remove(&key(i), &g);
                }
            }
            let s = t.backend().stats();
            assert!(s.chunks > 1, "{s:?}");
            assert_eq!(c.live_allocs() as usize, s.chunks);
            assert_eq!(c.live_bytes() as usize, s.bytes_reserved);
            assert!(s.bytes_used <= s.bytes_reserved);
            t.clear();
            {
                let g = t.guard();
                for i in 0..n {
                    t.insert(&key(i), Tracked::new(n + i, &d), &g);
                }
            }
        }
        assert_eq!(drops(&d) as u64, 2 * n);
        c.assert_empty();
    }

    #[test]
    fn values_dropped_exactly_once() {
        let c = Ledger::new();
        let parked = |b: &ArenaBackend<&Ledger>, n| assert_eq!(b.stats().pending_drops as u64, n);
        testing::values_dropped_exactly_once(&c, ArenaBackend::new_in(&c), parked);
    }

    /// Values without a destructor get no header and never wait.
    #[test]
    fn plain_values_need_no_header() {
        let c = Ledger::new();
        let b = ArenaBackend::new_in(&c);
        let before = b.stats().bytes_used;
        let p = b.alloc_value(7u64).unwrap();
        assert_eq!(b.stats().bytes_used - before, 8);
        // SAFETY: ours, unlinked, retired once.
        unsafe { b.retire_value(p, &b.guard()) };
        assert_eq!(b.stats().pending_drops, 0);
        // A header in front of a value that needs dropping.
        let before = b.stats().bytes_used;
        let s = b.alloc_value(String::from("x")).unwrap();
        let header = header::offset::<Record>(align_of::<String>());
        assert_eq!(b.stats().bytes_used - before, header + size_of::<String>());
        // SAFETY: ours, never published.
        unsafe { b.free_value(s) };
        drop(b);
        c.assert_empty();
    }

    /// The first chunk is reserved up front; chunks then double; a request
    /// larger than a chunk gets its own; alignment is honoured.
    #[test]
    fn chunks_grow_and_fit_large_requests() {
        #[derive(Debug)]
        #[repr(align(256))]
        struct Wide(u8);
        let c = Ledger::new();
        let b = ArenaBackend::with_capacity_in(1000, &c).unwrap();
        let s = b.stats();
        assert_eq!((s.chunks, s.bytes_reserved, s.bytes_used), (1, 1016, 0));
        let mut got = 0;
        while b.stats().chunks == 1 {
            let p = b.alloc_leaf().unwrap();
            assert_eq!(p.as_ptr().addr() % 64, 0);
            got += 1;
        }
        // Leaves at 64 and 384 (after the 16-byte header, aligned); the
        // third opens the second chunk.
        assert_eq!(got, 3);
        assert_eq!(b.stats().bytes_reserved, 1016 + 2032);
        let big = b.alloc_value([3u8; 5000]).unwrap();
        // SAFETY: a live value of ours.
        assert!(unsafe { big.as_ref() }.iter().all(|&x| x == 3));
        let s = b.stats();
        assert_eq!(s.chunks, 3);
        assert!(s.bytes_reserved >= 1016 + 2032 + 5000, "{s:?}");
        let w = b.alloc_value(Wide(1)).unwrap();
        assert_eq!(w.as_ptr().addr() % 256, 0);
        // SAFETY: a live value of ours.
        assert_eq!(unsafe { w.as_ref() }.0, 1);
        assert_eq!(c.live_allocs() as usize, b.stats().chunks);
        drop(b);
        c.assert_empty();
    }

    /// When the allocator refuses a chunk, smaller ones are tried; when it
    /// refuses everything, allocation fails cleanly.
    #[test]
    fn smaller_chunks_when_allocator_refuses() {
        let c = Ledger::new();
        c.fail_above(5000);
        let b = ArenaBackend::new_in(&c);
        let got: Vec<_> = (0..40).map(|_| b.alloc_leaf().unwrap()).collect();
        let s = b.stats();
        assert!(s.chunks >= 3, "{s:?}");
        assert!(s.bytes_reserved >= got.len() * size_of::<Leaf>());
        c.fail_above(0);
        while b.alloc_leaf().is_ok() {}
        // Larger than what is left of the last chunk.
        assert!(b.alloc_value([0u8; 1000]).is_err());
        assert!(ArenaBackend::with_capacity_in(100, &c).is_err());
        drop(b);
        c.assert_empty();
    }

    /// A bulk load whose input knows its length gets one chunk of the right
    /// size (through `reserve_nodes`): no chunk tail is wasted.
    #[test]
    fn bulk_load_fills_one_chunk() {
        let c = Ledger::new();
        let n = scale(100_000) as u64;
        let t: Words<'_> = Tree::from_sorted_in(
            ArenaBackend::new_in(&c),
            (0..n).map(|i| ((i * 7).to_be_bytes(), i)),
        )
        .unwrap();
        let s = t.backend().stats();
        assert_eq!(s.chunks, 1, "{s:?}");
        // The chunk header and the padding to the first node, nothing else.
        assert!(s.bytes_reserved - s.bytes_used <= 128, "{s:?}");
        assert_eq!(t.len(), n as usize);
        // The estimate was exact: the next request needs a new chunk.
        t.backend().reserve(64).unwrap();
        assert_eq!(t.backend().stats().chunks, 2);
        drop(t);
        c.assert_empty();
    }

    #[test]
    fn guards_belong_to_one_backend() {
        testing::guards_belong_to_one_backend(
            ArenaBackend::new_in(Global),
            ArenaBackend::new_in(Global),
        );
    }

    /// Four threads insert and read; then everything adds up.
    #[test]
    fn concurrent_inserts_and_gets() {
        const THREADS: u64 = 4;
        let c = Ledger::new();
        let per = scale(3000) as u64;
        let t = Words::new_in(ArenaBackend::new_in(&c));
        std::thread::scope(|sc| {
            for th in 0..THREADS {
                let t = &t;
                sc.spawn(move || {
                    let g = t.guard();
                    for j in 0..per {
                        let i = j * THREADS + th;
                        assert_eq!(t.insert(&key(i), i, &g), None);
                        assert_eq!(t.get(&key(i), &g), Some(i));
                        let o = (j * THREADS + (th + 1) % THREADS) / 2;
                        if let Some(v) = t.get(&key(o), &g) {
                            assert_eq!(v, o);
                        }
                    }
                });
            }
        });
        assert_eq!(t.len() as u64, THREADS * per);
        {
            let g = t.guard();
            for i in 0..THREADS * per {
                assert_eq!(t.get(&key(i), &g), Some(i));
            }
        }
        assert_eq!(c.live_allocs() as usize, t.backend().stats().chunks);
        drop(t);
        c.assert_empty();
    }
}
