//! `Runtime::fork` at every delivery seq of a finished 10-step workflow whose middle
//! is a `join_all` of 8 steps finishing out of call order: the fork's journal up to the
//! seq is the original's (seq, step id, name, outcome), the rest runs live (exactly the
//! bodies not copied run, once each), the fork ends with the original's result, and
//! the original's records are untouched.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use common::{builder, journal_dir};
use ordo::journal::{Completion, Status};
use ordo::{Ctx, Error, RuntimeBuilder};

const FAN_OUT: u64 = 8;
/// "first", the fan-out, "last".
const STEPS: u64 = FAN_OUT + 2;

/// Which step bodies ran: `(workflow id, step id)` → runs.
type Ran = Rc<RefCell<BTreeMap<(String, u64), u32>>>;

/// A step body: notes that it ran, takes `latency_ms` of (virtual) time, and returns a
/// value that depends on its step id and on `input`.
async fn body(ran: Ran, latency_ms: u64, input: u64) -> Result<u64, String> {
    let step = ordo::current_step().expect("inside a step body");
    *ran.borrow_mut()
        .entry((step.workflow_id, step.step_id))
        .or_default() += 1;
    ordo::executor::sleep(Duration::from_millis(latency_ms)).await;
    Ok(step.step_id * 1000 + input)
}

fn register(b: RuntimeBuilder, ran: &Ran) -> RuntimeBuilder {
    let ran = Rc::clone(ran);
    b.register("fan", move |ctx: Ctx, base: u64| {
        let ran = Rc::clone(&ran);
        async move {
            let r = Rc::clone(&ran);
            let first = ctx.step("first", move || body(r, 1, base)).await?;
            let fan = futures::future::join_all((0..FAN_OUT).map(|i| {
                let r = Rc::clone(&ran);
                // Latencies far from call order: the completions arrive shuffled.
                let latency = 1 + (i * 5) % FAN_OUT;
                ctx.step("fan", move || body(r, latency, first + i))
            }))
            .await
            .into_iter()
            .collect::<Result<Vec<u64>, String>>()?;
            let total: u64 = fan.iter().sum();
            let r = Rc::clone(&ran);
            let last = ctx.step("last", move || body(r, 1, total)).await?;
            Ok::<_, String>(format!("{last} {fan:?}"))
        }
    })
}

/// What the fork must agree with: everything but the times.
fn essence(c: &Completion) -> (u64, u64, String, ordo::journal::Outcome) {
    (c.seq, c.step_id, c.name.clone(), c.outcome.clone())
}

#[test]
fn a_fork_at_every_seq_copies_the_history_up_to_it_and_runs_the_rest_live() {
    let dir = journal_dir();
    let ran: Ran = Rc::default();
    let rt = register(builder(dir.path()).app_version("2.0"), &ran)
        .build()
        .expect("build");
    let original = rt
        .start::<_, String, String>("fan", "orig", 3u64)
        .expect("start");
    let expected = rt.block_on(original.result()).expect("runs");
    let journal = rt.journal();
    let orig_record = journal.workflow("orig").expect("read").expect("recorded");
    let orig_steps = journal.completions("orig").expect("read");
    assert_eq!(orig_steps.len() as u64, STEPS);
    let call_order: Vec<u64> = orig_steps.iter().map(|c| c.step_id).collect();
    assert_ne!(
        call_order,
        (0..STEPS).collect::<Vec<_>>(),
        "the fan-out must complete out of call order for this test to mean anything"
    );

    for at in 0..=STEPS {
        let id = format!("fork-{at}");
        let fork = rt.fork::<String, String>("orig", at, &id).expect("fork");
        assert_eq!(
            rt.block_on(fork.result()).expect("runs"),
            expected,
            "fork at {at}"
        );

        let steps = journal.completions(&id).expect("read");
        let at_usize = usize::try_from(at).expect("small");
        assert_eq!(
            steps[..at_usize].iter().map(essence).collect::<Vec<_>>(),
            orig_steps[..at_usize]
                .iter()
                .map(essence)
                .collect::<Vec<_>>(),
            "fork at {at}: the copied history"
        );
        assert_eq!(
            steps.iter().map(|c| c.seq).collect::<Vec<_>>(),
            (0..STEPS).collect::<Vec<_>>()
        );
        // Every step once, with the original's outcome (deterministic bodies).
        let mut by_id: Vec<_> = steps
            .iter()
            .map(|c| (c.step_id, c.name.clone(), c.outcome.clone()))
            .collect();
        let mut orig_by_id: Vec<_> = orig_steps
            .iter()
            .map(|c| (c.step_id, c.name.clone(), c.outcome.clone()))
            .collect();
        by_id.sort_by_key(|s| s.0);
        orig_by_id.sort_by_key(|s| s.0);
        assert_eq!(by_id, orig_by_id, "fork at {at}");

        // Exactly the bodies of the steps not copied ran, once each.
        let copied: Vec<u64> = orig_steps[..at_usize].iter().map(|c| c.step_id).collect();
        let ran_here: BTreeMap<u64, u32> = ran
            .borrow()
            .iter()
            .filter(|((wf, _), _)| *wf == id)
            .map(|((_, step), n)| (*step, *n))
            .collect();
        let live: BTreeMap<u64, u32> = (0..STEPS)
            .filter(|s| !copied.contains(s))
            .map(|s| (s, 1))
            .collect();
        assert_eq!(ran_here, live, "fork at {at}: bodies run live");

        let record = journal.workflow(&id).expect("read").expect("recorded");
        assert_eq!(
            (record.status, &record.name, &record.input),
            (Status::Succeeded, &orig_record.name, &orig_record.input)
        );
        assert_eq!(record.app_version.as_deref(), Some("2.0"));
    }

    // The original is untouched, and its bodies ran once, in its own run.
    assert_eq!(journal.workflow("orig").expect("read"), Some(orig_record));
    assert_eq!(journal.completions("orig").expect("read"), orig_steps);
    assert!(ran
        .borrow()
        .iter()
        .filter(|((wf, _), _)| wf == "orig")
        .all(|(_, n)| *n == 1));
}

