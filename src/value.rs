//! How values are kept in a leaf slot's value word.
//!
//! The tree's algorithm handles one pointer-sized word per key and is compiled
//! once; a [`ValueStorage`] turns user values into words and back. Two ship:
//! [`OutOfLine`] (any type, allocated through the backend, read by reference)
//! and [`Inline`] (word-sized `Copy` types kept in the word itself, read by copy).

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::backend::NodeAllocatorGeneric;

mod sealed {
    /// Only this crate's storages implement [`super::ValueStorage`].
    pub trait Sealed {}
}

/// Converts values to and from the tree's value words: [`OutOfLine`] or
/// [`Inline`]. Sealed: the tree's memory safety rests on its two
/// implementations (`as_ref` relies only on words from `into_word` of the
/// same storage, and `take`/`retire` release exactly what `into_word`
/// acquired). Custom inline types implement [`InlineValue`] instead.
pub trait ValueStorage: sealed::Sealed {
    /// The value type users insert.
    type Value;
    /// What a lookup returns, borrowing from a guard that lives for `'g`.
    type Ref<'g>: Copy
    where
        Self: 'g;

    /// Turns a value into a word, allocating through `alloc` if needed.
    /// Gives the value back if allocation fails.
    #[doc(hidden)]
    fn into_word<A: NodeAllocatorGeneric>(
        alloc: &A,
        value: Self::Value,
    ) -> Result<*mut (), Self::Value>;

    /// Reads a word.
    ///
    /// # Safety
    /// `word` came from `into_word` and stays valid for `'g`.
    #[doc(hidden)]
    unsafe fn as_ref<'g>(word: *mut ()) -> Self::Ref<'g>
    where
        Self: 'g;

    /// The value a lookup result stands for (to compare, clone or format it).
    fn borrow<'a>(found: &'a Self::Ref<'_>) -> &'a Self::Value;

    /// True if two lookup results come from the same store of a value (the
    /// same allocation, or the same bits), whether or not `Value: PartialEq`.
    #[doc(hidden)]
    fn same(a: &Self::Ref<'_>, b: &Self::Ref<'_>) -> bool;

    /// Takes the value back out of a word nobody else can read any more (a
    /// failed insert, or a tree being torn down), releasing what `into_word`
    /// acquired.
    ///
    /// # Safety
    /// `word` came from `into_word` with this `alloc` and nobody can read it.
    #[doc(hidden)]
    unsafe fn take<A: NodeAllocatorGeneric>(alloc: &A, word: *mut ()) -> Self::Value;

    /// Releases a word once no current guard can read it.
    ///
    /// # Safety
    /// `word` came from `into_word` with this `alloc` and is no longer reachable.
    #[doc(hidden)]
    unsafe fn retire<A: NodeAllocatorGeneric>(alloc: &A, word: *mut (), guard: &A::Guard<'_>);

    /// Releases a word at once: the value's memory is given back before its
    /// destructor runs.
    ///
    /// # Safety
    /// As [`Self::take`].
    #[doc(hidden)]
    unsafe fn free<A: NodeAllocatorGeneric>(alloc: &A, word: *mut ()) {
        // SAFETY: the caller's guarantees are `take`'s.
        drop(unsafe { Self::take(alloc, word) });
    }
}

/// Values of any type, stored out of line through the backend; lookups return
/// `&'g V`, valid while the guard lives, even if the value is replaced meanwhile.
pub struct OutOfLine<V>(PhantomData<V>);

impl<V> sealed::Sealed for OutOfLine<V> {}

/// Words are pointers from `alloc_value::<V>`, released by the matching
/// `free_value`/`retire_value`.
impl<V> ValueStorage for OutOfLine<V> {
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

