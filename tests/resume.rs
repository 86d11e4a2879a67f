//! `Runtime::resume`: a cancelled workflow, or one stuck after exhausting its recovery
//! attempts, runs again from its journal: its recorded steps replay (their bodies do
//! not run again), its attempts start over, and it finishes with the right result.
//! Finished workflows cannot be resumed.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use common::{builder, journal_dir};
use ordo::journal::WorkflowRecord;
use ordo::{Ctx, Error, RuntimeBuilder, Status};

/// How many times each step body ran, by step name, across every runtime of a test.
#[derive(Clone, Default)]
struct Runs(Rc<RefCell<BTreeMap<String, u32>>>);

impl Runs {
    fn ran(&self, name: &str) {
        *self.0.borrow_mut().entry(name.to_string()).or_default() += 1;
    }
    fn of(&self, name: &str) -> u32 {
        self.0.borrow().get(name).copied().unwrap_or(0)
    }
}

/// "a" and "b", an hour's durable sleep, then "c"; "b" panics while `broken` is set.
/// Its result depends on every step's value.
fn register(b: RuntimeBuilder, runs: &Runs, broken: &Rc<Cell<bool>>) -> RuntimeBuilder {
    let (runs, broken) = (runs.clone(), Rc::clone(broken));
    b.register("chain", move |ctx: Ctx, base: u32| {
        let (runs, broken) = (runs.clone(), Rc::clone(&broken));
        async move {
            let r = runs.clone();
            let a = ctx
                .step("a", move || async move {
                    r.ran("a");
                    Ok::<_, String>(base + 1)
                })
                .await?;
            let r = runs.clone();
            let b = ctx
                .step("b", move || async move {
                    r.ran("b");
                    assert!(!broken.get(), "step b is broken in this build");
                    Ok::<_, String>(a * 10)
                })
                .await?;
            ctx.sleep(Duration::from_secs(3600)).await;
            let r = runs.clone();
            ctx.step("c", move || async move {
                r.ran("c");
                Ok::<_, String>(b + 7)
            })
            .await
        }
    })
}

fn record(dir: &Path, id: &str) -> WorkflowRecord {
    let journal = ordo_testkit::store::open(dir);
    journal.workflow(id).expect("readable").expect("recorded")
}

fn recorded_names(dir: &Path, id: &str) -> Vec<String> {
    common::recorded_steps(dir, id)
        .into_iter()
        .map(|(_, name, _)| name)
        .collect()
}

#[test]
fn a_cancelled_workflow_resumes_in_a_new_process_without_rerunning_recorded_steps() {
    let dir = journal_dir();
    let (runs, broken) = (Runs::default(), Rc::new(Cell::new(false)));
    {
        let rt = register(builder(dir.path()), &runs, &broken)
            .build()
            .expect("build");
        let handle = rt
            .start::<_, u32, String>("chain", "c-1", 4u32)
            .expect("start");
        // Drive it into its hour-long sleep (virtual time: a minute passes).
        rt.block_on(ordo::executor::sleep(Duration::from_secs(60)));
        assert!(rt.cancel("c-1").expect("cancel"));
        assert!(matches!(
            rt.block_on(handle.result()),
            Err(Error::Cancelled { .. })
        ));
    }
    assert_eq!(record(dir.path(), "c-1").status, Status::Cancelled);
    assert_eq!(
        recorded_names(dir.path(), "c-1"),
        ["a", "b", "ordo.sleep.until"]
    );
    assert_eq!((runs.of("a"), runs.of("b"), runs.of("c")), (1, 1, 0));

    let rt = register(builder(dir.path()), &runs, &broken)
        .build()
        .expect("build");
    let report = rt.recover().expect("recover");
    assert!(
        report.resumed.is_empty(),
        "a cancelled workflow is not recovered"
    );
    let handle = rt.resume::<u32, String>("c-1").expect("resume");
    assert_eq!(handle.status().expect("status"), Status::Pending);
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(57));
    // "a" and "b" replayed; only "c" ran.
    assert_eq!((runs.of("a"), runs.of("b"), runs.of("c")), (1, 1, 1));
    let metrics = rt.metrics();
    assert_eq!(metrics.steps_replayed, 3, "a, b and the recorded deadline");
    drop((handle, rt));
    let done = record(dir.path(), "c-1");
    assert_eq!(
        (done.status, done.recovery_attempts),
        (Status::Succeeded, 0)
    );
    assert_eq!(
        recorded_names(dir.path(), "c-1"),
        ["a", "b", "ordo.sleep.until", "ordo.sleep", "c"]
    );
}

