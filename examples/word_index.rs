//! A word index built by four threads at once: each counts the words of its
//! share of the lines into one shared tree through the entry API (the count
//! of a word is read and replaced atomically, whoever else counts it), then
//! the index is read in key order: a range of words, and the most frequent.
//!
//! `cargo run --example word_index [FILE]` (default: this crate's README)

use std::collections::BTreeSet;

use masstree::{InlineMassTree, KeyBuf};

const THREADS: usize = 4;

fn main() -> std::io::Result<()> {
    let text = match std::env::args().nth(1) {
        Some(path) => std::fs::read_to_string(path)?,
        None => include_str!("../README.md").to_string(),
    };
    let lines: Vec<&str> = text.lines().collect();

    // Word-sized counts live in the leaves: no allocation per value.
    let index: InlineMassTree<u64> = InlineMassTree::new();
    let counted: usize = std::thread::scope(|s| {
        let workers: Vec<_> = lines
            .chunks(lines.len().div_ceil(THREADS).max(1))
            .map(|share| {
                let index = &index;
                s.spawn(move || {
                    let mut words = 0;
                    for line in share {
                        // A guard per line: retired memory can be freed between lines.
                        let g = index.guard();
                        for word in line.split(|c: char| !c.is_alphabetic()) {
                            if !word.is_empty() {
                                let word = word.to_lowercase();
                                index.entry(&word, &g).and_modify(|n| n + 1).or_insert(1);
                                words += 1;
                            }
                        }
                    }
                    words
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });

    let g = index.guard();
    let total: u64 = index.values(&g).sum();
    assert_eq!(total, counted as u64, "every occurrence counted once");
    println!("{counted} words, {} distinct", index.len());

    // Keys come back in order: the words from "tree" up to "trie".
    let near: Vec<String> = index
        .range("tree".."trie", &g)
        .map(|(word, n)| format!("{}x{n}", String::from_utf8_lossy(&word)))
        .collect();
    println!("tree..trie: {}", near.join(" "));

    // The most frequent words: one pass in key order, kept by count.
    let mut top: BTreeSet<(u64, KeyBuf)> = BTreeSet::new();
    for (word, n) in index.iter(&g) {
        top.insert((n, word));
        if top.len() > 10 {
            top.pop_first();
        }
    }
    for (n, word) in top.iter().rev() {
        println!("{n:>6} {}", String::from_utf8_lossy(word));
    }
    Ok(())
}
