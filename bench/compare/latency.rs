use masstree::InlineMassTree;
use std::hint::black_box;
use std::time::Instant;

use crate::GUARD_BATCH;
use crate::driver::median;
use crate::rng::Rng;

/// One cache line of the pointer chase.
#[repr(align(64))]
pub(crate) struct ChaseCell(pub(crate) usize);

/// Nanoseconds per load of a pointer chase through `bytes` bytes of cache
/// lines linked in one random cycle: each load depends on the one before, so
/// none overlap, and past the caches each is one DRAM access (plus a page
/// walk past the TLB's reach): the memory-latency floor.
pub(crate) fn chase_ns(bytes: usize, rng: &mut Rng) -> f64 {
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
pub(crate) fn dependent_get_ns(
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

/// Nanoseconds per get of random keys among all, looked up 16 at a time
/// with `get_batch` (independent keys, so their misses may overlap).
pub(crate) fn batched_get_ns(
    tree: &InlineMassTree<u64>,
    keys: &[[u8; 8]],
    gets: usize,
    rng: &mut Rng,
) -> f64 {
    const B: usize = 16;
    let mut g = tree.guard();
    let mut batch: [&[u8]; B] = [&[]; B];
    let mut out = [None; B];
    let mut sum = 0u64;
    let began = Instant::now();
    for n in 0..gets / B {
        if n % (GUARD_BATCH / B) == 0 {
            g = tree.guard();
        }
        for k in &mut batch {
            *k = &keys[rng.below(keys.len() as u64) as usize];
        }
        tree.get_batch(&batch, &mut out, &g);
        sum += out.iter().map(|v| v.expect("present")).sum::<u64>();
    }
    black_box(sum);
    began.elapsed().as_secs_f64() * 1e9 / (gets / B * B) as f64
}

/// One row of the latency table.
pub(crate) struct LatencyRow {
    pub(crate) n: usize,
    pub(crate) cold: f64,
    pub(crate) warm: f64,
    pub(crate) batched: f64,
    pub(crate) chase: f64,
}

/// For each size: a tree of that many random 8-byte keys (inserted in random
/// order), dependent gets over all keys (cold) and of one key (warm: its
/// path stays in L1), and the pointer chase. Medians of `runs`.
pub(crate) fn bench_latency(sizes: &[usize], runs: usize) -> Vec<LatencyRow> {
    let mut rng = Rng::new(0x006c_6174_656e_6379);
    sizes
        .iter()
        .map(|&n| {
            eprintln!("latency: building {n} keys ...");
            // splitmix of 0..n: distinct keys; the value of key i is i.
            let keys: Vec<[u8; 8]> = (0..n as u64)
                .map(|i| Rng::new(i).next_u64().to_be_bytes())
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
            let mut batched = Vec::new();
            for run in 0..runs {
                eprintln!("[latency {n} run {}/{runs}]", run + 1);
                cold.push(dependent_get_ns(&tree, &keys, n, gets));
                warm.push(dependent_get_ns(&tree, &keys, 1, gets));
                batched.push(batched_get_ns(&tree, &keys, gets, &mut rng));
                chase.push(chase_ns(256 << 20, &mut rng));
            }
            LatencyRow {
                n,
                cold: median(&mut cold),
                warm: median(&mut warm),
                batched: median(&mut batched),
                chase: median(&mut chase),
            }
        })
        .collect()
}

pub(crate) fn print_latency_table(rows: &[LatencyRow]) {
    println!(
        "| keys       | get, cold ns | get, warm ns | DRAM load ns | DRAM loads per get = (cold - warm) / DRAM | get_batch 16, ns per get | its DRAM loads per get |"
    );
    println!(
        "|-----------:|-------------:|-------------:|-------------:|------------------------------------------:|-------------------------:|-----------------------:|"
    );
    for r in rows {
        println!(
            "| {:>10} | {:>12.1} | {:>12.1} | {:>12.1} | {:>41.2} | {:>24.1} | {:>22.2} |",
            r.n,
            r.cold,
            r.warm,
            r.chase,
            (r.cold - r.warm) / r.chase,
            r.batched,
            (r.batched - r.warm).max(0.0) / r.chase
        );
    }
}
