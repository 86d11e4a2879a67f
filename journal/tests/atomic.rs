//! A batch is applied all or nothing. (Crashes mid-commit are covered by `crash.rs`.)
#![allow(clippy::unwrap_used)]

mod common;

use common::{completion, workflow};
use ordo_journal::{Batch, Error, SledJournal, Status, Store, MAX_ID_LEN};

#[test]
fn a_batch_that_fails_part_way_writes_none_of_its_records() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    batch.put_workflow(workflow("kept", Status::Pending));
    journal.commit(&batch).unwrap();

    // Valid records first, then one that cannot be stored.
    batch.clear();
    batch.put_workflow(workflow("kept", Status::Succeeded));
    batch.put_workflow(workflow("new", Status::Pending));
    batch.push_completion("kept", completion(0));
    batch.push_completion(&"x".repeat(MAX_ID_LEN + 1), completion(0));
    let err = journal.commit(&batch).unwrap_err();
    assert!(
        matches!(err, Error::IdTooLong { len, max } if len == MAX_ID_LEN + 1 && max == MAX_ID_LEN)
    );
    assert_eq!(
        err.to_string(),
        "workflow id of 65536 bytes is too long (at most 65535 bytes)"
    );

    assert_eq!(
        journal.workflow("kept").unwrap(),
        Some(workflow("kept", Status::Pending))
    );
    assert_eq!(journal.workflow("new").unwrap(), None);
    assert!(journal.completions("kept").unwrap().is_empty());
    assert_eq!(journal.workflows(Some(Status::Pending)).unwrap().len(), 1);
    assert!(journal
        .workflows(Some(Status::Succeeded))
        .unwrap()
        .is_empty());
    assert_eq!(journal.commit_count(), 1, "a failed commit is not counted");
}

#[test]
fn the_longest_allowed_id_is_stored() {
    let journal = SledJournal::temporary().unwrap();
    let id = "y".repeat(MAX_ID_LEN);
    let mut batch = Batch::new();
    batch.put_workflow(workflow(&id, Status::Pending));
    batch.push_completion(&id, completion(4));
    journal.commit(&batch).unwrap();
    assert_eq!(journal.completions(&id).unwrap(), [completion(4)]);
    assert!(journal
        .completions(&"y".repeat(MAX_ID_LEN + 1))
        .unwrap()
        .is_empty());
}

#[test]
fn completions_are_append_only_and_a_refused_batch_writes_nothing() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    for seq in [2, 0, 1] {
        batch.push_completion("w", completion(seq)); // any push order
    }
    journal.commit(&batch).unwrap();

    batch.clear();
    batch.put_workflow(workflow("w", Status::Succeeded));
    batch.push_completion("other", completion(0));
    batch.push_completion("w", completion(3));
    batch.push_completion("w", completion(2)); // already recorded
    let err = journal.commit(&batch).unwrap_err();
    assert!(
        matches!(&err, Error::SeqOutOfOrder { workflow_id, seq: 2, after: 2 } if workflow_id == "w"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "completion seq 2 of workflow \"w\" is not after seq 2: completions are append-only"
    );
    assert_eq!(journal.workflow("w").unwrap(), None);
    assert!(journal.completions("other").unwrap().is_empty());

    batch.clear();
    batch.push_completion("w", completion(5));
    batch.push_completion("w", completion(5));
    assert!(matches!(
        journal.commit(&batch),
        Err(Error::SeqOutOfOrder {
            seq: 5,
            after: 5,
            ..
        })
    ));

    batch.clear();
    batch.push_completion("w", completion(4));
    journal.commit(&batch).unwrap();
    let seqs: Vec<u64> = journal
        .completions("w")
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2, 4]);
}
