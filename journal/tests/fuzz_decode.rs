//! The `journal_decode` fuzz target's body on seeded inputs, so stable CI covers it:
//! arbitrary bytes as every record type and under every key kind never panic.
#![allow(clippy::unwrap_used)]

mod common;

use ordo_journal::fuzzing::{encode_completion, encode_workflow, journal_decode};
use ordo_journal::Status;

#[test]
fn random_bytes_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0x0bd0_f022);
    let mut data = Vec::new();
    for _ in 0..3_000 {
        data.clear();
        let len = rng.usize(0..96);
        data.extend((0..len).map(|_| rng.u8(..)));
        journal_decode(&data);
    }
}

#[test]
fn mutations_of_valid_records_never_panic() {
    let mut rng = fastrand::Rng::with_seed(42);
    let valid = [
        encode_completion(&common::completion(3)),
        encode_completion(&common::completion(4)),
        encode_workflow(&common::workflow("w", Status::Pending)),
        encode_workflow(&common::workflow("w", Status::Failed)),
    ];
    let mut data = Vec::new();
    for i in 0..3_000 {
        let value = &valid[i % valid.len()];
        data.clear();
        data.push(rng.u8(..)); // the target's first byte picks where the value is planted
        data.extend_from_slice(value);
        match rng.u8(0..4) {
            0 => data.truncate(rng.usize(1..=data.len())),
            1 => data.extend((0..rng.usize(1..8)).map(|_| rng.u8(..))),
            _ => {
                for _ in 0..rng.usize(1..4) {
                    let at = rng.usize(1..data.len());
                    data[at] = rng.u8(..);
                }
            }
        }
        journal_decode(&data);
    }
}

#[test]
fn valid_records_planted_by_the_target_decode() {
    // Tag 0 plants the value as workflow "w"; the target asserts a decoded value
    // re-encodes to itself.
    let mut data = vec![0];
    data.extend_from_slice(&encode_workflow(&common::workflow("w", Status::Succeeded)));
    journal_decode(&data);
}
