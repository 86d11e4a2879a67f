//! A workflow's deadline across a real SIGKILL: a child process starts workflows with a
//! 3-second timeout on the system clock and is killed about 1.5 s in; the restarted
//! runtime cancels the long one (and the child workflow it launched) at the deadline set
//! by the first process, not 3 s after the restart, and lets the one that finishes in
//! time succeed.

mod common;

use common::worker::now_ms;

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use ordo::{Ctx, Error, Event, RuntimeBuilder, StartOptions, Status};

const CHILD_ENV: &str = "ORDO_DEADLINE_KILL_CHILD";
const CHILD_TEST: &str = "deadline_kill_child";
const TAG: &str = "@@deadline-kill@@ ";
const TIMEOUT: Duration = Duration::from_secs(3);
/// How long the first process runs after its starts are durable.
const KILL_AFTER: Duration = Duration::from_millis(1_500);

/// Launches a `leaf` child (abandoned by default at a normal end), then sleeps an hour.
async fn parent(ctx: Ctx, _: ()) -> Result<(), String> {
    let leaf = ctx.start_child::<_, (), String>("leaf", ());
    ctx.sleep(Duration::from_secs(3600)).await;
    leaf.result().await.map_err(|e| e.to_string())?
}

/// Sleeps an hour.
async fn leaf(ctx: Ctx, _: ()) -> Result<(), String> {
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(())
}

/// Sleeps two seconds: well within its three.
async fn quick(ctx: Ctx, _: ()) -> Result<u32, String> {
    ctx.sleep(Duration::from_secs(2)).await;
    Ok(7)
}

fn register(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("parent", parent)
        .register("leaf", leaf)
        .register("quick", quick)
}

/// The child: starts both workflows with the timeout on the real clock, and says so
/// once the leaf's start and the quick one's sleep are durable.
#[test]
#[ignore = "the child process of the kill test; does nothing when run directly"]
fn deadline_kill_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    // The reader stops at the line: say it once only.
    let (launched, slept, said) = (
        Rc::new(Cell::new(false)),
        Rc::new(Cell::new(false)),
        Cell::new(false),
    );
    let (l, s) = (Rc::clone(&launched), Rc::clone(&slept));
    let rt = register(ordo_testkit::store::runtime(&dir))
        .observer(move |event| {
            if let Event::Step {
                workflow_id, name, ..
            } = event
            {
                match workflow_id.as_str() {
                    "p" if name == "ordo.child.start" => l.set(true), // the leaf's launch
                    "q" => s.set(true), // its only steps are its sleep's
                    _ => {}
                }
            }
            if l.get() && s.get() && !said.replace(true) {
                println!("{TAG}started");
            }
        })
        .build()
        .expect("child runtime");
    let within = || StartOptions::default().timeout(TIMEOUT);
    rt.start_with::<_, (), String>("parent", "p", (), within())
        .expect("start parent");
    let quick = rt
        .start_with::<_, u32, String>("quick", "q", (), within())
        .expect("start quick");
    let _ = rt.block_on(quick.result());
    // Killed before its deadline; until then it keeps the parent running.
    rt.block_on(ordo::executor::sleep(Duration::from_secs(3600)));
}

fn run_and_kill(dir: &Path) {
    let child = common::worker::spawn_until(CHILD_TEST, CHILD_ENV, dir, &format!("{TAG}started"));
    std::thread::sleep(KILL_AFTER);
    common::worker::kill(child);
}

#[test]
fn a_deadline_across_a_sigkill_counts_from_the_first_start_and_takes_the_children() {
    let dir = tempfile::tempdir().expect("temp dir");
    let before_start = now_ms();
    run_and_kill(dir.path());
    let restarted = now_ms();

    let rt = register(ordo_testkit::store::runtime(dir.path()))
        .build()
        .expect("reopen");
    let deadline = {
        let p = rt
            .journal()
            .workflow("p")
            .expect("read")
            .expect("p recorded");
        assert_eq!(p.status, Status::Pending, "killed before its deadline");
        p.deadline_ms.expect("the deadline is recorded")
    };
    let three_s = TIMEOUT.as_millis() as u64;
    assert!(
        deadline >= before_start + three_s && deadline < restarted + three_s,
        "deadline {deadline}: start no earlier than {before_start}, restart at {restarted}"
    );
    let leaf = rt
        .journal()
        .workflow("p/0")
        .expect("read")
        .expect("launched");
    assert_eq!(leaf.deadline_ms, Some(deadline), "the leaf inherited it");

    let report = rt.recover().expect("recover");
    assert_eq!(report.resumed.len(), 3, "{report:?}");
    let parent = rt.handle::<(), String>("p").expect("recorded");
    let leaf = rt.handle::<(), String>("p/0").expect("recorded");
    let quick = rt.handle::<u32, String>("q").expect("recorded");
    assert_eq!(rt.block_on(quick.result()).expect("runs"), Ok(7));
    let quick_done = now_ms();
    let ended = rt.block_on(parent.result());
    let cancelled_at = now_ms();
    assert!(
        matches!(ended, Err(Error::DeadlineExceeded { deadline_ms, .. }) if deadline_ms == deadline),
        "{ended:?}"
    );
    assert!(
        matches!(
            rt.block_on(leaf.result()),
            Err(Error::DeadlineExceeded { .. })
        ),
        "the leaf ends with its parent"
    );
    // The quick one finished in time; the parent was cancelled at the recorded deadline,
    // not 3 s after the restart (which came at least 1.5 s after the start).
    assert!(
        quick_done < deadline,
        "quick done {quick_done}, deadline {deadline}"
    );
    assert!(
        cancelled_at >= deadline,
        "cancelled at {cancelled_at}, before the deadline {deadline}"
    );
    assert!(
        cancelled_at < deadline + 1_000 && cancelled_at < restarted + three_s,
        "cancelled at {cancelled_at}: the deadline {deadline} was not honoured \
         (restart at {restarted})"
    );
    for (id, status) in [
        ("p", Status::Cancelled),
        ("p/0", Status::Cancelled),
        ("q", Status::Succeeded),
    ] {
        let rec = rt.journal().workflow(id).expect("read").expect("recorded");
        assert_eq!(rec.status, status, "{id}");
    }
    drop((parent, leaf, quick));
    drop(rt);

    // And the cancellation is for good: another restart resumes nothing.
    let rt = register(ordo_testkit::store::runtime(dir.path()))
        .build()
        .expect("reopen again");
    assert!(rt.recover().expect("recover").resumed.is_empty());
}
