//! Workflow lifecycle through the public API: idempotent start, conflicts, errors
//! recorded and replayed, retries, durable sleep across a restart, panics, recovery
//! limits, unregistered names, group commit.

mod common;

use common::sleeper::{record_deadline_then_die, restart_and_wake, T0};

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::{builder, journal_dir};
use ordo::{Ctx, Error, RetryPolicy, Status};

/// Counts how often a body ran, across runtimes in one test.
#[derive(Clone, Default)]
struct Counter(Rc<Cell<u32>>);

impl Counter {
    fn bump(&self) {
        self.0.set(self.0.get() + 1);
    }
    fn get(&self) -> u32 {
        self.0.get()
    }
}

#[test]
fn start_with_the_same_id_returns_the_recorded_result_without_running() {
    let dir = journal_dir();
    let runs = Counter::default();
    let register = |runs: Counter| {
        move |ctx: Ctx, n: u32| {
            let runs = runs.clone();
            async move {
                ctx.step("count", move || async move {
                    runs.bump();
                    Ok::<_, String>(n + 1)
                })
                .await
            }
        }
    };
    {
        let rt = builder(dir.path())
            .register("inc", register(runs.clone()))
            .build()
            .expect("build");
        let h = rt
            .start::<_, u32, String>("inc", "same", 41u32)
            .expect("start");
        assert_eq!(rt.block_on(h.result()).expect("result"), Ok(42));
        // Same process, same id: the recorded result, nothing runs.
        let again = rt
            .start::<_, u32, String>("inc", "same", 0u32)
            .expect("start again");
        assert_eq!(rt.block_on(again.result()).expect("result"), Ok(42));
    }
    // A new process (reopened journal): still the recorded result, nothing runs.
    let rt = builder(dir.path())
        .register("inc", register(runs.clone()))
        .build()
        .expect("build");
    let again = rt
        .start::<_, u32, String>("inc", "same", 7u32)
        .expect("start again");
    assert_eq!(rt.block_on(again.result()).expect("result"), Ok(42));
    assert_eq!(runs.get(), 1, "the body ran again");
    assert_eq!(again.status().expect("status"), Status::Succeeded);
}

/// A start of an id that an earlier process left pending resumes it, without
/// `recover()`: its recorded step replays (the body does not run again) and it finishes.
#[test]
fn a_start_resumes_a_workflow_an_earlier_process_left_pending() {
    let dir = journal_dir();
    let (first, second) = (Counter::default(), Counter::default());
    let register = |first: Counter, second: Counter| {
        move |ctx: Ctx, n: u32| {
            let (first, second) = (first.clone(), second.clone());
            async move {
                let a = ctx
                    .step("a", move || async move {
                        first.bump();
                        Ok::<_, String>(n)
                    })
                    .await?;
                ctx.sleep(Duration::from_millis(300)).await;
                let b = ctx
                    .step("b", move || async move {
                        second.bump();
                        Ok::<_, String>(1)
                    })
                    .await?;
                Ok::<_, String>(a + b)
            }
        }
    };
    {
        let rt = builder(dir.path())
            .register("w", register(first.clone(), second.clone()))
            .build()
            .expect("build");
        let _pending = rt
            .start::<_, u32, String>("w", "left", 41u32)
            .expect("start");
        // Step `a` is recorded, the sleep begun: the process stops here.
        rt.block_on(ordo::executor::sleep(Duration::from_millis(100)));
    }
    assert_eq!((first.get(), second.get()), (1, 0));
    let rt = builder(dir.path())
        .register("w", register(first.clone(), second.clone()))
        .build()
        .expect("build");
    let resumed = rt
        .start::<_, u32, String>("w", "left", 41u32)
        .expect("a start of the pending id");
    assert_eq!(rt.block_on(resumed.result()).expect("result"), Ok(42));
    assert_eq!(
        (first.get(), second.get()),
        (1, 1),
        "step a replayed, step b ran once"
    );
}

