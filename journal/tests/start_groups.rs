//! Start groups (schema 10): a commit's direct starts share sled entries, and every read
//! and listing sees each workflow once, as its latest write left it, across reopens.
#![allow(clippy::unwrap_used)]

mod common;

use common::{completion, ids, workflow};
use ordo_journal::fuzzing::{start_group_key, status_key, workflow_key};
use ordo_journal::{Batch, Durability, Error, SledJournal, Status, Store, WorkflowRecord};

/// How many start groups the journal holds (they are numbered from 0 up).
fn groups(journal: &SledJournal) -> usize {
    (0..1_000)
        .filter(|&n| journal.raw_get(&start_group_key(n)).unwrap().is_some())
        .count()
}

fn id(n: usize) -> String {
    format!("order-{n:04}")
}

#[test]
fn ended_members_stay_ended_and_a_group_goes_with_its_last_member() {
    let (_dir, path, journal) = common::flush_journal();
    // 300 starts in one commit: more than one group holds (4 KiB each).
    let mut batch = Batch::new();
    for n in 0..300 {
        batch.insert_workflow(workflow(&id(n), Status::Pending));
    }
    journal.commit(&batch).unwrap();
    let stored = groups(&journal);
    assert!(stored > 1 && stored < 100, "{stored} groups for 300 starts");
    for n in [0, 150, 299] {
        assert_eq!(journal.raw_get(&workflow_key(&id(n))).unwrap(), None);
        assert_eq!(
            journal
                .raw_get(&status_key(Status::Pending, &id(n)))
                .unwrap(),
            None
        );
    }

    // Every other one ends (with a step first, in another commit).
    batch.clear();
    for n in (0..300).step_by(2) {
        batch.push_completion(&id(n), completion(0));
    }
    journal.commit(&batch).unwrap();
    batch.clear();
    for n in (0..300).step_by(2) {
        batch.update_workflow(workflow(&id(n), Status::Succeeded), Status::Pending);
    }
    journal.commit(&batch).unwrap();
    let odd: Vec<String> = (1..300).step_by(2).map(id).collect();
    let even: Vec<String> = (0..300).step_by(2).map(id).collect();
    assert_eq!(ids(&journal, Some(Status::Pending)), odd);
    assert_eq!(ids(&journal, Some(Status::Succeeded)), even);
    assert_eq!(ids(&journal, None).len(), 300);
    assert_eq!(groups(&journal), stored, "each group keeps a member");

    // The same after a reopen, which reads which listed ids moved out.
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(ids(&journal, Some(Status::Pending)), odd);
    assert_eq!(ids(&journal, Some(Status::Succeeded)), even);
    let all = journal.workflows(None).unwrap();
    assert_eq!(all.len(), 300);
    for (n, record) in all.iter().enumerate() {
        let status = if n % 2 == 0 {
            Status::Succeeded
        } else {
            Status::Pending
        };
        assert_eq!(*record, workflow(&id(n), status));
        assert_eq!(journal.workflow(&id(n)).unwrap().as_ref(), Some(record));
    }
    assert_eq!(journal.completions(&id(0)).unwrap(), [completion(0)]);

    // The rest end: every group goes with its last member, and nothing is pending.
    batch.clear();
    for n in (1..300).step_by(2) {
        batch.update_workflow(workflow(&id(n), Status::Failed), Status::Pending);
    }
    journal.commit(&batch).unwrap();
    assert_eq!(groups(&journal), 0);
    assert!(ids(&journal, Some(Status::Pending)).is_empty());
    assert_eq!(ids(&journal, Some(Status::Failed)), odd);
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert!(ids(&journal, Some(Status::Pending)).is_empty());
    assert_eq!(ids(&journal, None).len(), 300);
}

#[test]
fn a_deleted_member_never_comes_back_while_its_group_stays() {
    let (_dir, path, journal) = common::flush_journal();
    let mut batch = Batch::new();
    for name in ["a", "b", "c"] {
        batch.insert_workflow(workflow(name, Status::Pending));
    }
    journal.commit(&batch).unwrap();
    // "a" ends, then goes (retention); "b" is deleted while pending; "c" keeps the
    // group.
    batch.clear();
    batch.update_workflow(workflow("a", Status::Succeeded), Status::Pending);
    journal.commit(&batch).unwrap();
    batch.clear();
    batch.delete_workflow("a");
    batch.delete_workflow("b");
    journal.commit(&batch).unwrap();
    assert_eq!(groups(&journal), 1);
    drop(journal);
    for reopened in [false, true] {
        assert_eq!(journal_ids(&path, reopened), ["c"]);
    }
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("a").unwrap(), None);
    assert_eq!(journal.workflow("b").unwrap(), None);
    assert_eq!(
        journal.workflow("c").unwrap(),
        Some(workflow("c", Status::Pending))
    );
    // Started again under a deleted id: a new workflow, in a new group.
    batch.clear();
    batch.insert_workflow(WorkflowRecord::new("b", "refund", vec![1], 5));
    journal.commit(&batch).unwrap();
    assert_eq!(journal.workflow("b").unwrap().unwrap().name, "refund");
    assert_eq!(ids(&journal, Some(Status::Pending)), ["b", "c"]);
    assert_eq!(groups(&journal), 2);
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("b").unwrap().unwrap().name, "refund");
    assert_eq!(ids(&journal, Some(Status::Pending)), ["b", "c"]);
    // The last member of the first group deleted: that group goes.
    batch.clear();
    batch.delete_workflow("c");
    journal.commit(&batch).unwrap();
    assert_eq!(groups(&journal), 1);
    assert_eq!(ids(&journal, None), ["b"]);
}

