//! The entry API: [`Tree::entry`], one key's read-modify-write in the style
//! of `BTreeMap::entry`, built on the leaf-locked update of
//! [`crate::update`].

use crate::backend::NodeAllocatorGeneric;
use crate::tree::{Tree, out_of_memory};
use crate::update::Change;
use crate::value::ValueStorage;

/// One key of a tree, to be read or filled in; made by [`Tree::entry`].
///
/// Nothing happens until one of the `or_*` methods runs: then, with the
/// key's leaf locked (atomically with respect to other writers of the key),
/// a present value is kept, or replaced by what
/// [`and_modify`](Self::and_modify)'s closure makes of it, and an absent key
/// gets the value given. The closures run with the leaf locked: keep them
/// short, and do not write to this tree from inside them: the write would
/// wait forever for the lock (debug builds with `std` detect it and panic;
/// see [`Tree::update`](crate::Tree::update)).
///
/// ```
/// use masstree::InlineMassTree;
/// let tree = InlineMassTree::<u64>::new();
/// let g = tree.guard();
/// for word in ["a", "b", "a"] {
///     tree.entry(word, &g).and_modify(|n| n + 1).or_insert(1);
/// }
/// assert_eq!(tree.get("a", &g), Some(2));
/// assert_eq!(tree.entry("c", &g).or_default(), 0);
/// ```
#[must_use = "an entry does nothing until one of its `or_*` methods runs"]
pub struct Entry<'t, 'k, 'g, 'a, S, A: NodeAllocatorGeneric + 'a, M = Keep> {
    tree: &'t Tree<S, A>,
    key: &'k [u8],
    guard: &'g A::Guard<'a>,
    modify: M,
}

/// The modification of an [`Entry`] without [`and_modify`](Entry::and_modify):
/// a present value is kept.
#[derive(Clone, Copy, Debug)]
pub struct Keep;

mod modify {
    /// What an entry does to a present value: keep it (`None`) or replace it.
    pub trait Modify<R, V> {
        fn apply(self, current: R) -> Option<V>;
    }
}
use modify::Modify;

impl<R, V> Modify<R, V> for Keep {
    fn apply(self, _: R) -> Option<V> {
        None
    }
}

impl<R, V, F: FnOnce(R) -> V> Modify<R, V> for F {
    fn apply(self, current: R) -> Option<V> {
        Some(self(current))
    }
}

impl<S: ValueStorage, A: NodeAllocatorGeneric> Tree<S, A> {
    /// The entry of `key`; see [`Entry`].
    ///
    /// # Panics
    /// Its `or_*` methods panic if `guard` was created by another tree.
    #[track_caller]
    pub fn entry<'t, 'k, 'g, 'a, K: AsRef<[u8]> + ?Sized>(
        &'t self,
        key: &'k K,
        guard: &'g A::Guard<'a>,
    ) -> Entry<'t, 'k, 'g, 'a, S, A> {
        Entry {
            tree: self,
            key: key.as_ref(),
            guard,
            modify: Keep,
        }
    }
}

impl<'t, 'k, 'g, 'a, S: ValueStorage + 'g, A: NodeAllocatorGeneric> Entry<'t, 'k, 'g, 'a, S, A> {
    /// If the key is present when the entry is filled in, its value is
    /// replaced by `f(value)` (`f` runs with the key's leaf locked).
    pub fn and_modify<F: FnOnce(S::Ref<'g>) -> S::Value>(
        self,
        f: F,
    ) -> Entry<'t, 'k, 'g, 'a, S, A, F> {
        Entry {
            tree: self.tree,
            key: self.key,
            guard: self.guard,
            modify: f,
        }
    }
}

impl<'g, S, A, M> Entry<'_, '_, 'g, '_, S, A, M>
where
    S: ValueStorage + 'g,
    A: NodeAllocatorGeneric,
    M: Modify<S::Ref<'g>, S::Value>,
{
    /// The key.
    pub fn key(&self) -> &[u8] {
        self.key
    }

    /// The key's value, after inserting `value` if the key was absent (or
    /// modifying a present value). If the backend runs out of memory: as
    /// [`Tree::insert`] (aborts with `alloc`, panics without).
    #[track_caller]
    pub fn or_insert(self, value: S::Value) -> S::Ref<'g> {
        self.or_insert_with(|| value)
    }

    /// [`or_insert`](Self::or_insert) with the value made by `f`, which runs
    /// only if the key is absent (with its leaf locked).
    #[track_caller]
    pub fn or_insert_with(self, f: impl FnOnce() -> S::Value) -> S::Ref<'g> {
        let (tree, key, guard) = (self.tree, self.key, self.guard);
        let (mut modify, mut f) = (Some(self.modify), Some(f));
        let change = |cur: Option<S::Ref<'g>>| match cur {
            Some(v) => match modify.take().expect("called once").apply(v) {
                Some(new) => Change::Set(new),
                None => Change::Keep,
            },
            None => Change::Set(f.take().expect("called once")()),
        };
        match tree.fallible().update_words(key, change, guard) {
            // SAFETY: the word just stored stays readable for 'g under the
            // guard, even if another writer replaces it meanwhile.
            Ok((_, Some(new))) => unsafe { S::as_ref(new) },
            Ok((Some(kept), None)) => kept,
            Ok((None, None)) => unreachable!("an absent key is set"),
            Err(_) => out_of_memory(),
        }
    }

    /// [`or_insert`](Self::or_insert) with the value type's default.
    #[track_caller]
    pub fn or_default(self) -> S::Ref<'g>
    where
        S::Value: Default,
    {
        self.or_insert_with(S::Value::default)
    }
}
