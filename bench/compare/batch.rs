//! Batched gets: this crate's `get_batch` at batch sizes 8 to 64 against
//! single gets of this crate, masstree 0.9.5 and `BTreeMap`, one thread, in
//! the same run, the systems interleaved within each run.

use std::hint::black_box;
use std::time::Instant;

use masstree::InlineMassTree;

use crate::GUARD_BATCH;
use crate::driver::median;
use crate::keys::{KeySet, Keys, key_set};
use crate::rng::Rng;
use crate::systems::{Bench, BytesKey, KeyRepr, Published, StdBTree, U64Key};

/// Batch sizes of the table.
pub(crate) const SIZES: [usize; 4] = [8, 16, 32, 64];

/// One row: a key set at one size; Mops/s.
pub(crate) struct BatchRow {
    pub(crate) set: &'static str,
    pub(crate) n: usize,
    pub(crate) single: f64,
    pub(crate) batched: [f64; SIZES.len()],
    pub(crate) published: f64,
    pub(crate) btree: f64,
    /// Building a tree of the keys (shuffled) with `insert`, and with `insert_batch`.
    pub(crate) insert: f64,
    pub(crate) insert_batch: f64,
}

/// Every key of `ks`, shuffled, looked up in each way, `runs` times.
pub(crate) fn bench_batch(set: &'static str, n: usize, runs: usize, rng: &mut Rng) -> BatchRow {
    eprintln!("batch: generating {set} keys (N = {n}) ...");
    let ks = key_set(set, n);
    match set {
        "rand8" => rows::<U64Key>(&ks, n, runs, rng),
        _ => rows::<BytesKey>(&ks, n, runs, rng),
    }
}

fn rows<R: KeyRepr>(ks: &KeySet, n: usize, runs: usize, rng: &mut Rng) -> BatchRow {
    eprintln!("batch: building the maps ...");
    let ours = InlineMassTree::<u64>::new();
    ours.insert_batch(
        (0..ks.len()).map(|i| (ks.present.get(i), i as u64)),
        &ours.guard(),
    );
    let published = Published::new();
    let btree = StdBTree::<R>::new();
    {
        let g = published.guard();
        for i in 0..ks.len() {
            published.insert(&g, ks.present.get(i), i as u64);
            btree.insert(&(), ks.present.get(i), i as u64);
        }
    }
    // The probe keys, stored contiguously in probe order, as a batch of
    // requests would arrive: the lookups, not the key bytes, miss.
    let probes = Keys::pick(&ks.present, rng.permutation(ks.len()));
    let expect: u64 = (0..ks.len() as u64).sum();
    let rate = |t: Instant| probes.len() as f64 / t.elapsed().as_secs_f64() / 1e6;
    let (mut single, mut published_r, mut btree_r) = (Vec::new(), Vec::new(), Vec::new());
    let (mut insert, mut insert_batch) = (Vec::new(), Vec::new());
    let mut batched: [Vec<f64>; SIZES.len()] = Default::default();
    for run in 0..runs {
        eprintln!("[batch {} N={n} run {}/{runs}]", ks.name, run + 1);
        let t = Instant::now();
        let mut sum = 0u64;
        let mut g = ours.guard();
        for i in 0..probes.len() {
            if i % GUARD_BATCH == 0 {
                g = ours.guard();
            }
            sum += ours.get(probes.get(i), &g).expect("present");
        }
        single.push(rate(t));
        assert_eq!(black_box(sum), expect);
        drop(g);
        for (s, &size) in SIZES.iter().enumerate() {
            let t = Instant::now();
            let mut sum = 0u64;
            let mut keys: [&[u8]; 64] = [&[]; 64];
            let mut out = [None; 64];
            let mut g = ours.guard();
            for start in (0..probes.len()).step_by(size) {
                if start % GUARD_BATCH < size {
                    g = ours.guard();
                }
                let len = size.min(probes.len() - start);
                for (j, k) in keys[..len].iter_mut().enumerate() {
                    *k = probes.get(start + j);
                }
                ours.get_batch(&keys[..len], &mut out[..len], &g);
                sum += out[..len].iter().map(|v| v.expect("present")).sum::<u64>();
            }
            batched[s].push(rate(t));
            assert_eq!(black_box(sum), expect);
        }
        let t = Instant::now();
        let mut sum = 0u64;
        let mut g = published.guard();
        for i in 0..probes.len() {
            if i % GUARD_BATCH == 0 {
                g = published.guard();
            }
            sum += published.get(&g, probes.get(i)).expect("present");
        }
        published_r.push(rate(t));
        assert_eq!(black_box(sum), expect);
        drop(g);
        let t = Instant::now();
        let mut sum = 0u64;
        for i in 0..probes.len() {
            sum += btree.get(&(), probes.get(i)).expect("present");
        }
        btree_r.push(rate(t));
        assert_eq!(black_box(sum), expect);

        let fresh = InlineMassTree::<u64>::new();
        let t = Instant::now();
        let mut g = fresh.guard();
        for i in 0..probes.len() {
            if i % GUARD_BATCH == 0 {
                g = fresh.guard();
            }
            fresh.insert(probes.get(i), i as u64, &g);
        }
        insert.push(rate(t));
        drop(g);
        assert_eq!(fresh.len(), probes.len());
        drop(fresh);
        let fresh = InlineMassTree::<u64>::new();
        let t = Instant::now();
        let mut g = fresh.guard();
        for start in (0..probes.len()).step_by(GUARD_BATCH) {
            g = fresh.guard();
            let end = (start + GUARD_BATCH).min(probes.len());
            fresh.insert_batch((start..end).map(|i| (probes.get(i), i as u64)), &g);
        }
        insert_batch.push(rate(t));
        drop(g);
        assert_eq!(fresh.len(), probes.len());
    }
    BatchRow {
        set: ks.name,
        n: ks.len(),
        single: median(&mut single),
        batched: batched.map(|mut v| median(&mut v)),
        published: median(&mut published_r),
        btree: median(&mut btree_r),
        insert: median(&mut insert),
        insert_batch: median(&mut insert_batch),
    }
}

pub(crate) fn print_batch_table(rows: &[BatchRow]) {
    print!("| key set | N | this crate get |");
    for s in SIZES {
        print!(" get_batch {s} |");
    }
    println!(" masstree 0.9.5 get | BTreeMap get | insert | insert_batch |");
    println!(
        "|---|--:|--:|{}--:|--:|--:|--:|",
        "--:|".repeat(SIZES.len())
    );
    for r in rows {
        print!("| {} | {} | {:.2} |", r.set, r.n, r.single);
        for b in r.batched {
            print!(" {b:.2} ({:.2}x) |", b / r.single);
        }
        println!(
            " {:.2} ({:.2}x) | {:.2} ({:.2}x) | {:.2} | {:.2} ({:.2}x) |",
            r.published,
            r.published / r.single,
            r.btree,
            r.btree / r.single,
            r.insert,
            r.insert_batch,
            r.insert_batch / r.insert
        );
    }
}
