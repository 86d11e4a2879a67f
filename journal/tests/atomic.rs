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
    assert!(matches!(err, Error::IdTooLong { len, max } if len == MAX_ID_LEN + 1 && max == MAX_ID_LEN));
    assert_eq!(err.to_string(), "workflow id of 65536 bytes is too long (at most 65535 bytes)");

    assert_eq!(journal.workflow("kept").unwrap(), Some(workflow("kept", Status::Pending)));
    assert_eq!(journal.workflow("new").unwrap(), None);
    assert!(journal.completions("kept").unwrap().is_empty());
    assert_eq!(journal.workflows(Some(Status::Pending)).unwrap().len(), 1);
    assert!(journal.workflows(Some(Status::Succeeded)).unwrap().is_empty());
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
    assert!(journal.completions(&"y".repeat(MAX_ID_LEN + 1)).unwrap().is_empty());
}
