//! Starts share the group commit: the starts of one executor turn are one commit, a
//! workflow runs only once its start record is durable, and a start that could not be
//! committed reaches its handle as an error with nothing run.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::faulty::{Fault, FaultyStore, Log};
use ordo::{Clock, Ctx, Error, Runtime, RuntimeBuilder, Status};

fn runtime(dir: &std::path::Path, log: &Log, fault: Option<(u64, Fault)>) -> RuntimeBuilder {
    let journal = ordo_testkit::store::open(dir);
    runtime_on(FaultyStore::new(journal, log.clone(), fault), log)
}

/// Workflow `greet` (one step, which logs `body ID`) on `store`.
fn runtime_on(store: FaultyStore, log: &Log) -> RuntimeBuilder {
    let body_log = log.clone();
    Runtime::builder()
        .store(Box::new(store))
        .clock(Clock::Virtual)
        .start_time(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .register("greet", move |ctx: Ctx, n: u32| {
            let log = body_log.clone();
            async move {
                let id = ctx.workflow_id().to_string();
                ctx.step("hello", move || async move {
                    log.push(format!("body {id}"));
                    Ok::<_, String>(n * 2)
                })
                .await
            }
        })
}

#[test]
fn starts_made_in_one_turn_share_one_commit_and_run_only_once_it_is_durable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::default();
    let rt = runtime(dir.path(), &log, None).build().expect("build");
    let handles: Vec<_> = (0..50u32)
        .map(|n| {
            rt.start::<_, u32, String>("greet", &format!("g-{n}"), n)
                .expect("start")
        })
        .collect();
    // Not committed yet, but already a pending workflow to its handle.
    assert!(log.lines().is_empty());
    assert_eq!(handles[7].status().expect("status"), Status::Pending);

    let results = rt.block_on(futures::future::join_all(
        handles.iter().map(|h| h.result()),
    ));
    for (n, result) in results.into_iter().enumerate() {
        assert_eq!(result.expect("finishes"), Ok(n as u32 * 2));
    }
    let lines = log.lines();
    // One commit for the 50 starts, before any body ran; then the 50 completions; then
    // the 50 results.
    assert_eq!(lines[0], "commit 1: 50 pending records, 0 completions");
    assert!(
        lines[1..51].iter().all(|l| l.starts_with("body g-")),
        "{lines:?}"
    );
    assert_eq!(lines[51], "commit 2: 0 pending records, 50 completions");
    assert_eq!(lines[52], "commit 3: 0 pending records, 0 completions");
    assert_eq!(lines.len(), 53, "{lines:?}");
}

#[test]
fn two_starts_of_one_id_in_one_turn_are_one_workflow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::default();
    let rt = runtime(dir.path(), &log, None)
        .register("other", |_: Ctx, n: u32| async move { Ok::<_, String>(n) })
        .build()
        .expect("build");
    let first = rt
        .start::<_, u32, String>("greet", "g", 1u32)
        .expect("start");
    let second = rt
        .start::<_, u32, String>("greet", "g", 99u32)
        .expect("start again");
    let conflict = rt.start::<_, u32, String>("other", "g", 1u32);
    assert!(
        matches!(&conflict, Err(Error::Conflict { existing, .. }) if existing == "greet"),
        "{:?}",
        conflict.err()
    );
    assert_eq!(rt.block_on(first.result()).expect("first"), Ok(2));
    assert_eq!(rt.block_on(second.result()).expect("second"), Ok(2));
    let bodies = log.lines().iter().filter(|l| l.starts_with("body")).count();
    assert_eq!(bodies, 1, "{:?}", log.lines());
}

