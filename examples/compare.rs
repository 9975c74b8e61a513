//! Throughput comparison of this crate against other ordered maps.
//!
//! ```text
//! cargo run --release --example compare
//! N=100000 RUNS=1 THREADS=1 cargo run --release --example compare   # quick
//! ```
//!
//! Systems, all on the same (system) global allocator:
//!
//! * this crate: `masstree::InlineMassTree<u64>`;
//! * the published `masstree` 0.9.5 (dev-dependency `masstree_published`):
//!   `MassTree15Inline<u64>` with `insert_with_guard` / `get_with_guard`;
//! * `scc::TreeIndex` (`insert_sync` / `peek`);
//! * `crossbeam_skiplist::SkipMap`;
//! * `std::collections::BTreeMap`: plain with 1 thread, `RwLock<BTreeMap>` with
//!   more (labelled so in the output).
//!
//! Workloads: each inserts `N` distinct keys (value = the key's index) into a
//! fresh map, then looks up all of them in a different (shuffled) order
//! ("get hit") and looks up `N` keys that are absent ("get miss"):
//!
//! * `rand8`: uniformly random 8-byte keys. The two masstrees take the bytes;
//!   the peers get their natural key type for 8-byte keys, a `u64` decoded
//!   big-endian (same order as the bytes).
//! * `paths`: path-like keys, 26-60 bytes, with long shared prefixes such as
//!   `stark-industries/users/0001234/billing/invoices/3fa9`. Misses are drawn
//!   from the same distribution. Peers store `Box<[u8]>` keys and look up with
//!   `&[u8]` (no allocation on lookups).
//!
//! Method:
//!
//! * With T threads each phase's key list is split into T contiguous equal
//!   shares, one per thread: inserts insert disjoint halves, and each get
//!   phase makes `N` lookups in total (each thread looks up its share). So
//!   Mops/s is always `N / wall time` of the phase.
//! * Guards: every thread takes a fresh guard per batch of
//!   `GUARD_BATCH` (1,000) operations, for every system that has guards (both
//!   masstrees: seize guards; `scc`: `scc::Guard` for `peek`). `SkipMap` pins
//!   its epoch internally per call, `BTreeMap` has none.
//! * Every run builds a fresh map for each system and times each phase; runs
//!   are interleaved (run 1 of every system, then run 2, ...; the system order
//!   rotates between runs) and the table reports the median of `RUNS` runs.
//! * Lookup results go through `std::hint::black_box`, hits are counted and
//!   their values summed: a phase that misses a present key, finds an absent
//!   one or returns a wrong value panics.
//!
//! Environment: `N` (keys, default 1,000,000), `RUNS` (default 5), `THREADS`
//! (comma-separated thread counts, default `1,2`). Table on stdout, progress on
//! stderr.
//!
//! Adding a workload: a key generator plus an entry in [`workloads`]. Adding an
//! operation kind (scan, remove, ...): a [`Bench`] method, an [`Op`] variant,
//! its arm in [`run_share`] and its check in [`Phase::check`].

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::io::Write as _;
use std::ops::Range;
use std::sync::{Barrier, RwLock};
use std::time::{Duration, Instant};

/// Operations per guard (per thread).
const GUARD_BATCH: usize = 1_000;

/// The column the ratios are computed against.
const BASELINE: &str = "masstree 0.9.5";

// ---------------------------------------------------------------------------
// The systems
// ---------------------------------------------------------------------------

