//! Throughput comparison of this crate against other ordered maps, plus bulk
//! load and memory figures for this crate's backends.
//!
//! ```text
//! cargo run --release --example compare --all-features           # everything
//! cargo run --release --example compare                          # no arena/pool/huge-pages rows
//! N=100000 RUNS=1 THREADS=1 ONLY=rand8,scan cargo run --release --example compare   # quick
//! ```
//!
//! Systems in the throughput table, all on the same (system) global allocator:
//!
//! * this crate: `masstree::InlineMassTree<u64>` (seize backend); with feature
//!   `huge-pages` also on `SeizeBackend<HugePageSlabs>` ("this crate, huge
//!   pages"), whose slabs come from the same global allocator;
//! * the published `masstree` 0.9.5 (dev-dependency `masstree_published`):
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
//! (`get miss` and `mixed` make `N / 2` operations to keep a default run
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
//! `N` (keys, default 1,000,000), `RUNS` (default 5), `THREADS`
//! (comma-separated thread counts, default `1,2`), `ONLY` (comma-separated
//! names, default everything): key sets `rand8`, `paths`, `prefix24`, `usr`; phase
//! groups `point` (insert/get hit/get miss), `scan` (scan fwd/scan rev/iter),
//! `mixed`, `remove`; sections `main` (the throughput table), `bulk`,
//! `memory`. Key sets not named: all of them; groups not named: all of them;
//! a group named implies `main`; no section or group named: all sections. The
//! insert phase always runs (it fills the map) but shows only with `point`.
//! Tables on stdout, progress on stderr.
//!
//! Adding a key set: a generator plus an arm in [`key_set`]. Adding an
//! operation kind: a [`Bench`] method, an [`Op`] variant, its arm in
//! [`run_share`] and a phase builder that computes its expected [`Tally`].

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::io::Write as _;
use std::ops::{Bound, ControlFlow, Range};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, RwLock};
use std::time::{Duration, Instant};

#[cfg(feature = "arena")]
use masstree::alloc_backends::arena::ArenaBackend;
#[cfg(feature = "huge-pages")]
use masstree::alloc_backends::huge_pages::HugePageSlabs;
#[cfg(feature = "pool")]
use masstree::alloc_backends::pool::PoolBackend;
use masstree::alloc_backends::seize::SeizeBackend;
use masstree::allocator_api2::alloc::{AllocError, Allocator, Global};
use masstree::backend::NodeAllocatorGeneric;
use masstree::{InlineMassTree, Seek};

#[path = "common/splitmix.rs"]
mod splitmix;
use splitmix::SplitMix64;

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
    /// Inserts or replaces; true if the key was there (false where the API
    /// does not tell).
    fn insert(&self, guard: &Self::Guard<'_>, key: &[u8], val: u64) -> bool;
    fn get(&self, guard: &Self::Guard<'_>, key: &[u8]) -> Option<u64>;
    fn remove(&self, guard: &Self::Guard<'_>, key: &[u8]) -> Option<u64>;
    /// Calls `f` on up to `limit` entries of the key range `(lo, hi)`, in
    /// key order, or from the top down if `rev`.
    fn scan(
        &self,
        guard: &Self::Guard<'_>,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        limit: usize,
        f: impl FnMut(&[u8], u64),
    );
}

/// The first `limit` items of `it`, from the back if `rev`.
fn visit<I: DoubleEndedIterator>(it: I, rev: bool, limit: usize, f: impl FnMut(I::Item)) {
    if rev {
        it.rev().take(limit).for_each(f);
    } else {
        it.take(limit).for_each(f);
    }
}

/// This crate, on backend `A`.
struct Ours<A: NodeAllocatorGeneric>(InlineMassTree<u64, A>);

/// This crate as the throughput table runs it.
type ThisCrate = Ours<SeizeBackend>;

/// How the benchmark builds a backend of this crate: its default, except that
/// `SEIZE_BATCH` sets the seize backend's retirement batch size.
trait BenchBackend: NodeAllocatorGeneric + Sized {
    /// Name shown in the progress output.
    const NAME: &'static str = "masstree (this crate)";
    fn bench_new() -> Self;
}

/// The seize backend on `alloc`, with `SEIZE_BATCH` applied.
fn bench_seize<A: Allocator>(alloc: A) -> SeizeBackend<A> {
    match env_usize("SEIZE_BATCH", 0) {
        0 => SeizeBackend::new_in(alloc),
        n => SeizeBackend::new_in(alloc).with_batch_size(n),
    }
}

impl BenchBackend for SeizeBackend {
    fn bench_new() -> Self {
        bench_seize(Global)
    }
}

#[cfg(feature = "huge-pages")]
impl BenchBackend for SeizeBackend<HugePageSlabs> {
    const NAME: &'static str = "masstree (this crate), huge-page slabs";
    fn bench_new() -> Self {
        bench_seize(HugePageSlabs::new())
    }
}

#[cfg(feature = "pool")]
impl BenchBackend for PoolBackend {
    fn bench_new() -> Self {
        PoolBackend::default()
    }
}

#[cfg(feature = "arena")]
impl BenchBackend for ArenaBackend {
    fn bench_new() -> Self {
        ArenaBackend::default()
    }
}

impl<A: BenchBackend> Bench for Ours<A> {
    const NAME: &'static str = A::NAME;
    type Guard<'a>
        = A::Guard<'a>
    where
        Self: 'a;
    fn new() -> Self {
        Self(InlineMassTree::new_in(A::bench_new()))
    }
    fn guard(&self) -> Self::Guard<'_> {
        self.0.guard()
    }
    fn insert(&self, guard: &Self::Guard<'_>, key: &[u8], val: u64) -> bool {
        self.0.insert(key, val, guard).is_some()
    }
    fn get(&self, guard: &Self::Guard<'_>, key: &[u8]) -> Option<u64> {
        self.0.get(key, guard)
    }
    fn remove(&self, guard: &Self::Guard<'_>, key: &[u8]) -> Option<u64> {
        self.0.remove(key, guard)
    }
    fn scan(
        &self,
        guard: &Self::Guard<'_>,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        limit: usize,
        mut f: impl FnMut(&[u8], u64),
    ) {
        // The cursor lends each key (no allocation per entry), as the peers'
        // scans do (`range` would copy each key into a `Vec`): the seek yields
        // the first entry, `for_each_next`/`for_each_prev` the rest.
        let mut c = self.0.cursor(guard);
        let (first, far) = if rev {
            let first = match hi {
                Bound::Included(k) => c.seek(k, Seek::Le),
                Bound::Excluded(k) => c.seek(k, Seek::Lt),
                Bound::Unbounded => c.seek_last(),
            };
            (first, lo)
        } else {
            let first = match lo {
                Bound::Included(k) => c.seek(k, Seek::Ge),
                Bound::Excluded(k) => c.seek(k, Seek::Gt),
                Bound::Unbounded => c.seek_first(),
            };
            (first, hi)
        };
        // Not past the far end: at most `hi` forward, at least `lo` back.
        let inside = |k: &[u8]| match (far, rev) {
            (Bound::Included(w), false) => k <= w,
            (Bound::Excluded(w), false) => k < w,
            (Bound::Included(w), true) => k >= w,
            (Bound::Excluded(w), true) => k > w,
            (Bound::Unbounded, _) => true,
        };
        let mut seen = 0;
        let mut visit = |k: &[u8], v: u64| {
            if seen == limit || !inside(k) {
                return ControlFlow::Break(());
            }
            f(k, v);
            seen += 1;
            ControlFlow::Continue(())
        };
        match first {
            Some((k, v)) if visit(k, v).is_continue() => {}
            _ => return,
        }
        let _ = if rev {
            c.for_each_prev(visit)
        } else {
            c.for_each_next(visit)
        };
    }
}

/// The published `masstree` 0.9.5, through its public API only.
struct Published(masstree_published::MassTree15Inline<u64>);

fn published_bound(b: Bound<&[u8]>) -> masstree_published::RangeBound<'_> {
    match b {
        Bound::Included(k) => masstree_published::RangeBound::Included(k),
        Bound::Excluded(k) => masstree_published::RangeBound::Excluded(k),
        Bound::Unbounded => masstree_published::RangeBound::Unbounded,
    }
}