#[test]
fn a_start_whose_commit_fails_reaches_the_handle_and_runs_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::default();
    let rt = runtime(dir.path(), &log, Some((1, Fault::BeforeApply)))
        .build()
        .expect("build");
    let handle = rt
        .start::<_, u32, String>("greet", "g", 1u32)
        .expect("start");
    let err = rt.block_on(handle.result()).expect_err("the commit failed");
    assert!(err.to_string().contains("injected commit failure"), "{err}");
    assert!(
        log.lines().iter().all(|l| !l.starts_with("body")),
        "{:?}",
        log.lines()
    );
    // The runtime refuses to go on: only a reopen continues.
    let again = rt.start::<_, u32, String>("greet", "h", 1u32);
    assert!(matches!(again, Err(Error::Journal(_))), "{:?}", again.err());
    drop((handle, rt));
    let journal = ordo_testkit::store::open(dir.path());
    assert_eq!(journal.workflow("g").expect("read"), None);
}

#[test]
fn start_many_reads_the_journal_once_and_answers_each_start_as_start_would() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::default();
    let other = |_: Ctx, n: u32| async move { Ok::<_, String>(n) };
    {
        let rt = runtime(dir.path(), &log, None)
            .register("other", other)
            .build()
            .expect("build");
        let done = rt
            .start::<_, u32, String>("greet", "done", 5u32)
            .expect("start");
        let taken = rt
            .start::<_, u32, String>("other", "taken", 1u32)
            .expect("start");
        assert_eq!(rt.block_on(done.result()).expect("finishes"), Ok(10));
        assert_eq!(rt.block_on(taken.result()).expect("finishes"), Ok(1));
    }

    let reads = Log::default();
    let mut store = FaultyStore::new(ordo_testkit::store::open(dir.path()), log.clone(), None);
    store.reads = Some(reads.clone());
    let rt = runtime_on(store, &log)
        .register("other", other)
        .build()
        .expect("build");
    let too_long = "x".repeat(ordo::journal::MAX_ID_LEN + 1);
    let starts = vec![
        ("new".to_string(), 1u32),
        ("done".to_string(), 99),
        ("taken".to_string(), 2),
        ("new".to_string(), 50),
        (too_long, 3),
    ];
    let handles = rt
        .start_many::<_, _, u32, String>("greet", starts)
        .expect("the call");
    assert_eq!(reads.lines(), ["read 4 at once"], "one read for the call");

    let result = |i: usize| {
        let handle = handles[i].as_ref().expect("a handle");
        rt.block_on(handle.result()).expect("a result")
    };
    assert_eq!(result(0), Ok(2));
    assert_eq!(result(1), Ok(10), "the recorded result, input ignored");
    assert!(
        matches!(&handles[2], Err(Error::Conflict { workflow_id, .. }) if workflow_id == "taken"),
        "another name under that id"
    );
    assert_eq!(result(3), Ok(2), "the same id twice is one workflow");
    assert!(
        matches!(&handles[4], Err(Error::Journal(_))),
        "an id too long is refused, alone"
    );
    let bodies: Vec<String> = (log.lines().into_iter())
        .filter(|l| l.starts_with("body "))
        .collect();
    assert_eq!(
        bodies,
        ["body done", "body new"],
        "each body ran once, and not again for a recorded workflow"
    );
}

#[test]
fn start_many_checks_the_types_of_the_call_and_starts_nothing_on_a_mismatch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::default();
    let rt = runtime(dir.path(), &log, None).build().expect("build");
    let wrong_input = rt.start_many::<_, _, u32, String>("greet", [("a", "text")]);
    assert!(matches!(wrong_input, Err(Error::TypeMismatch { .. })));
    let unknown = rt.start_many::<_, _, u32, String>("nope", [("a", 1u32)]);
    assert!(
        matches!(unknown, Err(Error::UnknownWorkflow { .. })),
        "{unknown:?}"
    );
    let none = rt
        .start_many::<&str, u32, u32, String>("greet", [])
        .expect("nothing to start");
    assert!(none.is_empty());
    rt.block_on(async {});
    assert!(
        log.lines().is_empty(),
        "nothing was committed: {:?}",
        log.lines()
    );
}
