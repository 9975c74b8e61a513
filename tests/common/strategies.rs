//! proptest strategies and configuration shared by the model-based tests
//! (`tests/model.rs`, `tests/ordered.rs`).
#![allow(dead_code)]

use proptest::prelude::*;

/// `cases` cases (8 under Miri); `PROPTEST_CASES` overrides both, for long
/// exploratory runs and for CI's single-feature runs.
pub(crate) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if cfg!(miri) { 8 } else { cases }),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes with 0x00 and 0xFF (the extremes of each slice) heavily weighted.
pub(crate) fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => Just(0x00u8),
        4 => Just(0xFFu8),
        2 => Just(b'a'),
        1 => Just(0x01u8),
        1 => Just(0xFEu8),
        1 => Just(b'b'),
        2 => any::<u8>(),
    ]
}

/// A small pool of prefixes so that many keys share whole 8- and 16-byte
/// slices, and one 100 bytes long (several layers deep).
pub(crate) fn prefixes() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"a".to_vec(),
        b"abcdefg".to_vec(),
        b"abcdefgh".to_vec(),
        b"abcdefghi".to_vec(),
        b"abcdefgh\0\0\0\0\0\0\0\0".to_vec(),
        b"abcdefghabcdefgh".to_vec(),
        b"abcdefghabcdefghabcdefgh".to_vec(),
        b"prefix__prefix_".to_vec(),
        b"prefix__prefix__".to_vec(),
        b"prefix__prefix__p".to_vec(),
        vec![0x00; 8],
        vec![0x00; 16],
        vec![0xFF; 7],
        vec![0xFF; 8],
        vec![0xFF; 16],
        vec![0xFF; 24],
    ];
    v.push((0..100u8).collect());
    v
}
