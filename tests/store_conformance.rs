//! Both stores keep the same promises: every record kind round-trips, completions are
//! append-only, a refused batch writes nothing, deletes and resets take everything of a
//! workflow along. Each check runs on sled and on PostgreSQL (a throwaway cluster, see
//! `ordo_testkit::postgres`; skipped, and said so, where no server is installed).
#![allow(clippy::unwrap_used)]

use ordo::journal::{
    Batch, Completion, Elsewhere, Error, Message, Outcome, PgJournal, PgOptions, SledJournal,
    Status, Store, WorkflowRecord,
};
use ordo_testkit::postgres::TestPostgres;

fn completion(seq: u64) -> Completion {
    Completion {
        seq,
        step_id: seq * 7,
        name: format!("step-{seq}"),
        outcome: if seq % 3 == 2 {
            Outcome::Err(vec![seq as u8; 3])
        } else {
            Outcome::Ok(vec![seq as u8; 5])
        },
        attempts: 1 + (seq as u32 % 2),
        started_ms: 1_000 + seq,
        ended_ms: 2_000 + seq,
    }
}

fn record(id: &str, status: Status) -> WorkflowRecord {
    let mut rec = WorkflowRecord::new(id, "flow", id.as_bytes().to_vec(), 42);
    rec.status = status;
    if status.is_finished() {
        rec.output = Some(Outcome::Err(b"nope".to_vec()));
    }
    rec
}

fn message(destination: &str, topic: &str, number: u64, key: Option<&str>) -> Message {
    Message {
        destination: destination.into(),
        topic: topic.into(),
        number,
        payload: vec![number as u8; 4],
        sent_ms: 77,
        idempotency_key: key.map(str::to_owned),
    }
}

/// Runs `check` on a temporary sled journal and on a fresh PostgreSQL database.
fn on_both(name: &str, check: impl Fn(&dyn Store)) {
    check(&SledJournal::temporary().unwrap());
    match TestPostgres::shared() {
        Some(pg) => check(&PgJournal::connect(&pg.database(name)).unwrap()),
        None => eprintln!("{name}: PostgreSQL part skipped (no server)"),
    }
}

/// The ids of `store`'s workflows with `status` (all of them for `None`), in order.
fn listed(store: &dyn Store, status: Option<Status>) -> Vec<String> {
    store
        .workflows(status)
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect()
}

#[test]
fn every_workflow_record_field_round_trips() {
    on_both("records", |store| {
        let mut batch = Batch::new();
        let mut expected = Vec::new();
        for (i, status) in Status::ALL.into_iter().enumerate() {
            let rec = record(&format!("wf-{i}"), status);
            batch.put_workflow(rec.clone());
            expected.push(rec);
        }
        let edge = WorkflowRecord {
            id: "订单/42 🧾".into(),
            name: String::new(),
            input: Vec::new(),
            status: Status::Succeeded,
            output: Some(Outcome::Ok(Vec::new())),
            created_ms: u64::MAX,
            updated_ms: 0,
            recovery_attempts: u32::MAX,
            app_version: Some("v2".into()),
            deadline_ms: Some(u64::MAX),
            first_step: u64::MAX,
            keyed_tokens: false,
        };
        batch.put_workflow(edge.clone());
        expected.push(edge);
        store.commit(&batch).unwrap();
        for rec in &expected {
            assert_eq!(store.workflow(&rec.id).unwrap().as_ref(), Some(rec));
        }
        assert_eq!(store.workflow("absent").unwrap(), None);
        assert_eq!(store.commit_count(), 1);
    });
}

#[test]
fn completions_come_back_in_seq_order_across_commits() {
    on_both("completions", |store| {
        for seqs in [vec![3, 0, 256, 1], vec![65_536, 300, 257]] {
            let mut batch = Batch::new();
            for seq in seqs {
                batch.push_completion("a", completion(seq));
                batch.push_completion("b", completion(seq + 1));
            }
            store.commit(&batch).unwrap();
        }
        let mut big = completion(70_000);
        big.outcome = Outcome::Ok(vec![0xAB; 300_000]);
        let mut batch = Batch::new();
        batch.push_completion("a", big.clone());
        store.commit(&batch).unwrap();
        let mut want: Vec<Completion> = [0, 1, 3, 256, 257, 300, 65_536]
            .into_iter()
            .map(completion)
            .collect();
        want.push(big);
        assert_eq!(store.completions("a").unwrap(), want);
        let b: Vec<u64> = store
            .completions("b")
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(b, [1, 2, 4, 257, 258, 301, 65_537]);
        assert!(store.completions("c").unwrap().is_empty());
    });
}

