//! Panic safety: when user code panics (a value's `Drop` or `Clone`, an input
//! iterator, an `update` closure), the tree stays valid, `len()` is exact,
//! no value is dropped twice and nothing leaks. On every backend, with a
//! counting allocator and per-value drop counters.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]

#[macro_use]
mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::{TestAlloc, shaped_key};
use masstree::Change;

/// Drop bookkeeping shared by the values of one test.
struct Ctx {
    drops: Vec<AtomicUsize>,
    /// The id whose drop (or clone) panics.
    panics_at: usize,
}

impl Ctx {
    fn new(n: usize, panics_at: usize) -> Arc<Ctx> {
        Arc::new(Ctx {
            drops: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            panics_at,
        })
    }
    /// Ids dropped exactly once, and whether any was dropped twice.
    fn dropped_once(&self) -> (usize, bool) {
        let counts: Vec<usize> = self.drops.iter().map(|d| d.load(SeqCst)).collect();
        (
            counts.iter().filter(|&&c| c == 1).count(),
            counts.iter().any(|&c| c > 1),
        )
    }
}

/// A value that records its drop and panics in `drop` (or `clone`) if its
/// id is the context's `panics_at`.
struct Noisy {
    id: usize,
    ctx: Arc<Ctx>,
}

impl Drop for Noisy {
    fn drop(&mut self) {
        self.ctx.drops[self.id].fetch_add(1, SeqCst);
        if self.id == self.ctx.panics_at && !std::thread::panicking() {
            panic!("value {} panics in drop", self.id);
        }
    }
}

impl Clone for Noisy {
    fn clone(&self) -> Self {
        assert!(
            self.id != self.ctx.panics_at,
            "value {} panics in clone",
            self.id
        );
        // Clones are counted under ids beyond the originals.
        Noisy {
            id: self.id + self.ctx.drops.len() / 2,
            ctx: self.ctx.clone(),
        }
    }
}

/// Keys that make leaves, splits, suffixes and trie layers.
fn keys(n: usize) -> Vec<Vec<u8>> {
    let mut k: Vec<Vec<u8>> = (0..n).map(|i| shaped_key(i as u64 * 7 + 3)).collect();
    k.sort();
    k.dedup();
    k
}

const N: usize = 600;

