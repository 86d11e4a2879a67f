//! The `replay` fuzz target's check on stable: proptest generates the fuzzer's bytes
//! (every byte string decodes to a `Case`), so CI covers every shape of the catalogue,
//! every crash point and scripted recoveries without nightly. See `ordo_testkit::catalogue`.

use ordo_testkit::catalogue::{check_case, Case, Shape};
use ordo_testkit::JournalKind;
use proptest::prelude::*;

/// Cases per proptest run, each 7 runtime lifetimes on an in-memory journal (well
/// under a millisecond each). Override with `PROPTEST_CASES`.
const CASES: u32 = 4000;
/// Cases on a real sled journal in a temporary folder (tens of ms each).
const SLED_CASES: u32 = 40;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(CASES),
        // A failing case is shrunk on its bytes. It is kept in tests/fuzz_regressions.rs
        // by hand, not in a proptest-regressions file.
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn crash_and_replay_invariants_hold_for_generated_cases(data in proptest::collection::vec(any::<u8>(), 0..48)) {
        check_case(&Case::from_bytes(&data));
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(SLED_CASES).min(SLED_CASES),
        max_shrink_iters: 50,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_same_holds_on_a_sled_journal(data in proptest::collection::vec(any::<u8>(), 0..48)) {
        check_case(&Case { journal: JournalKind::Sled, ..Case::from_bytes(&data) });
    }
}

/// The decoder reaches every shape of the catalogue (so the property above does).
#[test]
fn every_shape_is_reachable_from_bytes() {
    let kinds: std::collections::HashSet<_> = (0..=u8::MAX)
        .map(|b| std::mem::discriminant(&Case::from_bytes(&[b]).shape))
        .collect();
    assert_eq!(kinds.len(), 8);
    assert_eq!(Case::from_bytes(&[5, 2]).shape, Shape::Spawned { tasks: 3 });
}
