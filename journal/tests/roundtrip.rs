//! Every record type comes back exactly as written, in `seq` order, across reopen.
#![allow(clippy::unwrap_used)]

mod common;

use common::{completion, workflow};
use ordo_journal::{
    Batch, Completion, Durability, Outcome, SledJournal, Status, Store, WorkflowRecord,
};

#[test]
fn workflow_records_of_every_status_and_output_round_trip() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    let mut expected = Vec::new();
    for (i, status) in Status::ALL.into_iter().enumerate() {
        let rec = workflow(&format!("wf-{i}"), status);
        batch.put_workflow(rec.clone());
        expected.push(rec);
    }
    let empty = WorkflowRecord {
        id: String::new(),
        name: String::new(),
        input: Vec::new(),
        status: Status::Pending,
        output: Some(Outcome::Ok(Vec::new())),
        created_ms: u64::MAX,
        updated_ms: 0,
        recovery_attempts: u32::MAX,
        app_version: Some(String::new()),
        deadline_ms: Some(u64::MAX),
        first_step: u64::MAX,
        keyed_tokens: false,
    };
    batch.put_workflow(empty.clone());
    journal.commit(&batch).unwrap();

    for rec in &expected {
        assert_eq!(journal.workflow(&rec.id).unwrap().as_ref(), Some(rec));
    }
    assert_eq!(journal.workflow("").unwrap(), Some(empty));
    assert_eq!(journal.workflow("wf-9").unwrap(), None);
}

#[test]
fn completions_round_trip_including_empty_unicode_and_large_values() {
    let journal = SledJournal::temporary().unwrap();
    let id = "订单/42 🧾";
    let mut expected: Vec<Completion> = (0..10).map(completion).collect();
    expected.push(Completion {
        seq: 10,
        step_id: u64::MAX,
        name: String::new(),
        outcome: Outcome::Err(Vec::new()),
        attempts: 0,
        started_ms: 0,
        ended_ms: u64::MAX,
    });
    expected.push(Completion {
        seq: 11,
        outcome: Outcome::Ok(vec![0xAB; 300_000]),
        ..completion(11)
    });
    let mut batch = Batch::new();
    for c in &expected {
        batch.push_completion(id, c.clone());
    }
    journal.commit(&batch).unwrap();
    assert_eq!(journal.completions(id).unwrap(), expected);
}

#[test]
fn completions_come_back_in_seq_order_across_reopen_and_never_mix_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    {
        let journal = SledJournal::open(&path, Durability::Flush).unwrap();
        // Pushed out of order within each commit, across several commits, with seqs whose
        // little-endian order differs from their numeric order (3 < 256 < 257 < 65536).
        for seqs in [vec![3, 0, 256, 1], vec![65_536, 300, 257], vec![1_000_000]] {
            let mut batch = Batch::new();
            for seq in seqs {
                batch.push_completion("a", completion(seq));
                batch.push_completion("ab", completion(seq + 7));
            }
            journal.commit(&batch).unwrap();
        }
        assert_eq!(journal.commit_count(), 3);
    }
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.commit_count(), 0, "counts commits since open");
    let seqs: Vec<u64> = journal
        .completions("a")
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, [0, 1, 3, 256, 257, 300, 65_536, 1_000_000]);
    let a = journal.completions("a").unwrap();
    assert_eq!(a, seqs.iter().map(|&s| completion(s)).collect::<Vec<_>>());
    assert_eq!(journal.completions("ab").unwrap().len(), 8);
    assert!(journal.completions("").unwrap().is_empty());
    assert!(journal.completions("b").unwrap().is_empty());

    // The append-only check reads the recorded last seq after reopen.
    let mut batch = Batch::new();
    batch.push_completion("a", completion(1_000_000));
    let err = journal.commit(&batch).unwrap_err();
    assert!(matches!(
        err,
        ordo_journal::Error::SeqOutOfOrder {
            seq: 1_000_000,
            after: 1_000_000,
            ..
        }
    ));
    batch.clear();
    batch.push_completion("a", completion(1_000_001));
    journal.commit(&batch).unwrap();
    assert_eq!(journal.completions("a").unwrap().len(), 9);
}

#[test]
fn sync_journal_round_trips_large_values_across_reopen() {
    // Values over ~128 KiB become sled blob files, which `Sync` must sync separately.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let big = Completion {
        outcome: Outcome::Ok(vec![7; 200_000]),
        ..completion(0)
    };
    {
        let journal = SledJournal::open(&path, Durability::Sync).unwrap();
        assert_eq!(journal.path(), Some(path.as_path()));
        let mut batch = Batch::new();
        batch.put_workflow(workflow("big", Status::Pending));
        batch.push_completion("big", big.clone());
        journal.commit(&batch).unwrap();
        assert!(journal.size_on_disk().unwrap() > 200_000);
    }
    let journal = SledJournal::open(&path, Durability::Sync).unwrap();
    assert_eq!(journal.completions("big").unwrap(), [big]);
    assert_eq!(
        journal.workflow("big").unwrap(),
        Some(workflow("big", Status::Pending))
    );
}

#[test]
fn a_later_put_of_the_same_workflow_replaces_it() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    batch.put_workflow(workflow("w", Status::Pending));
    journal.commit(&batch).unwrap();
    batch.clear();
    batch.put_workflow(workflow("w", Status::Succeeded));
    batch.push_completion("w", completion(0));
    journal.commit(&batch).unwrap();
    assert_eq!(
        journal.workflow("w").unwrap(),
        Some(workflow("w", Status::Succeeded))
    );
    assert_eq!(journal.completions("w").unwrap(), [completion(0)]);
}

#[test]
fn an_empty_batch_is_a_no_op_and_not_counted() {
    let journal = SledJournal::temporary().unwrap();
    journal.commit(&Batch::new()).unwrap();
    assert_eq!(journal.commit_count(), 0);
    assert!(journal.workflows(None).unwrap().is_empty());
}