/// One map under test. Keys always arrive as bytes; an implementation converts
/// them to its own key type inside the timed operation.
trait Bench {
    /// Name shown in the progress output.
    const NAME: &'static str;
    /// Per-thread guard, taken once per `GUARD_BATCH` operations.
    type Guard<'a>
    where
        Self: 'a;
    fn new() -> Self;
    fn guard(&self) -> Self::Guard<'_>;
    fn insert(&self, guard: &Self::Guard<'_>, key: &[u8], val: u64);
    fn get(&self, guard: &Self::Guard<'_>, key: &[u8]) -> Option<u64>;
}

/// This crate.
struct ThisCrate(masstree::InlineMassTree<u64>);

impl Bench for ThisCrate {
    const NAME: &'static str = "masstree (this crate)";
    type Guard<'a> = seize::LocalGuard<'a>;
    fn new() -> Self {
        Self(masstree::InlineMassTree::new())
    }
    fn guard(&self) -> Self::Guard<'_> {
        self.0.guard()
    }
    fn insert(&self, guard: &Self::Guard<'_>, key: &[u8], val: u64) {
        black_box(self.0.insert(key, val, guard));
    }
    fn get(&self, guard: &Self::Guard<'_>, key: &[u8]) -> Option<u64> {
        self.0.get(key, guard)
    }
}

/// The published `masstree` 0.9.5, through its public API only.
struct Published(masstree_published::MassTree15Inline<u64>);

impl Bench for Published {
    const NAME: &'static str = "masstree 0.9.5";
    type Guard<'a> = seize::LocalGuard<'a>;
    fn new() -> Self {
        Self(masstree_published::MassTree15Inline::new())
    }
    fn guard(&self) -> Self::Guard<'_> {
        self.0.guard()
    }
    fn insert(&self, guard: &Self::Guard<'_>, key: &[u8], val: u64) {
        black_box(self.0.insert_with_guard(key, val, guard));
    }
    fn get(&self, guard: &Self::Guard<'_>, key: &[u8]) -> Option<u64> {
        self.0.get_with_guard(key, guard)
    }
}

/// How the peers (which need an owned `Ord` key type) represent a workload's keys.
trait KeyRepr: 'static {
    /// Stored key type.
    type Owned: Ord + Clone + Send + Sync + Borrow<Self::Probe> + 'static;
    /// Lookup key type.
    type Probe: Ord + ?Sized;
    fn owned(key: &[u8]) -> Self::Owned;
    fn probe<R>(key: &[u8], f: impl FnOnce(&Self::Probe) -> R) -> R;
}

/// 8-byte keys as big-endian `u64`s (same order as the bytes).
struct U64Key;

impl KeyRepr for U64Key {
    type Owned = u64;
    type Probe = u64;
    fn owned(key: &[u8]) -> u64 {
        u64::from_be_bytes(key.try_into().expect("8-byte key"))
    }
    fn probe<R>(key: &[u8], f: impl FnOnce(&u64) -> R) -> R {
        f(&Self::owned(key))
    }
}

/// Variable-length keys as boxed byte strings, looked up by `&[u8]`.
struct BytesKey;

impl KeyRepr for BytesKey {
    type Owned = Box<[u8]>;
    type Probe = [u8];
    fn owned(key: &[u8]) -> Box<[u8]> {
        key.into()
    }
    fn probe<R>(key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
        f(key)
    }
}

struct SccTree<R: KeyRepr>(scc::TreeIndex<R::Owned, u64>);

impl<R: KeyRepr> Bench for SccTree<R> {
    const NAME: &'static str = "scc::TreeIndex";
    type Guard<'a> = scc::Guard;
    fn new() -> Self {
        Self(scc::TreeIndex::new())
    }
    fn guard(&self) -> scc::Guard {
        scc::Guard::new()
    }
    fn insert(&self, _: &scc::Guard, key: &[u8], val: u64) {
        black_box(self.0.insert_sync(R::owned(key), val).is_ok());
    }
    fn get(&self, guard: &scc::Guard, key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.peek(k, guard).copied())
    }
}

struct SkipMap<R: KeyRepr>(crossbeam_skiplist::SkipMap<R::Owned, u64>);

impl<R: KeyRepr> Bench for SkipMap<R> {
    const NAME: &'static str = "crossbeam SkipMap";
    type Guard<'a> = ();
    fn new() -> Self {
        Self(crossbeam_skiplist::SkipMap::new())
    }
    fn guard(&self) {}
    fn insert(&self, (): &(), key: &[u8], val: u64) {
        black_box(self.0.insert(R::owned(key), val));
    }
    fn get(&self, (): &(), key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.get(k).map(|e| *e.value()))
    }
}