#[test]
fn a_fork_survives_a_restart_and_bad_forks_are_refused() {
    let dir = journal_dir();
    let ran: Ran = Rc::default();
    {
        let rt = register(builder(dir.path()), &ran).build().expect("build");
        let h = rt
            .start::<_, String, String>("fan", "orig", 1u64)
            .expect("start");
        rt.block_on(h.result()).expect("runs").expect("succeeds");

        let Err(err) = rt.fork::<String, String>("orig", STEPS + 1, "f") else {
            panic!("a fork past the history");
        };
        assert_eq!(
            err.to_string(),
            format!(
                "cannot fork workflow \"orig\" at seq {}: it has {STEPS} recorded completions \
                 (fork points are 0..={STEPS})",
                STEPS + 1
            )
        );
        assert!(matches!(
            rt.fork::<String, String>("orig", 1, "orig"),
            Err(Error::AlreadyExists { .. })
        ));
        assert!(matches!(
            rt.fork::<String, String>("nobody", 0, "f"),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            rt.fork::<u64, String>("orig", 1, "f"),
            Err(Error::TypeMismatch { .. })
        ));
        assert!(rt.journal().workflow("f").expect("read").is_none());
    }
    // A fork that a crash interrupts is an ordinary pending workflow: recovery replays
    // the copied history and what it recorded itself.
    {
        let rt = register(builder(dir.path()).halt_after_commits(2), &ran)
            .build()
            .expect("build");
        let h = rt.fork::<String, String>("orig", 5, "f").expect("fork");
        assert!(matches!(
            rt.block_on(h.result()),
            Err(Error::Stopped { .. })
        ));
    }
    let recorded_before: Vec<u64> = common::recorded_steps(dir.path(), "f")
        .into_iter()
        .map(|(step_id, _, _)| step_id)
        .collect();
    assert!(
        recorded_before.len() > 5,
        "the fork recorded steps of its own"
    );
    let before = ran.borrow().clone();
    let rt = register(builder(dir.path()), &ran).build().expect("build");
    assert_eq!(rt.recover().expect("recover").resumed, ["f"]);
    let h = rt.handle::<String, String>("f").expect("handle");
    let orig = rt.handle::<String, String>("orig").expect("handle");
    assert_eq!(
        rt.block_on(h.result()).expect("runs"),
        rt.block_on(orig.result()).expect("recorded")
    );
    assert_eq!(
        rt.journal().completions("f").expect("read").len() as u64,
        STEPS
    );
    // After the restart, no recorded step of the fork ran again.
    let runs = |map: &BTreeMap<(String, u64), u32>, step: u64| {
        map.get(&("f".to_string(), step)).copied().unwrap_or(0)
    };
    for step in recorded_before {
        assert_eq!(
            runs(&ran.borrow(), step),
            runs(&before, step),
            "recorded step {step} ran again"
        );
    }
}

