//! Listing workflows by status goes through the index and follows status changes.
#![allow(clippy::unwrap_used)]

mod common;

use common::{completion, ids, workflow};
use ordo_journal::fuzzing::{start_group_key, status_key, workflow_key};
use ordo_journal::queue::ENTRY;
use ordo_journal::{Batch, Durability, SledJournal, Status, Store};

#[test]
fn workflows_are_listed_by_status_and_move_when_their_status_changes() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    for id in ["a", "b", "c", "d"] {
        batch.put_workflow(workflow(id, Status::Pending));
        batch.push_completion(id, completion(0));
    }
    journal.commit(&batch).unwrap();
    assert_eq!(ids(&journal, Some(Status::Pending)), ["a", "b", "c", "d"]);
    assert!(ids(&journal, Some(Status::Succeeded)).is_empty());

    batch.clear();
    batch.put_workflow(workflow("b", Status::Succeeded));
    batch.put_workflow(workflow("c", Status::Failed));
    batch.put_workflow(workflow("d", Status::Cancelled));
    journal.commit(&batch).unwrap();

    assert_eq!(ids(&journal, Some(Status::Pending)), ["a"]);
    assert_eq!(ids(&journal, Some(Status::Succeeded)), ["b"]);
    assert_eq!(ids(&journal, Some(Status::Failed)), ["c"]);
    assert_eq!(ids(&journal, Some(Status::Cancelled)), ["d"]);
    assert_eq!(ids(&journal, None), ["a", "b", "c", "d"]);
    assert_eq!(
        journal.workflows(Some(Status::Failed)).unwrap(),
        [workflow("c", Status::Failed)]
    );
}

#[test]
fn two_puts_of_one_workflow_in_one_batch_leave_only_the_last_status_indexed() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    batch.put_workflow(workflow("w", Status::Pending));
    batch.put_workflow(workflow("w", Status::Succeeded));
    journal.commit(&batch).unwrap();
    assert!(ids(&journal, Some(Status::Pending)).is_empty());
    assert_eq!(ids(&journal, Some(Status::Succeeded)), ["w"]);
}

#[test]
fn the_status_index_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    {
        let journal = SledJournal::open(&path, Durability::Flush).unwrap();
        let mut batch = Batch::new();
        batch.put_workflow(workflow("x", Status::Pending));
        batch.put_workflow(workflow("y", Status::Pending));
        journal.commit(&batch).unwrap();
        batch.clear();
        batch.put_workflow(workflow("x", Status::Failed));
        journal.commit(&batch).unwrap();
    }
    let journal = SledJournal::open_existing(&path).unwrap();
    assert_eq!(ids(&journal, Some(Status::Pending)), ["y"]);
    assert_eq!(ids(&journal, Some(Status::Failed)), ["x"]);
}

#[test]
fn status_names_parse_and_print() {
    for status in Status::ALL {
        assert_eq!(status.to_string().parse::<Status>(), Ok(status));
    }
    assert_eq!(Status::Cancelled.to_string(), "cancelled");
    let err = "Pending".parse::<Status>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown workflow status \"Pending\" (expected pending, succeeded, failed, cancelled, enqueued or delayed)"
    );
}

#[test]
fn listing_while_another_thread_changes_statuses_never_reports_corruption() {
    let journal = SledJournal::temporary().unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("w{i:02}")).collect();
    let mut batch = Batch::new();
    for id in &ids {
        batch.put_workflow(workflow(id, Status::Pending));
    }
    journal.commit(&batch).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut batch = Batch::new();
            for round in 0..300 {
                batch.clear();
                for id in ids.iter().skip(round % 3).step_by(3) {
                    batch.put_workflow(workflow(id, Status::ALL[round % 4]));
                }
                journal.commit(&batch).unwrap();
            }
        });
        for _ in 0..300 {
            for status in Status::ALL {
                for rec in journal.workflows(Some(status)).unwrap() {
                    assert_eq!(rec.status, status);
                }
            }
        }
    });
}