#[test]
fn an_append_at_or_before_a_recorded_seq_refuses_the_whole_batch() {
    on_both("append_only", |store| {
        let mut batch = Batch::new();
        batch.push_completion("a", completion(0));
        batch.push_completion("a", completion(1));
        store.commit(&batch).unwrap();

        let mut batch = Batch::new();
        batch.put_workflow(record("a", Status::Succeeded));
        batch.push_completion("b", completion(0));
        batch.push_completion("a", completion(1));
        batch.push_completion("a", completion(2));
        let err = store.commit(&batch).unwrap_err();
        assert!(
            matches!(&err, Error::SeqOutOfOrder { workflow_id, seq: 1, after: 1 } if workflow_id == "a"),
            "{err:?}"
        );
        // Nothing of the refused batch is there.
        assert_eq!(store.workflow("a").unwrap(), None);
        assert!(store.completions("b").unwrap().is_empty());
        assert_eq!(store.completions("a").unwrap().len(), 2);

        // A workflow started with its first completion in one batch: that completion
        // counts as recorded at once.
        let mut start = Batch::new();
        start.insert_workflow(record("d", Status::Pending));
        start.push_completion("d", completion(0));
        store.commit(&start).unwrap();
        let mut again = Batch::new();
        again.push_completion("d", completion(0));
        assert!(matches!(
            store.commit(&again),
            Err(Error::SeqOutOfOrder {
                seq: 0,
                after: 0,
                ..
            })
        ));

        let mut twice = Batch::new();
        twice.push_completion("c", completion(5));
        twice.push_completion("c", completion(5));
        assert!(matches!(
            store.commit(&twice),
            Err(Error::SeqOutOfOrder { seq: 5, .. })
        ));
        assert!(store.completions("c").unwrap().is_empty());
    });
}

/// Two workers, `x` and `y`, on a fresh database `name` of the shared test server;
/// `None` (and a line saying so) without a server.
fn two_workers(name: &str) -> Option<(PgJournal, PgJournal)> {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("{name}: PostgreSQL part skipped (no server)");
        return None;
    };
    let url = pg.database(name);
    let worker = |name: &str| PgOptions::new(&url).worker_name(name).connect().unwrap();
    Some((worker("x"), worker("y")))
}

/// A PostgreSQL worker checks the order of the completions it appends to its own
/// workflows itself (it knows their last seq, and spares the server a read per commit);
/// what it did not write alone is checked by the server again: a workflow another
/// worker appended to, or one it claimed after others wrote to it.
#[test]
fn on_postgres_a_workflow_others_appended_to_is_checked_by_the_server_again() {
    let Some((x, y)) = two_workers("known_seqs") else {
        return;
    };
    let append = |store: &PgJournal, seqs: &[u64]| {
        let mut batch = Batch::new();
        for &seq in seqs {
            batch.push_completion("a", completion(seq));
        }
        store.commit(&batch)
    };
    let refused_at = |result: Result<(), Error>, at: u64| match result {
        Err(Error::SeqOutOfOrder {
            workflow_id,
            seq,
            after,
        }) => workflow_id == "a" && seq == at && after == at,
        other => panic!("{other:?}"),
    };
    let mut start = Batch::new();
    start.insert_workflow(record("a", Status::Pending));
    start.push_completion("a", completion(0));
    x.commit(&start).unwrap();
    append(&x, &[1]).unwrap();
    // x knows `a` ends at 1; y does not, and the server refuses it the same way.
    assert!(refused_at(append(&x, &[1, 2]), 1));
    assert!(refused_at(append(&y, &[1]), 1));
    append(&y, &[2, 3]).unwrap();
    // Once x claims `a`, what it knew is forgotten: the server sees 3 recorded.
    assert!(x.claim("a").unwrap());
    assert!(refused_at(append(&x, &[3, 4]), 3));
    append(&x, &[4]).unwrap();
    let seqs: Vec<u64> = x.completions("a").unwrap().iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
}

/// A worker whose row was taken over (here: a process registered under its name again)
/// is fenced: whatever form its commit takes (completions alone, with records, of a
/// workflow it does not know, or a whole transaction), the commit is refused with
/// `Error::Fenced` and the journal holds nothing of it.
#[test]
fn on_postgres_a_fenced_worker_commits_nothing_in_any_form() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("fencing: PostgreSQL part skipped (no server)");
        return;
    };
    let url = pg.database("fenced_forms");
    let other = PgOptions::new(&url).worker_name("other").connect().unwrap();
    let mut start = Batch::new();
    start.insert_workflow(record("theirs", Status::Pending));
    other.commit(&start).unwrap();
    // Each form's batch, for the workflow id the fenced worker started.
    type Form = fn(&str) -> Batch;
    let forms: [(&str, Form); 5] = [
        ("one completion", |id| {
            let mut batch = Batch::new();
            batch.push_completion(id, completion(0));
            batch
        }),
        ("completions", |id| {
            let mut batch = Batch::new();
            batch.push_completion(id, completion(0));
            batch.push_completion(id, completion(1));
            batch
        }),
        ("records and completions", |id| {
            let mut batch = Batch::new();
            batch.update_workflow(record(id, Status::Succeeded), Status::Pending);
            batch.push_completion(id, completion(0));
            batch
        }),
        ("another's workflow", |_| {
            let mut batch = Batch::new();
            batch.push_completion("theirs", completion(0));
            batch
        }),
        ("a transaction", |id| {
            let mut batch = Batch::new();
            batch.put_type(7, "u64".into());
            batch.push_completion(id, completion(0));
            batch
        }),
    ];
    for (n, (form, batch)) in forms.into_iter().enumerate() {
        let name = format!("w{n}");
        let id = format!("mine-{n}");
        let old = PgOptions::new(&url).worker_name(&name).connect().unwrap();
        let mut start = Batch::new();
        start.insert_workflow(record(&id, Status::Pending));
        old.commit(&start).unwrap();
        let _new = PgOptions::new(&url).worker_name(&name).connect().unwrap();
        match old.commit(&batch(&id)) {
            Err(Error::Fenced { worker }) => assert_eq!(worker, name, "{form}"),
            other => panic!("{form}: {other:?}"),
        }
        assert!(old.is_fenced(), "{form}");
        let record = other.workflow(&id).unwrap().unwrap();
        assert_eq!(record.status, Status::Pending, "{form}");
        assert!(other.completions(&id).unwrap().is_empty(), "{form}");
    }
    assert!(other.completions("theirs").unwrap().is_empty());
}

