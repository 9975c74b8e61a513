//! Read-modify-write operations, atomic with respect to other writers of the
//! same key: the closure runs with the key's leaf locked.
//!
//! If a closure panics, the panic unwinds through the lock guard, which
//! unlocks the leaf; nothing was changed before the closure returned (at most
//! a key sharing the slice was moved, intact, into a new trie layer), so the
//! tree stays consistent and usable.
//!
//! A closure may read the tree, and write to other trees, but must not write
//! to its own tree (insert, remove, update...): the write would wait forever
//! for the leaf lock the closure holds. Debug builds with `std` detect it and
//! panic with a message saying so.

use crate::backend::NodeAllocatorGeneric;
use crate::tree::{Tree, out_of_memory};
use crate::value::ValueStorage;

/// What the closure of [`Tree::update`] decides for a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change<V> {
    /// Leave the key as it is (present or absent).
    Keep,
    /// Insert the value, or replace the present one.
    Set(V),
    /// Remove the key if present.
    Remove,
}

/// What [`Tree::compare_exchange`] returns: the previous value, or the value
/// found and the new value handed back.
pub type Exchanged<'g, S> = Result<
    Option<<S as ValueStorage>::Ref<'g>>,
    CompareExchangeError<<S as ValueStorage>::Ref<'g>, <S as ValueStorage>::Value>,
>;

/// The error of [`Tree::compare_exchange`]: the value found, and the new
/// value handed back.
#[derive(Debug, PartialEq, Eq)]
pub struct CompareExchangeError<R, V> {
    /// The key's value when the exchange was refused (`None`: absent).
    pub current: Option<R>,
    /// The value that was not stored.
    pub new: V,
}

impl<R, V> core::fmt::Display for CompareExchangeError<R, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self.current {
            Some(_) => {
                "masstree: compare_exchange found another value; the new value was not stored"
            }
            None => "masstree: compare_exchange found the key absent; the new value was not stored",
        })
    }
}

impl<R: core::fmt::Debug, V: core::fmt::Debug> core::error::Error for CompareExchangeError<R, V> {}

impl<S: ValueStorage, A: NodeAllocatorGeneric> Tree<S, A> {
    /// Decides the key's fate from its current value, atomically with
    /// respect to other writers: `f` runs once, with the key's leaf locked.
    /// Returns the previous value (`None` if the key was absent).
    ///
    /// ```
    /// use masstree::{Change, InlineMassTree};
    /// let tree = InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// let bump = |v: Option<u64>| Change::Set(v.unwrap_or(0) + 1);
    /// tree.update(b"hits", bump, &g);
    /// tree.update(b"hits", bump, &g);
    /// assert_eq!(tree.get(b"hits", &g), Some(2));
    /// tree.update(b"hits", |v| if v == Some(2) { Change::Remove } else { Change::Keep }, &g);
    /// assert_eq!(tree.get(b"hits", &g), None);
    /// ```
    ///
    /// Keep `f` short: it holds a lock that writers of neighbouring keys wait
    /// for. If it panics, the tree is left as it was. It must not write to
    /// this tree (see the module docs).
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn update<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        f: impl FnOnce(Option<S::Ref<'g>>) -> Change<S::Value>,
        guard: &'g A::Guard<'_>,
    ) -> Option<S::Ref<'g>>
    where
        S: 'g,
    {
        self.fallible()
            .update(key, f, guard)
            .unwrap_or_else(|_| out_of_memory())
    }

    /// Stores `new` if the key's value equals `current` (`None`: only if the
    /// key is absent), atomically. Returns the previous value on success; on
    /// failure, the value found and `new` back.
    ///
    /// ```
    /// use masstree::InlineMassTree;
    /// let tree = InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// assert_eq!(tree.compare_exchange(b"k", None, 1, &g), Ok(None));
    /// assert_eq!(tree.compare_exchange(b"k", Some(&1), 2, &g), Ok(Some(1)));
    /// let err = tree.compare_exchange(b"k", Some(&1), 3, &g).unwrap_err();
    /// assert_eq!((err.current, err.new), (Some(2), 3));
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn compare_exchange<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        current: Option<&S::Value>,
        new: S::Value,
        guard: &'g A::Guard<'_>,
    ) -> Exchanged<'g, S>
    where
        S: 'g,
        S::Value: PartialEq,
    {
        self.fallible()
            .compare_exchange(key, current, new, guard)
            .unwrap_or_else(|_| out_of_memory())
    }

    /// The key's value; if absent, inserts `f()` first (`f` runs at most once,
    /// with the key's leaf locked, and only if the key is absent; it must not
    /// write to this tree, see the module docs).
    ///
    /// ```
    /// use masstree::MassTree;
    /// let tree = MassTree::<String>::new();
    /// let g = tree.guard();
    /// assert_eq!(tree.get_or_insert_with(b"k", || "first".to_string(), &g), "first");
    /// assert_eq!(tree.get_or_insert_with(b"k", || unreachable!(), &g), "first");
    /// ```
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn get_or_insert_with<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        f: impl FnOnce() -> S::Value,
        guard: &'g A::Guard<'_>,
    ) -> S::Ref<'g>
    where
        S: 'g,
    {
        self.fallible()
            .get_or_insert_with(key, f, guard)
            .unwrap_or_else(|_| out_of_memory())
    }
}