#[test]
fn queued_statuses_are_listed_without_index_entries() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("a", Status::Enqueued));
    batch.insert_workflow(workflow("b", Status::Delayed));
    batch.insert_workflow(workflow("c", Status::Enqueued));
    batch.insert_workflow(workflow("d", Status::Pending));
    journal.commit(&batch).unwrap();
    assert_eq!(ids(&journal, Some(Status::Enqueued)), ["a", "c"]);
    assert_eq!(ids(&journal, Some(Status::Delayed)), ["b"]);
    // A queued workflow's status changes cost no index write (and no removal).
    for (id, status) in [
        ("a", Status::Enqueued),
        ("b", Status::Delayed),
        ("c", Status::Enqueued),
    ] {
        assert_eq!(journal.raw_get(&status_key(status, id)).unwrap(), None);
    }

    batch.clear();
    let mut b = workflow("b", Status::Enqueued);
    b.updated_ms += 1;
    batch.update_workflow(b, Status::Delayed);
    let mut a = workflow("a", Status::Pending);
    a.updated_ms += 1;
    batch.update_workflow(a, Status::Enqueued);
    batch.update_workflow(workflow("c", Status::Cancelled), Status::Enqueued);
    journal.commit(&batch).unwrap();
    assert_eq!(ids(&journal, Some(Status::Enqueued)), ["b"]);
    assert!(ids(&journal, Some(Status::Delayed)).is_empty());
    assert_eq!(ids(&journal, Some(Status::Pending)), ["a", "d"]);
    assert_eq!(ids(&journal, Some(Status::Cancelled)), ["c"]);
}

#[test]
fn a_queued_start_is_one_marked_index_entry_and_its_record_is_not_rewritten() {
    let (_dir, path, journal) = common::flush_journal();
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("q", Status::Enqueued));
    journal.commit(&batch).unwrap();
    let enqueued = journal.raw_get(&workflow_key("q")).unwrap();

    let mut started = workflow("q", Status::Pending);
    started.updated_ms = 1_700_000_009_000;
    batch.clear();
    batch.start_queued(started.clone());
    journal.commit(&batch).unwrap();
    assert_eq!(journal.raw_get(&workflow_key("q")).unwrap(), enqueued);
    assert_eq!(
        journal.raw_get(&status_key(Status::Pending, "q")).unwrap(),
        Some(started.updated_ms.to_be_bytes().to_vec())
    );
    drop(journal);

    // Durable like a record: after a reopen it is still started, and recovered as such.
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("q").unwrap(), Some(started.clone()));
    assert_eq!(journal.workflows(Some(Status::Pending)).unwrap(), [started]);
    assert!(ids(&journal, Some(Status::Enqueued)).is_empty());

    // Its end removes the mark with the index entry.
    batch.clear();
    batch.update_workflow(workflow("q", Status::Succeeded), Status::Pending);
    journal.commit(&batch).unwrap();
    assert_eq!(
        journal.raw_get(&status_key(Status::Pending, "q")).unwrap(),
        None
    );
    assert_eq!(ids(&journal, Some(Status::Succeeded)), ["q"]);
}

#[test]
fn a_pending_entry_that_is_not_a_start_mark_next_to_a_queued_record_is_corrupt() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("q", Status::Enqueued));
    journal.commit(&batch).unwrap();
    journal
        .raw_insert(&status_key(Status::Pending, "q"), &[])
        .unwrap();
    let err = journal.workflow("q").unwrap_err();
    assert!(
        err.to_string()
            .contains("indexed as pending but the record is queued"),
        "{err}"
    );
}

/// Queue record key of workflow `id`'s queue entry.
fn entry_key(id: &str) -> Vec<u8> {
    [&[ENTRY][..], id.as_bytes()].concat()
}

