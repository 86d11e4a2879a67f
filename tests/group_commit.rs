//! What one group commit carries: a burst of many workflows' steps is committed a
//! bounded number of workflows at a time (each is a journal entry whose tree node the
//! commit copies and keeps until it ends), and so are the ends of a burst of workflows
//! finishing together, while the many concurrent steps of one workflow still share one
//! commit. Step outcomes and workflow outputs are bounded by their bytes too: at most
//! 64 MiB beyond a commit's first completion and first end, so that values adding up to
//! a gigabyte never make one commit.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use futures::future::join_all;
use ordo::{Ctx, Event, RuntimeBuilder};

use common::workflows_per_commit;

/// One step that doubles `n`.
async fn double(ctx: Ctx, n: u64) -> Result<u64, String> {
    ctx.step("double", move || async move { Ok::<u64, String>(n * 2) })
        .await
}

/// `n` concurrent steps, gathered: the sum of `0..n`.
async fn gather(ctx: Ctx, n: u64) -> Result<u64, String> {
    let parts = (0..n).map(|i| ctx.step("part", move || async move { Ok::<u64, String>(i) }));
    join_all(parts).await.into_iter().sum()
}

/// Three concurrent steps, each returning `mib` MiB of text: their total length.
async fn large(ctx: Ctx, mib: usize) -> Result<usize, String> {
    let parts = (0..3u8).map(|i| {
        ctx.step("large", move || async move {
            Ok::<String, String>(char::from(b'a' + i).to_string().repeat(mib << 20))
        })
    });
    let parts = join_all(parts).await;
    parts
        .into_iter()
        .map(|part| part.map(|text| text.len()))
        .sum()
}

/// One small step, then an output of `mib` MiB of text.
async fn large_output(ctx: Ctx, mib: usize) -> Result<String, String> {
    let letter = ctx
        .step("letter", || async { Ok::<char, String>('z') })
        .await?;
    Ok(letter.to_string().repeat(mib << 20))
}

/// Three concurrent sends to itself, each of a message of `mib` MiB of text.
async fn large_sends(ctx: Ctx, mib: usize) -> Result<u32, String> {
    let me = ctx.workflow_id().to_string();
    let sends =
        (0..3u8).map(|i| ctx.send(&me, "t", char::from(b'a' + i).to_string().repeat(mib << 20)));
    for sent in join_all(sends).await {
        sent.map_err(|err| err.to_string())?;
    }
    Ok(3)
}

/// The length of its input.
async fn measure(_: Ctx, text: String) -> Result<usize, String> {
    Ok(text.len())
}

/// A runtime on a temporary journal (of the store `ORDO_TEST_STORE` chose) that logs
/// each commit's completions and workflow ends, in that order.
fn logged(commits: &Rc<RefCell<Vec<(usize, usize)>>>) -> RuntimeBuilder {
    let log = Rc::clone(commits);
    ordo_testkit::store::temporary()
        .register("double", double)
        .register("gather", gather)
        .register("large", large)
        .register("large_output", large_output)
        .register("large_sends", large_sends)
        .observer(move |event| {
            if let Event::Committed {
                completions,
                workflows,
                ..
            } = event
            {
                log.borrow_mut().push((*completions, *workflows));
            }
        })
}

#[test]
fn a_burst_of_workflows_is_committed_a_bounded_number_of_workflows_at_a_time() {
    let commits = Rc::new(RefCell::new(Vec::new()));
    let rt = logged(&commits).build().expect("runtime");
    let handles: Vec<_> = (0..2_000u64)
        .map(|i| {
            rt.start::<_, u64, String>("double", &format!("w-{i}"), i)
                .expect("start")
        })
        .collect();
    for (i, handle) in (0u64..).zip(handles) {
        assert_eq!(rt.block_on(handle.result()).expect("result"), Ok(i * 2));
    }
    let commits: Vec<usize> = commits.borrow().iter().map(|&(c, _)| c).collect();
    // All 2,000 steps were ready in one turn; a commit serves at most 512 of their
    // workflows (1,024 on PostgreSQL), and none is lost.
    assert!(
        commits.iter().all(|&n| n <= workflows_per_commit()),
        "{commits:?}"
    );
    assert_eq!(commits.iter().sum::<usize>(), 2_000, "{commits:?}");
    assert!(
        commits.contains(&workflows_per_commit()),
        "full commits: {commits:?}"
    );
}

#[test]
fn a_thousand_gathered_steps_of_one_workflow_share_one_commit() {
    let commits = Rc::new(RefCell::new(Vec::new()));
    let rt = logged(&commits).build().expect("runtime");
    let handle = rt
        .start::<_, u64, String>("gather", "g", 1_000u64)
        .expect("start");
    assert_eq!(rt.block_on(handle.result()).expect("result"), Ok(499_500));
    let commits = commits.borrow();
    assert!(commits.iter().any(|&(c, _)| c == 1_000), "{commits:?}");
}

