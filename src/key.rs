//! Key slicing (`masstree_key.hh`): a key is read 8 bytes at a time.
//!
//! Each trie layer indexes one 8-byte slice of the key, read as a big-endian
//! `u64` (the *ikey*), so integer order is byte order. A short last slice is
//! zero-padded, so the ikey alone cannot tell `"a"` from `"a\0"`: every leaf
//! slot also stores a *keylenx*: the key's length within the slice (`0..=8`),
//! [`KSUF`] for "longer, the rest is stored out of line", or [`LAYER`] for
//! "longer, the rest lives in the next layer".

/// Bytes per slice.
pub(crate) const SLICE: usize = 8;
/// keylenx: the key continues past this slice; its suffix is stored out of line.
pub(crate) const KSUF: u8 = 64;
/// keylenx: the key continues past this slice into the next trie layer.
pub(crate) const LAYER: u8 = 128;

/// Sort rank of a keylenx among keys with the same ikey: shorter keys first,
/// and a key longer than the slice (suffix or layer) last.
#[inline]
pub(crate) fn rank(keylenx: u8) -> u8 {
    if keylenx as usize <= SLICE {
        keylenx
    } else {
        SLICE as u8 + 1
    }
}

/// The ikey of up to 8 bytes, zero-padded on the right.
#[inline]
pub(crate) fn ikey_of(bytes: &[u8]) -> u64 {
    if bytes.len() >= SLICE {
        let mut b = [0u8; SLICE];
        b.copy_from_slice(&bytes[..SLICE]);
        u64::from_be_bytes(b)
    } else {
        let mut b = [0u8; SLICE];
        b[..bytes.len()].copy_from_slice(bytes);
        u64::from_be_bytes(b)
    }
}

/// The length of the longest common prefix of `a` and `b`, compared 8 bytes
/// at a time (a call to `memcmp` costs more than the comparison for keys of
/// a few slices).
#[inline]
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + SLICE <= n {
        let x = ikey_of(&a[i..]) ^ ikey_of(&b[i..]);
        if x != 0 {
            return i + x.leading_zeros() as usize / 8;
        }
        i += SLICE;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// A key with a cursor on the slice of the current layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key<'k> {
    full: &'k [u8],
    offset: usize,
}

impl<'k> Key<'k> {
    #[inline]
    pub(crate) fn new(full: &'k [u8]) -> Self {
        Key { full, offset: 0 }
    }

    /// The bytes from the current slice on.
    #[inline]
    pub(crate) fn rest(&self) -> &'k [u8] {
        &self.full[self.offset..]
    }

    /// The current slice as an ikey.
    #[inline]
    pub(crate) fn ikey(&self) -> u64 {
        ikey_of(self.rest())
    }

    /// The keylenx this key has in the current layer: its length within the
    /// slice, or [`KSUF`] if it continues past it.
    #[inline]
    pub(crate) fn keylenx(&self) -> u8 {
        let n = self.rest().len();
        if n > SLICE { KSUF } else { n as u8 }
    }

    /// True if the key continues past the current slice.
    #[inline]
    pub(crate) fn has_suffix(&self) -> bool {
        self.rest().len() > SLICE
    }

    /// The bytes past the current slice (empty if none).
    #[inline]
    pub(crate) fn suffix(&self) -> &'k [u8] {
        let r = self.rest();
        if r.len() > SLICE { &r[SLICE..] } else { &[] }
    }

    /// The key with its cursor on layer `depth`'s slice (as `depth` shifts
    /// would leave it).
    #[inline]
    pub(crate) fn at_depth(full: &'k [u8], depth: usize) -> Self {
        debug_assert!(full.len() > depth * SLICE || depth == 0);
        Key {
            full,
            offset: depth * SLICE,
        }
    }

    /// The layer the cursor is on (0 for the top).
    #[inline]
    pub(crate) fn depth(&self) -> usize {
        self.offset / SLICE
    }

    /// Moves to the next layer's slice.
    #[inline]
    pub(crate) fn shift(&mut self) {
        debug_assert!(self.has_suffix());
        self.offset += SLICE;
    }
}

#[cfg(all(test, not(masstree_loom)))]
mod tests {
    use super::*;
    use core::cmp::Ordering;

    impl Key<'_> {
        /// Compares `(ikey, rank)` with a stored entry, as the leaf search does.
        fn compare(&self, ikey: u64, keylenx: u8) -> Ordering {
            (self.ikey(), rank(self.keylenx())).cmp(&(ikey, rank(keylenx)))
        }
    }

    #[test]
    fn ikey_is_big_endian_and_zero_padded() {
        assert_eq!(ikey_of(b""), 0);
        assert_eq!(ikey_of(b"a"), 0x6100_0000_0000_0000);
        assert_eq!(ikey_of(b"a\0"), ikey_of(b"a"));
        assert_eq!(ikey_of(b"abcdefghij"), u64::from_be_bytes(*b"abcdefgh"));
        assert!(ikey_of(b"ab") < ikey_of(b"b"));
        assert!(ikey_of(&[0xff; 8]) == u64::MAX);
    }

    #[test]
    fn common_prefix_matches_bytewise() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"", b""),
            (b"abc", b"abd"),
            (b"abcdefgh", b"abcdefgh"),
            (b"abcdefghij", b"abcdefghik"),
            (b"abcdefgh", b"abcdefghxyz"),
            (b"abcdefgXhij", b"abcdefgYhij"),
            (b"a", b"b"),
        ];
        for (a, b) in cases {
            let slow = a.iter().zip(b).take_while(|(x, y)| x == y).count();
            assert_eq!(common_prefix(a, b), slow, "{a:?} {b:?}");
            assert_eq!(common_prefix(b, a), slow, "{b:?} {a:?}");
        }
    }

    #[test]
    fn keylenx_and_suffix() {
        let k = Key::new(b"abc");
        assert_eq!((k.keylenx(), k.suffix()), (3, &b""[..]));
        let k = Key::new(b"12345678");
        assert_eq!((k.keylenx(), k.has_suffix()), (8, false));
        let mut k = Key::new(b"12345678ABCDEFGHxy");
        assert_eq!((k.keylenx(), k.suffix()), (KSUF, &b"ABCDEFGHxy"[..]));
        k.shift();
        assert_eq!(k.ikey(), ikey_of(b"ABCDEFGH"));
        assert_eq!(k.suffix(), b"xy");
        k.shift();
        assert_eq!((k.keylenx(), k.rest()), (2, &b"xy"[..]));
        assert_eq!(Key::new(b"").keylenx(), 0);
    }

    #[test]
    fn ordering_by_ikey_then_length() {
        // "a" < "a\0" < "a\0\0\0\0\0\0\0" < "a\0\0\0\0\0\0\0x": same ikey, ranked by length.
        let keys: [&[u8]; 4] = [b"a", b"a\0", b"a\0\0\0\0\0\0\0", b"a\0\0\0\0\0\0\0x"];
        for w in keys.windows(2) {
            let (lo, hi) = (Key::new(w[0]), Key::new(w[1]));
            assert_eq!(lo.compare(hi.ikey(), hi.keylenx()), Ordering::Less);
            assert_eq!(hi.compare(lo.ikey(), lo.keylenx()), Ordering::Greater);
        }
        // A layer entry ranks like a suffixed key.
        let k = Key::new(b"abcdefgh-more");
        assert_eq!(k.compare(k.ikey(), LAYER), Ordering::Equal);
        assert_eq!(k.compare(k.ikey(), 8), Ordering::Greater);
    }
}
