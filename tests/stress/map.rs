//! Value tags and the map abstraction the drivers use.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{hex, key_hash};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Tag {
    pub(crate) id: u32,
    pub(crate) w: u32,
    pub(crate) seq: u32,
}

impl Tag {
    pub(crate) fn pack(self) -> u64 {
        assert!(self.id < (1 << 28) && self.w < 16);
        ((self.id as u64) << 36) | ((self.w as u64) << 32) | self.seq as u64
    }
    pub(crate) fn unpack(v: u64) -> Tag {
        Tag {
            id: (v >> 36) as u32,
            w: ((v >> 32) & 0xF) as u32,
            seq: v as u32,
        }
    }
}

/// An out-of-line value: the tag, the key it was written for, and a checksum
/// over both (so a freed / reused / torn value is likely detected).
#[derive(Debug)]
pub(crate) struct Val {
    pub(crate) tag: Tag,
    pub(crate) key: Box<[u8]>,
    pub(crate) check: u64,
}

impl Val {
    pub(crate) fn new(key: &[u8], tag: Tag) -> Val {
        Val {
            tag,
            key: key.into(),
            check: key_hash(key) ^ tag.pack().rotate_left(17),
        }
    }
    /// Verify integrity (and, if given, that it belongs to `key`); return the tag.
    pub(crate) fn verify(&self, key: Option<&[u8]>) -> Tag {
        assert_eq!(
            self.check,
            key_hash(&self.key) ^ self.tag.pack().rotate_left(17),
            "corrupt out-of-line value {:?}",
            self.tag
        );
        if let Some(k) = key {
            assert!(
                &*self.key == k,
                "value written for key {} returned for key {}",
                hex(&self.key),
                hex(k)
            );
        }
        self.tag
    }
}

/// Verifies `v`, returned for `key`, and keeps it in `held` to be verified
/// again before the guard protecting it is dropped; returns its tag.
pub(crate) fn hold<'g>(held: &RefCell<Vec<(&'g Val, Tag)>>, key: &[u8], v: &'g Val) -> Tag {
    let tag = v.verify(Some(key));
    held.borrow_mut().push((v, tag));
    tag
}

/// A batched lookup: fills `out[i]` with the value of `keys[i]`.
pub(crate) type GetBatch<'a> = dyn FnMut(&[&[u8]], &mut [Option<Tag>]) + 'a;

/// Operations available while one guard is held.
pub(crate) struct Session<'a> {
    pub(crate) insert: &'a mut dyn FnMut(&[u8], Tag) -> Option<Tag>,
    pub(crate) get: &'a mut dyn FnMut(&[u8]) -> Option<Tag>,
    pub(crate) remove: &'a mut dyn FnMut(&[u8]) -> Option<Tag>,
    /// `get` of every key at once (`Tree::get_batch`): `out[i]` for `keys[i]`.
    pub(crate) get_batch: &'a mut GetBatch<'a>,
}

/// A tree under test, seen through tags.
pub(crate) trait StressMap: Sync {
    /// Run `f` with one guard held for its whole duration.
    fn session<R>(&self, f: impl FnOnce(&mut Session<'_>) -> R) -> R;
    fn count(&self) -> usize;
}

/// Decrements nothing, increments `counter` when dropped (also on unwind), so
/// that readers stop even when a writer panics.
pub(crate) struct DoneOnDrop<'a>(pub(crate) &'a AtomicUsize);
impl Drop for DoneOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}