#[test]
fn same_id_under_another_name_is_a_conflict() {
    async fn a(_: Ctx, (): ()) -> Result<(), String> {
        Ok(())
    }
    async fn b(_: Ctx, (): ()) -> Result<(), String> {
        Ok(())
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("a", a)
        .register("b", b)
        .build()
        .expect("build");
    let h = rt.start::<_, (), String>("a", "id-1", ()).expect("start");
    rt.block_on(h.result()).expect("result").expect("ok");
    match rt.start::<_, (), String>("b", "id-1", ()) {
        Err(Error::Conflict {
            workflow_id,
            existing,
            requested,
        }) => {
            assert_eq!(
                (workflow_id.as_str(), existing.as_str(), requested.as_str()),
                ("id-1", "a", "b")
            );
        }
        other => panic!("expected a conflict, got {:?}", other.map(|_| ())),
    }
    assert!(matches!(
        rt.start::<_, (), String>("nope", "id-2", ()),
        Err(Error::UnknownWorkflow { name }) if name == "nope"
    ));
}

#[test]
fn step_errors_are_recorded_and_replayed_not_rerun() {
    let dir = journal_dir();
    let runs = Counter::default();
    let make = |runs: Counter| {
        move |ctx: Ctx, (): ()| {
            let runs = runs.clone();
            async move {
                let failed: Result<u32, String> = ctx
                    .step("declined", move || async move {
                        runs.bump();
                        Err::<u32, _>("card declined".to_string())
                    })
                    .await;
                // The workflow handles the error and goes on.
                let fallback = ctx
                    .step("fallback", || async { Ok::<u32, String>(7) })
                    .await?;
                Ok::<_, String>(format!("{failed:?} then {fallback}"))
            }
        }
    };
    let rt = builder(dir.path())
        .halt_before_finish()
        .register("wf", make(runs.clone()))
        .build()
        .expect("build");
    let h = rt.start::<_, String, String>("wf", "e", ()).expect("start");
    assert!(matches!(
        rt.block_on(h.result()),
        Err(Error::Stopped { .. })
    ));
    drop((h, rt));
    let steps = common::recorded_steps(dir.path(), "e");
    assert_eq!(
        steps,
        vec![(0, "declined".into(), false), (1, "fallback".into(), true)]
    );

    let rt = builder(dir.path())
        .register("wf", make(runs.clone()))
        .build()
        .expect("build");
    let report = rt.recover().expect("recover");
    assert_eq!(report.resumed, vec!["e".to_string()]);
    let h = rt.handle::<String, String>("e").expect("handle");
    assert_eq!(
        rt.block_on(h.result()).expect("result"),
        Ok("Err(\"card declined\") then 7".to_string())
    );
    assert_eq!(runs.get(), 1, "the failed step's body ran again on replay");
    assert_eq!(rt.metrics().steps_replayed, 2);
}

#[test]
fn step_with_retries_with_exponential_backoff_on_the_virtual_clock() {
    let dir = journal_dir();
    let tries = Counter::default();
    let t = tries.clone();
    let rt = builder(dir.path())
        .register("retry", move |ctx: Ctx, fail_times: u32| {
            let tries = t.clone();
            async move {
                let start = ctx.now().await;
                let policy = RetryPolicy::new(5)
                    .backoff(Duration::from_secs(60), 2.0)
                    .max_backoff(Duration::from_secs(3600));
                let value = ctx
                    .step_with("flaky", policy, move || {
                        let tries = tries.clone();
                        async move {
                            tries.bump();
                            if tries.get() <= fail_times {
                                Err(format!("attempt {} failed", tries.get()))
                            } else {
                                Ok(tries.get())
                            }
                        }
                    })
                    .await;
                let end = ctx.now().await;
                let waited = end.duration_since(start).unwrap_or_default().as_secs();
                Ok::<_, String>((value, waited))
            }
        })
        .build()
        .expect("build");
    let h = rt
        .start::<_, (Result<u32, String>, u64), String>("retry", "r", 3u32)
        .expect("start");
    let (value, waited) = rt.block_on(h.result()).expect("result").expect("ok");
    assert_eq!(value, Ok(4));
    // Backoffs of 60 s, 120 s, 240 s after the three failures: 7 minutes, virtually.
    assert_eq!(waited, 420);
    drop((h, rt));
    let journal = ordo_testkit::store::open(dir.path());
    let flaky = journal
        .completions("r")
        .expect("completions")
        .into_iter()
        .find(|c| c.name == "flaky")
        .expect("the retried step is recorded once");
    assert_eq!(flaky.attempts, 4);
    assert_eq!(flaky.ended_ms - flaky.started_ms, 420_000);
}

#[test]
fn step_with_records_the_final_error_when_attempts_run_out() {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("give-up", |ctx: Ctx, (): ()| async move {
            let policy = RetryPolicy::new(3).backoff(Duration::from_secs(1), 2.0);
            ctx.step_with("always-fails", policy, || async {
                Err::<(), _>("down".to_string())
            })
            .await
        })
        .build()
        .expect("build");
    let h = rt
        .start::<_, (), String>("give-up", "g", ())
        .expect("start");
    assert_eq!(
        rt.block_on(h.result()).expect("result"),
        Err("down".to_string())
    );
    assert_eq!(h.status().expect("status"), Status::Failed);
    drop((h, rt));
    let journal = ordo_testkit::store::open(dir.path());
    let c = journal.completions("g").expect("completions");
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].attempts, c[0].outcome.is_ok()), (3, false));
}

