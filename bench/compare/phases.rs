use crate::keys::{KeySet, Keys};
use crate::rng::Rng;
use crate::{SCAN_LEN, SCANS_PER, Selection};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
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
pub(crate) struct Phase {
    pub(crate) name: &'static str,
    pub(crate) op: Op,
    /// Whether its row is shown (the insert that fills the map always runs).
    pub(crate) show: bool,
    pub(crate) keys: Keys,
    /// See [`Op`]; for scans, the rank of the start key.
    pub(crate) vals: Vec<u64>,
    /// What the phase must observe, summed over all shares.
    pub(crate) expect: Tally,
    /// Scans: what each scan must observe (a scan phase may stop early).
    pub(crate) per_op: Vec<Tally>,
}

/// What a share of a phase observed.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Tally {
    /// Hits (gets, removes, inserts that found the key) or entries (scans).
    pub(crate) found: usize,
    /// Sum of the values found.
    pub(crate) sum: u64,
    /// Scans: sum of (position in the scan or iteration) * value.
    pub(crate) wsum: u64,
}

impl Tally {
    pub(crate) fn add(self, o: Tally) -> Tally {
        Tally {
            found: self.found + o.found,
            sum: self.sum.wrapping_add(o.sum),
            wsum: self.wsum.wrapping_add(o.wsum),
        }
    }
    #[inline]
    pub(crate) fn hit(&mut self, v: u64) {
        self.found += 1;
        self.sum = self.sum.wrapping_add(v);
    }
    #[inline]
    pub(crate) fn entry(&mut self, pos: u64, v: u64) {
        self.hit(v);
        self.wsum = self.wsum.wrapping_add(pos.wrapping_mul(v));
    }
}

impl Phase {
    /// Operations in the phase (what the thread shares split).
    pub(crate) fn ops(&self, ks: &KeySet) -> usize {
        match self.op {
            Op::Iter => ks.len(),
            _ => self.keys.len(),
        }
    }
}

/// Hits on all of `vals`.
pub(crate) fn hits(vals: &[u64]) -> Tally {
    let mut t = Tally::default();
    vals.iter().for_each(|&v| t.hit(v));
    t
}

/// A key set with the phases to run on it.
pub(crate) struct Workload<'k> {
    pub(crate) ks: &'k KeySet,
    pub(crate) phases: Vec<Phase>,
}

/// Inserts every key of `ks`, in its order (values `0..n`).
pub(crate) fn insert_phase(ks: &KeySet, show: bool) -> Phase {
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
pub(crate) fn get_hit_phase(ks: &KeySet, rng: &mut Rng) -> Phase {
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

pub(crate) fn get_miss_phase(ks: &KeySet) -> Phase {
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
pub(crate) fn scan_phase(ks: &KeySet, rank: &[u32], rev: bool, rng: &mut Rng) -> Phase {
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

pub(crate) fn iter_phase(ks: &KeySet) -> Phase {
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
pub(crate) fn mixed_ops(ks: &KeySet) -> (usize, usize) {
    let ops = ks.absent.len();
    (ops, ops / 2)
}

/// `N / 2` operations: gets of present keys (shuffled) alternating with
/// inserts of `absent[..N / 4]` (value `N + j` for `absent[j]`).
pub(crate) fn mixed_phase(ks: &KeySet, rng: &mut Rng) -> Phase {
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
pub(crate) fn remove_phase(ks: &KeySet, mixed: bool, rng: &mut Rng) -> Phase {
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

pub(crate) fn build_workload<'k>(ks: &'k KeySet, sel: &Selection, rng: &mut Rng) -> Workload<'k> {
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
