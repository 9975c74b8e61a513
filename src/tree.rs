//! The safe facade: [`Tree`] and its aliases [`crate::MassTree`] and
//! [`crate::InlineMassTree`].

use core::marker::PhantomData;

use crate::backend::NodeAllocatorGeneric;
use crate::locate::Hint;
use crate::raw::RawTree;
use crate::value::ValueStorage;

/// A concurrent ordered map from byte strings to values: a Masstree.
///
/// `S` says how values are stored ([`crate::OutOfLine`] or [`crate::Inline`]);
/// `A` is the node allocator backend. Most code uses the aliases
/// [`crate::MassTree`] (values of any type, read by reference) and
/// [`crate::InlineMassTree`] (word-sized `Copy` values, read by copy).
///
/// Every method takes `&self`; share the tree between threads by reference
/// (or `Arc`). Reads take a *guard* ([`Tree::guard`]), which keeps everything
/// they return alive: a value replaced by another thread stays readable until
/// the guard is dropped.
///
/// The tree owns its values: a value that borrows must outlive the tree,
/// since dropping the tree drops the values.
///
/// ```
/// struct Loud<'a>(&'a str);
/// impl Drop for Loud<'_> {
///     fn drop(&mut self) {
///         assert!(!self.0.is_empty());
///     }
/// }
/// let name = String::from("x");
/// let tree = masstree::MassTree::new();
/// tree.insert(b"k", Loud(&name), &tree.guard());
/// // `tree` drops before `name`.
/// ```
///
/// ```compile_fail,E0597
/// # struct Loud<'a>(&'a str);
/// # impl Drop for Loud<'_> {
/// #     fn drop(&mut self) {
/// #         assert!(!self.0.is_empty());
/// #     }
/// # }
/// let tree = masstree::MassTree::new();
/// let name = String::from("x");
/// tree.insert(b"k", Loud(&name), &tree.guard());
/// // `name` would drop before the tree drops the value that reads it.
/// ```
///
/// Nor can a shorter-lived value be stored through a shared reference:
///
/// ```compile_fail,E0597
/// let tree: masstree::MassTree<&'static str> = masstree::MassTree::new();
/// {
///     let short = String::from("x");
///     let view: &masstree::MassTree<&str> = &tree;
///     view.insert(b"k", &short[..], &view.guard());
/// }
/// ```
pub struct Tree<S, A> {
    pub(crate) raw: RawTree<A>,
    /// Invariant in `S`: writers take `&self`, so a tree of long-lived values
    /// must not pass for a tree of short-lived ones (it would store them).
    _values: PhantomData<fn(S) -> S>,
}

// SAFETY: moving the tree moves its backend and the values it owns.
unsafe impl<S: ValueStorage, A: NodeAllocatorGeneric + Send> Send for Tree<S, A> where S::Value: Send
{}
// SAFETY: shared use inserts values from one thread, hands `&V` to others and
// may drop values on any thread (reclamation): values must be `Send + Sync`;
// all threads call the backend through `&A`.
unsafe impl<S: ValueStorage, A: NodeAllocatorGeneric + Sync> Sync for Tree<S, A> where
    S::Value: Send + Sync
{
}

impl<S: ValueStorage, A: NodeAllocatorGeneric> Tree<S, A> {
    /// An empty tree whose nodes and values come from `backend`. Allocates
    /// nothing until the first insert.
    pub fn new_in(backend: A) -> Self {
        Tree {
            raw: RawTree::new::<S>(backend),
            _values: PhantomData,
        }
    }