#[test]
fn a_queue_entry_shares_the_pending_index_entry_from_enqueue_to_end() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    // "q" is enqueued; "now" is enqueued and started in one batch.
    batch.insert_workflow(workflow("q", Status::Enqueued));
    batch.put_queue_record(entry_key("q"), b"place of q".to_vec());
    batch.insert_workflow(workflow("now", Status::Enqueued));
    batch.put_queue_record(entry_key("now"), b"place of now".to_vec());
    let mut now = workflow("now", Status::Pending);
    now.updated_ms = 1_700_000_001_000;
    batch.start_queued(now.clone());
    journal.commit(&batch).unwrap();
    // No queue record of its own: the entry is in the `Pending` index entry.
    assert_eq!(journal.raw_get(&[b"u"[0], ENTRY, b'q']).unwrap(), None);
    assert!(journal
        .raw_get(&status_key(Status::Pending, "q"))
        .unwrap()
        .is_some());
    let both = vec![
        (entry_key("now"), b"place of now".to_vec()),
        (entry_key("q"), b"place of q".to_vec()),
    ];
    assert_eq!(journal.queue_records(&[ENTRY]).unwrap(), both);
    assert_eq!(journal.queue_records(b"").unwrap(), both);
    assert_eq!(journal.queue_records(&entry_key("q")).unwrap(), both[1..]);
    assert!(journal.queue_records(b"r").unwrap().is_empty());
    // A waiting one is not listed as pending; a started one is, with its start time.
    assert_eq!(ids(&journal, Some(Status::Enqueued)), ["q"]);
    assert_eq!(
        journal.workflows(Some(Status::Pending)).unwrap(),
        [now.clone()]
    );
    assert_eq!(journal.workflow("now").unwrap(), Some(now.clone()));

    // "q" starts (its entry kept), "now" ends and leaves its queue.
    let mut q = workflow("q", Status::Pending);
    q.updated_ms = 1_700_000_002_000;
    let mut ended = now;
    ended.status = Status::Succeeded;
    batch.clear();
    batch.start_queued(q.clone());
    batch.update_workflow(ended.clone(), Status::Pending);
    batch.delete_queue_record(entry_key("now"));
    journal.commit(&batch).unwrap();
    assert_eq!(journal.queue_records(b"").unwrap(), both[1..]);
    assert_eq!(
        journal.workflows(Some(Status::Pending)).unwrap(),
        [q.clone()]
    );
    assert_eq!(journal.workflow("now").unwrap(), Some(ended));
    assert_eq!(
        journal
            .raw_get(&status_key(Status::Pending, "now"))
            .unwrap(),
        None
    );

    // A rewrite of the started one (say, its recovery attempts) keeps its entry.
    q.recovery_attempts = 0;
    batch.clear();
    batch.update_workflow(q.clone(), Status::Pending);
    journal.commit(&batch).unwrap();
    assert_eq!(journal.queue_records(b"").unwrap(), both[1..]);
    assert_eq!(
        journal.workflows(Some(Status::Pending)).unwrap(),
        [q.clone()]
    );

    // Its end and the removal of its entry leave nothing behind.
    q.status = Status::Failed;
    batch.clear();
    batch.update_workflow(q, Status::Pending);
    batch.delete_queue_record(entry_key("q"));
    journal.commit(&batch).unwrap();
    assert!(journal.queue_records(b"").unwrap().is_empty());
    assert_eq!(
        journal.raw_get(&status_key(Status::Pending, "q")).unwrap(),
        None
    );

    // A waiting one cancelled leaves its queue with its entry.
    batch.clear();
    batch.insert_workflow(workflow("c", Status::Delayed));
    batch.put_queue_record(entry_key("c"), b"place of c".to_vec());
    journal.commit(&batch).unwrap();
    batch.clear();
    batch.update_workflow(workflow("c", Status::Cancelled), Status::Delayed);
    batch.delete_queue_record(entry_key("c"));
    journal.commit(&batch).unwrap();
    assert!(journal.queue_records(b"").unwrap().is_empty());
    assert_eq!(ids(&journal, Some(Status::Cancelled)), ["c"]);
    assert!(ids(&journal, Some(Status::Pending)).is_empty());
}

#[test]
fn a_start_after_a_reopen_keeps_the_queue_entry_written_before_it() {
    let (_dir, path, journal) = common::flush_journal();
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("q", Status::Enqueued));
    batch.put_queue_record(entry_key("q"), b"place of q".to_vec());
    journal.commit(&batch).unwrap();
    drop(journal);

    // Nothing of the enqueue is remembered but the journal: the start reads the entry.
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    let mut started = workflow("q", Status::Pending);
    started.updated_ms = 1_700_000_003_000;
    batch.clear();
    batch.start_queued(started.clone());
    journal.commit(&batch).unwrap();
    assert_eq!(
        journal.queue_records(b"").unwrap(),
        [(entry_key("q"), b"place of q".to_vec())]
    );
    assert_eq!(journal.workflows(Some(Status::Pending)).unwrap(), [started]);
}

