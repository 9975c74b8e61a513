#[cfg(feature = "arena")]
use masstree::alloc_backends::arena::ArenaBackend;
#[cfg(feature = "huge-pages")]
use masstree::alloc_backends::huge_pages::HugePageSlabs;
#[cfg(feature = "pool")]
use masstree::alloc_backends::pool::PoolBackend;
use masstree::alloc_backends::seize::SeizeBackend;
use masstree::allocator_api2::alloc::{Allocator, Global};
use masstree::backend::NodeAllocatorGeneric;
use masstree::{InlineMassTree, Seek};
use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::{Bound, ControlFlow};
use std::sync::RwLock;

use crate::BASELINE;
use crate::driver::{env_usize, measure, on_threads};
use crate::phases::Workload;

/// One map under test. Keys always arrive as bytes; an implementation converts
/// them to its own key type inside the timed operation.
pub(crate) trait Bench {
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
pub(crate) fn visit<I: DoubleEndedIterator>(
    it: I,
    rev: bool,
    limit: usize,
    f: impl FnMut(I::Item),
) {
    if rev {
        it.rev().take(limit).for_each(f);
    } else {
        it.take(limit).for_each(f);
    }
}

/// This crate, on backend `A`.
pub(crate) struct Ours<A: NodeAllocatorGeneric>(pub(crate) InlineMassTree<u64, A>);

/// This crate as the throughput table runs it.
pub(crate) type ThisCrate = Ours<SeizeBackend>;

/// How the benchmark builds a backend of this crate: its default, except that
/// `SEIZE_BATCH` sets the seize backend's retirement batch size.
pub(crate) trait BenchBackend: NodeAllocatorGeneric + Sized {
    /// Name shown in the progress output.
    const NAME: &'static str = "masstree (this crate)";
    fn bench_new() -> Self;
}

/// The seize backend on `alloc`, with `SEIZE_BATCH` applied.
pub(crate) fn bench_seize<A: Allocator>(alloc: A) -> SeizeBackend<A> {
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
pub(crate) struct Published(pub(crate) masstree_published::MassTree15Inline<u64>);

pub(crate) fn published_bound(b: Bound<&[u8]>) -> masstree_published::RangeBound<'_> {
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
pub(crate) trait KeyRepr: 'static {
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
pub(crate) struct U64Key;

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
pub(crate) struct BytesKey;

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
pub(crate) struct Array32Key;

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

pub(crate) struct SccTree<R: KeyRepr>(pub(crate) scc::TreeIndex<R::Owned, u64>);

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

pub(crate) struct SkipMap<R: KeyRepr>(pub(crate) crossbeam_skiplist::SkipMap<R::Owned, u64>);

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
pub(crate) struct StdBTree<R: KeyRepr>(pub(crate) RefCell<BTreeMap<R::Owned, u64>>);

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
pub(crate) struct LockedBTree<R: KeyRepr>(pub(crate) RwLock<BTreeMap<R::Owned, u64>>);

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

/// The column of this crate in the throughput table.
pub(crate) const OURS: &str = "this crate";
/// The column of this crate with its nodes in huge-page slabs (feature
/// `huge-pages`): the seize backend on `HugePageSlabs`.
pub(crate) const OURS_HUGE: &str = "this crate, huge pages";

/// A system as the driver sees it: a table column and a monomorphized runner.
pub(crate) struct System {
    pub(crate) name: &'static str,
    pub(crate) column: &'static str,
    /// Which thread counts it runs at.
    pub(crate) threads: fn(usize) -> bool,
    /// Runs every phase of the workload on a fresh map; Mops/s per phase,
    /// or what was wrong.
    pub(crate) run: fn(&Workload<'_>, usize) -> Vec<Result<f64, String>>,
}

pub(crate) fn concurrent<B: Bench + Sync>(column: &'static str) -> System {
    System {
        name: B::NAME,
        column,
        threads: |_| true,
        run: |w, threads| measure::<B>(w, threads, Some(on_threads::<B>)),
    }
}

pub(crate) fn single_threaded<B: Bench>(column: &'static str) -> System {
    System {
        name: B::NAME,
        column,
        threads: |t| t == 1,
        run: |w, threads| measure::<B>(w, threads, None),
    }
}

/// All systems, with the peers' keys represented by `R`.
pub(crate) fn systems<R: KeyRepr>() -> Vec<System> {
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