impl Bench for Published {
    const NAME: &'static str = "masstree 0.9.5";
    type Guard<'a> = seize::LocalGuard<'a>;
    fn new() -> Self {
        Self(masstree_published::MassTree15Inline::new())
    }
    fn guard(&self) -> Self::Guard<'_> {
        self.0.guard()
    }
    fn insert(&self, guard: &Self::Guard<'_>, key: &[u8], val: u64) -> bool {
        self.0.insert_with_guard(key, val, guard).is_some()
    }
    fn get(&self, guard: &Self::Guard<'_>, key: &[u8]) -> Option<u64> {
        self.0.get_with_guard(key, guard)
    }
    fn remove(&self, guard: &Self::Guard<'_>, key: &[u8]) -> Option<u64> {
        // The only error is "retry limit exceeded": retry, as a caller would.
        loop {
            if let Ok(old) = self.0.remove_with_guard(key, guard) {
                return old;
            }
        }
    }
    fn scan(
        &self,
        guard: &Self::Guard<'_>,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        limit: usize,
        mut f: impl FnMut(&[u8], u64),
    ) {
        // Its fastest scans (one validation per leaf, keys lent to a callback).
        if limit == 0 {
            return;
        }
        let mut seen = 0;
        let visitor = |k: &[u8], v: u64| {
            f(k, v);
            seen += 1;
            seen < limit
        };
        let (lo, hi) = (published_bound(lo), published_bound(hi));
        if rev {
            self.0.scan_rev_batch(lo, hi, visitor, guard);
        } else {
            self.0.scan_intra_leaf_batch(lo, hi, visitor, guard);
        }
    }
}

/// How the peers (which need an owned `Ord` key type) represent a key set's keys.
trait KeyRepr: 'static {
    /// Stored key type.
    type Owned: Ord + Clone + Send + Sync + Borrow<Self::Probe> + 'static;
    /// Lookup key type.
    type Probe: Ord + ?Sized;
    fn owned(key: &[u8]) -> Self::Owned;
    fn probe<R>(key: &[u8], f: impl FnOnce(&Self::Probe) -> R) -> R;
    /// The range `(lo, hi)` in probe terms.
    fn bounds<R>(
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        f: impl FnOnce((Bound<&Self::Probe>, Bound<&Self::Probe>)) -> R,
    ) -> R;
    /// A stored key as bytes.
    fn bytes<R>(key: &Self::Owned, f: impl FnOnce(&[u8]) -> R) -> R;
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
    fn bounds<R>(
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        f: impl FnOnce((Bound<&u64>, Bound<&u64>)) -> R,
    ) -> R {
        let (lo, hi) = (lo.map(Self::owned), hi.map(Self::owned));
        f((lo.as_ref(), hi.as_ref()))
    }
    fn bytes<R>(key: &u64, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&key.to_be_bytes())
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
    fn bounds<R>(
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        f: impl FnOnce((Bound<&[u8]>, Bound<&[u8]>)) -> R,
    ) -> R {
        f((lo, hi))
    }
    fn bytes<R>(key: &Box<[u8]>, f: impl FnOnce(&[u8]) -> R) -> R {
        f(key)
    }
}

/// 32-byte keys as arrays.
struct Array32Key;

impl KeyRepr for Array32Key {
    type Owned = [u8; 32];
    type Probe = [u8; 32];
    fn owned(key: &[u8]) -> [u8; 32] {
        key.try_into().expect("32-byte key")
    }
    fn probe<R>(key: &[u8], f: impl FnOnce(&[u8; 32]) -> R) -> R {
        f(&Self::owned(key))
    }
    fn bounds<R>(
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        f: impl FnOnce((Bound<&[u8; 32]>, Bound<&[u8; 32]>)) -> R,
    ) -> R {
        let (lo, hi) = (lo.map(Self::owned), hi.map(Self::owned));
        f((lo.as_ref(), hi.as_ref()))
    }
    fn bytes<R>(key: &[u8; 32], f: impl FnOnce(&[u8]) -> R) -> R {
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
    fn insert(&self, _: &scc::Guard, key: &[u8], val: u64) -> bool {
        self.0.insert_sync(R::owned(key), val).is_err()
    }
    fn get(&self, guard: &scc::Guard, key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.peek(k, guard).copied())
    }
    fn remove(&self, _: &scc::Guard, key: &[u8]) -> Option<u64> {
        // `remove_sync` is `remove_if_sync(key, |_| true)`; this one also
        // reads the value.
        let mut old = None;
        let removed = R::probe(key, |k| {
            self.0.remove_if_sync(k, |v| {
                old = Some(*v);
                true
            })
        });
        old.filter(|_| removed)
    }
    fn scan(
        &self,
        guard: &scc::Guard,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        limit: usize,
        mut f: impl FnMut(&[u8], u64),
    ) {
        R::bounds(lo, hi, |r| {
            let range = self.0.range::<R::Probe, _>(r, guard);
            visit(range, rev, limit, |(k, v)| R::bytes(k, |k| f(k, *v)));
        });
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
    fn insert(&self, (): &(), key: &[u8], val: u64) -> bool {
        // `insert` replaces and does not say whether the key was there.
        black_box(self.0.insert(R::owned(key), val));
        false
    }
    fn get(&self, (): &(), key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.get(k).map(|e| *e.value()))
    }
    fn remove(&self, (): &(), key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.remove(k).map(|e| *e.value()))
    }
    fn scan(
        &self,
        (): &(),
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        limit: usize,
        mut f: impl FnMut(&[u8], u64),
    ) {
        R::bounds(lo, hi, |r| {
            let range = self.0.range::<R::Probe, _>(r);
            visit(range, rev, limit, |e| {
                R::bytes(e.key(), |k| f(k, *e.value()))
            });
        });
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
    fn insert(&self, (): &(), key: &[u8], val: u64) -> bool {
        self.0.borrow_mut().insert(R::owned(key), val).is_some()
    }
    fn get(&self, (): &(), key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.borrow().get(k).copied())
    }
    fn remove(&self, (): &(), key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.borrow_mut().remove(k))
    }
    fn scan(
        &self,
        (): &(),
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        limit: usize,
        mut f: impl FnMut(&[u8], u64),
    ) {
        let map = self.0.borrow();
        R::bounds(lo, hi, |r| {
            let range = map.range::<R::Probe, _>(r);
            visit(range, rev, limit, |(k, v)| R::bytes(k, |k| f(k, *v)));
        });
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
    fn insert(&self, (): &(), key: &[u8], val: u64) -> bool {
        self.0.write().unwrap().insert(R::owned(key), val).is_some()
    }
    fn get(&self, (): &(), key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.read().unwrap().get(k).copied())
    }
    fn remove(&self, (): &(), key: &[u8]) -> Option<u64> {
        R::probe(key, |k| self.0.write().unwrap().remove(k))
    }
    fn scan(
        &self,
        (): &(),
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
        rev: bool,
        limit: usize,
        mut f: impl FnMut(&[u8], u64),
    ) {
        let map = self.0.read().unwrap();
        R::bounds(lo, hi, |r| {
            let range = map.range::<R::Probe, _>(r);
            visit(range, rev, limit, |(k, v)| R::bytes(k, |k| f(k, *v)));
        });
    }
}

