use masstree::InlineMassTree;
#[cfg(feature = "arena")]
use masstree::alloc_backends::arena::ArenaBackend;
#[cfg(feature = "huge-pages")]
use masstree::alloc_backends::huge_pages::HugePageSlabs;
#[cfg(feature = "pool")]
use masstree::alloc_backends::pool::PoolBackend;
use masstree::alloc_backends::seize::SeizeBackend;
use masstree::backend::NodeAllocatorGeneric;

use crate::GUARD_BATCH;
use crate::alloc::Ledger;
use crate::driver::Failures;
use crate::keys::KeySet;

/// One line of the memory table.
pub(crate) struct MemRow {
    pub(crate) backend: &'static str,
    pub(crate) build: &'static str,
    /// Counted bytes, if measured.
    pub(crate) bytes: Option<usize>,
    pub(crate) note: String,
}

/// Loads the key set into a tree on `backend`, one by one (in key set order)
/// or by bulk load; checks it; `note` reads the backend's statistics. The
/// counted bytes are read while the tree is alive, and must be 0 after it
/// is dropped. A wrong tree goes to `wrong`, and its row says so.
pub(crate) fn memory_row<'c, A: NodeAllocatorGeneric>(
    backend_name: &'static str,
    counter: &'c Ledger,
    backend: impl FnOnce(&'c Ledger) -> A,
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
        bytes = Some(counter.live_bytes() as usize);
        noted = note(tree.backend());
        drop(tree);
        if counter.live_bytes() != 0 {
            errors.push(format!("{} bytes left after drop", counter.live_bytes()));
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

pub(crate) fn bench_memory(ks: &KeySet, wrong: &mut Failures) -> Vec<MemRow> {
    let mut rows = Vec::new();
    for bulk in [false, true] {
        let c = Ledger::new();
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
        let c = Ledger::new();
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
        let c = Ledger::new();
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
        let c = Ledger::new();
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

pub(crate) fn print_memory_table(rows: &[MemRow], n: usize) {
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
