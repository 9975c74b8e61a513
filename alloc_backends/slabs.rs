//! Slabs of equal slots: the one slab allocator, under the pool's nodes,
//! `HugePageSlabs` and the seize backend's internodes.
//!
//! * A slab is `SLAB` bytes from an allocator, aligned to its size, so that a
//!   slot finds its slab by masking its address. Its first slot holds the
//!   header: list links, free list, live count, first never-used slot.
//! * Slabs with room, full and empty slabs are on three lists under one
//!   spin lock, held for a few instructions per slot and let go while a slab
//!   is taken from the allocator or given back.
//! * A slab whose last slot is given back returns to the allocator at once,
//!   unless it is the only empty slab, kept so that a user at a slab
//!   boundary does not take and return a slab per slot.
//!
//! The allocator is passed to every call rather than owned, so that its
//! owner can keep it next to the slabs (the seize backend keeps both in one
//! block); every call on one [`Slabs`] must pass the same one.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator};
use spin::mutex::{SpinMutex, SpinMutexGuard};

use super::NODE_ALIGN;

/// The header of a slab, in its first slot.
struct SlabHead {
    /// Neighbours in the list the slab is on.
    prev: *mut SlabHead,
    next: *mut SlabHead,
    /// Freed slots, linked through their first word.
    free: *mut FreeSlot,
    /// Slots handed out and not freed.
    live: usize,
    /// Index of the first never-used slot.
    fresh: usize,
}

/// A freed slot's first word.
struct FreeSlot {
    next: *mut FreeSlot,
}

/// A doubly linked list of slabs.
struct List(*mut SlabHead);

impl List {
    /// # Safety
    /// `s` is a live slab head on no list.
    unsafe fn push(&mut self, s: *mut SlabHead) {
        // SAFETY: the caller's guarantees; list members are live slab heads.
        unsafe {
            (*s).prev = ptr::null_mut();
            (*s).next = self.0;
            if !self.0.is_null() {
                (*self.0).prev = s;
            }
        }
        self.0 = s;
    }

    /// # Safety
    /// `s` is a live slab head on this list.
    unsafe fn unlink(&mut self, s: *mut SlabHead) {
        // SAFETY: the caller's guarantees; list members are live slab heads.
        unsafe {
            let (prev, next) = ((*s).prev, (*s).next);
            if prev.is_null() {
                self.0 = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
        }
    }
}

/// Figures of a [`Slabs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Slabs held (and being taken), empty ones included.
    pub(crate) slabs: usize,
    /// Slots handed out and not freed.
    pub(crate) slots_in_use: usize,
    /// Slabs taken so far for which the kernel accepted the huge-page advice.
    pub(crate) advised: usize,
    /// The cap on the slabs' bytes (`usize::MAX`: none).
    pub(crate) max_bytes: usize,
}

/// Everything behind the lock: slabs with room (and a slot handed out),
/// full ones, empty ones.
struct State {
    partial: List,
    full: List,
    empty: List,
    counts: Counts,
}

// SAFETY: the raw pointers point into slabs the `Slabs` owns; they are used
// only under its lock.
unsafe impl Send for State {}

/// Slabs of `SLAB` bytes cut into slots of `SLOT` bytes aligned to
/// [`NODE_ALIGN`]; with `HUGE`, each slab is [`advise`]d onto a huge page.
pub(crate) struct Slabs<const SLAB: usize, const SLOT: usize, const HUGE: bool> {
    state: SpinMutex<State>,
}

impl<const SLAB: usize, const SLOT: usize, const HUGE: bool> Slabs<SLAB, SLOT, HUGE> {
    /// Slots per slab, the first of which holds the header.
    pub(crate) const SLOTS: usize = {
        assert!(SLAB.is_power_of_two() && SLAB / SLOT > 2);
        assert!(SLOT % NODE_ALIGN == 0 && SLOT >= size_of::<SlabHead>());
        assert!(align_of::<SlabHead>() <= NODE_ALIGN);
        SLAB / SLOT
    };

    /// No slabs yet, no cap.
    pub(crate) const fn new() -> Self {
        let counts = Counts {
            slabs: 0,
            slots_in_use: 0,
            advised: 0,
            max_bytes: usize::MAX,
        };
        let none = ptr::null_mut();
        Slabs {
            state: SpinMutex::new(State {
                partial: List(none),
                full: List(none),
                empty: List(none),
                counts,
            }),
        }
    }

    /// Caps the slabs' bytes: no slab is taken that would pass `max_bytes`
    /// (slabs already held stay).
    #[cfg_attr(not(feature = "pool"), expect(dead_code, reason = "the pool's"))]
    pub(crate) fn set_max_bytes(&mut self, max_bytes: usize) {
        self.state.get_mut().counts.max_bytes = max_bytes;
    }

    /// The address of the slab that holds address `a`.
    pub(crate) const fn slab_base(a: usize) -> usize {
        a & !(SLAB - 1)
    }

