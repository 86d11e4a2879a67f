//! The `replay` fuzz target's check on stable: proptest generates the fuzzer's bytes
//! (every byte string decodes to a `Case`), so CI covers every shape of the catalogue,
//! every crash point and scripted recoveries without nightly. See `ordo_testkit::catalogue`.
//! Not part of the PostgreSQL pass: the cases choose their journal kinds themselves
//! (`tests/replay_postgres.rs` runs the shapes on PostgreSQL).

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

/// The decoder reaches every shape of the catalogue, the talking ones included (so the
/// property above does).
#[test]
fn every_shape_is_reachable_from_bytes() {
    let kinds: std::collections::HashSet<_> = (0..=u8::MAX)
        .map(|b| std::mem::discriminant(&Case::from_bytes(&[b]).shape))
        .collect();
    assert_eq!(kinds.len(), 12);
    assert_eq!(Case::from_bytes(&[5, 2]).shape, Shape::Spawned { tasks: 3 });
    assert_eq!(Case::from_bytes(&[8, 1]).shape, Shape::Mailbox { n: 2 });
    assert_eq!(Case::from_bytes(&[10, 3]).shape, Shape::Children { n: 4 });
    assert_eq!(Case::from_bytes(&[250, 1]).shape, Shape::Enqueue { n: 2 });
}

/// Each talking shape, under several latencies and every crash point.
#[test]
fn the_talking_shapes_replay_exactly_after_every_crash() {
    use ordo_testkit::catalogue::check_case;
    for first in 0..6u8 {
        for (kind, size) in [
            (8u8, 0u8),
            (8, 3),
            (9, 5),
            (9, 40),
            (10, 0),
            (10, 3),
            (250, 0),
            (250, 3),
        ] {
            for crash in 0..4u8 {
                let bytes = [
                    kind,
                    size,
                    crash,
                    3,
                    first,
                    first.wrapping_mul(37),
                    0,
                    first ^ 0x85,
                    9,
                    1,
                ];
                check_case(&Case::from_bytes(&bytes));
            }
        }
    }
}
