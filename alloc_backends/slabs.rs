//! Slabs of equal slots, the machinery under `HugePageSlabs` (2 MiB slabs
//! of node-sized slots, advised onto huge pages) and under the seize
//! backend's internodes (one-page slabs of internode-sized slots, so that
//! the internodes a descent passes through sit on few pages and stay in the
//! TLB). `HugePageSlabs`' docs describe the design for its users: slabs
//! from an allocator, aligned to their size so that a slot finds its slab
//! header (first slot) by masking its address; a free list and live count
//! per slab; slabs with room and full ones on two lists under one spin lock,
//! let go while a slab is taken or given back; an empty slab goes back at
//! once but one, kept as a spare ([`Slabs::trim`] returns it).
//!
//! The allocator is passed to every call rather than owned, so that its
//! owner can keep it next to the slabs (the seize backend keeps both in one
//! block). Every call on one [`Slabs`] must pass the same allocator.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator};
use spin::mutex::{SpinMutex, SpinMutexGuard};

/// The alignment of every slot: that of the nodes.
pub(crate) const SLOT_ALIGN: usize = super::NODE_ALIGN;

/// The header of a slab, in its first slot.
struct SlabHead {
    /// Neighbours in the list the slab is on (partial or full).
    prev: *mut SlabHead,
    next: *mut SlabHead,
    /// Freed slots, linked through their first word.
    free: *mut FreeSlot,
    /// Slots handed out and not freed.
    live: usize,
    /// Index of the first never-used slot.
    fresh: usize,
}

impl SlabHead {
    /// The header of a slab with no slot handed out.
    const fn empty() -> Self {
        SlabHead {
            prev: ptr::null_mut(),
            next: ptr::null_mut(),
            free: ptr::null_mut(),
            live: 0,
            fresh: 1,
        }
    }
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

/// Running counts of a [`Slabs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Slabs held, the spare included.
    pub(crate) slabs: usize,
    /// Slots handed out and not freed.
    pub(crate) slots_in_use: usize,
    /// Slabs taken so far for which the kernel accepted the huge-page advice.
    pub(crate) advised: usize,
}

/// Everything behind the lock.
struct State {
    /// Slabs with at least one slot to hand out.
    partial: List,
    /// Slabs with none.
    full: List,
    /// An empty slab kept for the next one needed (or null).
    spare: *mut SlabHead,
    counts: Counts,
}

/// Slabs of `SLAB` bytes cut into slots of `SLOT` bytes, each slot aligned
/// to `SLOT_ALIGN`; with `HUGE`, each slab is advised onto one huge page
/// (see [`advise`]). See the [module docs](self).
pub(crate) struct Slabs<const SLAB: usize, const SLOT: usize, const HUGE: bool> {
    state: SpinMutex<State>,
}

// SAFETY: the raw pointers in `State` point into slabs this value owns and
// are used only under the lock.
unsafe impl<const SLAB: usize, const SLOT: usize, const HUGE: bool> Send
    for Slabs<SLAB, SLOT, HUGE>
{
}
// SAFETY: as above.
unsafe impl<const SLAB: usize, const SLOT: usize, const HUGE: bool> Sync
    for Slabs<SLAB, SLOT, HUGE>
{
}

impl<const SLAB: usize, const SLOT: usize, const HUGE: bool> Slabs<SLAB, SLOT, HUGE> {
    /// Slots per slab, the first of which holds the header.
    pub(crate) const SLOTS: usize = {
        assert!(SLAB.is_power_of_two());
        assert!(SLOT % SLOT_ALIGN == 0 && SLOT >= size_of::<SlabHead>());
        assert!(SLOT >= size_of::<FreeSlot>() && align_of::<SlabHead>() <= SLOT_ALIGN);
        assert!(SLAB / SLOT > 2);
        SLAB / SLOT
    };

    /// No slabs yet.
    pub(crate) const fn new() -> Self {
        Slabs {
            state: SpinMutex::new(State {
                partial: List(ptr::null_mut()),
                full: List(ptr::null_mut()),
                spare: ptr::null_mut(),
                counts: Counts {
                    slabs: 0,
                    slots_in_use: 0,
                    advised: 0,
                },
            }),
        }
    }

    /// The address of the slab that holds address `a`.
    pub(crate) const fn slab_base(a: usize) -> usize {
        a & !(SLAB - 1)
    }

