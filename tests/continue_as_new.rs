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

/// Each run waits for one approval (an awakeable whose token it publishes under an event
/// of its round) and continues as new with the approved amounts summed, for three runs.
/// Each run first hands out a spare token it never waits on.
fn approvals(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register(
        "approvals",
        |ctx: Ctx, (round, sum): (u32, u64)| async move {
            let (spare, _never_awaited) = ctx.awakeable::<u64>();
            ctx.set_event(&format!("spare-{round}"), spare).await;
            let (token, approved) = ctx.awakeable::<u64>();
            ctx.set_event(&format!("token-{round}"), token).await;
            let amount = approved.await?;
            if round < 2 {
                return ctx.continue_as_new((round + 1, sum + amount)).await;
            }
            Ok::<_, String>(sum + amount)
        },
    )
}

#[test]
fn a_run_continued_as_new_waits_for_its_own_awakeable_and_refuses_an_earlier_runs_token() {
    let dir = journal_dir();
    let rt = approvals(builder(dir.path())).build().expect("build");
    let client = rt.client();
    let h = rt
        .start::<_, u64, String>("approvals", "a", (0u32, 0u64))
        .expect("start");
    let event = |key: String| {
        rt.block_on(client.get_event::<String>("a", &key, Duration::from_secs(10)))
            .expect("read")
            .unwrap_or_else(|| panic!("no event {key}"))
    };
    let (mut spares, mut approvals): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for (round, amount) in [(0u32, 1u64), (1, 20), (2, 300)] {
        let token = event(format!("token-{round}"));
        let spare = event(format!("spare-{round}"));
        for earlier in spares.iter().chain(&approvals) {
            assert!(
                *earlier != token && *earlier != spare,
                "run {round} reuses an earlier run's token"
            );
        }
        // Each run waits for its own approval: an earlier run's does not complete it.
        assert_eq!(
            h.status().expect("status"),
            ordo::Status::Pending,
            "round {round}"
        );
        for old in &approvals {
            let resolved = rt.block_on(client.resolve_awakeable(old, 9_999u64));
            assert!(
                matches!(resolved, Err(Error::AwakeableResolved { .. })),
                "round {round}: {resolved:?}"
            );
        }
        // An earlier run's token nobody resolved names a step of a run that is over.
        for old in &spares {
            let resolved = rt.block_on(client.resolve_awakeable(old, 9_999u64));
            assert!(
                matches!(resolved, Err(Error::UnknownAwakeable { .. })),
                "an earlier run's token resolved run {round}: {resolved:?}"
            );
        }
        rt.block_on(client.resolve_awakeable(&token, amount))
            .unwrap_or_else(|err| panic!("round {round}: {err}"));
        approvals.push(token);
        spares.push(spare);
    }
    assert_eq!(rt.block_on(h.result()).expect("finishes"), Ok(321));
}

/// Each run starts a child (default id) on its round and continues as new with the
/// child's answer added, for four runs; children count their runs by round.
fn delegating(b: RuntimeBuilder, runs: &Runs) -> RuntimeBuilder {
    let runs = Rc::clone(runs);
    b.register(
        "delegating",
        |ctx: Ctx, (round, sum): (u32, u32)| async move {
            let child = ctx.start_child::<_, u32, String>("times-ten", round);
            let answer = child.result().await.map_err(|e| e.to_string())??;
            if round < 3 {
                return ctx.continue_as_new((round + 1, sum + answer)).await;
            }
            Ok::<_, String>(sum + answer)
        },
    )
    .register("times-ten", move |_: Ctx, round: u32| {
        *runs.borrow_mut().entry(round).or_default() += 1;
        async move { Ok::<_, String>(round * 10) }
    })
}

#[test]
fn each_run_continued_as_new_starts_its_own_children() {
    let dir = journal_dir();
    let runs: Runs = Rc::default();
    let rt = delegating(builder(dir.path()), &runs)
        .build()
        .expect("build");
    let h = rt
        .start::<_, u32, String>("delegating", "d", (0u32, 0u32))
        .expect("start");
    // 0 + 10 + 20 + 30: every run's own child answered it.
    assert_eq!(rt.block_on(h.result()).expect("finishes"), Ok(60));
    assert_eq!(
        runs.borrow().clone(),
        BTreeMap::from([(0, 1), (1, 1), (2, 1), (3, 1)])
    );
}

#[test]
fn a_fork_of_a_later_run_replays_that_runs_steps_under_their_ids() {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("runs", |ctx: Ctx, round: u32| async move {
            let got = ctx
                .step("s", move || async move { Ok::<_, String>(round * 100) })
                .await?;
            if round < 2 {
                return ctx.continue_as_new(round + 1).await;
            }
            ctx.set_event("waiting", true).await;
            let bonus = ctx.recv::<u32>("go", Duration::from_secs(3_600)).await;
            Ok::<_, String>(got + bonus.unwrap_or(0))
        })
        .build()
        .expect("build");
    let client = rt.client();
    let original = rt
        .start::<_, u32, String>("runs", "r", 0u32)
        .expect("start");
    // Until the third run has recorded its step and waits for "go".
    let waiting = client.get_event::<bool>("r", "waiting", Duration::from_secs(10));
    assert_eq!(rt.block_on(waiting).expect("read"), Some(true));
    let third_run_first = rt
        .journal()
        .workflow("r")
        .expect("read")
        .expect("record")
        .first_step;
    assert!(
        third_run_first > 0,
        "the third run goes on from the earlier runs' steps"
    );
    let fork = rt.fork::<u32, String>("r", 1, "r-fork").expect("fork");
    rt.block_on(client.send("r-fork", "go", 7u32))
        .expect("send");
    rt.block_on(client.send("r", "go", 9u32)).expect("send");
    // The fork replays the copied step (200) under its id, then takes its own message.
    assert_eq!(rt.block_on(fork.result()).expect("fork finishes"), Ok(207));
    assert_eq!(rt.block_on(original.result()).expect("finishes"), Ok(209));
}

/// A workflow recorded before journal schema 9 numbered every run from 0, so its earlier
/// runs may have taken any step id (and children and tokens named after them): a run
/// that continues it starts numbering far beyond any run's ids, gives out keyed tokens,
/// and finishes as usual.
#[test]
fn a_run_continued_from_one_recorded_before_schema_9_numbers_past_every_earlier_run() {
    let dir = journal_dir();
    common::started_before_schema_9(dir.path(), "delegating", "d", (0u32, 0u32));
    let runs: Runs = Rc::default();
    let rt = delegating(builder(dir.path()), &runs)
        .build()
        .expect("build");
    rt.recover().expect("recover");
    let h = rt.handle::<u32, String>("d").expect("handle");
    assert_eq!(rt.block_on(h.result()).expect("finishes"), Ok(60));
    let last = rt.journal().workflow("d").expect("read").expect("recorded");
    assert!(last.first_step >= 1 << 32, "{}", last.first_step);
    assert!(
        last.keyed_tokens,
        "the runs after the first give out tokens that cannot be made up"
    );
    assert_eq!(
        runs.borrow().clone(),
        BTreeMap::from([(0, 1), (1, 1), (2, 1), (3, 1)])
    );
}
