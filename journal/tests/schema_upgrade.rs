//! Schema version 9 (the first step of a workflow's current run at the end of its
//! record), version 8 (an enqueued workflow's record held in its `Pending` index entry),
//! version 7 (no status-index entries for `Succeeded`), version 6 (queue entries in
//! `Pending` index entries), version 5 (no status-index entries for queued workflows)
//! and version 4 (the deadline at the end of workflow records) open the journals of
//! schema versions 2 (no app version, no deadline), 3 (no deadline), 4 (the queued
//! statuses indexed), 5 (queue entries as queue records of their own), 6 (`Succeeded`
//! indexed), 7 (queued workflows with records of their own) and 8 (no first step), and
//! still refuse version 1.
//!
//! The old journals are built the way the old code wrote them: the workflow value is the
//! old wire struct, defined here field for field as `codec.rs` had it, after the
//! format-version byte (version 3: the version-2 fields, then the app version); the
//! schema key says 2 or 3.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{completion, workflow};
use ordo_journal::fuzzing::{schema_key, status_key, workflow_key};
use ordo_journal::queue::ENTRY;
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

/// The stored bytes of `rec` under schema version 3: the version-2 fields, then the app
/// version, nothing after it.
fn v3_value(rec: &WorkflowRecord) -> Vec<u8> {
    let mut value = v2_value(rec);
    let app_version: Option<&str> = rec.app_version.as_deref();
    bincode::serde::encode_into_std_write(app_version, &mut value, bincode::config::standard())
        .unwrap();
    value
}

/// The stored bytes of `rec` under schema versions 4 to 8: the version-3 fields, then the
/// deadline, nothing after it.
fn v8_value(rec: &WorkflowRecord) -> Vec<u8> {
    let mut value = v3_value(rec);
    bincode::serde::encode_into_std_write(rec.deadline_ms, &mut value, bincode::config::standard())
        .unwrap();
    value
}

/// A closed journal at `path` that the version-2 code could have left: schema 2, a
/// pending and a succeeded workflow in the old record layout, and completions (whose
/// layout did not change).
fn v2_journal(path: &Path) -> Vec<WorkflowRecord> {
    old_journal(path, 2)
}

