//! How values are kept in a leaf slot's value word.
//!
//! The tree's algorithm handles one pointer-sized word per key and is compiled
//! once; a [`ValueStorage`] turns user values into words and back. Two ship:
//! [`OutOfLine`] (any type, allocated through the backend, read by reference)
//! and [`Inline`] (word-sized `Copy` types kept in the word itself, read by copy).

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::backend::NodeAllocatorGeneric;

/// Converts values to and from the tree's value words.
///
/// # Safety
/// `as_ref` must only rely on words produced by `into_word` of the same
/// storage; `free`/`retire` must release exactly what `into_word` acquired.
pub unsafe trait ValueStorage {
    /// The value type users insert.
    type Value;
    /// What a lookup returns, borrowing from a guard that lives for `'g`.
    type Ref<'g>
    where
        Self: 'g;

    /// Turns a value into a word, allocating through `alloc` if needed.
    /// Gives the value back if allocation fails.
    fn into_word<A: NodeAllocatorGeneric>(
        alloc: &A,
        value: Self::Value,
    ) -> Result<*mut (), Self::Value>;

    /// Reads a word.
    ///
    /// # Safety
    /// `word` came from `into_word` and stays valid for `'g`.
    unsafe fn as_ref<'g>(word: *mut ()) -> Self::Ref<'g>
    where
        Self: 'g;

