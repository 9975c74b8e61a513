//! `tree.owned_guard()` on the seize backend: a guard that is `Send + Sync`,
//! moved to other threads and held across `.await`; what is read through it
//! stays valid until it drops, and reclamation goes on once it has.
#![cfg(feature = "seize")]

#[macro_use]
mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};

use common::TestAlloc;
use masstree::alloc_backends::seize::{DEFAULT_BATCH_SIZE, SeizeBackend};
use masstree::{InlineMassTree, MassTree, OwnedGuard, TypedMassTree};

/// Drop bookkeeping for [`Tracked`] values: how often each id was dropped.
struct Drops {
    count: Vec<AtomicU8>,
    made: AtomicUsize,
}

impl Drops {
    fn new(capacity: usize) -> Arc<Drops> {
        Arc::new(Drops {
            count: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            made: AtomicUsize::new(0),
        })
    }
    /// Values dropped so far (SeqCst: read after joins and from other
    /// threads; the cost does not matter here).
    fn total(&self) -> usize {
        self.count
            .iter()
            .map(|c| usize::from(c.load(Ordering::SeqCst)))
            .sum()
    }
    fn of(&self, id: usize) -> u8 {
        // SeqCst: as in `total`.
        self.count[id].load(Ordering::SeqCst)
    }
    fn assert_each_dropped_once(&self) {
        // SeqCst: as in `total`.
        let made = self.made.load(Ordering::SeqCst);
        for id in 0..made {
            assert_eq!(self.of(id), 1, "value {id}");
        }
    }
}

/// An out-of-line value that records its drop and checks, when read, that
/// it was not dropped yet.
struct Tracked {
    id: usize,
    /// Heap bytes of its own, so that a use after free is likely to show.
    bytes: Vec<u8>,
    drops: Arc<Drops>,
}

impl Tracked {
    fn new(drops: &Arc<Drops>) -> Tracked {
        // SeqCst: as in `Drops::total`.
        let id = drops.made.fetch_add(1, Ordering::SeqCst);
        assert!(id < drops.count.len(), "Drops too small");
        Tracked {
            id,
            bytes: vec![id as u8; 16],
            drops: Arc::clone(drops),
        }
    }
    /// Still alive and intact.
    fn check(&self) {
        assert_eq!(
            self.drops.of(self.id),
            0,
            "value {} read after its drop",
            self.id
        );
        assert!(
            self.bytes.iter().all(|&b| b == self.id as u8),
            "value {} corrupt",
            self.id
        );
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        assert!(
            self.bytes.iter().all(|&b| b == self.id as u8),
            "corrupt value dropped"
        );
        // SeqCst: as in `Drops::total`.
        self.drops.count[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

type TrackedTree = MassTree<Tracked, SeizeBackend<TestAlloc>>;

fn tracked_tree(alloc: &TestAlloc) -> TrackedTree {
    MassTree::new_in(SeizeBackend::new_in(alloc.clone()))
}

#[test]
fn owned_guards_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<OwnedGuard<'static>>();
}

/// The guard moves to another thread and every kind of call takes it there;
/// it drops there too.
#[test]
fn guard_moved_to_another_thread_works_there() {
    let tree = InlineMassTree::<u64>::new();
    for i in 0..1000u64 {
        tree.insert(&i.to_be_bytes(), i, &tree.guard());
    }
    let g = tree.owned_guard();
    let tree = &tree;
    let sum = std::thread::scope(|s| {
        s.spawn(move || {
            let g = g;
            assert_eq!(tree.get(&7u64.to_be_bytes(), &g), Some(7));
            assert_eq!(tree.insert(&7u64.to_be_bytes(), 70, &g), Some(7));
            assert_eq!(tree.remove(&8u64.to_be_bytes(), &g), Some(8));
            tree.update(
                &9u64.to_be_bytes(),
                |v| masstree::Change::Set(v.unwrap() + 1),
                &g,
            );
            let mut c = tree.cursor(&g);
            assert!(c.seek(&500u64.to_be_bytes(), masstree::Seek::Ge).is_some());
            tree.iter(&g).map(|(_, v)| v).sum::<u64>()
        })
        .join()
        .unwrap()
    });
    assert_eq!(sum, (0..1000u64).sum::<u64>() + 63 - 8 + 1);
    assert_eq!(tree.len(), 999);
}

/// Values read through an owned guard stay valid, on another thread, while
/// a writer replaces and removes them and retires far more than a batch;
/// nothing retired while the guard lives is freed until it drops; once it
/// drops, what was retired is reclaimed while the tree lives.
#[test]
fn reads_stay_valid_until_it_drops_then_reclamation_resumes() {
    const KEYS: usize = 64;
    const ROUNDS: usize = 40; // 2,560 replacements: ten batches
    let drops = Drops::new(KEYS * (2 * ROUNDS + 1));
    let alloc = TestAlloc::new();
    let tree = tracked_tree(&alloc);
    let key = |i: usize| format!("key/{i:03}");
    for i in 0..KEYS {
        tree.insert(&key(i), Tracked::new(&drops), &tree.guard());
    }
    let g = tree.owned_guard();
    let (read, replaced) = (Barrier::new(2), Barrier::new(2));
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            // The guard moves here; everything read through it stays valid
            // while the writer replaces and retires it.
            let g = g;
            let held: Vec<&Tracked> = (0..KEYS).map(|i| tree.get(&key(i), &g).unwrap()).collect();
            read.wait();
            replaced.wait();
            for v in &held {
                v.check();
            }
            // Nothing retired since the guard was made was freed.
            assert_eq!(drops.total(), 0, "reclaimed while an owned guard lived");
            // And the guard still reads the tree as it is now.
            for i in 0..KEYS {
                tree.get(&key(i), &g).unwrap().check();
            }
            drop(g);
        });
        read.wait();
        for _ in 0..ROUNDS {
            let w = tree.guard();
            for i in 0..KEYS {
                tree.insert(&key(i), Tracked::new(&drops), &w)
                    .unwrap()
                    .check();
            }
        }
        replaced.wait();
        reader.join().unwrap();
    });
    let retired = KEYS * ROUNDS;
    // Dropping the owned guard let every full batch go (the writer's own
    // guards are gone); only the writer's current batch may still wait.
    let dropped = drops.total();
    assert!(
        dropped + DEFAULT_BATCH_SIZE >= retired,
        "{dropped} of {retired} retired values reclaimed after the owned guard dropped"
    );
    // Reclamation goes on with new guards too.
    for _ in 0..ROUNDS {
        let w = tree.guard();
        for i in 0..KEYS {
            tree.insert(&key(i), Tracked::new(&drops), &w);
        }
    }
    let dropped = drops.total();
    assert!(
        dropped + DEFAULT_BATCH_SIZE >= 2 * retired,
        "{dropped} of {} retired values reclaimed",
        2 * retired
    );
    assert!(
        (alloc.live_allocs() as usize) < KEYS * 4 + DEFAULT_BATCH_SIZE,
        "{} allocations live",
        alloc.live_allocs()
    );
    drop(tree);
    drops.assert_each_dropped_once();
    assert_eq!(alloc.live_allocs(), 0);
}