    /// Current counts.
    #[cfg_attr(
        not(any(feature = "huge-pages", all(test, not(masstree_loom)))),
        expect(dead_code, reason = "only `HugePageSlabs::stats` and tests read them")
    )]
    pub(crate) fn counts(&self) -> Counts {
        self.state.lock().counts
    }

    fn slab_layout() -> Layout {
        // SLAB is a power of two (checked in `SLOTS`), so a valid alignment.
        Layout::from_size_align(SLAB, SLAB).expect("valid slab layout")
    }

    /// A free slot of `SLOT` bytes, aligned to `SLOT_ALIGN`.
    pub(crate) fn take<A: Allocator>(&self, alloc: &A) -> Result<NonNull<u8>, AllocError> {
        let (mut s, slab) = self.lock_slab_with_room(alloc)?;
        // SAFETY: `slab` is a live slab head on the partial list, under the
        // lock; free slots and the fresh tail lie inside the slab. The header
        // is reached through raw field accesses only, as the list operations
        // write it too. A freed slot is reached, and handed out, with the
        // slab's provenance (the pointer it was freed with may have covered
        // that slot alone, for some earlier caller).
        let slot = unsafe {
            let free = (*slab).free;
            let slot = if free.is_null() {
                let slot = slab.cast::<u8>().add((*slab).fresh * SLOT);
                (*slab).fresh += 1;
                slot
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
            slot
        };
        s.counts.slots_in_use += 1;
        // SAFETY: a slot inside a slab is not null.
        Ok(unsafe { NonNull::new_unchecked(slot) })
    }

    /// Frees a slot.
    ///
    /// # Safety
    /// `p` came from [`Self::take`] on this value, with `alloc`, and is not
    /// used again.
    pub(crate) unsafe fn give<A: Allocator>(&self, p: NonNull<u8>, alloc: &A) {
        // A slot's slab starts at the slot's address rounded down to the
        // slab size. The caller's pointer may carry provenance for the slot
        // alone (a `Box`'s does), so the header's comes from the slab's
        // address, exposed when the slab was made.
        let slab = ptr::with_exposed_provenance_mut::<SlabHead>(Self::slab_base(p.as_ptr().addr()));
        let mut s = self.state.lock();
        s.counts.slots_in_use -= 1;
        let mut give_back = ptr::null_mut();
        // SAFETY: the caller's guarantees: `p` is a slot we handed out and
        // not yet freed, so its slab is live; we hold the lock. The header is
        // reached through raw field accesses only, as the list operations
        // write it too.
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
                if s.spare.is_null() {
                    s.spare = slab;
                } else {
                    s.counts.slabs -= 1;
                    give_back = slab;
                }
            }
        }
        drop(s);
        if !give_back.is_null() {
            // SAFETY: an empty slab, off every list: nothing refers to it.
            unsafe { Self::return_slab(give_back, alloc) };
        }
    }

    /// Returns the spare empty slab, if one is kept.
    pub(crate) fn trim<A: Allocator>(&self, alloc: &A) {
        let mut s = self.state.lock();
        let spare = core::mem::replace(&mut s.spare, ptr::null_mut());
        if !spare.is_null() {
            s.counts.slabs -= 1;
            drop(s);
            // SAFETY: the spare was an empty slab we own, on no list; now
            // nothing refers to it.
            unsafe { Self::return_slab(spare, alloc) };
        }
    }

    /// Returns every slab, full, partial and spare.
    ///
    /// # Safety
    /// No slot handed out is used again (or given back).
    pub(crate) unsafe fn release_all<A: Allocator>(&mut self, alloc: &A) {
        let s = self.state.get_mut();
        let mut all = [
            core::mem::replace(&mut s.partial.0, ptr::null_mut()),
            core::mem::replace(&mut s.full.0, ptr::null_mut()),
        ];
        // Off every list (its links are stale): returned on its own.
        let spare = core::mem::replace(&mut s.spare, ptr::null_mut());
        s.counts = Counts::default();
        for head in all.iter_mut() {
            while !head.is_null() {
                let slab = *head;
                // SAFETY: list members are live slabs from `alloc`; the
                // caller guarantees no slot is used again.
                unsafe {
                    *head = (*slab).next;
                    Self::return_slab(slab, alloc);
                }
            }
        }
        if !spare.is_null() {
            // SAFETY: as above.
            unsafe { Self::return_slab(spare, alloc) };
        }
    }

    /// Takes the lock and returns it with a slab that has a free slot, on
    /// the partial list. Lets go of the lock while `alloc` makes a new slab
    /// and the kernel backs it.
    fn lock_slab_with_room<A: Allocator>(
        &self,
        alloc: &A,
    ) -> Result<(SpinMutexGuard<'_, State>, *mut SlabHead), AllocError> {
        let mut s = self.state.lock();
        if !s.partial.0.is_null() {
            let head = s.partial.0;
            return Ok((s, head));
        }
        let head = if s.spare.is_null() {
            drop(s);
            let p = alloc.allocate(Self::slab_layout())?.cast::<u8>();
            // Slots find their slab from their address alone (`give`).
            let head = p.as_ptr().cast::<SlabHead>();
            let _ = head.expose_provenance();
            // SAFETY: a fresh slab, aligned to its size, not yet written.
            let advised = HUGE && unsafe { advise(p.as_ptr(), SLAB, true) };
            // SAFETY: fresh memory from `alloc`, large and aligned enough.
            unsafe { head.write(SlabHead::empty()) };
            s = self.state.lock();
            s.counts.slabs += 1;
            s.counts.advised += usize::from(advised);
            head
        } else {
            let head = core::mem::replace(&mut s.spare, ptr::null_mut());
            // SAFETY: the spare is an empty slab we own, on no list.
            unsafe { head.write(SlabHead::empty()) };
            head
        };
        // SAFETY: `head` is an initialized slab head on no list; we hold the lock.
        unsafe { s.partial.push(head) };
        Ok((s, head))
    }

    /// Gives a slab back to `alloc`. With `HUGE`, first drops its pages and
    /// marks the range `MADV_NOHUGEPAGE`: what `alloc` later hands out from
    /// that memory should not sit on huge pages its users did not ask for.
    /// (The mark stays: with transparent huge pages set to `always`, it also
    /// keeps that range off huge pages for later users of `alloc`.)
    ///
    /// # Safety
    /// `head` starts a slab from `alloc` that nothing uses or refers to any more.
    unsafe fn return_slab<A: Allocator>(head: *mut SlabHead, alloc: &A) {
        if HUGE {
            // SAFETY: the caller's guarantees: a slab aligned to its size
            // that nothing uses.
            unsafe { advise(head.cast(), SLAB, false) };
        }
        // SAFETY: the caller's guarantees: allocated from `alloc` with this layout.
        unsafe {
            alloc.deallocate(
                NonNull::new_unchecked(head.cast::<u8>()),
                Self::slab_layout(),
            )
        };
    }
}

