use std::collections::HashSet;
use std::io::Write as _;

use crate::rng::Rng;
use crate::systems::{Array32Key, BytesKey, System, U64Key, systems};

/// A list of keys stored back to back.
#[derive(Default, Clone)]
pub(crate) struct Keys {
    pub(crate) bytes: Vec<u8>,
    /// Key `i` is `bytes[bounds[i]..bounds[i + 1]]`.
    pub(crate) bounds: Vec<usize>,
}

impl Keys {
    pub(crate) fn push(&mut self, key: &[u8]) {
        if self.bounds.is_empty() {
            self.bounds.push(0);
        }
        self.bytes.extend_from_slice(key);
        self.bounds.push(self.bytes.len());
    }
    /// The keys of `src` at `indices`, in that order.
    pub(crate) fn pick(src: &Keys, indices: impl IntoIterator<Item = usize>) -> Keys {
        let mut keys = Keys::default();
        for i in indices {
            keys.push(src.get(i));
        }
        keys
    }
    pub(crate) fn len(&self) -> usize {
        self.bounds.len().saturating_sub(1)
    }
    #[inline]
    pub(crate) fn get(&self, i: usize) -> &[u8] {
        &self.bytes[self.bounds[i]..self.bounds[i + 1]]
    }
    pub(crate) fn mean_len(&self) -> f64 {
        self.bytes.len() as f64 / self.len().max(1) as f64
    }
}

/// The keys of one key set; the value of `present[i]` is always `i`.
pub(crate) struct KeySet {
    pub(crate) name: &'static str,
    pub(crate) about: String,
    pub(crate) systems: fn() -> Vec<System>,
    pub(crate) present: Keys,
    /// `N / 2` keys never inserted by `insert`; `mixed` inserts the first half.
    pub(crate) absent: Keys,
    /// `present` in key order.
    pub(crate) sorted: Keys,
    /// The value (index in `present`) of each key of `sorted`.
    pub(crate) sorted_vals: Vec<u64>,
}

impl KeySet {
    pub(crate) fn len(&self) -> usize {
        self.present.len()
    }
    /// The rank in key order of each key of `present`.
    pub(crate) fn ranks(&self) -> Vec<u32> {
        let mut rank = vec![0u32; self.len()];
        for (r, &i) in self.sorted_vals.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        rank
    }
}

/// The key set `name` with `n` keys (and `n / 2` absent ones), the same on every run.
pub(crate) fn key_set(name: &'static str, n: usize) -> KeySet {
    type Pair = (Keys, Keys);
    let (about, systems, (present, absent)): (String, fn() -> Vec<System>, Pair) = match name {
        "rand8" => {
            let mut rng = Rng::new(0x6d61_7373_7472_6565);
            let keys = distinct_keys(n, &mut rng, |rng, out| {
                out.extend_from_slice(&rng.next_u64().to_be_bytes());
            });
            (
                "uniformly random 8-byte keys (peers: u64 keys)".into(),
                systems::<U64Key>,
                keys,
            )
        }
        "paths" => {
            let mut rng = Rng::new(0x7061_7468_7331);
            let (present, absent) = distinct_keys(n, &mut rng, path_key((n / 64).max(1) as u64));
            let lens = (0..present.len()).map(|i| present.get(i).len());
            let (min, max) = (lens.clone().min().unwrap_or(0), lens.max().unwrap_or(0));
            let about = format!(
                "path-like keys, {min}-{max} bytes (mean {:.1}), long shared prefixes, e.g. {:?} (peers: Box<[u8]> keys)",
                present.mean_len(),
                String::from_utf8_lossy(present.get(0)),
            );
            (about, systems::<BytesKey>, (present, absent))
        }
        "prefix24" => {
            const PREFIX: &[u8; 24] = b"tenant-0042/orders/2024/";
            let mut rng = Rng::new(0x7072_6566_6978_3234);
            let keys = distinct_keys(n, &mut rng, |rng, out| {
                out.extend_from_slice(PREFIX);
                out.extend_from_slice(&rng.next_u64().to_be_bytes());
            });
            let about = format!(
                "32-byte keys: the 24-byte prefix {:?} shared by all, then 8 random bytes (peers: [u8; 32] keys)",
                String::from_utf8_lossy(PREFIX)
            );
            (about, systems::<Array32Key>, keys)
        }
        "usr" => {
            let (present, absent) = usr_paths(n, &mut Rng::new(0x7573_722f));
            let about = format!(
                "the paths of the files and directories under /usr, collected now: {} to insert, {} absent, mean {:.1} bytes, e.g. {:?} (peers: Box<[u8]> keys)",
                present.len(),
                absent.len(),
                present.mean_len(),
                String::from_utf8_lossy(present.get(0)),
            );
            (about, systems::<BytesKey>, (present, absent))
        }
        _ => unreachable!("unknown key set {name}"),
    };
    let mut order: Vec<usize> = (0..present.len()).collect();
    order.sort_unstable_by(|&a, &b| present.get(a).cmp(present.get(b)));
    KeySet {
        name,
        about,
        systems,
        sorted: Keys::pick(&present, order.iter().copied()),
        sorted_vals: order.iter().map(|&i| i as u64).collect(),
        present,
        absent,
    }
}