/// A closed journal at `path` as the code of schema `version` (2 or 3) left it: the
/// records in that version's layout, without the fields it did not have.
fn old_journal(path: &Path, version: u32) -> Vec<WorkflowRecord> {
    let mut records = vec![
        workflow("old-pending", Status::Pending),
        workflow("old-done", Status::Succeeded),
    ];
    for rec in &mut records {
        rec.deadline_ms = None; // versions 2 and 3 had no such field
        rec.first_step = 0; // nor any version before 9 this one
        rec.keyed_tokens = false; // nor this one
        if version == 2 {
            rec.app_version = None; // nor version 2 this one
        }
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
        let value = if version == 2 {
            v2_value(rec)
        } else {
            v3_value(rec)
        };
        journal.raw_insert(&workflow_key(&rec.id), &value).unwrap();
    }
    journal
        .raw_insert(schema_key(), &version.to_be_bytes())
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

/// Leaves at `path` a closed journal as the code of schema `version` did: `records` and
/// a `running` pending workflow committed, plus the status-index entries of `indexed`
/// that that code kept and this one does not.
fn with_index_entries(
    path: &Path,
    records: &[WorkflowRecord],
    indexed: &[WorkflowRecord],
    version: u32,
) {
    let journal = SledJournal::open(path, Durability::Flush).unwrap();
    let mut batch = Batch::new();
    for rec in records {
        batch.insert_workflow(rec.clone());
    }
    batch.insert_workflow(workflow("running", Status::Pending));
    journal.commit(&batch).unwrap();
    for rec in indexed {
        journal
            .raw_insert(&status_key(rec.status, &rec.id), &[])
            .unwrap();
    }
    journal
        .raw_insert(schema_key(), &version.to_be_bytes())
        .unwrap();
}

/// Opens the journal at `path` read-only, checking that it is still of schema `version`.
fn open_read_only_at(path: &Path, version: u32) -> SledJournal {
    let journal = SledJournal::open_existing(path).unwrap();
    assert_eq!(
        stored_schema(&journal),
        version,
        "the fixture is a version {version} journal"
    );
    journal
}

#[test]
fn the_old_layouts_are_shorter_than_a_record_without_app_version_or_deadline() {
    // The fixtures are the old layouts, not the new one: a new record with no app
    // version and no deadline ends with two more bytes (the two `None`s) than the
    // version-2 layout, and one with an app version but no deadline with one more byte
    // (the deadline's `None`) than the version-3 layout.
    let rec = workflow("w", Status::Failed);
    // Since version 9 two more bytes end both (the first step, 0, and the token kind).
    let mut without = rec.clone();
    without.app_version = None;
    without.deadline_ms = None;
    without.first_step = 0;
    let new = ordo_journal::fuzzing::encode_workflow(&without);
    assert_eq!(new.len(), v2_value(&rec).len() + 4);
    assert_eq!(new[..new.len() - 4], v2_value(&rec)[..]);

    let mut no_deadline = rec.clone();
    no_deadline.deadline_ms = None;
    no_deadline.first_step = 0;
    let new = ordo_journal::fuzzing::encode_workflow(&no_deadline);
    assert_eq!(new.len(), v3_value(&rec).len() + 3);
    assert_eq!(new[..new.len() - 3], v3_value(&rec)[..]);

    // And a version 8 record is the new one without its last two bytes.
    let mut first_run = rec.clone();
    first_run.first_step = 0;
    let new = ordo_journal::fuzzing::encode_workflow(&first_run);
    assert_eq!(new[..new.len() - 2], v8_value(&rec)[..]);
}

#[test]
fn a_version_8_journal_numbers_its_runs_from_0_and_is_marked_version_9_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    // What the version-8 code left: a pending workflow's record without a first step.
    // (A record of its own and an empty `Pending` entry, as every version wrote a
    // workflow resumed after a restart.)
    let mut old = workflow("old-pending", Status::Pending);
    with_index_entries(&path, &[], &[], 8);
    {
        let journal = SledJournal::open(&path, Durability::Flush).unwrap();
        journal
            .raw_insert(&workflow_key(&old.id), &v8_value(&old))
            .unwrap();
        journal
            .raw_insert(&status_key(Status::Pending, &old.id), &[])
            .unwrap();
        journal
            .raw_insert(schema_key(), &8u32.to_be_bytes())
            .unwrap();
    }
    // Nor a token key (this build drew one when it made the fixture).
    std::fs::remove_file(path.join("ordo.token_key")).unwrap();
    old.first_step = 0;
    old.keyed_tokens = false;
    {
        let journal = open_read_only_at(&path, 8);
        assert_eq!(journal.workflow(&old.id).unwrap().as_ref(), Some(&old));
    }
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(stored_schema(&journal), SCHEMA_VERSION);
    assert!(journal.token_key().is_some(), "drawn by the upgrade");
    assert!(path.join("ordo.token_key").is_file());
    assert_eq!(journal.workflow(&old.id).unwrap().as_ref(), Some(&old));
    // It continues as new: its next run's first step is recorded, and read back.
    let mut next = old.clone();
    next.first_step = 7;
    next.keyed_tokens = true;
    next.input = b"next run".to_vec();
    let mut batch = Batch::new();
    batch.update_workflow(next.clone(), Status::Pending);
    batch.reset_completions(&next.id);
    journal.commit(&batch).unwrap();
    drop(journal);
    let journal = SledJournal::open_existing(&path).unwrap();
    assert_eq!(journal.workflow(&old.id).unwrap(), Some(next));
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
fn a_version_2_journal_opened_for_writing_is_marked_version_4_and_mixes_both_layouts() {
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
fn a_version_3_journal_opens_with_no_deadlines_and_is_marked_version_4_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let records = old_journal(&path, 3);
    {
        // Read-only: the app versions are there, the deadlines absent, nothing rewritten.
        let journal = SledJournal::open_existing(&path).unwrap();
        assert_eq!(
            stored_schema(&journal),
            3,
            "the fixture is a version 3 journal"
        );
        for rec in &records {
            let read = journal.workflow(&rec.id).unwrap().unwrap();
            assert_eq!(read.app_version.as_deref(), Some("1.4.2"));
            assert_eq!(read.deadline_ms, None);
            assert_eq!(&read, rec);
        }
    }
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(stored_schema(&journal), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 10);

    // The old pending workflow gets a rewrite in the new layout (with a deadline), a new
    // one is added; the untouched old record still reads in its old layout.
    let mut rewritten = records[0].clone();
    rewritten.deadline_ms = Some(1_700_000_090_000);
    rewritten.recovery_attempts += 1;
    let mut batch = Batch::new();
    batch.update_workflow(rewritten.clone(), Status::Pending);
    journal.commit(&batch).unwrap();
    drop(journal);

    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("old-pending").unwrap(), Some(rewritten));
    assert_eq!(
        journal.workflow("old-done").unwrap().as_ref(),
        Some(&records[1])
    );
    assert_eq!(journal.workflows(Some(Status::Pending)).unwrap().len(), 1);
}