/// The ids listed by a journal at `path`: opened anew if `reopened`, else read-only
/// (from a private copy, as the CLI reads).
fn journal_ids(path: &std::path::Path, reopened: bool) -> Vec<String> {
    let journal = if reopened {
        SledJournal::open(path, Durability::Flush).unwrap()
    } else {
        SledJournal::open_existing(path).unwrap()
    };
    let all = ids(&journal, None);
    assert_eq!(ids(&journal, Some(Status::Pending)), all);
    all
}

#[test]
fn long_records_and_starts_rewritten_in_their_batch_keep_keys_of_their_own() {
    let journal = SledJournal::temporary().unwrap();
    let mut long = workflow("long", Status::Pending);
    long.input = vec![7; 4_000];
    let mut batch = Batch::new();
    batch.insert_workflow(long.clone());
    // Started and ended in one batch.
    batch.insert_workflow(workflow("quick", Status::Pending));
    batch.update_workflow(workflow("quick", Status::Succeeded), Status::Pending);
    journal.commit(&batch).unwrap();
    assert_eq!(groups(&journal), 0);
    assert!(journal
        .raw_get(&status_key(Status::Pending, "long"))
        .unwrap()
        .is_some());
    assert_eq!(journal.workflow("long").unwrap(), Some(long));
    assert_eq!(
        journal.workflow("quick").unwrap(),
        Some(workflow("quick", Status::Succeeded))
    );
    assert_eq!(ids(&journal, Some(Status::Pending)), ["long"]);
}

#[test]
fn a_member_rewritten_with_an_unknown_prior_status_stays_listed_as_pending() {
    let (_dir, path, journal) = common::flush_journal();
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("a", Status::Pending));
    batch.insert_workflow(workflow("b", Status::Pending));
    journal.commit(&batch).unwrap();
    let mut a = workflow("a", Status::Pending);
    a.recovery_attempts = 9;
    batch.clear();
    batch.put_workflow(a.clone());
    journal.commit(&batch).unwrap();
    for journal in [journal, SledJournal::open_existing(&path).unwrap()] {
        assert_eq!(journal.workflow("a").unwrap(), Some(a.clone()));
        assert_eq!(
            journal.workflows(Some(Status::Pending)).unwrap(),
            [a.clone(), workflow("b", Status::Pending)]
        );
        assert_eq!(
            journal.workflows(None).unwrap(),
            [a.clone(), workflow("b", Status::Pending)]
        );
    }
}

#[test]
fn a_garbled_start_group_is_refused_at_open_naming_it() {
    let (_dir, path, journal) = common::flush_journal();
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("a", Status::Pending));
    journal.commit(&batch).unwrap();
    let good = journal.raw_get(&start_group_key(0)).unwrap().unwrap();
    // Cut inside its member.
    journal
        .raw_insert(&start_group_key(0), &good[..good.len() - 3])
        .unwrap();
    drop(journal);
    match SledJournal::open(&path, Durability::Flush) {
        Err(Error::Corrupt { key, reason }) => {
            assert_eq!(key, "startgroup/0");
            assert!(reason.contains("start group"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_last_of_two_starts_of_one_id_in_a_batch_is_what_stays() {
    let (_dir, path, journal) = common::flush_journal();
    let (mut first, mut second) = (
        workflow("x", Status::Pending),
        workflow("x", Status::Pending),
    );
    first.input = b"first".to_vec();
    second.input = b"second".to_vec();
    let mut batch = Batch::new();
    batch.insert_workflow(first);
    batch.insert_workflow(second.clone());
    batch.insert_workflow(workflow("y", Status::Pending));
    journal.commit(&batch).unwrap();
    assert_eq!(journal.workflow("x").unwrap(), Some(second.clone()));
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("x").unwrap(), Some(second));
    // Its end, then its deletion: gone for good, and nothing stale is listed.
    batch.clear();
    batch.update_workflow(workflow("x", Status::Succeeded), Status::Pending);
    journal.commit(&batch).unwrap();
    assert_eq!(ids(&journal, Some(Status::Pending)), ["y"]);
    batch.clear();
    batch.delete_workflow("x");
    journal.commit(&batch).unwrap();
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("x").unwrap(), None);
    assert_eq!(ids(&journal, None), ["y"]);
    assert_eq!(ids(&journal, Some(Status::Pending)), ["y"]);
}

#[test]
fn a_group_left_without_members_goes_with_the_next_commit_whatever_it_holds() {
    let (_dir, path, journal) = common::flush_journal();
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("a", Status::Pending));
    batch.insert_workflow(workflow("b", Status::Pending));
    journal.commit(&batch).unwrap();
    // A group whose only listed id has a record of its own (as a build that stopped
    // grouping could leave one): no member at open.
    let group = journal.raw_get(&start_group_key(0)).unwrap().unwrap();
    journal.raw_insert(&start_group_key(7), &group).unwrap();
    batch.clear();
    batch.update_workflow(workflow("a", Status::Succeeded), Status::Pending);
    batch.update_workflow(workflow("b", Status::Succeeded), Status::Pending);
    journal.commit(&batch).unwrap();
    assert_eq!(groups(&journal), 1, "group 7 is left");
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    // The next commit is one workflow's completions alone (sled's one-entry commit).
    batch.clear();
    batch.push_completion("a", completion(0));
    journal.commit(&batch).unwrap();
    assert_eq!(groups(&journal), 0);
    // Deleted afterwards, "a" does not come back from the group.
    batch.clear();
    batch.delete_workflow("a");
    journal.commit(&batch).unwrap();
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("a").unwrap(), None);
    assert_eq!(ids(&journal, None), ["b"]);
}