for_each_backend! {
    /// A tree of `Noisy` values on a counting allocator; returns the keys.
    pub(crate) fn filled(alloc: &TestAlloc, ctx: &Arc<Ctx>) -> (TreeIn<Noisy, TestAlloc>, Vec<Vec<u8>>) {
        let tree = new_tree_in(alloc.clone());
        let keys = keys(N);
        {
            let g = tree.guard();
            for (id, k) in keys.iter().enumerate() {
                tree.insert(k, Noisy { id, ctx: ctx.clone() }, &g);
            }
        }
        (tree, keys)
    }

    /// `clear()` whose value drop panics: the tree is empty and usable,
    /// `len()` is 0, every value was dropped exactly once.
    #[test]
    fn clear_with_a_panicking_drop() {
        let alloc = TestAlloc::new();
        let ctx = Ctx::new(2 * N, N / 2);
        let (mut tree, keys) = filled(&alloc, &ctx);
        let n = keys.len();
        let r = catch_unwind(AssertUnwindSafe(|| tree.clear()));
        assert!(r.is_err(), "the value's panic reaches the caller");
        assert_eq!(tree.len(), 0);
        {
            let g = tree.guard();
            assert_eq!(tree.iter(&g).count(), 0);
        }
        assert_eq!(ctx.dropped_once(), (n, false), "every value dropped once");
        {
            let g = tree.guard();
            tree.insert(&keys[0], Noisy { id: N + 1, ctx: ctx.clone() }, &g);
            assert_eq!(tree.len(), 1);
            assert!(tree.get(&keys[0], &g).is_some());
        }
        drop(tree);
        assert_eq!(alloc.live_bytes(), 0, "nothing leaked");
    }

    /// Dropping a tree whose value drop panics frees everything else.
    #[test]
    fn drop_with_a_panicking_value() {
        let alloc = TestAlloc::new();
        let ctx = Ctx::new(2 * N, 7);
        let (tree, keys) = filled(&alloc, &ctx);
        let r = catch_unwind(AssertUnwindSafe(move || drop(tree)));
        assert!(r.is_err());
        assert_eq!(ctx.dropped_once(), (keys.len(), false));
        assert_eq!(alloc.live_bytes(), 0, "nothing leaked");
    }

    /// A bulk load whose input iterator panics drops what it loaded and
    /// leaks no node.
    #[test]
    fn bulk_load_from_a_panicking_iterator() {
        let alloc = TestAlloc::new();
        let ctx = Ctx::new(2 * N, usize::MAX);
        let keys = keys(N);
        let stop = keys.len() * 2 / 3;
        let input = keys.iter().enumerate().map(|(id, k)| {
            assert!(id != stop, "the input panics at {id}");
            (k.clone(), Noisy { id, ctx: ctx.clone() })
        });
        let r = catch_unwind(AssertUnwindSafe(|| {
            masstree::BulkLoader::new(backend_in(alloc.clone()))
                .load::<masstree::OutOfLine<Noisy>, _, _>(input)
        }));
        assert!(r.is_err());
        assert_eq!(ctx.dropped_once(), (stop, false), "every loaded value dropped once");
        assert_eq!(alloc.live_bytes(), 0, "nothing leaked");
    }

    /// `extend` from a panicking iterator keeps what it inserted; `len()`
    /// counts exactly that.
    #[test]
    fn extend_from_a_panicking_iterator() {
        let alloc = TestAlloc::new();
        let ctx = Ctx::new(2 * N, usize::MAX);
        let mut tree: TreeIn<Noisy, TestAlloc> = new_tree_in(alloc.clone());
        let keys = keys(N);
        let stop = keys.len() / 2;
        let input = keys.iter().enumerate().map(|(id, k)| {
            assert!(id != stop, "the input panics at {id}");
            (k.clone(), Noisy { id, ctx: ctx.clone() })
        });
        assert!(catch_unwind(AssertUnwindSafe(|| tree.extend(input))).is_err());
        assert_eq!(tree.len(), stop);
        {
            let g = tree.guard();
            assert_eq!(tree.iter(&g).count(), stop);
        }
        drop(tree);
        assert_eq!(ctx.dropped_once(), (stop, false));
        assert_eq!(alloc.live_bytes(), 0);
    }

    /// Removes every key of a tree whose value `panics_at` panics in drop
    /// and drops the guard: the destructors that run then (seize: the batches
    /// handed off under the guard) must not unwind out of the guard's drop.
    /// `reclaim()` then drops the rest and re-raises the panic; every value
    /// is dropped exactly once, the tree takes keys again and nothing leaks.
    // Pool's and arena's guards have no destructor.
    #[allow(clippy::drop_non_drop)]
    pub(crate) fn remove_all_then_reclaim(panics_at: impl Fn(usize) -> usize) {
        let alloc = TestAlloc::new();
        let n = keys(N).len();
        let ctx = Ctx::new(2 * N, panics_at(n));
        let (mut tree, keys) = filled(&alloc, &ctx);
        let g = tree.guard();
        for k in &keys {
            assert!(tree.remove(k, &g).is_some());
        }
        assert!(catch_unwind(AssertUnwindSafe(move || drop(g))).is_ok(), "a guard drop panicked");
        let (once, twice) = ctx.dropped_once();
        assert!(!twice);
        let r = catch_unwind(AssertUnwindSafe(|| tree.reclaim()));
        assert!(r.is_err(), "the value's panic reaches reclaim()");
        assert_eq!(ctx.dropped_once(), (n, false), "every value dropped once ({once} before reclaim)");
        assert!(catch_unwind(AssertUnwindSafe(|| tree.reclaim())).is_ok(), "raised twice");
        {
            let g = tree.guard();
            tree.insert(&keys[1], Noisy { id: N + 1, ctx: ctx.clone() }, &g);
            assert_eq!(tree.get(&keys[1], &g).map(|v| v.id), Some(N + 1));
            assert_eq!(tree.len(), 1);
        }
        drop(tree);
        assert_eq!(ctx.drops[N + 1].load(SeqCst), 1);
        assert_eq!(alloc.live_bytes(), 0, "nothing leaked");
    }

    /// An `update` closure that panics changes nothing and leaves the leaf
    /// unlocked.
    #[test]
    fn panicking_update_closure() {
        let tree = new_itree::<u64>();
        let g = tree.guard();
        for i in 0..100u64 {
            tree.insert(&i.to_be_bytes(), i, &g);
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            tree.update(&5u64.to_be_bytes(), |_| -> Change<u64> { panic!("closure") }, &g)
        }));
        assert!(r.is_err());
        assert_eq!(tree.get(&5u64.to_be_bytes(), &g), Some(5));
        // The same leaf takes writes again.
        tree.insert(&5u64.to_be_bytes(), 50, &g);
        tree.insert(&6u64.to_be_bytes(), 60, &g);
        assert_eq!(tree.get(&5u64.to_be_bytes(), &g), Some(50));
        assert_eq!(tree.len(), 100);
    }

    /// A write to the tree from inside its own `update` or
    /// `get_or_insert_with` closure (which holds the key's leaf lock) panics
    /// with a clear message instead of waiting forever (debug builds with
    /// `std`), and the tree stays usable.
    #[cfg(all(debug_assertions, feature = "std"))]
    #[test]
    fn reentrant_write_is_detected() {
        let tree = new_itree::<u64>();
        let g = tree.guard();
        tree.insert(b"a", 1, &g);
        let r = catch_unwind(AssertUnwindSafe(|| {
            tree.update(b"a", |_| {
                tree.insert(b"b", 2, &g);
                Change::Keep
            }, &g)
        }));
        let msg = r.expect_err("the nested write panics");
        let msg = (msg.downcast_ref::<String>().map(String::as_str))
            .or_else(|| msg.downcast_ref::<&str>().copied())
            .unwrap_or("");
        assert!(msg.contains("from inside its own"), "message: {msg}");
        let r = catch_unwind(AssertUnwindSafe(|| {
            tree.get_or_insert_with(b"c", || tree.remove(b"a", &g).unwrap_or(0), &g)
        }));
        assert!(r.is_err());
        // Reads inside a closure are fine, and so are writes after it.
        assert_eq!(tree.update(b"a", |v| Change::Set(v.unwrap() + tree.get(b"a", &g).unwrap()), &g), Some(1));
        tree.insert(b"b", 2, &g);
        assert_eq!((tree.get(b"a", &g), tree.get(b"b", &g), tree.len()), (Some(2), Some(2), 2));
        // Another tree may be written from inside the closure.
        let other = new_itree::<u64>();
        let og = other.guard();
        tree.update(b"a", |_| {
            other.insert(b"x", 9, &og);
            Change::Keep
        }, &g);
        assert_eq!(other.get(b"x", &og), Some(9));
    }
}

