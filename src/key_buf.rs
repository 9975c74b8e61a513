//! [`KeyBuf`]: the owned key the owning iterators hand out, with short keys
//! inline (no allocation) and long ones in one `Box<[u8]>`.
//!
//! A `KeyBuf` is a union of 64 bytes whose last byte says which form it
//! has (the safe alternative, an enum of an inline array and a box, was
//! slower than the `Vec` it replaces; see `KeyBuf::inline`).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::mem::ManuallyDrop;
use core::ops::Deref;

/// The longest key kept inline: every byte of a `KeyBuf` but the last.
const INLINE: usize = 63;
/// The byte that says which form a `KeyBuf` has: an inline key's length
/// (0 to `INLINE`), or `HEAP`.
const FORM: usize = 63;
/// The form byte of a heap key.
const HEAP: u8 = 0xFF;

/// An owned byte-string key: what [`Tree::iter`](crate::Tree::iter),
/// [`range`](crate::Tree::range), [`keys`](crate::Tree::keys),
/// [`prefix`](crate::Tree::prefix), [`first`](crate::Tree::first),
/// [`last`](crate::Tree::last), [`pop_first`](crate::Tree::pop_first),
/// [`pop_last`](crate::Tree::pop_last) and the owned [`IntoIter`](crate::IntoIter)
/// hand out. Keys of up to [`INLINE_CAPACITY`](Self::INLINE_CAPACITY) (63)
/// bytes live in the value itself, so yielding one allocates nothing; a
/// longer key is one `Box<[u8]>` from the global allocator. A `KeyBuf` is 64
/// bytes (aligned to 8). It has no niche: `Option<(KeyBuf, V)>` carries a
/// separate tag.
///
/// It is its bytes for every purpose: it derefs to `[u8]`, and compares,
/// orders and hashes exactly as that slice does, so with
/// `Borrow<[u8]>` a `HashMap<KeyBuf, V>` or `BTreeSet<KeyBuf>` is looked up
/// by `&[u8]`. It compares equal with `[u8]`, `&[u8]`, `[u8; N]`,
/// `&[u8; N]` and `Vec<u8>` holding the same bytes, either way round. Its
/// `Debug` form is a byte-string literal, `b"user/1\x00"` (bytes outside
/// printable ASCII escaped as by [`u8::escape_ascii`]). With the `serde`
/// feature it serializes as a byte string.
///
/// ```
/// use masstree::{InlineMassTree, KeyBuf};
/// let tree = InlineMassTree::<u64>::new();
/// let g = tree.guard();
/// tree.insert("user/1", 1, &g);
/// tree.insert("user/2", 2, &g);
/// for (key, v) in tree.iter(&g) {
///     assert!(key.starts_with(b"user/") && key.is_inline());
///     assert_eq!(key.len(), 6);
///     assert_eq!(key, format!("user/{v}").as_bytes());
/// }
/// let first: KeyBuf = tree.first(&g).unwrap().0;
/// assert_eq!(first, b"user/1");
/// assert_eq!(format!("{first:?}"), r#"b"user/1""#);
/// let owned: Vec<u8> = first.into_vec();
/// assert_eq!(owned, b"user/1");
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub struct KeyBuf(Repr);

/// The 64 bytes of a key. Byte `FORM` is an initialized `u8` in both fields
/// and says which one is live: at most `INLINE`, then `inline` is, its
/// first that many bytes the key and the rest zero; `HEAP`, then `heap`.
#[repr(C)]
union Repr {
    inline: [u8; 64],
    heap: ManuallyDrop<Heap>,
}

/// A key longer than `INLINE`, with the form byte where [`Repr`] keeps it.
#[repr(C)]
struct Heap {
    key: Box<[u8]>,
    zero: [u8; FORM - size_of::<Box<[u8]>>()],
    /// `HEAP`.
    form: u8,
}

// One cache line, on any target, with byte 63 the form byte in both fields.
const _: () = assert!(size_of::<KeyBuf>() == 64 && size_of::<Heap>() == 64);

impl KeyBuf {
    /// The longest key a `KeyBuf` holds without allocating: 63 bytes.
    pub const INLINE_CAPACITY: usize = INLINE;

