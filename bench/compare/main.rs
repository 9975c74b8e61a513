//! Throughput comparison of this crate against other ordered maps, plus bulk
//! load and memory figures for this crate's backends.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml --bin compare          # the demo: about a minute on 2 cores
//! FULL=1 cargo run --release --manifest-path bench/Cargo.toml --bin compare   # the README's figures: N = 1M, 5 runs (~10 min)
//! cargo run --release --manifest-path bench/Cargo.toml --no-default-features --bin compare   # no arena/pool/huge-pages rows
//! N=100000 RUNS=1 THREADS=1 ONLY=rand8,scan cargo run --release --manifest-path bench/Cargo.toml --bin compare   # one corner
//! ```
//!
//! By default the sizes are small (`N` = 100,000, median of 3 runs, latency at 1M keys
//! only) so that a newcomer sees the tables in about a minute; `FULL=1` sets
//! the sizes the README's tables come from. Everything else (systems, key
//! sets, phases, checks) is the same in both.
//!
//! Systems in the throughput table, all on the same (system) global allocator:
//!
//! * this crate: `masstree::InlineMassTree<u64>` (seize backend); with feature
//!   `huge-pages` also on `SeizeBackend<HugePageSlabs>` ("this crate, huge
//!   pages"), whose slabs come from the same global allocator;
//! * the published `masstree` 0.9.5 (dependency `masstree_published`):
//!   `MassTree15Inline<u64>` with `insert_with_guard` / `get_with_guard` /
//!   `remove_with_guard` / `range`;
//! * `scc::TreeIndex` (`insert_sync` / `peek` / `remove_if_sync` / `range`);
//! * `crossbeam_skiplist::SkipMap`;
//! * `std::collections::BTreeMap`: plain with 1 thread, `RwLock<BTreeMap>` with
//!   more (labelled so in the output).
//!
//! Key sets (`N` keys to insert, `N / 2` more that `insert` never inserts):
//!
//! * `rand8`: uniformly random 8-byte keys. The two masstrees take the bytes;
//!   the peers get their natural key type for 8-byte keys, a `u64` decoded
//!   big-endian (same order as the bytes).
//! * `paths`: path-like keys, 26-60 bytes, with long shared prefixes such as
//!   `stark-industries/users/0001234/billing/invoices/3fa9`. Peers store
//!   `Box<[u8]>` keys and look up with `&[u8]` (no allocation on lookups).
//! * `prefix24`: 32-byte keys, one 24-byte prefix shared by all plus 8 random
//!   bytes. Peers store `[u8; 32]` keys.
//! * `usr`: real keys, the paths of everything under `/usr` on the machine
//!   running the benchmark (about 130,000 here), collected at start in
//!   random order: two thirds (at most `N`) inserted, the rest absent
//!   (at most `N / 2`). Peers store `Box<[u8]>` keys.
//!
//! Phases, run in this order on one fresh map per system and run:
//!
//! * `insert`: the `N` keys (value = the key's index), into an empty map;
//! * `get hit`: all `N` keys in a different (shuffled) order; `get miss`: the
//!   `N / 2` absent keys;
//! * `scan fwd` / `scan rev`: `N / 20` scans (or as many as the threads make
//!   in 1 s) of up to 100 entries from a random present key:
//!   each system's scan that lends keys instead of allocating them: ours
//!   `cursor.seek(start, Seek::Ge)` then `cursor.for_each_next(..)` (`Le`
//!   and `for_each_prev` backward); `masstree` 0.9.5 its fastest scans,
//!   `scan_intra_leaf_batch` and `scan_rev_batch` (keys lent to a callback,
//!   one validation per leaf); the peers their range iterators, which lend
//!   keys by reference (all have reverse ranges). `iter` uses the same calls
//!   from the ends. Rate: entries/s.
//! * `iter`: one iteration over all keys (with T threads: T disjoint key
//!   ranges, one per thread). Rate: entries/s.
//! * `mixed`: `N / 2` operations alternating a get of a present key and an
//!   insert of a new key (`N / 4` of the absent keys);
//! * `remove`: every key in the map (the `N` keys plus the `N / 4` that
//!   `mixed` added), shuffled; the map ends empty.
//!
//! (`get miss` and `mixed` make `N / 2` operations to keep a full run
//! under 20 minutes on 2 cores; rates are per operation.)
//!
//! Sections after the throughput table (this crate only):
//!
//! * bulk: per key set, the sorted keys inserted one by one into a seize-backed
//!   tree vs `Tree::from_sorted_in` (seize, and arena with feature `arena`),
//!   and `get hit` on each tree so built.
//! * memory: bytes per key after loading the `rand8` keys (inline `u64`
//!   values), counted by an `allocator_api2` allocator that adds up the bytes
//!   requested and not yet freed, for each backend (seize; seize on
//!   huge-page slabs, pool and arena with their features), loaded one by one
//!   and by bulk load. `masstree` 0.9.5
//!   takes no such allocator (its allocator parameter is its own node-level
//!   `TreeAllocator` trait), so it has no row.
//!
//! Method:
//!
//! * With T threads each phase's key list is split into T contiguous equal
//!   shares, one per thread, so Mops/s is always `ops / wall time` of the phase
//!   (entries for scans and iteration).
//! * Guards: every thread takes a fresh guard per batch of `GUARD_BATCH`
//!   (1,000) operations (a scan is one operation), for every system that has
//!   guards (both masstrees: seize guards; `scc`: `scc::Guard` for `peek` and
//!   `range`). `SkipMap` pins its epoch internally per call, `BTreeMap` has none.
//! * Runs are interleaved (run 1 of every system, then run 2, ...; the system
//!   order rotates between runs) and the tables report the median of `RUNS` runs.
//! * Every phase checks what it saw against what it must see: number of hits
//!   and the sum of their values; for scans and iteration also a
//!   position-weighted sum of the values, so an entry out of order or missing
//!   fails; inserts of new keys must find nothing (where the API says). The
//!   first scans of each scan phase are repeated untimed and their keys
//!   compared with the sorted key list (all of them when the sums differ, to
//!   name the first wrong scan). Bulk-loaded trees are checked by `len`, a full
//!   iteration and `get hit`; memory-section trees by `len`, a get of every key
//!   and 0 bytes left after drop. A wrong result shows as `wrong` in the table
//!   and is explained under it; if this crate had any, the program panics at
//!   the end, after printing every table (so one failure does not discard the
//!   other measurements).
//!
//! Environment: `SEIZE_BATCH` (this crate's seize retirement batch size,
//! default `DEFAULT_BATCH_SIZE`, 256, as `masstree` 0.9.5 uses),
//! `FULL` (set and not `0`: the full sizes below), `N` (keys, default
//! 100,000; full 1,000,000), `RUNS` (default 3; full 5), `LATENCY_N`
//! (comma-separated tree sizes of the latency section, default 1,000,000;
//! full `1000000,10000000`), `BATCH_N` (the same for the batched-gets
//! section), `THREADS`
//! (comma-separated thread counts, default `1,2`), `ONLY` (comma-separated
//! names, default everything): key sets `rand8`, `paths`, `prefix24`, `usr`; phase
//! groups `point` (insert/get hit/get miss), `scan` (scan fwd/scan rev/iter),
//! `mixed`, `remove`; sections `main` (the throughput table), `bulk`,
//! `memory`, `latency`, `batch` (batched gets, rand8 and paths only). Key sets not named: all of them; groups not named: all of them;
//! a group named implies `main`; no section or group named: all sections. The
//! insert phase always runs (it fills the map) but shows only with `point`.
//! Tables on stdout, progress on stderr.
//!
//! Adding a key set: a generator plus an arm in [`key_set`]. Adding an
//! operation kind: a [`Bench`] method, an [`Op`] variant, its arm in
//! [`run_share`] and a phase builder that computes its expected [`Tally`].