/// A workflow's end that one worker commits is told to the others at once (the
/// notification that wakes a handle waiting there), whether the end is committed in one
/// statement (the end alone) or in a transaction (here, with a type name).
/// A worker whose lease ran out while its connections stay open (a paused process's)
/// is taken over only once those connections are ended, and then commits nothing on
/// them, in the form that has no fence of its own (completions of a workflow it knows)
/// as in the others. `x`'s lease is set to the past by hand (its heartbeat, a third of
/// its 10 s lease away, cannot renew it in time); `y`'s claim ends `x`'s connections,
/// declares it dead and takes its workflow; `x`'s next commits are refused and write
/// nothing, and `y` appends to the workflow from where `x` left it.
#[test]
fn on_postgres_a_worker_taken_over_commits_nothing_on_connections_it_kept() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("kept connections: PostgreSQL part skipped (no server)");
        return;
    };
    let url = pg.database("kept_connections");
    let x = PgOptions::new(&url).worker_name("x").connect().unwrap();
    let y = PgOptions::new(&url).worker_name("y").connect().unwrap();
    let mut start = Batch::new();
    start.insert_workflow(record("wf", Status::Pending));
    start.push_completion("wf", completion(0));
    x.commit(&start).unwrap();
    let mut step = Batch::new();
    step.push_completion("wf", completion(1));
    x.commit(&step).unwrap();
    pg.query(
        &url,
        "UPDATE ordo.workers SET lease_until = now() - interval '1 second' WHERE name = 'x'",
    );
    let claimed: Vec<String> = (y.claim_pending().unwrap().into_iter())
        .map(|r| r.id)
        .collect();
    assert_eq!(claimed, ["wf"]);
    let mut late = Batch::new();
    late.push_completion("wf", completion(2));
    match x.commit(&late) {
        Err(Error::Fenced { worker }) => assert_eq!(worker, "x"),
        other => panic!("a commit after the takeover: {other:?}"),
    }
    assert!(x.is_fenced());
    assert_eq!(y.completions("wf").unwrap(), [completion(0), completion(1)]);
    y.commit(&late).unwrap();
    assert_eq!(
        y.completions("wf").unwrap(),
        [completion(0), completion(1), completion(2)]
    );
}