    /// The empty key (no allocation).
    pub const fn new() -> Self {
        KeyBuf(Repr { inline: [0; 64] })
    }

    /// The form byte: the length of an inline key, or `HEAP`.
    #[inline]
    fn form(&self) -> u8 {
        // SAFETY: byte `FORM` is an initialized `u8` whichever field is
        // live (see `Repr`), and only that byte is read.
        unsafe { self.0.inline[FORM] }
    }

    /// The key's bytes; also what `&*key` gives.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        let form = usize::from(self.form());
        if form <= INLINE {
            // SAFETY: a form of at most `INLINE` means `inline` is live,
            // all its bytes initialized.
            unsafe { &self.0.inline[..form] }
        } else {
            // SAFETY: the form is `HEAP`: `heap` is live.
            unsafe { &self.0.heap.key }
        }
    }

    /// True if the key is stored in the value itself (it is at most
    /// [`INLINE_CAPACITY`](Self::INLINE_CAPACITY) bytes long), false if on
    /// the heap.
    ///
    /// ```
    /// use masstree::KeyBuf;
    /// assert!(KeyBuf::from(&[7; KeyBuf::INLINE_CAPACITY][..]).is_inline());
    /// assert!(!KeyBuf::from(&[7; KeyBuf::INLINE_CAPACITY + 1][..]).is_inline());
    /// ```
    #[inline]
    pub fn is_inline(&self) -> bool {
        usize::from(self.form()) <= INLINE
    }

    /// The bytes as a `Vec<u8>`: a long key's heap block is handed over
    /// without copying; a short key is copied into a new vector (one
    /// allocation, none for the empty key).
    ///
    /// ```
    /// let key = masstree::KeyBuf::from("abc");
    /// assert_eq!(key.into_vec(), b"abc".to_vec());
    /// ```
    pub fn into_vec(self) -> Vec<u8> {
        if self.is_inline() {
            return self.as_slice().to_vec();
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: `heap` is live (the key is not inline). Its box is moved
        // out once, and `this` is never dropped, so it is not freed twice.
        let key = unsafe { core::ptr::read(&this.0.heap.key) };
        key.into_vec()
    }

    /// A heap key: `key` is longer than `INLINE`.
    fn boxed(key: Box<[u8]>) -> Self {
        debug_assert!(key.len() > INLINE);
        KeyBuf(Repr {
            heap: ManuallyDrop::new(Heap {
                key,
                zero: [0; FORM - size_of::<Box<[u8]>>()],
                form: HEAP,
            }),
        })
    }

    /// A heap copy of `key`, which is longer than `INLINE`.
    #[cold]
    fn boxed_copy(key: &[u8]) -> Self {
        Self::boxed(key.into())
    }

    /// An inline key: `key` is at most `INLINE` bytes long.
    ///
    /// Written as four whole 16-byte chunks (the last one with the length
    /// on top), each made in registers from 8-byte loads of the key. A
    /// `KeyBuf` is moved (returned, bound by a `for` loop) right after it
    /// is made, and each move reads it back 16 bytes at a time. A load
    /// that spans several recent stores (as after a `memcpy` of the key
    /// into a zeroed array, whose stores are narrower) waits for them to
    /// reach the cache instead of being forwarded from the store buffer.
    /// That stall made an enum of `[u8; 62]` and a box slower than the
    /// `Vec` it replaced (a `for` loop over `iter` on 1M 8-byte keys: 37.6
    /// ns per entry against 28.7 with `Vec`; 21.0 ns so).
    #[inline]
    fn inline(key: &[u8]) -> Self {
        let n = key.len();
        debug_assert!(n <= INLINE);
        let mut bytes = [0; 64];
        for j in 0..4 {
            let lo = word(key, 2 * j);
            let mut hi = word(key, 2 * j + 1);
            if j == 3 {
                // The form byte, byte 63: an inline key's length.
                hi |= (n as u64) << 56;
            }
            let chunk = (&mut bytes[16 * j..16 * j + 16]).try_into().unwrap();
            store16(chunk, lo, hi);
        }
        KeyBuf(Repr { inline: bytes })
    }
}