    #[inline]
    fn borrow<'a>(found: &'a &V) -> &'a V {
        found
    }

    fn same(a: &&V, b: &&V) -> bool {
        core::ptr::eq(*a, *b)
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

/// Values that round-trip through an integer type that is itself inline.
macro_rules! inline_via {
    ($($t:ty => $int:ty, $to:expr, $from:expr;)*) => {$(
        // SAFETY: `$from($to(v)) == v` for every value (checked in the tests),
        // and the integer round-trips through `usize`.
        unsafe impl InlineValue for $t {
            #[inline]
            fn to_word(self) -> usize {
                let to: fn($t) -> $int = $to;
                to(self).to_word()
            }
            #[inline]
            fn from_word(word: usize) -> Self {
                let from: fn($int) -> $t = $from;
                from(<$int>::from_word(word))
            }
        }
    )*};
}
inline_via! {
    f32 => u32, f32::to_bits, f32::from_bits;
    char => u32, u32::from, |c| char::from_u32(c).expect("a word made from a char");
}
#[cfg(target_pointer_width = "64")]
inline_via! {
    f64 => u64, f64::to_bits, f64::from_bits;
}

/// `NonZero` integers, and their `Option`s (`None` is the word 0).
macro_rules! inline_nonzero {
    ($($t:ty),*) => {$(
        inline_via! {
            core::num::NonZero<$t> => $t, core::num::NonZero::get,
                |n| core::num::NonZero::new(n).expect("a word made from a NonZero");
            Option<core::num::NonZero<$t>> => $t, |n| n.map_or(0, core::num::NonZero::get),
                core::num::NonZero::new;
        }
    )*};
}
inline_nonzero!(u8, u16, u32, usize, i8, i16, i32, isize);
#[cfg(target_pointer_width = "64")]
inline_nonzero!(u64, i64);

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

impl<V: InlineValue> sealed::Sealed for Inline<V> {}

/// Words are the values' own bits; nothing to release.
impl<V: InlineValue> ValueStorage for Inline<V> {
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

    #[inline]
    fn borrow(found: &V) -> &V {
        found
    }

    fn same(a: &V, b: &V) -> bool {
        a.to_word() == b.to_word()
    }

    unsafe fn take<A: NodeAllocatorGeneric>(_: &A, word: *mut ()) -> V {
        V::from_word(word.addr())
    }

    unsafe fn retire<A: NodeAllocatorGeneric>(_: &A, _: *mut (), _: &A::Guard<'_>) {}
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::InlineValue;
    use core::num::NonZero;

    fn round_trips<V: InlineValue + core::fmt::Debug>(values: &[V], same: impl Fn(V, V) -> bool) {
        for &v in values {
            let back = V::from_word(v.to_word());
            assert!(same(v, back), "{v:?} came back as {back:?}");
        }
    }

    #[test]
    fn inline_values_round_trip() {
        let bits32 = |a: f32, b: f32| a.to_bits() == b.to_bits();
        round_trips(
            &[
                0.0f32,
                -0.0,
                1.5,
                f32::NAN,
                -f32::INFINITY,
                f32::MIN_POSITIVE,
            ],
            bits32,
        );
        #[cfg(target_pointer_width = "64")]
        round_trips(
            &[0.0f64, -0.0, f64::NAN, f64::MAX, -1e-300],
            |a: f64, b: f64| a.to_bits() == b.to_bits(),
        );
        round_trips(&['\0', 'a', 'é', '\u{10FFFF}'], |a, b| a == b);
        round_trips(&[NonZero::new(1u8).unwrap(), NonZero::<u8>::MAX], |a, b| {
            a == b
        });
        round_trips(
            &[NonZero::new(-1i32).unwrap(), NonZero::<i32>::MIN],
            |a, b| a == b,
        );
        round_trips(
            &[None, NonZero::new(7usize), Some(NonZero::<usize>::MAX)],
            |a, b| a == b,
        );
        #[cfg(target_pointer_width = "64")]
        round_trips(
            &[None, Some(NonZero::<i64>::MIN), NonZero::new(-1i64)],
            |a, b| a == b,
        );
        round_trips(&[i8::MIN, -1, 0, i8::MAX], |a, b| a == b);
    }
}
