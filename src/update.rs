//! Read-modify-write operations, atomic with respect to other writers of the
//! same key: the closure runs with the key's leaf locked.
//!
//! If a closure panics, the panic unwinds through the lock guard, which
//! unlocks the leaf; nothing was changed before the closure returned (at most
//! a key sharing the slice was moved, intact, into a new trie layer), so the
//! tree stays consistent and usable.

use crate::allocator::NodeAllocatorGeneric;
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

/// The error of [`Tree::compare_exchange`]: the value found, and the new
/// value handed back.
#[derive(Debug, PartialEq, Eq)]
pub struct CompareExchangeError<R, V> {
    /// The key's value when the exchange was refused (`None`: absent).
    pub current: Option<R>,
    /// The value that was not stored.
    pub new: V,
}

impl<S: ValueStorage, A: NodeAllocatorGeneric> Tree<S, A> {
    /// Runs `f` on the key's current value with the key's leaf locked, and
    /// applies its decision atomically: no other writer can change the key in
    /// between. Returns the previous value and the new value's word.
    fn update_words<'g>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<S::Ref<'g>>) -> Change<S::Value>,
        guard: &'g A::Guard<'_>,
    ) -> (Option<S::Ref<'g>>, Option<*mut ()>)
    where
        S: 'g,
    {
        self.check(guard);
        let raw = self.raw();
        // SAFETY: the guard is ours (checked) and lives for 'g.
        let at = match unsafe { raw.locate(key, true, guard) } {
            Ok(at) => at.expect("locate makes the root"),
            Err(_) => out_of_memory(),
        };
        let cur = at.current();
        // SAFETY: words read under the lock and our guard stay valid for 'g.
        let cur_ref = || cur.map(|w| unsafe { S::as_ref(w) });
        let into_word = |v| S::into_word(&raw.alloc, v).unwrap_or_else(|_| out_of_memory());
        match (f(cur_ref()), cur) {
            (Change::Keep, _) | (Change::Remove, None) => (cur_ref(), None),
            (Change::Set(v), Some(_)) => {
                let word = into_word(v);
                let old = raw.replace(&at, word);
                drop(at);
                // SAFETY: the old word is unlinked; our guard keeps it readable for 'g.
                unsafe {
                    let r = S::as_ref(old);
                    S::retire(&raw.alloc, old, guard);
                    (Some(r), Some(word))
                }
            }
            (Change::Set(v), None) => {
                let word = into_word(v);
                if raw.add(at, word).is_err() {
                    // SAFETY: the tree did not take `word`.
                    unsafe { S::free(&raw.alloc, word) };
                    out_of_memory();
                }
                (None, Some(word))
            }
            (Change::Remove, Some(_)) => {
                // SAFETY: `at` was located for `key` under our guard; the
                // removed word is unlinked and stays readable for 'g.
                unsafe {
                    let old = raw.remove_at(at, key, guard);
                    let r = S::as_ref(old);
                    S::retire(&raw.alloc, old, guard);
                    (Some(r), None)
                }
            }
        }
    }

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
    /// for. If it panics, the tree is left as it was (see the module docs).
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    pub fn update<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        f: impl FnOnce(Option<S::Ref<'g>>) -> Change<S::Value>,
        guard: &'g A::Guard<'_>,
    ) -> Option<S::Ref<'g>>
    where
        S: 'g,
    {
        self.update_words(key.as_ref(), f, guard).0
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
    #[allow(clippy::type_complexity)]
    pub fn compare_exchange<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        current: Option<&S::Value>,
        new: S::Value,
        guard: &'g A::Guard<'_>,
    ) -> Result<Option<S::Ref<'g>>, CompareExchangeError<S::Ref<'g>, S::Value>>
    where
        S: 'g,
        S::Value: PartialEq,
    {
        let mut new = Some(new);
        let prev = self.update(
            key,
            |cur| {
                let matches = match (&cur, current) {
                    (None, None) => true,
                    (Some(c), Some(e)) => S::equals(c, e),
                    _ => false,
                };
                if matches {
                    Change::Set(new.take().expect("called once"))
                } else {
                    Change::Keep
                }
            },
            guard,
        );
        match new {
            None => Ok(prev),
            Some(new) => Err(CompareExchangeError { current: prev, new }),
        }
    }

    /// The key's value; if absent, inserts `f()` first (`f` runs at most once,
    /// with the key's leaf locked, and only if the key is absent).
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
    pub fn get_or_insert_with<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        f: impl FnOnce() -> S::Value,
        guard: &'g A::Guard<'_>,
    ) -> S::Ref<'g>
    where
        S: 'g,
    {
        if let Some(v) = self.get(key, guard) {
            return v;
        }
        let mut f = Some(f);
        let (prev, new) = self.update_words(
            key.as_ref(),
            |cur| match cur {
                Some(_) => Change::Keep,
                None => Change::Set((f.take().expect("called once"))()),
            },
            guard,
        );
        match (prev, new) {
            (Some(v), _) => v,
            // SAFETY: the word we just stored stays readable for 'g under our
            // guard, even if another writer replaces it meanwhile.
            (None, Some(w)) => unsafe { S::as_ref(w) },
            (None, None) => unreachable!("an absent key is set"),
        }
    }
}
