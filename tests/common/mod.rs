//! Shared helpers for the integration tests.
//!
//! * [`for_each_backend!`] expands a block of tests once per enabled node
//!   backend, inside a module named after the backend (`seize::...`). Inside
//!   the block, the backend is reachable as:
//!     - `Backend` / `BackendIn<A>`: the backend type (Global / custom allocator),
//!     - `backend()` / `backend_in(a)`: a fresh backend value,
//!     - `Tree<V>` / `ITree<V>` (+ `TreeIn<V, A>` / `ITreeIn<V, A>`): tree types,
//!     - `new_tree::<V>()`, `new_itree::<V>()`, `new_tree_in(a)`, `new_itree_in(a)`.
//!
//!   Everything at the top level of the including test file is visible through
//!   `use super::*`.
//! * [`TestAlloc`] / [`Ledger`] (`alloc.rs`): the test allocator, counting,
//!   failing on request and logging addresses (the crate's unit tests use the
//!   same file); [`PerThread`], the global allocator that counts per thread,
//!   and [`SystemAlloc`], an allocator past it.
//! * [`Rng`] (`rng.rs`): the seeded PRNG (splitmix64), also the unit tests'
//!   and the benchmark's.
//! * `strategies`: the proptest configuration and key-byte strategies of
//!   the model-based tests.
//! * key generators that stress layering (shared 8/16-byte slices, trailing zeros).
//! * [`vec_key`]: an iterator's `(KeyBuf, V)` entry as `(Vec<u8>, V)`, as models keep them.
#![allow(dead_code, unused_macros, unused_imports)]

mod alloc;
mod rng;
pub(crate) mod strategies;

pub(crate) use alloc::{Ledger, PerThread, SystemAlloc, TestAlloc};
pub(crate) use rng::Rng;

/// Expand the given items once per enabled backend, each copy in its own module.
///
/// A new backend is one `@one` line in the entry arm; every test written with
/// this macro then runs against it too (as `seize::...`, `pool::...`,
/// `arena::...`, `seize_huge_pages::...`). A backend whose constructor is not
/// `new_in(allocator)` takes an `@with` line: its `cfg`, type and constructor.
macro_rules! for_each_backend {
    // Items shared by every backend module (written in terms of `Backend`).
    (@common) => {
        #[allow(dead_code)]
        pub(crate) type Tree<V> = masstree::MassTree<V, Backend>;
        #[allow(dead_code)]
        pub(crate) type ITree<V> = masstree::InlineMassTree<V, Backend>;
        #[allow(dead_code)]
        pub(crate) type TreeIn<V, A> = masstree::MassTree<V, BackendIn<A>>;
        #[allow(dead_code)]
        pub(crate) type ITreeIn<V, A> = masstree::InlineMassTree<V, BackendIn<A>>;

        #[allow(dead_code)]
        pub(crate) fn new_tree<V: Send + Sync>() -> Tree<V> {
            masstree::MassTree::new_in(backend())
        }
        #[allow(dead_code)]
        pub(crate) fn new_itree<V>() -> ITree<V>
        where
            V: masstree::InlineValue,
        {
            masstree::InlineMassTree::new_in(backend())
        }
        #[allow(dead_code)]
        pub(crate) fn new_tree_in<V: Send + Sync, A>(a: A) -> TreeIn<V, A>
        where
            A: masstree::allocator_api2::alloc::Allocator,
        {
            masstree::MassTree::new_in(backend_in(a))
        }
        #[allow(dead_code)]
        pub(crate) fn new_itree_in<V, A>(a: A) -> ITreeIn<V, A>
        where
            A: masstree::allocator_api2::alloc::Allocator,
            V: masstree::InlineValue,
        {
            masstree::InlineMassTree::new_in(backend_in(a))
        }
    };

    // One backend: `feature`, module name, backend type path (generic over the
    // allocator, constructed with `new_in(allocator)`), its promises, the test items.
    (@one $feature:literal, $name:ident, $($backend:ident)::+, $promises:tt, [$($body:tt)*]) => {
        for_each_backend!(@with [feature = $feature], $feature, $name,
            $($backend)::+<A>, |a| $($backend)::+::new_in(a), $promises, [$($body)*]);
    };

    // One backend in general: the `cfg` it needs, its name, module name, its
    // type in terms of the allocator `A`, a closure making it from an `A`,
    // its promises (see the entry arm), the test items.
    (@with [$($cfg:tt)*], $label:literal, $name:ident, $bty:ty, $ctor:expr,
        {shared: $shared:expr, reuses: $reuses:expr, frees: $frees:expr, waiting: $waiting:expr},
        [$($body:tt)*]) => {
        #[cfg($($cfg)*)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use masstree::{InlineMassTree, MassTree};

            #[allow(dead_code)]
            pub(crate) const RECLAIMS_WHILE_SHARED: bool = $shared;
            #[allow(dead_code)]
            pub(crate) const REUSES_AFTER_RECLAIM: bool = $reuses;
            #[allow(dead_code)]
            pub(crate) const FREES_ON_RECLAIM: bool = $frees;
            #[allow(dead_code)]
            pub(crate) const WAITING: isize = $waiting;

            /// Backend with a custom allocator.
            #[allow(dead_code)]
            pub(crate) type BackendIn<A> = $bty;
            /// Backend with the default (`Global`) allocator.
            #[allow(dead_code)]
            pub(crate) type Backend = BackendIn<masstree::allocator_api2::alloc::Global>;
            #[allow(dead_code)]
            pub(crate) const BACKEND_NAME: &str = $label;

            #[allow(dead_code)]
            pub(crate) fn backend_in<A>(a: A) -> BackendIn<A>
            where
                A: masstree::allocator_api2::alloc::Allocator,
            {
                ($ctor)(a)
            }
            #[allow(dead_code)]
            pub(crate) fn backend() -> Backend {
                backend_in(masstree::allocator_api2::alloc::Global)
            }

            for_each_backend!(@common);

            $($body)*
        }
    };

    // Entry point: one line per backend, with what the backend promises about
    // memory (tests check exactly what is promised):
    // * shared (RECLAIMS_WHILE_SHARED): retired memory is freed while the tree
    //   is in use (guards come and go), without `reclaim()`;
    // * reuses (REUSES_AFTER_RECLAIM): memory retired before
    //   `reclaim()`/`clear()` is reused (or returned to the allocator) afterwards;
    // * frees (FREES_ON_RECLAIM): `reclaim()`/`clear()` give node memory back
    //   to the allocator (not just to a free list);
    // * waiting (WAITING): how many retired objects a thread may hold back
    //   from reclamation between `reclaim()` calls (seize: one unfinished batch).
    ($($body:tt)*) => {
        for_each_backend!(@one "seize", seize, masstree::alloc_backends::seize::SeizeBackend,
            {shared: true, reuses: true, frees: true,
             waiting: masstree::alloc_backends::seize::DEFAULT_BATCH_SIZE as isize},
            [$($body)*]);
        for_each_backend!(@one "pool", pool, masstree::alloc_backends::pool::PoolBackend,
            {shared: false, reuses: true, frees: false, waiting: 0}, [$($body)*]);
        for_each_backend!(@one "arena", arena, masstree::alloc_backends::arena::ArenaBackend,
            {shared: false, reuses: false, frees: false, waiting: 0}, [$($body)*]);
        // The seize backend with its nodes in huge-page slabs: the counting
        // allocators see slabs (and values, suffixes), not single nodes.
        for_each_backend!(@with [all(feature = "seize", feature = "huge-pages")], "seize+huge-pages",
            seize_huge_pages,
            masstree::alloc_backends::seize::SeizeBackend<
                masstree::alloc_backends::huge_pages::HugePageSlabs<A>>,
            |a| masstree::alloc_backends::seize::SeizeBackend::new_in(
                masstree::alloc_backends::huge_pages::HugePageSlabs::new_in(a)),
            {shared: true, reuses: true, frees: true,
             waiting: masstree::alloc_backends::seize::DEFAULT_BATCH_SIZE as isize},
            [$($body)*]);
    };
}