/// Sets how the kernel backs `[p, p + len)`, memory whose contents do not
/// matter (a slab being taken or given back): drops the pages that back it
/// now (`MADV_DONTNEED`: memory the allocator used before may sit on small
/// pages, and memory given back may sit on huge ones), and marks it for
/// huge pages (`huge`, `MADV_HUGEPAGE`) or not (`MADV_NOHUGEPAGE`), so that
/// the next touch faults in pages of that kind. Returns true if the kernel
/// accepted both. Advice only: the memory is usable either way (and, being
/// private anonymous memory, reads as zeros after it).
///
/// # Safety
/// `[p, p + len)` is page-aligned memory owned by the caller, whose
/// contents nobody needs.
#[cfg(all(feature = "std", target_os = "linux", not(miri)))]
unsafe fn advise(p: *mut u8, len: usize, huge: bool) -> bool {
    use core::ffi::{c_int, c_void};
    // SAFETY: madvise(2) as `<sys/mman.h>` declares it, from the C library
    // that `std` links on Linux.
    unsafe extern "C" {
        fn madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
    }
    // From `<sys/mman.h>`, the same on every Linux architecture.
    const MADV_DONTNEED: c_int = 4;
    const MADV_HUGEPAGE: c_int = 14;
    const MADV_NOHUGEPAGE: c_int = 15;
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
#[cfg(not(all(feature = "std", target_os = "linux", not(miri))))]
unsafe fn advise(_: *mut u8, _: usize, _: bool) -> bool {
    false
}