use std::time::{Duration, Instant};

#[path = "../../tests/common/alloc.rs"]
mod alloc;
mod batch;
mod bulk;
mod driver;
mod keys;
mod latency;
mod memory;
mod phases;
#[path = "../../tests/common/rng.rs"]
mod rng;
mod systems;

use batch::{bench_batch, print_batch_table};
use bulk::{bench_bulk, builds, print_bulk_table};
use driver::{Failures, bench_workload, env_usize, print_table};
use keys::key_set;
use latency::{bench_latency, print_latency_table};
use memory::{bench_memory, print_memory_table};
use phases::build_workload;
use rng::Rng;

/// Operations per guard (per thread).
const GUARD_BATCH: usize = 1_000;

/// Entries per scan.
const SCAN_LEN: usize = 100;

/// A scan phase makes `N / SCANS_PER` scans...
const SCANS_PER: usize = 20;

/// ...or as many as it can in this time (per phase and thread count): one
/// peer scans some key sets backward at a few hundred thousand entries/s.
const SCAN_BUDGET: Duration = Duration::from_secs(1);

/// The column the ratios are computed against.
const BASELINE: &str = "masstree 0.9.5";

/// All key sets, in the order they run.
const KEY_SETS: [&str; 4] = ["rand8", "paths", "prefix24", "usr"];

