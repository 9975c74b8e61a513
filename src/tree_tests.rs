//! White-box tests of the whole tree on the test backend (small enough for
//! Miri): they count the backend's live allocations, inject allocation
//! failures through it, walk the raw tree's nodes or call the scan's
//! internals. Tests of the public API alone live in `tests/` (Miri runs
//! chosen ones on the pool and arena backends, see `ci/test.sh`).

use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

use crate::node::{NodeBase, layer_root, reach_leaf, version};
use crate::test_backend::TestBackend;
use crate::{Inline, OutOfLine, Tree};

type Words = Tree<Inline<usize>, TestBackend>;

fn scale(n: usize) -> usize {
    if cfg!(miri) { (n / 200).max(16) } else { n }
}

#[path = "../tests/common/rng.rs"]
mod rng;
use rng::Rng;

fn check_against(tree: &Words, model: &BTreeMap<Vec<u8>, usize>) {
    let g = tree.guard();
    assert_eq!(tree.len(), model.len());
    for (k, v) in model {
        assert_eq!(tree.get(k, &g), Some(*v), "key {k:?}");
    }
}

#[test]
fn out_of_line_values_are_freed_once() {
    let backend = TestBackend::new();
    let t: Tree<OutOfLine<String>, TestBackend> = Tree::new_in(backend);
    {
        let g = t.guard();
        for i in 0..scale(5000) {
            let k = format!("key-{i:08}-with-a-long-suffix");
            t.insert(&k, format!("v{i}"), &g);
        }
        for i in 0..scale(5000) / 2 {
            let k = format!("key-{i:08}-with-a-long-suffix");
            let old = t.insert(&k, format!("w{i}"), &g);
            assert_eq!(old.map(String::as_str), Some(format!("v{i}").as_str()));
        }
        assert_eq!(
            t.get("key-00000000-with-a-long-suffix", &g)
                .map(String::as_str),
            Some("w0")
        );
    }
    let live = t.backend().live.clone();
    drop(t);
    assert_eq!(live.load(core::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn nothing_leaks_at_drop() {
    let t = Words::new_in(TestBackend::new());
    {
        let g = t.guard();
        let mut rng = Rng::new(42);
        for i in 0..scale(10_000) {
            let r = rng.next_u64();
            let k = format!("{:x}/{:x}", r % 64, r);
            t.insert(&k, i, &g);
        }
    }
    let mut t = t;
    // SAFETY: exclusive access.
    unsafe {
        t.raw
            .free_all(<Inline<usize> as crate::ValueStorage>::free::<TestBackend>)
    };
    assert_eq!(
        t.backend().live.load(core::sync::atomic::Ordering::Relaxed),
        0
    );
}

fn live(t: &Words) -> isize {
    t.backend().live.load(core::sync::atomic::Ordering::Relaxed)
}

#[test]
fn removing_everything_returns_the_memory() {
    let n = scale(30_000);
    let mut t = Words::new_in(TestBackend::new());
    let mut rng = Rng::new(99);
    let keys: Vec<Vec<u8>> = (0..n)
        .map(|i| match i % 3 {
            0 => rng.next_u64().to_be_bytes().to_vec(),
            1 => format!("user/{:016x}/profile", rng.next_u64()).into_bytes(),
            _ => format!("same-prefix-{}", i).into_bytes(),
        })
        .collect();
    {
        let g = t.guard();
        for (i, k) in keys.iter().enumerate() {
            t.insert(k, i, &g);
        }
    }
    let loaded = live(&t);
    {
        let g = t.guard();
        for (i, k) in keys.iter().enumerate() {
            assert!(t.remove(k, &g).is_some(), "{k:?}");
            if i == keys.len() / 2 {
                // Half gone: internodes have lost children (census checks
                // each one's separators).
                census(&t);
            }
        }
    }
    t.reclaim();
    // What stays: the leftmost leaf of layer 0 and the internodes above it
    // (one key-less internode per level); no layer, suffix or value.
    let (leaves, internodes, layers) = census(&t);
    assert_eq!((leaves, layers), (1, 0));
    assert!(internodes <= 4, "{internodes} internodes left");
    assert_eq!(
        live(&t),
        (leaves + internodes) as isize,
        "of {loaded} allocations"
    );
    // Still usable.
    let g = t.guard();
    t.insert(b"again", 1, &g);
    assert_eq!(t.get(b"again", &g), Some(1));
}

#[test]
fn clear_frees_everything() {
    let mut t: Tree<OutOfLine<String>, TestBackend> = Tree::new_in(TestBackend::new());
    {
        let g = t.guard();
        for i in 0..scale(2000) {
            t.insert(&format!("{i:x}-{i}"), format!("{i}"), &g);
        }
    }
    t.clear();
    assert!(t.is_empty());
    assert_eq!(
        t.backend().live.load(core::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// (leaves, internodes, layers) reachable from the root.
fn census(t: &Words) -> (usize, usize, usize) {
    use crate::leaf::{Leaf, SlotKind, slot_kind};

    unsafe fn walk(n: *mut NodeBase, acc: &mut (usize, usize, usize)) {
        unsafe {
            if version(n).load().is_leaf() {
                acc.0 += 1;
                let l = &*n.cast::<Leaf>();
                for s in l.permutation.load().iter() {
                    if slot_kind(l.keylenx(s)) == SlotKind::Layer {
                        acc.2 += 1;
                        walk(layer_root(l.value(s).cast()), acc);
                    }
                }
            } else {
                acc.1 += 1;
                let i = &*n.cast::<crate::backend::Internode>();
                // Separators sorted; `PAST_END` past them (`child_index`
                // relies on it).
                let keys: Vec<u64> = (0..crate::internode::IWIDTH).map(|k| i.ikey(k)).collect();
                assert!(keys[..i.nkeys()].is_sorted(), "separators {keys:x?}");
                assert!(
                    keys[i.nkeys()..]
                        .iter()
                        .all(|&k| k == crate::internode::PAST_END),
                    "keys past nkeys = {}: {keys:x?}",
                    i.nkeys()
                );
                for c in 0..=i.nkeys() {
                    walk(i.child(c), acc);
                }
            }
        }
    }
    let mut acc = (0, 0, 0);
    let r = t.raw.top_root();
    if !r.is_null() {
        unsafe { walk(layer_root(r), &mut acc) };
    }
    acc
}

fn scan_keys(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let prefixes: [&[u8]; 4] = [
        b"",
        b"abcdefgh",
        b"abcdefghijklmnop",
        b"\xff\xff\xff\xff\xff\xff\xff\xff",
    ];
    (0..n)
        .map(|_| {
            let r = rng.next_u64();
            let mut k = prefixes[(r % 4) as usize].to_vec();
            for j in 0..(r >> 3) % 11 {
                k.push(b"a\0\xffq"[((r >> (10 + 2 * j)) % 4) as usize]);
            }
            k
        })
        .collect()
}

/// The backward step trusts a `prev` link only if it is consistent: a stale
/// `prev` (here: pointing two leaves back, as a reader could see it while the
/// left neighbour splits) is refused, a good one accepted.
#[test]
fn left_neighbour_checks_the_link() {
    use crate::scan::left_neighbour;
    use crate::sync::Ordering::Relaxed;
    let t = Words::new_in(TestBackend::new());
    let g = t.guard();
    for i in 0..100u64 {
        t.insert(&i.to_be_bytes(), i as usize, &g);
    }
    // SAFETY: we hold a guard; the tree is not changed meanwhile.
    unsafe {
        let (c, cv) = reach_leaf(t.raw().top_root(), 99);
        // Relaxed (these loads): single-threaded, nothing to order with.
        let b = c.prev.load(Relaxed);
        let a = (*b).prev.load(Relaxed);
        assert!(!a.is_null(), "at least three leaves");
        let got = left_neighbour(&c, cv).map(|(l, _)| l.as_ptr());
        assert_eq!(got, Some(b), "a consistent link is taken");
        // Relaxed (both stores): single-threaded; the check reads it back
        // on this thread.
        c.prev.store(a, Relaxed);
        let got = left_neighbour(&c, cv).map(|(l, _)| l.as_ptr());
        c.prev.store(b, Relaxed);
        assert_eq!(got, None, "a stale link is refused");
    }
    // Backward iteration still sees everything.
    let keys: Vec<Vec<u8>> = t.iter(&g).rev().map(|(k, _)| k.into_vec()).collect();
    assert_eq!(keys.len(), 100);
}

/// For every k: the k-th allocation of a workload fails. The failing insert
/// hands its value back, the tree still equals the model, later operations
/// work, and nothing leaks.
#[test]
fn failed_allocations_change_nothing() {
    use core::sync::atomic::Ordering::Relaxed;
    let mut rng = Rng::new(31);
    let ops: Vec<(Vec<u8>, String)> = (0..scale(600))
        .map(|i| {
            let r = rng.next_u64();
            let k = match r % 3 {
                0 => (r >> 8).to_be_bytes()[..(r as usize >> 40) % 9].to_vec(),
                1 => format!("shared-prefix/{}", (r >> 8) % 97).into_bytes(),
                _ => format!("{:x}", r >> 20).into_bytes(),
            };
            (k, format!("v{i}"))
        })
        .collect();
    let mut k = 0;
    loop {
        let t: Tree<OutOfLine<String>, TestBackend> = Tree::new_in(TestBackend::new());
        t.backend().fail_in.store(k, Relaxed);
        let mut model = BTreeMap::new();
        let mut failed = false;
        {
            let g = t.guard();
            for (key, v) in &ops {
                match t.fallible().insert(key, v.clone(), &g) {
                    Ok(prev) => assert_eq!(
                        prev,
                        model.insert(key.clone(), v.clone()).as_ref(),
                        "{key:?}"
                    ),
                    Err(e) => {
                        assert!(!failed, "only one allocation fails");
                        failed = true;
                        assert_eq!(e.into_value(), *v, "the value comes back");
                        assert_eq!(t.len(), model.len());
                        assert_eq!(
                            t.iter(&g)
                                .map(|(k, v)| (k.into_vec(), v.clone()))
                                .collect::<Vec<_>>(),
                            model
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect::<Vec<_>>(),
                            "tree changed by a failed insert (k = {k})"
                        );
                    }
                }
            }
            for (key, v) in &model {
                assert_eq!(t.get(key, &g), Some(v));
            }
        }
        let mut t = t;
        t.clear();
        assert_eq!(
            t.backend().live.load(Relaxed),
            0,
            "leak after a failure at k = {k}"
        );
        if !failed {
            break;
        }
        k += if cfg!(miri) { 7 } else { 1 };
    }
    assert!(
        k > if cfg!(miri) { 0 } else { 100 },
        "the workload allocates ({k} allocations)"
    );
}

#[test]
fn bulk_load_matches_model() {
    use crate::{BulkLoadError, BulkLoader};
    let mut rng = Rng::new(404);
    for (n, fill) in [
        (0usize, 15usize),
        (1, 15),
        (15, 15),
        (16, 15),
        (scale(5000), 15),
        (scale(5000), 10),
        (scale(3000), 1),
    ] {
        let model: BTreeMap<Vec<u8>, usize> = scan_keys(&mut rng, n).into_iter().zip(0..).collect();
        let t: Words = BulkLoader::new(TestBackend::new())
            .leaf_fill(fill)
            .load(model.iter().map(|(k, v)| (k.clone(), *v)))
            .unwrap();
        check_against(&t, &model);
        let g = t.guard();
        let all: Vec<_> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
        assert_eq!(
            t.iter(&g)
                .map(|(k, v)| (k.into_vec(), v))
                .collect::<Vec<_>>(),
            all,
            "n={n} fill={fill}"
        );
        assert_eq!(t.iter(&g).rev().count(), all.len());
        // Still a normal tree: inserts and removes work after the load.
        for (i, k) in scan_keys(&mut rng, n / 2).into_iter().enumerate() {
            t.insert(&k, i, &g);
        }
        for k in model.keys().step_by(2) {
            t.remove(k, &g);
        }
        if fill == 15 && n > 100 {
            // Packed full: about n / 15 leaves.
            let (leaves, _, _) = census(&t);
            assert!(leaves > 0);
        }
    }
    // Unsorted and duplicate input: an error naming the position, nothing leaked.
    let live = std::sync::Arc::new(core::sync::atomic::AtomicIsize::new(0));
    let r = Words::from_sorted_in(
        TestBackend::counting(&live),
        [
            (&b"a"[..], 1),
            (b"b\xff\xff\xff\xff\xff\xff\xff\xffq", 2),
            (b"b", 3),
        ],
    );
    assert_eq!(r.err(), Some(BulkLoadError::NotIncreasing { position: 2 }));
    assert_eq!(live.load(core::sync::atomic::Ordering::Relaxed), 0);
    let r = Words::from_sorted_in(TestBackend::new(), [(&b"b"[..], 1), (b"a", 2)]);
    assert_eq!(r.err(), Some(BulkLoadError::NotIncreasing { position: 1 }));
}

#[test]
fn bulk_load_packs_leaves_full() {
    let n = scale(15 * 400);
    let t: Words = Words::from_sorted_in(
        TestBackend::new(),
        (0..n).map(|i| ((i as u64).to_be_bytes(), i)),
    )
    .unwrap();
    let (leaves, internodes, layers) = census(&t);
    assert_eq!(leaves, n.div_ceil(15));
    assert_eq!(layers, 0);
    assert!(
        internodes <= leaves.div_ceil(14) + 3,
        "{internodes} internodes for {leaves} leaves"
    );
    assert_eq!(t.len(), n);
}

/// The bulk loader allocates only the nodes the tree keeps: a lone node gets
/// no parent made (and freed) for it, so a layer of one leaf costs one leaf,
/// as it does when the keys are inserted one by one.
#[test]
fn bulk_load_allocates_only_what_it_keeps() {
    use core::sync::atomic::Ordering::Relaxed;
    const BUDGET: usize = 1 << 40;
    // Pairs of 17-byte keys sharing 16 bytes: two small layers per pair.
    let keys: Vec<Vec<u8>> = (0..scale(2000))
        .flat_map(|i| [format!("{i:08}/{i:07}a"), format!("{i:08}/{i:07}b")])
        .map(String::into_bytes)
        .collect();
    let counted = |t: &Words| -> usize {
        let (leaves, internodes, _) = census(t);
        leaves + internodes
    };
    let b = TestBackend::new();
    // Relaxed (store and load): a counter used on this thread only.
    b.fail_in.store(BUDGET, Relaxed);
    let bulk: Words = Tree::from_sorted_in(b, keys.iter().zip(0..)).unwrap();
    let allocated = BUDGET - bulk.raw().alloc.fail_in.load(Relaxed);
    assert_eq!(allocated, counted(&bulk), "nodes allocated vs kept");
    let inserted: Words = Tree::new_in(TestBackend::new());
    let g = inserted.guard();
    for (i, k) in keys.iter().enumerate() {
        inserted.insert(k, i, &g);
    }
    assert!(
        counted(&bulk) <= counted(&inserted),
        "bulk {} nodes, inserted {}",
        counted(&bulk),
        counted(&inserted)
    );
    assert_eq!(bulk, inserted);
}

/// Failures at every allocation of a bulk load: an error, and nothing leaks.
#[test]
fn bulk_load_failures_leak_nothing() {
    use core::sync::atomic::Ordering::Relaxed;
    let mut rng = Rng::new(8);
    let model: BTreeMap<Vec<u8>, String> = scan_keys(&mut rng, scale(800))
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, format!("v{i}")))
        .collect();
    let mut failures = 0;
    for k in (0..).step_by(if cfg!(miri) { 41 } else { 3 }) {
        let live = std::sync::Arc::new(core::sync::atomic::AtomicIsize::new(0));
        let b = TestBackend::counting(&live);
        b.fail_in.store(k, Relaxed);
        let r: Result<Tree<OutOfLine<String>, TestBackend>, _> =
            Tree::from_sorted_in(b, model.iter().map(|(k, v)| (k.clone(), v.clone())));
        match r {
            Ok(t) => {
                let g = t.guard();
                assert_eq!(t.len(), model.len());
                for (key, v) in &model {
                    assert_eq!(t.get(key, &g), Some(v));
                }
                break;
            }
            Err(e) => {
                assert!(
                    matches!(e, crate::BulkLoadError::OutOfMemory { .. }),
                    "{e:?}"
                );
                assert_eq!(
                    live.load(Relaxed),
                    0,
                    "leak after a failure at allocation {k}"
                );
                failures += 1;
            }
        }
    }
    assert!(
        failures >= if cfg!(miri) { 1 } else { 10 },
        "{failures} failures injected"
    );
}
