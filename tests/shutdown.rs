//! A graceful shutdown (the runtime dropped, not a crash) loses nothing the process
//! had: what waited for the next group commit when the runtime stopped being driven (a
//! start or an enqueue acknowledged to its caller, the outcome of a step body that had
//! returned) is committed on the way out, so the next process resumes the workflow, and
//! does not run that body a second time. An enqueued workflow is left enqueued, for a
//! runtime that stays.

mod common;

use std::cell::Cell;
use std::path::Path;

use ordo::{Ctx, EnqueueOptions, QueueOptions, Runtime, Status};

use common::gate::{self, Gate};
use common::{builder, journal_dir};

thread_local! {
    /// How many times a `charge` body ran to its end.
    static CHARGES: Cell<u32> = const { Cell::new(0) };
}

fn charges() -> u32 {
    CHARGES.with(Cell::get)
}

/// Charges once the gate opens (after a few more turns of the executor), then again
/// nothing: the charge's outcome is the result.
async fn payer(ctx: Ctx, cents: u32) -> Result<u32, String> {
    ctx.step("charge", move || async move {
        Gate.await;
        for _ in 0..3 {
            ordo::executor::yield_now().await;
        }
        CHARGES.with(|c| c.set(c.get() + 1));
        Ok::<_, String>(cents)
    })
    .await
}

/// A runtime (a process) on the journal in `dir`.
fn open(dir: &Path) -> Runtime {
    builder(dir)
        .register("payer", payer)
        .queue("q", QueueOptions::new().concurrency(1))
        .build()
        .expect("build")
}

/// Workflow `id`, recorded, runs on `rt` to `result`.
fn finishes_with(rt: &Runtime, id: &str, result: u32) {
    let handle = rt.handle::<u32, String>(id).expect("recorded");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(result));
}

#[test]
fn a_start_the_runtime_never_drove_is_resumed_by_the_next_process() {
    let dir = journal_dir();
    let rt = open(dir.path());
    rt.start::<_, u32, String>("payer", "p-1", 700u32)
        .expect("start");
    drop(rt);

    let rt = open(dir.path());
    assert_eq!(rt.recover().expect("recover").resumed, ["p-1"]);
    gate::open();
    finishes_with(&rt, "p-1", 700);
    assert_eq!(charges(), 1);
}

#[test]
fn a_step_body_that_returned_is_not_run_again_by_the_next_process() {
    let dir = journal_dir();
    let rt = open(dir.path());
    rt.start::<_, u32, String>("payer", "p-2", 1_250u32)
        .expect("start");
    gate::until_waiting(&rt, 1);
    // The charge runs to its end; the executor never stalls in between, so its outcome
    // still waits for a commit when the runtime is dropped.
    gate::open_until(&rt, || charges() > 0);
    drop(rt);

    let rt = open(dir.path());
    let recorded = rt.journal().completions("p-2").expect("read");
    assert!(
        recorded.iter().any(|c| c.name == "charge"),
        "the charge's outcome is recorded: {recorded:?}"
    );
    assert_eq!(rt.recover().expect("recover").resumed, ["p-2"]);
    finishes_with(&rt, "p-2", 1_250);
    assert_eq!(charges(), 1, "the charge ran again");
}

#[test]
fn an_enqueue_is_recorded_and_left_enqueued_for_the_next_process() {
    let dir = journal_dir();
    let rt = open(dir.path());
    rt.enqueue::<_, u32, String>("q", "payer", 300u32, EnqueueOptions::default().id("e-1"))
        .expect("enqueue");
    drop(rt);

    let status = |rt: &Runtime| {
        rt.journal()
            .workflow("e-1")
            .expect("read")
            .map(|w| w.status)
    };
    let rt = open(dir.path());
    assert_eq!(status(&rt), Some(Status::Enqueued));
    rt.recover().expect("recover");
    gate::open();
    finishes_with(&rt, "e-1", 300);
    assert_eq!(status(&rt), Some(Status::Succeeded));
}
