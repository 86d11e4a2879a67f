//! Continue-as-new: an endless workflow keeps a bounded journal, and a crash anywhere
//! in its life resumes the current run only, with no earlier run repeated.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use common::{builder, journal_dir};
use ordo::{Ctx, Error, RuntimeBuilder};

const ROUNDS: u32 = 12;

/// Body runs by round.
type Runs = Rc<RefCell<BTreeMap<u32, u32>>>;

fn poller(b: RuntimeBuilder, runs: &Runs) -> RuntimeBuilder {
    let runs = Rc::clone(runs);
    b.register("poller", move |ctx: Ctx, round: u32| {
        let runs = Rc::clone(&runs);
        async move {
            let (a, b) = futures::join!(
                ctx.step("poll-a", {
                    let runs = Rc::clone(&runs);
                    move || async move {
                        *runs.borrow_mut().entry(round).or_default() += 1;
                        Ok::<_, String>(round)
                    }
                }),
                ctx.step("poll-b", move || async move { Ok::<_, String>(1u32) })
            );
            let total = a? + b?;
            ctx.sleep(Duration::from_secs(60)).await;
            if round < ROUNDS {
                return ctx.continue_as_new(round + 1).await;
            }
            Ok::<_, String>(total)
        }
    })
}

#[test]
fn an_endless_workflow_keeps_only_its_current_run() {
    let dir = journal_dir();
    let runs: Runs = Rc::default();
    let rt = poller(builder(dir.path()), &runs).build().expect("build");
    let h = rt
        .start::<_, u32, String>("poller", "p", 0u32)
        .expect("start");
    assert_eq!(rt.block_on(h.result()).expect("finishes"), Ok(ROUNDS + 1));
    // Two steps and the sleep's two records: the last run only.
    assert_eq!(rt.journal().completions("p").expect("read").len(), 4);
    let record = rt.journal().workflow("p").expect("read").expect("recorded");
    assert_eq!(record.status, ordo::Status::Succeeded);
    assert_eq!(runs.borrow().len() as u32, ROUNDS + 1);
    assert!(runs.borrow().values().all(|&n| n == 1));
}

#[test]
fn a_crash_at_any_commit_resumes_the_current_run_and_repeats_no_earlier_one() {
    // Each run commits: its two steps (one or two commits), the sleep's deadline, its
    // firing, then the continuation. Crash after every commit of the first runs.
    for k in 1..=14 {
        let dir = journal_dir();
        let runs: Runs = Rc::default();
        {
            let rt = poller(builder(dir.path()).halt_after_commits(k), &runs)
                .build()
                .expect("build");
            let h = rt
                .start::<_, u32, String>("poller", "p", 0u32)
                .expect("start");
            assert!(
                matches!(rt.block_on(h.result()), Err(Error::Stopped { .. })),
                "k={k}"
            );
        }
        let crashed_at = runs.borrow().keys().max().copied().unwrap_or(0);
        let rt = poller(builder(dir.path()), &runs).build().expect("build");
        rt.recover().expect("recover");
        let h = rt.handle::<u32, String>("p").expect("handle");
        assert_eq!(
            rt.block_on(h.result()).expect("finishes"),
            Ok(ROUNDS + 1),
            "k={k}"
        );
        for (&round, &n) in runs.borrow().iter() {
            // Only the run in progress at the crash may have run its body twice.
            let limit = if round == crashed_at { 2 } else { 1 };
            assert!(n <= limit, "k={k}: round {round} ran {n} times");
        }
        assert_eq!(runs.borrow().len() as u32, ROUNDS + 1, "k={k}");
    }
}