#[test]
fn a_burst_of_workflows_finishing_together_is_ended_a_bounded_number_at_a_time() {
    let commits = Rc::new(RefCell::new(Vec::new()));
    let rt = logged(&commits).build().expect("runtime");
    // 3,000 workflows whose one step is ready in the same turn: their steps go in
    // commits of 512 workflows (1,024 on PostgreSQL), and each of those commits lets as
    // many of them finish while the rest of the burst's steps are still to be
    // committed.
    let handles = rt
        .start_many::<_, _, u64, String>("double", (0..3_000u64).map(|i| (format!("w-{i}"), i)))
        .expect("start");
    for (i, handle) in (0u64..).zip(handles) {
        let handle = handle.expect("started");
        assert_eq!(rt.block_on(handle.result()).expect("result"), Ok(i * 2));
    }
    let commits = commits.borrow();
    let ends: Vec<usize> = commits.iter().map(|&(_, ends)| ends).collect();
    assert!(
        ends.iter().all(|&n| n <= workflows_per_commit()),
        "ends per commit: {ends:?}"
    );
    assert_eq!(ends.iter().sum::<usize>(), 3_000, "{ends:?}");
    // The ends go along with the burst's steps, not all after the last of them.
    let with_steps = commits.iter().filter(|&&(c, e)| c > 0 && e > 0).count();
    assert!(
        with_steps > 0,
        "no commit carried both steps and ends: {commits:?}"
    );
}

#[test]
fn step_outcomes_of_more_than_64_mib_together_are_committed_in_several_commits() {
    let commits = Rc::new(RefCell::new(Vec::new()));
    let rt = logged(&commits).build().expect("runtime");
    let handle = rt
        .start::<_, usize, String>("large", "l", 30usize)
        .expect("start");
    assert_eq!(rt.block_on(handle.result()).expect("result"), Ok(90 << 20));
    // Two outcomes of 30 MiB fit in 64 MiB, the third goes in the next commit.
    assert_eq!(counts(&commits, |&(c, _)| c), [2, 1]);
}

#[test]
fn messages_sent_of_more_than_64_mib_together_are_committed_in_several_commits() {
    let commits = Rc::new(RefCell::new(Vec::new()));
    let rt = logged(&commits).build().expect("runtime");
    let handle = rt
        .start::<_, u32, String>("large_sends", "s", 30usize)
        .expect("start");
    assert_eq!(rt.block_on(handle.result()).expect("result"), Ok(3));
    // A send's completion carries its message: two of 30 MiB fit in 64 MiB.
    assert_eq!(counts(&commits, |&(c, _)| c), [2, 1]);
}

/// `pick` of each logged commit (its completions or its ends), for the commits that had
/// any.
fn counts(
    commits: &RefCell<Vec<(usize, usize)>>,
    pick: fn(&(usize, usize)) -> usize,
) -> Vec<usize> {
    commits
        .borrow()
        .iter()
        .map(pick)
        .filter(|&n| n > 0)
        .collect()
}

#[test]
fn inputs_of_more_than_64_mib_started_together_are_committed_in_several_commits() {
    let dir = ordo_testkit::journal_dir();
    let log = common::faulty::Log::default();
    let journal = ordo_testkit::store::open(dir.path());
    let store = common::faulty::FaultyStore::new(journal, log.clone(), None);
    let rt = ordo::Runtime::builder()
        .store(Box::new(store))
        .register("measure", measure)
        .build()
        .expect("runtime");
    let inputs = (0..3u8).map(|i| {
        (
            format!("m-{i}"),
            char::from(b'a' + i).to_string().repeat(30 << 20),
        )
    });
    let handles = rt
        .start_many::<_, _, usize, String>("measure", inputs)
        .expect("start");
    for handle in handles {
        let length = rt.block_on(handle.expect("started").result());
        assert_eq!(length.expect("result"), Ok(30 << 20));
    }
    // Two inputs of 30 MiB fit in 64 MiB, the third start goes in the next commit.
    let starts: Vec<String> = log
        .lines()
        .into_iter()
        .filter(|line| !line.contains(": 0 pending records"))
        .collect();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts[0].contains(": 2 pending records"), "{starts:?}");
    assert!(starts[1].contains(": 1 pending records"), "{starts:?}");
}

/// Starts three `large_output` workflows of `mib` MiB together and checks each output.
fn three_large_outputs(rt: &ordo::Runtime, mib: usize) {
    let starts = (0..3).map(|i| (format!("o-{i}"), mib));
    let handles = rt
        .start_many::<_, _, String, String>("large_output", starts)
        .expect("start");
    for handle in handles {
        let output = rt.block_on(handle.expect("started").result());
        assert_eq!(output.expect("result").expect("output").len(), mib << 20);
    }
}

#[test]
fn workflow_outputs_of_more_than_64_mib_together_are_ended_in_several_commits() {
    let commits = Rc::new(RefCell::new(Vec::new()));
    let rt = logged(&commits).build().expect("runtime");
    three_large_outputs(&rt, 30);
    // The three end after the same commit (of their steps): two outputs of 30 MiB fit
    // in 64 MiB, the third ends in the next commit.
    assert_eq!(counts(&commits, |&(_, e)| e), [2, 1]);
}

/// What the bound above is for: PostgreSQL refuses a message of 1 GiB or more, and a
/// commit is one. Three outcomes of 400 MB in one round, each of which fits, or three
/// workflows ending together with outputs of 400 MB, in one commit failed it (the
/// connection closed, then again on every reconnect), which stopped the runtime and the
/// workflow beside it, and again after a restart. One test, so that the two never hold
/// their gigabytes at the same time.
#[test]
fn outcomes_or_outputs_adding_up_to_more_than_a_gigabyte_are_recorded() {
    let commits = Rc::new(RefCell::new(Vec::new()));
    let rt = logged(&commits).build().expect("runtime");
    let beside = rt
        .start::<_, u64, String>("double", "beside", 21u64)
        .expect("start");
    let handle = rt
        .start::<_, usize, String>("large", "l", 400usize)
        .expect("start");
    let total = rt.block_on(handle.result()).expect("result");
    assert_eq!(total, Ok(1200 << 20));
    assert_eq!(rt.block_on(beside.result()).expect("result"), Ok(42));
    three_large_outputs(&rt, 400);
}
