use std::hint::black_box;
use std::ops::{Bound, Range};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::keys::KeySet;
use crate::phases::{Op, Phase, Tally, Workload};
use crate::systems::{Bench, OURS, OURS_HUGE, System};
use crate::{BASELINE, GUARD_BATCH, SCAN_BUDGET, SCAN_LEN};

/// Work of one thread: (map, thread index) -> (tally, operations done).
pub(crate) type Work<'a, B> = dyn Fn(&B, usize) -> (Tally, usize) + Sync + 'a;

/// Runs `work` on `threads` threads started together; wall time from the
/// first thread's start to the last thread's end (each thread reads the clock
/// itself, so a late main thread does not shorten it), and each thread's result.
pub(crate) fn on_threads<B: Bench + Sync>(
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

pub(crate) type Spawner<B> = fn(&B, usize, &Work<'_, B>) -> (Duration, Vec<(Tally, usize)>);

/// Builds a fresh `B` and times each phase of `w` on it; returns Mops/s per
/// phase, or what was wrong.
pub(crate) fn measure<B: Bench>(
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
pub(crate) fn time_phase<B: Bench>(
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
pub(crate) fn scan_mismatch<B: Bench>(
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
pub(crate) fn scan_bounds(start: &[u8], rev: bool) -> (Bound<&[u8]>, Bound<&[u8]>) {
    if rev {
        (Bound::Unbounded, Bound::Included(start))
    } else {
        (Bound::Included(start), Bound::Unbounded)
    }
}

/// One thread's share of a phase, with a fresh guard every `GUARD_BATCH`
/// operations, stopping at `deadline` if any; what it observed and how many
/// operations it did.
pub(crate) fn run_share<B: Bench>(
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

pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(s) => s
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={s}: not a number")),
        Err(_) => default,
    }
}

/// The median; NaN (wrong) if any run was wrong.
pub(crate) fn median(xs: &mut [f64]) -> f64 {
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

/// Wrong results: shown as `wrong` in the tables and explained under them.
/// The program panics at the end, after printing every table, if this crate
/// had any.
#[derive(Default)]
pub(crate) struct Failures {
    pub(crate) ours: Vec<String>,
    pub(crate) peers: Vec<String>,
}

impl Failures {
    /// Records `what` failed with `error` (the first failure of each `what`).
    pub(crate) fn add(&mut self, ours: bool, what: String, error: &str) {
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
pub(crate) struct Row {
    pub(crate) label: String,
    pub(crate) cells: Vec<(&'static str, f64)>,
}

/// Runs every system of `w` with `threads` threads, `runs` times, interleaved.
pub(crate) fn bench_workload(
    w: &Workload<'_>,
    threads: usize,
    runs: usize,
    wrong: &mut Failures,
) -> Vec<Row> {
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
pub(crate) fn print_table(rows: &[Row]) {
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