#[test]
fn durable_sleep_across_a_restart_sleeps_only_the_remainder() {
    // Restarted 20 minutes later: wakes at T0 + 1 h, not at restart + 1 h.
    let dir = journal_dir();
    record_deadline_then_die(dir.path(), "s");
    assert_eq!(restart_and_wake(dir.path(), "s", T0 + 20 * 60), T0 + 3600);

    // Restarted after the deadline passed: fires at once.
    let dir = journal_dir();
    record_deadline_then_die(dir.path(), "late");
    assert_eq!(
        restart_and_wake(dir.path(), "late", T0 + 5 * 3600),
        T0 + 5 * 3600
    );
}

#[test]
fn a_panicking_workflow_is_reported_stays_pending_and_recovery_is_capped() {
    let dir = journal_dir();
    let boom = |ctx: Ctx, (): ()| async move {
        ctx.step("before", || async { Ok::<_, String>(1u8) })
            .await?;
        if ctx.workflow_id() == "p" {
            panic!("bug in the workflow");
        }
        Ok::<u8, String>(0)
    };
    let rt = builder(dir.path())
        .max_recovery_attempts(2)
        .register("boom", boom)
        .build()
        .expect("build");
    let h = rt.start::<_, u8, String>("boom", "p", ()).expect("start");
    match rt.block_on(h.result()) {
        Err(Error::Panicked {
            workflow_id,
            message,
        }) => {
            assert_eq!(workflow_id, "p");
            assert!(message.contains("bug in the workflow"), "{message}");
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
    assert_eq!(h.status().expect("status"), Status::Pending);
    drop((h, rt));
    // The step before the panic is kept for a fixed binary.
    assert_eq!(common::recorded_steps(dir.path(), "p").len(), 1);

    for attempt in 1..=2 {
        let rt = builder(dir.path())
            .max_recovery_attempts(2)
            .register("boom", boom)
            .build()
            .expect("build");
        let report = rt.recover().expect("recover");
        assert_eq!(report.resumed, vec!["p".to_string()], "attempt {attempt}");
        let h = rt.handle::<u8, String>("p").expect("handle");
        assert!(matches!(
            rt.block_on(h.result()),
            Err(Error::Panicked { .. })
        ));
    }
    let rt = builder(dir.path())
        .max_recovery_attempts(2)
        .register("boom", boom)
        .build()
        .expect("build");
    let report = rt.recover().expect("recover");
    assert!(report.resumed.is_empty());
    assert!(matches!(
        report.failed.as_slice(),
        [(id, Error::RecoveryExhausted { attempts: 2, limit: 2, .. })] if id == "p"
    ));
    // Starting it again by id is held to the same limit.
    assert!(matches!(
        rt.start::<_, u8, String>("boom", "p", ()),
        Err(Error::RecoveryExhausted { attempts: 2, .. })
    ));
}

#[test]
fn recover_reports_unregistered_workflows_and_leaves_them_pending() {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .halt_after_commits(1)
        .register("old", |ctx: Ctx, (): ()| async move {
            ctx.step("one", || async { Ok::<_, String>(1u8) }).await?;
            ctx.step("two", || async { Ok::<_, String>(2u8) }).await
        })
        .build()
        .expect("build");
    let h = rt
        .start::<_, u8, String>("old", "legacy", ())
        .expect("start");
    assert!(rt.block_on(h.result()).is_err());
    drop((h, rt));

    let rt = builder(dir.path()).build().expect("build");
    let report = rt.recover().expect("recover");
    assert_eq!(
        report.unregistered,
        vec![("legacy".to_string(), "old".to_string())]
    );
    assert!(!report.is_clean());
    assert_eq!(
        rt.journal()
            .workflow("legacy")
            .expect("read")
            .map(|r| r.status),
        Some(Status::Pending)
    );
}

#[test]
fn a_recorded_step_that_no_longer_decodes_is_a_type_mismatch_naming_the_step() {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .halt_before_finish()
        .register("typed", |ctx: Ctx, (): ()| async move {
            let s: String = ctx
                .step("fetch", || async { Ok::<_, String>("text".to_string()) })
                .await?;
            Ok::<_, String>(s.len() as u64)
        })
        .build()
        .expect("build");
    let h = rt.start::<_, u64, String>("typed", "t", ()).expect("start");
    assert!(rt.block_on(h.result()).is_err());
    drop((h, rt));
    // The new code reads the step as a u64.
    let rt = builder(dir.path())
        .register("typed", |ctx: Ctx, (): ()| async move {
            ctx.step("fetch", || async { Ok::<u64, String>(4) }).await
        })
        .build()
        .expect("build");
    rt.recover().expect("recover");
    let h = rt.handle::<u64, String>("t").expect("handle");
    match rt.block_on(h.result()) {
        Err(Error::TypeMismatch {
            workflow_id, what, ..
        }) => {
            assert_eq!(workflow_id, "t");
            assert!(what.contains("step 0") && what.contains("fetch"), "{what}");
        }
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    assert_eq!(
        rt.journal().workflow("t").expect("read").map(|r| r.status),
        Some(Status::Pending)
    );
}

#[test]
fn group_commit_many_workflows_share_few_commits() {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("ten", |ctx: Ctx, (): ()| async move {
            let steps =
                (0..10u64).map(|i| ctx.step("part", move || async move { Ok::<_, String>(i) }));
            let parts = futures::future::join_all(steps).await;
            Ok::<u64, String>(parts.into_iter().map(|p| p.unwrap_or(0)).sum())
        })
        .build()
        .expect("build");
    let handles: Vec<_> = (0..100)
        .map(|i| {
            rt.start::<_, u64, String>("ten", &format!("w{i}"), ())
                .expect("start")
        })
        .collect();
    let results = rt.block_on(futures::future::join_all(
        handles.iter().map(|h| h.result()),
    ));
    assert!(results.iter().all(|r| matches!(r, Ok(Ok(45)))));
    let metrics = rt.metrics();
    assert_eq!(metrics.completions_committed, 1000);
    assert_eq!(metrics.steps_executed, 1000);
    // 1,000 step completions and 100 final records, in a handful of group commits.
    assert!(
        metrics.commits <= 5,
        "{} commits for 1,000 steps",
        metrics.commits
    );
}

#[test]
fn a_cancelled_workflow_stops_is_recorded_and_is_not_recovered() {
    let dir = journal_dir();
    let runs = Counter::default();
    let make = |runs: Counter| {
        move |ctx: Ctx, (): ()| {
            let runs = runs.clone();
            async move {
                ctx.step("first", || async { Ok::<_, String>(1u8) }).await?;
                ctx.sleep(Duration::from_secs(24 * 3600)).await;
                ctx.step("after-a-day", move || async move {
                    runs.bump();
                    Ok::<_, String>(2u8)
                })
                .await
            }
        }
    };
    let rt = builder(dir.path())
        .register("wait", make(runs.clone()))
        .build()
        .expect("build");
    let h = rt.start::<_, u8, String>("wait", "c", ()).expect("start");
    // Drive until the workflow sleeps: run a short virtual while, then cancel.
    rt.block_on(ordo::executor::sleep(Duration::from_secs(60)));
    assert!(rt.cancel("c").expect("cancel"));
    assert!(matches!(
        rt.block_on(h.result()),
        Err(Error::Cancelled { .. })
    ));
    assert!(!rt.cancel("c").expect("cancel again is a no-op"));
    assert_eq!(h.status().expect("status"), Status::Cancelled);
    drop((h, rt));

    let rt = builder(dir.path())
        .register("wait", make(runs.clone()))
        .build()
        .expect("build");
    let report = rt.recover().expect("recover");
    assert!(report.resumed.is_empty());
    let h = rt.handle::<u8, String>("c").expect("handle");
    assert!(matches!(
        rt.block_on(h.result()),
        Err(Error::Cancelled { .. })
    ));
    assert_eq!(runs.get(), 0, "the step after the sleep ran");
    assert!(matches!(rt.cancel("nope"), Err(Error::NotFound { .. })));
}
