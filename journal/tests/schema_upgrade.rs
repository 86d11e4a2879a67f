//! Schema version 3 (the app version at the end of workflow records) opens the journals
//! of schema version 2 and still refuses version 1.
//!
//! The version 2 journal is built the way the old code wrote it: the workflow value is
//! the version-2 wire struct, defined here field for field as `codec.rs` had it, after
//! the format-version byte; the schema key says 2.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{completion, workflow};
use ordo_journal::fuzzing::{schema_key, workflow_key};
use ordo_journal::{
    Batch, Durability, Error, Outcome, SledJournal, Status, Store, WorkflowRecord, FORMAT_VERSION,
    SCHEMA_VERSION,
};
use serde::Serialize;

/// The workflow record's value as schema version 2 wrote it (journal/src/codec.rs before
/// the app version): the same fields in the same order, nothing after them.
#[derive(Serialize)]
struct WorkflowWireV2<'a> {
    name: &'a str,
    #[serde(with = "as_bytes")]
    input: &'a [u8],
    status: Status,
    output: Option<OutcomeWireV2<'a>>,
    created_ms: u64,
    updated_ms: u64,
    recovery_attempts: u32,
}

#[derive(Serialize)]
enum OutcomeWireV2<'a> {
    Ok(#[serde(with = "as_bytes")] &'a [u8]),
    Err(#[serde(with = "as_bytes")] &'a [u8]),
}

/// A byte field as one length-prefixed run, as the old `Bytes` wrapper wrote it.
mod as_bytes {
    pub fn serialize<S: serde::Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }
}

/// The stored bytes of `rec` under schema version 2.
fn v2_value(rec: &WorkflowRecord) -> Vec<u8> {
    let wire = WorkflowWireV2 {
        name: &rec.name,
        input: &rec.input,
        status: rec.status,
        output: rec.output.as_ref().map(|o| match o {
            Outcome::Ok(b) => OutcomeWireV2::Ok(b),
            Outcome::Err(b) => OutcomeWireV2::Err(b),
        }),
        created_ms: rec.created_ms,
        updated_ms: rec.updated_ms,
        recovery_attempts: rec.recovery_attempts,
    };
    let mut value = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(&wire, &mut value, bincode::config::standard()).unwrap();
    value
}

/// A closed journal at `path` that the version-2 code could have left: schema 2, a
/// pending and a succeeded workflow in the old record layout, and completions (whose
/// layout did not change).
fn v2_journal(path: &Path) -> Vec<WorkflowRecord> {
    let mut records = vec![
        workflow("old-pending", Status::Pending),
        workflow("old-done", Status::Succeeded),
    ];
    for rec in &mut records {
        rec.app_version = None; // version 2 had no such field
    }
    let journal = SledJournal::open(path, Durability::Flush).unwrap();
    let mut batch = Batch::new();
    for rec in &records {
        // Through a commit, so the status index and the seal are what the old code left.
        batch.put_workflow(rec.clone());
        batch.push_completion(&rec.id, completion(0));
        batch.push_completion(&rec.id, completion(1));
    }
    journal.commit(&batch).unwrap();
    for rec in &records {
        journal
            .raw_insert(&workflow_key(&rec.id), &v2_value(rec))
            .unwrap();
    }
    journal
        .raw_insert(schema_key(), &2u32.to_be_bytes())
        .unwrap();
    records
}

fn stored_schema(journal: &SledJournal) -> u32 {
    let bytes = journal
        .raw_get(schema_key())
        .unwrap()
        .expect("a schema version");
    u32::from_be_bytes(bytes.try_into().unwrap())
}

#[test]
fn the_old_layout_is_one_byte_shorter_than_a_record_without_app_version() {
    // The fixture is the old layout, not the new one: a new record with no app version
    // ends with one more byte (the `None`).
    let rec = workflow("w", Status::Failed);
    let mut without = rec.clone();
    without.app_version = None;
    let new = ordo_journal::fuzzing::encode_workflow(&without);
    assert_eq!(new.len(), v2_value(&rec).len() + 1);
    assert_eq!(new[..new.len() - 1], v2_value(&rec)[..]);
}

