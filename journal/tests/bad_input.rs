//! Every kind of bad stored byte gives its typed error, names the key, and leaves the
//! rest of the journal readable.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{completion, workflow};
use ordo_journal::fuzzing::{
    completion_key, encode_completion, encode_run, encode_workflow, run_key, schema_key,
    status_key, workflow_key,
};
use ordo_journal::{
    Batch, Durability, Error, SledJournal, Status, Store, FORMAT_VERSION, SCHEMA_VERSION,
};

/// A journal with workflows "good" and "w", each with completions 0..5: "good"'s in one
/// run, "w"'s in one run per seq (one commit each), so a test can replace one.
fn populated() -> SledJournal {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    batch.put_workflow(workflow("good", Status::Pending));
    batch.put_workflow(workflow("w", Status::Pending));
    for seq in 0..5 {
        batch.push_completion("good", completion(seq));
    }
    journal.commit(&batch).unwrap();
    for seq in 0..5 {
        batch.clear();
        batch.push_completion("w", completion(seq));
        journal.commit(&batch).unwrap();
    }
    journal
}

fn corrupt_key(err: Error) -> (String, String) {
    match err {
        Error::Corrupt { key, reason } => (key, reason),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn assert_good_still_readable(journal: &SledJournal) {
    assert_eq!(
        journal.workflow("good").unwrap(),
        Some(workflow("good", Status::Pending))
    );
    assert_eq!(
        journal.completions("good").unwrap(),
        (0..5).map(completion).collect::<Vec<_>>()
    );
}

#[test]
fn garbage_completion_is_corrupt_naming_the_key_and_the_rest_stays_readable() {
    let journal = populated();
    journal
        .raw_insert(&completion_key("w", 3), b"\x01\xff\xff garbage")
        .unwrap();
    let (key, reason) = corrupt_key(journal.completions("w").unwrap_err());
    assert_eq!(key, "workflow/w/seq/3");
    assert!(reason.starts_with("undecodable value"), "{reason}");
    assert_good_still_readable(&journal);
    assert_eq!(
        journal.workflow("w").unwrap(),
        Some(workflow("w", Status::Pending))
    );

    // Completions are append-only, so a commit cannot overwrite the bad one; removing
    // it leaves the others readable.
    journal.raw_remove(&completion_key("w", 3)).unwrap();
    let seqs: Vec<u64> = journal
        .completions("w")
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2, 4]);
}

#[test]
fn runs_that_overlap_or_disagree_with_their_key_are_corrupt() {
    let journal = populated();
    // A run 2..=3 next to the runs 2 and 3 that are already there.
    let run = [completion(2), completion(3)];
    journal
        .raw_insert(&run_key("w", 2, 3), &encode_run(&run))
        .unwrap();
    let err = journal.completions("w").unwrap_err().to_string();
    assert_eq!(
        err,
        "corrupt journal record at workflow/w/seq/2-3: run overlaps the previous run, which ends at seq 2"
    );

    // Seqs 2 and 3 stored under a key that says 5..=6.
    journal.raw_remove(&run_key("w", 2, 3)).unwrap();
    journal
        .raw_insert(&run_key("w", 5, 6), &encode_run(&run))
        .unwrap();
    let err = journal.completions("w").unwrap_err().to_string();
    assert_eq!(
        err,
        "corrupt journal record at workflow/w/seq/5-6: run holds seqs 2..=3 but its key says 5..=6"
    );
    assert_good_still_readable(&journal);
}

#[test]
fn every_truncation_of_a_workflow_record_is_corrupt() {
    let journal = populated();
    let record = workflow("w", Status::Succeeded);
    let value = encode_workflow(&record);
    // But three: cut right before the app version (schema 3's field), the value is a
    // complete schema-2 record, which reads with no app version, no deadline, steps from
    // 0 and plain tokens; cut right before the deadline (schema 4's field), a complete
    // schema-3 record, which reads with no deadline; cut right before the first step
    // (schema 9's two fields), a complete schema-8 record. A cut between schema 9's two
    // fields is corrupt.
    let mut v2 = record.clone();
    v2.app_version = None;
    v2.deadline_ms = None;
    v2.first_step = 0;
    v2.keyed_tokens = false;
    let v2_len = encode_workflow(&v2).len() - 4;
    let mut v3 = record.clone();
    v3.deadline_ms = None;
    v3.first_step = 0;
    v3.keyed_tokens = false;
    let v3_len = encode_workflow(&v3).len() - 3;
    let mut v8 = record.clone();
    v8.first_step = 0;
    v8.keyed_tokens = false;
    let v8_len = encode_workflow(&v8).len() - 2;
    assert!(record.deadline_ms.is_some() && record.app_version.is_some());
    assert!(record.first_step > 0 && record.keyed_tokens);
    for len in 1..value.len() {
        journal
            .raw_insert(&workflow_key("w"), &value[..len])
            .unwrap();
        let complete = [(v2_len, &v2), (v3_len, &v3), (v8_len, &v8)];
        if let Some((_, older)) = complete.iter().find(|(at, _)| *at == len) {
            assert_eq!(journal.workflow("w").unwrap().as_ref(), Some(*older));
            continue;
        }
        let (key, _) = corrupt_key(journal.workflow("w").unwrap_err());
        assert_eq!(key, "workflow/w");
        assert!(journal.workflows(None).is_err());
    }
    journal.raw_insert(&workflow_key("w"), &[]).unwrap();
    let err = journal.workflow("w").unwrap_err().to_string();
    assert_eq!(err, "corrupt journal record at workflow/w: empty value");
    assert_good_still_readable(&journal);
}

