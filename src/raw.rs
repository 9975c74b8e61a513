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
use crate::leaf::{Leaf, SlotKind, slot_kind};
use crate::node::{NodeBase, layer_root, version};
use crate::nodeversion::ROOT;
use crate::suffix::Suffix;
use crate::sync::{AtomicPtr, Ordering};
use crate::value::ValueStorage;

/// Releases a value word at once (from [`crate::ValueStorage::free`]).
pub(crate) type FreeWord<A> = unsafe fn(&A, *mut ());

/// The raw concurrent tree. See the module docs.
pub(crate) struct RawTree<A> {
    /// Root of layer 0; null while the tree has never held a key. May briefly
    /// point at a former root after a root split: readers climb `parent`.
    pub(crate) root: AtomicPtr<NodeBase>,
    pub(crate) alloc: A,
    /// The number of keys.
    pub(crate) len: StripedCounter,
    /// [`RawTree::free_all`] with the value storage's `free`: chosen where
    /// the storage is known, so that dropping needs no trait bound (and
    /// neither do the structs that hold a tree).
    teardown: unsafe fn(&mut RawTree<A>),
}

impl<A> RawTree<A> {
    /// Frees every node, suffix record and value now (and at drop, through
    /// the tree that owns the values).
    pub(crate) fn clear(&mut self) {
        // SAFETY: `&mut self`: no guard or other thread can use the tree.
        unsafe { (self.teardown)(self) }
    }
}

impl<A: NodeAllocatorGeneric> RawTree<A> {
    /// An empty tree whose values are stored as `S` says.
    pub(crate) fn new<S: ValueStorage>(alloc: A) -> Self {
        RawTree {
            root: AtomicPtr::new(ptr::null_mut()),
            alloc,
            len: StripedCounter::new(),
            teardown: Self::free_all_of::<S>,
        }
    }

    /// # Safety
    /// As [`Self::free_all`], for the tree's own value storage `S`.
    unsafe fn free_all_of<S: ValueStorage>(&mut self) {
        // SAFETY: the caller's guarantees; `S` is the tree's storage.
        unsafe { self.free_all(S::free::<A>) }
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
