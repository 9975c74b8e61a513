//! masstree on a Cortex-M4 (QEMU's mps2-an386), with no heap: every byte of
//! the trees comes from two static buffers through [`heap::Heap`].
//!
//! 1. A pool-backed tree inserts 8-byte keys until the fallible API reports
//!    its node slabs full (and hands the value back); every key is read back,
//!    and a cursor scans the tree both ways (order, count, values).
//! 2. The lower half of the key space is removed, the tree reclaimed, and
//!    16-byte keys (new trie layers, suffixes) fill the room again; the
//!    whole tree is checked once more.
//! 3. An arena-backed index is bulk-loaded from sorted keys and queried by
//!    key and by cursor seeks.
//!
//! Reports through semihosting; exits with `EXIT_FAILURE` on the first
//! failed check (or a panic, or a hard fault), `EXIT_SUCCESS` at the end.
//! Run by ci/embedded.sh:
//!
//! ```sh
//! cargo build --release --target thumbv7em-none-eabihf
//! qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
//!     -semihosting-config enable=on,target=native \
//!     -kernel target/thumbv7em-none-eabihf/release/masstree-firmware
//! ```

#![no_std]
#![no_main]

mod heap;

use core::fmt;

use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use masstree::alloc_backends::arena::ArenaBackend;
use masstree::alloc_backends::pool::PoolBackend;
use masstree::backend::{Internode, Leaf, NodeAllocatorGeneric};
use masstree::{BulkLoader, InlineMassTree, Seek, Tree, ValueStorage};

use heap::Heap;

/// The pool tree's buffer.
const POOL_BYTES: usize = 512 << 10;
/// Of which node slabs may take this much; the rest holds suffix records.
const POOL_SLAB_BYTES: usize = 448 << 10;
/// The arena index's buffer.
const ARENA_BYTES: usize = 256 << 10;
/// Keys bulk-loaded into the arena index.
const INDEX_KEYS: u32 = 3000;

#[repr(C, align(64))]
struct Buffer<const N: usize>([u8; N]);

static mut POOL_BUFFER: Buffer<POOL_BYTES> = Buffer([0; POOL_BYTES]);
static mut ARENA_BUFFER: Buffer<ARENA_BYTES> = Buffer([0; ARENA_BYTES]);

// The check that prints where it failed and ends the run with EXIT_FAILURE.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            fail(format_args!("{}:{}: {}", file!(), line!(), format_args!($($msg)+)));
        }
    };
}

fn fail(why: fmt::Arguments) -> ! {
    hprintln!("FAILED: {}", why);
    exit(debug::EXIT_FAILURE)
}

fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    // Only reached without a semihosting host: stop here.
    loop {
        cortex_m::asm::bkpt();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("PANIC: {}", info);
    exit(debug::EXIT_FAILURE)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("HARD FAULT: {:?}", frame);
    exit(debug::EXIT_FAILURE)
}

