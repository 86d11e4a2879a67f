//! Recovery attempts count what they are for: resumptions that crashed or panicked
//! without progress. A bad deploy that diverges from the journal, a graceful restart of a
//! workflow parked in a long sleep, and progress itself never use them up.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::order::{interrupted, original, renamed};
use common::{builder, journal_dir};
use ordo::journal::WorkflowRecord;
use ordo::{Ctx, Error, RuntimeBuilder};

fn record(dir: &std::path::Path, id: &str) -> WorkflowRecord {
    let journal = ordo_testkit::store::open(dir);
    journal.workflow(id).expect("readable").expect("recorded")
}

fn retyped(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("order", |ctx: Ctx, (): ()| async move {
        let a = ctx
            .step("reserve", || async { Ok::<_, String>("one".to_string()) })
            .await?;
        Ok::<_, String>(a.len() as u32)
    })
}

#[test]
fn a_bad_deploy_restarting_in_a_loop_leaves_the_workflow_exactly_as_it_was() {
    let dir = interrupted();
    let before = record(dir.path(), "o-1");
    // Far more bad restarts than the attempt limit allows.
    for round in 0..6 {
        let bad = if round % 2 == 0 { renamed } else { retyped };
        let rt = bad(builder(dir.path()).max_recovery_attempts(2))
            .build()
            .expect("build");
        let report = rt.recover().expect("recover");
        assert_eq!(report.resumed, ["o-1"], "round {round}: {report:?}");
        let h = rt.handle::<u32, String>("o-1").expect("handle");
        let err = rt.block_on(h.result()).expect_err("the code diverged");
        assert!(
            matches!(
                err,
                Error::NonDeterminism { .. } | Error::TypeMismatch { .. }
            ),
            "round {round}: {err}"
        );
        drop((h, rt));
        assert_eq!(
            record(dir.path(), "o-1"),
            before,
            "round {round} left a trace"
        );
    }
    // The corrected binary still recovers it.
    let rt = original(builder(dir.path()).max_recovery_attempts(2))
        .build()
        .expect("build");
    assert_eq!(rt.recover().expect("recover").resumed, ["o-1"]);
    let h = rt.handle::<u32, String>("o-1").expect("handle");
    assert_eq!(rt.block_on(h.result()).expect("finishes"), Ok(6));
}

async fn parked(ctx: Ctx, (): ()) -> Result<u8, String> {
    ctx.step("welcome", || async { Ok::<_, String>(()) })
        .await?;
    ctx.sleep(Duration::from_secs(30 * 24 * 3600)).await;
    ctx.step("renew", || async { Ok::<_, String>(7u8) }).await
}

#[test]
fn a_workflow_parked_in_a_month_long_sleep_survives_any_number_of_graceful_restarts() {
    let dir = journal_dir();
    let t0 = 1_800_000_000;
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(t0 + secs);
    {
        let rt = builder(dir.path())
            .start_time(at(0))
            .halt_after_commits(2) // "welcome" and the sleep's deadline
            .register("parked", parked)
            .build()
            .expect("build");
        let h = rt
            .start::<_, u8, String>("parked", "p-1", ())
            .expect("start");
        assert!(matches!(
            rt.block_on(h.result()),
            Err(Error::Stopped { .. })
        ));
    }
    // Ten deploys, each a graceful restart an hour apart, with a limit of 3 attempts.
    for deploy in 1..=10 {
        let rt = builder(dir.path())
            .start_time(at(deploy * 3600))
            .max_recovery_attempts(3)
            .register("parked", parked)
            .build()
            .expect("build");
        let report = rt.recover().expect("recover");
        assert_eq!(report.resumed, ["p-1"], "deploy {deploy}: {report:?}");
        let counted = rt
            .journal()
            .workflow("p-1")
            .expect("read")
            .expect("recorded");
        assert_eq!(counted.recovery_attempts, 1, "deploy {deploy}");
        drop(rt); // graceful: the attempt is given back
        assert_eq!(
            record(dir.path(), "p-1").recovery_attempts,
            0,
            "deploy {deploy}"
        );
    }
    // A month later it wakes and finishes.
    let rt = builder(dir.path())
        .start_time(at(31 * 24 * 3600))
        .max_recovery_attempts(3)
        .register("parked", parked)
        .build()
        .expect("build");
    rt.recover().expect("recover");
    let h = rt.handle::<u8, String>("p-1").expect("handle");
    assert_eq!(rt.block_on(h.result()).expect("finishes"), Ok(7));
}

#[test]
fn a_workflow_that_keeps_panicking_is_capped_and_progress_resets_the_count() {
    let dir = journal_dir();
    // Panics in the step after "reserve" until the marker file exists.
    let marker = dir.path().join("fixed");
    let register = |b: RuntimeBuilder, marker: std::path::PathBuf| {
        b.max_recovery_attempts(2)
            .register("flaky", move |ctx: Ctx, (): ()| {
                let marker = marker.clone();
                async move {
                    ctx.step("reserve", || async { Ok::<_, String>(1u8) })
                        .await?;
                    let fixed = marker.exists();
                    ctx.step("charge", move || async move {
                        assert!(fixed, "charge crashes until fixed");
                        Ok::<_, String>(2u8)
                    })
                    .await
                }
            })
    };
    {
        let rt = register(builder(dir.path()), marker.clone())
            .build()
            .expect("build");
        let h = rt
            .start::<_, u8, String>("flaky", "f-1", ())
            .expect("start");
        assert!(matches!(
            rt.block_on(h.result()),
            Err(Error::Panicked { .. })
        ));
    }
    for attempt in 1..=2 {
        let rt = register(builder(dir.path()), marker.clone())
            .build()
            .expect("build");
        assert_eq!(rt.recover().expect("recover").resumed, ["f-1"]);
        let h = rt.handle::<u8, String>("f-1").expect("handle");
        assert!(matches!(
            rt.block_on(h.result()),
            Err(Error::Panicked { .. })
        ));
        drop((h, rt));
        assert_eq!(record(dir.path(), "f-1").recovery_attempts, attempt);
    }
    // The cap: the third resumption is refused, the workflow left as it is.
    let rt = register(builder(dir.path()), marker.clone())
        .build()
        .expect("build");
    let report = rt.recover().expect("recover");
    assert!(report.resumed.is_empty());
    assert!(matches!(
        report.failed.as_slice(),
        [(id, Error::RecoveryExhausted { attempts: 2, limit: 2, .. })] if id == "f-1"
    ));
    drop(rt);

    // Fixed, and with one more attempt allowed: progress resets the count to zero.
    std::fs::write(&marker, b"").expect("write marker");
    let rt = register(builder(dir.path()), marker.clone())
        .max_recovery_attempts(3)
        .build()
        .expect("build");
    assert_eq!(rt.recover().expect("recover").resumed, ["f-1"]);
    let h = rt.handle::<u8, String>("f-1").expect("handle");
    assert_eq!(rt.block_on(h.result()).expect("finishes"), Ok(2));
    drop((h, rt));
    assert_eq!(record(dir.path(), "f-1").recovery_attempts, 0);
}
