//! A read-only index loaded from a sorted file in one pass: lines of
//! `word<TAB>count` in increasing byte order of the words (`LC_ALL=C sort`
//! makes one), bulk-loaded into a tree on the arena backend, then queried by
//! exact word and by prefix from several threads. The arena hands out memory
//! by bumping a pointer and frees it all when the tree drops; guards cost
//! nothing.
//!
//! `cargo run --example arena_index --features arena [FILE]`
//! (without FILE it first writes one, counting the words of a short text)

use std::collections::BTreeMap;
use std::error::Error;
use std::path::PathBuf;

use masstree::InlineMassTree;
use masstree::alloc_backends::arena::ArenaBackend;

const TEXT: &str = "the quick brown fox jumps over the lazy dog and then the fox \
    sleeps while the dog keeps watch over the quiet farm until the brown hen \
    wakes the farmer who feeds the fox the dog and the hen";

/// Writes the word counts of `TEXT`, sorted, to a file in the temp directory.
fn write_sample() -> std::io::Result<PathBuf> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for word in TEXT.split_whitespace() {
        *counts.entry(word).or_default() += 1;
    }
    let lines: String = counts.iter().map(|(w, n)| format!("{w}\t{n}\n")).collect();
    let path = std::env::temp_dir().join("masstree_arena_index.tsv");
    std::fs::write(&path, lines)?;
    Ok(path)
}

fn main() -> Result<(), Box<dyn Error>> {
    let path = match std::env::args().nth(1) {
        Some(path) => PathBuf::from(path),
        None => write_sample()?,
    };
    let text = std::fs::read_to_string(&path)?;
    let mut pairs: Vec<(&str, u64)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (word, count) = line
            .split_once('\t')
            .ok_or_else(|| format!("{}:{}: not `word<TAB>count`", path.display(), i + 1))?;
        pairs.push((word, count.parse()?));
    }

    // `from_sorted_in` takes the pairs in increasing key order (an error
    // names the first one out of order) and fills the leaves completely.
    let index: InlineMassTree<u64, ArenaBackend> =
        InlineMassTree::from_sorted_in(ArenaBackend::new(), pairs.iter().copied())?;
    assert_eq!(index.len(), pairs.len());

    // Readers share the index by reference.
    std::thread::scope(|s| {
        for prefix in ["f", "the", "w"] {
            let index = &index;
            s.spawn(move || {
                let g = index.guard();
                let words: Vec<String> = index
                    .prefix(prefix, &g)
                    .map(|(w, n)| format!("{}x{n}", String::from_utf8_lossy(&w)))
                    .collect();
                println!("{prefix:>4}*: {}", words.join(" "));
            });
        }
    });

    let g = index.guard();
    for (word, n) in &pairs {
        assert_eq!(index.get(word, &g), Some(*n));
    }
    println!(
        "{} words from {}; \"the\" occurs {} times",
        index.len(),
        path.display(),
        index.get("the", &g).unwrap_or(0)
    );
    Ok(())
}