/// A system as the driver sees it: a table column and a monomorphized runner.
struct System {
    name: &'static str,
    column: &'static str,
    /// Which thread counts it runs at.
    threads: fn(usize) -> bool,
    /// Runs every phase of the workload on a fresh map; Mops/s per phase,
    /// or what was wrong.
    run: fn(&Workload<'_>, usize) -> Vec<Result<f64, String>>,
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
        concurrent::<ThisCrate>(OURS),
        #[cfg(feature = "huge-pages")]
        concurrent::<Ours<SeizeBackend<HugePageSlabs>>>(OURS_HUGE),
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
// Key sets
// ---------------------------------------------------------------------------

/// A list of keys stored back to back.
#[derive(Default, Clone)]
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
    /// The keys of `src` at `indices`, in that order.
    fn pick(src: &Keys, indices: impl IntoIterator<Item = usize>) -> Keys {
        let mut keys = Keys::default();
        for i in indices {
            keys.push(src.get(i));
        }
        keys
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

/// The keys of one key set; the value of `present[i]` is always `i`.
struct KeySet {
    name: &'static str,
    about: String,
    systems: fn() -> Vec<System>,
    present: Keys,
    /// `N / 2` keys never inserted by `insert`; `mixed` inserts the first half.
    absent: Keys,
    /// `present` in key order.
    sorted: Keys,
    /// The value (index in `present`) of each key of `sorted`.
    sorted_vals: Vec<u64>,
}

impl KeySet {
    fn len(&self) -> usize {
        self.present.len()
    }
    /// The rank in key order of each key of `present`.
    fn ranks(&self) -> Vec<u32> {
        let mut rank = vec![0u32; self.len()];
        for (r, &i) in self.sorted_vals.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        rank
    }
}

/// The key set `name` with `n` keys (and `n / 2` absent ones), the same on every run.
fn key_set(name: &'static str, n: usize) -> KeySet {
    type Pair = (Keys, Keys);
    let (about, systems, (present, absent)): (String, fn() -> Vec<System>, Pair) = match name {
        "rand8" => {
            let mut rng = SplitMix64(0x6d61_7373_7472_6565);
            let keys = distinct_keys(n, &mut rng, |rng, out| {
                out.extend_from_slice(&rng.next().to_be_bytes());
            });
            (
                "uniformly random 8-byte keys (peers: u64 keys)".into(),
                systems::<U64Key>,
                keys,
            )
        }
        "paths" => {
            let mut rng = SplitMix64(0x7061_7468_7331);
            let (present, absent) = distinct_keys(n, &mut rng, path_key((n / 64).max(1) as u64));
            let lens = (0..present.len()).map(|i| present.get(i).len());
            let (min, max) = (lens.clone().min().unwrap_or(0), lens.max().unwrap_or(0));
            let about = format!(
                "path-like keys, {min}-{max} bytes (mean {:.1}), long shared prefixes, e.g. {:?} (peers: Box<[u8]> keys)",
                present.mean_len(),
                String::from_utf8_lossy(present.get(0)),
            );
            (about, systems::<BytesKey>, (present, absent))
        }
        "prefix24" => {
            const PREFIX: &[u8; 24] = b"tenant-0042/orders/2024/";
            let mut rng = SplitMix64(0x7072_6566_6978_3234);
            let keys = distinct_keys(n, &mut rng, |rng, out| {
                out.extend_from_slice(PREFIX);
                out.extend_from_slice(&rng.next().to_be_bytes());
            });
            let about = format!(
                "32-byte keys: the 24-byte prefix {:?} shared by all, then 8 random bytes (peers: [u8; 32] keys)",
                String::from_utf8_lossy(PREFIX)
            );
            (about, systems::<Array32Key>, keys)
        }
        "usr" => {
            let (present, absent) = usr_paths(n, &mut SplitMix64(0x7573_722f));
            let about = format!(
                "the paths of the files and directories under /usr, collected now: {} to insert, {} absent, mean {:.1} bytes, e.g. {:?} (peers: Box<[u8]> keys)",
                present.len(),
                absent.len(),
                present.mean_len(),
                String::from_utf8_lossy(present.get(0)),
            );
            (about, systems::<BytesKey>, (present, absent))
        }
        _ => unreachable!("unknown key set {name}"),
    };
    let mut order: Vec<usize> = (0..present.len()).collect();
    order.sort_unstable_by(|&a, &b| present.get(a).cmp(present.get(b)));
    KeySet {
        name,
        about,
        systems,
        sorted: Keys::pick(&present, order.iter().copied()),
        sorted_vals: order.iter().map(|&i| i as u64).collect(),
        present,
        absent,
    }
}

/// `n + max(n / 2, 1)` distinct keys from `generate`: the first `n` to
/// insert, the others absent.
fn distinct_keys(
    n: usize,
    rng: &mut SplitMix64,
    mut generate: impl FnMut(&mut SplitMix64, &mut Vec<u8>),
) -> (Keys, Keys) {
    let absent_n = (n / 2).max(1);
    let mut seen = HashSet::with_capacity(n + absent_n);
    let (mut present, mut absent) = (Keys::default(), Keys::default());
    let mut key = Vec::new();
    while absent.len() < absent_n {
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

/// Real keys: the paths under `/usr` (not following symbolic links), in
/// random order; two thirds (at most `n`) to insert, the rest absent.
fn usr_paths(n: usize, rng: &mut SplitMix64) -> (Keys, Keys) {
    use std::os::unix::ffi::OsStrExt;
    let mut all: Vec<Vec<u8>> = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("/usr")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path.clone());
            }
            all.push(path.as_os_str().as_bytes().to_vec());
        }
    }
    assert!(all.len() >= 3, "usr: fewer than 3 paths under /usr");
    let order = rng.permutation(all.len());
    let present_n = (all.len() * 2 / 3).min(n);
    let absent_n = (all.len() - present_n).min((n / 2).max(1));
    let (mut present, mut absent) = (Keys::default(), Keys::default());
    for (i, &j) in order.iter().enumerate().take(present_n + absent_n) {
        if i < present_n {
            present.push(&all[j]);
        } else {
            absent.push(&all[j]);
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

// ---------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Insert `keys[i]` with `vals[i]`.
    Insert,
    /// Look up `keys[i]`, expecting `vals[i]` if it is present.
    Get,
    /// Up to `SCAN_LEN` entries from `keys[i]` (`start..`, or `..=start` backward).
    Scan { rev: bool },
    /// The whole key set in order; with T threads, T disjoint key ranges.
    Iter,
    /// Even `i`: get `keys[i]` (present, `vals[i]`); odd `i`: insert `keys[i]` (new) with `vals[i]`.
    Mixed,
    /// Remove `keys[i]`, expecting `vals[i]`.
    Remove,
}

/// One timed pass.
struct Phase {
    name: &'static str,
    op: Op,
    /// Whether its row is shown (the insert that fills the map always runs).
    show: bool,
    keys: Keys,
    /// See [`Op`]; for scans, the rank of the start key.
    vals: Vec<u64>,
    /// What the phase must observe, summed over all shares.
    expect: Tally,
    /// Scans: what each scan must observe (a scan phase may stop early).
    per_op: Vec<Tally>,
}

/// What a share of a phase observed.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Tally {
    /// Hits (gets, removes, inserts that found the key) or entries (scans).
    found: usize,
    /// Sum of the values found.
    sum: u64,
    /// Scans: sum of (position in the scan or iteration) * value.
    wsum: u64,
}

impl Tally {
    fn add(self, o: Tally) -> Tally {
        Tally {
            found: self.found + o.found,
            sum: self.sum.wrapping_add(o.sum),
            wsum: self.wsum.wrapping_add(o.wsum),
        }
    }
    #[inline]
    fn hit(&mut self, v: u64) {
        self.found += 1;
        self.sum = self.sum.wrapping_add(v);
    }
    #[inline]
    fn entry(&mut self, pos: u64, v: u64) {
        self.hit(v);
        self.wsum = self.wsum.wrapping_add(pos.wrapping_mul(v));
    }
}

impl Phase {
    /// Operations in the phase (what the thread shares split).
    fn ops(&self, ks: &KeySet) -> usize {
        match self.op {
            Op::Iter => ks.len(),
            _ => self.keys.len(),
        }
    }
}

/// Hits on all of `vals`.
fn hits(vals: &[u64]) -> Tally {
    let mut t = Tally::default();
    vals.iter().for_each(|&v| t.hit(v));
    t
}

/// A key set with the phases to run on it.
struct Workload<'k> {
    ks: &'k KeySet,
    phases: Vec<Phase>,
}

/// Inserts every key of `ks`, in its order (values `0..n`).
fn insert_phase(ks: &KeySet, show: bool) -> Phase {
    Phase {
        name: "insert",
        op: Op::Insert,
        show,
        keys: ks.present.clone(),
        vals: (0..ks.len() as u64).collect(),
        expect: Tally::default(),
        per_op: Vec::new(),
    }
}

/// Gets every key of `ks` in shuffled order.
fn get_hit_phase(ks: &KeySet, rng: &mut SplitMix64) -> Phase {
    let order = rng.permutation(ks.len());
    let vals: Vec<u64> = order.iter().map(|&i| i as u64).collect();
    Phase {
        name: "get hit",
        op: Op::Get,
        show: true,
        keys: Keys::pick(&ks.present, order),
        expect: hits(&vals),
        vals,
        per_op: Vec::new(),
    }
}

fn get_miss_phase(ks: &KeySet) -> Phase {
    Phase {
        name: "get miss",
        op: Op::Get,
        show: true,
        keys: ks.absent.clone(),
        vals: vec![0; ks.absent.len()],
        expect: Tally::default(),
        per_op: Vec::new(),
    }
}

/// `N / SCANS_PER` scans from random present keys.
fn scan_phase(ks: &KeySet, rank: &[u32], rev: bool, rng: &mut SplitMix64) -> Phase {
    let n = ks.len();
    let starts: Vec<usize> = (0..(n / SCANS_PER).max(1))
        .map(|_| rng.below(n as u64) as usize)
        .collect();
    let mut per_op = Vec::with_capacity(starts.len());
    let mut vals = Vec::with_capacity(starts.len());
    for &i in &starts {
        let r = rank[i] as usize;
        vals.push(r as u64);
        let count = if rev { r + 1 } else { n - r }.min(SCAN_LEN);
        let mut expect = Tally::default();
        for j in 0..count {
            let at = if rev { r - j } else { r + j };
            expect.entry(j as u64, ks.sorted_vals[at]);
        }
        per_op.push(expect);
    }
    Phase {
        name: if rev { "scan rev" } else { "scan fwd" },
        op: Op::Scan { rev },
        show: true,
        keys: Keys::pick(&ks.present, starts),
        vals,
        expect: per_op.iter().fold(Tally::default(), |a, &t| a.add(t)),
        per_op,
    }
}

fn iter_phase(ks: &KeySet) -> Phase {
    let mut expect = Tally::default();
    for (r, &v) in ks.sorted_vals.iter().enumerate() {
        expect.entry(r as u64, v);
    }
    Phase {
        name: "iter",
        op: Op::Iter,
        show: true,
        keys: Keys::default(),
        vals: Vec::new(),
        expect,
        per_op: Vec::new(),
    }
}

/// Operations of `mixed` (`N / 2`), and keys it inserts (`N / 4`).
fn mixed_ops(ks: &KeySet) -> (usize, usize) {
    let ops = ks.absent.len();
    (ops, ops / 2)
}

/// `N / 2` operations: gets of present keys (shuffled) alternating with
/// inserts of `absent[..N / 4]` (value `N + j` for `absent[j]`).
fn mixed_phase(ks: &KeySet, rng: &mut SplitMix64) -> Phase {
    let n = ks.len();
    let (ops, _) = mixed_ops(ks);
    let order = rng.permutation(n);
    let (mut keys, mut vals) = (Keys::default(), Vec::with_capacity(ops));
    for i in 0..ops {
        if i % 2 == 0 {
            keys.push(ks.present.get(order[i / 2]));
            vals.push(order[i / 2] as u64);
        } else {
            keys.push(ks.absent.get(i / 2));
            vals.push((n + i / 2) as u64);
        }
    }
    let gets: Vec<u64> = vals.iter().step_by(2).copied().collect();
    Phase {
        name: "mixed",
        op: Op::Mixed,
        show: true,
        keys,
        expect: hits(&gets),
        vals,
        per_op: Vec::new(),
    }
}

/// Removes every key of `ks` and, if `mixed` ran, the keys it inserted; shuffled.
fn remove_phase(ks: &KeySet, mixed: bool, rng: &mut SplitMix64) -> Phase {
    let n = ks.len();
    let total = n + if mixed { mixed_ops(ks).1 } else { 0 };
    let order = rng.permutation(total);
    let mut keys = Keys::default();
    for &id in &order {
        keys.push(if id < n {
            ks.present.get(id)
        } else {
            ks.absent.get(id - n)
        });
    }
    let vals: Vec<u64> = order.iter().map(|&id| id as u64).collect();
    Phase {
        name: "remove",
        op: Op::Remove,
        show: true,
        keys,
        expect: hits(&vals),
        vals,
        per_op: Vec::new(),
    }
}

fn build_workload<'k>(ks: &'k KeySet, sel: &Selection, rng: &mut SplitMix64) -> Workload<'k> {
    let mut phases = vec![insert_phase(ks, sel.point)];
    if sel.point {
        phases.push(get_hit_phase(ks, rng));
        phases.push(get_miss_phase(ks));
    }
    if sel.scan {
        let rank = ks.ranks();
        phases.push(scan_phase(ks, &rank, false, rng));
        phases.push(scan_phase(ks, &rank, true, rng));
        phases.push(iter_phase(ks));
    }
    if sel.mixed {
        phases.push(mixed_phase(ks, rng));
    }
    if sel.remove {
        phases.push(remove_phase(ks, sel.mixed, rng));
    }
    Workload { ks, phases }
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