#[test]
fn on_postgres_an_end_one_worker_commits_is_told_to_the_others() {
    let Some((x, y)) = two_workers("ends_elsewhere") else {
        return;
    };
    let mut start = Batch::new();
    start.insert_workflow(record("alone", Status::Pending));
    start.insert_workflow(record("with-type", Status::Pending));
    x.commit(&start).unwrap();
    let told = |id: &str| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < until {
            if y.changed_elsewhere()
                .contains(&Elsewhere::Ended(id.to_string()))
            {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    };
    let mut end = Batch::new();
    end.update_workflow(record("alone", Status::Succeeded), Status::Pending);
    x.commit(&end).unwrap();
    assert!(
        told("alone"),
        "the end committed in one statement was not told"
    );
    let mut end = Batch::new();
    end.update_workflow(record("with-type", Status::Succeeded), Status::Pending);
    end.put_type(7, "u64".into());
    x.commit(&end).unwrap();
    assert!(
        told("with-type"),
        "the end committed in a transaction was not told"
    );
}

/// A PostgreSQL journal runs a request on the calling thread, or through its own
/// thread when the caller is inside a tokio runtime (which may not block on another);
/// what one way commits, the other knows: the order check and the commits themselves
/// stay one worker's, whichever way each request took.
#[test]
fn on_postgres_requests_from_inside_and_outside_a_tokio_runtime_share_one_worker() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("two ways: PostgreSQL part skipped (no server)");
        return;
    };
    let url = pg.database("two_ways");
    let journal = PgJournal::connect(&url).unwrap();
    let append = |journal: &PgJournal, seq: u64| {
        let mut batch = Batch::new();
        batch.push_completion("a", completion(seq));
        journal.commit(&batch)
    };
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inside = |seq: u64| tokio.block_on(async { append(&journal, seq) });
    let mut start = Batch::new();
    start.insert_workflow(record("a", Status::Pending));
    journal.commit(&start).unwrap();
    append(&journal, 0).unwrap();
    inside(1).unwrap();
    // Each way refuses what the other recorded, before the server sees it.
    assert!(matches!(
        inside(0),
        Err(Error::SeqOutOfOrder {
            seq: 0,
            after: 1,
            ..
        })
    ));
    append(&journal, 2).unwrap();
    assert!(matches!(
        inside(2),
        Err(Error::SeqOutOfOrder {
            seq: 2,
            after: 2,
            ..
        })
    ));
    assert!(matches!(
        append(&journal, 1),
        Err(Error::SeqOutOfOrder {
            seq: 1,
            after: 2,
            ..
        })
    ));
    inside(3).unwrap();
    let seqs: Vec<u64> = tokio
        .block_on(async { journal.completions("a") })
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    assert_eq!(journal.commit_count(), 5);
    // A journal that ran requests both ways can be dropped inside a tokio runtime.
    let other = PgJournal::connect(&url).unwrap();
    assert_eq!(other.completions("a").unwrap().len(), 4);
    assert!(tokio
        .block_on(async { other.workflow("a") })
        .unwrap()
        .is_some());
    tokio.block_on(async move { drop(other) });
}

#[test]
fn workflows_are_listed_by_status_in_id_order_and_move_with_it() {
    on_both("status", |store| {
        let mut batch = Batch::new();
        for id in ["b", "a", "c", "B"] {
            batch.insert_workflow(record(id, Status::Pending));
        }
        // The later put of one id in a batch wins.
        batch.put_workflow(record("c", Status::Failed));
        store.commit(&batch).unwrap();
        let ids = |status| listed(store, status);
        assert_eq!(ids(Some(Status::Pending)), ["B", "a", "b"]);
        assert_eq!(ids(Some(Status::Failed)), ["c"]);
        let mut batch = Batch::new();
        batch.update_workflow(record("a", Status::Cancelled), Status::Pending);
        store.commit(&batch).unwrap();
        assert_eq!(ids(Some(Status::Pending)), ["B", "b"]);
        assert_eq!(ids(Some(Status::Cancelled)), ["a"]);
        assert_eq!(ids(None), ["B", "a", "b", "c"]);
        assert_eq!(store.claim_pending().unwrap().len(), 2);
    });
}

#[test]
fn queued_workflows_are_listed_by_status_and_their_start_reads_as_pending() {
    on_both("queued", |store| {
        let mut batch = Batch::new();
        batch.insert_workflow(record("q1", Status::Enqueued));
        batch.insert_workflow(record("q2", Status::Enqueued));
        batch.insert_workflow(record("q3", Status::Delayed));
        batch.insert_workflow(record("p", Status::Pending));
        store.commit(&batch).unwrap();
        let ids = |status| listed(store, status);
        assert_eq!(ids(Some(Status::Enqueued)), ["q1", "q2"]);
        assert_eq!(ids(Some(Status::Delayed)), ["q3"]);

        // Started: `Pending` as of its start time, in every read.
        let mut started = record("q1", Status::Pending);
        started.updated_ms = 99;
        let mut batch = Batch::new();
        batch.start_queued(started.clone());
        store.commit(&batch).unwrap();
        assert_eq!(store.workflow("q1").unwrap(), Some(started.clone()));
        assert_eq!(ids(Some(Status::Enqueued)), ["q2"]);
        assert_eq!(ids(Some(Status::Pending)), ["p", "q1"]);
        let all = store.workflows(None).unwrap();
        assert_eq!(all.iter().find(|w| w.id == "q1"), Some(&started));

        // Enqueued and started in one commit, as a free slot's dispatch does.
        let mut batch = Batch::new();
        batch.insert_workflow(record("q4", Status::Enqueued));
        let mut q4 = record("q4", Status::Pending);
        q4.updated_ms = 100;
        batch.start_queued(q4.clone());
        store.commit(&batch).unwrap();
        assert_eq!(store.workflow("q4").unwrap(), Some(q4));

        // Its end, and a cancel of one still waiting, take it out of those lists.
        let mut batch = Batch::new();
        batch.update_workflow(record("q1", Status::Succeeded), Status::Pending);
        batch.update_workflow(record("q2", Status::Cancelled), Status::Enqueued);
        store.commit(&batch).unwrap();
        assert_eq!(ids(Some(Status::Pending)), ["p", "q4"]);
        assert!(ids(Some(Status::Enqueued)).is_empty());
        assert_eq!(ids(Some(Status::Succeeded)), ["q1"]);
        assert_eq!(ids(Some(Status::Cancelled)), ["q2"]);
        assert_eq!(
            store.workflow("q1").unwrap().map(|w| w.status),
            Some(Status::Succeeded)
        );

        // A delete of a started one, its status unknown to the caller, leaves nothing.
        let mut batch = Batch::new();
        batch.delete_workflow("q4");
        store.commit(&batch).unwrap();
        assert_eq!(store.workflow("q4").unwrap(), None);
        assert_eq!(ids(Some(Status::Pending)), ["p"]);
    });
}