    /// Current figures.
    pub(crate) fn counts(&self) -> Counts {
        self.state.lock().counts
    }

    fn layout() -> Layout {
        // SLAB is a power of two (checked in `SLOTS`), so a valid alignment.
        Layout::from_size_align(SLAB, SLAB).expect("valid slab layout")
    }

    /// A free slot of `SLOT` bytes, aligned to [`NODE_ALIGN`].
    pub(crate) fn take<A: Allocator>(&self, alloc: &A) -> Result<NonNull<u8>, AllocError> {
        let mut s = self.state.lock();
        // A slab with room, else an empty one, else a new one.
        let mut slab = s.partial.0;
        if slab.is_null() {
            slab = s.empty.0;
            if slab.is_null() {
                (s, slab) = self.add_slab(s, alloc)?;
            } else {
                // SAFETY: a member of the empty list; we hold the lock.
                unsafe { s.empty.unlink(slab) };
            }
            // SAFETY: an initialized slab head on no list; we hold the lock.
            unsafe { s.partial.push(slab) };
        }
        s.counts.slots_in_use += 1;
        // Fresh slots are handed out one at a time, straight from the
        // never-used tail, and never threaded onto the free list in a loop:
        // rustc 1.95.0 (LLVM 22.1.2) crashed (SIGSEGV in LLVM's loop
        // vectorizer) in release builds for aarch64-unknown-none on such a
        // loop (`while let Some(slot) = self.take_fresh() { self.push(slot) }`,
        // in the old pool's `add_slab`). Reintroducing it brings the crash back.
        // SAFETY: a live slab on the partial list, under the lock, reached by
        // raw field accesses only (the list operations write it too); free
        // slots and the fresh tail lie inside it. A freed slot is handed out
        // with the slab's provenance (its freer's may have covered it alone).
        unsafe {
            let free = (*slab).free;
            let slot = if free.is_null() {
                (*slab).fresh += 1;
                slab.cast::<u8>().add(((*slab).fresh - 1) * SLOT)
            } else {
                let f = slab.cast::<FreeSlot>().with_addr(free.addr());
                (*slab).free = (*f).next;
                f.cast::<u8>()
            };
            (*slab).live += 1;
            if (*slab).live == Self::SLOTS - 1 {
                s.partial.unlink(slab);
                s.full.push(slab);
            }
            Ok(NonNull::new_unchecked(slot))
        }
    }

    /// Frees a slot.
    ///
    /// # Safety
    /// `p` came from [`Self::take`] on this value, with `alloc`, and is not
    /// used again.
    pub(crate) unsafe fn give<A: Allocator>(&self, p: NonNull<u8>, alloc: &A) {
        // `p` may carry provenance for the slot alone (a `Box`'s does): the
        // header's comes from the slab's address, exposed in `add_slab`.
        let slab = ptr::with_exposed_provenance_mut::<SlabHead>(Self::slab_base(p.as_ptr().addr()));
        let mut s = self.state.lock();
        s.counts.slots_in_use -= 1;
        // SAFETY: the caller's guarantees: `p` is a slot we handed out and
        // not yet freed, so its slab is live; we hold the lock. The header is
        // reached through raw field accesses only, as in `take`.
        unsafe {
            let f = p.as_ptr().cast::<FreeSlot>();
            f.write(FreeSlot { next: (*slab).free });
            (*slab).free = f;
            if (*slab).live == Self::SLOTS - 1 {
                s.full.unlink(slab);
                s.partial.push(slab);
            }
            (*slab).live -= 1;
            if (*slab).live == 0 {
                s.partial.unlink(slab);
                if s.empty.0.is_null() {
                    s.empty.push(slab);
                } else {
                    // Another slab is empty: this one goes back.
                    s.counts.slabs -= 1;
                    drop(s);
                    Self::return_slab(slab, alloc);
                }
            }
        }
    }

    /// Adds empty slabs until at least `slots` slots are free.
    #[cfg_attr(not(feature = "pool"), expect(dead_code, reason = "the pool's"))]
    pub(crate) fn reserve<A: Allocator>(&self, slots: usize, alloc: &A) -> Result<(), AllocError> {
        let mut s = self.state.lock();
        while s.counts.slabs * (Self::SLOTS - 1) - s.counts.slots_in_use < slots {
            let head;
            (s, head) = self.add_slab(s, alloc)?;
            // SAFETY: a new slab, on no list; we hold the lock.
            unsafe { s.empty.push(head) };
        }
        Ok(())
    }

    /// Returns every empty slab to `alloc`.
    pub(crate) fn trim<A: Allocator>(&self, alloc: &A) {
        let empty = core::mem::replace(&mut self.state.lock().empty.0, ptr::null_mut());
        // SAFETY: the detached empty list: slabs we own that nothing refers to.
        let returned = unsafe { Self::return_chain(empty, alloc) };
        // Counted out only now: meanwhile the cap counts them still.
        self.state.lock().counts.slabs -= returned;
    }

