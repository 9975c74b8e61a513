//! serde: round trips through JSON and through byte-string keys, sorted
//! input through the bulk loader and unsorted input through inserts, on
//! every backend.
#![cfg(all(
    feature = "serde",
    any(feature = "seize", feature = "pool", feature = "arena")
))]

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::strategies::config;
use common::vec_key;
use masstree::TreeSeed;
use proptest::prelude::*;
use serde::de::value::{Error as ValueError, MapDeserializer};
use serde::de::{DeserializeSeed, IntoDeserializer};

for_each_backend! {
    proptest! {
        #![proptest_config(config(64))]
        #[test]
        fn json_round_trip(model in proptest::collection::btree_map("[a-c\u{0}é]{0,12}", any::<u32>(), 0..60)) {
            let tree = new_itree::<u32>();
            {
                let g = tree.guard();
                for (k, v) in &model {
                    tree.insert(k, *v, &g);
                }
            }
            let json = serde_json::to_string(&tree).unwrap();
            // The same text a BTreeMap<String, u32> writes.
            prop_assert_eq!(&json, &serde_json::to_string(&model).unwrap());
            let back: ITree<u32> = TreeSeed::new(backend())
                .deserialize(&mut serde_json::Deserializer::from_str(&json))
                .unwrap();
            let g = back.guard();
            let got: Vec<_> = back.iter(&g).map(vec_key).collect();
            let want: Vec<_> = model.iter().map(|(k, v)| (k.clone().into_bytes(), *v)).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn byte_keys_in_any_order(entries in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..20), any::<u64>()), 0..60)) {
            // Byte-string keys (not UTF-8 in general), sorted or not, with
            // duplicates: the last value of a key wins, as in BTreeMap.
            let model: BTreeMap<Vec<u8>, u64> = entries.iter().cloned().collect();
            let input = entries
                .iter()
                .map(|(k, v)| (serde_bytes_like(k), *v));
            let de: MapDeserializer<'_, _, ValueError> = MapDeserializer::new(input);
            let tree: ITree<u64> = TreeSeed::new(backend()).deserialize(de).unwrap();
            let g = tree.guard();
            let got: Vec<_> = tree.iter(&g).map(vec_key).collect();
            prop_assert_eq!(got, model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn out_of_line_values_round_trip() {
        let tree = new_tree::<Vec<String>>();
        tree.insert("k", vec!["a".to_string(), "b".to_string()], &tree.guard());
        let json = serde_json::to_string(&tree).unwrap();
        assert_eq!(json, r#"{"k":["a","b"]}"#);
        let back: Tree<Vec<String>> = TreeSeed::new(backend())
            .deserialize(&mut serde_json::Deserializer::from_str(&json))
            .unwrap();
        assert_eq!(back.get("k", &back.guard()).map(Vec::len), Some(2));
    }

    #[test]
    fn non_utf8_keys_are_an_error_in_json_not_a_panic() {
        let tree = new_itree::<u8>();
        tree.insert(&[0xFFu8][..], 1, &tree.guard());
        assert!(serde_json::to_string(&tree).is_err());
    }
}

/// A key the serde value deserializer hands out as bytes.
fn serde_bytes_like(k: &[u8]) -> serde::de::value::BytesDeserializer<'_, ValueError> {
    k.into_deserializer()
}

#[cfg(feature = "seize")]
#[test]
fn default_backend_deserializes_without_a_seed() {
    let tree: masstree::InlineMassTree<i8> = serde_json::from_str(r#"{"b": -2, "a": 1}"#).unwrap();
    let g = tree.guard();
    assert_eq!(
        tree.iter(&g).map(vec_key).collect::<Vec<_>>(),
        [(b"a".to_vec(), 1), (b"b".to_vec(), -2)]
    );
}

#[cfg(feature = "seize")]
#[test]
fn a_value_of_the_wrong_type_is_an_error() {
    let r: Result<masstree::InlineMassTree<u8>, _> = serde_json::from_str(r#"{"a": "x"}"#);
    assert!(r.is_err());
}
