//! Workflow deadlines on the virtual clock: expiry cancels the workflow (its running step
//! body dropped) and its children, a workflow in time is untouched and leaves no timer
//! behind, children inherit the deadline, a restart honours only the remainder, a
//! deadline passed before recovery cancels without running anything, and the client can
//! give a timeout (and a trace context). (The same across a real SIGKILL:
//! `deadline_kill.rs`.)

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use ordo::{
    ChildOptions, Ctx, Error, Event, ParentEnd, Runtime, RuntimeBuilder, StartOptions, Status,
    TraceParent,
};

use common::{builder, journal_dir};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// The wall time `common::builder`'s virtual clock starts at, in ms.
const ORIGIN_MS: u64 = 1_800_000_000_000;

/// Sets its flag when dropped.
struct DropGuard(Rc<Cell<bool>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

fn within(timeout: Duration) -> StartOptions {
    StartOptions::default().timeout(timeout)
}

fn record(rt: &Runtime, id: &str) -> ordo::journal::WorkflowRecord {
    rt.journal()
        .workflow(id)
        .expect("readable")
        .unwrap_or_else(|| panic!("{id} is recorded"))
}

/// Sleeps (durably) for `minutes`, then returns them.
async fn nap(ctx: Ctx, minutes: u64) -> Result<u64, String> {
    ctx.sleep(MINUTE * u32::try_from(minutes).unwrap_or(u32::MAX))
        .await;
    Ok(minutes)
}

#[test]
fn expiry_cancels_the_workflow_and_drops_its_running_step_body_at_the_deadline() {
    let dropped = Rc::new(Cell::new(false));
    let finished = Rc::new(Cell::new(false));
    let (d, f) = (Rc::clone(&dropped), Rc::clone(&finished));
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("call", move |ctx: Ctx, _: ()| {
            let (dropped, finished) = (Rc::clone(&d), Rc::clone(&f));
            async move {
                ctx.step("slow call", move || async move {
                    let _guard = DropGuard(dropped);
                    ordo::executor::sleep(HOUR).await;
                    finished.set(true);
                    Ok::<_, String>(())
                })
                .await
            }
        })
        .build()
        .expect("build");
    let handle = rt
        .start_with::<_, (), String>("call", "c-1", (), within(10 * MINUTE))
        .expect("start");
    let err = rt.block_on(handle.result()).expect_err("cancelled");
    let deadline = ORIGIN_MS + 600_000;
    match &err {
        Error::DeadlineExceeded {
            workflow_id,
            deadline_ms,
        } => assert_eq!((workflow_id.as_str(), *deadline_ms), ("c-1", deadline)),
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    assert!(err.to_string().contains("deadline"), "{err}");
    assert!(dropped.get(), "the running step body was dropped");
    assert!(!finished.get(), "the body never got to its end");
    let rec = record(&rt, "c-1");
    assert_eq!(rec.status, Status::Cancelled);
    assert_eq!(rec.deadline_ms, Some(deadline));
    assert_eq!(
        rec.updated_ms, deadline,
        "cancelled at the deadline, not later"
    );
    assert!(
        rt.journal().completions("c-1").expect("read").is_empty(),
        "the dropped body recorded nothing"
    );
    // A handle reading the journal (not the running workflow) says the same.
    let later = rt.handle::<(), String>("c-1").expect("recorded");
    assert!(matches!(
        rt.block_on(later.result()),
        Err(Error::DeadlineExceeded { .. })
    ));
    // Never recovered.
    drop(later);
    drop(handle);
    drop(rt);
    let rt = builder(dir.path())
        .register("call", |_: Ctx, _: ()| async { Ok::<(), String>(()) })
        .build()
        .expect("reopen");
    assert!(rt.recover().expect("recover").resumed.is_empty());
    assert_eq!(record(&rt, "c-1").status, Status::Cancelled);
}

#[test]
fn a_workflow_that_returns_in_time_succeeds_and_leaves_no_timer_behind() {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("nap", nap)
        .build()
        .expect("build");
    let began = rt.block_on(async { ordo::executor::now() });
    let handle = rt
        .start_with::<_, u64, String>("nap", "n-1", 10u64, within(HOUR))
        .expect("start");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(10));
    let rec = record(&rt, "n-1");
    assert_eq!(rec.status, Status::Succeeded);
    assert_eq!(rec.deadline_ms, Some(rec.created_ms + 3_600_000));
    // Driving the runtime to its end does not wait for the deadline: with the virtual
    // clock a timer left behind would make time jump an hour ahead.
    futures::executor::block_on(rt.run());
    let elapsed = rt.block_on(async { ordo::executor::now() }) - began;
    assert_eq!(elapsed, 10 * MINUTE, "only the nap passed");
    // Starting it again with another timeout changes nothing: it is recorded.
    let again = rt
        .start_with::<_, u64, String>("nap", "n-1", 99u64, within(Duration::ZERO))
        .expect("start again");
    assert_eq!(rt.block_on(again.result()).expect("recorded"), Ok(10));
}

#[test]
fn children_inherit_the_deadline_and_their_own_timeouts_never_outlive_it() {
    async fn parent(ctx: Ctx, _: ()) -> Result<Vec<String>, String> {
        let inherits = ctx.start_child::<_, u64, String>("nap", 120u64);
        let longer = ctx.start_child_with::<_, u64, String>(
            "nap",
            120u64,
            ChildOptions::default().timeout(2 * HOUR),
        );
        let shorter = ctx.start_child_with::<_, u64, String>(
            "nap",
            120u64,
            ChildOptions::default().timeout(MINUTE),
        );
        let ids = vec![
            inherits.id().to_string(),
            longer.id().to_string(),
            shorter.id().to_string(),
        ];
        // The shorter one ends first; the parent goes on, then waits for the others.
        let seen = match shorter.result().await {
            Err(Error::Cancelled { .. }) => "cancelled",
            _ => "something else",
        };
        ctx.step(
            "saw",
            move || async move { Ok::<_, String>(seen.to_string()) },
        )
        .await?;
        let _ = futures::join!(inherits.result(), longer.result());
        Ok(ids)
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("nap", nap)
        .register("parent", parent)
        .build()
        .expect("build");
    let handle = rt
        .start_with::<_, Vec<String>, String>("parent", "p", (), within(10 * MINUTE))
        .expect("start");
    assert!(matches!(
        rt.block_on(handle.result()),
        Err(Error::DeadlineExceeded { .. })
    ));
    let parent_deadline = ORIGIN_MS + 600_000;
    let p = record(&rt, "p");
    assert_eq!(
        (p.status, p.deadline_ms),
        (Status::Cancelled, Some(parent_deadline))
    );
    // The parent saw its shorter child end (a recorded step after it) before its own end.
    let saw = rt.journal().completions("p").expect("read");
    assert!(saw.iter().any(|c| c.name == "saw"), "{saw:?}");
    let (inherits, longer, shorter) = (record(&rt, "p/0"), record(&rt, "p/2"), record(&rt, "p/4"));
    assert_eq!(inherits.deadline_ms, Some(parent_deadline), "inherited");
    assert_eq!(
        longer.deadline_ms,
        Some(parent_deadline),
        "capped at the parent's"
    );
    assert_eq!(shorter.deadline_ms, Some(shorter.created_ms + 60_000));
    assert_eq!(shorter.updated_ms, shorter.created_ms + 60_000);
    for child in [&inherits, &longer, &shorter] {
        assert_eq!(child.status, Status::Cancelled, "{}", child.id);
        let handle = rt.handle::<u64, String>(&child.id).expect("recorded");
        assert!(matches!(
            rt.block_on(handle.result()),
            Err(Error::DeadlineExceeded { .. })
        ));
    }
}

#[test]
fn an_expired_parent_cancels_its_children_whatever_their_parent_end_policy() {
    /// Launches `nap` (its own id, abandoned at the parent's end) and a `middle`, which
    /// launches a `nap` of its own; then waits.
    async fn root(ctx: Ctx, _: ()) -> Result<(), String> {
        let adopted = ctx.start_child_with::<_, u64, String>(
            "nap",
            600u64,
            ChildOptions::default()
                .id("loner")
                .on_parent_end(ParentEnd::Abandon),
        );
        let middle = ctx.start_child::<_, (), String>("middle", ());
        let _ = futures::join!(adopted.result(), middle.result());
        Ok(())
    }
    async fn middle(ctx: Ctx, _: ()) -> Result<(), String> {
        let leaf = ctx.start_child::<_, u64, String>("nap", 600u64);
        leaf.result().await.map_err(|e| e.to_string())??;
        Ok(())
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("nap", nap)
        .register("middle", middle)
        .register("root", root)
        .build()
        .expect("build");
    // "loner" runs before the root adopts it, with no deadline of its own.
    let loner = rt
        .start::<_, u64, String>("nap", "loner", 600u64)
        .expect("start loner");
    rt.block_on(ordo::executor::sleep(Duration::from_secs(1)));
    let handle = rt
        .start_with::<_, (), String>("root", "r", (), within(10 * MINUTE))
        .expect("start");
    assert!(matches!(
        rt.block_on(handle.result()),
        Err(Error::DeadlineExceeded { .. })
    ));
    let deadline = ORIGIN_MS + 1_000 + 600_000;
    for id in ["r", "loner", "r/2", "r/2/0"] {
        let rec = record(&rt, id);
        assert_eq!(rec.status, Status::Cancelled, "{id}");
        assert_eq!(rec.updated_ms, deadline, "{id} cancelled at the deadline");
    }
    assert_eq!(
        record(&rt, "loner").deadline_ms,
        None,
        "adopted, not started"
    );
    // The adopted workflow had no deadline: it was cancelled, not timed out.
    assert!(matches!(
        rt.block_on(loner.result()),
        Err(Error::Cancelled { .. })
    ));
}

/// A workflow that records step "a", then sleeps an hour; `ran` lists the bodies run.
fn with_steps(b: RuntimeBuilder, ran: &Rc<RefCell<Vec<String>>>) -> RuntimeBuilder {
    let ran = Rc::clone(ran);
    b.register("steps", move |ctx: Ctx, _: ()| {
        let ran = Rc::clone(&ran);
        async move {
            let log = Rc::clone(&ran);
            ctx.step("a", move || async move {
                log.borrow_mut().push("a".into());
                Ok::<_, String>(())
            })
            .await?;
            ctx.sleep(HOUR).await;
            let log = Rc::clone(&ran);
            ctx.step("b", move || async move {
                log.borrow_mut().push("b".into());
                Ok::<_, String>(())
            })
            .await
        }
    })
}

/// Starts "steps" with a 10-minute timeout, runs it a virtual minute (step "a"
/// recorded, the hour's sleep begun) and stops the runtime.
fn start_and_stop(dir: &std::path::Path, ran: &Rc<RefCell<Vec<String>>>) {
    let rt = with_steps(builder(dir), ran).build().expect("build");
    rt.start_with::<_, (), String>("steps", "s", (), within(10 * MINUTE))
        .expect("start");
    rt.block_on(ordo::executor::sleep(MINUTE));
    assert_eq!(*ran.borrow(), ["a"]);
}

#[test]
fn after_a_restart_only_the_remainder_counts() {
    let ran = Rc::new(RefCell::new(Vec::new()));
    let dir = journal_dir();
    start_and_stop(dir.path(), &ran);
    // Restarted five minutes after the start: five minutes are left, not ten.
    let restart_ms = ORIGIN_MS + 5 * 60_000;
    let rt = with_steps(builder(dir.path()), &ran)
        .start_time(UNIX_EPOCH + Duration::from_millis(restart_ms))
        .build()
        .expect("reopen");
    let began = rt.block_on(async { ordo::executor::now() });
    assert_eq!(rt.recover().expect("recover").resumed, ["s"]);
    let handle = rt.handle::<(), String>("s").expect("recorded");
    assert!(matches!(
        rt.block_on(handle.result()),
        Err(Error::DeadlineExceeded { .. })
    ));
    let waited = rt.block_on(async { ordo::executor::now() }) - began;
    assert_eq!(waited, 5 * MINUTE);
    assert_eq!(record(&rt, "s").updated_ms, ORIGIN_MS + 600_000);
    assert_eq!(*ran.borrow(), ["a"], "step a replayed, b never ran");
}

#[test]
fn a_deadline_passed_before_recovery_cancels_without_running_or_replaying_anything() {
    let ran = Rc::new(RefCell::new(Vec::new()));
    let dir = journal_dir();
    start_and_stop(dir.path(), &ran);
    ran.borrow_mut().clear();
    let steps = Rc::new(Cell::new(0));
    let seen = Rc::clone(&steps);
    let restart_ms = ORIGIN_MS + 2 * 3_600_000; // two hours later
    let rt = with_steps(builder(dir.path()), &ran)
        .start_time(UNIX_EPOCH + Duration::from_millis(restart_ms))
        .observer(move |event| {
            if let Event::Step { .. } = event {
                seen.set(seen.get() + 1);
            }
        })
        .build()
        .expect("reopen");
    rt.recover().expect("recover");
    let handle = rt.handle::<(), String>("s").expect("recorded");
    match rt.block_on(handle.result()) {
        Err(Error::DeadlineExceeded { deadline_ms, .. }) => {
            assert_eq!(deadline_ms, ORIGIN_MS + 600_000);
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    assert!(ran.borrow().is_empty(), "no step body ran");
    assert_eq!(steps.get(), 0, "not even a recorded step was replayed");
    let rec = record(&rt, "s");
    assert_eq!(rec.status, Status::Cancelled);
    assert_eq!(rec.updated_ms, restart_ms, "cancelled at once, at recovery");
    assert_eq!(
        rt.journal().completions("s").expect("read").len(),
        2,
        "the journal keeps what the first run recorded (step a, the sleep's deadline)"
    );
}

#[test]
fn a_resumed_expired_workflow_runs_to_its_end_without_a_deadline() {
    let ran = Rc::new(RefCell::new(Vec::new()));
    let dir = journal_dir();
    let rt = with_steps(builder(dir.path()), &ran)
        .build()
        .expect("build");
    let handle = rt
        .start_with::<_, (), String>("steps", "s", (), within(10 * MINUTE))
        .expect("start");
    assert!(rt.block_on(handle.result()).is_err());
    let resumed = rt.resume::<(), String>("s").expect("resume");
    assert_eq!(rt.block_on(resumed.result()).expect("runs"), Ok(()));
    assert_eq!(*ran.borrow(), ["a", "b"], "a ran once and replayed, then b");
    let rec = record(&rt, "s");
    assert_eq!((rec.status, rec.deadline_ms), (Status::Succeeded, None));
}

#[test]
fn a_continued_workflow_keeps_its_deadline() {
    async fn rounds(ctx: Ctx, left: u32) -> Result<u32, String> {
        ctx.sleep(4 * MINUTE).await;
        if left == 0 {
            return Ok(0);
        }
        ctx.continue_as_new(left - 1).await
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("rounds", rounds)
        .build()
        .expect("build");
    // Three rounds of four minutes do not fit in ten.
    let handle = rt
        .start_with::<_, u32, String>("rounds", "r", 2u32, within(10 * MINUTE))
        .expect("start");
    assert!(matches!(
        rt.block_on(handle.result()),
        Err(Error::DeadlineExceeded { .. })
    ));
    let rec = record(&rt, "r");
    assert_eq!(rec.status, Status::Cancelled);
    assert_eq!(rec.updated_ms, ORIGIN_MS + 600_000);
}

#[test]
fn a_client_can_give_a_timeout() {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("nap", nap)
        .build()
        .expect("build");
    let client = rt.client();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let caller = std::thread::spawn(move || {
        futures::executor::block_on(async {
            // The options carry the caller's trace context too.
            let traced = within(10 * MINUTE).traceparent(TraceParent::parse(traceparent)?);
            let late = client
                .start_with::<u64, u64, String>("nap", "late", 60u64, traced)
                .await?;
            let on_time = client
                .start_with::<u64, u64, String>("nap", "on-time", 5u64, within(10 * MINUTE))
                .await?;
            Ok::<_, Error>((late.result().await, on_time.result().await?))
        })
    });
    futures::executor::block_on(rt.run());
    let (late, on_time) = caller.join().expect("no panic").expect("started");
    assert!(
        matches!(late, Err(Error::DeadlineExceeded { ref workflow_id, .. }) if workflow_id == "late"),
        "{late:?}"
    );
    assert_eq!(on_time, Ok(5));
    let rec = record(&rt, "late");
    assert_eq!(rec.status, Status::Cancelled);
    assert_eq!(rec.deadline_ms, Some(rec.created_ms + 600_000));
    assert_eq!(
        rt.journal().trace_context("late").expect("read").as_deref(),
        Some(traceparent)
    );
    assert_eq!(record(&rt, "on-time").status, Status::Succeeded);
}