#[test]
fn trailing_bytes_are_corrupt_not_ignored() {
    let journal = populated();
    let mut value = encode_completion(&completion(2));
    value.extend_from_slice(&[0, 0]);
    journal.raw_insert(&completion_key("w", 2), &value).unwrap();
    let err = journal.completions("w").unwrap_err().to_string();
    assert_eq!(
        err,
        "corrupt journal record at workflow/w/seq/2: 2 trailing bytes after the value"
    );
}

#[test]
fn an_unknown_format_version_is_unsupported_naming_the_key() {
    let journal = populated();
    let mut value = encode_completion(&completion(1));
    value[0] = FORMAT_VERSION + 1;
    journal.raw_insert(&completion_key("w", 1), &value).unwrap();
    let err = journal.completions("w").unwrap_err();
    assert!(
        matches!(
            &err,
            Error::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "unsupported record format at workflow/w/seq/1 version 2 (this build reads version 1)"
    );

    let mut value = encode_workflow(&workflow("w", Status::Pending));
    value[0] = 0;
    journal.raw_insert(&workflow_key("w"), &value).unwrap();
    assert!(matches!(
        journal.workflow("w").unwrap_err(),
        Error::UnsupportedVersion { found: 0, .. }
    ));
    assert_good_still_readable(&journal);
}

#[test]
fn a_malformed_completion_key_is_corrupt_naming_it_in_hex() {
    let journal = populated();
    let mut key = completion_key("w", 0);
    key.truncate(key.len() - 2); // a six-byte seq
    journal
        .raw_insert(&key, &encode_completion(&completion(0)))
        .unwrap();
    let (key, reason) = corrupt_key(journal.completions("w").unwrap_err());
    assert_eq!(key, "0x630001770000000000000000000000000000");
    assert_eq!(
        reason,
        "completion key has no valid seq range (first <= last, 16 bytes) after its id"
    );
    assert_good_still_readable(&journal);
}

#[test]
fn a_status_index_entry_that_disagrees_with_its_record_is_corrupt() {
    let journal = populated();
    journal
        .raw_insert(&status_key(Status::Failed, "ghost"), &[])
        .unwrap();
    let err = journal
        .workflows(Some(Status::Failed))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "corrupt journal record at status/failed/ghost: status index entry without a workflow record"
    );

    journal
        .raw_insert(&status_key(Status::Cancelled, "w"), &[])
        .unwrap();
    let err = journal
        .workflows(Some(Status::Cancelled))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "corrupt journal record at status/cancelled/w: indexed as cancelled but the record says pending"
    );
    assert_eq!(journal.workflows(Some(Status::Pending)).unwrap().len(), 2);
}

/// Opens `path`, plants `value` under the schema key, closes.
fn plant_schema(path: &Path, value: &[u8]) {
    let journal = SledJournal::open(path, Durability::Flush).unwrap();
    let mut batch = Batch::new();
    batch.put_workflow(workflow("w", Status::Pending));
    journal.commit(&batch).unwrap();
    journal.raw_insert(schema_key(), value).unwrap();
}

#[test]
fn another_schema_version_is_refused_at_open_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    plant_schema(&path, &(SCHEMA_VERSION + 1).to_be_bytes());
    for _ in 0..2 {
        let err = SledJournal::open(&path, Durability::Sync).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::UnsupportedVersion { found, supported, .. }
                    if *found == SCHEMA_VERSION + 1 && *supported == SCHEMA_VERSION
            ),
            "{err:?}"
        );
        let expected = format!(
            "unsupported journal schema at {} version {} (this build reads version {})",
            path.display(),
            SCHEMA_VERSION + 1,
            SCHEMA_VERSION
        );
        assert_eq!(err.to_string(), expected);
        assert!(matches!(
            SledJournal::open_existing(&path),
            Err(Error::UnsupportedVersion { .. })
        ));
    }
}

#[test]
fn a_garbled_schema_version_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    plant_schema(&path, &[0, 1]);
    let err = SledJournal::open(&path, Durability::Flush)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "corrupt journal record at meta/schema: schema version is 2 bytes, not 4"
    );
}

#[test]
fn a_sled_database_without_a_schema_is_not_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    plant_schema(&path, &SCHEMA_VERSION.to_be_bytes());
    {
        let journal = SledJournal::open(&path, Durability::Flush).unwrap();
        journal.raw_remove(schema_key()).unwrap();
    }
    let err = SledJournal::open(&path, Durability::Flush)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "corrupt journal record at meta/schema: missing in a non-empty database: not an ordo journal"
    );
}

#[test]
fn open_existing_finds_nothing_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = SledJournal::open_existing(&missing).unwrap_err();
    assert!(matches!(&err, Error::NotFound { path } if path == &missing));
    assert_eq!(
        err.to_string(),
        format!("no ordo journal at {}", missing.display())
    );
    assert!(
        !missing.exists(),
        "open_existing must not create the journal"
    );

    // An empty directory is not a journal either, and stays empty.
    let err = SledJournal::open_existing(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_read_only_journal_refuses_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    plant_schema(&path, &SCHEMA_VERSION.to_be_bytes());
    let journal = SledJournal::open_existing(&path).unwrap();
    assert_eq!(
        journal.workflow("w").unwrap(),
        Some(workflow("w", Status::Pending))
    );
    let mut batch = Batch::new();
    batch.put_workflow(workflow("x", Status::Pending));
    let err = journal.commit(&batch).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("journal at {} was opened read-only", path.display())
    );
    assert_eq!(journal.workflow("x").unwrap(), None);
}