#[test]
fn an_enqueued_workflow_is_one_entry_holding_its_record_until_a_record_of_its_own() {
    let (_dir, path, journal) = common::flush_journal();
    let mut batch = Batch::new();
    // "b" and "d" are enqueued into a queue; "a" started directly, "c" ended, "e" is
    // queued the schema 7 way (a record of its own, no entry).
    batch.put_workflow(workflow("a", Status::Pending));
    for id in ["b", "d"] {
        batch.insert_workflow(workflow(id, Status::Enqueued));
        batch.put_queue_record(entry_key(id), format!("place of {id}").into_bytes());
    }
    batch.put_workflow(workflow("c", Status::Succeeded));
    batch.insert_workflow(workflow("e", Status::Enqueued));
    journal.commit(&batch).unwrap();

    // One sled entry per enqueue: no record of its own, and it reads all the same.
    assert_eq!(journal.raw_get(&workflow_key("b")).unwrap(), None);
    assert!(journal.raw_get(&workflow_key("e")).unwrap().is_some());
    assert_eq!(
        journal.workflow("b").unwrap(),
        Some(workflow("b", Status::Enqueued))
    );
    assert_eq!(ids(&journal, None), ["a", "b", "c", "d", "e"]);
    assert_eq!(ids(&journal, Some(Status::Enqueued)), ["b", "d", "e"]);
    assert_eq!(ids(&journal, Some(Status::Pending)), ["a"]);
    assert_eq!(
        journal.queue_records(&[ENTRY]).unwrap(),
        [
            (entry_key("b"), b"place of b".to_vec()),
            (entry_key("d"), b"place of d".to_vec()),
        ]
    );
    drop(journal);

    // Durable, and started: still one entry, read as started.
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    let mut b = workflow("b", Status::Pending);
    b.updated_ms = 1_700_000_005_000;
    batch.clear();
    batch.start_queued(b.clone());
    journal.commit(&batch).unwrap();
    assert_eq!(journal.raw_get(&workflow_key("b")).unwrap(), None);
    assert_eq!(journal.workflow("b").unwrap(), Some(b.clone()));
    assert_eq!(ids(&journal, Some(Status::Pending)), ["a", "b"]);
    assert_eq!(ids(&journal, Some(Status::Enqueued)), ["d", "e"]);
    assert_eq!(
        journal.workflows(None).unwrap()[1],
        b,
        "listed as started, once"
    );

    // Its entry removed while it waits: its record moves under its own key.
    batch.clear();
    batch.delete_queue_record(entry_key("d"));
    journal.commit(&batch).unwrap();
    assert_eq!(
        journal.workflow("d").unwrap(),
        Some(workflow("d", Status::Enqueued))
    );
    assert!(journal.raw_get(&workflow_key("d")).unwrap().is_some());

    // Its end writes a record of its own and removes the entry: listed once, as ended.
    b.status = Status::Succeeded;
    batch.clear();
    batch.update_workflow(b.clone(), Status::Pending);
    batch.delete_queue_record(entry_key("b"));
    journal.commit(&batch).unwrap();
    assert_eq!(
        journal.raw_get(&status_key(Status::Pending, "b")).unwrap(),
        None
    );
    assert_eq!(journal.workflow("b").unwrap(), Some(b.clone()));
    assert_eq!(ids(&journal, None), ["a", "b", "c", "d", "e"]);
    assert_eq!(ids(&journal, Some(Status::Succeeded)), ["b", "c"]);
    assert!(journal.queue_records(&[ENTRY]).unwrap().is_empty());
}

#[test]
fn a_record_put_and_then_enqueued_in_one_batch_reads_as_enqueued() {
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("x", Status::Pending));
    batch.insert_workflow(workflow("x", Status::Enqueued));
    batch.put_queue_record(entry_key("x"), b"place of x".to_vec());
    journal.commit(&batch).unwrap();
    // The last put wins: the record held in the entry, none left under its own key.
    assert_eq!(journal.raw_get(&workflow_key("x")).unwrap(), None);
    assert_eq!(
        journal.workflow("x").unwrap(),
        Some(workflow("x", Status::Enqueued))
    );
    assert_eq!(ids(&journal, Some(Status::Enqueued)), ["x"]);
}