/// A 64-bit hash of a byte string (FNV-1a followed by a finalizer); used to
/// tie values to the key they were written for.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h ^= key.len() as u64;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// Number of test iterations scaled for the build: tiny under Miri, reduced in
/// debug builds, full in release.
pub(crate) fn scaled(release: usize) -> usize {
    if cfg!(miri) {
        (release / 1000).clamp(16, 200)
    } else if cfg!(debug_assertions) {
        (release / 4).max(1)
    } else {
        release
    }
}

/// Deterministic key number `id` in one of several shapes that stress the
/// trie structure (all distinct for distinct ids):
/// * 0: big-endian u64 (8 bytes, splits in layer 0),
/// * 1: shared 8-byte prefix + be id  (layer 1),
/// * 2: shared 16-byte prefix + be id + tail (layer 2 + suffix),
/// * 3: decimal string (variable length 1..20),
/// * 4: 8 identical bytes + decimal + long tail (suffix, then layer on collision),
/// * 5: be id followed by 0..3 zero bytes depending on id (trailing-zero siblings),
/// * 6: 0xFF-heavy 24-byte prefix + be id.
pub(crate) fn shaped_key(id: u64) -> Vec<u8> {
    let shape = id % 7;
    let n = id / 7;
    let mut k = Vec::new();
    match shape {
        0 => k.extend_from_slice(&n.to_be_bytes()),
        1 => {
            k.extend_from_slice(b"prefix01");
            k.extend_from_slice(&n.to_be_bytes());
        }
        2 => {
            k.extend_from_slice(b"sixteen-byte-pfx");
            k.extend_from_slice(&n.to_be_bytes());
            k.extend_from_slice(b"tail");
        }
        3 => k.extend_from_slice(n.to_string().as_bytes()),
        4 => {
            k.extend_from_slice(b"samesame");
            k.extend_from_slice(n.to_string().as_bytes());
            k.extend_from_slice(&[b'-'; 30]);
        }
        5 => {
            // id n with (n % 4) trailing zeros: distinct ids stay distinct
            // because the 8-byte body (n / 4) and the zero count encode n.
            k.extend_from_slice(&(n / 4).to_be_bytes());
            k.push(0xAB);
            k.extend(std::iter::repeat_n(0u8, (n % 4) as usize));
        }
        _ => {
            k.extend_from_slice(&[0xFF; 24]);
            k.extend_from_slice(&n.to_be_bytes());
        }
    }
    // shape tag at the front would destroy the prefix sharing; instead make the
    // shapes disjoint through their lengths/prefixes. Shape 0 and 5 both start
    // with a be u64 but differ in length (8 vs >= 9); shape 3 is digits only
    // and at most 20 bytes, shape 0 is exactly 8 bytes and could collide with
    // an 8-digit decimal string: avoid by appending a marker to shape 0 keys
    // whose bytes are all ASCII digits.
    if shape == 0 && k.iter().all(|b| b.is_ascii_digit()) {
        k.push(b'#');
    }
    k
}

pub(crate) fn hex(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// An entry of an owning iterator with its key as a `Vec<u8>`, to compare
/// with a model's entries (`t.iter(&g).map(vec_key)`).
pub(crate) fn vec_key<V>((k, v): (masstree::KeyBuf, V)) -> (Vec<u8>, V) {
    (k.into_vec(), v)
}