/// A future that is pending once, as at a runtime's yield point.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

/// Reads `key` through an owned guard, yields, and reads the value again
/// after the await: by then another thread replaced it.
async fn read_across_await(tree: &TrackedTree, key: &str) -> (usize, usize) {
    let g = tree.owned_guard();
    let before = tree.get(key, &g).unwrap();
    YieldOnce(false).await;
    before.check();
    (before.id, tree.get(key, &g).unwrap().id)
}

/// A task holding an owned guard across `.await` is polled on one thread,
/// moved, and finished on another, as a work-stealing runtime would.
#[test]
fn task_holds_the_guard_across_await_on_two_threads() {
    let drops = Drops::new(2 + 2 * DEFAULT_BATCH_SIZE);
    let alloc = TestAlloc::new();
    let tree = tracked_tree(&alloc);
    tree.insert("k", Tracked::new(&drops), &tree.guard());
    let mut task: Pin<Box<dyn Future<Output = (usize, usize)> + Send + '_>> =
        Box::pin(read_across_await(&tree, "k"));
    let (task, ids) = std::thread::scope(|s| {
        let mut task = s
            .spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                assert!(task.as_mut().poll(&mut cx).is_pending());
                task
            })
            .join()
            .unwrap();
        // Replaced twice over a batch while the task waits: the value it read
        // is retired, and would be freed but for its guard.
        for _ in 0..2 * DEFAULT_BATCH_SIZE {
            tree.insert("k", Tracked::new(&drops), &tree.guard());
        }
        assert_eq!(drops.of(0), 0);
        s.spawn(move || {
            let mut cx = Context::from_waker(Waker::noop());
            match task.as_mut().poll(&mut cx) {
                Poll::Ready(ids) => (task, ids),
                Poll::Pending => panic!("the task did not finish"),
            }
        })
        .join()
        .unwrap()
    });
    assert_eq!(ids, (0, 2 * DEFAULT_BATCH_SIZE));
    drop(task);
    drop(tree);
    drops.assert_each_dropped_once();
    assert_eq!(alloc.live_allocs(), 0);
}

/// Many owned guards made and dropped on several threads while a writer
/// replaces values: thread slots are reused, reads stay intact.
#[test]
fn many_owned_guards_under_a_writer() {
    const READERS: usize = 3;
    const GUARDS: usize = 300;
    const WRITES: usize = 3_000;
    let drops = Drops::new(WRITES + 8);
    let alloc = TestAlloc::new();
    let tree = tracked_tree(&alloc);
    for k in ["a", "b"] {
        tree.insert(k, Tracked::new(&drops), &tree.guard());
    }
    std::thread::scope(|s| {
        for _ in 0..READERS {
            s.spawn(|| {
                for _ in 0..GUARDS {
                    let g = tree.owned_guard();
                    let a = tree.get("a", &g).unwrap();
                    let b = tree.get("b", &g).unwrap();
                    std::thread::yield_now();
                    a.check();
                    b.check();
                }
            });
        }
        for i in 0..WRITES {
            let k = if i % 2 == 0 { "a" } else { "b" };
            tree.insert(k, Tracked::new(&drops), &tree.guard());
        }
    });
    assert!(drops.total() + 2 * DEFAULT_BATCH_SIZE >= WRITES);
    drop(tree);
    drops.assert_each_dropped_once();
    assert_eq!(alloc.live_allocs(), 0);
}

/// The tree still refuses a guard of another tree.
#[test]
#[should_panic(expected = "different tree")]
fn owned_guard_of_another_tree_panics() {
    let a = InlineMassTree::<u64>::new();
    let b = InlineMassTree::<u64>::new();
    let g = a.owned_guard();
    b.get("k", &g);
}

/// Typed trees have them too.
#[test]
fn typed_tree_owned_guard() {
    let tree: TypedMassTree<(String, u32), u64> = TypedMassTree::new();
    tree.insert(&("a".to_string(), 1), 10, &tree.guard());
    let tree = &tree;
    let g = tree.owned_guard();
    let v = std::thread::scope(|s| {
        s.spawn(move || *tree.get(&("a".to_string(), 1), &g).unwrap())
            .join()
            .unwrap()
    });
    assert_eq!(v, 10);
}
