//! Keys that share very long prefixes: chains of a hundred thousand trie
//! layers. Every writing path builds a chain in one pass, in memory linear in
//! the key length; reads, scans, removes (with the emptied layers collected),
//! teardown and bulk load work at any depth without recursing per layer.
//!
//! Each test runs on a thread with a 256 KiB stack, on every backend, checks
//! the tree against a `BTreeMap`, and bounds the allocator's peak by a
//! multiple of the key length (the code before this test's fix kept about
//! 270 MB live to insert two keys sharing 64 KiB, and overflowed the stack
//! to drop them).
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use common::{Rng, TestAlloc};
use masstree::{Change, KeyBuf, Seek};

/// The shared prefix: 1 MiB, 131,072 slices.
const L: usize = 1 << 20;
/// The stack every test runs on.
const STACK: usize = 256 << 10;
/// Bytes the allocator may hold at the peak of building one chain, per byte
/// of shared prefix: a 320-byte leaf per 8-byte slice is 40, plus the key's
/// suffix record and the backends' slab rounding.
const PEAK_PER_BYTE: usize = 64;

/// Runs `f` on a thread with a [`STACK`]-byte stack.
fn on_small_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(STACK)
            .spawn_scoped(s, f)
            .expect("spawn")
            .join()
            .expect("the test thread failed");
    });
}

/// The prefix the keys share: random bytes, so no two slices repeat.
fn base() -> Vec<u8> {
    Rng::new(15).bytes(L)
}

/// Keys around the prefix, ending at every kind of place: exactly at it, one
/// byte past it, a slice and more past it, inside its last slice, in the
/// middle of the chain, and one that leaves it at its last byte.
fn family(base: &[u8]) -> Vec<Vec<u8>> {
    let with = |tail: &[u8]| [base, tail].concat();
    let mut last_byte = base.to_vec();
    *last_byte.last_mut().unwrap() ^= 0x80;
    vec![
        base.to_vec(),
        with(b"x"),
        with(b"y0123456789"),
        base[..base.len() - 3].to_vec(),
        base[..base.len() / 2 + 5].to_vec(),
        last_byte,
        with(&[0]),
    ]
}

/// The tree's entries in both directions, through the cursor's batch visit,
/// against the model; and a seek to each key.
fn check_against<T>(tree: &T, model: &BTreeMap<Vec<u8>, u64>)
where
    T: Scan,
{
    let forward = tree.all(false);
    let expected: Vec<(Vec<u8>, u64)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert!(forward == expected, "forward scan differs from the model");
    let mut backward = tree.all(true);
    backward.reverse();
    assert!(backward == expected, "backward scan differs from the model");
    for (k, v) in model {
        assert_eq!(tree.get_at(k), Some(*v), "get of a {}-byte key", k.len());
        assert_eq!(
            tree.seek_ge(k),
            Some((k.clone(), *v)),
            "seek of a {}-byte key",
            k.len()
        );
    }
}

/// What [`check_against`] needs of a tree (one impl per backend module).
trait Scan {
    fn all(&self, backward: bool) -> Vec<(Vec<u8>, u64)>;
    fn get_at(&self, k: &[u8]) -> Option<u64>;
    fn seek_ge(&self, k: &[u8]) -> Option<(Vec<u8>, u64)>;
}

