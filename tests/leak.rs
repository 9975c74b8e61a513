//! Memory accounting: every node, suffix and value allocation made through the
//! backend's allocator is freed, and every value is dropped exactly once.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]
// Guards are dropped explicitly to end read sections; some backends' guards
// have no destructor.
#![allow(clippy::drop_non_drop)]

#[macro_use]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use common::{Rng, TestAlloc, hex, key_hash, scaled, shaped_key};

/// Per-test drop bookkeeping (shared with the values through an `Arc`; tests
/// run in parallel, so nothing global).
struct DropCtx {
    /// drops per value id: must end at exactly 1 for every created value
    slots: Vec<AtomicU8>,
    created: AtomicUsize,
}

impl DropCtx {
    fn new(capacity: usize) -> Arc<DropCtx> {
        Arc::new(DropCtx {
            slots: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            created: AtomicUsize::new(0),
        })
    }
    fn drops(&self, id: usize) -> u8 {
        self.slots[id].load(Ordering::SeqCst)
    }
    fn total_drops(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.load(Ordering::SeqCst) as usize)
            .sum()
    }
    /// Every created value was dropped exactly once; none beyond.
    fn assert_all_dropped_once(&self) {
        let created = self.created.load(Ordering::SeqCst);
        for (id, s) in self.slots.iter().enumerate() {
            let d = s.load(Ordering::SeqCst);
            if id < created {
                assert_eq!(d, 1, "value {id} dropped {d} times (expected exactly once)");
            } else {
                assert_eq!(d, 0, "value {id} was never created but dropped {d} times");
            }
        }
    }
}

/// An out-of-line value that records its drop.
struct Tracked {
    id: usize,
    key_hash: u64,
    ctx: Arc<DropCtx>,
    /// some heap data of its own (from the global allocator) so that a missing
    /// destructor also leaks in the process
    payload: Vec<u8>,
}

