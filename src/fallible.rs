//! Operations that report a failed allocation instead of aborting:
//! [`Tree::fallible`]. On failure the tree is exactly as it was (in content:
//! a key sharing an 8-byte slice may have been moved, intact, into a new trie
//! layer), nothing leaks, and the value comes back in the error.
//!
//! A split counts and allocates the internodes it needs with the ancestors
//! it changes already locked, so concurrent splits cannot make it need more:
//! a failure is always reported before anything changed.

use core::fmt;

use crate::backend::NodeAllocatorGeneric;
use crate::insert::Inserted;
use crate::locate::{Hint, holding_lock};
use crate::tree::Tree;
use crate::update::{Change, CompareExchangeError, Exchanged};
use crate::value::ValueStorage;

/// The backend could not allocate; nothing changed. Holds what was not stored.
#[derive(Clone, PartialEq, Eq)]
pub struct AllocFailed<T> {
    value: T,
}

impl<T> AllocFailed<T> {
    /// The value that was not stored.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The value that was not stored.
    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<T> fmt::Debug for AllocFailed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllocFailed").finish_non_exhaustive()
    }
}

impl<T> fmt::Display for AllocFailed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "masstree: the node allocator backend is out of memory; the value was not stored",
        )
    }
}

impl<T> core::error::Error for AllocFailed<T> {}

/// What an update did: the previous value, and the word of the new one.
type Updated<'g, S> = (Option<<S as ValueStorage>::Ref<'g>>, Option<*mut ()>);

/// The fallible forms of a tree's allocating operations; see [`Tree::fallible`].
pub struct Fallible<'t, S, A> {
    tree: &'t Tree<S, A>,
}

impl<S: ValueStorage, A: NodeAllocatorGeneric> Tree<S, A> {
    /// The operations that allocate, in forms that return [`AllocFailed`]
    /// (with the value handed back) instead of aborting when the backend runs
    /// out of memory.
    ///
    /// ```
    /// let tree = masstree::InlineMassTree::<u64>::new();
    /// let g = tree.guard();
    /// match tree.fallible().insert(b"k", 1, &g) {
    ///     Ok(previous) => assert_eq!(previous, None),
    ///     Err(failed) => eprintln!("not stored: {}", failed.into_value()),
    /// }
    /// ```
    pub fn fallible(&self) -> Fallible<'_, S, A> {
        Fallible { tree: self }
    }
}