/// `clone()` needs a backend that clones: the seize backend's does.
#[cfg(feature = "seize")]
mod clone {
    use super::*;

    /// `clone()` whose value clone panics leaves the original intact and
    /// frees the partial copy.
    #[test]
    fn clone_with_a_panicking_clone() {
        let alloc = TestAlloc::new();
        let ctx = Ctx::new(2 * N, N / 3);
        let (tree, keys) = seize::filled(&alloc, &ctx);
        let before = alloc.live_bytes();
        assert!(catch_unwind(AssertUnwindSafe(|| tree.clone())).is_err());
        assert_eq!(alloc.live_bytes(), before, "the partial copy is freed");
        assert_eq!(tree.len(), keys.len());
        let (once, twice) = ctx.dropped_once();
        assert!(!twice);
        // Only clones were dropped, not originals.
        assert!((0..keys.len()).all(|i| ctx.drops[i].load(SeqCst) == 0));
        assert_eq!(
            once,
            N / 3,
            "every clone made before the panic dropped once"
        );
        // The panicking value drops too, with the tree.
        let r = catch_unwind(AssertUnwindSafe(move || drop(tree)));
        assert!(r.is_err());
        assert_eq!(alloc.live_bytes(), 0);
    }
}

/// Values removed, then reclaimed, one of whose destructors panics: the panic
/// reaches `reclaim()`, every value is dropped once, nothing leaks. The value
/// panics among the first removed (seize: in a batch its guard's drop frees)
/// or among the last (seize: still in the thread's batch until `reclaim()`).
mod reclaim {
    macro_rules! reclaim_tests {
        ($($(#[$a:meta])* $backend:ident;)*) => {$(
            mod $backend {
                $(#[$a])*
                #[test]
                fn panic_among_the_first_removed() {
                    super::super::$backend::remove_all_then_reclaim(|_| 7);
                }
                $(#[$a])*
                #[test]
                fn panic_among_the_last_removed() {
                    super::super::$backend::remove_all_then_reclaim(|n| n - 3);
                }
            }
        )*};
    }

    // Pool and arena release retired values through `Limbo::release`
    // (alloc_backends/mod.rs), which goes on past a panicking destructor
    // (freeing its memory too) and re-raises the panic after.
    reclaim_tests! {
        #[cfg(feature = "seize")] seize;
        #[cfg(all(feature = "seize", feature = "huge-pages"))] seize_huge_pages;
        #[cfg(feature = "pool")]
        pool;
        #[cfg(feature = "arena")]
        arena;
    }
}

/// On the seize backend a removed value's destructor runs when the last
/// guard that could see it drops, in a reclaimer: a panic there is kept and
/// re-raised by the next `guard()`, `reclaim()` or drop of the tree, and the
/// rest of its batch is still freed.
#[cfg(feature = "seize")]
mod deferred {
    use super::*;

    /// Removes every key under one guard and drops it (which frees the
    /// batches handed off meanwhile, the value `panics_at` among them).
    fn removed(
        panics_at: usize,
    ) -> (
        TestAlloc,
        Arc<Ctx>,
        seize::TreeIn<Noisy, TestAlloc>,
        Vec<Vec<u8>>,
    ) {
        let alloc = TestAlloc::new();
        let ctx = Ctx::new(2 * N, panics_at);
        let (tree, keys) = seize::filled(&alloc, &ctx);
        let g = tree.guard();
        for k in &keys {
            assert!(tree.remove(k, &g).is_some());
        }
        let r = catch_unwind(AssertUnwindSafe(move || drop(g)));
        assert!(r.is_ok(), "the destructor's panic escaped a guard's drop");
        let (once, twice) = ctx.dropped_once();
        assert!(!twice);
        // The first two batches (256 retirements each) are freed; the rest
        // waits in the thread's batch.
        assert!(
            once >= 200,
            "{once} values dropped: the rest of the batch was lost"
        );
        (alloc, ctx, tree, keys)
    }

    /// The next `guard()` re-raises the panic (once); the tree stays usable,
    /// every value is dropped once and nothing leaks.
    #[test]
    fn next_guard_raises_the_panic() {
        let (alloc, ctx, mut tree, keys) = removed(7);
        let r = catch_unwind(AssertUnwindSafe(|| drop(tree.guard())));
        let msg = r.expect_err("the panic reaches the next guard()");
        assert_eq!(
            msg.downcast_ref::<String>().map(String::as_str),
            Some("value 7 panics in drop")
        );
        {
            let g = tree.guard();
            tree.insert(
                &keys[0],
                Noisy {
                    id: N + 1,
                    ctx: ctx.clone(),
                },
                &g,
            );
            assert_eq!(tree.get(&keys[0], &g).map(|v| v.id), Some(N + 1));
        }
        tree.reclaim();
        assert_eq!(ctx.dropped_once(), (keys.len(), false));
        assert_eq!(tree.len(), 1);
        drop(tree);
        assert_eq!(ctx.drops[N + 1].load(SeqCst), 1);
        assert_eq!(alloc.live_bytes(), 0, "nothing leaked");
    }

    /// Dropping the tree re-raises a panic nobody collected.
    #[test]
    fn drop_raises_the_panic() {
        let (alloc, ctx, tree, keys) = removed(7);
        assert!(catch_unwind(AssertUnwindSafe(move || drop(tree))).is_err());
        assert_eq!(ctx.dropped_once(), (keys.len(), false));
        assert_eq!(alloc.live_bytes(), 0, "nothing leaked");
    }

    /// Of two panicking destructors, the first to run is raised, the other
    /// dropped; both values and every other are dropped once.
    #[test]
    fn two_panics_raise_one() {
        let alloc = TestAlloc::new();
        let ctx = Ctx::new(2 * N, usize::MAX);
        let mut tree: seize::TreeIn<Twice, TestAlloc> = seize::new_tree_in(alloc.clone());
        let keys = keys(N);
        let g = tree.guard();
        for (id, k) in keys.iter().enumerate() {
            tree.insert(
                k,
                Twice(Noisy {
                    id,
                    ctx: ctx.clone(),
                }),
                &g,
            );
        }
        for k in &keys {
            assert!(tree.remove(k, &g).is_some());
        }
        assert!(catch_unwind(AssertUnwindSafe(move || drop(g))).is_ok());
        let r = catch_unwind(AssertUnwindSafe(|| tree.reclaim()));
        let msg = r.expect_err("a panic reaches reclaim()");
        let msg = msg.downcast_ref::<String>().map(String::as_str);
        assert!(
            matches!(msg, Some("value 3 panics twice" | "value 300 panics twice")),
            "{msg:?}"
        );
        assert!(
            catch_unwind(AssertUnwindSafe(|| drop(tree.guard()))).is_ok(),
            "only one is raised"
        );
        assert_eq!(ctx.dropped_once(), (keys.len(), false));
        drop(tree);
        assert_eq!(alloc.live_bytes(), 0, "nothing leaked");
    }

    /// A value whose destructor panics if its id is 3 or 300.
    struct Twice(Noisy);

    impl Drop for Twice {
        fn drop(&mut self) {
            let id = self.0.id;
            if (id == 3 || id == 300) && !std::thread::panicking() {
                panic!("value {id} panics twice");
            }
        }
    }

    /// A destructor that panics in a reclaimer run by another thread's
    /// guard drop: that thread carries on, and the panic is raised by this
    /// thread's next `guard()`.
    #[test]
    fn panic_in_another_threads_guard_drop() {
        let alloc = TestAlloc::new();
        let ctx = Ctx::new(2 * N, 5);
        let (tree, keys) = seize::filled(&alloc, &ctx);
        let (entered, wait_entered) = std::sync::mpsc::channel();
        let (release, wait_release) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let (tree, ctx) = (&tree, &ctx);
            let other = s.spawn(move || {
                let g = tree.guard();
                entered.send(()).unwrap();
                wait_release.recv().unwrap();
                // The last guard that could see the removed values: their
                // destructors run here.
                drop(g);
                ctx.dropped_once()
            });
            wait_entered.recv().unwrap();
            {
                let g = tree.guard();
                for k in &keys {
                    assert!(tree.remove(k, &g).is_some());
                }
            }
            assert_eq!(
                ctx.dropped_once(),
                (0, false),
                "freed under the other thread's guard"
            );
            release.send(()).unwrap();
            let (once, twice) = other
                .join()
                .expect("the other thread's guard drop panicked");
            assert!(!twice && once >= 200, "{once} values dropped");
        });
        assert!(catch_unwind(AssertUnwindSafe(|| drop(tree.guard()))).is_err());
        drop(tree);
        assert_eq!(ctx.dropped_once(), (keys.len(), false));
        assert_eq!(alloc.live_bytes(), 0, "nothing leaked");
    }
}