#[test]
fn mail_events_awakeables_types_traces_and_queue_records_round_trip() {
    on_both("mail", |store| {
        let mut batch = Batch::new();
        batch.send_message(message("w", "t", 3, Some("k1")));
        batch.send_message(message("w", "u", 1, None));
        batch.send_message(message("w", "t", 2, None));
        batch.send_message(message("x", "t", 4, None));
        // Sent and consumed in one batch: stored neither way, its key is.
        batch.send_message(message("w", "t", 5, Some("k2")));
        batch.consume_message("w", "t", 5);
        batch.set_event("w", "phase", b"one".to_vec());
        batch.set_event("w", "phase", b"two".to_vec());
        batch.set_event("w", "alpha", b"a".to_vec());
        batch.resolve_awakeable("w", 9, Outcome::Err(b"denied".to_vec()));
        batch.put_type(u64::MAX, "shop::Receipt".into());
        batch.put_trace_context(
            "w",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        );
        batch.put_queue_record(b"e/q1/2".to_vec(), b"two".to_vec());
        batch.put_queue_record(b"e/q1/1".to_vec(), b"one".to_vec());
        batch.put_queue_record(b"e/q2/1".to_vec(), b"other".to_vec());
        batch.put_queue_record(b"e/q1/3".to_vec(), b"gone".to_vec());
        batch.delete_queue_record(b"e/q1/3".to_vec());
        batch.put_queue_record(vec![0xFF, 0xFF], b"edge".to_vec());
        store.commit(&batch).unwrap();

        let numbers = |d: &str| -> Vec<(String, u64)> {
            store
                .messages(d)
                .unwrap()
                .into_iter()
                .map(|m| (m.topic, m.number))
                .collect()
        };
        assert_eq!(
            numbers("w"),
            [("u".into(), 1), ("t".into(), 2), ("t".into(), 3)]
        );
        assert_eq!(
            store.messages("w").unwrap()[2],
            message("w", "t", 3, Some("k1"))
        );
        assert!(store.message_key_used("w", "k1").unwrap());
        assert!(store.message_key_used("w", "k2").unwrap());
        assert!(!store.message_key_used("x", "k1").unwrap());
        assert_eq!(store.last_message_number().unwrap(), 5);
        assert_eq!(store.event("w", "phase").unwrap(), Some(b"two".to_vec()));
        assert_eq!(store.event("w", "none").unwrap(), None);
        assert_eq!(
            store.events("w").unwrap(),
            [
                ("alpha".to_string(), b"a".to_vec()),
                ("phase".into(), b"two".to_vec())
            ]
        );
        assert_eq!(
            store.awakeable("w", 9).unwrap(),
            Some(Outcome::Err(b"denied".to_vec()))
        );
        assert_eq!(store.awakeable("w", 8).unwrap(), None);
        assert_eq!(
            store.type_name(u64::MAX).unwrap().as_deref(),
            Some("shop::Receipt")
        );
        assert!(store.trace_context("w").unwrap().is_some());
        assert_eq!(
            store.queue_records(b"e/q1/").unwrap(),
            [
                (b"e/q1/1".to_vec(), b"one".to_vec()),
                (b"e/q1/2".to_vec(), b"two".to_vec())
            ]
        );
        assert_eq!(store.queue_records(&[0xFF]).unwrap().len(), 1);
        assert_eq!(store.queue_records(b"").unwrap().len(), 4);

        let mut batch = Batch::new();
        batch.consume_message("w", "t", 2);
        batch.delete_queue_record(b"e/q1/1".to_vec());
        store.commit(&batch).unwrap();
        assert_eq!(numbers("w"), [("u".into(), 1), ("t".into(), 3)]);
        assert_eq!(store.queue_records(b"e/q1/").unwrap().len(), 1);
    });
}