#[test]
fn a_record_with_garbage_after_its_last_field_is_corrupt() {
    let journal = SledJournal::temporary().unwrap();
    let mut rec = workflow("w", Status::Pending);
    rec.app_version = Some("1.0".into());
    rec.deadline_ms = Some(1_700_000_000_000);
    let mut value = ordo_journal::fuzzing::encode_workflow(&rec);
    value.push(7);
    journal.raw_insert(&workflow_key("w"), &value).unwrap();
    let err = journal.workflow("w").unwrap_err();
    assert_eq!(
        err.to_string(),
        "corrupt journal record at workflow/w: 1 trailing bytes after the value"
    );
    // A deadline cut short is corrupt too, not a record without one (the last two bytes
    // are the first step and the token kind).
    let value = ordo_journal::fuzzing::encode_workflow(&rec);
    journal
        .raw_insert(&workflow_key("w"), &value[..value.len() - 3])
        .unwrap();
    let err = journal.workflow("w").unwrap_err();
    assert!(err.to_string().contains("undecodable deadline"), "{err}");
    // And so is an app version cut short (the record's end falls inside it).
    let v3_len = v3_value(&rec).len();
    journal
        .raw_insert(&workflow_key("w"), &value[..v3_len - 1])
        .unwrap();
    let err = journal.workflow("w").unwrap_err();
    assert!(err.to_string().contains("undecodable app version"), "{err}");
}

#[test]
fn a_version_4_journal_lists_its_queued_workflows_and_drops_their_index_entries_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let queued = [
        workflow("queued", Status::Enqueued),
        workflow("later", Status::Delayed),
    ];
    // Each queued status lists its one workflow, whatever the journal's version.
    let listed_by_status = |journal: &SledJournal| {
        assert_eq!(
            journal.workflows(Some(Status::Enqueued)).unwrap(),
            [queued[0].clone()]
        );
        assert_eq!(
            journal.workflows(Some(Status::Delayed)).unwrap(),
            [queued[1].clone()]
        );
    };
    // What the version-4 code left: queued records with status-index entries.
    with_index_entries(&path, &queued, &queued, 4);
    // Read-only: listed by status, nothing rewritten.
    listed_by_status(&open_read_only_at(&path, 4));
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(stored_schema(&journal), SCHEMA_VERSION);
    for rec in &queued {
        assert_eq!(
            journal.raw_get(&status_key(rec.status, &rec.id)).unwrap(),
            None,
            "the entry of {} went with the upgrade",
            rec.id
        );
    }
    listed_by_status(&journal);

    // The queued one starts and ends: no entry of its queued status is left anywhere.
    let mut started = queued[0].clone();
    started.status = Status::Pending;
    let mut batch = Batch::new();
    batch.update_workflow(started.clone(), Status::Enqueued);
    journal.commit(&batch).unwrap();
    assert!(journal
        .workflows(Some(Status::Enqueued))
        .unwrap()
        .is_empty());
    assert_eq!(journal.workflows(Some(Status::Pending)).unwrap().len(), 2);
    let mut ended = started;
    ended.status = Status::Succeeded;
    ended.output = Some(Outcome::Ok(b"done".to_vec()));
    batch.clear();
    batch.update_workflow(ended.clone(), Status::Pending);
    journal.commit(&batch).unwrap();
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert!(journal
        .workflows(Some(Status::Enqueued))
        .unwrap()
        .is_empty());
    assert_eq!(journal.workflows(Some(Status::Succeeded)).unwrap(), [ended]);
    assert_eq!(
        journal.workflows(Some(Status::Delayed)).unwrap(),
        [queued[1].clone()]
    );
}