#[test]
fn a_member_deleted_and_started_again_in_one_commit_is_never_missing_for_a_reader() {
    let journal = std::sync::Arc::new(SledJournal::temporary().unwrap());
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("keeper", Status::Pending));
    batch.insert_workflow(workflow("x", Status::Pending));
    journal.commit(&batch).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (journal, done) = (journal.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let found = journal.workflow("x").unwrap();
                assert!(found.is_some(), "x missing after {reads} reads");
                reads += 1;
            }
            reads
        })
    };
    for n in 0..3_000u64 {
        // Deleted and started again, with another id, in one commit: "keeper" keeps
        // the first group, rewritten without "x".
        batch.clear();
        batch.delete_workflow("x");
        let mut again = workflow("x", Status::Pending);
        again.created_ms += n;
        batch.insert_workflow(again);
        batch.insert_workflow(workflow(&format!("other-{n}"), Status::Pending));
        journal.commit(&batch).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert_eq!(
        journal.workflow("x").unwrap().unwrap().created_ms,
        workflow("x", Status::Pending).created_ms + 2_999
    );
}

#[test]
fn a_workflow_moved_back_into_a_group_is_never_missing_for_a_reader() {
    let journal = std::sync::Arc::new(SledJournal::temporary().unwrap());
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("x", Status::Pending));
    journal.commit(&batch).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (journal, done) = (journal.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                assert!(journal.workflow("x").unwrap().is_some(), "read {reads}");
                if reads % 16 == 0 {
                    let all = journal.workflows(None).unwrap();
                    assert!(all.iter().any(|r| r.id == "x"), "listing at read {reads}");
                }
                reads += 1;
            }
            reads
        })
    };
    for n in 0..2_000u64 {
        // Ended (a record of its own), then deleted and started again in one commit
        // (into a group): x is there before and after every commit.
        batch.clear();
        if n % 2 == 0 {
            batch.update_workflow(workflow("x", Status::Cancelled), Status::Pending);
        } else {
            batch.delete_workflow_was("x", Status::Cancelled);
            batch.insert_workflow(workflow("x", Status::Pending));
        }
        journal.commit(&batch).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn a_rewrite_after_two_rewrites_in_one_batch_is_the_one_read() {
    let (_dir, path, journal) = common::flush_journal();
    let mut batch = Batch::new();
    batch.insert_workflow(workflow("w", Status::Pending));
    batch.insert_workflow(workflow("other", Status::Pending));
    journal.commit(&batch).unwrap();
    let rewrite = |attempts: u32| {
        let mut record = workflow("w", Status::Pending);
        record.recovery_attempts = attempts;
        record
    };
    batch.clear();
    batch.update_workflow(rewrite(3), Status::Pending);
    batch.update_workflow(rewrite(4), Status::Pending);
    journal.commit(&batch).unwrap();
    assert_eq!(journal.workflow("w").unwrap(), Some(rewrite(4)));
    batch.clear();
    batch.update_workflow(rewrite(5), Status::Pending);
    journal.commit(&batch).unwrap();
    assert_eq!(journal.workflow("w").unwrap(), Some(rewrite(5)));
    drop(journal);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.workflow("w").unwrap(), Some(rewrite(5)));
    assert_eq!(
        journal.workflows(Some(Status::Pending)).unwrap(),
        [workflow("other", Status::Pending), rewrite(5)]
    );
}