#[test]
fn a_delete_takes_everything_of_a_workflow_and_a_reset_its_completions() {
    on_both("delete", |store| {
        let mut batch = Batch::new();
        for id in ["old", "kept"] {
            batch.put_workflow(record(id, Status::Succeeded));
            batch.push_completion(id, completion(0));
            batch.push_completion(id, completion(1));
            batch.send_message(message(id, "t", if id == "old" { 1 } else { 2 }, Some("k")));
            batch.set_event(id, "e", vec![1]);
            batch.resolve_awakeable(id, 1, Outcome::Ok(vec![]));
            batch.put_trace_context(
                id,
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            );
        }
        store.commit(&batch).unwrap();
        let mut batch = Batch::new();
        batch.delete_workflow("old");
        batch.delete_workflow("never-existed");
        store.commit(&batch).unwrap();
        assert_eq!(store.workflow("old").unwrap(), None);
        assert!(store.completions("old").unwrap().is_empty());
        assert!(store.messages("old").unwrap().is_empty());
        assert!(!store.message_key_used("old", "k").unwrap());
        assert!(store.events("old").unwrap().is_empty());
        assert_eq!(store.awakeable("old", 1).unwrap(), None);
        assert_eq!(store.trace_context("old").unwrap(), None);
        assert!(store
            .workflows(Some(Status::Succeeded))
            .unwrap()
            .iter()
            .all(|w| w.id == "kept"));
        assert_eq!(store.completions("kept").unwrap().len(), 2);
        assert_eq!(store.messages("kept").unwrap().len(), 1);

        // Deleted and written again in one batch: a new workflow.
        let mut batch = Batch::new();
        batch.delete_workflow("kept");
        batch.insert_workflow(record("kept", Status::Pending));
        batch.push_completion("kept", completion(0));
        store.commit(&batch).unwrap();
        assert_eq!(store.completions("kept").unwrap(), [completion(0)]);
        assert_eq!(
            store.workflow("kept").unwrap().map(|w| w.status),
            Some(Status::Pending)
        );

        // Continue-as-new: the history starts over at seq 0.
        let mut batch = Batch::new();
        batch.push_completion("kept", completion(1));
        store.commit(&batch).unwrap();
        let mut batch = Batch::new();
        batch.reset_completions("kept");
        batch.push_completion("kept", completion(0));
        store.commit(&batch).unwrap();
        assert_eq!(store.completions("kept").unwrap(), [completion(0)]);
    });
}

/// A swap writes only over what the caller expected, and two workers swapping one
/// record at once lose none of each other's changes (a counter that each bumps by
/// read, then swap, again on a change, ends at the sum); sled leaves it to its runtime.
#[test]
fn a_queue_record_swap_writes_only_over_what_was_expected_and_loses_no_swap() {
    use ordo::journal::queue::Swap;
    assert_eq!(
        SledJournal::temporary()
            .unwrap()
            .swap_queue_record(b"n", None, &[(b"n".to_vec(), Some(vec![1]))])
            .unwrap(),
        None
    );
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("swap");
    let journal = PgOptions::new(&url).worker_name("w0").connect().unwrap();
    let put = |value: u8| [(b"n".to_vec(), Some(vec![value]))];
    assert_eq!(
        journal.swap_queue_record(b"n", None, &put(0)).unwrap(),
        Some(Swap::Done)
    );
    assert_eq!(
        journal.swap_queue_record(b"n", None, &put(9)).unwrap(),
        Some(Swap::Changed(Some(vec![0]))),
        "a record is there"
    );
    assert_eq!(
        journal
            .swap_queue_record(b"n", Some(&[5]), &put(9))
            .unwrap(),
        Some(Swap::Changed(Some(vec![0]))),
        "it holds 0, not 5"
    );
    assert_eq!(
        journal.queue_records(b"n").unwrap(),
        [(b"n".to_vec(), vec![0])]
    );
    const BUMPS: u8 = 50;
    let workers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|name| {
            let url = url.clone();
            std::thread::spawn(move || {
                let journal = PgOptions::new(&url).worker_name(name).connect().unwrap();
                let mut held = Some(vec![0]);
                let mut retried = 0;
                for _ in 0..BUMPS {
                    loop {
                        let next = held.as_ref().map_or(0, |v: &Vec<u8>| v[0]) + 1;
                        match journal
                            .swap_queue_record(b"n", held.as_deref(), &put(next))
                            .unwrap()
                        {
                            Some(Swap::Done) => {
                                held = Some(vec![next]);
                                break;
                            }
                            Some(Swap::Changed(now)) => {
                                held = now;
                                retried += 1;
                            }
                            None => panic!("a shared store swaps"),
                        }
                    }
                }
                retried
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(
        journal.queue_records(b"n").unwrap(),
        [(b"n".to_vec(), vec![2 * BUMPS])],
        "every bump of both workers counted"
    );
    let gone = [(b"n".to_vec(), None), (b"m".to_vec(), Some(vec![7]))];
    assert_eq!(
        journal
            .swap_queue_record(b"n", Some(&[2 * BUMPS]), &gone)
            .unwrap(),
        Some(Swap::Done)
    );
    assert_eq!(
        journal.queue_records(b"").unwrap(),
        [(b"m".to_vec(), vec![7])]
    );
}

/// A connection cut between a journal and its server (`Proxy`): the next chunk the
/// server sends on any connection after a cut is asked for is dropped, and that
/// connection closed both ways, as a network that fails right after the server
/// answered would.
struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Both ends of a stream: a reader, a writer, and what closes it both ways.
type Ends = (
    Box<dyn std::io::Read + Send>,
    Box<dyn std::io::Write + Send>,
    Box<dyn Fn() + Send + Sync>,
);

fn tcp_ends(stream: std::net::TcpStream) -> Ends {
    let (reader, writer) = (stream.try_clone().unwrap(), stream.try_clone().unwrap());
    (
        Box::new(reader),
        Box::new(writer),
        Box::new(move || {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }),
    )
}

impl Proxy {
    /// A proxy on 127.0.0.1 to the server of `url` (TCP or a Unix socket).
    fn start(url: &str) -> Proxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let config: tokio_postgres::Config = url.parse().unwrap();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let host = config.get_hosts()[0].clone();
        let connect = move || -> Ends {
            match &host {
                tokio_postgres::config::Host::Tcp(name) => {
                    tcp_ends(std::net::TcpStream::connect((name.as_str(), port)).unwrap())
                }
                tokio_postgres::config::Host::Unix(dir) => {
                    let path = dir.join(format!(".s.PGSQL.{port}"));
                    let stream = std::os::unix::net::UnixStream::connect(path).unwrap();
                    let (reader, writer) =
                        (stream.try_clone().unwrap(), stream.try_clone().unwrap());
                    (
                        Box::new(reader),
                        Box::new(writer),
                        Box::new(move || {
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                        }),
                    )
                }
            }
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            cut: Arc::new(AtomicBool::new(false)),
            cuts: Arc::new(AtomicU64::new(0)),
        };
        let (cut, cuts) = (Arc::clone(&proxy.cut), Arc::clone(&proxy.cuts));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (mut from_client, mut to_client, close_client) = tcp_ends(client);
                let (mut from_server, mut to_server, close_server) = connect();
                let close: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                    close_client();
                    close_server();
                });
                let up = Arc::clone(&close);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut to_server);
                    up();
                });
                let (cut, cuts) = (Arc::clone(&cut), Arc::clone(&cuts));
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = from_server.read(&mut buf) {
                        if cut.swap(false, Ordering::SeqCst) {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if to_client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    close();
                });
            }
        });
        proxy
    }

    /// `url` with its host and port this proxy's.
    fn url(&self, url: &str) -> String {
        let config: tokio_postgres::Config = url.parse().unwrap();
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            config.get_user().unwrap_or("postgres"),
            self.port,
            config.get_dbname().unwrap_or("postgres")
        )
    }
}