for_each_backend! {
    impl Scan for ITreeIn<u64, TestAlloc> {
        fn all(&self, backward: bool) -> Vec<(Vec<u8>, u64)> {
            let g = self.guard();
            let mut c = self.cursor(&g);
            let mut out = Vec::new();
            let visit = |k: &[u8], v: u64| {
                out.push((k.to_vec(), v));
                ControlFlow::<()>::Continue(())
            };
            let _ = if backward { c.for_each_prev(visit) } else { c.for_each_next(visit) };
            out
        }
        fn get_at(&self, k: &[u8]) -> Option<u64> {
            self.get(k, &self.guard())
        }
        fn seek_ge(&self, k: &[u8]) -> Option<(Vec<u8>, u64)> {
            let g = self.guard();
            let mut c = self.cursor(&g);
            c.seek(k, Seek::Ge).map(|(k, v)| (k.to_vec(), v))
        }
    }

    /// Every writing path adds a key that shares the 1 MiB prefix; the
    /// chain is built in memory linear in its length; everything reads,
    /// scans and removes right, and removing the keys collects the layers.
    #[test]
    fn one_mib_prefixes_through_every_writing_path() {
        on_small_stack(|| {
            let alloc = TestAlloc::new();
            let mut t = new_itree_in::<u64, _>(alloc.clone());
            let base = base();
            let keys = family(&base);
            let mut model = BTreeMap::new();
            let empty = alloc.live_bytes();
            let empty_allocs = alloc.live_allocs();
            {
                let g = t.guard();
                t.insert(&keys[0], 0, &g);
                model.insert(keys[0].clone(), 0);
                // The second key makes the chain of layers.
                let before = alloc.live_bytes();
                alloc.reset_peak();
                t.update(&keys[1], |_| Change::Set(1), &g);
                model.insert(keys[1].clone(), 1);
                let grew = (alloc.peak_bytes() - before) as usize;
                eprintln!("{BACKEND_NAME}: a chain for a {L}-byte shared prefix: {grew} bytes at the peak");
                assert!(
                    grew <= PEAK_PER_BYTE * L,
                    "{BACKEND_NAME}: building a chain for a {L}-byte prefix took {grew} bytes at the peak"
                );
                assert_eq!(t.get_or_insert_with(&keys[2], || 2, &g), 2);
                model.insert(keys[2].clone(), 2);
                assert!(t.fallible().insert(&keys[3], 3, &g).is_ok());
                model.insert(keys[3].clone(), 3);
                assert!(t.fallible().update(&keys[4], |_| Change::Set(4), &g).is_ok());
                model.insert(keys[4].clone(), 4);
                assert!(t.fallible().get_or_insert_with(&keys[5], || 5, &g).is_ok());
                model.insert(keys[5].clone(), 5);
                assert_eq!(t.insert(&keys[6], 6, &g), None);
                model.insert(keys[6].clone(), 6);
                assert_eq!(t.insert(&keys[0], 10, &g), Some(0));
                model.insert(keys[0].clone(), 10);
                assert!(
                    (alloc.peak_bytes() - empty) as usize <= PEAK_PER_BYTE * L * 2,
                    "{BACKEND_NAME}: {} bytes at the peak for keys sharing {L} bytes",
                    alloc.peak_bytes() - empty
                );
            }
            assert_eq!(t.len(), model.len());
            check_against(&t, &model);
            // The entries of the prefix's first half, and from the middle on.
            {
                let g = t.guard();
                let half = &base[..L / 2];
                let got: Vec<KeyBuf> = t.prefix(half, &g).map(|(k, _)| k).collect();
                let want: Vec<Vec<u8>> = model.keys().filter(|k| k.starts_with(half)).cloned().collect();
                assert!(got == want, "{BACKEND_NAME}: prefix scan differs from the model");
                let from: Vec<KeyBuf> = t.range(&keys[3][..].., &g).rev().map(|(k, _)| k).collect();
                let want: Vec<Vec<u8>> = model.range(keys[3].clone()..).rev().map(|(k, _)| k.clone()).collect();
                assert!(from == want, "{BACKEND_NAME}: range differs from the model");
            }
            // Remove in an order that empties the deepest layers first and
            // last, checking after each.
            for i in [1, 6, 0, 4, 2, 5, 3] {
                assert_eq!(t.remove(&keys[i], &t.guard()), model.remove(&keys[i]), "remove key {i}");
                assert_eq!(t.len(), model.len());
                if i == 0 || i == 2 {
                    check_against(&t, &model);
                }
            }
            assert!(t.is_empty());
            t.reclaim();
            if FREES_ON_RECLAIM {
                // (Counted in allocations: the huge-page slabs keep a slab or
                // two of 2 MiB for what comes next.)
                let left = alloc.live_allocs() - empty_allocs;
                assert!(
                    left <= 16,
                    "{BACKEND_NAME}: {left} allocations left after removing every key and \
                     reclaiming: the emptied layers were not collected"
                );
            }
        });
    }

    /// Dropping and clearing trees whose keys go 131,072 layers deep, and a
    /// bulk load of such keys, on the small stack.
    #[test]
    fn one_mib_prefixes_teardown_and_bulk_load() {
        on_small_stack(|| {
            let alloc = TestAlloc::new();
            let base = base();
            let keys = family(&base);
            let mut sorted: Vec<(Vec<u8>, u64)> =
                keys.iter().enumerate().map(|(i, k)| (k.clone(), i as u64)).collect();
            sorted.sort();
            let model: BTreeMap<Vec<u8>, u64> = sorted.iter().cloned().collect();

            let mut t = new_itree_in::<u64, _>(alloc.clone());
            {
                let g = t.guard();
                for (k, v) in &sorted {
                    t.insert(k, *v, &g);
                }
            }
            t.clear();
            assert!(t.is_empty());
            {
                let g = t.guard();
                for (k, v) in sorted.iter().rev() {
                    t.insert(k, *v, &g);
                }
            }
            check_against(&t, &model);
            drop(t);
            alloc.assert_empty();

            alloc.reset_peak();
            let t = ITreeIn::<u64, _>::from_sorted_in(backend_in(alloc.clone()), sorted.iter().map(|(k, v)| (k, *v)))
                .expect("bulk load");
            let peak = alloc.peak_bytes() as usize;
            eprintln!("{BACKEND_NAME}: bulk load of {} keys sharing {L} bytes: {peak} bytes at the peak", sorted.len());
            assert!(
                peak <= PEAK_PER_BYTE * L * 2,
                "{BACKEND_NAME}: bulk-loading keys sharing {L} bytes took {peak} bytes at the peak"
            );
            assert_eq!(t.len(), model.len());
            check_against(&t, &model);
            drop(t);
            alloc.assert_empty();
        });
    }

    /// An allocation that fails anywhere while a chain of layers is being
    /// built hands the value back and leaves the tree as it was, with
    /// nothing leaked (the chain is built privately and published last).
    #[test]
    fn failed_chain_changes_nothing() {
        on_small_stack(|| {
            let alloc = TestAlloc::new();
            let base = Rng::new(16).bytes(4096);
            let keys = family(&base);
            let t = new_itree_in::<u64, _>(alloc.clone());
            let mut model = BTreeMap::new();
            {
                let g = t.guard();
                t.insert(&keys[0], 0, &g);
                model.insert(keys[0].clone(), 0);
            }
            let mut errors = 0;
            for at in [0, 1, 2, 3, 100, 511, 512, 513] {
                {
                    let g = t.guard();
                    let failed_before = alloc.failed();
                    alloc.fail_at(at, usize::MAX);
                    let r = t.fallible().insert(&keys[1], 1, &g);
                    alloc.disarm();
                    if let Err(e) = r {
                        assert!(alloc.failed() > failed_before, "an error without a failed allocation");
                        errors += 1;
                        assert_eq!(e.into_value(), 1, "the value comes back");
                        assert_eq!(t.len(), 1);
                        assert_eq!(t.get(&keys[1], &g), None);
                    } else {
                        // (Fewer requests than `at`.)
                        model.insert(keys[1].clone(), 1);
                        assert_eq!(t.remove(&keys[1], &g), model.remove(&keys[1]));
                    }
                }
                check_against(&t, &model);
            }
            assert!(errors > 0, "{BACKEND_NAME}: no injected failure reached the insert");
            drop(t);
            alloc.assert_empty();
        });
    }
}