/// Sizes of a quick run (the default) and of the full one (`FULL=1`): keys,
/// runs, latency tree sizes.
const QUICK: (usize, usize, &str) = (100_000, 3, "1000000");
const FULL: (usize, usize, &str) = (1_000_000, 5, "1000000,10000000");

/// What `ONLY` selects.
struct Selection {
    key_sets: Vec<&'static str>,
    point: bool,
    scan: bool,
    mixed: bool,
    remove: bool,
    main: bool,
    bulk: bool,
    memory: bool,
    latency: bool,
    batch: bool,
}

fn selection() -> Selection {
    const GROUPS: [&str; 4] = ["point", "scan", "mixed", "remove"];
    const SECTIONS: [&str; 5] = ["main", "bulk", "memory", "latency", "batch"];
    let only = std::env::var("ONLY").unwrap_or_default();
    let names: Vec<&str> = only
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for name in &names {
        assert!(
            KEY_SETS.contains(name) || GROUPS.contains(name) || SECTIONS.contains(name),
            "ONLY: unknown name {name:?}; known: {KEY_SETS:?}, {GROUPS:?}, {SECTIONS:?}"
        );
    }
    let named = |list: &[&str]| names.iter().any(|n| list.contains(n));
    let pick = |name: &str, list: &[&str]| names.contains(&name) || !named(list);
    let any_section = named(&GROUPS) || named(&SECTIONS);
    Selection {
        key_sets: KEY_SETS
            .iter()
            .copied()
            .filter(|k| pick(k, &KEY_SETS))
            .collect(),
        point: pick("point", &GROUPS),
        scan: pick("scan", &GROUPS),
        mixed: pick("mixed", &GROUPS),
        remove: pick("remove", &GROUPS),
        main: !any_section || names.contains(&"main") || named(&GROUPS),
        bulk: !any_section || names.contains(&"bulk"),
        memory: !any_section || names.contains(&"memory"),
        latency: !any_section || names.contains(&"latency"),
        batch: !any_section || names.contains(&"batch"),
    }
}

/// A comma-separated list of key counts from the environment variable
/// `name`, or `default`.
fn sizes_var(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| {
            s.trim()
                .replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}: comma-separated key counts"))
        })
        .collect()
}

