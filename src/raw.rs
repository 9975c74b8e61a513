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
use crate::node::{NodeBase, layer_root, parent_link, parent_of, version};
use crate::nodeversion::ROOT;
use crate::permuter::Permuter;
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
    /// The tree is empty from the start: if a value's destructor panics, the
    /// rest is still freed while the panic unwinds (see [`Teardown`]).
    ///
    /// # Safety
    /// No other thread may use the tree; `free_word` must match the value storage.
    pub(crate) unsafe fn free_all(&mut self, free_word: FreeWord<A>) {
        // Relaxed (both): `&mut self` means no other thread is left to order with.
        let root = self.root.swap(ptr::null_mut(), Ordering::Relaxed);
        self.len.set(0);
        if !root.is_null() {
            // SAFETY: exclusive access; the root leads to every node exactly once.
            unsafe { self.free_subtree(layer_root(root), free_word) };
        }
    }

    /// Frees the subtree rooted at `n` and every layer below it.
    ///
    /// # Safety
    /// As [`Self::free_all`]; `n` is the root of an unreachable subtree.
    pub(crate) unsafe fn free_subtree(&self, n: *mut NodeBase, free_word: FreeWord<A>) {
        let mut t = Teardown {
            tree: self,
            free_word,
            todo: ptr::null_mut(),
            leaf: None,
        };
        // SAFETY: the caller's guarantees.
        unsafe {
            t.push(n);
            t.run();
        }
    }
}

/// The nodes of an unreachable subtree still to be freed, linked through
/// their parent links (which nobody reads any more): a work list that needs
/// no memory, so a teardown does not recurse per layer or per level and
/// cannot run out of stack or memory, whatever the depth.
struct Teardown<'t, A> {
    tree: &'t RawTree<A>,
    free_word: FreeWord<A>,
    /// The next node to free (null: done).
    todo: *mut NodeBase,
    /// The leaf being emptied, and its slots still to free.
    leaf: Option<(NonNull<Leaf>, Permuter)>,
}

impl<A: NodeAllocatorGeneric> Teardown<'_, A> {
    /// # Safety
    /// `n` is an unreachable node of the subtree, not on the list yet.
    unsafe fn push(&mut self, n: *mut NodeBase) {
        // SAFETY: the caller's guarantees.
        // Relaxed: only this thread reads the list.
        unsafe { parent_link(n) }.store(self.todo.cast(), Ordering::Relaxed);
        self.todo = n;
    }

    /// Frees every node on the list and everything their slots hold. A slot
    /// leaves [`Self::leaf`]'s list before its value is dropped, so if the
    /// destructor panics, a guard runs the rest while the panic unwinds
    /// (another panic then aborts, as it does in `Vec`'s drop).
    ///
    /// # Safety
    /// Every node on the list, and the leaf being emptied, is unreachable
    /// and listed once.
    unsafe fn run(&mut self) {
        struct Rest<'a, 't, A: NodeAllocatorGeneric>(&'a mut Teardown<'t, A>);
        impl<A: NodeAllocatorGeneric> Drop for Rest<'_, '_, A> {
            fn drop(&mut self) {
                // SAFETY: as for `run`: the list is as the panicking step left it.
                unsafe { self.0.run() }
            }
        }
        let rest = Rest(self);
        let t = &mut *rest.0;
        let alloc = &t.tree.alloc;
        loop {
            // SAFETY: listed nodes are live, unreachable and ours alone.
            unsafe {
                if let Some((p, mut perm)) = t.leaf {
                    let Some(last) = perm.len().checked_sub(1) else {
                        t.leaf = None;
                        alloc.free_leaf(p);
                        continue;
                    };
                    let slot = perm.get(last);
                    perm.remove_to_back(last);
                    t.leaf = Some((p, perm));
                    let leaf = p.as_ref();
                    let word = leaf.value(slot);
                    match slot_kind(leaf.keylenx(slot)) {
                        SlotKind::Value => (t.free_word)(alloc, word),
                        SlotKind::Suffix => {
                            let s = Leaf::suffix_of(word);
                            let value = (*s).value();
                            alloc.free_suffix(NonNull::new_unchecked(s));
                            (t.free_word)(alloc, value);
                        }
                        SlotKind::Layer => t.push(layer_root(word.cast())),
                    }
                    continue;
                }
                let n = t.todo;
                if n.is_null() {
                    break;
                }
                t.todo = parent_of(n).cast();
                if version(n).load().is_leaf() {
                    let leaf = NonNull::new_unchecked(n.cast::<Leaf>());
                    t.leaf = Some((leaf, leaf.as_ref().permutation.load()));
                } else {
                    let inode = &*n.cast::<Internode>();
                    for i in 0..=inode.nkeys() {
                        t.push(inode.child(i));
                    }
                    alloc.free_internode(NonNull::new_unchecked(n.cast()));
                }
            }
        }
        core::mem::forget(rest);
    }
}