#[test]
fn direct_starts_share_a_start_group_until_records_of_their_own() {
    let (_dir, path, journal) = common::flush_journal();
    let mut batch = Batch::new();
    // "a" and "b" started directly (new records), "c" already ended.
    batch.insert_workflow(workflow("a", Status::Pending));
    batch.insert_workflow(workflow("b", Status::Pending));
    batch.put_workflow(workflow("c", Status::Succeeded));
    journal.commit(&batch).unwrap();

    // One sled entry for both starts: a start group holding their records, and no key
    // of their own.
    assert!(journal.raw_get(&start_group_key(0)).unwrap().is_some());
    assert_eq!(journal.raw_get(&start_group_key(1)).unwrap(), None);
    for id in ["a", "b"] {
        assert_eq!(journal.raw_get(&workflow_key(id)).unwrap(), None, "{id}");
        assert_eq!(
            journal.raw_get(&status_key(Status::Pending, id)).unwrap(),
            None
        );
        assert_eq!(
            journal.workflow(id).unwrap(),
            Some(workflow(id, Status::Pending))
        );
    }
    assert_eq!(ids(&journal, None), ["a", "b", "c"]);
    assert_eq!(ids(&journal, Some(Status::Pending)), ["a", "b"]);
    drop(journal);

    // Durable; a later put while pending (a resumption's attempt count) moves the record
    // out of the group into an entry of its own: still one copy, read and listed once.
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(
        journal.workflow("a").unwrap(),
        Some(workflow("a", Status::Pending))
    );
    let mut a = workflow("a", Status::Pending);
    a.recovery_attempts = 3;
    a.updated_ms += 7;
    batch.clear();
    batch.update_workflow(a.clone(), Status::Pending);
    journal.commit(&batch).unwrap();
    assert_eq!(journal.raw_get(&workflow_key("a")).unwrap(), None);
    assert!(journal
        .raw_get(&status_key(Status::Pending, "a"))
        .unwrap()
        .is_some());
    assert!(
        journal.raw_get(&start_group_key(0)).unwrap().is_some(),
        "b is left"
    );
    assert_eq!(journal.workflow("a").unwrap(), Some(a.clone()));
    let listed = journal.workflows(Some(Status::Pending)).unwrap();
    assert_eq!(listed, [a.clone(), workflow("b", Status::Pending)]);
    assert_eq!(journal.workflows(None).unwrap()[0], a, "listed once");
    assert_eq!(ids(&journal, None), ["a", "b", "c"]);
    // Two puts of one batch, the first writing a record of its own (no known prior
    // status): the last is read.
    let mut b = workflow("b", Status::Pending);
    batch.clear();
    b.recovery_attempts = 4;
    batch.put_workflow(b.clone());
    b.recovery_attempts = 5;
    batch.update_workflow(b.clone(), Status::Pending);
    journal.commit(&batch).unwrap();
    assert_eq!(journal.workflow("b").unwrap(), Some(b.clone()));
    assert_eq!(ids(&journal, Some(Status::Pending)), ["a", "b"]);
    // Its last member gone, so is the group.
    assert_eq!(journal.raw_get(&start_group_key(0)).unwrap(), None);
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("b").unwrap(), Some(b.clone()));
    assert_eq!(journal.workflows(Some(Status::Pending)).unwrap(), [a, b]);

    // Their ends write records of their own and remove the entries: listed once, ended.
    batch.clear();
    for id in ["a", "b"] {
        batch.update_workflow(workflow(id, Status::Succeeded), Status::Pending);
    }
    journal.commit(&batch).unwrap();
    for id in ["a", "b"] {
        assert_eq!(
            journal.raw_get(&status_key(Status::Pending, id)).unwrap(),
            None
        );
        assert_eq!(
            journal.workflow(id).unwrap(),
            Some(workflow(id, Status::Succeeded))
        );
    }
    assert_eq!(ids(&journal, None), ["a", "b", "c"]);
    assert!(ids(&journal, Some(Status::Pending)).is_empty());
    assert_eq!(ids(&journal, Some(Status::Succeeded)), ["a", "b", "c"]);
}

#[test]
fn a_start_after_another_put_of_its_id_in_one_batch_is_the_record_that_stays() {
    let journal = SledJournal::temporary().unwrap();
    let (mut first, mut second) = (
        workflow("x", Status::Pending),
        workflow("x", Status::Pending),
    );
    first.input = b"first".to_vec();
    second.input = b"second".to_vec();
    let mut batch = Batch::new();
    batch.put_workflow(first);
    batch.insert_workflow(second.clone());
    // Started, and started again as already failed (a put with no prior status known to
    // the caller), in one batch: its `Pending` entry does not outlive it.
    batch.insert_workflow(workflow("y", Status::Pending));
    batch.insert_workflow(workflow("y", Status::Failed));
    journal.commit(&batch).unwrap();
    assert_eq!(journal.workflow("x").unwrap(), Some(second));
    assert_eq!(
        journal.workflow("y").unwrap(),
        Some(workflow("y", Status::Failed))
    );
    assert_eq!(ids(&journal, Some(Status::Pending)), ["x"]);
    assert_eq!(ids(&journal, Some(Status::Failed)), ["y"]);
}