/// The raw key of queue record `key` (the journal's leading byte, then the key).
fn queue_key(key: &[u8]) -> Vec<u8> {
    [&b"u"[..], key].concat()
}

/// Queue record key of workflow `id`'s queue entry.
fn entry_key(id: &str) -> Vec<u8> {
    [&[ENTRY][..], id.as_bytes()].concat()
}

#[test]
fn a_version_5_journal_moves_its_queue_entries_into_pending_index_entries_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let started_ms = 1_700_000_005_000u64;
    let entries = [
        (entry_key("done"), b"entry of done".to_vec()),
        (entry_key("started"), b"entry of started".to_vec()),
        (entry_key("waiting"), b"entry of waiting".to_vec()),
    ];
    {
        // What the version-5 code left: entries as queue records, a start mark alone.
        let journal = SledJournal::open(&path, Durability::Flush).unwrap();
        let mut batch = Batch::new();
        batch.insert_workflow(workflow("waiting", Status::Enqueued));
        batch.insert_workflow(workflow("started", Status::Enqueued));
        batch.insert_workflow(workflow("done", Status::Succeeded));
        journal.commit(&batch).unwrap();
        for (key, value) in &entries {
            journal.raw_insert(&queue_key(key), value).unwrap();
        }
        journal
            .raw_insert(
                &status_key(Status::Pending, "started"),
                &started_ms.to_be_bytes(),
            )
            .unwrap();
        journal
            .raw_insert(schema_key(), &5u32.to_be_bytes())
            .unwrap();
    }
    let mut started = workflow("started", Status::Pending);
    started.updated_ms = started_ms;
    {
        // Read-only: the entries read where they are.
        let journal = SledJournal::open_existing(&path).unwrap();
        assert_eq!(
            stored_schema(&journal),
            5,
            "the fixture is a version 5 journal"
        );
        assert_eq!(journal.queue_records(&[ENTRY]).unwrap(), entries);
        assert_eq!(
            journal.workflows(Some(Status::Pending)).unwrap(),
            [started.clone()]
        );
    }
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(stored_schema(&journal), SCHEMA_VERSION);
    // The entries of the queued and the started one moved; the ended one's stayed.
    for id in ["started", "waiting"] {
        assert_eq!(journal.raw_get(&queue_key(&entry_key(id))).unwrap(), None);
    }
    assert!(journal
        .raw_get(&queue_key(&entry_key("done")))
        .unwrap()
        .is_some());
    assert_eq!(journal.queue_records(&[ENTRY]).unwrap(), entries);
    assert_eq!(journal.queue_records(b"").unwrap(), entries);
    assert_eq!(journal.workflow("started").unwrap(), Some(started.clone()));
    assert_eq!(
        journal.workflows(Some(Status::Pending)).unwrap(),
        [started.clone()]
    );
    assert_eq!(
        journal.workflow("waiting").unwrap().map(|r| r.status),
        Some(Status::Enqueued)
    );

    // The ended one's entry is removed as a record; the started one ends, its entry
    // going with it.
    let mut ended = started;
    ended.status = Status::Succeeded;
    let mut batch = Batch::new();
    batch.delete_queue_record(entry_key("done"));
    batch.update_workflow(ended.clone(), Status::Pending);
    batch.delete_queue_record(entry_key("started"));
    journal.commit(&batch).unwrap();
    assert_eq!(
        journal.raw_get(&queue_key(&entry_key("done"))).unwrap(),
        None
    );
    assert_eq!(journal.queue_records(b"").unwrap(), entries[2..]);
    assert!(journal.workflows(Some(Status::Pending)).unwrap().is_empty());
    assert_eq!(journal.workflow("started").unwrap(), Some(ended));
}

