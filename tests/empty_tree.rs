//! An empty tree costs at most 1 KiB on every backend: its own bytes plus
//! everything it holds from any allocator, the global one included (the
//! seize backend's collector comes from there), counted per thread by the
//! global allocator (`common::PerThread`). Many small trees (one per table, per
//! connection) stay cheap; a tree made empty again keeps working.
//!
//! Before the seize backend made its collector lazily, a new seize tree
//! held 16,640 bytes (seize's two tables of 32 thread slots of 256 bytes,
//! and the 256-byte home) and was 1,536 bytes itself; now 256 and 576.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]

#[macro_use]
mod common;

use common::{PerThread, TestAlloc};

/// What an empty tree may cost: its own bytes plus what it holds.
const BUDGET: usize = 1024;

/// The system allocator, counting each thread's live bytes (tests run on
/// threads of their own, so they do not see each other's allocations).
#[global_allocator]
static GLOBAL: PerThread = PerThread;

/// This thread's live bytes. (Printing allocates: the test harness
/// captures the output in a buffer of this thread.)
fn live() -> isize {
    PerThread::live_bytes()
}

/// Bytes allocated on this thread since `before`.
fn since(before: isize) -> usize {
    usize::try_from(live() - before).expect("more freed than allocated")
}

for_each_backend! {
    /// One tree's use from start to drop, to warm up what a thread makes
    /// once (seize's thread id) before bytes are counted.
    pub(crate) fn warm_up() {
        let t = new_itree::<u64>();
        let g = t.guard();
        t.insert(b"warm", 1, &g);
        t.remove(b"warm", &g);
    }

    /// A new tree, on the global allocator or a counting one, costs at most
    /// [`BUDGET`], its own bytes included; on a counting allocator the
    /// backend's share is counted twice over, by the ledger and here.
    #[test]
    fn an_empty_tree_costs_at_most_1_kib() {
        warm_up();
        let before = live();
        let t = new_itree::<u64>();
        let held = since(before);
        let (size, cost) = (size_of_val(&t), size_of_val(&t) + held);
        assert!(cost <= BUDGET, "{BACKEND_NAME}: an empty tree costs {cost} bytes");
        assert_eq!(t.len(), 0);
        drop(t);
        assert_eq!(live(), before, "{BACKEND_NAME}: a dropped empty tree left bytes");

        let a = TestAlloc::new();
        let before = live();
        let t = new_tree_in::<String, _>(a.clone());
        let held = since(before);
        assert!(a.live_bytes() as usize <= held, "the ledger's bytes come from here");
        let cost = size_of_val(&t) + held;
        assert!(cost <= BUDGET, "{BACKEND_NAME}: an empty tree costs {cost} bytes");
        drop(t);
        a.assert_empty();
        eprintln!("{BACKEND_NAME}: an empty tree is {size} bytes and holds {}", cost - size);
    }

    /// A thousand empty trees side by side cost at most [`BUDGET`] each,
    /// the vector that holds them included, and give everything back.
    #[test]
    fn a_thousand_empty_trees() {
        const N: usize = 1_000;
        warm_up();
        let before = live();
        let trees: Vec<ITree<u64>> = (0..N).map(|_| new_itree()).collect();
        let each = since(before) / N;
        assert!(each <= BUDGET, "{BACKEND_NAME}: {each} bytes per empty tree");
        assert!(trees.iter().all(|t| t.is_empty()));
        drop(trees);
        assert_eq!(live(), before, "{BACKEND_NAME}: dropped empty trees left bytes");
    }

    /// An empty tree is usable from the start, read before any write,
    /// and works after one insert and a remove, a `clear`, a `reclaim`;
    /// then it gives every byte back.
    #[test]
    fn an_empty_tree_works_and_empties_again() {
        warm_up();
        let a = TestAlloc::new();
        let before = live();
        {
            let mut t = new_tree_in::<String, _>(a.clone());
            // Reclaiming and clearing a tree that never held anything.
            t.reclaim();
            t.clear();
            {
                let g = t.guard();
                assert_eq!(t.get(b"k", &g), None);
                assert_eq!(t.iter(&g).count(), 0);
                assert_eq!(t.remove(b"k", &g), None);
                assert_eq!(t.insert(b"k", "one".to_string(), &g), None);
                assert_eq!(t.get(b"k", &g).map(String::as_str), Some("one"));
                assert_eq!(t.remove(b"k", &g).map(String::as_str), Some("one"));
                assert!(t.is_empty());
                assert_eq!(t.get(b"k", &g), None);
                assert_eq!(t.insert(b"k", "two".to_string(), &g), None);
            }
            t.reclaim();
            t.clear();
            assert!(t.is_empty());
            {
                let g = t.guard();
                assert_eq!(t.get(b"k", &g), None);
                for i in 0..100u32 {
                    t.insert(&i.to_be_bytes(), i.to_string(), &g);
                }
                assert_eq!(t.len(), 100);
                assert_eq!(t.get(&7u32.to_be_bytes(), &g).map(String::as_str), Some("7"));
            }
        }
        a.assert_empty();
        assert_eq!(live(), before, "{BACKEND_NAME}: a used tree left bytes after its drop");
    }
}