/// A commit whose answer is lost (the connection fails right after the server
/// committed) is looked up on a new connection, which first takes its worker's lock
/// again and checks its epoch: by the commit count, or, for completions sent without
/// the fence, by their first one. It is neither sent again (the completion's seq would
/// be refused as recorded) nor taken as lost. Through a proxy that drops the server's
/// next answer and closes the connection every 60 to 120 ms (a new
/// connection prepares every statement first, which takes a while; a connection is cut
/// only once a commit went through since the last cut), a worker commits 3,000
/// completions one at a time (every tenth with its workflow's record, which counts):
/// every commit succeeds, and each completion is recorded exactly once, in order.
#[test]
fn on_postgres_commits_whose_answer_is_lost_land_exactly_once() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("lost answers: PostgreSQL part skipped (no server)");
        return;
    };
    let url = pg.database("lost_answers");
    let proxy = Proxy::start(&url);
    let journal = PgOptions::new(proxy.url(&url))
        .worker_name("w")
        .connect()
        .unwrap();
    let mut start = Batch::new();
    start.insert_workflow(record("wf", Status::Pending));
    journal.commit(&start).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let cutter = {
        let (cut, stop) = (Arc::clone(&proxy.cut), Arc::clone(&stop));
        let committed = Arc::clone(&committed);
        std::thread::spawn(move || {
            let (mut pause, mut at_last_cut) = (7u64, 0);
            while !stop.load(Ordering::SeqCst) {
                pause = (pause * 7 + 5) % 61;
                std::thread::sleep(std::time::Duration::from_millis(60 + pause));
                // Not again before a commit went through since the last cut: on a busy
                // machine setting a connection up may take longer than the pause, and
                // cutting every one in its setup would leave none for a commit.
                let now = committed.load(Ordering::SeqCst);
                if now != at_last_cut {
                    at_last_cut = now;
                    cut.store(true, Ordering::SeqCst);
                }
            }
        })
    };
    const STEPS: u64 = 3_000;
    for seq in 0..STEPS {
        let mut batch = Batch::new();
        if seq % 10 == 9 {
            batch.update_workflow(record("wf", Status::Pending), Status::Pending);
        }
        batch.push_completion("wf", completion(seq));
        if let Err(err) = journal.commit(&batch) {
            stop.store(true, Ordering::SeqCst);
            panic!("commit of seq {seq}: {err}");
        }
        committed.fetch_add(1, Ordering::SeqCst);
    }
    stop.store(true, Ordering::SeqCst);
    cutter.join().unwrap();
    let cuts = proxy.cuts.load(Ordering::SeqCst);
    assert!(cuts > 10, "only {cuts} connections were cut");
    let seqs: Vec<u64> = (journal.completions("wf").unwrap().iter())
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, (0..STEPS).collect::<Vec<_>>());
    assert!(!journal.is_fenced());
}

