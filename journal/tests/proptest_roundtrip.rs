//! Arbitrary records survive the journal unchanged (property test, small case count).
#![allow(clippy::unwrap_used)]

use ordo_journal::{Batch, Completion, Outcome, SledJournal, Status, Store, WorkflowRecord};
use proptest::prelude::*;

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Outcome::Ok),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Outcome::Err),
    ]
}

fn record(id: String) -> impl Strategy<Value = WorkflowRecord> {
    (
        ".{0,12}",
        proptest::collection::vec(any::<u8>(), 0..64),
        0..4_usize,
        proptest::option::of(outcome()),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        proptest::option::of(".{0,8}"),
        proptest::option::of(any::<u64>()),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            move |(
                name,
                input,
                status,
                output,
                created_ms,
                updated_ms,
                recovery_attempts,
                app_version,
                deadline_ms,
                first_step,
                keyed_tokens,
            )| {
                WorkflowRecord {
                    id: id.clone(),
                    name,
                    input,
                    status: Status::ALL[status],
                    output,
                    created_ms,
                    updated_ms,
                    recovery_attempts,
                    app_version,
                    deadline_ms,
                    first_step,
                    keyed_tokens,
                }
            },
        )
}

fn completion() -> impl Strategy<Value = Completion> {
    (
        any::<u64>(),
        ".{0,12}",
        outcome(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(step_id, name, outcome, attempts, started_ms, ended_ms)| Completion {
                seq: 0,
                step_id,
                name,
                outcome,
                attempts,
                started_ms,
                ended_ms,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn records_and_completions_round_trip(
        rec in ".{0,16}".prop_flat_map(record),
        steps in proptest::collection::vec((completion(), 1..1_000_u64), 0..20),
        split in 0..20_usize,
    ) {
        let journal = SledJournal::temporary().unwrap();
        // Strictly increasing seqs with arbitrary gaps, committed in two batches.
        let mut seq = 0;
        let expected: Vec<Completion> = steps
            .into_iter()
            .map(|(c, gap)| {
                seq += gap;
                Completion { seq, ..c }
            })
            .collect();
        let (first, second) = expected.split_at(split.min(expected.len()));
        let mut batch = Batch::new();
        batch.put_workflow(rec.clone());
        for c in first.iter().rev() {
            batch.push_completion(&rec.id, c.clone());
        }
        journal.commit(&batch).unwrap();
        batch.clear();
        for c in second {
            batch.push_completion(&rec.id, c.clone());
        }
        journal.commit(&batch).unwrap();

        prop_assert_eq!(journal.workflow(&rec.id).unwrap(), Some(rec.clone()));
        prop_assert_eq!(journal.completions(&rec.id).unwrap(), expected);
        prop_assert_eq!(journal.workflows(Some(rec.status)).unwrap(), vec![rec]);
    }
}