    /// True if a looked-up value equals `value`.
    fn equals(found: &Self::Ref<'_>, value: &Self::Value) -> bool
    where
        Self::Value: PartialEq;

    /// True if two looked-up values are equal.
    fn ref_eq(a: &Self::Ref<'_>, b: &Self::Ref<'_>) -> bool
    where
        Self::Value: PartialEq;

    /// An owned copy of a looked-up value.
    fn to_owned(found: &Self::Ref<'_>) -> Self::Value
    where
        Self::Value: Clone;

    /// Formats a looked-up value.
    fn fmt_ref(found: &Self::Ref<'_>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result
    where
        Self::Value: core::fmt::Debug;

    /// Takes a value back out of a word the tree never published (a failed
    /// insert), releasing what `into_word` acquired.
    ///
    /// # Safety
    /// `word` came from `into_word` with this `alloc` and nobody can read it.
    unsafe fn take<A: NodeAllocatorGeneric>(alloc: &A, word: *mut ()) -> Self::Value;

    /// Releases a word at once.
    ///
    /// # Safety
    /// `word` came from `into_word` with this `alloc`, and nobody can read it any more.
    unsafe fn free<A: NodeAllocatorGeneric>(alloc: &A, word: *mut ());

    /// Releases a word once no current guard can read it.
    ///
    /// # Safety
    /// `word` came from `into_word` with this `alloc` and is no longer reachable.
    unsafe fn retire<A: NodeAllocatorGeneric>(alloc: &A, word: *mut (), guard: &A::Guard<'_>);
}

/// Values of any type, stored out of line through the backend; lookups return
/// `&'g V`, valid while the guard lives, even if the value is replaced meanwhile.
pub struct OutOfLine<V>(PhantomData<V>);

// SAFETY: words are pointers from `alloc_value::<V>`, released by the matching
// `free_value`/`retire_value`.
unsafe impl<V> ValueStorage for OutOfLine<V> {
    type Value = V;
    type Ref<'g>
        = &'g V
    where
        Self: 'g;

    #[inline]
    fn into_word<A: NodeAllocatorGeneric>(alloc: &A, value: V) -> Result<*mut (), V> {
        alloc.alloc_value(value).map(|p| p.as_ptr().cast())
    }

    #[inline]
    unsafe fn as_ref<'g>(word: *mut ()) -> &'g V
    where
        Self: 'g,
    {
        // SAFETY: the caller guarantees a live value from `into_word`.
        unsafe { &*word.cast::<V>() }
    }

    fn equals(found: &&V, value: &V) -> bool
    where
        V: PartialEq,
    {
        *found == value
    }

    fn ref_eq(a: &&V, b: &&V) -> bool
    where
        V: PartialEq,
    {
        a == b
    }

    fn to_owned(found: &&V) -> V
    where
        V: Clone,
    {
        (*found).clone()
    }

    fn fmt_ref(found: &&V, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result
    where
        V: core::fmt::Debug,
    {
        core::fmt::Debug::fmt(*found, f)
    }

    unsafe fn take<A: NodeAllocatorGeneric>(alloc: &A, word: *mut ()) -> V {
        let p = word.cast::<V>();
        // SAFETY: the caller guarantees an unpublished value of ours: move it
        // out, then free its memory as a `ManuallyDrop<V>` (same layout, and
        // dropping it does nothing, so the value is not dropped twice).
        unsafe {
            let value = core::ptr::read(p);
            alloc.free_value(NonNull::new_unchecked(
                p.cast::<core::mem::ManuallyDrop<V>>(),
            ));
            value
        }
    }

    unsafe fn free<A: NodeAllocatorGeneric>(alloc: &A, word: *mut ()) {
        // SAFETY: the caller guarantees the word is ours and unreachable.
        unsafe { alloc.free_value(NonNull::new_unchecked(word.cast::<V>())) }
    }

    unsafe fn retire<A: NodeAllocatorGeneric>(alloc: &A, word: *mut (), guard: &A::Guard<'_>) {
        // SAFETY: the caller guarantees the word is ours and unlinked.
        unsafe { alloc.retire_value(NonNull::new_unchecked(word.cast::<V>()), guard) }
    }
}

/// Word-sized `Copy` values stored in the slot itself: no allocation per
/// value, lookups return a copy.
pub struct Inline<V>(PhantomData<V>);

/// A `Copy` type that fits in a pointer-sized word, for [`Inline`] storage.
///
/// # Safety
/// `from_word(to_word(v))` must return `v` for every `v`.
pub unsafe trait InlineValue: Copy {
    /// Packs the value into a word.
    fn to_word(self) -> usize;
    /// Unpacks a word made by `to_word`.
    fn from_word(word: usize) -> Self;
}

macro_rules! inline_int {
    ($($t:ty),*) => {$(
        // SAFETY: a lossless round trip through `usize` (widths checked below).
        unsafe impl InlineValue for $t {
            #[inline]
            fn to_word(self) -> usize {
                const { assert!(size_of::<$t>() <= size_of::<usize>()) };
                self as usize
            }
            #[inline]
            fn from_word(word: usize) -> Self {
                word as $t
            }
        }
    )*};
}
inline_int!(u8, u16, u32, usize, i8, i16, i32, isize);
#[cfg(target_pointer_width = "64")]
inline_int!(u64, i64);

// SAFETY: a lossless round trip through `usize`.
unsafe impl InlineValue for bool {
    fn to_word(self) -> usize {
        self as usize
    }
    fn from_word(word: usize) -> Self {
        word != 0
    }
}

// SAFETY: pointers round-trip through their address; provenance is exposed
// and recovered, as for any pointer stored as an integer.
unsafe impl<T> InlineValue for *const T {
    fn to_word(self) -> usize {
        self.expose_provenance()
    }
    fn from_word(word: usize) -> Self {
        core::ptr::with_exposed_provenance(word)
    }
}

// SAFETY: as for `*const T`.
unsafe impl<T> InlineValue for *mut T {
    fn to_word(self) -> usize {
        self.expose_provenance()
    }
    fn from_word(word: usize) -> Self {
        core::ptr::with_exposed_provenance_mut(word)
    }
}

// SAFETY: words are plain integers; nothing to release.
unsafe impl<V: InlineValue> ValueStorage for Inline<V> {
    type Value = V;
    type Ref<'g>
        = V
    where
        Self: 'g;

    #[inline]
    fn into_word<A: NodeAllocatorGeneric>(_: &A, value: V) -> Result<*mut (), V> {
        Ok(core::ptr::without_provenance_mut(value.to_word()))
    }

    #[inline]
    unsafe fn as_ref<'g>(word: *mut ()) -> V
    where
        Self: 'g,
    {
        V::from_word(word.addr())
    }

    fn equals(found: &V, value: &V) -> bool
    where
        V: PartialEq,
    {
        found == value
    }

    fn ref_eq(a: &V, b: &V) -> bool
    where
        V: PartialEq,
    {
        a == b
    }

    fn to_owned(found: &V) -> V
    where
        V: Clone,
    {
        *found
    }

    fn fmt_ref(found: &V, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result
    where
        V: core::fmt::Debug,
    {
        core::fmt::Debug::fmt(found, f)
    }

    unsafe fn take<A: NodeAllocatorGeneric>(_: &A, word: *mut ()) -> V {
        V::from_word(word.addr())
    }

    unsafe fn free<A: NodeAllocatorGeneric>(_: &A, _: *mut ()) {}

    unsafe fn retire<A: NodeAllocatorGeneric>(_: &A, _: *mut (), _: &A::Guard<'_>) {}
}