/// Single-threaded only.
struct StdBTree<R: KeyRepr>(RefCell<BTreeMap<R::Owned, u64>>);

impl<R: KeyRepr> Bench for StdBTree<R> {
    const NAME: &'static str = "BTreeMap";
    type Guard<'a> = ();
    fn new() -> Self {
        Self(RefCell::new(BTreeMap::new()))
    }
    fn guard(&self) {}
    fn insert(&self, (): &(), key: &[u8], val: u64) {
        black_box(self.0.borrow_mut().insert(R::owned(key), val));
    }
    fn get(&self, (): &(), key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.borrow().get(k).copied())
    }
}

/// `BTreeMap` for more than one thread.
struct LockedBTree<R: KeyRepr>(RwLock<BTreeMap<R::Owned, u64>>);

impl<R: KeyRepr> Bench for LockedBTree<R> {
    const NAME: &'static str = "RwLock<BTreeMap>";
    type Guard<'a> = ();
    fn new() -> Self {
        Self(RwLock::new(BTreeMap::new()))
    }
    fn guard(&self) {}
    fn insert(&self, (): &(), key: &[u8], val: u64) {
        black_box(self.0.write().unwrap().insert(R::owned(key), val));
    }
    fn get(&self, (): &(), key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.read().unwrap().get(k).copied())
    }
}

/// A system as the driver sees it: a table column and a monomorphized runner.
struct System {
    name: &'static str,
    column: &'static str,
    /// Which thread counts it runs at.
    threads: fn(usize) -> bool,
    /// Runs every phase of the workload on a fresh map; Mops/s per phase.
    run: fn(&Workload, usize) -> Vec<f64>,
}

fn concurrent<B: Bench + Sync>(column: &'static str) -> System {
    System {
        name: B::NAME,
        column,
        threads: |_| true,
        run: |w, threads| measure::<B>(w, threads, Some(on_threads::<B>)),
    }
}

fn single_threaded<B: Bench>(column: &'static str) -> System {
    System {
        name: B::NAME,
        column,
        threads: |t| t == 1,
        run: |w, threads| measure::<B>(w, threads, None),
    }
}