impl<'t, S: ValueStorage, A: NodeAllocatorGeneric> Fallible<'t, S, A> {
    /// [`Tree::insert`], or the value back if memory ran out.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn insert<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        value: S::Value,
        guard: &'g A::Guard<'_>,
    ) -> Result<Option<S::Ref<'g>>, AllocFailed<S::Value>>
    where
        S: 'g,
    {
        self.tree.check(guard);
        // SAFETY: the guard is ours; no hint.
        unsafe { self.insert_from(key.as_ref(), value, None, guard) }
    }

    /// [`Fallible::insert`], starting at `hint`'s leaf if there is one. The
    /// key comes as bytes, so a hint is used for exactly the bytes looked up.
    ///
    /// # Safety
    /// `guard` is this tree's; a hint comes from a lookup of `key` in this
    /// tree under `guard`.
    unsafe fn insert_from<'g>(
        &self,
        key: &[u8],
        value: S::Value,
        hint: Option<Hint>,
        guard: &'g A::Guard<'_>,
    ) -> Result<Option<S::Ref<'g>>, AllocFailed<S::Value>>
    where
        S: 'g,
    {
        let raw = self.tree.raw();
        let word = S::into_word(&raw.alloc, value).map_err(|value| AllocFailed { value })?;
        // SAFETY: the caller's guarantees; the tree owns `word` from now on if Ok.
        match unsafe { raw.insert(key, word, hint, guard) } {
            Ok(Inserted::New) => Ok(None),
            // SAFETY: the old word is unlinked; our guard keeps it readable for 'g.
            Ok(Inserted::Replaced(old)) => unsafe {
                let r = S::as_ref(old);
                S::retire(&raw.alloc, old, guard);
                Ok(Some(r))
            },
            // SAFETY: the tree did not take `word`.
            Err(_) => Err(AllocFailed {
                value: unsafe { S::take(&raw.alloc, word) },
            }),
        }
    }

    /// [`Tree::update`]; if memory ran out, the value `f` chose (`None` if
    /// it failed before `f` ran).
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn update<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        f: impl FnOnce(Option<S::Ref<'g>>) -> Change<S::Value>,
        guard: &'g A::Guard<'_>,
    ) -> Result<Option<S::Ref<'g>>, AllocFailed<Option<S::Value>>>
    where
        S: 'g,
    {
        self.update_words(key.as_ref(), f, guard)
            .map(|(prev, _)| prev)
    }

    /// [`Tree::compare_exchange`], or the new value back if memory ran out.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn compare_exchange<'g, K>(
        &self,
        key: &K,
        current: Option<&S::Value>,
        new: S::Value,
        guard: &'g A::Guard<'_>,
    ) -> Result<Exchanged<'g, S>, AllocFailed<S::Value>>
    where
        K: AsRef<[u8]> + ?Sized,
        S: 'g,
        S::Value: PartialEq,
    {
        let mut new = Some(new);
        let outcome = self.update(
            key,
            |cur| {
                let matches = match (&cur, current) {
                    (None, None) => true,
                    (Some(c), Some(e)) => S::borrow(c) == e,
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
        match (outcome, new) {
            (Ok(prev), None) => Ok(Ok(prev)),
            (Ok(prev), Some(new)) => Ok(Err(CompareExchangeError { current: prev, new })),
            (Err(e), new) => Err(AllocFailed {
                value: e.value.or(new).expect("the new value is somewhere"),
            }),
        }
    }

    /// [`Tree::get_or_insert_with`]; if memory ran out, the value `f` made
    /// (`None` if it failed before `f` ran).
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn get_or_insert_with<'g, K: AsRef<[u8]> + ?Sized>(
        &self,
        key: &K,
        f: impl FnOnce() -> S::Value,
        guard: &'g A::Guard<'_>,
    ) -> Result<S::Ref<'g>, AllocFailed<Option<S::Value>>>
    where
        S: 'g,
    {
        if let Some(v) = self.tree.get(key, guard) {
            return Ok(v);
        }
        let mut f = Some(f);
        let (prev, new) = self.update_words(
            key.as_ref(),
            |cur| match cur {
                Some(_) => Change::Keep,
                None => Change::Set((f.take().expect("called once"))()),
            },
            guard,
        )?;
        Ok(match (prev, new) {
            (Some(v), _) => v,
            // SAFETY: the word we just stored stays readable for 'g under our
            // guard, even if another writer replaces it meanwhile.
            (None, Some(w)) => unsafe { S::as_ref(w) },
            (None, None) => unreachable!("an absent key is set"),
        })
    }

    /// Inserts every pair, stopping at the first that cannot be stored, which
    /// comes back in the error (the rest of the iterator is dropped). Pairs go
    /// in a window at a time, as [`Tree::insert_batch`] puts them.
    ///
    /// # Panics
    /// If `guard` was created by another tree.
    #[track_caller]
    pub fn extend<K: AsRef<[u8]>, I: IntoIterator<Item = (K, S::Value)>>(
        &self,
        iter: I,
        guard: &A::Guard<'_>,
    ) -> Result<(), AllocFailed<(K, S::Value)>> {
        self.tree
            .warmed(iter, guard, |key, v, hint| {
                // SAFETY: `warmed` checked the guard; the hint comes from its
                // lookup of exactly these bytes under it.
                unsafe { self.insert_from(key, v, hint, guard) }
                    .map(drop)
                    .map_err(AllocFailed::into_value)
            })
            .map_err(|value| AllocFailed { value })
    }

    /// Runs `f` on the key's current value with the key's leaf locked, and
    /// applies its decision atomically. Returns the previous value and the
    /// new value's word.
    #[track_caller]
    pub(crate) fn update_words<'g>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<S::Ref<'g>>) -> Change<S::Value>,
        guard: &'g A::Guard<'_>,
    ) -> Result<Updated<'g, S>, AllocFailed<Option<S::Value>>>
    where
        S: 'g,
    {
        let tree = self.tree;
        tree.check(guard);
        let raw = tree.raw();
        // SAFETY: the guard is ours (checked) and lives for 'g.
        let at = match unsafe { raw.locate(key, true, guard) } {
            Ok(at) => at.expect("locate makes the root"),
            Err(_) => return Err(AllocFailed { value: None }),
        };
        let cur = at.current();
        // SAFETY: words read under the lock and our guard stay valid for 'g.
        let cur_ref = || cur.map(|w| unsafe { S::as_ref(w) });
        let into_word =
            |value| S::into_word(&raw.alloc, value).map_err(|v| AllocFailed { value: Some(v) });
        let change = holding_lock(core::ptr::from_ref(raw).cast(), || f(cur_ref()));
        match (change, cur) {
            (Change::Keep, _) | (Change::Remove, None) => Ok((cur_ref(), None)),
            (Change::Set(v), Some(_)) => {
                let word = into_word(v)?;
                let old = raw.replace(&at, word);
                drop(at);
                // SAFETY: the old word is unlinked; our guard keeps it readable for 'g.
                unsafe {
                    let r = S::as_ref(old);
                    S::retire(&raw.alloc, old, guard);
                    Ok((Some(r), Some(word)))
                }
            }
            (Change::Set(v), None) => {
                let word = into_word(v)?;
                match raw.add(at, word) {
                    Ok(()) => Ok((None, Some(word))),
                    // SAFETY: the tree did not take `word`.
                    Err(_) => Err(AllocFailed {
                        value: Some(unsafe { S::take(&raw.alloc, word) }),
                    }),
                }
            }
            (Change::Remove, Some(_)) => {
                // SAFETY: `at` was located for `key` under our guard; the
                // removed word is unlinked and stays readable for 'g.
                unsafe {
                    let old = raw.remove_at(at, key, guard);
                    let r = S::as_ref(old);
                    S::retire(&raw.alloc, old, guard);
                    Ok((Some(r), None))
                }
            }
        }
    }
}

impl<S: ValueStorage, A: NodeAllocatorGeneric> fmt::Debug for Fallible<'_, S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallible").finish_non_exhaustive()
    }
}
