//! Order-preserving ("memcomparable") key encoding: typed keys whose byte
//! order equals their `Ord` order, so a byte-keyed tree orders them right.
//!
//! | type | encoding |
//! |---|---|
//! | `u8`..`u128`, `usize` | big-endian, fixed width (`usize` as 8 bytes) |
//! | `i8`..`i128`, `isize` | sign bit flipped, then as unsigned |
//! | `bool` | one byte, 0 or 1 |
//! | `char` | its scalar value as a `u32` |
//! | `[u8]`, `Vec<u8>`, `str`, `String` | bytes with `00` escaped as `00 FF`, then `00 00` |
//! | `Option<T>` | `00` for `None`; `01` then `T` for `Some` |
//! | tuples of up to 6 | the elements' encodings one after another |
//!
//! Every encoding ends where it says it does (fixed width, or the `00 00`
//! terminator that no escaped byte forms), so a tuple's encoding is the
//! concatenation of its elements', and the encoding of a leading part of a
//! tuple is a byte prefix of the whole one's: prefix scans over tuple prefixes
//! work ([`KeyPrefix`]). A byte string that is a proper prefix of another
//! encodes below it: its terminator `00 00` meets either a byte above `00` or
//! an escaped `00 FF`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A type whose values encode to bytes in their `Ord` order.
///
/// ```
/// use masstree::keycode::KeyEncode;
/// let (mut a, mut b) = (Vec::new(), Vec::new());
/// (-1i32, "x").encode(&mut a);
/// (1i32, "").encode(&mut b);
/// assert!(a < b);
/// ```
pub trait KeyEncode {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
}

/// A [`KeyEncode`] type that can be read back from its encoding.
///
/// ```
/// use masstree::keycode::{KeyDecode, KeyEncode};
/// let mut bytes = Vec::new();
/// (7u16, String::from("a\0b"), true).encode(&mut bytes);
/// let back = <(u16, String, bool)>::decode_all(&bytes).unwrap();
/// assert_eq!(back, (7, "a\0b".to_string(), true));
/// ```
pub trait KeyDecode: KeyEncode + Sized {
    /// Reads one value from the front of `input` and moves `input` past it.
    ///
    /// # Errors
    /// If `input` does not start with an encoding of this type.
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError>;

    /// Reads a value that spans all of `input`.
    ///
    /// # Errors
    /// If `input` is not exactly one encoding of this type.
    fn decode_all(mut input: &[u8]) -> Result<Self, DecodeError> {
        let value = Self::decode(&mut input)?;
        if input.is_empty() {
            Ok(value)
        } else {
            Err(DecodeError("trailing bytes after the key"))
        }
    }
}

/// Marks a tuple whose encoding is a byte prefix of the encodings of keys of
/// type `K`: its elements are references to the first elements of `K` (or to
/// what they borrow as, such as `str` for `String`).
///
/// ```
/// use masstree::keycode::KeyPrefix;
/// fn takes<K, P: KeyPrefix<K>>(_: &P) {}
/// takes::<(String, u32, u8), _>(&("user",));
/// takes::<(String, u32, u8), _>(&(&String::from("user"), &7u32));
/// ```
pub trait KeyPrefix<K>: KeyEncode {}

/// Bytes that are not the encoding of the type asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError(&'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a key encoding: {}", self.0)
    }
}

impl core::error::Error for DecodeError {}

/// The first `N` bytes of `input`, moving it past them.
fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let (head, rest) = input
        .split_first_chunk::<N>()
        .ok_or(DecodeError("too short for a fixed-width value"))?;
    *input = rest;
    Ok(*head)
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl KeyEncode for $t {
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl KeyDecode for $t {
            #[inline]
            fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
                take(input).map(<$t>::from_be_bytes)
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64, u128);

macro_rules! signed {
    ($($t:ty => $u:ty),*) => {$(
        impl KeyEncode for $t {
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                // Flipping the sign bit maps MIN..=MAX onto 0..=MAX unsigned, in order.
                ((*self as $u) ^ (1 << (<$u>::BITS - 1))).encode(out);
            }
        }
        impl KeyDecode for $t {
            #[inline]
            fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
                <$u>::decode(input).map(|u| (u ^ (1 << (<$u>::BITS - 1))) as $t)
            }
        }
    )*};
}
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

impl KeyEncode for usize {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out);
    }
}