/// `n + max(n / 2, 1)` distinct keys from `generate`: the first `n` to
/// insert, the others absent.
pub(crate) fn distinct_keys(
    n: usize,
    rng: &mut Rng,
    mut generate: impl FnMut(&mut Rng, &mut Vec<u8>),
) -> (Keys, Keys) {
    let absent_n = (n / 2).max(1);
    let mut seen = HashSet::with_capacity(n + absent_n);
    let (mut present, mut absent) = (Keys::default(), Keys::default());
    let mut key = Vec::new();
    while absent.len() < absent_n {
        key.clear();
        generate(rng, &mut key);
        if seen.insert(key.clone()) {
            let dest = if present.len() < n {
                &mut present
            } else {
                &mut absent
            };
            dest.push(&key);
        }
    }
    (present, absent)
}

/// Real keys: the paths under `/usr` (not following symbolic links), in
/// random order; two thirds (at most `n`) to insert, the rest absent.
pub(crate) fn usr_paths(n: usize, rng: &mut Rng) -> (Keys, Keys) {
    use std::os::unix::ffi::OsStrExt;
    let mut all: Vec<Vec<u8>> = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("/usr")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path.clone());
            }
            all.push(path.as_os_str().as_bytes().to_vec());
        }
    }
    assert!(all.len() >= 3, "usr: fewer than 3 paths under /usr");
    let order = rng.permutation(all.len());
    let present_n = (all.len() * 2 / 3).min(n);
    let absent_n = (all.len() - present_n).min((n / 2).max(1));
    let (mut present, mut absent) = (Keys::default(), Keys::default());
    for (i, &j) in order.iter().enumerate().take(present_n + absent_n) {
        if i < present_n {
            present.push(&all[j]);
        } else {
            absent.push(&all[j]);
        }
    }
    (present, absent)
}

/// `"{tenant}/users/{user:07}/{section}/{hex id}"`, 26 to 60 bytes.
pub(crate) fn path_key(users: u64) -> impl FnMut(&mut Rng, &mut Vec<u8>) {
    const TENANTS: [&str; 8] = [
        "acme",
        "globex-corp",
        "initech",
        "umbrella-intl",
        "hooli",
        "stark-industries",
        "wayne-ent",
        "cyberdyne",
    ];
    const SECTIONS: [&str; 6] = [
        "profile",
        "settings/notifications",
        "sessions",
        "billing/invoices",
        "posts",
        "friends",
    ];
    move |rng, out| {
        let tenant = TENANTS[rng.below(TENANTS.len() as u64) as usize];
        let user = rng.below(users);
        let section = SECTIONS[rng.below(SECTIONS.len() as u64) as usize];
        let digits = 1 + rng.below(6) as usize;
        let id = rng.below(1 << (4 * digits));
        write!(out, "{tenant}/users/{user:07}/{section}/{id:0digits$x}").unwrap();
    }
}
