//! A read-only index built in one pass: words of a text, sorted, bulk-loaded
//! into a tree on the arena backend, then queried by exact word and by
//! prefix from several threads. The arena hands out memory by bumping a
//! pointer and frees it all when the tree drops; guards cost nothing.
//!
//! `cargo run --example arena_index --features arena`

use std::collections::BTreeMap;

use masstree::InlineMassTree;
use masstree::alloc_backends::arena::ArenaBackend;

const TEXT: &str = "the quick brown fox jumps over the lazy dog and then the fox \
    sleeps while the dog keeps watch over the quiet farm until the brown hen \
    wakes the farmer who feeds the fox the dog and the hen";

fn main() {
    // Count the words: the index maps each word to its number of occurrences.
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for word in TEXT.split_whitespace() {
        *counts.entry(word).or_default() += 1;
    }

    // `from_sorted_in` takes the pairs in ascending key order (a BTreeMap's
    // order) and fills the leaves completely.
    let index: InlineMassTree<u64, ArenaBackend> =
        InlineMassTree::from_sorted_in(ArenaBackend::new(), counts.iter().map(|(w, &n)| (w, n)))
            .expect("sorted, distinct keys and enough memory");
    assert_eq!(index.len(), counts.len());

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
    assert_eq!(index.get("the", &g), Some(counts["the"]));
    assert_eq!(index.get("cat", &g), None);
    println!(
        "{} distinct words; \"the\" occurs {} times",
        index.len(),
        counts["the"]
    );
}