    /// Enters a read-side critical section. Keep a guard for a batch of
    /// operations rather than one per call; drop it to let memory retired since
    /// be reclaimed. Guards are per thread.
    #[inline]
    pub fn guard(&self) -> A::Guard<'_> {
        self.raw.alloc.guard()
    }

    pub(crate) fn raw(&self) -> &RawTree<A> {
        &self.raw
    }

    /// The backend.
    pub fn backend(&self) -> &A {
        &self.raw.alloc
    }

    #[inline]
    #[track_caller]
    pub(crate) fn check(&self, guard: &A::Guard<'_>) {
        assert!(
            self.raw.alloc.owns_guard(guard),
            "masstree: this guard belongs to a different tree; use `tree.guard()` of the tree you call"
        );
    }

    /// The value for `key`, if present.
    ///
    /// ```
    /// let tree = masstree::MassTree::new();
    /// let g = tree.guard();
    /// tree.insert(b"apple", 3, &g);
    /// assert_eq!(tree.get(b"apple", &g), Some(&3));
    /// assert_eq!(tree.get("pear", &g), None);
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[inline]
    #[track_caller]
    pub fn get<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        guard: &'g A::Guard<'_>,
    ) -> Option<S::Ref<'g>> {
        self.check(guard);
        // SAFETY: the guard is ours and outlives 'g, which bounds the result.
        unsafe { self.raw.get(key.as_ref()).map(|w| S::as_ref(w)) }
    }

    /// True if `key` is present.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u8>::new();
    /// let g = tree.guard();
    /// tree.insert("k", 1, &g);
    /// assert!(tree.contains_key("k", &g) && !tree.contains_key("j", &g));
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[inline]
    #[track_caller]
    pub fn contains_key<K: AsRef<[u8]> + ?Sized>(&self, key: &K, guard: &A::Guard<'_>) -> bool {
        self.get(key, guard).is_some()
    }

    /// The key (as given) and its value, if present.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u8>::new();
    /// let g = tree.guard();
    /// tree.insert("k", 1, &g);
    /// assert_eq!(tree.get_key_value("k", &g), Some((&b"k"[..], 1)));
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[inline]
    #[track_caller]
    pub fn get_key_value<'k, 'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &'k K,
        guard: &'g A::Guard<'_>,
    ) -> Option<(&'k [u8], S::Ref<'g>)> {
        let key = key.as_ref();
        self.get(key, guard).map(|v| (key, v))
    }

    /// Inserts `value` under `key`, returning the previous value if there was
    /// one. A previous out-of-line value stays readable until `guard` drops,
    /// then is dropped once no reader can see it.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// assert_eq!(tree.insert(b"k", 1, &g), None);
    /// assert_eq!(tree.insert(b"k", 2, &g), Some(1));
    /// assert_eq!(tree.get(b"k", &g), Some(2));
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree. If the backend runs out of
    /// memory: aborts like `Vec` (through `handle_alloc_error`) with the
    /// `alloc` feature, panics without it; [`Tree::fallible`] has a form
    /// that returns an error instead.
    #[track_caller]
    pub fn insert<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        value: S::Value,
        guard: &'g A::Guard<'_>,
    ) -> Option<S::Ref<'g>> {
        self.fallible()
            .insert(key, value, guard)
            .unwrap_or_else(|_| out_of_memory())
    }

    /// Removes `key`, returning its value if it was present. An out-of-line
    /// value stays readable until `guard` drops, then is dropped once no reader
    /// can see it. Nodes left empty are unlinked and retired the same way.
    ///
    /// ```
    /// let tree = masstree::MassTree::new();
    /// let g = tree.guard();
    /// tree.insert(b"k", String::from("v"), &g);
    /// assert_eq!(tree.remove(b"k", &g).map(String::as_str), Some("v"));
    /// assert_eq!(tree.remove(b"k", &g), None);
    /// assert!(tree.is_empty());
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn remove<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        guard: &'g A::Guard<'_>,
    ) -> Option<S::Ref<'g>> {
        self.check(guard);
        // SAFETY: the guard is ours; no hint.
        unsafe { self.remove_from(key.as_ref(), None, guard) }
    }

    /// [`Tree::remove`], starting at `hint`'s leaf if there is one. The key
    /// comes as bytes, so a hint is used for exactly the bytes looked up.
    ///
    /// # Safety
    /// `guard` is this tree's; a hint comes from a lookup of `key` in this
    /// tree under `guard`.
    pub(crate) unsafe fn remove_from<'g>(
        &self,
        key: &[u8],
        hint: Option<Hint>,
        guard: &'g A::Guard<'_>,
    ) -> Option<S::Ref<'g>> {
        // SAFETY: the caller's guarantees; the removed word is unlinked, and
        // our guard keeps it readable for 'g after we retire it.
        unsafe {
            let old = self.raw.remove_from(key, hint, guard)?;
            let r = S::as_ref(old);
            S::retire(&self.raw.alloc, old, guard);
            Some(r)
        }
    }

    /// Removes every key, dropping every value now.
    pub fn clear(&mut self) {
        self.raw.clear();
        self.raw.alloc.reclaim();
    }

    /// Frees everything removed or replaced so far, now, rather than when the
    /// backend gets to it (the seize backend frees retired memory in batches,
    /// once no guard that could see it is left). `&mut self` proves that no
    /// guard is alive.
    pub fn reclaim(&mut self) {
        self.raw.alloc.reclaim();
    }

    /// The number of keys. Exact when no insert is in flight.
    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len.get()
    }

    /// True if the tree holds no key.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The backend (or its allocator) refused memory on an infallible path.
#[cold]
pub(crate) fn out_of_memory() -> ! {
    out_of_memory_for(core::alloc::Layout::new::<crate::leaf::Leaf>())
}

/// The backend's allocator refused a block of `layout` on an infallible
/// path: with the `alloc` crate, its allocation error handler (which aborts,
/// as `Vec` does); without it, a panic.
#[cold]
#[inline(never)]
pub(crate) fn out_of_memory_for(layout: core::alloc::Layout) -> ! {
    #[cfg(feature = "alloc")]
    {
        alloc::alloc::handle_alloc_error(layout)
    }
    #[cfg(not(feature = "alloc"))]
    {
        let _ = layout;
        panic!("masstree: the backend is out of memory; use Tree::fallible to get the value back")
    }
}

/// Drops every value with the tree. Generic over `S` without bounds, so the
/// drop checker requires the values to outlive the tree.
impl<S, A> Drop for Tree<S, A> {
    fn drop(&mut self) {
        self.raw.clear();
    }
}
