//! Profiling harness (untracked): single-thread `get` hit on random 8-byte keys.
//!
//! ```text
//! SYS=ours|pub|btree N=1000000 GETS=1 cargo run --release --example prof_get --all-features
//! ```
//!
//! Builds one map with `N` random 8-byte keys (value = index), then (unless
//! `GETS=0`) looks every key up once in shuffled order, one guard per 1000
//! gets, and prints ns/get. The get loop is `run_gets_*` (never inlined) so
//! callgrind can `--toggle-collect` it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::hint::black_box;
use std::time::Instant;

const GUARD_BATCH: usize = 1_000;

/// With `STATS=1`: live allocations by size (64-byte classes up to 1 KiB)
/// after the build, to count nodes. Off by default (one relaxed load per
/// allocation, none on the get path).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: [AtomicIsize; 17] = [const { AtomicIsize::new(0) }; 17];

fn class(size: usize) -> usize {
    size.div_ceil(64).min(16)
}

// SAFETY: forwards to `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE[class(l.size())].fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: caller's contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE[class(l.size())].fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: caller's contract.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn print_stats() {
    let live: Vec<String> = (1..17)
        .filter_map(|c| {
            let n = LIVE[c].load(Ordering::Relaxed);
            (n != 0).then(|| format!("<= {}B: {n}", c * 64))
        })
        .collect();
    println!("live allocations by size: {}", live.join(", "));
}

/// splitmix64, as in `compare.rs`.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, self.below(i as u64 + 1) as usize);
        }
        order
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|s| s.replace('_', "").parse().expect(name))
        .unwrap_or(default)
}

#[inline(never)]
fn run_gets_ours(tree: &masstree::InlineMassTree<u64>, keys: &[[u8; 8]], order: &[usize]) -> u64 {
    let mut sum = 0u64;
    for chunk in order.chunks(GUARD_BATCH) {
        let g = tree.guard();
        for &i in chunk {
            sum = sum.wrapping_add(tree.get(black_box(&keys[i][..]), &g).unwrap());
        }
    }
    sum
}

#[inline(never)]
fn run_gets_pub(
    tree: &masstree_published::MassTree15Inline<u64>,
    keys: &[[u8; 8]],
    order: &[usize],
) -> u64 {
    let mut sum = 0u64;
    for chunk in order.chunks(GUARD_BATCH) {
        let g = tree.guard();
        for &i in chunk {
            sum = sum.wrapping_add(tree.get_with_guard(black_box(&keys[i][..]), &g).unwrap());
        }
    }
    sum
}

#[inline(never)]
fn run_gets_btree(map: &BTreeMap<u64, u64>, keys: &[[u8; 8]], order: &[usize]) -> u64 {
    let mut sum = 0u64;
    for chunk in order.chunks(GUARD_BATCH) {
        for &i in chunk {
            // Bytes to u64 inside the timed op, as compare.rs does.
            let k = u64::from_be_bytes(*black_box(&keys[i]));
            sum = sum.wrapping_add(*map.get(&k).unwrap());
        }
    }
    sum
}

fn main() {
    let n = env_usize("N", 1_000_000);
    let gets = env_usize("GETS", 1) != 0;
    let sys = std::env::var("SYS").unwrap_or_else(|_| "ours".into());

    let mut rng = SplitMix64(0x5eed);
    // splitmix64 outputs are distinct, so the keys are.
    let keys: Vec<[u8; 8]> = (0..n).map(|_| rng.next().to_be_bytes()).collect();
    let order = rng.permutation(n);
    let expect: u64 = (0..n as u64).sum();
    let stats = env_usize("STATS", 0) != 0;
    COUNTING.store(stats, Ordering::Relaxed);

    let t = Instant::now();
    let (sum, build_ns) = match sys.as_str() {
        "ours" => {
            let tree = masstree::InlineMassTree::<u64>::new();
            for chunk in keys.chunks(GUARD_BATCH).enumerate() {
                let g = tree.guard();
                for (j, k) in chunk.1.iter().enumerate() {
                    tree.insert(&k[..], (chunk.0 * GUARD_BATCH + j) as u64, &g);
                }
            }
            let b = t.elapsed();
            let t = Instant::now();
            let s = if gets {
                run_gets_ours(&tree, &keys, &order)
            } else {
                expect
            };
            report(&sys, n, b, t.elapsed(), gets);
            (s, b)
        }
        "pub" => {
            let tree = masstree_published::MassTree15Inline::<u64>::new();
            for chunk in keys.chunks(GUARD_BATCH).enumerate() {
                let g = tree.guard();
                for (j, k) in chunk.1.iter().enumerate() {
                    tree.insert_with_guard(&k[..], (chunk.0 * GUARD_BATCH + j) as u64, &g);
                }
            }
            let b = t.elapsed();
            let t = Instant::now();
            let s = if gets {
                run_gets_pub(&tree, &keys, &order)
            } else {
                expect
            };
            report(&sys, n, b, t.elapsed(), gets);
            (s, b)
        }
        "btree" => {
            let mut map = BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                map.insert(u64::from_be_bytes(*k), i as u64);
            }
            let b = t.elapsed();
            let t = Instant::now();
            let s = if gets {
                run_gets_btree(&map, &keys, &order)
            } else {
                expect
            };
            report(&sys, n, b, t.elapsed(), gets);
            (s, b)
        }
        other => panic!("SYS={other}: expected ours, pub or btree"),
    };
    let _ = build_ns;
    assert_eq!(black_box(sum), expect, "wrong sum");
}

fn report(sys: &str, n: usize, build: std::time::Duration, get: std::time::Duration, gets: bool) {
    if COUNTING.swap(false, Ordering::Relaxed) {
        print_stats();
    }
    let b = build.as_nanos() as f64 / n as f64;
    if gets {
        let g = get.as_nanos() as f64 / n as f64;
        println!("{sys}: N={n} build {b:.1} ns/insert, get hit {g:.1} ns/op");
    } else {
        println!("{sys}: N={n} build {b:.1} ns/insert (no gets)");
    }
}
