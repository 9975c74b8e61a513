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
    let short: [&[u8]; 17] = [
        b"",
        b"a",
        b"abcdefg",
        b"abcdefgh",
        b"abcdefghi",
        b"abcdefgh\0\0\0\0\0\0\0\0",
        b"abcdefghabcdefgh",
        b"abcdefghabcdefghabcdefgh",
        b"prefix__prefix_",
        b"prefix__prefix__",
        b"prefix__prefix__p",
        &[0x00; 8],
        &[0x00; 16],
        &[0xFF; 7],
        &[0xFF; 8],
        &[0xFF; 16],
        &[0xFF; 24],
    ];
    let mut v: Vec<Vec<u8>> = short.map(<[u8]>::to_vec).to_vec();
    v.push((0..100u8).collect());
    v
}
