//! The raw tree: the algorithm over value *words*, with explicit guards.
//!
//! [`RawTree`] is not generic over the value type, so the algorithm is
//! compiled once per backend; the safe facade in [`crate::tree`] turns values
//! into words and back. Operations live in files named after the paper:
//! [`crate::get`] (descent and lookup), [`crate::insert`], [`crate::split`].

use core::ptr::{self, NonNull};

use crate::backend::{AllocError, NodeAllocatorGeneric};
use crate::counter::StripedCounter;
use crate::internode::Internode;
use crate::leaf::{Leaf, NodeBase, SlotKind, slot_kind};
use crate::nodeversion::{NodeVersion, ROOT};
use crate::suffix::Suffix;
use crate::sync::{AtomicPtr, Ordering};

/// Releases a value word at once (from [`crate::ValueStorage::free`]).
pub(crate) type FreeWord<A> = unsafe fn(&A, *mut ());

/// The raw concurrent tree. See the module docs.
pub(crate) struct RawTree<A: NodeAllocatorGeneric> {
    /// Root of layer 0; null while the tree has never held a key. May briefly
    /// point at a former root after a root split: readers climb `parent`.
    pub(crate) root: AtomicPtr<NodeBase>,
    pub(crate) alloc: A,
    /// The number of keys.
    pub(crate) len: StripedCounter,
}

/// A node reached through the tree: derefs for access, and keeps the pointer
/// as it was stored (with its full provenance), so that it can be stored again
/// or freed. A pointer rebuilt from a `&Leaf` could do neither.
pub(crate) struct NodeRef<'a, T> {
    ptr: NonNull<T>,
    _life: core::marker::PhantomData<&'a T>,
}

impl<T> Clone for NodeRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for NodeRef<'_, T> {}

impl<T> NodeRef<'_, T> {
    /// # Safety
    /// `ptr` must point to a live node that outlives the chosen lifetime.
    #[inline]
    pub(crate) unsafe fn new(ptr: *mut T) -> Self {
        // SAFETY: the caller guarantees a live, hence non-null, node.
        NodeRef {
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            _life: core::marker::PhantomData,
        }
    }

    #[inline]
    pub(crate) fn as_ptr(self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> core::ops::Deref for NodeRef<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `new`'s caller guaranteed the node outlives this reference.
        unsafe { self.ptr.as_ref() }
    }
}

/// Asks the CPU to start loading the cache lines of a node we are about to
/// search, so their misses overlap instead of following one another. Reads
/// no memory; a no-op where no prefetch instruction is wired up.
#[inline(always)]
pub(crate) fn prefetch_node(n: *const NodeBase) {
    // A leaf is the larger node; an internode is one line shorter, and the
    // extra prefetch touches nothing.
    for i in 0..size_of::<Leaf>() / 64 {
        prefetch_line(n.cast::<u8>().wrapping_add(64 * i));
    }
}

/// Starts loading the cache line at `p` (a hint; never faults, reads no
/// memory; a no-op where no prefetch instruction is wired up).
#[inline(always)]
pub(crate) fn prefetch_line(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(masstree_loom)))]
    // SAFETY: prefetching never faults and reads nothing observable.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri), not(masstree_loom))))]
    let _ = p;
}

/// The version word of a node of either kind.
///
/// # Safety
/// `n` must point to a live leaf or internode that outlives `'a`.
#[inline]
pub(crate) unsafe fn version<'a>(n: *mut NodeBase) -> &'a NodeVersion {
    // SAFETY: both node kinds start with their version (`repr(C)`).
    unsafe { &(*n).version }
}

/// The parent link of a node of either kind.
///
/// # Safety
/// As [`version`].
#[inline]
pub(crate) unsafe fn parent_link<'a>(n: *mut NodeBase) -> &'a AtomicPtr<Internode> {
    // SAFETY: the leaf bit never changes, so the node kind read here is right.
    unsafe {
        if version(n).load().is_leaf() {
            &(*n.cast::<Leaf>()).parent
        } else {
            &(*n.cast::<Internode>()).parent
        }
    }
}

/// The parent of a node (null for a layer root).
///
/// # Safety
/// As [`version`].
#[inline]
pub(crate) unsafe fn parent_of(n: *mut NodeBase) -> *mut Internode {
    // SAFETY: the caller guarantees a live node.
    // Acquire: pairs with the Release in `set_parent`: a new parent (created by
    // a split) is fully built before we follow the link.
    unsafe { parent_link(n) }.load(Ordering::Acquire)
}