impl Tracked {
    fn new(ctx: &Arc<DropCtx>, key: &[u8]) -> Tracked {
        let id = ctx.created.fetch_add(1, Ordering::SeqCst);
        assert!(id < ctx.slots.len(), "DropCtx too small");
        Tracked {
            id,
            key_hash: key_hash(key),
            ctx: Arc::clone(ctx),
            payload: vec![id as u8; id % 24],
        }
    }
    fn check(&self, key: &[u8]) {
        assert_eq!(
            self.key_hash,
            key_hash(key),
            "value {} returned for wrong key {}",
            self.id,
            hex(key)
        );
        assert_eq!(
            self.payload.len(),
            self.id % 24,
            "corrupt value {}",
            self.id
        );
        assert_eq!(
            self.ctx.drops(self.id),
            0,
            "value {} is reachable but already dropped",
            self.id
        );
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert!(
            self.payload.iter().all(|&b| b == self.id as u8),
            "corrupt value dropped"
        );
        self.ctx.slots[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

/// 100k keys mixing every shape plus long keys (suffixes; shared long prefixes
/// forcing layers).
fn leak_keys(n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(42);
    let long_prefix = rng.bytes(64);
    (0..n as u64)
        .map(|i| match i % 10 {
            // long key with a unique tail: suffix storage
            7 => {
                let mut k = shaped_key(i);
                k.extend_from_slice(&rng.bytes(100 + (i % 300) as usize));
                k
            }
            // shared 64-byte prefix: eight layers
            8 => {
                let mut k = long_prefix.clone();
                k.extend_from_slice(&i.to_be_bytes());
                k
            }
            _ => shaped_key(i),
        })
        .collect()
}

fn assert_no_live_memory(alloc: &TestAlloc, what: &str) {
    assert_eq!(alloc.live_bytes(), 0, "{what}: live bytes after drop");
    assert_eq!(
        alloc.live_allocs(),
        0,
        "{what}: live allocations after drop"
    );
    assert_eq!(
        alloc.total_allocs(),
        alloc.total_frees(),
        "{what}: allocs vs frees"
    );
}

for_each_backend! {
    use std::sync::atomic::Ordering;

    /// Out-of-line values: 100k inserts, replace half, drop the tree.
    #[test]
    fn boxed_values_freed_and_dropped_once() {
        let n = scaled(100_000);
        let keys = leak_keys(n);
        let ctx = DropCtx::new(n + n / 2);
        let alloc = TestAlloc::new();
        let t = new_tree_in::<Tracked, _>(alloc.clone());
        // insert, a fresh guard per 1000 keys so reclamation can run meanwhile
        for chunk in keys.chunks(1000) {
            let g = t.guard();
            for k in chunk {
                assert!(t.insert(k, Tracked::new(&ctx, k), &g).is_none(), "dup key {}", hex(k));
            }
        }
        assert_eq!(t.len(), n);
        assert!(alloc.live_allocs() > 0, "the tree must allocate through the given allocator");
        assert_eq!(ctx.total_drops(), 0, "no value may be dropped before it is replaced");
        // replace every other key; the replaced value is returned and readable
        for (c, chunk) in keys.chunks(1000).enumerate() {
            let g = t.guard();
            for (j, k) in chunk.iter().enumerate() {
                let i = c * 1000 + j;
                if i % 2 == 0 {
                    let old = t.insert(k, Tracked::new(&ctx, k), &g).expect("present");
                    old.check(k);
                    assert_eq!(old.id, i, "replaced value of key #{i} has the wrong id");
                }
            }
        }
        assert_eq!(t.len(), n);
        {
            let g = t.guard();
            for (i, k) in keys.iter().enumerate() {
                let v = t.get(k, &g).expect("present");
                v.check(k);
                let expected = if i % 2 == 0 { n + i / 2 } else { i };
                assert_eq!(v.id, expected, "key #{i}");
            }
        }
        // retired values may or may not have been dropped yet, but at most once
        for id in 0..ctx.created.load(Ordering::SeqCst) {
            assert!(ctx.drops(id) <= 1, "value {id} dropped twice while the tree is alive");
            if id >= n || id % 2 == 1 {
                assert_eq!(ctx.drops(id), 0, "live value {id} dropped while the tree is alive");
            }
        }
        drop(t);
        assert_eq!(ctx.created.load(Ordering::SeqCst), n + n / 2);
        ctx.assert_all_dropped_once();
        assert_no_live_memory(&alloc, "boxed");
    }

    /// Inline values: no value destructors, but every node / suffix must be freed.
    #[test]
    fn inline_values_freed() {
        let n = scaled(100_000);
        let keys = leak_keys(n);
        let alloc = TestAlloc::new();
        let t = new_itree_in::<u64, _>(alloc.clone());
        {
            let g = t.guard();
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(t.insert(k, i as u64, &g), None);
            }
            for (i, k) in keys.iter().enumerate().step_by(2) {
                assert_eq!(t.insert(k, !(i as u64), &g), Some(i as u64));
            }
            for (i, k) in keys.iter().enumerate() {
                let expected = if i % 2 == 0 { !(i as u64) } else { i as u64 };
                assert_eq!(t.get(k, &g), Some(expected));
            }
        }
        assert_eq!(t.len(), n);
        assert!(alloc.live_allocs() > 0, "the tree must allocate through the given allocator");
        drop(t);
        assert_no_live_memory(&alloc, "inline");
    }

    /// Empty trees and tiny trees free everything too.
    #[test]
    fn small_trees_freed() {
        let alloc = TestAlloc::new();
        drop(new_itree_in::<u64, _>(alloc.clone()));
        assert_no_live_memory(&alloc, "empty inline");

        let ctx = DropCtx::new(4);
        let alloc = TestAlloc::new();
        {
            let t = new_tree_in::<Tracked, _>(alloc.clone());
            let g = t.guard();
            assert!(t.insert(b"", Tracked::new(&ctx, b""), &g).is_none());
            assert!(t.insert(b"", Tracked::new(&ctx, b""), &g).is_some());
            let long = [7u8; 100];
            assert!(t.insert(&long, Tracked::new(&ctx, &long), &g).is_none());
            drop(g);
        }
        ctx.assert_all_dropped_once();
        assert_no_live_memory(&alloc, "tiny boxed");
    }

    /// Values inserted and replaced from several threads (so retired values sit
    /// in several threads' reclamation state, some of which have exited), then
    /// the tree is dropped on yet another thread.
    #[test]
    fn multithreaded_replacements_then_drop_elsewhere() {
        let threads = 4usize;
        let per_thread = scaled(20_000);
        let keys_per_thread = per_thread / 4;
        // each thread: insert its keys, then replace each 3 times
        let ctx = DropCtx::new(threads * keys_per_thread * 4);
        let alloc = TestAlloc::new();
        let t = new_tree_in::<Tracked, _>(alloc.clone());
        let key = |th: usize, j: usize| shaped_key((j * threads + th) as u64);
        std::thread::scope(|s| {
            for th in 0..threads {
                let (t, ctx) = (&t, &ctx);
                s.spawn(move || {
                    for round in 0..4 {
                        let g = t.guard();
                        for j in 0..keys_per_thread {
                            let k = key(th, j);
                            let old = t.insert(&k, Tracked::new(ctx, &k), &g);
                            assert_eq!(old.is_some(), round > 0, "key {}", hex(&k));
                            if let Some(o) = old {
                                o.check(&k);
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(t.len(), threads * keys_per_thread);
        std::thread::spawn(move || drop(t)).join().unwrap();
        ctx.assert_all_dropped_once();
        assert_no_live_memory(&alloc, "multithreaded");
    }

    /// Removing every key and reclaiming frees the values (exactly once) and
    /// the emptied leaves, internodes and layers while the tree is alive.
    #[test]
    fn remove_all_then_reclaim() {
        let n = scaled(100_000);
        let keys = leak_keys(n);
        let ctx = DropCtx::new(2 * n);
        let alloc = TestAlloc::new();
        let mut t = new_tree_in::<Tracked, _>(alloc.clone());
        {
            let g = t.guard();
            for k in &keys {
                assert!(t.insert(k, Tracked::new(&ctx, k), &g).is_none());
            }
        }
        let peak_allocs = alloc.live_allocs();
        {
            let g = t.guard();
            for (i, k) in keys.iter().enumerate() {
                let v = t.remove(k, &g).unwrap_or_else(|| panic!("key #{i} {} missing", hex(k)));
                v.check(k); // readable and not yet dropped while `g` lives
                assert_eq!(v.id, i);
                assert!(t.remove(k, &g).is_none());
            }
            assert!(t.is_empty());
        }
        t.reclaim();
        ctx.assert_all_dropped_once();
        let left = alloc.live_allocs();
        eprintln!(
            "{BACKEND_NAME} remove_all_then_reclaim: {peak_allocs} live allocations at the peak, \
             {left} after"
        );
        if FREES_ON_RECLAIM {
            assert!(
                left <= 16,
                "{left} allocations (of {peak_allocs} at the peak) still live in an empty tree \
                 after reclaim(): emptied nodes/layers are not freed"
            );
        }
        // still usable; with a reusing backend, refilling needs no more memory
        // than the first fill
        {
            let g = t.guard();
            for k in &keys {
                assert!(t.get(k, &g).is_none(), "{} survived its removal", hex(k));
                assert!(t.insert(k, Tracked::new(&ctx, k), &g).is_none());
            }
            assert_eq!(t.len(), n);
        }
        if REUSES_AFTER_RECLAIM {
            assert!(
                alloc.live_allocs() <= peak_allocs + 16 + WAITING,
                "refilling after remove-all + reclaim() took {} live allocations, the first \
                 fill {peak_allocs}: reclaimed memory is not reused",
                alloc.live_allocs()
            );
        }
        drop(t);
        ctx.assert_all_dropped_once();
        assert_no_live_memory(&alloc, "remove all");
    }

    /// `clear()` drops every value immediately and the tree stays usable.
    #[test]
    fn clear_drops_everything_now() {
        let n = scaled(50_000);
        let keys = leak_keys(n);
        let ctx = DropCtx::new(2 * n + n / 2);
        let alloc = TestAlloc::new();
        let mut t = new_tree_in::<Tracked, _>(alloc.clone());
        {
            let g = t.guard();
            for k in &keys {
                t.insert(k, Tracked::new(&ctx, k), &g);
            }
            for k in keys.iter().step_by(2) {
                t.insert(k, Tracked::new(&ctx, k), &g).expect("present").check(k);
            }
        }
        let peak_allocs = alloc.live_allocs();
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        ctx.assert_all_dropped_once();
        if FREES_ON_RECLAIM {
            assert!(
                alloc.live_allocs() <= 16,
                "{} allocations live after clear()",
                alloc.live_allocs()
            );
        }
        {
            let g = t.guard();
            for k in &keys {
                assert!(t.get(k, &g).is_none(), "{} survived clear()", hex(k));
                assert!(t.insert(k, Tracked::new(&ctx, k), &g).is_none());
            }
            assert_eq!(t.len(), n);
        }
        if REUSES_AFTER_RECLAIM {
            assert!(
                alloc.live_allocs() <= peak_allocs + 16 + WAITING,
                "refilling after clear() took {} live allocations, before clear() {peak_allocs}",
                alloc.live_allocs()
            );
        }
        drop(t);
        ctx.assert_all_dropped_once();
        assert_no_live_memory(&alloc, "clear");
    }

    /// Interleaved inserts and removes with a guard per operation: memory
    /// stays bounded (removed values and emptied nodes are reclaimed as we go,
    /// or at each `reclaim()` for backends that reclaim only then).
    #[test]
    fn remove_insert_churn_stays_bounded() {
        let rounds = scaled(20_000);
        let ctx = DropCtx::new(rounds * 8);
        let alloc = TestAlloc::new();
        let mut t = new_tree_in::<Tracked, _>(alloc.clone());
        let mut high = 0;
        for r in 0..rounds {
            // 8 keys in a fresh layer per round, all removed again
            let p = (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes();
            let ks: Vec<Vec<u8>> = (0..8u8).map(|i| [&p[..], b"suffix-", &[i]].concat()).collect();
            for k in &ks {
                let g = t.guard();
                assert!(t.insert(k, Tracked::new(&ctx, k), &g).is_none());
            }
            for k in &ks {
                let g = t.guard();
                t.remove(k, &g).expect("present").check(k);
            }
            if !RECLAIMS_WHILE_SHARED {
                t.reclaim();
            }
            high = high.max(alloc.live_allocs());
        }
        assert!(t.is_empty());
        if RECLAIMS_WHILE_SHARED || REUSES_AFTER_RECLAIM {
            assert!(
                high < 20_000.min(rounds as isize * 8 / 2),
                "memory grows without bound under insert/remove churn: {high} live allocations"
            );
        }
        drop(t);
        ctx.assert_all_dropped_once();
        assert_no_live_memory(&alloc, "churn");
    }

    /// Inline values: remove everything, reclaim, drop.
    #[test]
    fn inline_remove_all_freed() {
        let n = scaled(100_000);
        let keys = leak_keys(n);
        let alloc = TestAlloc::new();
        let mut t = new_itree_in::<u64, _>(alloc.clone());
        {
            let g = t.guard();
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(t.insert(k, i as u64, &g), None);
            }
            for (i, k) in keys.iter().enumerate().rev() {
                assert_eq!(t.remove(k, &g), Some(i as u64), "remove #{i} {}", hex(k));
            }
        }
        t.reclaim();
        if FREES_ON_RECLAIM {
            assert!(
                alloc.live_allocs() <= 16,
                "{} allocations live in an empty tree",
                alloc.live_allocs()
            );
        }
        drop(t);
        assert_no_live_memory(&alloc, "inline remove all");
    }

}

/// Backend-specific: with epoch reclamation, replaced values must actually be
/// reclaimed while the tree is alive once no guard protects them (otherwise a
/// long-lived tree with updates grows without bound).
#[cfg(feature = "seize")]
mod seize_reclamation {
    use super::*;
    use masstree::MassTree;
    use masstree::alloc_backends::seize::SeizeBackend;

    #[test]
    fn replaced_values_reclaimed_before_drop() {
        let writes = scaled(100_000);
        let ctx = DropCtx::new(writes + 1);
        let alloc = TestAlloc::new();
        let t: MassTree<Tracked, SeizeBackend<TestAlloc>> =
            MassTree::new_in(SeizeBackend::new_in(alloc.clone()));
        for _ in 0..writes {
            let g = t.guard();
            t.insert(b"hot key", Tracked::new(&ctx, b"hot key"), &g);
        }
        let dropped = ctx.total_drops();
        // all but the live value were replaced; allow for a generous amount of
        // not-yet-reclaimed garbage
        assert!(
            dropped + 10_000.min(writes / 2) >= writes,
            "only {dropped} of {} replaced values reclaimed while the tree is alive",
            writes - 1
        );
        assert!(
            (alloc.live_allocs() as usize) < 10_000.min(writes / 2),
            "{} live allocations for a one-key tree",
            alloc.live_allocs()
        );
        drop(t);
        ctx.assert_all_dropped_once();
        assert_no_live_memory(&alloc, "hot key");
    }
}