/// All systems, with the peers' keys represented by `R`.
fn systems<R: KeyRepr>() -> Vec<System> {
    const BTREE: &str = "std BTreeMap*";
    let mut all = vec![
        concurrent::<ThisCrate>("this crate"),
        concurrent::<Published>(BASELINE),
        concurrent::<SccTree<R>>("scc TreeIndex"),
        concurrent::<SkipMap<R>>("SkipMap"),
        single_threaded::<StdBTree<R>>(BTREE),
        concurrent::<LockedBTree<R>>(BTREE),
    ];
    all.last_mut().unwrap().threads = |t| t > 1;
    all
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/// A list of keys stored back to back.
#[derive(Default)]
struct Keys {
    bytes: Vec<u8>,
    /// Key `i` is `bytes[bounds[i]..bounds[i + 1]]`.
    bounds: Vec<usize>,
}

impl Keys {
    fn push(&mut self, key: &[u8]) {
        if self.bounds.is_empty() {
            self.bounds.push(0);
        }
        self.bytes.extend_from_slice(key);
        self.bounds.push(self.bytes.len());
    }
    fn len(&self) -> usize {
        self.bounds.len().saturating_sub(1)
    }
    #[inline]
    fn get(&self, i: usize) -> &[u8] {
        &self.bytes[self.bounds[i]..self.bounds[i + 1]]
    }
    fn mean_len(&self) -> f64 {
        self.bytes.len() as f64 / self.len().max(1) as f64
    }
}

#[derive(Clone, Copy)]
enum Op {
    Insert,
    /// `hit`: every key is present (with its expected value), else every key is absent.
    Get {
        hit: bool,
    },
}

/// One timed pass over a key list.
struct Phase {
    name: &'static str,
    op: Op,
    keys: Keys,
    /// Value inserted with / expected for each key (unused for misses).
    vals: Vec<u64>,
}

/// What a share of a phase observed.
#[derive(Default, Clone, Copy)]
struct Tally {
    found: usize,
    sum: u64,
}

impl Tally {
    fn add(self, o: Tally) -> Tally {
        Tally {
            found: self.found + o.found,
            sum: self.sum.wrapping_add(o.sum),
        }
    }
}

impl Phase {
    /// Panics if the system did not do the work it was timed for.
    fn check(&self, t: Tally, system: &str) {
        match self.op {
            Op::Insert => {}
            Op::Get { hit: true } => {
                let sum = self.vals.iter().fold(0u64, |s, &v| s.wrapping_add(v));
                assert!(
                    t.found == self.keys.len() && t.sum == sum,
                    "{system}: {}: found {} of {} present keys (value sum {} vs {sum})",
                    self.name,
                    t.found,
                    self.keys.len(),
                    t.sum,
                );
            }
            Op::Get { hit: false } => {
                assert!(
                    t.found == 0,
                    "{system}: {}: found {} absent keys",
                    self.name,
                    t.found
                );
            }
        }
    }
}

struct Workload {
    name: &'static str,
    about: String,
    systems: fn() -> Vec<System>,
    phases: Vec<Phase>,
}

/// Insert `present` (value = index), get all of `present` in shuffled order, get all of `absent`.
fn insert_get_workload(
    name: &'static str,
    about: String,
    systems: fn() -> Vec<System>,
    present: Keys,
    absent: Keys,
    rng: &mut SplitMix64,
) -> Workload {
    let n = present.len();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut shuffled = Keys::default();
    for &i in &order {
        shuffled.push(present.get(i));
    }
    let phases = vec![
        Phase {
            name: "insert",
            op: Op::Insert,
            keys: present,
            vals: (0..n as u64).collect(),
        },
        Phase {
            name: "get hit",
            op: Op::Get { hit: true },
            keys: shuffled,
            vals: order.iter().map(|&i| i as u64).collect(),
        },
        Phase {
            name: "get miss",
            op: Op::Get { hit: false },
            keys: absent,
            vals: Vec::new(),
        },
    ];
    Workload {
        name,
        about,
        systems,
        phases,
    }
}

fn workloads(n: usize) -> Vec<Workload> {
    let mut rng = SplitMix64(0x6d61_7373_7472_6565);
    let mut all = Vec::new();

    let (present, absent) = distinct_keys(n, &mut rng, |rng, out| {
        out.extend_from_slice(&rng.next().to_be_bytes());
    });
    all.push(insert_get_workload(
        "rand8",
        "uniformly random 8-byte keys (peers: u64 keys)".into(),
        systems::<U64Key>,
        present,
        absent,
        &mut rng,
    ));

    let (present, absent) = distinct_keys(n, &mut rng, path_key((n / 64).max(1) as u64));
    let lens = (0..present.len()).map(|i| present.get(i).len());
    let (min, max) = (lens.clone().min().unwrap_or(0), lens.max().unwrap_or(0));
    let about = format!(
        "path-like keys, {min}-{max} bytes (mean {:.1}), long shared prefixes, e.g. {:?} (peers: Box<[u8]> keys)",
        present.mean_len(),
        String::from_utf8_lossy(present.get(0)),
    );
    all.push(insert_get_workload(
        "paths",
        about,
        systems::<BytesKey>,
        present,
        absent,
        &mut rng,
    ));

    all
}

/// `2 * n` distinct keys from `generate`: the first `n` to insert, the other `n` never inserted.
fn distinct_keys(
    n: usize,
    rng: &mut SplitMix64,
    mut generate: impl FnMut(&mut SplitMix64, &mut Vec<u8>),
) -> (Keys, Keys) {
    let mut seen = HashSet::with_capacity(2 * n);
    let (mut present, mut absent) = (Keys::default(), Keys::default());
    let mut key = Vec::new();
    while absent.len() < n {
        key.clear();
        generate(rng, &mut key);
        if seen.insert(key.clone()) {
            let dest = if present.len() < n {
                &mut present
            } else {
                &mut absent
            };
            dest.push(&key);
        }
    }
    (present, absent)
}

/// `"{tenant}/users/{user:07}/{section}/{hex id}"`, 26 to 60 bytes.
fn path_key(users: u64) -> impl FnMut(&mut SplitMix64, &mut Vec<u8>) {
    const TENANTS: [&str; 8] = [
        "acme",
        "globex-corp",
        "initech",
        "umbrella-intl",
        "hooli",
        "stark-industries",
        "wayne-ent",
        "cyberdyne",
    ];
    const SECTIONS: [&str; 6] = [
        "profile",
        "settings/notifications",
        "sessions",
        "billing/invoices",
        "posts",
        "friends",
    ];
    move |rng, out| {
        let tenant = TENANTS[rng.below(TENANTS.len() as u64) as usize];
        let user = rng.below(users);
        let section = SECTIONS[rng.below(SECTIONS.len() as u64) as usize];
        let digits = 1 + rng.below(6) as usize;
        let id = rng.below(1 << (4 * digits));
        write!(out, "{tenant}/users/{user:07}/{section}/{id:0digits$x}").unwrap();
    }
}

/// splitmix64: a bijective mix of a counter, so its first 2^64 outputs are distinct.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..bound` (multiply-shift; bias negligible here).
    fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

/// Work of one thread: (map, thread index) -> tally.
type Work<'a, B> = dyn Fn(&B, usize) -> Tally + Sync + 'a;

/// Runs `work` on `threads` threads started together; wall time from the start signal.
fn on_threads<B: Bench + Sync>(map: &B, threads: usize, work: &Work<'_, B>) -> (Duration, Tally) {
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    work(map, t)
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let tally = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold(Tally::default(), Tally::add);
        (began.elapsed(), tally)
    })
}