/// Sets a node's parent. Caller holds the lock of the (new or old) parent.
///
/// # Safety
/// As [`version`].
#[inline]
pub(crate) unsafe fn set_parent(n: *mut NodeBase, p: *mut Internode) {
    // SAFETY: the caller guarantees a live node.
    // Release: publishes the new parent's contents; pairs with `parent_of`.
    unsafe { parent_link(n) }.store(p, Ordering::Release);
}

/// Climbs from a node that may have lost its root bit to the root of its layer.
///
/// # Safety
/// `n` must be a live node of a live layer, under a guard.
#[inline]
pub(crate) unsafe fn layer_root(mut n: *mut NodeBase) -> *mut NodeBase {
    // SAFETY: nodes reachable through parent links live as long as the guard.
    unsafe {
        while !version(n).load().is_root() {
            let p = parent_of(n);
            if p.is_null() {
                break;
            }
            n = p.cast();
        }
    }
    n
}

impl<A: NodeAllocatorGeneric> RawTree<A> {
    pub(crate) fn new(alloc: A) -> Self {
        RawTree {
            root: AtomicPtr::new(ptr::null_mut()),
            alloc,
            len: StripedCounter::new(),
        }
    }

    /// The root of layer 0 (null while the tree has never held a key).
    #[inline]
    pub(crate) fn top_root(&self) -> *mut NodeBase {
        // Acquire: pairs with the Release exchanges that publish a new root.
        self.root.load(Ordering::Acquire)
    }

    /// The root of layer 0, creating it on first use.
    pub(crate) fn root_or_init(&self) -> Result<*mut NodeBase, AllocError> {
        // Acquire: pairs with the Release exchanges below and in `split`.
        let r = self.root.load(Ordering::Acquire);
        if !r.is_null() {
            return Ok(r);
        }
        let p = self.alloc.alloc_leaf()?;
        // SAFETY: fresh memory from the backend, private until published below.
        let leaf = unsafe { Leaf::init_at(p, ROOT, 0) }
            .as_ptr()
            .cast::<NodeBase>();
        // Release: publishes the initialized leaf; Acquire (on failure): see the winner's.
        match self
            .root
            .compare_exchange(ptr::null_mut(), leaf, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(leaf),
            Err(winner) => {
                // SAFETY: our leaf was never published.
                unsafe { self.alloc.free_leaf(p) };
                Ok(winner)
            }
        }
    }

    /// Allocates and builds a suffix record.
    pub(crate) fn new_suffix(
        &self,
        bytes: &[u8],
        value: *mut (),
    ) -> Result<*mut Suffix, AllocError> {
        let p = self.alloc.alloc_suffix(Suffix::layout(bytes.len()))?;
        // SAFETY: the backend gave us memory of that layout.
        unsafe { Suffix::init_at(p, bytes, value) };
        Ok(p.as_ptr())
    }

    /// Frees every node, suffix record and value. Only with exclusive access.
    ///
    /// # Safety
    /// No other thread may use the tree; `free_word` must match the value storage.
    pub(crate) unsafe fn free_all(&mut self, free_word: FreeWord<A>) {
        // Relaxed (both): `&mut self` means no other thread is left to order with.
        let root = self.root.swap(ptr::null_mut(), Ordering::Relaxed);
        if !root.is_null() {
            // SAFETY: exclusive access; the root leads to every node exactly once.
            unsafe { self.free_layer(layer_root(root), free_word) };
        }
        self.len.set(0);
    }

    /// Frees a subtree (recursing into lower layers).
    ///
    /// # Safety
    /// As [`Self::free_all`]; `n` is the root of an unreachable subtree.
    pub(crate) unsafe fn free_layer(&self, n: *mut NodeBase, free_word: FreeWord<A>) {
        // SAFETY: exclusive access, every node visited once.
        unsafe {
            if version(n).load().is_leaf() {
                let leaf = &*n.cast::<Leaf>();
                for slot in leaf.permutation.load().iter() {
                    let word = leaf.value(slot);
                    match slot_kind(leaf.keylenx(slot)) {
                        SlotKind::Value => free_word(&self.alloc, word),
                        SlotKind::Suffix => {
                            let s = Leaf::suffix_of(word);
                            free_word(&self.alloc, (*s).value());
                            self.alloc.free_suffix(NonNull::new_unchecked(s));
                        }
                        SlotKind::Layer => self.free_layer(layer_root(word.cast()), free_word),
                    }
                }
                self.alloc.free_leaf(NonNull::new_unchecked(n.cast()));
            } else {
                let inode = &*n.cast::<Internode>();
                for i in 0..=inode.nkeys() {
                    self.free_layer(inode.child(i), free_word);
                }
                self.alloc.free_internode(NonNull::new_unchecked(n.cast()));
            }
        }
    }
}
