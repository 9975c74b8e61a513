//! Taking entries out: [`Tree::pop_first`], [`Tree::pop_last`],
//! [`Tree::retain`], and [`IntoIter`], the owned iteration of a tree. All
//! but `retain` hand out owned keys ([`KeyBuf`]) and need the `alloc`
//! feature.

#[cfg(feature = "alloc")]
use core::iter::FusedIterator;

use crate::backend::NodeAllocatorGeneric;
#[cfg(feature = "alloc")]
use crate::key_buf::KeyBuf;
use crate::tree::Tree;
use crate::update::Change;
use crate::value::ValueStorage;

impl<S: ValueStorage, A: NodeAllocatorGeneric> Tree<S, A> {
    /// Removes the first entry in key order and returns it. Against other
    /// writers: the key removed was the first one at some moment during the
    /// call, and its value is the one it held when removed. Needs the
    /// `alloc` feature (the key is owned).
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u8>::new();
    /// let g = tree.guard();
    /// tree.insert("b", 2, &g);
    /// tree.insert("a", 1, &g);
    /// assert_eq!(tree.pop_first(&g), Some((b"a".into(), 1)));
    /// assert_eq!(tree.pop_first(&g), Some((b"b".into(), 2)));
    /// assert_eq!(tree.pop_first(&g), None);
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    #[track_caller]
    pub fn pop_first<'g>(&self, guard: &'g A::Guard<'_>) -> Option<(KeyBuf, S::Ref<'g>)>
    where
        S: 'g,
    {
        self.pop(true, guard)
    }

    /// Removes the last entry in key order and returns it; as
    /// [`pop_first`](Self::pop_first). Needs the `alloc` feature.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u8>::new();
    /// let g = tree.guard();
    /// tree.insert("a", 1, &g);
    /// tree.insert("b", 2, &g);
    /// assert_eq!(tree.pop_last(&g), Some((b"b".into(), 2)));
    /// assert_eq!(tree.len(), 1);
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    #[track_caller]
    pub fn pop_last<'g>(&self, guard: &'g A::Guard<'_>) -> Option<(KeyBuf, S::Ref<'g>)>
    where
        S: 'g,
    {
        self.pop(false, guard)
    }

    #[cfg(feature = "alloc")]
    #[track_caller]
    fn pop<'g>(&self, first: bool, guard: &'g A::Guard<'_>) -> Option<(KeyBuf, S::Ref<'g>)>
    where
        S: 'g,
    {
        loop {
            let (key, _) = if first {
                self.first(guard)?
            } else {
                self.last(guard)?
            };
            // Another writer may have removed it since: then take the next.
            if let Some(v) = self.remove(&key, guard) {
                return Some((key, v));
            }
        }
    }

    /// Keeps only the entries for which `f` returns true, visiting each key
    /// once in key order. Against other writers: an entry is removed only if
    /// it still holds the value `f` saw (a value written since is kept);
    /// keys inserted behind the visit are not visited.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u32>::new();
    /// let g = tree.guard();
    /// for i in 0..10u32 {
    ///     tree.insert(&i.to_be_bytes(), i, &g);
    /// }
    /// tree.retain(|_, v| v % 2 == 0, &g);
    /// assert_eq!(tree.values(&g).collect::<Vec<_>>(), [0, 2, 4, 6, 8]);
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn retain<'g>(&self, mut f: impl FnMut(&[u8], S::Ref<'g>) -> bool, guard: &'g A::Guard<'_>)
    where
        S: 'g,
    {
        let mut cursor = self.cursor(guard);
        while let Some((key, seen)) = cursor.next() {
            if !f(key, seen) {
                let gone = |cur: Option<S::Ref<'g>>| match cur {
                    Some(cur) if S::same(&cur, &seen) => Change::Remove,
                    _ => Change::Keep,
                };
                // Removing allocates nothing; an error would leave the key.
                let _ = self.fallible().update(key, gone, guard);
            }
        }
    }
}

/// The entries of an owned tree, in key order from both ends, moved out;
/// made by `tree.into_iter()`. Each step takes the first (or last) entry out
/// of the tree, so what is not iterated is dropped with the iterator.
/// Each key is a [`KeyBuf`] (inline up to 63 bytes). Needs the `alloc`
/// feature (the keys are owned).
///
/// ```
/// let tree: masstree::MassTree<String> =
///     [("b", "2".to_string()), ("a", "1".to_string())].into_iter().collect();
/// let v: Vec<(Vec<u8>, String)> = tree.into_iter().map(|(k, v)| (k.into_vec(), v)).collect();
/// assert_eq!(v, [(b"a".to_vec(), "1".to_string()), (b"b".to_vec(), "2".to_string())]);
/// ```
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub struct IntoIter<S, A> {
    tree: Tree<S, A>,
}

#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
impl<S: ValueStorage, A: NodeAllocatorGeneric> IntoIterator for Tree<S, A> {
    type Item = (KeyBuf, S::Value);
    type IntoIter = IntoIter<S, A>;

    fn into_iter(self) -> IntoIter<S, A> {
        IntoIter { tree: self }
    }
}

#[cfg(feature = "alloc")]
impl<S: ValueStorage, A: NodeAllocatorGeneric> IntoIter<S, A> {
    fn take(&mut self, first: bool) -> Option<(KeyBuf, S::Value)> {
        let tree = &self.tree;
        let guard = tree.guard();
        let (key, _) = if first {
            tree.first(&guard)?
        } else {
            tree.last(&guard)?
        };
        let raw = tree.raw();
        // SAFETY: the guard is this tree's. The iterator owns the tree, so no
        // other thread can reach it, and no reference to the value is left
        // (the lookup's was dropped): the word is taken, not retired.
        unsafe {
            let word = raw
                .remove_from(&key, None, &guard)
                .expect("an owned tree keeps its keys");
            Some((key, S::take(&raw.alloc, word)))
        }
    }
}

#[cfg(feature = "alloc")]
impl<S: ValueStorage, A: NodeAllocatorGeneric> Iterator for IntoIter<S, A> {
    type Item = (KeyBuf, S::Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.take(true)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.tree.len(), Some(self.tree.len()))
    }
}

#[cfg(feature = "alloc")]
impl<S: ValueStorage, A: NodeAllocatorGeneric> DoubleEndedIterator for IntoIter<S, A> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.take(false)
    }
}

#[cfg(feature = "alloc")]
impl<S: ValueStorage, A: NodeAllocatorGeneric> ExactSizeIterator for IntoIter<S, A> {}
#[cfg(feature = "alloc")]
impl<S: ValueStorage, A: NodeAllocatorGeneric> FusedIterator for IntoIter<S, A> {}
