//! A step whose body finished just before its workflow was cancelled: its outcome is
//! recorded with the cancellation, so a later `resume` replays it instead of running
//! the body (a payment, say) a second time. Every way a running workflow is cancelled:
//! `Runtime::cancel`, the end of a parent that started it with `ParentEnd::Cancel`,
//! and its deadline.

mod common;

use std::cell::Cell;
use std::time::Duration;

use ordo::{ChildOptions, Ctx, Error, ParentEnd, Runtime, StartOptions, Status};

use common::gate::{self, Gate};
use common::{builder, journal_dir, workflows_per_commit};

thread_local! {
    /// How many times a `charge` body ran to its end.
    static CHARGES: Cell<u32> = const { Cell::new(0) };
}

fn charges() -> u32 {
    CHARGES.with(Cell::get)
}

/// Charges once the gate opens (after `yields` more turns of the executor), then waits
/// a little: cancelled in between, it has not seen the charge's outcome yet.
async fn payer(ctx: Ctx, yields: u32) -> Result<u32, String> {
    let cents = ctx
        .step("charge", move || async move {
            Gate.await;
            for _ in 0..yields {
                ordo::executor::yield_now().await;
            }
            CHARGES.with(|c| c.set(c.get() + 1));
            Ok::<_, String>(1_250u32)
        })
        .await?;
    ctx.sleep(Duration::from_millis(50)).await;
    Ok(cents)
}

/// One step that waits at the gate.
async fn waiter(ctx: Ctx, _: ()) -> Result<(), String> {
    ctx.step("wait", || async {
        Gate.await;
        Ok::<_, String>(())
    })
    .await
}

/// Starts `payer` as child `c` (cancelled when this parent ends), then waits at the
/// gate and returns.
async fn parent(ctx: Ctx, _: ()) -> Result<(), String> {
    let _child = ctx.start_child_with::<_, u32, String>(
        "payer",
        3u32,
        ChildOptions::default()
            .id("c")
            .on_parent_end(ParentEnd::Cancel),
    );
    waiter(ctx, ()).await
}

fn status(rt: &Runtime, id: &str) -> Option<Status> {
    rt.journal().workflow(id).expect("read").map(|w| w.status)
}

/// `id` was cancelled with its charge's outcome recorded: resumed, it ends with that
/// outcome, and the charge does not run again.
fn resumes_without_charging_again(rt: &Runtime, id: &str) {
    assert_eq!(status(rt, id), Some(Status::Cancelled));
    let recorded = rt.journal().completions(id).expect("read");
    assert!(
        recorded.iter().any(|c| c.name == "charge"),
        "the charge's outcome is recorded: {recorded:?}"
    );
    let resumed = rt.resume::<u32, String>(id).expect("resume");
    assert_eq!(rt.block_on(resumed.result()).expect("runs"), Ok(1_250));
    assert_eq!(charges(), 1, "the charge ran again");
}

#[test]
fn a_step_that_finished_before_runtime_cancel_is_not_run_again_on_resume() {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("payer", payer)
        .build()
        .expect("build");
    let h = rt
        .start::<_, u32, String>("payer", "pay", 0u32)
        .expect("start");
    gate::until_waiting(&rt, 1);
    // The charge runs to its end; the executor never stalls in between, so its outcome
    // is not committed yet when `cancel` comes.
    gate::open_until(&rt, || charges() > 0);
    assert!(rt.cancel("pay").expect("cancel"));
    assert!(matches!(
        rt.block_on(h.result()),
        Err(Error::Cancelled { .. })
    ));
    resumes_without_charging_again(&rt, "pay");
}

#[test]
fn a_childs_step_that_finished_before_its_parent_ended_is_not_run_again_on_resume() {
    // More workflows than two commits serve finish a step together with the parent's
    // and the child's, in this order: the parent's step, theirs, then the child's
    // charge (its body yields a few turns after the gate). The first commit takes the
    // parent's step; the next takes the parent's end, which cancels the child, while
    // the child's charge is still left behind for a later commit.
    let fillers = 2 * workflows_per_commit() + 50;
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("payer", payer)
        .register("waiter", waiter)
        .register("parent", parent)
        .build()
        .expect("build");
    let p = rt.start::<_, (), String>("parent", "p", ()).expect("start");
    gate::until_waiting(&rt, 2);
    let others = rt
        .start_many::<_, _, (), String>("waiter", (0..fillers).map(|i| (format!("w-{i}"), ())))
        .expect("start");
    gate::until_waiting(&rt, 2 + fillers);
    gate::open();
    assert_eq!(rt.block_on(p.result()).expect("runs"), Ok(()));
    for other in others {
        let other = other.expect("started");
        assert_eq!(rt.block_on(other.result()).expect("runs"), Ok(()));
    }
    assert_eq!(charges(), 1);
    resumes_without_charging_again(&rt, "c");
}

#[test]
fn a_step_that_returned_after_its_workflows_deadline_is_not_run_again_on_resume() {
    /// Its charge is a slow call: it returns after the workflow's deadline passed, and
    /// the deadline's timer fires before the next commit would have taken the charge.
    async fn slow_payer(ctx: Ctx, _: ()) -> Result<u32, String> {
        ctx.step("charge", || async {
            std::thread::sleep(Duration::from_millis(1_000));
            CHARGES.with(|c| c.set(c.get() + 1));
            Ok::<_, String>(1_250u32)
        })
        .await
    }
    let dir = journal_dir();
    // The system clock: the deadline passes while the body runs.
    let rt = ordo_testkit::store::runtime(dir.path())
        .register("payer", slow_payer)
        .build()
        .expect("build");
    let h = rt
        .start_with::<_, u32, String>(
            "payer",
            "late",
            (),
            // Far longer than a start's commit takes, even on a busy machine: the body
            // starts well before the deadline.
            StartOptions::default().timeout(Duration::from_millis(500)),
        )
        .expect("start");
    assert!(matches!(
        rt.block_on(h.result()),
        Err(Error::DeadlineExceeded { .. })
    ));
    assert_eq!(charges(), 1);
    resumes_without_charging_again(&rt, "late");
}