/// A fork that copies some of the original's history carries the original's app
/// version (its journal holds that code's decisions, which is what the version tells an
/// operator retiring a patch); a fork from seq 0 holds none of them, and carries the
/// version of the runtime that forked it.
#[test]
fn a_fork_carries_the_version_of_the_code_whose_decisions_it_copied() {
    let dir = journal_dir();
    let ran: Ran = Rc::default();
    {
        let rt = register(builder(dir.path()).app_version("1.0"), &ran)
            .build()
            .expect("build");
        let original = rt
            .start::<_, String, String>("fan", "old", 3u64)
            .expect("start");
        rt.block_on(original.result()).expect("runs").expect("ok");
    }
    let rt = register(builder(dir.path()).app_version("2.0"), &ran)
        .build()
        .expect("build");
    let version = |id: &str| {
        rt.journal()
            .workflow(id)
            .expect("read")
            .expect("recorded")
            .app_version
    };
    for (at, expected) in [(0, "2.0"), (1, "1.0"), (STEPS, "1.0")] {
        let id = format!("old-fork-{at}");
        let fork = rt.fork::<String, String>("old", at, &id).expect("fork");
        rt.block_on(fork.result()).expect("runs").expect("ok");
        assert_eq!(version(&id).as_deref(), Some(expected), "fork at {at}");
    }
}

/// A fork at every seq of a workflow with a child: wherever the copy cuts between the
/// child's launch and its result, the fork starts a child of its own (under its own
/// derived id, with the same input) and finishes with the original's result; it waited
/// forever for a child nobody started. A cancel of a fork's tree leaves the original's
/// child alone.
#[test]
fn a_fork_that_copies_a_childs_launch_but_not_its_result_starts_its_own_child() {
    async fn square(ctx: Ctx, n: u64) -> Result<u64, String> {
        ctx.step("mul", move || async move { Ok::<_, String>(n * n) })
            .await
    }
    async fn order(ctx: Ctx, n: u64) -> Result<u64, String> {
        let a = ctx
            .step("a", move || async move { Ok::<_, String>(n + 1) })
            .await?;
        let child = ctx.start_child::<_, u64, String>("square", a);
        let squared = child.result().await.map_err(|e| e.to_string())??;
        ctx.step("b", move || async move { Ok::<_, String>(squared + 1) })
            .await
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("square", square)
        .register("order", order)
        .build()
        .expect("build");
    let original = rt
        .start::<_, u64, String>("order", "o", 3u64)
        .expect("start");
    assert_eq!(rt.block_on(original.result()).expect("runs"), Ok(17));
    let recorded = rt.journal().completions("o").expect("read").len() as u64;
    let status = |id: &str| rt.journal().workflow(id).expect("read").map(|w| w.status);
    for at in 0..=recorded {
        let id = format!("o-fork-{at}");
        let fork = rt.fork::<u64, String>("o", at, &id).expect("fork");
        let ended = rt.block_on(async {
            futures::select! {
                ended = futures::FutureExt::fuse(fork.result()) => Some(ended),
                () = futures::FutureExt::fuse(ordo::executor::sleep(Duration::from_secs(20))) => None,
            }
        });
        assert_eq!(
            ended.map(|e| e.expect("runs")),
            Some(Ok(17)),
            "fork at {at}"
        );
    }
    // The fork at seq 2 copied the launch (seq 1) but not the result: its own child.
    assert_eq!(status("o-fork-2/1"), Some(Status::Succeeded));
    // A fork cut there whose child still runs: cancelling its tree leaves the
    // original's child as it was.
    let fork = rt.fork::<u64, String>("o", 2, "o-tree").expect("fork");
    let cancelled = rt.cancel_tree("o-tree").expect("cancel tree");
    assert!(!cancelled.contains(&"o/1".to_string()), "{cancelled:?}");
    assert!(matches!(
        rt.block_on(fork.result()),
        Err(Error::Cancelled { .. })
    ));
    assert_eq!(status("o/1"), Some(Status::Succeeded));
}
