//! Heap held by each map after loading keys, after removing every key, and
//! after dropping the map: what `remove` gives back, and when.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin memory_after_remove            # N = 1,000,000 (the README's table)
//! N=100000 cargo run --release --manifest-path bench/Cargo.toml --bin memory_after_remove
//! ```
//!
//! A counting global allocator (requested sizes, so allocator overhead is
//! not counted) reads the live bytes of the whole program; each map is
//! measured alone, between two readings. Keys: `N` (default 1,000,000)
//! random 8-byte keys with `u64` values, inserted in random order and
//! removed in another; one guard per 1000 operations, dropped before each
//! reading. Every remove must return the value inserted, and the program
//! panics otherwise. This is a separate program from `bench/compare`
//! because a counting global allocator would slow every allocation there.

use masstree::InlineMassTree;
use masstree::alloc_backends::seize::SeizeBackend;

#[path = "../tests/common/alloc.rs"]
mod alloc;
#[path = "../tests/common/rng.rs"]
mod rng;
use alloc::Ledger;
use rng::Rng;

/// The system allocator, counting the bytes requested and not yet freed
/// (the tests' allocator, as a global one).
#[global_allocator]
static GLOBAL: Ledger = Ledger::new();

/// Bytes requested and not yet freed by the whole program.
fn live() -> usize {
    GLOBAL.live_bytes() as usize
}

/// The operations measured, for one map type.
trait Map {
    const NAME: &'static str;
    fn new() -> Self;
    /// Inserts `keys[i] -> i` for every `i` in `order`, in batches.
    fn load(&self, keys: &[[u8; 8]], order: &[usize]);
    /// Removes every key in `order`; the sum of the values returned.
    fn remove_all(&self, keys: &[[u8; 8]], order: &[usize]) -> u64;
}

/// Operations per guard.
const BATCH: usize = 1000;

/// Runs `op` for every index in `order`, under a fresh guard from `guard`
/// for each `BATCH` of them (each dropped before the next is taken).
fn in_batches<G>(order: &[usize], guard: impl Fn() -> G, mut op: impl FnMut(&G, usize)) {
    for batch in order.chunks(BATCH) {
        let g = guard();
        for &i in batch {
            op(&g, i);
        }
    }
}

impl Map for InlineMassTree<u64, SeizeBackend> {
    const NAME: &'static str = "masstree (this crate, seize)";
    fn new() -> Self {
        InlineMassTree::new_in(SeizeBackend::default())
    }
    fn load(&self, keys: &[[u8; 8]], order: &[usize]) {
        in_batches(
            order,
            || self.guard(),
            |g, i| {
                self.insert(&keys[i], i as u64, g);
            },
        );
    }
    fn remove_all(&self, keys: &[[u8; 8]], order: &[usize]) -> u64 {
        let mut sum = 0;
        in_batches(
            order,
            || self.guard(),
            |g, i| {
                sum += self.remove(&keys[i], g).unwrap_or(0);
            },
        );
        sum
    }
}

impl Map for masstree_published::MassTree15Inline<u64> {
    const NAME: &'static str = "masstree 0.9.5";
    fn new() -> Self {
        masstree_published::MassTree15Inline::new()
    }
    fn load(&self, keys: &[[u8; 8]], order: &[usize]) {
        in_batches(
            order,
            || self.guard(),
            |g, i| {
                let _ = self.insert_with_guard(&keys[i], i as u64, g);
            },
        );
    }
    fn remove_all(&self, keys: &[[u8; 8]], order: &[usize]) -> u64 {
        let mut sum = 0;
        in_batches(
            order,
            || self.guard(),
            |g, i| {
                // Retried while it reports a transient failure.
                sum += loop {
                    if let Ok(v) = self.remove_with_guard(&keys[i], g) {
                        break v.unwrap_or(0);
                    }
                };
            },
        );
        sum
    }
}

impl Map for scc::TreeIndex<u64, u64> {
    const NAME: &'static str = "scc::TreeIndex";
    fn new() -> Self {
        scc::TreeIndex::new()
    }
    fn load(&self, keys: &[[u8; 8]], order: &[usize]) {
        for &i in order {
            let _ = self.insert_sync(u64::from_be_bytes(keys[i]), i as u64);
        }
    }
    fn remove_all(&self, keys: &[[u8; 8]], order: &[usize]) -> u64 {
        let mut sum = 0;
        for &i in order {
            let mut old = 0;
            self.remove_if_sync(&u64::from_be_bytes(keys[i]), |v| {
                old = *v;
                true
            });
            sum += old;
        }
        sum
    }
}

impl Map for crossbeam_skiplist::SkipMap<u64, u64> {
    const NAME: &'static str = "crossbeam SkipMap";
    fn new() -> Self {
        crossbeam_skiplist::SkipMap::new()
    }
    fn load(&self, keys: &[[u8; 8]], order: &[usize]) {
        for &i in order {
            self.insert(u64::from_be_bytes(keys[i]), i as u64);
        }
    }
    fn remove_all(&self, keys: &[[u8; 8]], order: &[usize]) -> u64 {
        let mut sum = 0;
        for &i in order {
            if let Some(e) = self.remove(&u64::from_be_bytes(keys[i])) {
                sum += *e.value();
            }
        }
        sum
    }
}

/// Loads, removes everything, drops; prints one table row.
fn measure<M: Map>(keys: &[[u8; 8]], load_order: &[usize], remove_order: &[usize]) {
    let base = live();
    let map = M::new();
    map.load(keys, load_order);
    let loaded = live() - base;
    let sum = map.remove_all(keys, remove_order);
    let want: u64 = (0..keys.len() as u64).sum();
    assert_eq!(sum, want, "{}: remove returned other values", M::NAME);
    let removed = live().saturating_sub(base);
    drop(map);
    let dropped = live().saturating_sub(base);
    let n = keys.len() as f64;
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "| {:<28} | {:>9.1} | {:>12.1} | {:>22.2} | {:>16.2} |",
        M::NAME,
        loaded as f64 / n,
        mib(loaded),
        mib(removed),
        mib(dropped),
    );
}

fn main() {
    let n: usize = std::env::var("N").map_or(1_000_000, |s| {
        s.replace('_', "").parse().expect("N: a number of keys")
    });
    let mut rng = Rng::new(0x6d65_6d6f_7279);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    while keys.len() < n {
        let k = rng.next_u64();
        if seen.insert(k) {
            keys.push(k.to_be_bytes());
        }
    }
    drop(seen);
    let load_order = rng.permutation(n);
    let remove_order = rng.permutation(n);
    println!("# Heap held: {n} random 8-byte keys, u64 values\n");
    println!(
        "| map                          | bytes/key | loaded (MiB) | after remove-all (MiB) | after drop (MiB) |"
    );
    println!(
        "|------------------------------|----------:|-------------:|-----------------------:|-----------------:|"
    );
    measure::<InlineMassTree<u64, SeizeBackend>>(&keys, &load_order, &remove_order);
    measure::<masstree_published::MassTree15Inline<u64>>(&keys, &load_order, &remove_order);
    measure::<scc::TreeIndex<u64, u64>>(&keys, &load_order, &remove_order);
    measure::<crossbeam_skiplist::SkipMap<u64, u64>>(&keys, &load_order, &remove_order);
}