#[test]
fn a_workflow_that_exhausted_its_recovery_attempts_resumes_with_attempts_reset() {
    let dir = journal_dir();
    let (runs, broken) = (Runs::default(), Rc::new(Cell::new(true)));
    let limited = |dir: &Path| register(builder(dir).max_recovery_attempts(2), &runs, &broken);
    {
        let rt = limited(dir.path()).build().expect("build");
        let handle = rt
            .start::<_, u32, String>("chain", "c-2", 1u32)
            .expect("start");
        assert!(matches!(
            rt.block_on(handle.result()),
            Err(Error::Panicked { .. })
        ));
    }
    // Two recoveries panic in "b" again; the third is refused.
    let mut exhausted = None;
    for _ in 0..3 {
        let rt = limited(dir.path()).build().expect("build");
        let report = rt.recover().expect("recover");
        if let Some((_, err)) = report.failed.into_iter().next() {
            exhausted = Some(err);
            break;
        }
        let handle = rt.handle::<u32, String>("c-2").expect("handle");
        assert!(matches!(
            rt.block_on(handle.result()),
            Err(Error::Panicked { .. })
        ));
    }
    assert!(
        matches!(
            exhausted,
            Some(Error::RecoveryExhausted {
                attempts: 2,
                limit: 2,
                ..
            })
        ),
        "{exhausted:?}"
    );
    assert_eq!(record(dir.path(), "c-2").recovery_attempts, 2);
    assert_eq!((runs.of("a"), runs.of("b")), (1, 3));

    // The fixed build: recovery still refuses it, resume runs it.
    broken.set(false);
    let rt = limited(dir.path()).build().expect("build");
    let report = rt.recover().expect("recover");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let handle = rt.resume::<u32, String>("c-2").expect("resume");
    assert_eq!(
        rt.journal()
            .workflow("c-2")
            .expect("read")
            .map(|r| r.recovery_attempts),
        Some(0),
        "attempts reset durably before it runs"
    );
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(27));
    assert_eq!(
        (runs.of("a"), runs.of("b"), runs.of("c")),
        (1, 4, 1),
        "the recorded step a did not run again"
    );
    drop((handle, rt));
    let done = record(dir.path(), "c-2");
    assert_eq!(
        (done.status, done.recovery_attempts),
        (Status::Succeeded, 0)
    );
}

#[test]
fn finished_and_unknown_workflows_cannot_be_resumed() {
    let dir = journal_dir();
    let (runs, broken) = (Runs::default(), Rc::new(Cell::new(false)));
    let rt = register(builder(dir.path()), &runs, &broken)
        .build()
        .expect("build");
    let handle = rt
        .start::<_, u32, String>("chain", "done", 0u32)
        .expect("start");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(17));
    let Err(err) = rt.resume::<u32, String>("done") else {
        panic!("a finished workflow was resumed");
    };
    assert!(
        matches!(
            &err,
            Error::NotResumable {
                status: Status::Succeeded,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "workflow \"done\" is succeeded and cannot be resumed: only a cancelled or \
         pending workflow can (fork it to run it again)"
    );
    assert!(matches!(
        rt.resume::<u32, String>("nobody"),
        Err(Error::NotFound { .. })
    ));
    // The wrong handle types are refused before anything is written.
    rt.start::<_, u32, String>("chain", "other", 0u32)
        .expect("start");
    rt.cancel("other").expect("cancel");
    assert!(matches!(
        rt.resume::<String, String>("other"),
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(
        rt.journal()
            .workflow("other")
            .expect("read")
            .map(|r| r.status),
        Some(Status::Cancelled)
    );
    assert_eq!(runs.of("c"), 1, "only the first workflow ran its steps");
}
