//! The std traits of [`Tree`]: building from iterators, comparing, cloning
//! and printing contents. Each takes a guard of its own for the duration.

use core::fmt;
use core::ops::ControlFlow;

use crate::backend::NodeAllocatorGeneric;
use crate::tree::Tree;
use crate::value::ValueStorage;

/// An empty tree on a default backend.
impl<S: ValueStorage, A: NodeAllocatorGeneric + Default> Default for Tree<S, A> {
    fn default() -> Self {
        Self::new_in(A::default())
    }
}

/// Inserts every pair (later pairs replace earlier ones with the same key).
impl<K: AsRef<[u8]>, S: ValueStorage, A: NodeAllocatorGeneric> Extend<(K, S::Value)>
    for Tree<S, A>
{
    fn extend<I: IntoIterator<Item = (K, S::Value)>>(&mut self, iter: I) {
        // One by one, not `insert_batch`: a pair taken from `iter` is in the
        // tree before the next is taken, even if `iter` panics.
        let guard = self.guard();
        for (k, v) in iter {
            self.insert(&k, v, &guard);
        }
    }
}

/// ```
/// let tree: masstree::InlineMassTree<u64> = [("b", 2), ("a", 1)].into_iter().collect();
/// let g = tree.guard();
/// assert_eq!(tree.first(&g), Some((b"a".into(), 1)));
/// ```
impl<K: AsRef<[u8]>, S: ValueStorage, A: NodeAllocatorGeneric + Default> FromIterator<(K, S::Value)>
    for Tree<S, A>
{
    fn from_iter<I: IntoIterator<Item = (K, S::Value)>>(iter: I) -> Self {
        let mut tree = Self::default();
        tree.extend(iter);
        tree
    }
}

/// A copy of the contents in a new tree on a clone of the backend (for the
/// seize backend: a new collector on a clone of the allocator).
impl<S: ValueStorage, A: NodeAllocatorGeneric + Clone> Clone for Tree<S, A>
where
    S::Value: Clone,
{
    fn clone(&self) -> Self {
        let copy = Self::new_in(self.backend().clone());
        {
            let (guard, copy_guard) = (self.guard(), copy.guard());
            let _ = self.cursor(&guard).for_each_next(|k, v| {
                copy.insert(k, S::borrow(&v).clone(), &copy_guard);
                ControlFlow::<()>::Continue(())
            });
        }
        copy
    }
}

/// Same keys with equal values, compared in order (a snapshot of each tree
/// as its scan saw it).
impl<S: ValueStorage, A: NodeAllocatorGeneric> PartialEq for Tree<S, A>
where
    S::Value: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        let (ga, gb) = (self.guard(), other.guard());
        let (mut a, mut b) = (self.cursor(&ga), other.cursor(&gb));
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some((ka, va)), Some((kb, vb)))
                    if ka == kb && S::borrow(&va) == S::borrow(&vb) => {}
                _ => return false,
            }
        }
    }
}

impl<S: ValueStorage, A: NodeAllocatorGeneric> Eq for Tree<S, A> where S::Value: Eq {}

/// Prints the contents as a map, keys as byte strings.
///
/// ```
/// let tree: masstree::InlineMassTree<u64> = [("k", 1)].into_iter().collect();
/// assert_eq!(format!("{tree:?}"), r#"{b"k": 1}"#);
/// ```
impl<S: ValueStorage, A: NodeAllocatorGeneric> fmt::Debug for Tree<S, A>
where
    S::Value: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Key<'a>(&'a [u8]);
        impl fmt::Debug for Key<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "b\"{}\"", self.0.escape_ascii())
            }
        }
        struct Value<'a, S: ValueStorage>(S::Ref<'a>)
        where
            S: 'a;
        impl<'a, S: ValueStorage + 'a> fmt::Debug for Value<'a, S>
        where
            S::Value: fmt::Debug,
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(S::borrow(&self.0), f)
            }
        }
        let guard = self.guard();
        let mut map = f.debug_map();
        let _ = self.cursor(&guard).for_each_next(|k, v| {
            map.entry(&Key(k), &Value::<S>(v));
            ControlFlow::<()>::Continue(())
        });
        map.finish()
    }
}