type Spawner<B> = fn(&B, usize, &Work<'_, B>) -> (Duration, Tally);

/// Builds a fresh `B` and times each phase of `w` on it; returns Mops/s per phase.
fn measure<B: Bench>(w: &Workload, threads: usize, spawn: Option<Spawner<B>>) -> Vec<f64> {
    let map = B::new();
    let rates = w
        .phases
        .iter()
        .map(|phase| {
            let n = phase.keys.len();
            let share = |t: usize| t * n / threads..(t + 1) * n / threads;
            let work = |map: &B, t: usize| run_share(map, phase, share(t));
            let (elapsed, tally) = if threads == 1 {
                let began = Instant::now();
                let tally = work(&map, 0);
                (began.elapsed(), tally)
            } else {
                spawn.expect("single-threaded system")(&map, threads, &work)
            };
            phase.check(tally, B::NAME);
            n as f64 / elapsed.as_secs_f64() / 1e6
        })
        .collect();
    drop(map); // untimed
    rates
}

/// One thread's share of a phase, with a fresh guard every `GUARD_BATCH` operations.
fn run_share<B: Bench>(map: &B, phase: &Phase, share: Range<usize>) -> Tally {
    let mut tally = Tally::default();
    let mut start = share.start;
    while start < share.end {
        let end = (start + GUARD_BATCH).min(share.end);
        let guard = map.guard();
        match phase.op {
            Op::Insert => {
                for i in start..end {
                    map.insert(&guard, phase.keys.get(i), phase.vals[i]);
                }
            }
            Op::Get { .. } => {
                for i in start..end {
                    if let Some(v) = black_box(map.get(&guard, phase.keys.get(i))) {
                        tally.found += 1;
                        tally.sum = tally.sum.wrapping_add(v);
                    }
                }
            }
        }
        start = end;
    }
    tally
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(s) => s
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={s}: not a number")),
        Err(_) => default,
    }
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// Medians of one (workload, thread count, phase): Mops/s per table column.
struct Row {
    label: String,
    cells: Vec<(&'static str, f64)>,
}

/// Runs every system of `w` with `threads` threads, `runs` times, interleaved.
fn bench_workload(w: &Workload, threads: usize, runs: usize) -> Vec<Row> {
    let systems: Vec<System> = (w.systems)()
        .into_iter()
        .filter(|s| (s.threads)(threads))
        .collect();
    // samples[system][phase] = Mops/s of each run
    let mut samples = vec![vec![Vec::new(); w.phases.len()]; systems.len()];
    for run in 0..runs {
        // Each run visits every system once; the starting system rotates.
        for k in 0..systems.len() {
            let i = (run + k) % systems.len();
            let rates = (systems[i].run)(w, threads);
            let shown: Vec<String> = w
                .phases
                .iter()
                .zip(&rates)
                .map(|(p, r)| format!("{} {r:.2}", p.name))
                .collect();
            eprintln!(
                "[{} T={threads} run {}/{runs}] {:<22} {} Mops/s",
                w.name,
                run + 1,
                systems[i].name,
                shown.join(", ")
            );
            for (p, r) in rates.into_iter().enumerate() {
                samples[i][p].push(r);
            }
        }
    }
    w.phases
        .iter()
        .enumerate()
        .map(|(p, phase)| Row {
            label: format!("| {:<8} | {threads} | {:<8} |", w.name, phase.name),
            cells: systems
                .iter()
                .zip(&mut samples)
                .map(|(s, per_phase)| (s.column, median(&mut per_phase[p])))
                .collect(),
        })
        .collect()
}

/// A markdown table: one column per system, cells `Mops/s (ratio to BASELINE)`.
fn print_table(rows: &[Row]) {
    const W: usize = 16;
    let mut columns: Vec<&str> = Vec::new();
    for &(c, _) in rows.iter().flat_map(|r| &r.cells) {
        if !columns.contains(&c) {
            columns.push(c);
        }
    }
    print!("| workload | T | op       |");
    for c in &columns {
        print!(" {c:>W$} |");
    }
    println!();
    print!("|----------|---|----------|");
    for _ in &columns {
        print!("{}:|", "-".repeat(W + 1));
    }
    println!();
    for row in rows {
        let find = |column: &str| row.cells.iter().find(|(c, _)| *c == column).map(|c| c.1);
        print!("{}", row.label);
        for &c in &columns {
            let cell = match (find(c), find(BASELINE)) {
                (None, _) => "-".to_string(),
                (Some(m), Some(base)) if c != BASELINE => format!("{m:.2} ({:.2}x)", m / base),
                (Some(m), _) => format!("{m:.2}"),
            };
            print!(" {cell:>W$} |");
        }
        println!();
    }
}

fn main() {
    let n = env_usize("N", 1_000_000).max(1);
    let runs = env_usize("RUNS", 5).max(1);
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

    eprintln!("generating keys (N = {n}) ...");
    let workloads = workloads(n);

    println!("# masstree compare: N = {n} keys, median of {runs} runs");
    println!();
    println!("Mops/s (higher is better), in parentheses the ratio to {BASELINE}.");
    println!(
        "insert: N new keys into an empty map; get hit: all N keys, shuffled order; get miss: N absent keys."
    );
    println!(
        "T threads: the keys of each phase are split into T equal shares, one per thread (N ops in total)."
    );
    println!(
        "Guards: one per thread per {GUARD_BATCH} ops (both masstrees, scc). System allocator for all. CPUs: {}.",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!("* std BTreeMap: plain with 1 thread, RwLock<BTreeMap> with more.");
    for w in &workloads {
        println!("{}: {}", w.name, w.about);
    }
    println!();

    let mut rows = Vec::new();
    for w in &workloads {
        for &threads in &thread_counts {
            rows.extend(bench_workload(w, threads, runs));
        }
    }
    print_table(&rows);
}