#[test]
fn a_postgres_journal_keeps_its_records_across_reconnects_and_names() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("reopen");
    {
        let journal = PgOptions::new(&url).worker_name("w1").connect().unwrap();
        let mut batch = Batch::new();
        batch.insert_workflow(record("kept", Status::Pending));
        batch.push_completion("kept", completion(0));
        journal.commit(&batch).unwrap();
        assert_eq!(journal.worker_name(), "w1");
    }
    let journal = PgOptions::new(&url).worker_name("w1").connect().unwrap();
    assert_eq!(journal.completions("kept").unwrap(), [completion(0)]);
    assert_eq!(journal.claim_pending().unwrap()[0].id, "kept");
    let bad = PgOptions::new("postgres://nobody@127.0.0.1:1/none")
        .reconnect_for(std::time::Duration::from_millis(100))
        .connect();
    assert!(bad.is_err());
}

#[test]
fn workers_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("migrate");
    let starts: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                PgOptions::new(url)
                    .worker_name(format!("w{i}"))
                    .connect()
                    .map(|journal| journal.worker_name().to_string())
            })
        })
        .collect();
    for start in starts {
        assert!(start.join().unwrap().is_ok(), "a worker failed to start");
    }
    // A build that does not know the schema's version refuses it, and changes nothing.
    let psql = |sql: &str| {
        let out = std::process::Command::new(pg.bin_dir().join("psql"))
            .args([url.as_str(), "-AtX", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(psql("SELECT version FROM ordo.schema_version"), "3");
    assert_eq!(psql("SELECT count(*) FROM ordo.workers"), "4");
    // A database at version 1 (before reservations of deduplication ids, and before
    // version 3's first step of a run and token key) is migrated, its records kept.
    let mut batch = Batch::new();
    batch.insert_workflow(record("from-v1", Status::Pending));
    batch.put_queue_record(b"k".to_vec(), b"v".to_vec());
    PgOptions::new(&url)
        .connect()
        .unwrap()
        .commit(&batch)
        .unwrap();
    psql("ALTER TABLE ordo.queue_records DROP COLUMN reserved_by");
    psql("ALTER TABLE ordo.workflows DROP COLUMN first_step");
    psql("ALTER TABLE ordo.workflows DROP COLUMN keyed_tokens");
    psql("DROP TABLE ordo.token_key");
    psql("UPDATE ordo.schema_version SET version = 1");
    let migrated = PgOptions::new(&url).connect().unwrap();
    assert_eq!(psql("SELECT version FROM ordo.schema_version"), "3");
    for column in ["reserved_by", "first_step", "keyed_tokens"] {
        assert_eq!(
            psql(&format!(
                "SELECT count(*) FROM information_schema.columns WHERE column_name = '{column}'"
            )),
            "1"
        );
    }
    let kept = migrated.workflow("from-v1").unwrap().unwrap();
    // Recorded before version 3: steps from 0, plain tokens; and the journal has a key.
    assert_eq!(
        (kept.id.as_str(), kept.first_step, kept.keyed_tokens),
        ("from-v1", 0, false)
    );
    assert!(migrated.token_key().is_some());
    assert_eq!(psql("SELECT length(key) FROM ordo.token_key"), "16");
    assert_eq!(migrated.queue_records(b"k").unwrap().len(), 1);
    assert_eq!(
        migrated.reserve_queue_holder(b"d", "holder").unwrap(),
        None,
        "the migrated table takes reservations"
    );
    drop(migrated);
    let workers = psql("SELECT count(*) FROM ordo.workers");
    psql("UPDATE ordo.schema_version SET version = 99");
    let err = PgOptions::new(&url).connect().unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { found: 99, .. }),
        "{err:?}"
    );
    assert_eq!(psql("SELECT version FROM ordo.schema_version"), "99");
    assert_eq!(psql("SELECT count(*) FROM ordo.workers"), workers);
}

#[test]
fn workflows_by_id_answers_each_id_in_order_as_one_read_of_each_would() {
    on_both("by_id", |store| {
        let mut batch = Batch::new();
        for (i, status) in Status::ALL.into_iter().enumerate() {
            batch.put_workflow(record(&format!("wf-{i}"), status));
        }
        store.commit(&batch).unwrap();
        let ids = ["wf-3", "missing", "wf-0", "wf-3", "wf-1"];
        let at_once = store.workflows_by_id(&ids).unwrap();
        let one_by_one: Vec<_> = ids.iter().map(|id| store.workflow(id).unwrap()).collect();
        assert_eq!(at_once, one_by_one);
        assert_eq!(
            at_once.iter().map(Option::is_some).collect::<Vec<_>>(),
            [true, false, true, true, true]
        );
        assert_eq!(at_once[0].as_ref().map(|r| r.id.as_str()), Some("wf-3"));
        assert!(store.workflows_by_id(&[]).unwrap().is_empty());
    });
}