    /// Returns every slab: full, partial and empty.
    ///
    /// # Safety
    /// No slot handed out is used again (or given back).
    pub(crate) unsafe fn release_all<A: Allocator>(&mut self, alloc: &A) {
        let s = self.state.get_mut();
        (s.counts.slabs, s.counts.slots_in_use) = (0, 0);
        for list in [&mut s.partial, &mut s.full, &mut s.empty] {
            let chain = core::mem::replace(&mut list.0, ptr::null_mut());
            // SAFETY: a detached list; the caller guarantees no slot is used again.
            unsafe { Self::return_chain(chain, alloc) };
        }
    }

    /// Returns the slabs of a chain linked through `next`, from `slab` on,
    /// and how many they were.
    ///
    /// # Safety
    /// As [`Self::return_slab`], for each slab of the chain.
    unsafe fn return_chain<A: Allocator>(mut slab: *mut SlabHead, alloc: &A) -> usize {
        let mut n = 0;
        while !slab.is_null() {
            // SAFETY: the caller's guarantees; `next` is read before the
            // slab goes back.
            unsafe {
                let next = (*slab).next;
                Self::return_slab(slab, alloc);
                slab = next;
            }
            n += 1;
        }
        n
    }

    /// Makes a new empty slab, on no list, if the cap allows and `alloc`
    /// gives it; lets go of the lock meanwhile and returns it taken again.
    #[cold]
    fn add_slab<'s, A: Allocator>(
        &'s self,
        mut s: SpinMutexGuard<'s, State>,
        alloc: &A,
    ) -> Result<(SpinMutexGuard<'s, State>, *mut SlabHead), AllocError> {
        if s.counts.slabs >= s.counts.max_bytes / SLAB {
            return Err(AllocError);
        }
        // Counted before the lock is let go, so that threads adding slabs at
        // the same time stay under the cap together.
        s.counts.slabs += 1;
        drop(s);
        let made = alloc.allocate(Self::layout()).map(|p| {
            let head = p.as_ptr().cast::<SlabHead>();
            // Slots find their slab from their address alone (`give`).
            let _ = head.expose_provenance();
            // SAFETY: a fresh slab from `alloc`, aligned to its size, not yet
            // written; large and aligned enough for the header.
            unsafe {
                let advised = HUGE && advise(head.cast(), SLAB, true);
                head.write(SlabHead {
                    prev: ptr::null_mut(),
                    next: ptr::null_mut(),
                    free: ptr::null_mut(),
                    live: 0,
                    fresh: 1,
                });
                (head, advised)
            }
        });
        s = self.state.lock();
        match made {
            Ok((head, advised)) => {
                s.counts.advised += usize::from(advised);
                Ok((s, head))
            }
            Err(e) => {
                s.counts.slabs -= 1;
                Err(e)
            }
        }
    }

    /// Gives a slab back to `alloc`; with `HUGE`, off huge pages first.
    ///
    /// # Safety
    /// `head` starts a slab from `alloc` that nothing uses or refers to any more.
    unsafe fn return_slab<A: Allocator>(head: *mut SlabHead, alloc: &A) {
        // SAFETY: the caller's guarantees: a slab from `alloc`, of `layout()`,
        // that nothing uses.
        unsafe {
            if HUGE {
                advise(head.cast(), SLAB, false);
            }
            alloc.deallocate(NonNull::new_unchecked(head.cast()), Self::layout());
        }
    }
}

/// Drops the pages of `[p, p + len)` and marks it for huge pages or not, so
/// that the next touch faults in pages of that kind: a new slab's memory may
/// sit on small pages, and what the allocator later hands out where a slab
/// was should not sit on huge pages its users did not ask for. True if the
/// kernel accepted both; the memory is usable either way.
///
/// # Safety
/// `[p, p + len)` is page-aligned memory owned by the caller, whose
/// contents nobody needs.
#[cfg(all(
    feature = "huge-pages",
    feature = "std",
    target_os = "linux",
    not(miri)
))]
unsafe fn advise(p: *mut u8, len: usize, huge: bool) -> bool {
    use libc::{MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, madvise};
    let kind = if huge { MADV_HUGEPAGE } else { MADV_NOHUGEPAGE };
    // SAFETY: the caller's guarantees: dropping the contents of memory we
    // own and nobody reads is allowed; the kind changes only how it is backed.
    // Both calls are made even if the first fails: a slab going back must
    // lose its huge-page mark whatever happened to its pages.
    let (dropped, marked) = unsafe {
        (
            madvise(p.cast(), len, MADV_DONTNEED) == 0,
            madvise(p.cast(), len, kind) == 0,
        )
    };
    dropped && marked
}

/// # Safety
/// As for the Linux version.
#[cfg(not(all(
    feature = "huge-pages",
    feature = "std",
    target_os = "linux",
    not(miri)
)))]
unsafe fn advise(_: *mut u8, _: usize, _: bool) -> bool {
    false
}
