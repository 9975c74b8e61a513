//! Owned iteration without a global allocation per entry (issue 15): the
//! keys that `iter`, `range`, `keys`, `prefix`, `first`/`last`,
//! `pop_first`/`pop_last` and `into_iter` hand out are `KeyBuf`s, inline up
//! to `KeyBuf::INLINE_CAPACITY` bytes. On every backend, with the tree's
//! memory (nodes and the cursors' scratch) from an allocator past the
//! global one, a loop over 10,000 such keys makes no global allocation; a
//! longer key makes exactly one (its heap block), and every key comes out
//! right.
//!
//! What is counted: the global-allocator requests (allocations and
//! reallocations) of the test's own thread, from after the iterator is made
//! to the end of the loop (`PerThread::requests_in`). Making the iterator
//! may allocate (a prefix's upper bound; on seize, the guard's first use
//! makes the collector), and so may the seize backend when it hands a batch
//! of retired nodes over, which the draining loops (`into_iter`,
//! `pop_first`) cause: there the count is bounded by the retirements, not
//! zero, and pool and arena, which keep retired nodes on intrusive lists,
//! stay at zero.
#![cfg(any(feature = "seize", feature = "pool", feature = "arena"))]

#[macro_use]
mod common;

use common::{PerThread, SystemAlloc};
use masstree::KeyBuf;

#[global_allocator]
static GLOBAL: PerThread = PerThread;

const N: usize = 10_000;
const CAP: usize = KeyBuf::INLINE_CAPACITY;

/// Key `i` of the short set: 5 to `CAP` bytes, through zero, one or two
/// shared 8-byte slices (so the scans cross trie layers and suffixes);
/// every 97th exactly `CAP` bytes long.
fn short_key(i: usize) -> Vec<u8> {
    let mut k = match i % 3 {
        0 => Vec::new(),
        1 => b"shared01".to_vec(),
        _ => b"shared01shared02".to_vec(),
    };
    k.extend_from_slice(format!("{i:05}").as_bytes());
    let len = if i % 97 == 0 { CAP } else { k.len() + i % 40 };
    k.resize(len, b'-');
    k
}

/// Key `i` of the mixed set: every 10th is longer than `CAP` (`CAP + 1`
/// bytes to about 1 KiB), the others short.
fn mixed_key(i: usize) -> Vec<u8> {
    if i % 10 != 0 {
        return short_key(i);
    }
    let mut k = format!("long/{i:05}").into_bytes();
    k.resize(CAP + 1 + (i * 7) % 962, b'=');
    k
}

/// The keys in order, and how many are longer than `CAP`.
fn sorted(key: fn(usize) -> Vec<u8>) -> (Vec<Vec<u8>>, usize) {
    let mut keys: Vec<Vec<u8>> = (0..N).map(key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), N, "distinct keys");
    let long = keys.iter().filter(|k| k.len() > CAP).count();
    (keys, long)
}

/// Checks items against the sorted model, in order (`model[at]` first,
/// `step` apart): the same bytes, the value that was inserted for them, the
/// inline form exactly when short. Allocates nothing. Returns how many it saw.
struct Check<'m> {
    model: &'m [Vec<u8>],
    at: isize,
    step: isize,
    seen: usize,
    /// A digest of each key's length and last byte (what a user reads).
    digest: usize,
}

impl<'m> Check<'m> {
    fn forward(model: &'m [Vec<u8>]) -> Self {
        Check {
            model,
            at: 0,
            step: 1,
            seen: 0,
            digest: 0,
        }
    }
    fn backward(model: &'m [Vec<u8>]) -> Self {
        Check {
            at: model.len() as isize - 1,
            step: -1,
            ..Self::forward(model)
        }
    }
    fn see(&mut self, k: &KeyBuf) {
        let want = &self.model[self.at as usize];
        assert_eq!(k, want, "key {} of the scan", self.seen);
        assert_eq!(k.is_inline(), want.len() <= CAP);
        self.digest = self
            .digest
            .wrapping_add(k.len() ^ usize::from(k.last().copied().unwrap_or(0)));
        self.at += self.step;
        self.seen += 1;
    }
}

