//! serde support (feature `serde`): a tree serializes as a map from byte
//! strings to values (keys as strings in human-readable formats where they
//! are UTF-8), and deserializes through the bulk loader when the keys
//! arrive in increasing order (as a serialized tree's do), by inserts
//! otherwise (a later duplicate key wins, as in `BTreeMap`). A [`KeyBuf`]
//! serializes as a byte string.

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::NodeAllocatorGeneric;
use crate::bulk::BulkLoader;
use crate::key_buf::KeyBuf;
use crate::tree::Tree;
use crate::value::ValueStorage;

/// A key: a byte string, or a string in human-readable formats (JSON, whose
/// map keys must be strings) when it is UTF-8.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        match core::str::from_utf8(self.0) {
            Ok(s) if serializer.is_human_readable() => serializer.serialize_str(s),
            _ => serializer.serialize_bytes(self.0),
        }
    }
}

/// A [`KeyBuf`] serializes as a byte string (`serialize_bytes`) and reads
/// back from a byte string, a sequence of bytes (what formats without a byte
/// type write) or a string, so it also reads the keys of a serialized tree.
///
/// ```
/// use masstree::KeyBuf;
/// let json = serde_json::to_string(&KeyBuf::from("ab")).unwrap();
/// assert_eq!(json, "[97,98]");
/// assert_eq!(serde_json::from_str::<KeyBuf>(&json).unwrap(), b"ab");
/// assert_eq!(serde_json::from_str::<KeyBuf>(r#""ab""#).unwrap(), b"ab");
/// ```
impl Serialize for KeyBuf {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_bytes(self)
    }
}

impl<'de> Deserialize<'de> for KeyBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<KeyBuf, E> {
                Ok(KeyBuf::from(v))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<KeyBuf, E> {
                Ok(KeyBuf::from(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyBuf, E> {
                Ok(KeyBuf::from(v))
            }
            fn visit_seq<Q: SeqAccess<'de>>(self, mut seq: Q) -> Result<KeyBuf, Q::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(KeyBuf::from(out))
            }
        }
        deserializer.deserialize_bytes(KeyVisitor)
    }
}

/// Serializes the entries in key order. Under concurrent writers the output
/// is what an iteration sees (see [`crate::Range`]), not one snapshot.
///
/// ```
/// let tree = masstree::InlineMassTree::<u32>::new();
/// tree.insert("b", 2, &tree.guard());
/// tree.insert("a", 1, &tree.guard());
/// let json = serde_json::to_string(&tree).unwrap();
/// assert_eq!(json, r#"{"a":1,"b":2}"#);
/// ```
impl<S: ValueStorage, A: NodeAllocatorGeneric> Serialize for Tree<S, A>
where
    for<'g> S::Ref<'g>: Serialize,
{
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        let guard = self.guard();
        // Collected first, so the length given to the format is exact.
        let entries: Vec<_> = self.iter(&guard).collect();
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (key, value) in &entries {
            map.serialize_entry(&Bytes(key), value)?;
        }
        map.end()
    }
}

/// Reads a tree into the backend it carries; [`Tree`]'s `Deserialize` uses
/// `A::default()`.
///
/// ```
/// use serde::de::DeserializeSeed;
/// use masstree::{InlineMassTree, TreeSeed};
/// use masstree::alloc_backends::seize::SeizeBackend;
/// let mut json = serde_json::Deserializer::from_str(r#"{"b": 2, "a": 1}"#);
/// let tree: InlineMassTree<u32> = TreeSeed::new(SeizeBackend::new()).deserialize(&mut json).unwrap();
/// assert_eq!(tree.get("a", &tree.guard()), Some(1));
/// ```
pub struct TreeSeed<S, A> {
    backend: A,
    _values: PhantomData<fn() -> S>,
}

impl<S, A> TreeSeed<S, A> {
    /// A seed that builds the tree on `backend`.
    pub fn new(backend: A) -> Self {
        TreeSeed {
            backend,
            _values: PhantomData,
        }
    }
}

impl<'de, S: ValueStorage, A: NodeAllocatorGeneric> DeserializeSeed<'de> for TreeSeed<S, A>
where
    S::Value: Deserialize<'de>,
{
    type Value = Tree<S, A>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tree<S, A>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S: ValueStorage, A: NodeAllocatorGeneric> Visitor<'de> for TreeSeed<S, A>
where
    S::Value: Deserialize<'de>,
{
    type Value = Tree<S, A>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from byte strings to values")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Tree<S, A>, M::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 16));
        while let Some((key, value)) = map.next_entry::<KeyBuf, S::Value>()? {
            entries.push((key, value));
        }
        let sorted = entries.windows(2).all(|w| w[0].0 < w[1].0);
        let full = |what| de::Error::custom(format_args!("masstree: out of memory {what}"));
        if sorted {
            return BulkLoader::new(self.backend)
                .load(entries)
                .map_err(|_| full("bulk-loading the map"));
        }
        let tree = Tree::new_in(self.backend);
        {
            let guard = tree.guard();
            let fallible = tree.fallible();
            for (key, value) in entries {
                if fallible.insert(&key, value, &guard).is_err() {
                    return Err(full("inserting an entry"));
                }
            }
        }
        Ok(tree)
    }
}

impl<'de, S: ValueStorage, A: NodeAllocatorGeneric + Default> Deserialize<'de> for Tree<S, A>
where
    S::Value: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TreeSeed::new(A::default()).deserialize(deserializer)
    }
}