impl KeyDecode for usize {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        usize::try_from(u64::decode(input)?).map_err(|_| DecodeError("usize out of range"))
    }
}

impl KeyEncode for isize {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as i64).encode(out);
    }
}

impl KeyDecode for isize {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        isize::try_from(i64::decode(input)?).map_err(|_| DecodeError("isize out of range"))
    }
}

impl KeyEncode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl KeyDecode for bool {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match u8::decode(input)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError("a bool byte is 0 or 1")),
        }
    }
}

impl KeyEncode for char {
    fn encode(&self, out: &mut Vec<u8>) {
        u32::from(*self).encode(out);
    }
}

impl KeyDecode for char {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        char::from_u32(u32::decode(input)?).ok_or(DecodeError("not a char"))
    }
}

impl KeyEncode for [u8] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.len() + 2);
        for part in self.split_inclusive(|&b| b == 0) {
            out.extend_from_slice(part);
            if part.last() == Some(&0) {
                out.push(0xFF);
            }
        }
        out.extend_from_slice(&[0, 0]);
    }
}

impl KeyEncode for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        self[..].encode(out);
    }
}

impl KeyDecode for Vec<u8> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let mut bytes = Vec::new();
        loop {
            let at = input
                .iter()
                .position(|&b| b == 0)
                .ok_or(DecodeError("a byte string without its terminator"))?;
            bytes.extend_from_slice(&input[..at]);
            match input.get(at + 1) {
                Some(0) => {
                    *input = &input[at + 2..];
                    return Ok(bytes);
                }
                Some(0xFF) => {
                    bytes.push(0);
                    *input = &input[at + 2..];
                }
                _ => return Err(DecodeError("a zero byte neither escaped nor a terminator")),
            }
        }
    }
}

impl KeyEncode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_bytes().encode(out);
    }
}

impl KeyEncode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        self.as_bytes().encode(out);
    }
}

impl KeyDecode for String {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        String::from_utf8(Vec::decode(input)?).map_err(|_| DecodeError("a string not in UTF-8"))
    }
}

impl<T: KeyEncode + ?Sized> KeyEncode for &T {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl<T: KeyEncode> KeyEncode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
}

impl<T: KeyDecode> KeyDecode for Option<T> {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match u8::decode(input)? {
            0 => Ok(None),
            1 => T::decode(input).map(Some),
            _ => Err(DecodeError("an option tag is 0 or 1")),
        }
    }
}

macro_rules! tuple {
    ($($t:ident $v:ident),+) => {
        impl<$($t: KeyEncode),+> KeyEncode for ($($t,)+) {
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($v,)+) = self;
                $($v.encode(out);)+
            }
        }
        impl<$($t: KeyDecode),+> KeyDecode for ($($t,)+) {
            fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
                Ok(($($t::decode(input)?,)+))
            }
        }
    };
}
tuple!(A a);
tuple!(A a, B b);
tuple!(A a, B b, C c);
tuple!(A a, B b, C c, D d);
tuple!(A a, B b, C c, D d, E e);
tuple!(A a, B b, C c, D d, E e, F f);

/// `KeyPrefix<(K1, ..., Kn, rest...)> for (&Q1, ..., &Qn)` where each `Ki`
/// borrows as `Qi`, for the prefix lengths listed before `;`.
macro_rules! prefix {
    ($($k:ident $q:ident),+ ; $($rest:ident),*) => {
        impl<'a, $($k, $q,)+ $($rest),*> KeyPrefix<($($k,)+ $($rest,)*)> for ($(&'a $q,)+)
        where
            $($k: core::borrow::Borrow<$q>, $q: KeyEncode + ?Sized,)+
        {
        }
    };
}
prefix!(A QA; B);
prefix!(A QA; B, C);
prefix!(A QA, B QB; C);
prefix!(A QA; B, C, D);
prefix!(A QA, B QB; C, D);
prefix!(A QA, B QB, C QC; D);
prefix!(A QA; B, C, D, E);
prefix!(A QA, B QB; C, D, E);
prefix!(A QA, B QB, C QC; D, E);
prefix!(A QA, B QB, C QC, D QD; E);
prefix!(A QA; B, C, D, E, F);
prefix!(A QA, B QB; C, D, E, F);
prefix!(A QA, B QB, C QC; D, E, F);
prefix!(A QA, B QB, C QC, D QD; E, F);
prefix!(A QA, B QB, C QC, D QD, E QE; F);