for_each_backend! {
    type T = ITreeIn<u64, SystemAlloc>;

    /// A tree of `keys`, each key's value its index in the list.
    fn tree_of(keys: &[Vec<u8>]) -> T {
        let t = new_itree_in(SystemAlloc);
        {
            let g = t.guard();
            for (i, k) in keys.iter().enumerate() {
                t.insert(k, i as u64, &g);
            }
        }
        t
    }

    /// The index of `k` in `model`, as the tree's value for it.
    fn value_of(model: &[Vec<u8>], k: &[u8]) -> u64 {
        model.binary_search_by(|m| m[..].cmp(k)).expect("a model key") as u64
    }

    /// Every read-only owned scan over `model` (in the tree `t`): each
    /// checked entry by entry, each makes `per_long` requests per key longer
    /// than `CAP` in it and none otherwise.
    fn scans_allocate_only_for_long_keys(t: &T, model: &[Vec<u8>], per_long: usize) {
        let g = t.guard();
        let long = |keys: &[Vec<u8>]| keys.iter().filter(|k| k.len() > CAP).count() * per_long;

        // iter, both ways.
        let it = t.iter(&g);
        let (check, allocs) = PerThread::requests_in(|| {
            let mut c = Check::forward(model);
            for (k, v) in it {
                assert_eq!(v, value_of(model, &k));
                c.see(&k);
            }
            c
        });
        assert_eq!((check.seen, allocs), (model.len(), long(model)), "{BACKEND_NAME}: iter");
        assert_ne!(check.digest, 0);
        let it = t.iter(&g).rev();
        let (check, allocs) = PerThread::requests_in(|| {
            let mut c = Check::backward(model);
            for (k, _) in it {
                c.see(&k);
            }
            c
        });
        assert_eq!((check.seen, allocs), (model.len(), long(model)), "{BACKEND_NAME}: iter().rev()");

        // A range from the 1000th key to the 9000th (excluded).
        let (lo, hi) = (&model[1000][..], &model[9000][..]);
        let it = t.range(lo..hi, &g);
        let (check, allocs) = PerThread::requests_in(|| {
            let mut c = Check::forward(&model[1000..9000]);
            it.for_each(|(k, _)| c.see(&k));
            c
        });
        assert_eq!((check.seen, allocs), (8000, long(&model[1000..9000])), "{BACKEND_NAME}: range");

        // keys(), and a prefix that starts in a lower layer.
        let it = t.keys(&g);
        let (check, allocs) = PerThread::requests_in(|| {
            let mut c = Check::forward(model);
            for k in it {
                c.see(&k);
            }
            c
        });
        assert_eq!((check.seen, allocs), (model.len(), long(model)), "{BACKEND_NAME}: keys");
        let p = b"shared01shared02";
        let under: Vec<Vec<u8>> = model.iter().filter(|k| k.starts_with(p)).cloned().collect();
        let it = t.prefix(p, &g);
        let (check, allocs) = PerThread::requests_in(|| {
            let mut c = Check::forward(&under);
            for (k, _) in it {
                c.see(&k);
            }
            c
        });
        assert!(under.len() > N / 4);
        assert_eq!((check.seen, allocs), (under.len(), long(&under)), "{BACKEND_NAME}: prefix");

        // first and last (each a range of its own).
        let ((first, last), allocs) = PerThread::requests_in(|| (t.first(&g), t.last(&g)));
        let ends = [&model[0], &model[model.len() - 1]];
        assert_eq!(first.map(|e| e.0).unwrap(), *ends[0]);
        assert_eq!(last.map(|e| e.0).unwrap(), *ends[1]);
        let long_ends = ends.iter().filter(|k| k.len() > CAP).count() * per_long;
        assert_eq!(allocs, long_ends, "{BACKEND_NAME}: first/last");
    }

    #[test]
    fn iterating_short_keys_makes_no_global_allocation() {
        let (model, long) = sorted(short_key);
        assert_eq!(long, 0);
        assert!(model.iter().any(|k| k.len() == CAP), "keys at the capacity");
        let t = tree_of(&model);
        scans_allocate_only_for_long_keys(&t, &model, 1);
    }

    #[test]
    fn a_long_key_allocates_once_and_comes_out_right() {
        let (model, long) = sorted(mixed_key);
        assert_eq!(long, N / 10);
        let t = tree_of(&model);
        scans_allocate_only_for_long_keys(&t, &model, 1);
    }

    /// `into_iter` from both ends, and `pop_first`/`pop_last`: no global
    /// allocation per short key on pool and arena; on seize, a bounded
    /// number for the retired nodes (see the file's docs), far below one
    /// per key.
    #[test]
    fn draining_allocates_only_for_long_keys() {
        for key in [short_key as fn(usize) -> Vec<u8>, mixed_key] {
            let (model, long) = sorted(key);
            // Seize takes memory for its batches of retired nodes (76
            // requests while draining these 10,000 keys).
            let retire_allowance = if BACKEND_NAME.starts_with("seize") { N / 64 } else { 0 };

            let t = tree_of(&model);
            let mut it = t.into_iter();
            let ((front, back), allocs) = PerThread::requests_in(|| {
                let (mut front, mut back) = (Check::forward(&model), Check::backward(&model));
                while let Some((k, v)) = it.next() {
                    assert_eq!(v, value_of(&model, &k));
                    front.see(&k);
                    if let Some((k, _)) = it.next_back() {
                        back.see(&k);
                    }
                }
                (front, back)
            });
            assert_eq!(front.seen + back.seen, N, "{BACKEND_NAME}: into_iter");
            assert!(
                (long..=long + retire_allowance).contains(&allocs),
                "{BACKEND_NAME}: into_iter made {allocs} requests for {long} long keys"
            );

            let t = tree_of(&model);
            let g = t.guard();
            let ((front, back), allocs) = PerThread::requests_in(|| {
                let (mut front, mut back) = (Check::forward(&model), Check::backward(&model));
                while let Some((k, _)) = t.pop_first(&g) {
                    front.see(&k);
                    if let Some((k, _)) = t.pop_last(&g) {
                        back.see(&k);
                    }
                }
                (front, back)
            });
            assert_eq!((front.seen + back.seen, t.len()), (N, 0), "{BACKEND_NAME}: pop");
            assert!(
                (long..=long + retire_allowance).contains(&allocs),
                "{BACKEND_NAME}: pop_first/pop_last made {allocs} requests for {long} long keys"
            );
        }
    }
}
