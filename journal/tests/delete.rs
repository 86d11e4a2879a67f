//! `Batch::delete_workflow`: a deleted workflow leaves nothing behind (record, status
//! entry, completion runs), other workflows are untouched, and a deletion is atomic with
//! the rest of its batch.
#![allow(clippy::unwrap_used)]

mod common;

use common::{completion, workflow};
use ordo_journal::{Batch, Durability, SledJournal, Status, Store};

/// Workflows "a" (succeeded) and "ab" (pending; its id extends "a"'s), each with
/// completions 0..4 in several runs.
fn populated(journal: &SledJournal) {
    let mut batch = Batch::new();
    batch.put_workflow(workflow("a", Status::Succeeded));
    batch.put_workflow(workflow("ab", Status::Pending));
    journal.commit(&batch).unwrap();
    for seq in 0..4 {
        let mut batch = Batch::new();
        batch.push_completion("a", completion(seq));
        batch.push_completion("ab", completion(seq));
        journal.commit(&batch).unwrap();
    }
}

#[test]
fn a_deleted_workflow_leaves_nothing_and_its_neighbour_everything() {
    let dir = tempfile::tempdir().unwrap();
    let journal = SledJournal::open(dir.path(), Durability::Flush).unwrap();
    populated(&journal);
    let mut batch = Batch::new();
    batch.delete_workflow("a");
    batch.delete_workflow("never-existed");
    journal.commit(&batch).unwrap();
    drop(journal);

    let journal = SledJournal::open(dir.path(), Durability::Flush).unwrap();
    assert_eq!(journal.workflow("a").unwrap(), None);
    assert!(journal.completions("a").unwrap().is_empty());
    for status in Status::ALL {
        assert!(journal
            .workflows(Some(status))
            .unwrap()
            .iter()
            .all(|w| w.id != "a"));
    }
    assert_eq!(
        journal.workflow("ab").unwrap(),
        Some(workflow("ab", Status::Pending))
    );
    assert_eq!(
        journal.completions("ab").unwrap(),
        (0..4).map(completion).collect::<Vec<_>>()
    );
    assert_eq!(journal.workflows(None).unwrap().len(), 1);
}

#[test]
fn an_id_deleted_and_put_in_one_batch_starts_over() {
    let journal = SledJournal::temporary().unwrap();
    populated(&journal);
    let mut batch = Batch::new();
    batch.delete_workflow("a");
    batch.insert_workflow(workflow("a", Status::Pending));
    batch.push_completion("a", completion(0));
    journal.commit(&batch).unwrap();
    assert_eq!(
        journal.workflow("a").unwrap(),
        Some(workflow("a", Status::Pending))
    );
    assert_eq!(journal.completions("a").unwrap(), [completion(0)]);
    assert!(journal
        .workflows(Some(Status::Succeeded))
        .unwrap()
        .is_empty());
    // Its seqs start over after the delete: seq 1 is next, not 4.
    let mut batch = Batch::new();
    batch.push_completion("a", completion(1));
    journal.commit(&batch).unwrap();
    assert_eq!(journal.completions("a").unwrap().len(), 2);
}

#[test]
fn a_refused_batch_deletes_nothing() {
    let journal = SledJournal::temporary().unwrap();
    populated(&journal);
    let mut batch = Batch::new();
    batch.delete_workflow("a");
    // Out of order for "ab": the whole batch is refused.
    batch.push_completion("ab", completion(2));
    assert!(journal.commit(&batch).is_err());
    assert_eq!(journal.completions("a").unwrap().len(), 4);
    assert!(journal.workflow("a").unwrap().is_some());
}