/// Bytes `8 * i` to `8 * i + 8` of `key` as a little-endian word, zero
/// beyond the key's end.
#[inline]
fn word(key: &[u8], i: usize) -> u64 {
    let (n, at) = (key.len(), 8 * i);
    let load = |from: usize| u64::from_le_bytes(key[from..from + 8].try_into().unwrap());
    if at + 8 <= n {
        load(at)
    } else if at >= n {
        0
    } else if n >= 8 {
        // The key's last word, shifted down so that byte `at` comes first.
        load(n - 8) >> (8 * (at + 8 - n))
    } else {
        short_word(key)
    }
}

/// A key of fewer than 8 bytes as a little-endian word, zero-padded, from
/// two loads that may overlap (the bytes they share are the same bytes).
#[inline]
fn short_word(key: &[u8]) -> u64 {
    let n = key.len();
    if n >= 4 {
        let at = |i: usize| u64::from(u32::from_le_bytes(key[i..i + 4].try_into().unwrap()));
        at(0) | at(n - 4) << (8 * (n - 4))
    } else if n > 0 {
        let byte = |i: usize| u64::from(key[i]) << (8 * i);
        byte(0) | byte(n / 2) | byte(n - 1)
    } else {
        0
    }
}

/// Writes `lo` then `hi` (little-endian) into `dst` with one 16-byte store,
/// so that a 16-byte load of `dst` is forwarded from it (LLVM splits a
/// `u128` store into two 8-byte stores on x86-64; `stp` on AArch64 is one).
#[inline]
fn store16(dst: &mut [u8; 16], lo: u64, hi: u64) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use core::arch::x86_64::{_mm_set_epi64x, _mm_storeu_si128};
        // SAFETY: SSE2 is enabled (the cfg); the unaligned store writes
        // the 16 bytes of `dst`, which it borrows mutably.
        unsafe {
            _mm_storeu_si128(
                dst.as_mut_ptr().cast(),
                _mm_set_epi64x(hi as i64, lo as i64),
            )
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        *dst = (u128::from(lo) | u128::from(hi) << 64).to_le_bytes();
    }
}

impl Drop for KeyBuf {
    fn drop(&mut self) {
        if !self.is_inline() {
            // SAFETY: `heap` is live, and dropped once: here.
            unsafe { ManuallyDrop::drop(&mut self.0.heap) }
        }
    }
}

impl Clone for KeyBuf {
    fn clone(&self) -> Self {
        if self.is_inline() {
            // SAFETY: `inline` is live, all its bytes initialized.
            KeyBuf(Repr {
                inline: unsafe { self.0.inline },
            })
        } else {
            Self::boxed_copy(self)
        }
    }
}

impl From<&[u8]> for KeyBuf {
    /// Copies the key: inline if it fits, else into one heap block.
    #[inline]
    fn from(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            Self::inline(key)
        } else {
            Self::boxed_copy(key)
        }
    }
}

impl<const N: usize> From<&[u8; N]> for KeyBuf {
    /// Copies the key, as `From<&[u8]>`.
    fn from(key: &[u8; N]) -> Self {
        Self::from(&key[..])
    }
}

impl<const N: usize> From<[u8; N]> for KeyBuf {
    /// Copies the key, as `From<&[u8]>`.
    fn from(key: [u8; N]) -> Self {
        Self::from(&key[..])
    }
}

impl From<&str> for KeyBuf {
    /// The string's UTF-8 bytes, copied as `From<&[u8]>`.
    fn from(key: &str) -> Self {
        Self::from(key.as_bytes())
    }
}

impl From<Box<[u8]>> for KeyBuf {
    /// Takes the block over if the key is too long to be inline; a short
    /// key is copied and the block freed.
    fn from(key: Box<[u8]>) -> Self {
        if key.len() <= INLINE {
            Self::inline(&key)
        } else {
            Self::boxed(key)
        }
    }
}

impl From<Vec<u8>> for KeyBuf {
    /// Takes the vector's block over if the key is too long to be inline
    /// (shrunk to fit first, as `Vec::into_boxed_slice` does, which may
    /// reallocate); a short key is copied and the vector freed.
    fn from(key: Vec<u8>) -> Self {
        if key.len() <= INLINE {
            Self::inline(&key)
        } else {
            Self::boxed(key.into_boxed_slice())
        }
    }
}