/// The seize backend's collector is made at the first guard, once, and
/// with the batch size asked for, also when set before any guard.
#[cfg(feature = "seize")]
mod seize_collector {
    use super::*;
    use masstree::InlineMassTree;
    use masstree::alloc_backends::seize::SeizeBackend;
    use masstree::backend::NodeAllocatorGeneric;

    #[test]
    fn made_at_the_first_guard_once() {
        seize::warm_up();
        let before = live();
        let t = InlineMassTree::<u64, SeizeBackend>::new_in(SeizeBackend::new().with_batch_size(2));
        let empty = since(before);
        let (g1, g2) = (t.guard(), t.guard());
        let made = since(before);
        assert!(
            made > empty + 4096,
            "no collector made: {empty} -> {made} bytes"
        );
        assert!(t.backend().owns_guard(&g1) && t.backend().owns_guard(&g2));
        let owned = t.owned_guard();
        assert_eq!(since(before), made, "a second collector made");
        // Batches of 2: two retired values are handed over, and freed once
        // no guard is left.
        t.insert(b"a", 1, &g1);
        drop((g1, g2, owned));
        let g = t.guard();
        t.insert(b"a", 2, &g);
        t.insert(b"a", 3, &g);
        assert_eq!(t.get(b"a", &g), Some(3));
        drop(g);
        drop(t);
        assert_eq!(live(), before, "the collector was not freed");
    }

    /// A clone of a tree whose collector is not made yet works on its own.
    #[test]
    fn a_fresh_tree_clones() {
        let t = InlineMassTree::<u64>::new();
        let c = t.clone();
        c.insert(b"c", 1, &c.guard());
        assert_eq!((t.len(), c.len()), (0, 1));
        assert_eq!(t.get(b"c", &t.guard()), None);
    }

    /// Guards of another tree are refused, also by a tree whose collector
    /// is not made yet.
    #[test]
    #[should_panic(expected = "different tree")]
    fn a_fresh_tree_refuses_a_foreign_guard() {
        let a = InlineMassTree::<u64>::new();
        let b = InlineMassTree::<u64>::new();
        let g = b.guard();
        assert!(!a.backend().owns_guard(&g));
        a.get(b"x", &g);
    }
}

/// The pool and arena still take their memory up front when asked to.
#[cfg(feature = "pool")]
#[test]
fn pool_with_capacity_preallocates() {
    use masstree::alloc_backends::pool::{PoolBackend, SLAB_BYTES};
    let a = TestAlloc::new();
    let b = PoolBackend::with_capacity_in(100, 10, a.clone()).unwrap();
    assert_eq!(b.stats().slabs, 3);
    assert_eq!(a.live_bytes() as usize, 3 * SLAB_BYTES);
    let capped = PoolBackend::with_capacity_in(60, 0, a.clone())
        .unwrap()
        .with_max_slab_bytes(2 * SLAB_BYTES);
    assert_eq!(capped.stats().slabs, 2);
    assert_eq!(a.live_bytes() as usize, 5 * SLAB_BYTES);
    drop((b, capped));
    a.assert_empty();
}

#[cfg(feature = "arena")]
#[test]
fn arena_with_capacity_preallocates() {
    use masstree::alloc_backends::arena::ArenaBackend;
    let a = TestAlloc::new();
    let b = ArenaBackend::with_capacity_in(100_000, a.clone()).unwrap();
    assert_eq!(b.stats().chunks, 1);
    assert!(a.live_bytes() as usize >= 100_000);
    drop(b);
    a.assert_empty();
}