/// Stage-1 key `i`: a scrambled 4-byte prefix (the odd multiplier is a
/// bijection on `u32`, so keys are distinct and arrive in no order), then `i`.
fn short_key(i: u32) -> [u8; 8] {
    let mut k = [0; 8];
    k[..4].copy_from_slice(&i.wrapping_mul(0x9e37_79b1).to_be_bytes());
    k[4..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Stage-2 key `j`: 16 bytes that share their first 7, so they go into
/// layers below the root, mostly with suffixes.
fn long_key(j: u32) -> [u8; 16] {
    let mut k = *b"refill/?????/end";
    k[7..11].copy_from_slice(&j.wrapping_mul(0x9e37_79b1).to_be_bytes());
    k[11] = b'/';
    k
}

/// Stage-2 values are told from stage-1 ones by their top bit.
const REFILL: u32 = 1 << 31;

/// The value stored under a key of stage 1 or 2.
fn value_of(key: &[u8]) -> u32 {
    match key.len() {
        8 => u32::from_be_bytes(key[4..8].try_into().unwrap()),
        16 => REFILL | u32::from_be_bytes(key[7..11].try_into().unwrap()).wrapping_mul(0x0e8b_2f51),
        _ => fail(format_args!("unexpected key length {}", key.len())),
    }
}

/// Index key `i`: "sensor/00042/avg", in increasing order with `i`.
fn index_key(i: u32) -> [u8; 16] {
    let mut k = *b"sensor/00000/avg";
    let mut n = i;
    for d in k[7..12].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// A copy of a key, for comparing with the next one.
#[derive(Clone, Copy)]
struct KeyBuf {
    bytes: [u8; 32],
    len: usize,
}

impl KeyBuf {
    fn of(key: &[u8]) -> Self {
        let mut bytes = [0; 32];
        bytes[..key.len()].copy_from_slice(key);
        KeyBuf {
            bytes,
            len: key.len(),
        }
    }
    fn get(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Scans `tree` forward with a cursor, then backward: keys strictly
/// increasing (decreasing), each value `value(key)`, `len` entries each way.
fn scan_both_ways<S, A>(
    tree: &Tree<S, A>,
    len: usize,
    value: impl Fn(&[u8]) -> S::Value,
    what: &str,
) where
    S: ValueStorage,
    for<'g> S::Ref<'g>: PartialEq<S::Value> + fmt::Debug,
    S::Value: fmt::Debug,
    A: NodeAllocatorGeneric,
{
    let g = tree.guard();
    let mut c = tree.cursor(&g);
    let mut prev: Option<KeyBuf> = None;
    let mut count = 0;
    while let Some((k, v)) = c.next() {
        check!(
            prev.is_none_or(|p| p.get() < k),
            "{what}: forward scan out of order at entry {count}"
        );
        check!(v == value(k), "{what}: forward scan: {k:?} holds {v:?}");
        prev = Some(KeyBuf::of(k));
        count += 1;
    }
    check!(
        count == len,
        "{what}: forward scan saw {count} entries, expected {len}"
    );

    let mut c = tree.cursor(&g);
    let mut prev: Option<KeyBuf> = None;
    let mut count = 0;
    let mut item = c.seek_last();
    while let Some((k, v)) = item {
        check!(
            prev.is_none_or(|p| p.get() > k),
            "{what}: backward scan out of order at entry {count}"
        );
        check!(v == value(k), "{what}: backward scan: {k:?} holds {v:?}");
        prev = Some(KeyBuf::of(k));
        count += 1;
        item = c.prev();
    }
    check!(
        count == len,
        "{what}: backward scan saw {count} entries, expected {len}"
    );
    hprintln!(
        "{}: cursor scans saw {} entries each way, in order",
        what,
        len
    );
}

#[entry]
fn main() -> ! {
    hprintln!(
        "masstree firmware: Leaf {} bytes, Internode {} bytes (align {})",
        size_of::<Leaf>(),
        size_of::<Internode>(),
        align_of::<Leaf>()
    );

    // SAFETY: the buffer is used only by this heap, which lives as long as
    // `main` (which never returns); `&raw mut` makes no reference to the
    // `static mut`.
    let pool_heap = unsafe { Heap::new((&raw mut POOL_BUFFER).cast(), POOL_BYTES) };
    let mut tree: InlineMassTree<u32, PoolBackend<&Heap>> = InlineMassTree::new_in(
        PoolBackend::new_in(&pool_heap).with_max_slab_bytes(POOL_SLAB_BYTES),
    );

    // 1. Fill the pool.
    let mut stored = 0u32;
    {
        let g = tree.guard();
        loop {
            match tree.fallible().insert(&short_key(stored), stored, &g) {
                Ok(None) => stored += 1,
                Ok(Some(old)) => fail(format_args!("key {stored} was already there ({old})")),
                Err(failed) => {
                    let back = failed.into_value();
                    check!(
                        back == stored,
                        "the refused insert handed back {back}, not {stored}"
                    );
                    break;
                }
            }
            check!(stored < 1_000_000, "the pool never filled up");
        }
        check!(
            tree.len() == stored as usize,
            "len {} after {stored} inserts",
            tree.len()
        );
        for i in 0..stored {
            let got = tree.get(&short_key(i), &g);
            check!(got == Some(i), "get(key {i}) = {got:?}");
        }
        check!(
            tree.get(&short_key(stored), &g).is_none(),
            "the refused key is in the tree"
        );
    }
    let (heap_used, _) = pool_heap.usage();
    let stats = tree.backend().stats();
    hprintln!(
        "pool: {} keys in {} KiB of slabs: {} leaves, {} internodes, {} slabs ({} KiB); {} bytes per key",
        stored,
        POOL_SLAB_BYTES >> 10,
        stats.leaves,
        stats.internodes,
        stats.slabs,
        stats.slab_bytes >> 10,
        heap_used / stored as usize
    );
    scan_both_ways(&tree, stored as usize, value_of, "pool");

    // 2. Remove the lower half of the key space, reclaim, refill.
    let mut removed = 0u32;
    {
        let g = tree.guard();
        for i in 0..stored {
            let k = short_key(i);
            if k[0] < 0x80 {
                let got = tree.remove(&k, &g);
                check!(got == Some(i), "remove(key {i}) = {got:?}");
                removed += 1;
            }
        }
    }
    let kept = stored - removed;
    check!(
        tree.len() == kept as usize,
        "len {} after removing {removed}",
        tree.len()
    );
    let before = tree.backend().stats();
    tree.reclaim();
    let after = tree.backend().stats();
    hprintln!(
        "removed {} keys; reclaim: {} retired nodes -> {}, slabs {} -> {}",
        removed,
        before.retired_nodes,
        after.retired_nodes,
        before.slabs,
        after.slabs
    );
    check!(
        after.retired_nodes == 0,
        "reclaim left {} retired nodes",
        after.retired_nodes
    );

    let mut refilled = 0u32;
    {
        let g = tree.guard();
        loop {
            let k = long_key(refilled);
            let v = value_of(&k);
            match tree.fallible().insert(&k, v, &g) {
                Ok(None) => refilled += 1,
                Ok(Some(old)) => fail(format_args!(
                    "refill key {refilled} was already there ({old})"
                )),
                Err(failed) => {
                    let back = failed.into_value();
                    check!(back == v, "the refused refill handed back {back}, not {v}");
                    break;
                }
            }
        }
        check!(
            refilled >= removed / 4,
            "only {refilled} long keys fit in the room of {removed} short ones"
        );
        for i in 0..stored {
            let k = short_key(i);
            let want = (k[0] >= 0x80).then_some(i);
            let got = tree.get(&k, &g);
            check!(
                got == want,
                "after refill: get(key {i}) = {got:?}, want {want:?}"
            );
        }
        for j in 0..refilled {
            let k = long_key(j);
            let got = tree.get(&k, &g);
            check!(got == Some(value_of(&k)), "get(refill key {j}) = {got:?}");
        }
    }
    hprintln!("refill: {} long keys fit after reclaiming", refilled);
    scan_both_ways(
        &tree,
        (kept + refilled) as usize,
        value_of,
        "pool after refill",
    );

    // 3. A bulk-loaded index on the arena, over its own buffer.
    // SAFETY: as for the pool heap, with the other buffer.
    let arena_heap = unsafe { Heap::new((&raw mut ARENA_BUFFER).cast(), ARENA_BYTES) };
    let index: InlineMassTree<u32, ArenaBackend<&Heap>> =
        match BulkLoader::new(ArenaBackend::new_in(&arena_heap))
            .load((0..INDEX_KEYS).map(|i| (index_key(i), i)))
        {
            Ok(index) => index,
            Err(e) => fail(format_args!("bulk load: {e}")),
        };
    check!(
        index.len() == INDEX_KEYS as usize,
        "index len {}",
        index.len()
    );
    {
        let g = index.guard();
        for i in 0..INDEX_KEYS {
            let got = index.get(&index_key(i), &g);
            check!(got == Some(i), "index get({i}) = {got:?}");
        }
        // Keys 500..600 by a seek and 99 steps.
        let mut c = index.cursor(&g);
        let first = c
            .seek(&index_key(500), Seek::Ge)
            .map(|(k, v)| (KeyBuf::of(k), v));
        check!(
            first.is_some_and(|(k, v)| k.get() == index_key(500) && v == 500),
            "seek Ge 500"
        );
        for i in 501..600 {
            let got = c.next().map(|(k, v)| (k == index_key(i), v));
            check!(got == Some((true, i)), "range step to {i}: {got:?}");
        }
        // Between two keys, and past either end.
        let got = c.seek(b"sensor/00500/b", Seek::Ge).map(|(_, v)| v);
        check!(got == Some(501), "seek Ge between 500 and 501: {got:?}");
        let got = c.seek(b"sensor/00500/b", Seek::Lt).map(|(_, v)| v);
        check!(got == Some(500), "seek Lt between 500 and 501: {got:?}");
        let got = c.prev().map(|(_, v)| v);
        check!(got == Some(499), "prev after seek Lt: {got:?}");
        let got = c.seek(&index_key(INDEX_KEYS - 1), Seek::Gt).map(|(_, v)| v);
        check!(got.is_none(), "seek Gt the last key: {got:?}");
        let got = c.seek(b"sensor/", Seek::Le).map(|(_, v)| v);
        check!(got.is_none(), "seek Le before the first key: {got:?}");
    }
    let (arena_used, _) = arena_heap.usage();
    let a = index.backend().stats();
    hprintln!(
        "arena index: {} keys bulk-loaded, {} bytes used of a {}-byte chunk ({} bytes of the buffer)",
        INDEX_KEYS,
        a.bytes_used,
        a.bytes_reserved,
        arena_used
    );
    scan_both_ways(
        &index,
        INDEX_KEYS as usize,
        |k| value_of_index(k),
        "arena index",
    );

    hprintln!("masstree firmware: all checks passed");
    exit(debug::EXIT_SUCCESS)
}

/// The value stored under an index key: its number.
fn value_of_index(key: &[u8]) -> u32 {
    key[7..12]
        .iter()
        .fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}