impl From<KeyBuf> for Vec<u8> {
    /// As [`KeyBuf::into_vec`].
    fn from(key: KeyBuf) -> Vec<u8> {
        key.into_vec()
    }
}

impl Default for KeyBuf {
    /// The empty key, as [`KeyBuf::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for KeyBuf {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for KeyBuf {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for KeyBuf {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for KeyBuf {
    /// A byte-string literal: `b"abc\xff"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.as_slice().escape_ascii())
    }
}

impl PartialEq for KeyBuf {
    #[inline]
    fn eq(&self, other: &KeyBuf) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for KeyBuf {}

impl PartialOrd for KeyBuf {
    #[inline]
    fn partial_cmp(&self, other: &KeyBuf) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyBuf {
    /// The bytes' order (lexicographic, a prefix first), as `[u8]`'s and the
    /// tree's.
    #[inline]
    fn cmp(&self, other: &KeyBuf) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for KeyBuf {
    /// Hashes as the `[u8]` it holds (so `Borrow<[u8]>` lookups agree).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

/// `PartialEq` both ways between `KeyBuf` and byte-string types, by bytes.
macro_rules! eq_bytes {
    ($([$($g:tt)*] $t:ty),* $(,)?) => {$(
        impl<$($g)*> PartialEq<$t> for KeyBuf {
            #[inline]
            fn eq(&self, other: &$t) -> bool {
                self.as_slice() == &other[..]
            }
        }
        impl<$($g)*> PartialEq<KeyBuf> for $t {
            #[inline]
            fn eq(&self, other: &KeyBuf) -> bool {
                &self[..] == other.as_slice()
            }
        }
    )*};
}
eq_bytes!(
    [] [u8],
    ['a] &'a [u8],
    [const N: usize] [u8; N],
    ['a, const N: usize] &'a [u8; N],
    [] Vec<u8>,
);

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::format;
    use core::hash::BuildHasher;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::collections::hash_map::RandomState;

    fn hash_of<T: Hash + ?Sized>(s: &RandomState, v: &T) -> u64 {
        s.hash_one(v)
    }

    /// A key of `n` bytes, all distinct from their neighbours.
    fn key(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 1) as u8).collect()
    }

    #[test]
    fn inline_up_to_the_capacity_heap_beyond() {
        // 1 MiB (4 KiB under Miri, where each byte's check is slow).
        const BIG: usize = if cfg!(miri) { 1 << 12 } else { 1 << 20 };
        for n in [0, 1, INLINE - 1, INLINE, INLINE + 1, 2 * INLINE, BIG] {
            let v = key(n);
            let k = KeyBuf::from(&v[..]);
            assert_eq!(k.is_inline(), n <= INLINE, "{n} bytes");
            assert_eq!((k.len(), k.as_slice()), (n, &v[..]), "{n} bytes");
            assert_eq!(k, v);
            assert_eq!(k.clone(), k);
            assert_eq!(k.clone().is_inline(), n <= INLINE);
            // Every constructor agrees on the form.
            let from_vec = KeyBuf::from(v.clone());
            let from_box = KeyBuf::from(v.clone().into_boxed_slice());
            for other in [&from_vec, &from_box] {
                assert_eq!((other, other.is_inline()), (&k, k.is_inline()));
            }
            assert_eq!(k.clone().into_vec(), v);
            assert_eq!(Vec::from(k), v);
        }
        assert_eq!(KeyBuf::INLINE_CAPACITY, 63);
        assert!(KeyBuf::new().is_empty() && KeyBuf::default().is_inline());
        assert_eq!(KeyBuf::new(), KeyBuf::from(&[][..]));
    }

    /// Every inline length, in keys without a zero byte (so a byte lost
    /// to the zero padding shows), and the first heap one.
    #[test]
    fn every_length_round_trips() {
        for n in 0..=INLINE + 1 {
            let v: Vec<u8> = (0..n).map(|i| 0xA0 ^ i as u8).collect();
            let k = KeyBuf::from(&v[..]);
            assert_eq!(
                (k.as_slice(), k.is_inline()),
                (&v[..], n <= INLINE),
                "{n} bytes"
            );
            let c = k.clone();
            drop(k);
            assert_eq!(c.into_vec(), v, "{n} bytes, cloned");
        }
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<KeyBuf>();
    }

    #[test]
    fn a_long_key_hands_its_block_over() {
        // Exactly as long as its capacity, so boxing it does not reallocate.
        let v = key(INLINE + 10).into_boxed_slice().into_vec();
        let p = v.as_ptr();
        let k = KeyBuf::from(v);
        assert_eq!(k.as_ptr(), p, "from Vec: the vector's block");
        let back = k.into_vec();
        assert_eq!(back.as_ptr(), p, "into_vec: the same block");
    }

    #[test]
    fn compares_with_byte_strings_both_ways() {
        let k = KeyBuf::from("abc");
        let v = b"abc".to_vec();
        // Each impl, one way and the other: [u8; N], &[u8; N], [u8], &[u8], Vec<u8>.
        assert_eq!(k, *b"abc");
        assert_eq!(*b"abc", k);
        assert_eq!(k, b"abc");
        assert_eq!(b"abc", k);
        assert_eq!(k, b"abc"[..]);
        assert_eq!(b"abc"[..], k);
        assert_eq!(k, &b"abc"[..]);
        assert_eq!(&b"abc"[..], k);
        assert_eq!(k, v);
        assert_eq!(v, k);
        assert_ne!(k, b"abd");
        assert_ne!(k, b"ab");
        assert_ne!(KeyBuf::from("ab"), k);
        assert_eq!(KeyBuf::from(*b"abc"), k);
        let keys = [KeyBuf::from("a"), KeyBuf::from("b")];
        assert_eq!(keys.to_vec(), [b"a", b"b"]);
        assert_eq!(keys.to_vec(), [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn debug_is_a_byte_string_literal() {
        assert_eq!(format!("{:?}", KeyBuf::from("user/1")), r#"b"user/1""#);
        let odd = KeyBuf::from(&b"a\0\"\\\n\xff'"[..]);
        assert_eq!(format!("{odd:?}"), r#"b"a\x00\"\\\n\xff\'""#);
        assert_eq!(format!("{:?}", KeyBuf::new()), r#"b"""#);
        let long = KeyBuf::from(&[b'x'; 100][..]);
        assert_eq!(format!("{long:?}"), format!("b\"{}\"", "x".repeat(100)));
    }

    #[test]
    fn borrows_as_bytes_in_maps() {
        let mut map = HashMap::new();
        map.insert(KeyBuf::from("short"), 1);
        map.insert(KeyBuf::from(&key(100)[..]), 2);
        assert_eq!(map.get(&b"short"[..]), Some(&1));
        assert_eq!(map.get(&key(100)[..]), Some(&2));
        let set: BTreeSet<KeyBuf> = ["b", "a"].into_iter().map(KeyBuf::from).collect();
        assert!(set.contains(&b"a"[..]));
    }

    /// Keys around the inline capacity, and a few far beyond it.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let near = (INLINE - 3)..(INLINE + 4);
        prop_oneof![
            proptest::collection::vec(0u8..4, 0..8),
            proptest::collection::vec(0u8..4, near.clone()),
            proptest::collection::vec(any::<u8>(), near),
            proptest::collection::vec(any::<u8>(), 0..200),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 8 } else { 2_000 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Equality, order and hash are those of the bytes (as in `Vec<u8>`).
        #[test]
        #[cfg_attr(miri, ignore = "proptest's file I/O is not allowed under Miri isolation")]
        fn agrees_with_vec(a in bytes(), b in bytes()) {
            let (ka, kb) = (KeyBuf::from(&a[..]), KeyBuf::from(b.clone()));
            prop_assert_eq!(ka == kb, a == b);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka.partial_cmp(&kb), a.partial_cmp(&b));
            prop_assert_eq!(ka.cmp(&ka.clone()), Ordering::Equal);
            let s = RandomState::new();
            prop_assert_eq!(hash_of(&s, &ka), hash_of(&s, &a));
            prop_assert_eq!(hash_of(&s, &ka), hash_of(&s, &a[..]));
            prop_assert_eq!(hash_of(&s, &kb), hash_of(&s, &b));
            prop_assert_eq!(ka.is_inline(), a.len() <= INLINE);
            prop_assert_eq!(&ka[..], &a[..]);
            prop_assert_eq!(ka.into_vec(), a);
        }
    }
}