#[test]
fn a_version_6_journal_lists_its_succeeded_workflows_and_drops_their_index_entries_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let done = [
        workflow("done-a", Status::Succeeded),
        workflow("done-b", Status::Succeeded),
    ];
    let failed = workflow("failed", Status::Failed);
    let listed = |journal: &SledJournal, expected: &[WorkflowRecord]| {
        assert_eq!(
            journal.workflows(Some(Status::Succeeded)).unwrap(),
            expected
        );
        assert_eq!(
            journal.workflows(Some(Status::Failed)).unwrap(),
            std::slice::from_ref(&failed)
        );
    };
    // What the version-6 code left: an index entry for every succeeded workflow.
    let records = [done[0].clone(), done[1].clone(), failed.clone()];
    with_index_entries(&path, &records, &done, 6);
    {
        // Read-only: listed, nothing rewritten.
        let journal = open_read_only_at(&path, 6);
        listed(&journal, &done);
        for rec in &done {
            assert!(journal
                .raw_get(&status_key(Status::Succeeded, &rec.id))
                .unwrap()
                .is_some());
        }
    }
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(stored_schema(&journal), SCHEMA_VERSION);
    for rec in &done {
        assert_eq!(
            journal
                .raw_get(&status_key(Status::Succeeded, &rec.id))
                .unwrap(),
            None,
            "the entry of {} went with the upgrade",
            rec.id
        );
    }
    listed(&journal, &done);

    // The running one ends: listed as succeeded, with no index entry, and its `Pending`
    // entry is gone; the failed one keeps its entry.
    let mut ended = workflow("running", Status::Succeeded);
    ended.output = Some(Outcome::Ok(b"done".to_vec()));
    let mut batch = Batch::new();
    batch.update_workflow(ended.clone(), Status::Pending);
    journal.commit(&batch).unwrap();
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    let all_done = [done[0].clone(), done[1].clone(), ended];
    listed(&journal, &all_done);
    assert!(journal.workflows(Some(Status::Pending)).unwrap().is_empty());
    for id in ["running", "done-a"] {
        assert_eq!(
            journal.raw_get(&status_key(Status::Succeeded, id)).unwrap(),
            None
        );
        assert_eq!(
            journal.raw_get(&status_key(Status::Pending, id)).unwrap(),
            None
        );
    }
    assert!(journal
        .raw_get(&status_key(Status::Failed, "failed"))
        .unwrap()
        .is_some());

    // Deleting a succeeded workflow leaves nothing of it.
    let mut batch = Batch::new();
    batch.delete_workflow("done-a");
    journal.commit(&batch).unwrap();
    assert_eq!(journal.workflow("done-a").unwrap(), None);
    assert_eq!(
        journal.workflows(Some(Status::Succeeded)).unwrap(),
        all_done[1..]
    );
}

