//! Leaf (border) nodes (`leaf` in `masstree_struct.hh`).

use core::ptr::{self, NonNull};

use crate::internode::Internode;
use crate::key::{KSUF, LAYER};
use crate::nodeversion::{LEAF, NodeVersion, ROOT, Version};
use crate::permuter::{AtomicPermuter, Permuter, WIDTH};
use crate::suffix::Suffix;
use crate::sync::{AtomicPtr, AtomicU8, AtomicU64, Ordering};

/// A leaf: up to 15 keys of one trie layer, their values, and links to
/// its neighbours. Opaque outside the crate: backends only allocate it.
///
/// Field order: the first cache line holds everything a lookup reads before
/// the key search (version, permutation, key lengths) and the links a writer
/// follows; the ikeys fill the next two lines, the values the two after.
#[repr(C, align(64))]
pub struct Leaf {
    pub(crate) version: NodeVersion,
    pub(crate) permutation: AtomicPermuter,
    /// Per slot: length within the slice, [`KSUF`] or [`LAYER`].
    pub(crate) keylenx: [AtomicU8; 16],
    pub(crate) parent: AtomicPtr<Internode>,
    pub(crate) next: AtomicPtr<Leaf>,
    pub(crate) prev: AtomicPtr<Leaf>,
    /// Lowest ikey this leaf may hold; fixed at creation (0 for the leftmost).
    pub(crate) low: u64,
    pub(crate) ikeys: [AtomicU64; WIDTH],
    /// Per slot: the value word; for [`KSUF`] a `*mut Suffix`; for [`LAYER`]
    /// the root of the next layer.
    pub(crate) values: [AtomicPtr<()>; WIDTH],
    backend: usize,
}

#[cfg(all(not(masstree_loom), target_pointer_width = "64"))]
const _: () = assert!(size_of::<Leaf>() == 320 && align_of::<Leaf>() == 64);

impl Leaf {
    /// Builds an empty, unlocked leaf in place.
    ///
    /// # Safety
    /// `p` must be valid for writes of a `Leaf` and not reachable by others.
    pub(crate) unsafe fn init_at(p: NonNull<Leaf>, flags: u32, low: u64) -> NonNull<Leaf> {
        // SAFETY: the caller guarantees `p` is writable and private.
        unsafe { Self::init_fields(p, NodeVersion::new(LEAF | flags), low) };
        p
    }

    /// Builds an empty leaf in place that starts locked by its creator (a
    /// split sibling or a new layer under construction).
    ///
    /// # Safety
    /// As [`Self::init_at`]; `locked` must be a locked version.
    pub(crate) unsafe fn init_locked_at(p: NonNull<Leaf>, locked: Version, low: u64) {
        // SAFETY: as in `init_at`.
        unsafe { Self::init_fields(p, NodeVersion::new_locked_copy(locked), low) };
    }

    unsafe fn init_fields(p: NonNull<Leaf>, version: NodeVersion, low: u64) {
        let p = p.as_ptr();
        // SAFETY: the caller guarantees `p` is valid for writes of a whole leaf.
        unsafe {
            ptr::addr_of_mut!((*p).version).write(version);
            ptr::addr_of_mut!((*p).permutation).write(AtomicPermuter::new(Permuter::EMPTY));
            for i in 0..16 {
                ptr::addr_of_mut!((*p).keylenx[i]).write(AtomicU8::new(0));
            }
            ptr::addr_of_mut!((*p).parent).write(AtomicPtr::new(ptr::null_mut()));
            ptr::addr_of_mut!((*p).next).write(AtomicPtr::new(ptr::null_mut()));
            ptr::addr_of_mut!((*p).prev).write(AtomicPtr::new(ptr::null_mut()));
            ptr::addr_of_mut!((*p).low).write(low);
            for i in 0..WIDTH {
                ptr::addr_of_mut!((*p).ikeys[i]).write(AtomicU64::new(0));
                ptr::addr_of_mut!((*p).values[i]).write(AtomicPtr::new(ptr::null_mut()));
            }
            ptr::addr_of_mut!((*p).backend).write(0);
        }
    }

    /// A word the backend may use between retirement and reclamation (for
    /// example to find its allocator). The tree never reads or writes it.
    pub fn backend_word(p: NonNull<Leaf>) -> *mut usize {
        // SAFETY: a field projection of the allocation, no reference is created.
        unsafe { ptr::addr_of_mut!((*p.as_ptr()).backend) }
    }