fn main() {
    let began = Instant::now();
    let full = std::env::var("FULL").is_ok_and(|v| v != "0");
    let (default_n, default_runs, default_latency) = if full { FULL } else { QUICK };
    let n = env_usize("N", default_n).max(1);
    let runs = env_usize("RUNS", default_runs).max(1);
    let thread_counts: Vec<usize> = std::env::var("THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .ok()
                .filter(|&t| t > 0)
                .expect("THREADS: comma-separated counts >= 1")
        })
        .collect();
    let sel = selection();

    println!("# masstree compare: N = {n} keys, median of {runs} runs");
    println!();
    println!(
        "CPUs: {}. System allocator for all. Guards: one per thread per {GUARD_BATCH} ops (both masstrees, scc).",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!(
        "T threads: the operations of each phase are split into T equal shares, one per thread."
    );
    let mut rows = Vec::new();
    let mut wrong = Failures::default();
    let mut bulk_rows = Vec::new();
    let mut memory_rows = None;
    let mut rng = Rng::new(0x0063_6f6d_7061_7265);
    for &name in &sel.key_sets {
        eprintln!("generating {name} keys (N = {n}) ...");
        let ks = key_set(name, n);
        println!("{}: {}", ks.name, ks.about);
        if sel.main {
            let w = build_workload(&ks, &sel, &mut rng);
            for &threads in &thread_counts {
                rows.extend(bench_workload(&w, threads, runs, &mut wrong));
            }
        }
        if sel.bulk {
            bulk_rows.extend(bench_bulk(&ks, &thread_counts, runs, &mut rng, &mut wrong));
        }
        if sel.memory && name == "rand8" {
            eprintln!("memory (rand8) ...");
            memory_rows = Some(bench_memory(&ks, &mut wrong));
        }
    }
    if sel.memory && memory_rows.is_none() {
        eprintln!("generating rand8 keys (N = {n}) for memory ...");
        memory_rows = Some(bench_memory(&key_set("rand8", n), &mut wrong));
    }

    let latency_rows = if sel.latency {
        bench_latency(&sizes_var("LATENCY_N", default_latency), runs.min(3))
    } else {
        Vec::new()
    };
    let mut batch_rows = Vec::new();
    if sel.batch {
        for &set in sel
            .key_sets
            .iter()
            .filter(|s| ["rand8", "paths"].contains(s))
        {
            for n in sizes_var("BATCH_N", default_latency) {
                batch_rows.push(bench_batch(set, n, runs.min(3), &mut rng));
            }
        }
    }

    if sel.main {
        println!();
        println!("## Throughput");
        println!();
        println!("Mops/s (higher is better), in parentheses the ratio to {BASELINE}.");
        println!(
            "insert: N new keys into an empty map; get hit: all N keys, shuffled; get miss: N/2 absent keys;"
        );
        println!(
            "scan fwd / scan rev: M entries/s (not scans/s) over N/{SCANS_PER} scans (or those done in {:?}) of {SCAN_LEN} entries from a random present key",
            SCAN_BUDGET
        );
        println!(
            "  (ours: cursor seek + for_each_next/for_each_prev; 0.9.5: scan_intra_leaf_batch/scan_rev_batch; peers: their range iterators; no system allocates per entry);"
        );
        println!(
            "iter: M entries/s, one iteration over all N keys (T threads: T disjoint key ranges);"
        );
        println!(
            "mixed: N/2 ops alternating get (present key) / insert (new key); remove: every key in the map (N + N/4), shuffled."
        );
        println!("* std BTreeMap: plain with 1 thread, RwLock<BTreeMap> with more.");
        println!();
        print_table(&rows);
        if !wrong.peers.is_empty() {
            println!();
            println!("wrong: the peer did not return what it must (first failure of each phase):");
            for e in &wrong.peers {
                println!("* {e}");
            }
        }
    }
    if sel.bulk {
        let per_set = builds().len();
        println!();
        println!("## Bulk load (this crate)");
        println!();
        println!(
            "Build: Mops/s building a tree of the N keys (sorted), one by one with insert or with Tree::from_sorted_in;"
        );
        println!(
            "get hit: Mops/s, all N keys shuffled, on the tree so built. In parentheses the ratio to \"seize: insert sorted\"."
        );
        #[cfg(not(feature = "arena"))]
        println!("Arena rows: n/a (build with --features arena).");
        println!();
        print_bulk_table(&bulk_rows, &thread_counts, per_set);
    }
    if let Some(rows) = memory_rows {
        println!();
        println!("## Bytes per key (this crate)");
        println!();
        println!(
            "rand8 keys (N = {n}, 8 bytes), inline u64 values (8 bytes): bytes requested from the backend's allocator and"
        );
        println!(
            "not freed, with the tree loaded, divided by N. Key + value alone: 16 bytes. The arena counts whole chunks."
        );
        println!();
        print_memory_table(&rows, n);
    }
    if sel.latency {
        println!();
        println!("## Cold cache lines per get (this crate)");
        println!();
        println!(
            "Random 8-byte keys inserted in random order (seize backend). Dependent gets: each key is picked by the value"
        );
        println!(
            "the previous get returned, so gets do not overlap. Cold: random keys among all; warm: one key over and over"
        );
        println!(
            "(its path stays in L1). DRAM load: a pointer chase through 256 MiB of cache lines in one random cycle."
        );
        println!(
            "DRAM loads per get: the cache-miss time of a get in units of one dependent DRAM load (L2/L3 hits count as fractions)."
        );
        println!(
            "get_batch 16: random keys among all, 16 per call (independent, so their misses overlap); its DRAM loads: (batched - warm) / DRAM. Medians of {} runs.",
            runs.min(3)
        );
        println!();
        print_latency_table(&latency_rows);
    }
    if !batch_rows.is_empty() {
        println!();
        println!("## Batched gets (this crate, 1 thread)");
        println!();
        println!(
            "Mops/s, every key looked up once in random order (probe keys stored contiguously in probe order);"
        );
        println!(
            "get_batch B: B keys per call, their descents interleaved; in parentheses the ratio to this crate's single get."
        );
        println!(
            "Peers (single gets): masstree 0.9.5 MassTree15Inline, BTreeMap (u64 keys for rand8, Box<[u8]> for paths)."
        );
        println!(
            "insert / insert_batch: Mops/s building a fresh tree of the keys in the same order, one by one or with insert_batch"
        );
        println!(
            "(in parentheses: its ratio to insert). Medians of {} runs, systems interleaved.",
            runs.min(3)
        );
        println!();
        print_batch_table(&batch_rows);
    }
    println!();
    println!("Total time: {:.0} s.", began.elapsed().as_secs_f64());
    if !wrong.ours.is_empty() {
        println!();
        println!("## WRONG results of this crate");
        println!();
        for e in &wrong.ours {
            println!("* {e}");
        }
        panic!(
            "this crate returned wrong results ({}); see the end of the output",
            wrong.ours.len()
        );
    }
}