/// Work of one thread: (map, thread index) -> (tally, operations done).
type Work<'a, B> = dyn Fn(&B, usize) -> (Tally, usize) + Sync + 'a;

/// Runs `work` on `threads` threads started together; wall time from the
/// first thread's start to the last thread's end (each thread reads the clock
/// itself, so a late main thread does not shorten it), and each thread's result.
fn on_threads<B: Bench + Sync>(
    map: &B,
    threads: usize,
    work: &Work<'_, B>,
) -> (Duration, Vec<(Tally, usize)>) {
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    let result = work(map, t);
                    (began, Instant::now(), result)
                })
            })
            .collect();
        let done: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let began = done.iter().map(|d| d.0).min().expect("a thread");
        let ended = done.iter().map(|d| d.1).max().expect("a thread");
        (ended - began, done.into_iter().map(|d| d.2).collect())
    })
}

type Spawner<B> = fn(&B, usize, &Work<'_, B>) -> (Duration, Vec<(Tally, usize)>);

/// Builds a fresh `B` and times each phase of `w` on it; returns Mops/s per
/// phase, or what was wrong.
fn measure<B: Bench>(
    w: &Workload<'_>,
    threads: usize,
    spawn: Option<Spawner<B>>,
) -> Vec<Result<f64, String>> {
    let map = B::new();
    let rates = w
        .phases
        .iter()
        .map(|phase| time_phase(&map, w.ks, phase, threads, spawn))
        .collect();
    drop(map); // untimed
    rates
}

/// Times one phase on `map` and checks it; Mops/s (entries/s for scans), or
/// what was wrong.
fn time_phase<B: Bench>(
    map: &B,
    ks: &KeySet,
    phase: &Phase,
    threads: usize,
    spawn: Option<Spawner<B>>,
) -> Result<f64, String> {
    let n = phase.ops(ks);
    let share = |t: usize| t * n / threads..(t + 1) * n / threads;
    let deadline = matches!(phase.op, Op::Scan { .. }).then(|| Instant::now() + SCAN_BUDGET);
    let work = |map: &B, t: usize| run_share(map, ks, phase, share(t), deadline);
    let (elapsed, results) = if threads == 1 {
        let began = Instant::now();
        let result = work(map, 0);
        (began.elapsed(), vec![result])
    } else {
        spawn.expect("single-threaded system")(map, threads, &work)
    };
    let tally = results.iter().fold(Tally::default(), |a, r| a.add(r.0));
    // What the operations done must have observed.
    let expect = if phase.per_op.is_empty() {
        phase.expect
    } else {
        results
            .iter()
            .enumerate()
            .flat_map(|(t, &(_, done))| &phase.per_op[share(t).start..][..done])
            .fold(Tally::default(), |a, &e| a.add(e))
    };
    if let Op::Scan { rev } = phase.op {
        // Untimed: the first scans again, keys compared; on a bad tally, more
        // (to name the first wrong one).
        let count = if tally == expect { 20 } else { 5_000 };
        if let Some(wrong) = scan_mismatch(map, ks, phase, rev, count) {
            return Err(wrong);
        }
    }
    if tally != expect {
        return Err(format!("observed {tally:?}, expected {expect:?}"));
    }
    let done = match phase.op {
        Op::Scan { .. } | Op::Iter => tally.found,
        _ => n,
    };
    Ok(done as f64 / elapsed.as_secs_f64() / 1e6)
}

/// Repeats the first `count` scans of a scan phase, untimed, and compares
/// their keys with the sorted key list; describes the first that differs.
fn scan_mismatch<B: Bench>(
    map: &B,
    ks: &KeySet,
    phase: &Phase,
    rev: bool,
    count: usize,
) -> Option<String> {
    let guard = map.guard();
    let show = |k: &[u8]| format!("{:?}", String::from_utf8_lossy(k));
    for i in 0..phase.keys.len().min(count) {
        let start = phase.keys.get(i);
        let r = phase.vals[i] as usize;
        let (lo, hi) = scan_bounds(start, rev);
        let mut got = Vec::new();
        map.scan(&guard, lo, hi, rev, SCAN_LEN, |k, _| got.push(k.to_vec()));
        let len = if rev { r + 1 } else { ks.len() - r }.min(SCAN_LEN);
        let want: Vec<&[u8]> = (0..len)
            .map(|j| ks.sorted.get(if rev { r - j } else { r + j }))
            .collect();
        if got != want {
            let at = got.iter().zip(&want).take_while(|(g, w)| g == w).count();
            return Some(format!(
                "scan from {} yields {} keys (want {}); entry {at} is {} (want {})",
                show(start),
                got.len(),
                want.len(),
                got.get(at).map_or("none".into(), |k| show(k)),
                want.get(at).map_or("none".into(), |k| show(k)),
            ));
        }
    }
    None
}

/// `start..` or, backward, `..=start`.
fn scan_bounds(start: &[u8], rev: bool) -> (Bound<&[u8]>, Bound<&[u8]>) {
    if rev {
        (Bound::Unbounded, Bound::Included(start))
    } else {
        (Bound::Included(start), Bound::Unbounded)
    }
}

/// One thread's share of a phase, with a fresh guard every `GUARD_BATCH`
/// operations, stopping at `deadline` if any; what it observed and how many
/// operations it did.
fn run_share<B: Bench>(
    map: &B,
    ks: &KeySet,
    phase: &Phase,
    share: Range<usize>,
    deadline: Option<Instant>,
) -> (Tally, usize) {
    let mut tally = Tally::default();
    let ops = share.len();
    if phase.op == Op::Iter {
        if share.is_empty() {
            return (tally, 0);
        }
        let n = ks.len();
        let lo = match share.start {
            0 => Bound::Unbounded,
            r => Bound::Included(ks.sorted.get(r)),
        };
        let hi = match share.end {
            r if r == n => Bound::Unbounded,
            r => Bound::Excluded(ks.sorted.get(r)),
        };
        let guard = map.guard();
        let mut pos = share.start as u64;
        map.scan(&guard, lo, hi, false, usize::MAX, |_, v| {
            tally.entry(pos, v);
            pos += 1;
        });
        return (tally, ops);
    }
    let mut start = share.start;
    while start < share.end {
        let end = (start + GUARD_BATCH).min(share.end);
        let guard = map.guard();
        let keys = &phase.keys;
        match phase.op {
            Op::Insert => {
                for i in start..end {
                    if map.insert(&guard, keys.get(i), phase.vals[i]) {
                        tally.found += 1;
                    }
                }
            }
            Op::Get => {
                for i in start..end {
                    if let Some(v) = black_box(map.get(&guard, keys.get(i))) {
                        tally.hit(v);
                    }
                }
            }
            Op::Remove => {
                for i in start..end {
                    if let Some(v) = black_box(map.remove(&guard, keys.get(i))) {
                        tally.hit(v);
                    }
                }
            }
            Op::Mixed => {
                for i in start..end {
                    if i % 2 == 0 {
                        if let Some(v) = black_box(map.get(&guard, keys.get(i))) {
                            tally.hit(v);
                        }
                    } else if map.insert(&guard, keys.get(i), phase.vals[i]) {
                        tally.found += 1;
                    }
                }
            }
            Op::Scan { rev } => {
                for i in start..end {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return (tally, i - share.start);
                    }
                    let (lo, hi) = scan_bounds(keys.get(i), rev);
                    let mut pos = 0;
                    map.scan(&guard, lo, hi, rev, SCAN_LEN, |_, v| {
                        tally.entry(pos, v);
                        pos += 1;
                    });
                }
            }
            Op::Iter => unreachable!(),
        }
        start = end;
    }
    (tally, ops)
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

/// The median; NaN (wrong) if any run was wrong.
fn median(xs: &mut [f64]) -> f64 {
    if xs.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// The column of this crate in the throughput table.
const OURS: &str = "this crate";
/// The column of this crate with its nodes in huge-page slabs (feature
/// `huge-pages`): the seize backend on `HugePageSlabs`.
const OURS_HUGE: &str = "this crate, huge pages";

/// Wrong results: shown as `wrong` in the tables and explained under them.
/// The program panics at the end, after printing every table, if this crate
/// had any.
#[derive(Default)]
struct Failures {
    ours: Vec<String>,
    peers: Vec<String>,
}

impl Failures {
    /// Records `what` failed with `error` (the first failure of each `what`).
    fn add(&mut self, ours: bool, what: String, error: &str) {
        eprintln!("WRONG: {what}: {error}");
        let list = if ours {
            &mut self.ours
        } else {
            &mut self.peers
        };
        if !list.iter().any(|x| x.starts_with(&format!("{what}: "))) {
            list.push(format!("{what}: {error}"));
        }
    }
}

/// Medians of one (key set, thread count, phase): Mops/s per table column
/// (NaN: wrong in some run).
struct Row {
    label: String,
    cells: Vec<(&'static str, f64)>,
}

/// Runs every system of `w` with `threads` threads, `runs` times, interleaved.
fn bench_workload(w: &Workload<'_>, threads: usize, runs: usize, wrong: &mut Failures) -> Vec<Row> {
    let systems: Vec<System> = (w.ks.systems)()
        .into_iter()
        .filter(|s| (s.threads)(threads))
        .collect();
    // samples[system][phase] = Mops/s of each run
    let mut samples = vec![vec![Vec::new(); w.phases.len()]; systems.len()];
    for run in 0..runs {
        // Each run visits every system once; the starting system rotates.
        for k in 0..systems.len() {
            let i = (run + k) % systems.len();
            let results = (systems[i].run)(w, threads);
            let mut rates = Vec::new();
            for (r, phase) in results.into_iter().zip(&w.phases) {
                rates.push(r.unwrap_or_else(|e| {
                    let what = format!(
                        "{} T={threads}: {}: {}",
                        w.ks.name, systems[i].name, phase.name
                    );
                    wrong.add([OURS, OURS_HUGE].contains(&systems[i].column), what, &e);
                    f64::NAN
                }));
            }
            let shown: Vec<String> = w
                .phases
                .iter()
                .zip(&rates)
                .map(|(p, r)| format!("{} {r:.2}", p.name))
                .collect();
            eprintln!(
                "[{} T={threads} run {}/{runs}] {:<22} {} Mops/s",
                w.ks.name,
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
        .filter(|(_, phase)| phase.show)
        .map(|(p, phase)| Row {
            label: format!("| {:<8} | {threads} | {:<8} |", w.ks.name, phase.name),
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
    print!("| key set  | T | op       |");
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
                (Some(m), _) if m.is_nan() => "wrong".to_string(),
                (Some(m), Some(base)) if c != BASELINE && !base.is_nan() => {
                    format!("{m:.2} ({:.2}x)", m / base)
                }
                (Some(m), _) => format!("{m:.2}"),
            };
            print!(" {cell:>W$} |");
        }
        println!();
    }
}

// ---------------------------------------------------------------------------
// Bulk load
// ---------------------------------------------------------------------------

/// Builds a tree of one key set one way (timed), checks it, times `get hit`
/// on it at each thread count: (build Mops/s, get Mops/s per thread count).
type Build = fn(&BulkInput<'_>, &[usize]) -> Result<(f64, Vec<f64>), String>;

/// What a build needs: the key set, its sorted keys as an insert phase, a
/// shuffled `get hit` phase and an `iter` phase (for checking).
struct BulkInput<'k> {
    ks: &'k KeySet,
    insert_sorted: Phase,
    get: Phase,
    iter: Phase,
}

/// The sorted keys inserted one by one into a tree on backend `A`.
fn insert_sorted<A: BenchBackend + Sync>(
    input: &BulkInput<'_>,
    threads: &[usize],
) -> Result<(f64, Vec<f64>), String> {
    let map = Ours::<A>::new();
    let rate = time_phase(&map, input.ks, &input.insert_sorted, 1, None)
        .map_err(|e| format!("insert: {e}"))?;
    let gets = check_and_get(&map, input, threads)?;
    Ok((rate, gets))
}

/// `Tree::from_sorted_in` on backend `A`.
fn bulk_load<A: BenchBackend + Sync>(
    input: &BulkInput<'_>,
    threads: &[usize],
) -> Result<(f64, Vec<f64>), String> {
    let ks = input.ks;
    let pairs = (0..ks.len()).map(|r| (ks.sorted.get(r), ks.sorted_vals[r]));
    let began = Instant::now();
    let tree = InlineMassTree::<u64, A>::from_sorted_in(A::bench_new(), pairs)
        .map_err(|e| format!("from_sorted_in: {e}"))?;
    let rate = ks.len() as f64 / began.elapsed().as_secs_f64() / 1e6;
    let gets = check_and_get(&Ours(tree), input, threads)?;
    Ok((rate, gets))
}

/// Checks that `map` holds exactly the key set, in order; times `get hit`.
fn check_and_get<A: BenchBackend + Sync>(
    map: &Ours<A>,
    input: &BulkInput<'_>,
    threads: &[usize],
) -> Result<Vec<f64>, String> {
    let ks = input.ks;
    if map.0.len() != ks.len() {
        return Err(format!("len() is {}, not {}", map.0.len(), ks.len()));
    }
    let (full, _) = run_share(map, ks, &input.iter, 0..ks.len(), None);
    if full != input.iter.expect {
        return Err(format!(
            "full iteration: observed {full:?}, expected {:?}",
            input.iter.expect
        ));
    }
    threads
        .iter()
        .map(|&t| {
            time_phase(map, ks, &input.get, t, Some(on_threads::<Ours<A>>))
                .map_err(|e| format!("get hit T={t}: {e}"))
        })
        .collect()
}

/// The ways a tree is built in the bulk section; the first is the reference.
fn builds() -> Vec<(&'static str, Build)> {
    #[allow(unused_mut)]
    let mut all: Vec<(&'static str, Build)> = vec![
        ("seize: insert sorted", insert_sorted::<SeizeBackend>),
        ("seize: from_sorted_in", bulk_load::<SeizeBackend>),
    ];
    #[cfg(feature = "arena")]
    all.extend([
        (
            "arena: insert sorted",
            insert_sorted::<ArenaBackend> as Build,
        ),
        ("arena: from_sorted_in", bulk_load::<ArenaBackend>),
    ]);
    all
}

/// Medians for one build of one key set.
struct BulkRow {
    label: String,
    build: f64,
    gets: Vec<f64>,
}

fn bench_bulk(
    ks: &KeySet,
    threads: &[usize],
    runs: usize,
    rng: &mut SplitMix64,
    wrong: &mut Failures,
) -> Vec<BulkRow> {
    let input = BulkInput {
        ks,
        insert_sorted: Phase {
            name: "insert sorted",
            op: Op::Insert,
            show: true,
            keys: ks.sorted.clone(),
            vals: ks.sorted_vals.clone(),
            expect: Tally::default(),
            per_op: Vec::new(),
        },
        get: get_hit_phase(ks, rng),
        iter: iter_phase(ks),
    };
    let builds = builds();
    // samples[build] = (build rates, get rates per thread count)
    let mut samples = vec![(Vec::new(), vec![Vec::new(); threads.len()]); builds.len()];
    for run in 0..runs {
        for k in 0..builds.len() {
            let b = (run + k) % builds.len();
            let (rate, gets) = (builds[b].1)(&input, threads).unwrap_or_else(|e| {
                wrong.add(true, format!("bulk {}: {}", ks.name, builds[b].0), &e);
                (f64::NAN, vec![f64::NAN; threads.len()])
            });
            let shown: Vec<String> = threads
                .iter()
                .zip(&gets)
                .map(|(t, g)| format!("get T={t} {g:.2}"))
                .collect();
            eprintln!(
                "[bulk {} run {}/{runs}] {:<22} build {rate:.2}, {} Mops/s",
                ks.name,
                run + 1,
                builds[b].0,
                shown.join(", ")
            );
            samples[b].0.push(rate);
            for (s, g) in samples[b].1.iter_mut().zip(gets) {
                s.push(g);
            }
        }
    }
    builds
        .iter()
        .zip(&mut samples)
        .map(|((name, _), (rates, gets))| BulkRow {
            label: format!("| {:<8} | {name:<22} |", ks.name),
            build: median(rates),
            gets: gets.iter_mut().map(|g| median(g)).collect(),
        })
        .collect()
}

/// `m (m / base)`; `wrong` if `m` is NaN.
fn cell(m: f64, base: f64) -> String {
    if m.is_nan() {
        "wrong".into()
    } else if base.is_nan() {
        format!("{m:.2}")
    } else {
        format!("{m:.2} ({:.2}x)", m / base)
    }
}

/// Cells `Mops/s (ratio to the first build of the same key set)`.
fn print_bulk_table(rows: &[BulkRow], threads: &[usize], per_set: usize) {
    print!("| key set  | tree                   |       build Mops/s |");
    for t in threads {
        print!(" {:>18} |", format!("get hit T={t}"));
    }
    println!();
    print!("|----------|------------------------|-------------------:|");
    for _ in threads {
        print!("-------------------:|");
    }
    println!();
    for set in rows.chunks(per_set) {
        let base = &set[0];
        for row in set {
            print!("{} {:>18} |", row.label, cell(row.build, base.build));
            for (&g, &b) in row.gets.iter().zip(&base.gets) {
                print!(" {:>18} |", cell(g, b));
            }
            println!();
        }
    }
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

/// The global allocator, counting the bytes requested and not yet freed.
#[derive(Default)]
struct Counting {
    live: AtomicUsize,
}

// SAFETY: every block comes from `Global` with the same layout it is freed
// with; the counter is only a statistic.
unsafe impl Allocator for Counting {
    fn allocate(&self, layout: std::alloc::Layout) -> Result<NonNull<[u8]>, AllocError> {
        let block = Global.allocate(layout)?;
        self.live.fetch_add(layout.size(), Ordering::Relaxed);
        Ok(block)
    }
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: std::alloc::Layout) {
        self.live.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `allocate` with `layout`, which used `Global`.
        unsafe { Global.deallocate(ptr, layout) }
    }
}

impl Counting {
    fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

/// One line of the memory table.
struct MemRow {
    backend: &'static str,
    build: &'static str,
    /// Counted bytes, if measured.
    bytes: Option<usize>,
    note: String,
}

/// Loads the key set into a tree on `backend`, one by one (in key set order)
/// or by bulk load; checks it; `note` reads the backend's statistics. The
/// counted bytes are read while the tree is alive, and must be 0 after it
/// is dropped. A wrong tree goes to `wrong`, and its row says so.
fn memory_row<'c, A: NodeAllocatorGeneric>(
    backend_name: &'static str,
    counter: &'c Counting,
    backend: impl FnOnce(&'c Counting) -> A,
    bulk: bool,
    ks: &KeySet,
    note: impl FnOnce(&A) -> String,
    wrong: &mut Failures,
) -> MemRow {
    let build = if bulk {
        "from_sorted_in"
    } else {
        "insert (random order)"
    };
    let mut errors = Vec::new();
    let tree = if bulk {
        let pairs = (0..ks.len()).map(|r| (ks.sorted.get(r), ks.sorted_vals[r]));
        match InlineMassTree::<u64, A>::from_sorted_in(backend(counter), pairs) {
            Ok(tree) => Some(tree),
            Err(e) => {
                errors.push(format!("from_sorted_in: {e}"));
                None
            }
        }
    } else {
        let tree = InlineMassTree::<u64, A>::new_in(backend(counter));
        for batch in (0..ks.len()).collect::<Vec<_>>().chunks(GUARD_BATCH) {
            let g = tree.guard();
            for &i in batch {
                if tree.insert(ks.present.get(i), i as u64, &g).is_some() {
                    errors.push("an insert of a new key found it".into());
                }
            }
        }
        Some(tree)
    };
    let mut bytes = None;
    let mut noted = String::new();
    if let Some(tree) = tree {
        if tree.len() != ks.len() {
            errors.push(format!("len() is {}, not {}", tree.len(), ks.len()));
        }
        {
            let g = tree.guard();
            let missing = (0..ks.len())
                .filter(|&i| tree.get(ks.present.get(i), &g) != Some(i as u64))
                .count();
            if missing > 0 {
                errors.push(format!("{missing} keys not found"));
            }
        }
        bytes = Some(counter.live());
        noted = note(tree.backend());
        drop(tree);
        if counter.live() != 0 {
            errors.push(format!("{} bytes left after drop", counter.live()));
        }
    }
    errors.dedup();
    if !errors.is_empty() {
        let e = errors.join("; ");
        wrong.add(true, format!("memory: {backend_name}, {build}"), &e);
        noted = format!("WRONG: {e}");
    }
    MemRow {
        backend: backend_name,
        build,
        bytes,
        note: noted,
    }
}

fn bench_memory(ks: &KeySet, wrong: &mut Failures) -> Vec<MemRow> {
    let mut rows = Vec::new();
    for bulk in [false, true] {
        let c = Counting::default();
        rows.push(memory_row(
            "seize",
            &c,
            SeizeBackend::new_in,
            bulk,
            ks,
            |_| "seize's collector state is on the global allocator (not counted)".into(),
            wrong,
        ));
    }
    #[cfg(feature = "huge-pages")]
    for bulk in [false, true] {
        let c = Counting::default();
        rows.push(memory_row(
            "seize, huge-page slabs",
            &c,
            |c| SeizeBackend::new_in(HugePageSlabs::new_in(c)),
            bulk,
            ks,
            |b| {
                let s = b.allocator().stats();
                format!(
                    "{} leaves in {} slabs of 2 MiB ({} advised MADV_HUGEPAGE); internodes in 4 KiB slabs",
                    s.slots_in_use, s.slabs, s.advised
                )
            },
            wrong,
        ));
    }
    #[cfg(feature = "pool")]
    for bulk in [false, true] {
        let c = Counting::default();
        rows.push(memory_row(
            "pool",
            &c,
            PoolBackend::new_in,
            bulk,
            ks,
            |b| {
                let s = b.stats();
                format!(
                    "{} leaves + {} internodes in {} slots, {} slabs",
                    s.leaves, s.internodes, s.slots, s.slabs
                )
            },
            wrong,
        ));
    }
    #[cfg(feature = "arena")]
    for bulk in [false, true] {
        let c = Counting::default();
        rows.push(memory_row(
            "arena",
            &c,
            ArenaBackend::new_in,
            bulk,
            ks,
            |b| {
                let s = b.stats();
                format!(
                    "{:.1} bytes/key handed out; {} chunks",
                    s.bytes_used as f64 / ks.len() as f64,
                    s.chunks
                )
            },
            wrong,
        ));
    }
    #[cfg(not(feature = "pool"))]
    rows.push(MemRow {
        backend: "pool",
        build: "-",
        bytes: None,
        note: "n/a: build with --features pool".into(),
    });
    #[cfg(not(feature = "arena"))]
    rows.push(MemRow {
        backend: "arena",
        build: "-",
        bytes: None,
        note: "n/a: build with --features arena".into(),
    });
    rows.push(MemRow {
        backend: "masstree 0.9.5",
        build: "-",
        bytes: None,
        note: "n/a: its allocator parameter is its own node-level TreeAllocator trait, not an allocator_api2 allocator".into(),
    });
    rows
}

fn print_memory_table(rows: &[MemRow], n: usize) {
    println!("| backend        | build                 |  bytes/key |  total MiB | notes |");
    println!("|----------------|-----------------------|-----------:|-----------:|-------|");
    for r in rows {
        let (per_key, total) = match r.bytes {
            Some(b) => (
                format!("{:.1}", b as f64 / n as f64),
                format!("{:.1}", b as f64 / (1 << 20) as f64),
            ),
            None => ("n/a".into(), "n/a".into()),
        };
        println!(
            "| {:<14} | {:<21} | {per_key:>10} | {total:>10} | {} |",
            r.backend, r.build, r.note
        );
    }
}

// ---------------------------------------------------------------------------
// Latency: cold cache lines per get
// ---------------------------------------------------------------------------

/// One cache line of the pointer chase.
#[repr(align(64))]
struct ChaseCell(usize);

/// Nanoseconds per load of a pointer chase through `bytes` bytes of cache
/// lines linked in one random cycle: each load depends on the one before, so
/// none overlap, and past the caches each is one DRAM access (plus a page
/// walk past the TLB's reach): the memory-latency floor.
fn chase_ns(bytes: usize, rng: &mut SplitMix64) -> f64 {
    let cells = (bytes / 64).max(2);
    // Sattolo's algorithm: a random permutation that is one cycle.
    let mut next: Vec<ChaseCell> = (0..cells).map(ChaseCell).collect();
    for i in (1..cells).rev() {
        let j = rng.below(i as u64) as usize;
        let (a, b) = (next[i].0, next[j].0);
        next[i].0 = b;
        next[j].0 = a;
    }
    let loads = cells.min(4_000_000);
    let mut at = 0;
    for _ in 0..loads / 4 {
        at = next[at].0;
    }
    let began = Instant::now();
    for _ in 0..loads {
        at = next[at].0;
    }
    let ns = began.elapsed().as_secs_f64() * 1e9 / loads as f64;
    black_box(at);
    ns
}

/// Nanoseconds per get when each get's key is picked by the value the get
/// before it returned (so no two gets overlap), among the first `among` keys.
fn dependent_get_ns(
    tree: &InlineMassTree<u64>,
    keys: &[[u8; 8]],
    among: usize,
    gets: usize,
) -> f64 {
    // The next key depends on the value just read, through a running hash
    // (a function of the value alone would soon cycle through a few keys).
    let mut state = 0u64;
    let mut pick = |v: u64| {
        state = (state ^ v)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (state >> 17) as usize % among
    };
    let mut i = 0;
    let mut g = tree.guard();
    // Warm-up: for a small `among`, brings its paths into the caches.
    for _ in 0..among.min(gets) {
        i = pick(tree.get(&keys[i], &g).expect("present"));
    }
    let began = Instant::now();
    for n in 0..gets {
        if n % GUARD_BATCH == 0 {
            g = tree.guard();
        }
        i = pick(tree.get(&keys[i], &g).expect("present"));
    }
    black_box(i);
    began.elapsed().as_secs_f64() * 1e9 / gets as f64
}

/// One row of the latency table.
struct LatencyRow {
    n: usize,
    cold: f64,
    warm: f64,
    chase: f64,
}

/// For each size: a tree of that many random 8-byte keys (inserted in random
/// order), dependent gets over all keys (cold) and of one key (warm: its
/// path stays in L1), and the pointer chase. Medians of `runs`.
fn bench_latency(sizes: &[usize], runs: usize) -> Vec<LatencyRow> {
    let mut rng = SplitMix64(0x006c_6174_656e_6379);
    sizes
        .iter()
        .map(|&n| {
            eprintln!("latency: building {n} keys ...");
            // splitmix of 0..n: distinct keys; the value of key i is i.
            let keys: Vec<[u8; 8]> = (0..n as u64)
                .map(|i| SplitMix64(i).next().to_be_bytes())
                .collect();
            let tree = InlineMassTree::<u64>::new();
            {
                let order = rng.permutation(n);
                let mut g = tree.guard();
                for (done, &i) in order.iter().enumerate() {
                    if done % GUARD_BATCH == 0 {
                        g = tree.guard();
                    }
                    tree.insert(&keys[i], i as u64, &g);
                }
            }
            let gets = 2_000_000;
            let (mut cold, mut warm, mut chase) = (Vec::new(), Vec::new(), Vec::new());
            for run in 0..runs {
                eprintln!("[latency {n} run {}/{runs}]", run + 1);
                cold.push(dependent_get_ns(&tree, &keys, n, gets));
                warm.push(dependent_get_ns(&tree, &keys, 1, gets));
                chase.push(chase_ns(256 << 20, &mut rng));
            }
            LatencyRow {
                n,
                cold: median(&mut cold),
                warm: median(&mut warm),
                chase: median(&mut chase),
            }
        })
        .collect()
}

fn print_latency_table(rows: &[LatencyRow]) {
    println!(
        "| keys       | get, cold ns | get, warm ns | DRAM load ns | DRAM loads per get = (cold - warm) / DRAM |"
    );
    println!(
        "|-----------:|-------------:|-------------:|-------------:|------------------------------------------:|"
    );
    for r in rows {
        println!(
            "| {:>10} | {:>12.1} | {:>12.1} | {:>12.1} | {:>41.2} |",
            r.n,
            r.cold,
            r.warm,
            r.chase,
            (r.cold - r.warm) / r.chase
        );
    }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

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
}

fn selection() -> Selection {
    const GROUPS: [&str; 4] = ["point", "scan", "mixed", "remove"];
    const SECTIONS: [&str; 4] = ["main", "bulk", "memory", "latency"];
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
    }
}

fn main() {
    let began = Instant::now();
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
    let mut rng = SplitMix64(0x0063_6f6d_7061_7265);
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
        let sizes: Vec<usize> = std::env::var("LATENCY_N")
            .unwrap_or_else(|_| "1000000,10000000".into())
            .split(',')
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse()
                    .expect("LATENCY_N: comma-separated key counts")
            })
            .collect();
        bench_latency(&sizes, runs.min(3))
    } else {
        Vec::new()
    };

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
            "The last column is the cache-miss time of a get in units of one dependent DRAM load (L2/L3 hits count as fractions). Medians of {} runs.",
            runs.min(3)
        );
        println!();
        print_latency_table(&latency_rows);
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