#[test]
fn a_deleted_workflow_takes_its_messages_events_awakeables_and_trace_context_along() {
    use ordo_journal::{Message, Outcome};
    let journal = SledJournal::temporary().unwrap();
    populated(&journal);
    let mut batch = Batch::new();
    for (number, destination) in [(1, "a"), (2, "ab")] {
        batch.send_message(Message {
            destination: destination.into(),
            topic: "t".into(),
            number,
            payload: vec![number as u8],
            sent_ms: 0,
            idempotency_key: Some("key".into()),
        });
        batch.set_event(destination, "status", vec![9]);
        batch.resolve_awakeable(destination, 3, Outcome::Ok(vec![1]));
        batch.put_trace_context(
            destination,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        );
    }
    journal.commit(&batch).unwrap();
    let mut batch = Batch::new();
    batch.delete_workflow("a");
    journal.commit(&batch).unwrap();
    assert!(journal.messages("a").unwrap().is_empty());
    assert!(!journal.message_key_used("a", "key").unwrap());
    assert_eq!(journal.event("a", "status").unwrap(), None);
    assert_eq!(journal.awakeable("a", 3).unwrap(), None);
    assert_eq!(journal.trace_context("a").unwrap(), None);
    // "ab", whose id extends "a", keeps all of its own.
    assert_eq!(journal.messages("ab").unwrap().len(), 1);
    assert!(journal.message_key_used("ab", "key").unwrap());
    assert_eq!(journal.event("ab", "status").unwrap(), Some(vec![9]));
    assert!(journal.awakeable("ab", 3).unwrap().is_some());
    assert!(journal.trace_context("ab").unwrap().is_some());
}

/// One batch deleting every other one of many workflows (ids that extend others' among
/// them, some with a known status): the store walks each record kind once for the whole
/// batch, and must still take exactly the deleted workflows' keys, stepping over the
/// kept ones in between.
#[test]
fn a_batch_of_interleaved_deletions_takes_exactly_its_own() {
    use ordo_journal::{Message, Outcome};
    let journal = SledJournal::temporary().unwrap();
    let ids: Vec<String> = (0..40)
        .flat_map(|n| [format!("w{n}"), format!("w{n}x")])
        .collect();
    let mut batch = Batch::new();
    for (number, id) in (1..).zip(&ids) {
        batch.put_workflow(workflow(id, Status::Succeeded));
        batch.push_completion(id, completion(0));
        batch.send_message(Message {
            destination: id.clone(),
            topic: "t".into(),
            number,
            payload: vec![1],
            sent_ms: 0,
            idempotency_key: Some("key".into()),
        });
        batch.set_event(id, "status", vec![9]);
        batch.resolve_awakeable(id, 3, Outcome::Ok(vec![1]));
        if number % 3 == 0 {
            batch.put_trace_context(
                id,
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            );
        }
    }
    journal.commit(&batch).unwrap();
    let mut batch = Batch::new();
    for (n, id) in ids
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 2 == 1 || n % 7 == 0)
    {
        if n % 3 == 0 {
            batch.delete_workflow_was(id, Status::Succeeded);
        } else {
            batch.delete_workflow(id);
        }
    }
    batch.delete_workflow("w99"); // no such workflow
    journal.commit(&batch).unwrap();
    for (n, id) in ids.iter().enumerate() {
        let deleted = n % 2 == 1 || n % 7 == 0;
        assert_eq!(journal.workflow(id).unwrap().is_some(), !deleted, "{id}");
        assert_eq!(
            journal.completions(id).unwrap().len(),
            usize::from(!deleted)
        );
        assert_eq!(journal.messages(id).unwrap().len(), usize::from(!deleted));
        assert_eq!(journal.message_key_used(id, "key").unwrap(), !deleted);
        assert_eq!(journal.event(id, "status").unwrap().is_some(), !deleted);
        assert_eq!(journal.awakeable(id, 3).unwrap().is_some(), !deleted);
        let traced = (n + 1) % 3 == 0;
        assert_eq!(
            journal.trace_context(id).unwrap().is_some(),
            traced && !deleted,
            "{id}"
        );
    }
    let kept = ids.len() - (0..ids.len()).filter(|n| n % 2 == 1 || n % 7 == 0).count();
    assert_eq!(
        journal.workflows(Some(Status::Succeeded)).unwrap().len(),
        kept
    );
    assert_eq!(journal.workflows(None).unwrap().len(), kept);
}