#[test]
fn a_version_2_journal_opens_read_only_with_no_app_versions_and_stays_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let records = v2_journal(&path);

    let journal = SledJournal::open_existing(&path).unwrap();
    for rec in &records {
        assert_eq!(journal.workflow(&rec.id).unwrap().as_ref(), Some(rec));
        assert_eq!(
            journal.completions(&rec.id).unwrap(),
            [completion(0), completion(1)]
        );
    }
    assert_eq!(
        journal.workflows(Some(Status::Pending)).unwrap(),
        [records[0].clone()]
    );
    drop(journal);

    // A reader never writes: the journal is still version 2 on disk.
    let journal = SledJournal::open_existing(&path).unwrap();
    assert_eq!(stored_schema(&journal), 2);
}

#[test]
fn a_version_2_journal_opened_for_writing_is_marked_version_3_and_mixes_both_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let records = v2_journal(&path);
    {
        let journal = SledJournal::open_existing(&path).unwrap();
        assert_eq!(
            stored_schema(&journal),
            2,
            "the fixture is a version 2 journal"
        );
    }

    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(stored_schema(&journal), SCHEMA_VERSION);
    assert_eq!(
        journal.workflow("old-pending").unwrap().as_ref(),
        Some(&records[0])
    );

    // The old pending workflow finishes: its record is rewritten in the new layout.
    let mut done = records[0].clone();
    done.status = Status::Succeeded;
    done.output = Some(Outcome::Ok(b"late".to_vec()));
    let mut fresh = workflow("new", Status::Pending);
    fresh.app_version = Some("2.0.0".into());
    let mut batch = Batch::new();
    batch.update_workflow(done.clone(), Status::Pending);
    batch.insert_workflow(fresh.clone());
    journal.commit(&batch).unwrap();
    drop(journal);

    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("old-pending").unwrap(), Some(done));
    assert_eq!(
        journal.workflow("old-done").unwrap().as_ref(),
        Some(&records[1])
    );
    assert_eq!(journal.workflow("new").unwrap(), Some(fresh));
    assert_eq!(journal.workflows(Some(Status::Succeeded)).unwrap().len(), 2);
    assert_eq!(journal.completions("old-done").unwrap().len(), 2);
}

#[test]
fn a_version_1_journal_is_still_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    v2_journal(&path);
    {
        let journal = SledJournal::open(&path, Durability::Flush).unwrap();
        journal
            .raw_insert(schema_key(), &1u32.to_be_bytes())
            .unwrap();
    }
    for err in [
        SledJournal::open(&path, Durability::Flush).unwrap_err(),
        SledJournal::open_existing(&path).unwrap_err(),
    ] {
        match &err {
            Error::UnsupportedVersion {
                found, supported, ..
            } => assert_eq!((*found, *supported), (1, SCHEMA_VERSION)),
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
        assert!(
            err.to_string().contains("written by an older ordo"),
            "{err}"
        );
    }
    let journal = SledJournal::open_existing(&path);
    assert!(journal.is_err(), "still version 1: nothing upgraded it");
}

#[test]
fn a_record_with_garbage_after_its_app_version_is_corrupt() {
    let journal = SledJournal::temporary().unwrap();
    let mut rec = workflow("w", Status::Pending);
    rec.app_version = Some("1.0".into());
    let mut value = ordo_journal::fuzzing::encode_workflow(&rec);
    value.push(7);
    journal.raw_insert(&workflow_key("w"), &value).unwrap();
    let err = journal.workflow("w").unwrap_err();
    assert_eq!(
        err.to_string(),
        "corrupt journal record at workflow/w: 1 trailing bytes after the value"
    );
    // An app version cut short is corrupt too, not a record without one.
    let value = ordo_journal::fuzzing::encode_workflow(&rec);
    journal
        .raw_insert(&workflow_key("w"), &value[..value.len() - 1])
        .unwrap();
    assert!(matches!(
        journal.workflow("w").unwrap_err(),
        Error::Corrupt { .. }
    ));
}