    /// The right neighbour (null at the end of the layer), with the link's
    /// mark ([`NEXT_MARK`]) stripped.
    #[inline]
    pub(crate) fn next_leaf(&self) -> *mut Leaf {
        // Acquire: pairs with the Release stores of `next` in `leaflink`, so
        // the neighbour (and its immutable `low`) is fully built.
        unmarked(self.next.load(Ordering::Acquire))
    }

    #[inline]
    pub(crate) fn ikey(&self, slot: usize) -> u64 {
        // Relaxed: published by the permutation's Release store (or under a
        // dirty mark); readers validate with the version afterwards.
        self.ikeys[slot].load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn keylenx(&self, slot: usize) -> u8 {
        // Relaxed: as `ikey`.
        self.keylenx[slot].load(Ordering::Relaxed)
    }

    /// The bitwise or of every slot's keylenx, used or not (a hint, e.g.
    /// "does any slot hold a suffix or layer": [`KSUF`] and [`LAYER`] are
    /// bits no inline length has).
    #[inline]
    pub(crate) fn keylenx_union(&self) -> u8 {
        // Relaxed: as `ikey`; the caller only uses the answer as a hint.
        self.keylenx
            .iter()
            .fold(0, |acc, k| acc | k.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn value(&self, slot: usize) -> *mut () {
        // Acquire: pairs with the Release in `set_value`, so what the word points
        // to (an out-of-line value, a suffix record, a layer) is fully built.
        self.values[slot].load(Ordering::Acquire)
    }

    /// Writes a whole slot. Caller holds the lock, and the slot is either free
    /// (not in any permutation a reader may hold) or marked dirty.
    #[inline]
    pub(crate) fn set_slot(&self, slot: usize, ikey: u64, keylenx: u8, value: *mut ()) {
        // Relaxed: published by the next permutation store or unlock (Release).
        self.ikeys[slot].store(ikey, Ordering::Relaxed);
        self.set_keylenx(slot, keylenx);
        self.set_value(slot, value);
    }

    #[inline]
    pub(crate) fn set_keylenx(&self, slot: usize, keylenx: u8) {
        // Relaxed: published by the next permutation store or unlock (Release).
        self.keylenx[slot].store(keylenx, Ordering::Relaxed);
    }

    /// Stores a value word. Caller holds the lock.
    #[inline]
    pub(crate) fn set_value(&self, slot: usize, value: *mut ()) {
        // Release: publishes what `value` points to; pairs with the Acquire in `value`.
        self.values[slot].store(value, Ordering::Release);
    }

    /// Replaces a value word in a live slot, returning the old one. Caller holds the lock.
    #[inline]
    pub(crate) fn replace_value(&self, slot: usize, value: *mut ()) -> *mut () {
        // AcqRel: Release as in `set_value`; Acquire so the old value we now own
        // (and will retire) is the one readers saw.
        self.values[slot].swap(value, Ordering::AcqRel)
    }

    /// The suffix record of a [`KSUF`] slot whose word was read as `word`.
    #[inline]
    pub(crate) fn suffix_of(word: *mut ()) -> *mut Suffix {
        word.cast()
    }

    /// Copies slot `from` of `self` into slot `to` of `dst` (a split or a new
    /// layer). Ownership of the value word (and suffix record) moves with it.
    pub(crate) fn copy_slot(&self, from: usize, dst: &Leaf, to: usize) {
        dst.set_slot(to, self.ikey(from), self.keylenx(from), self.value(from));
    }
}

/// The low bit of a leaf's `next` pointer: the mark of the leaf-link
/// protocol, a lock on that one link (see [`crate::leaflink`]).
pub(crate) const NEXT_MARK: usize = 1;

/// `p` without the [`NEXT_MARK`].
#[inline]
pub(crate) fn unmarked(p: *mut Leaf) -> *mut Leaf {
    p.map_addr(|a| a & !NEXT_MARK)
}

/// The kind of entry a slot holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SlotKind {
    /// The key ends in this slice; the word is the value.
    Value,
    /// The key continues; the word is a `*mut Suffix`.
    Suffix,
    /// The key continues in the next layer; the word is its root.
    Layer,
}

#[inline]
pub(crate) fn slot_kind(keylenx: u8) -> SlotKind {
    match keylenx {
        KSUF => SlotKind::Suffix,
        LAYER => SlotKind::Layer,
        _ => SlotKind::Value,
    }
}

/// Leaf flags for the root of a new layer.
pub(crate) const LAYER_ROOT: u32 = ROOT;
