//! Public API surface: auto traits, guard misuse, Debug, len/is_empty, key
//! types, edge-case keys, inline value types.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]
// Guards are dropped explicitly to end read sections; some backends' guards
// have no destructor.
#![allow(clippy::drop_non_drop)]

#[macro_use]
mod common;

use std::sync::Arc;

#[allow(unused_imports)]
use common::TestAlloc;

fn assert_send_sync<T: Send + Sync>() {}

/// The default aliases (seize backend, global allocator).
#[cfg(feature = "seize")]
mod seize_defaults {
    use super::*;
    use masstree::alloc_backends::seize::SeizeBackend;
    use masstree::{InlineMassTree, MassTree};

    #[test]
    fn auto_traits_default_aliases() {
        assert_send_sync::<MassTree<String>>();
        assert_send_sync::<MassTree<Vec<u8>>>();
        assert_send_sync::<MassTree<Arc<str>>>();
        assert_send_sync::<InlineMassTree<u64>>();
        assert_send_sync::<InlineMassTree<usize>>();
        assert_send_sync::<InlineMassTree<i64>>();
        assert_send_sync::<InlineMassTree<u32>>();
        assert_send_sync::<SeizeBackend>();
    }

    /// `FromIterator`, `Extend`, `PartialEq`, `Clone` and `Debug` of the map.
    #[test]
    fn std_traits() {
        let pairs: Vec<(Vec<u8>, u64)> = (0..common::scaled(3000) as u64)
            .map(|i| (format!("k/{:x}/{}", i * 7919, i).into_bytes(), i))
            .collect();
        let a: InlineMassTree<u64> = pairs.iter().cloned().collect();
        let mut b = InlineMassTree::<u64>::default();
        b.extend(pairs.iter().rev().cloned());
        assert_eq!(a.len(), pairs.len());
        assert!(a == b);
        let c = a.clone();
        assert!(c == a);
        {
            let g = b.guard();
            b.insert(&pairs[0].0, 999_999, &g);
        }
        assert!(a != b, "a changed value differs");
        {
            let g = b.guard();
            b.insert(&pairs[0].0, pairs[0].1, &g);
            b.insert(b"extra", 1, &g);
        }
        assert!(a != b, "an extra key differs");
        let s: MassTree<String> = [("x", String::from("1"))].into_iter().collect();
        assert_eq!(format!("{s:?}"), r#"{b"x": "1"}"#);
        let s2 = s.clone();
        assert!(s == s2);
    }

    #[test]
    fn default_constructors() {
        let t: MassTree<String> = MassTree::new();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        let t: InlineMassTree<u64> = InlineMassTree::new();
        assert!(t.is_empty());
        let t: InlineMassTree<u64> = InlineMassTree::default();
        assert!(t.is_empty());
        let t: InlineMassTree<u64, SeizeBackend<TestAlloc>> =
            InlineMassTree::new_in(SeizeBackend::new_in(TestAlloc::new()));
        let g = t.guard();
        assert_eq!(t.insert(b"k", 1, &g), None);
        assert_eq!(t.get(b"k", &g), Some(1));
    }
}

for_each_backend! {

    #[test]
    fn auto_traits() {
        assert_send_sync::<Tree<String>>();
        assert_send_sync::<Tree<Vec<u8>>>();
        assert_send_sync::<Tree<Arc<str>>>();
        assert_send_sync::<ITree<u64>>();
        assert_send_sync::<ITree<usize>>();
        assert_send_sync::<ITree<i64>>();
        assert_send_sync::<ITree<u32>>();
        assert_send_sync::<TreeIn<String, TestAlloc>>();
        assert_send_sync::<ITreeIn<u64, TestAlloc>>();
        assert_send_sync::<Backend>();
        assert_send_sync::<BackendIn<TestAlloc>>();
    }

    /// The tree is `Send + Sync` in practice: share it through an `Arc` with
    /// `'static` threads, and move it to another thread to drop it.
    #[test]
    fn share_via_arc_and_move() {
        const PER_THREAD: u32 = if cfg!(miri) { 50 } else { 1000 };
        let t: Arc<Tree<String>> = Arc::new(new_tree());
        let hs: Vec<_> = (0..4u32)
            .map(|i| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    let g = t.guard();
                    for j in 0..PER_THREAD {
                        let k = format!("{i}/{j}");
                        assert!(t.insert(&k, k.clone(), &g).is_none());
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(t.len(), 4 * PER_THREAD as usize);
        {
            let g = t.guard();
            let last = format!("3/{}", PER_THREAD - 1);
            assert_eq!(t.get(&last, &g), Some(&last));
        }
        let t = Arc::try_unwrap(t).expect("sole owner");
        std::thread::spawn(move || {
            let g = t.guard();
            assert_eq!(t.get("0/0", &g).map(String::as_str), Some("0/0"));
            drop(g);
            drop(t);
        })
        .join()
        .unwrap();
    }
    #[test]
    #[should_panic(expected = "guard")]
    fn foreign_guard_get_panics() {
        let a = new_itree::<u64>();
        let b = new_itree::<u64>();
        {
            let g = a.guard();
            a.insert(b"k", 1, &g);
        }
        let gb = b.guard();
        let _ = a.get(b"k", &gb);
    }

    #[test]
    #[should_panic(expected = "guard")]
    fn foreign_guard_insert_panics() {
        let a = new_tree::<String>();
        let b = new_tree::<String>();
        let gb = b.guard();
        let _ = a.insert(b"k", "v".to_string(), &gb);
    }

    /// Guard validation must not depend on the tree having any content.
    #[test]
    #[should_panic(expected = "guard")]
    fn foreign_guard_on_empty_tree_panics() {
        let a = new_itree::<u64>();
        let b = new_itree::<u64>();
        let gb = b.guard();
        // even a lookup in an empty tree must validate the guard
        let _ = a.get(b"", &gb);
    }

    #[test]
    fn empty_tree() {
        let t = new_itree::<u64>();
        assert_eq!(t.len(), 0);
        assert!(t.is_empty());
        let g = t.guard();
        assert_eq!(t.get(b"", &g), None);
        assert_eq!(t.get(b"a", &g), None);
        assert_eq!(t.get(&[0u8; 8], &g), None);
        assert_eq!(t.get(&[0xFFu8; 300], &g), None);
        let s = new_tree::<String>();
        let g = s.guard();
        assert!(s.get(b"", &g).is_none());
        assert!(s.get("anything", &g).is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn len_and_is_empty() {
        let t = new_itree::<u64>();
        let g = t.guard();
        assert_eq!(t.insert(b"a", 1, &g), None);
        assert_eq!((t.len(), t.is_empty()), (1, false));
        assert_eq!(t.insert(b"a", 2, &g), Some(1));
        assert_eq!(t.len(), 1, "update must not change len");
        assert_eq!(t.insert(b"a\0", 3, &g), None);
        assert_eq!(t.insert(b"", 4, &g), None);
        assert_eq!(t.insert(b"abcdefgh", 5, &g), None);
        assert_eq!(t.insert(b"abcdefghX", 6, &g), None);
        assert_eq!(t.insert(b"abcdefghY", 7, &g), None);
        assert_eq!(t.len(), 6);
        assert!(!t.is_empty());
    }

    #[test]
    fn empty_key() {
        let t = new_tree::<String>();
        let g = t.guard();
        assert!(t.insert(b"", "empty".to_string(), &g).is_none());
        assert_eq!(t.get(b"", &g).map(String::as_str), Some("empty"));
        assert_eq!(t.get("", &g).map(String::as_str), Some("empty"));
        assert_eq!(t.get(&Vec::<u8>::new(), &g).map(String::as_str), Some("empty"));
        // keys made of zero bytes are distinct from the empty key
        assert!(t.get(b"\0", &g).is_none());
        assert!(t.get(&[0u8; 8], &g).is_none());
        assert!(t.insert(b"\0", "zero".to_string(), &g).is_none());
        assert!(t.insert(&[0u8; 8], "eight zeros".to_string(), &g).is_none());
        assert!(t.insert(&[0u8; 9], "nine zeros".to_string(), &g).is_none());
        assert_eq!(t.get(b"", &g).map(String::as_str), Some("empty"));
        assert_eq!(t.get(b"\0", &g).map(String::as_str), Some("zero"));
        assert_eq!(t.get(&[0u8; 8], &g).map(String::as_str), Some("eight zeros"));
        assert_eq!(t.get(&[0u8; 9], &g).map(String::as_str), Some("nine zeros"));
        assert!(t.get(&[0u8; 7], &g).is_none());
        assert!(t.get(&[0u8; 16], &g).is_none());
        let old = t.insert(b"", "still empty".to_string(), &g);
        assert_eq!(old.map(String::as_str), Some("empty"));
        assert_eq!(t.len(), 4);
    }

    /// All the documented key argument types work and agree.
    #[test]
    fn key_types() {
        let t = new_itree::<u64>();
        let g = t.guard();
        let v: Vec<u8> = b"key".to_vec();
        let s: String = "key".to_string();
        assert_eq!(t.insert(b"key", 1, &g), None);
        assert_eq!(t.get(b"key", &g), Some(1));
        assert_eq!(t.get("key", &g), Some(1));
        assert_eq!(t.get(&v[..], &g), Some(1));
        assert_eq!(t.get(&v, &g), Some(1));
        assert_eq!(t.get(&s, &g), Some(1));
        assert_eq!(t.get(s.as_str(), &g), Some(1));
        assert_eq!(t.insert(&v, 2, &g), Some(1));
        assert_eq!(t.insert("key", 3, &g), Some(2));
        assert_eq!(t.insert(&s, 4, &g), Some(3));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn inline_value_types() {
        let t = new_itree::<i64>();
        let g = t.guard();
        assert_eq!(t.insert(b"neg", -1, &g), None);
        assert_eq!(t.insert(b"min", i64::MIN, &g), None);
        assert_eq!(t.insert(b"zero", 0, &g), None);
        assert_eq!(t.get(b"neg", &g), Some(-1));
        assert_eq!(t.get(b"min", &g), Some(i64::MIN));
        assert_eq!(t.get(b"zero", &g), Some(0));
        assert_eq!(t.insert(b"neg", i64::MAX, &g), Some(-1));

        let t = new_itree::<u32>();
        let g = t.guard();
        assert_eq!(t.insert(b"a", u32::MAX, &g), None);
        assert_eq!(t.insert(b"b", 0, &g), None);
        assert_eq!(t.get(b"a", &g), Some(u32::MAX));
        assert_eq!(t.get(b"b", &g), Some(0));

        let t = new_itree::<usize>();
        let g = t.guard();
        assert_eq!(t.insert(b"a", usize::MAX, &g), None);
        assert_eq!(t.insert(b"a", 0, &g), Some(usize::MAX));
        assert_eq!(t.get(b"a", &g), Some(0));

        let t = new_itree::<u64>();
        let g = t.guard();
        for v in [0, 1, u64::MAX, u64::MAX - 1, 1 << 63] {
            let k = v.to_be_bytes();
            assert_eq!(t.insert(&k, v, &g), None);
            assert_eq!(t.get(&k, &g), Some(v));
        }
    }

    /// `insert` on an existing key returns the previous value, which stays
    /// readable while the guard lives, even after further updates.
    #[test]
    fn replaced_values_readable_under_guard() {
        let t = new_tree::<String>();
        let g = t.guard();
        assert!(t.insert(b"k", "v0".to_string(), &g).is_none());
        let mut olds = Vec::new();
        for i in 1..100 {
            let old = t.insert(b"k", format!("v{i}"), &g).expect("present");
            olds.push(old);
        }
        for (i, old) in olds.iter().enumerate() {
            assert_eq!(old.as_str(), format!("v{i}"));
        }
        assert_eq!(t.get(b"k", &g).map(String::as_str), Some("v99"));
        assert_eq!(t.len(), 1);
    }

    /// A reference from `get` stays valid (unchanged) while its guard lives,
    /// even if the key is overwritten through another guard.
    #[test]
    fn get_reference_survives_overwrite_through_other_guard() {
        let t = new_tree::<Vec<u8>>();
        {
            let g = t.guard();
            t.insert(b"k", vec![1; 1000], &g);
        }
        let g1 = t.guard();
        let r = t.get(b"k", &g1).expect("present");
        for i in 0..200u32 {
            let g2 = t.guard();
            t.insert(b"k", vec![(i % 200) as u8 + 2; 1000], &g2);
        }
        assert!(r.iter().all(|&b| b == 1), "value freed/overwritten while guard g1 is held");
        drop(g1);
        let g = t.guard();
        assert_eq!(t.get(b"k", &g).map(|v| v[0]), Some(201));
    }

    /// Several guards of the same tree on one thread, nested and sequential.
    #[test]
    fn nested_guards() {
        let t = new_itree::<u64>();
        let g1 = t.guard();
        let g2 = t.guard();
        assert_eq!(t.insert(b"x", 1, &g1), None);
        assert_eq!(t.get(b"x", &g2), Some(1));
        drop(g1);
        assert_eq!(t.insert(b"x", 2, &g2), Some(1));
        drop(g2);
        let g3 = t.guard();
        assert_eq!(t.get(b"x", &g3), Some(2));
    }

    #[test]
    fn debug_output() {
        let t = new_itree::<u64>();
        let empty = format!("{t:?}");
        assert!(!empty.is_empty());
        {
            let g = t.guard();
            for i in 0..if cfg!(miri) { 200 } else { 10_000u64 } {
                t.insert(&common::shaped_key(i), i, &g);
            }
        }
        let full = format!("{t:?}");
        assert!(!full.is_empty());
        // the alternate form must work too
        let _ = format!("{t:#?}");
        let s = new_tree::<String>();
        {
            let g = s.guard();
            s.insert(b"a", "b".to_string(), &g);
        }
        assert!(!format!("{s:?}").is_empty());
    }

    /// `Debug` prints the map in key order, keys as byte strings.
    #[test]
    fn debug_format() {
        let t = new_itree::<u64>();
        assert_eq!(format!("{t:?}"), "{}");
        let g = t.guard();
        t.insert(b"a\0\xff", 3, &g);
        t.insert(b"", 1, &g);
        assert_eq!(format!("{t:?}"), r#"{b"": 1, b"a\x00\xff": 3}"#);
        let s = new_tree::<String>();
        let g = s.guard();
        s.insert(b"x", "1".to_string(), &g);
        assert_eq!(format!("{s:?}"), r#"{b"x": "1"}"#);
    }

    /// A panicking `update` or `get_or_insert_with` closure leaves the leaf
    /// unlocked and the tree unchanged, also when the new key shares a slice
    /// with suffixed keys (a layer may be made before the closure runs).
    #[test]
    #[cfg_attr(miri, ignore = "unwinding is slow under Miri")]
    fn panicking_closure_leaves_tree_consistent() {
        let t = new_itree::<u64>();
        let g = t.guard();
        for i in 0..100u64 {
            t.insert(&format!("key-{i:03}-long-enough"), i, &g);
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.update(b"key-050-long-enough", |_| panic!("closure fails"), &g);
        }));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            t.get_or_insert_with(b"key-050-long-enough-and-more", || panic!("no value"), &g);
        }));
        assert!(r.is_err());
        assert_eq!(t.insert(b"key-050-long-enough", 7, &g), Some(50));
        assert_eq!(t.len(), 100);
        assert_eq!(t.iter(&g).count(), 100);
        assert_eq!(t.get(b"key-050-long-enough-and-more", &g), None);
    }

    /// Keys compare as byte strings: a prefix, the same key with trailing zeros
    /// and keys with high bytes are all distinct.
    #[test]
    fn distinct_edge_keys() {
        let t = new_itree::<u64>();
        let g = t.guard();
        let keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\0".to_vec(),
            b"\0\0".to_vec(),
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0\0\0\0\0\0\0".to_vec(),
            b"a\0\0\0\0\0\0\0\0".to_vec(),
            b"abcdefg".to_vec(),
            b"abcdefgh".to_vec(),
            b"abcdefgh\0".to_vec(),
            b"abcdefghi".to_vec(),
            vec![0xFF; 7],
            vec![0xFF; 8],
            vec![0xFF; 9],
            vec![0xFF; 16],
            vec![0xFF; 17],
            vec![0x80; 8],
            vec![0x7F; 8],
        ];
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.insert(k, i as u64, &g), None, "key #{i}");
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.get(k, &g), Some(i as u64), "key #{i}");
        }
        assert_eq!(t.len(), keys.len());
    }

    #[test]
    #[should_panic(expected = "guard")]
    fn foreign_guard_remove_panics() {
        let a = new_itree::<u64>();
        let b = new_itree::<u64>();
        {
            let g = a.guard();
            a.insert(b"k", 1, &g);
        }
        let gb = b.guard();
        let _ = a.remove(b"k", &gb);
    }

    #[test]
    fn remove_basics() {
        let t = new_tree::<String>();
        let g = t.guard();
        assert!(t.remove(b"", &g).is_none(), "remove on an empty tree");
        assert!(t.remove(b"absent", &g).is_none());
        t.insert(b"", "empty".to_string(), &g);
        t.insert(b"a", "a".to_string(), &g);
        t.insert(b"a\0", "a0".to_string(), &g);
        t.insert(b"abcdefgh", "8".to_string(), &g);
        t.insert(b"abcdefgh-long-suffix", "suffix".to_string(), &g);
        assert_eq!(t.len(), 5);
        assert_eq!(t.remove(b"a", &g).map(String::as_str), Some("a"));
        assert!(t.remove(b"a", &g).is_none(), "removed twice");
        assert_eq!(t.get(b"a\0", &g).map(String::as_str), Some("a0"), "sibling with trailing zero");
        assert_eq!(t.remove(b"abcdefgh", &g).map(String::as_str), Some("8"));
        assert_eq!(t.get(b"abcdefgh-long-suffix", &g).map(String::as_str), Some("suffix"));
        assert_eq!(t.remove("", &g).map(String::as_str), Some("empty"));
        assert_eq!(t.len(), 2);
        assert!(!t.is_empty());
        let v = t.remove(&b"a\0".to_vec(), &g).expect("present");
        let w = t.remove("abcdefgh-long-suffix", &g).expect("present");
        assert!(t.is_empty());
        // removed values stay readable while the guard lives
        assert_eq!((v.as_str(), w.as_str()), ("a0", "suffix"));
        assert!(t.insert(b"a", "again".to_string(), &g).is_none());
        assert_eq!(t.get(b"a", &g).map(String::as_str), Some("again"));
    }

    #[test]
    fn clear_and_reclaim() {
        const N: u64 = if cfg!(miri) { 200 } else { 5000 };
        let mut t = new_itree::<u64>();
        {
            let g = t.guard();
            for i in 0..N {
                t.insert(&common::shaped_key(i), i, &g);
            }
            for i in 0..N / 2 {
                assert_eq!(t.remove(&common::shaped_key(i), &g), Some(i));
            }
        }
        t.reclaim();
        assert_eq!(t.len(), (N / 2) as usize);
        {
            let g = t.guard();
            assert_eq!(t.get(&common::shaped_key(N - 1), &g), Some(N - 1));
            assert_eq!(t.get(&common::shaped_key(0), &g), None);
        }
        t.clear();
        assert!(t.is_empty());
        let g = t.guard();
        assert_eq!(t.get(&common::shaped_key(N - 1), &g), None);
        assert_eq!(t.insert(&common::shaped_key(N - 1), 1, &g), None);
        assert_eq!(t.len(), 1);
    }

}
