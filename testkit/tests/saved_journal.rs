//! `replay_journal`: a journal written by one version of the code, replayed against
//! another, reports each workflow that no longer replays, without running a body.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ordo::{Ctx, Durability, Runtime, RuntimeBuilder};
use ordo_testkit::{replay_journal, DivergenceKind, RunPoint};

/// Version 1: reserve, wait a day, charge.
async fn order_v1(ctx: Ctx, n: u32) -> Result<u64, String> {
    let held: u32 = ctx
        .step("reserve", move || async move { Ok::<_, String>(n) })
        .await?;
    ctx.sleep(Duration::from_secs(24 * 3600)).await;
    ctx.step("charge", move || async move {
        Ok::<_, String>(u64::from(held) * 100)
    })
    .await
}

/// Version 2: "reserve" renamed.
async fn order_renamed(ctx: Ctx, n: u32) -> Result<u64, String> {
    let held: u32 = ctx
        .step("hold", move || async move { Ok::<_, String>(n) })
        .await?;
    ctx.sleep(Duration::from_secs(24 * 3600)).await;
    ctx.step("charge", move || async move {
        Ok::<_, String>(u64::from(held) * 100)
    })
    .await
}

/// Version 3: "reserve" now returns a `String`.
async fn order_retyped(ctx: Ctx, n: u32) -> Result<u64, String> {
    let held: String = ctx
        .step(
            "reserve",
            move || async move { Ok::<_, String>(n.to_string()) },
        )
        .await?;
    ctx.sleep(Duration::from_secs(24 * 3600)).await;
    ctx.step("charge", move || async move {
        Ok::<_, String>(held.len() as u64)
    })
    .await
}

/// Version 4: a step added at the end.
async fn order_extended(ctx: Ctx, n: u32) -> Result<u64, String> {
    let total = order_v1(ctx.clone(), n).await?;
    ctx.step("receipt", move || async move { Ok::<_, String>(total) })
        .await
}

/// A journal written by version 1: "done-1" finished, "pending-1" crashed in its
/// day-long sleep (its reserve and the sleep's deadline recorded).
fn saved_journal() -> tempfile::TempDir {
    let dir = ordo_testkit::journal_dir();
    let v1 = |b: RuntimeBuilder| {
        b.path(dir.path())
            .durability(Durability::None)
            .clock(ordo::Clock::Virtual)
            .register("order", order_v1)
    };
    {
        let rt = v1(Runtime::builder()).build().expect("journal opens");
        let done = rt
            .start::<_, u64, String>("order", "done-1", 3u32)
            .expect("start");
        assert_eq!(rt.block_on(done.result()).expect("finished"), Ok(300));
    } // The handle, which shares the runtime's journal, goes with it.
    let rt = v1(Runtime::builder())
        .halt_after_commits(2)
        .build()
        .expect("journal opens");
    let pending = rt
        .start::<_, u64, String>("order", "pending-1", 4u32)
        .expect("start");
    assert!(matches!(
        rt.block_on(pending.result()),
        Err(ordo::Error::Stopped { .. })
    ));
    drop((pending, rt));
    dir
}

#[test]
fn the_code_that_wrote_the_journal_replays_it_without_running_a_body() {
    let dir = saved_journal();
    let bodies = Rc::new(Cell::new(0));
    let counted = Rc::clone(&bodies);
    let report = replay_journal(dir.path(), move |b| {
        let counted = Rc::clone(&counted);
        b.register("order", move |ctx: Ctx, n: u32| {
            let counted = Rc::clone(&counted);
            async move {
                let held: u32 = ctx
                    .step("reserve", move || async move {
                        counted.set(counted.get() + 1);
                        Ok::<_, String>(n)
                    })
                    .await?;
                ctx.sleep(Duration::from_secs(24 * 3600)).await;
                ctx.step("charge", move || async move {
                    Ok::<_, String>(u64::from(held) * 100)
                })
                .await
            }
        })
    })
    .expect("journal readable");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.replayed, ["done-1", "pending-1"]);
    assert_eq!(bodies.get(), 0, "a replay runs no step body");
    // The saved journal is untouched: it still holds one pending workflow.
    let again = replay_journal(dir.path(), |b| b.register("order", order_v1)).expect("readable");
    assert_eq!(again.replayed, ["done-1", "pending-1"]);
}

#[test]
fn a_renamed_step_is_reported_for_every_workflow_that_recorded_it() {
    let dir = saved_journal();
    let report =
        replay_journal(dir.path(), |b| b.register("order", order_renamed)).expect("readable");
    assert!(report.replayed.is_empty(), "{report:?}");
    let ids: Vec<&str> = report
        .divergences
        .iter()
        .map(|d| d.workflow_id.as_str())
        .collect();
    assert_eq!(ids, ["done-1", "pending-1"]);
    for divergence in &report.divergences {
        eprintln!("{divergence}");
        assert_eq!(divergence.at, RunPoint::SavedJournal);
        match &*divergence.kind {
            DivergenceKind::NonDeterminism(ordo::Error::NonDeterminism {
                step_id,
                recorded,
                found,
                ..
            }) => assert_eq!(
                (*step_id, &recorded[..], &found[..]),
                (0, "reserve", "hold")
            ),
            other => panic!("expected non-determinism, got {other:?}"),
        }
        assert!(divergence.to_string().contains("\"hold\""), "{divergence}");
    }
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| report.assert_clean()));
    assert!(panicked.is_err(), "assert_clean panics on a divergence");
}

#[test]
fn a_step_read_as_another_type_is_a_type_mismatch() {
    let dir = saved_journal();
    let report =
        replay_journal(dir.path(), |b| b.register("order", order_retyped)).expect("readable");
    assert_eq!(report.divergences.len(), 2, "{report:?}");
    for divergence in &report.divergences {
        eprintln!("{divergence}");
        match &*divergence.kind {
            DivergenceKind::TypeMismatch(ordo::Error::TypeMismatch { what, .. }) => {
                assert!(what.contains("reserve"), "{divergence}");
            }
            other => panic!("expected a type mismatch, got {other:?}"),
        }
    }
}

#[test]
fn a_finished_workflow_that_now_needs_another_step_is_reported() {
    let dir = saved_journal();
    let report =
        replay_journal(dir.path(), |b| b.register("order", order_extended)).expect("readable");
    // The pending one stops where its journal ends, before its sleep fires: fine.
    assert_eq!(report.replayed, ["pending-1"]);
    assert_eq!(report.divergences.len(), 1);
    let divergence = &report.divergences[0];
    assert_eq!(divergence.workflow_id, "done-1");
    match &*divergence.kind {
        DivergenceKind::NewStep { name, .. } => assert_eq!(name, "receipt"),
        other => panic!("expected a new step, got {other:?}"),
    }
}

#[test]
fn an_unregistered_workflow_and_a_missing_journal_are_reported() {
    let dir = saved_journal();
    let report = replay_journal(dir.path(), |b| b).expect("readable");
    assert_eq!(report.unregistered.len(), 2);
    assert!(!report.is_clean());
    let missing = replay_journal(dir.path().join("nowhere"), |b| b).expect_err("no journal");
    assert!(missing.to_string().contains("nowhere"), "{missing}");
}