#[test]
fn succeeded_entries_are_swept_in_batches_and_a_sweep_cut_short_goes_on_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    // More entries than one sweep batch (10,000) takes, as a version-6 journal left them
    // (no records needed: the sweep reads the index alone).
    let ids: Vec<String> = (0..10_050).map(|n| format!("done-{n:05}")).collect();
    with_index_entries(&path, &[], &[], 6);
    // Plants the entries into the (by then upgraded) journal and marks it `version`.
    let planted = |version: u32| {
        let journal = SledJournal::open(&path, Durability::Flush).unwrap();
        for id in &ids {
            journal
                .raw_insert(&status_key(Status::Succeeded, id), &[])
                .unwrap();
        }
        journal
            .raw_insert(schema_key(), &version.to_be_bytes())
            .unwrap();
    };
    let left = |journal: &SledJournal| {
        ids.iter()
            .filter(|id| {
                journal
                    .raw_get(&status_key(Status::Succeeded, id))
                    .unwrap()
                    .is_some()
            })
            .count()
    };

    // An upgrade from version 6 removes every one of them, across batches.
    planted(6);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(stored_schema(&journal), SCHEMA_VERSION);
    assert_eq!(left(&journal), 0);
    drop(journal);

    // A version-7 journal with entries left (a crash cut the sweep short): a read-only
    // open leaves them, the next writable open removes them.
    planted(SCHEMA_VERSION);
    let journal = open_read_only_at(&path, SCHEMA_VERSION);
    assert_eq!(left(&journal), ids.len());
    assert!(journal
        .workflows(Some(Status::Succeeded))
        .unwrap()
        .is_empty());
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(left(&journal), 0);
}

#[test]
fn a_version_7_journals_queued_workflows_keep_their_own_records_next_to_new_held_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let started_ms = 1_700_000_007_000u64;
    let mut started = workflow("started", Status::Pending);
    started.updated_ms = started_ms;
    {
        // What the version-7 code left: queued workflows with records of their own, their
        // queue entries (and a start mark) in their `Pending` index entries.
        let journal = SledJournal::open(&path, Durability::Flush).unwrap();
        let mut batch = Batch::new();
        batch.insert_workflow(workflow("waiting", Status::Enqueued));
        batch.insert_workflow(workflow("started", Status::Enqueued));
        journal.commit(&batch).unwrap();
        batch.clear();
        batch.put_queue_record(entry_key("waiting"), b"entry of waiting".to_vec());
        batch.put_queue_record(entry_key("started"), b"entry of started".to_vec());
        journal.commit(&batch).unwrap();
        batch.clear();
        batch.start_queued(started.clone());
        journal.commit(&batch).unwrap();
        journal
            .raw_insert(schema_key(), &7u32.to_be_bytes())
            .unwrap();
    }
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(stored_schema(&journal), SCHEMA_VERSION);
    assert_eq!(
        journal.raw_get(b"mheld").unwrap(),
        None,
        "no record is held in an index entry yet"
    );
    assert_eq!(journal.workflow("started").unwrap(), Some(started.clone()));
    assert_eq!(
        journal.workflow("waiting").unwrap(),
        Some(workflow("waiting", Status::Enqueued))
    );

    // The old waiting one starts: its record stays its own. A new one is enqueued: its
    // record is held, and the journal says so.
    let mut waiting = workflow("waiting", Status::Pending);
    waiting.updated_ms = started_ms + 1;
    let mut batch = Batch::new();
    batch.start_queued(waiting.clone());
    batch.insert_workflow(workflow("fresh", Status::Enqueued));
    batch.put_queue_record(entry_key("fresh"), b"entry of fresh".to_vec());
    journal.commit(&batch).unwrap();
    assert!(journal.raw_get(&workflow_key("waiting")).unwrap().is_some());
    assert_eq!(journal.raw_get(&workflow_key("fresh")).unwrap(), None);
    assert!(journal.raw_get(b"mheld").unwrap().is_some());
    drop(journal);

    let journal = SledJournal::open_existing(&path).unwrap();
    assert_eq!(
        journal.workflows(None).unwrap(),
        [workflow("fresh", Status::Enqueued), started, waiting]
    );
    assert_eq!(
        journal.queue_records(&[ENTRY]).unwrap(),
        [
            (entry_key("fresh"), b"entry of fresh".to_vec()),
            (entry_key("started"), b"entry of started".to_vec()),
            (entry_key("waiting"), b"entry of waiting".to_vec()),
        ]
    );
}
