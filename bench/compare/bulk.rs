use masstree::InlineMassTree;
#[cfg(feature = "arena")]
use masstree::alloc_backends::arena::ArenaBackend;
use masstree::alloc_backends::seize::SeizeBackend;
use std::time::Instant;

use crate::driver::{Failures, median, on_threads, run_share, time_phase};
use crate::keys::KeySet;
use crate::phases::{Op, Phase, Tally, get_hit_phase, iter_phase};
use crate::rng::Rng;
use crate::systems::{Bench, BenchBackend, Ours};

/// Builds a tree of one key set one way (timed), checks it, times `get hit`
/// on it at each thread count: (build Mops/s, get Mops/s per thread count).
pub(crate) type Build = fn(&BulkInput<'_>, &[usize]) -> Result<(f64, Vec<f64>), String>;

/// What a build needs: the key set, its sorted keys as an insert phase, a
/// shuffled `get hit` phase and an `iter` phase (for checking).
pub(crate) struct BulkInput<'k> {
    pub(crate) ks: &'k KeySet,
    pub(crate) insert_sorted: Phase,
    pub(crate) get: Phase,
    pub(crate) iter: Phase,
}

/// The sorted keys inserted one by one into a tree on backend `A`.
pub(crate) fn insert_sorted<A: BenchBackend + Sync>(
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
pub(crate) fn bulk_load<A: BenchBackend + Sync>(
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
pub(crate) fn check_and_get<A: BenchBackend + Sync>(
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
pub(crate) fn builds() -> Vec<(&'static str, Build)> {
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
pub(crate) struct BulkRow {
    pub(crate) label: String,
    pub(crate) build: f64,
    pub(crate) gets: Vec<f64>,
}

pub(crate) fn bench_bulk(
    ks: &KeySet,
    threads: &[usize],
    runs: usize,
    rng: &mut Rng,
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
pub(crate) fn cell(m: f64, base: f64) -> String {
    if m.is_nan() {
        "wrong".into()
    } else if base.is_nan() {
        format!("{m:.2}")
    } else {
        format!("{m:.2} ({:.2}x)", m / base)
    }
}

/// Cells `Mops/s (ratio to the first build of the same key set)`.
pub(crate) fn print_bulk_table(rows: &[BulkRow], threads: &[usize], per_set: usize) {
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
