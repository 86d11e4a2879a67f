//! The `journal_decode` fuzz target's body on seeded inputs, so stable CI covers it:
//! arbitrary bytes as every record type and under every key kind never panic, every
//! rejection is a typed error naming the key, and every value that decodes re-encodes to
//! bytes that decode to the same value (the body asserts these; bincode accepts
//! over-long varints, so the bytes themselves may differ). The reports check that the inputs really
//! reach the decoders rather than stopping at the format byte.
#![allow(clippy::unwrap_used)]

mod common;

use ordo_journal::fuzzing::{
    encode_completion, encode_workflow, journal_decode, journal_decode_report, DecodeReport,
};
use ordo_journal::{Status, FORMAT_VERSION};

fn add(total: &mut DecodeReport, one: DecodeReport) {
    total.decoded += one.decoded;
    total.corrupt += one.corrupt;
    total.wrong_version += one.wrong_version;
}

#[test]
fn random_bytes_are_rejected_with_typed_errors_naming_the_key() {
    let mut rng = fastrand::Rng::with_seed(0x0bd0_f022);
    let mut data = Vec::new();
    let mut total = DecodeReport::default();
    for _ in 0..3_000 {
        data.clear();
        let len = rng.usize(0..96);
        data.extend((0..len).map(|_| rng.u8(..)));
        // Half the inputs carry the right format byte after the tag, so the bincode
        // decoder sees them.
        if len > 1 && rng.bool() {
            data[1] = FORMAT_VERSION;
        }
        add(&mut total, journal_decode_report(&data));
    }
    assert!(
        total.corrupt > 2_000,
        "random bytes with the right format byte reach the decoder and are rejected there: {total:?}"
    );
    eprintln!("random bytes: {total:?}");
    assert!(total.wrong_version > 2_000, "{total:?}");
}

#[test]
fn mutations_of_valid_records_reach_the_decoders() {
    let mut rng = fastrand::Rng::with_seed(42);
    let valid = [
        encode_completion(&common::completion(3)),
        encode_completion(&common::completion(4)),
        encode_workflow(&common::workflow("w", Status::Pending)),
        encode_workflow(&common::workflow("w", Status::Failed)),
    ];
    let mut data = Vec::new();
    let mut total = DecodeReport::default();
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
                    // After the format byte: a mutation the decoder itself must judge.
                    let at = rng.usize(2..data.len());
                    data[at] = rng.u8(..);
                }
            }
        }
        add(&mut total, journal_decode_report(&data));
    }
    // Most mutated values keep their format byte and are judged by the decoder: some
    // still decode (a changed byte inside a string or a number), most are corrupt.
    eprintln!("mutations: {total:?}");
    assert!(total.corrupt > 3_000, "{total:?}");
    assert!(total.decoded > 300, "{total:?}");
}

#[test]
fn valid_records_planted_by_the_target_decode_to_themselves() {
    // Tag 0 plants the value as workflow "w"; the target asserts the record read back is
    // what these bytes decode to.
    let mut data = vec![0];
    data.extend_from_slice(&encode_workflow(&common::workflow("w", Status::Succeeded)));
    let report = journal_decode_report(&data);
    assert_eq!(
        report.decoded, 1,
        "the value after the tag decodes: {report:?}"
    );
    // Tag 1 plants a valid run under the key of seq 1..=1; this run holds seq 1.
    let mut data = vec![1];
    data.extend_from_slice(&encode_completion(&common::completion(1)));
    assert_eq!(journal_decode_report(&data).decoded, 1);
    journal_decode(&data);
}

#[test]
fn an_over_long_varint_decodes_and_round_trips() {
    // Found by the fuzzer: an empty run whose length is written as the three-byte varint
    // [251, 0, 0] instead of [0]. It decodes (to no completion) and must round-trip.
    journal_decode(&[1, 1, 251, 0, 0]);
    journal_decode(&[0, 1, 251, 0, 0]);
}

#[test]
fn a_queued_record_next_to_an_empty_pending_entry_is_refused_naming_the_entry() {
    // Found by the fuzzer: tag 4 plants an empty `Pending` index entry and a record that
    // decodes as enqueued; reading the record looks for its start mark in that entry,
    // which is not one, and the error names the entry.
    journal_decode(&[4, 1, 0, 0, 4, 1, 0, 0, 0, 2, 10]);
}
