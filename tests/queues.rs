//! Queues: concurrency, order and priorities, rate limits on the virtual clock,
//! deduplication, delays, partitions, enqueue from a workflow, and a queue's state
//! across a restart; debouncing.

mod common;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use ordo::{
    Clock, Ctx, DebounceOptions, EnqueueOptions, Error, OnDuplicate, QueueOptions, Runtime,
    RuntimeBuilder, Status,
};

thread_local! {
    /// Bodies running right now, and the most seen at once.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
    static MOST: Cell<usize> = const { Cell::new(0) };
    /// `(input, executor time)` at the start of each job's body, in start order.
    static STARTS: RefCell<Vec<(u32, Instant)>> = const { RefCell::new(Vec::new()) };
    /// Inputs of the debounced workflow's runs.
    static RUNS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

fn reset() {
    RUNNING.with(|r| r.set(0));
    MOST.with(|m| m.set(0));
    STARTS.with(|s| s.borrow_mut().clear());
    RUNS.with(|r| r.borrow_mut().clear());
}

fn started() -> Vec<u32> {
    STARTS.with(|s| s.borrow().iter().map(|(n, _)| *n).collect())
}

/// A job: notes its start, holds a slot for a second of (virtual) time in a step body.
async fn job(ctx: Ctx, n: u32) -> Result<u32, String> {
    ctx.step("work", move || async move {
        STARTS.with(|s| s.borrow_mut().push((n, ordo::executor::now())));
        let now = RUNNING.with(|r| {
            r.set(r.get() + 1);
            r.get()
        });
        MOST.with(|m| m.set(m.get().max(now)));
        ordo::executor::sleep(Duration::from_secs(1)).await;
        RUNNING.with(|r| r.set(r.get() - 1));
        Ok::<_, String>(n * 10)
    })
    .await
}

fn virtual_rt(queue: QueueOptions) -> Runtime {
    ordo_testkit::store::temporary()
        .clock(Clock::Virtual)
        .queue("q", queue)
        .register("job", job)
        .build()
        .expect("build")
}

fn enqueue(rt: &Runtime, n: u32, options: EnqueueOptions) -> ordo::WorkflowHandle<u32, String> {
    rt.enqueue::<_, u32, String>("q", "job", n, options.id(format!("job-{n}")))
        .expect("enqueue")
}

#[test]
fn a_queue_of_concurrency_3_runs_at_most_3_and_starts_in_enqueue_order() {
    reset();
    let rt = virtual_rt(QueueOptions::new().concurrency(3));
    let handles: Vec<_> = (0..20)
        .map(|n| enqueue(&rt, n, EnqueueOptions::new()))
        .collect();
    assert_eq!(handles[5].status().expect("status"), Status::Enqueued);
    for (n, handle) in (0..20u32).zip(&handles) {
        assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(n * 10));
    }
    assert_eq!(
        MOST.with(Cell::get),
        3,
        "never more than 3 at once, and 3 used"
    );
    all_succeeded_in_order(&rt, &handles, 20);
}

/// Jobs `0..n` started in that order, all succeeded, and nothing of the queue is left
/// in the journal once all have finished.
fn all_succeeded_in_order<
    O: serde::de::DeserializeOwned + 'static,
    E: serde::de::DeserializeOwned + 'static,
>(
    rt: &Runtime,
    handles: &[ordo::WorkflowHandle<O, E>],
    n: u32,
) {
    assert_eq!(started(), (0..n).collect::<Vec<_>>(), "FIFO");
    for handle in handles {
        assert_eq!(handle.status().expect("status"), Status::Succeeded);
    }
    let left = rt.journal().queue_records(b"").expect("read");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn priorities_reorder_and_equal_priorities_stay_in_enqueue_order() {
    reset();
    let rt = virtual_rt(QueueOptions::new().concurrency(1).priority());
    let priorities = [5u32, 1, 1, 0, 9, 0];
    let handles: Vec<_> = (0..6u32)
        .map(|n| {
            enqueue(
                &rt,
                n,
                EnqueueOptions::new().priority(priorities[n as usize]),
            )
        })
        .collect();
    for handle in &handles {
        rt.block_on(handle.result()).expect("runs").expect("ok");
    }
    // Priority 0 (3, then 5), 1 (1, then 2), 5 (0), 9 (4).
    assert_eq!(started(), vec![3, 5, 1, 2, 0, 4]);
}

/// A job of one step that completes at once; notes its start and counts bodies alive.
async fn one_step(ctx: Ctx, n: u32) -> Result<u32, String> {
    STARTS.with(|s| s.borrow_mut().push((n, ordo::executor::now())));
    let now = RUNNING.with(|r| {
        r.set(r.get() + 1);
        r.get()
    });
    MOST.with(|m| m.set(m.get().max(now)));
    let out = ctx
        .step("work", move || async move { Ok::<_, String>(n * 10) })
        .await;
    RUNNING.with(|r| r.set(r.get() - 1));
    out
}

/// Enqueues jobs `0..n` and waits for each in turn: job `i` returns `i * 10`.
fn enqueue_all_and_finish(rt: &Runtime, n: u32) -> Vec<ordo::WorkflowHandle<u32, String>> {
    let handles: Vec<_> = (0..n)
        .map(|i| enqueue(rt, i, EnqueueOptions::new()))
        .collect();
    for (i, handle) in (0..n).zip(&handles) {
        assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(i * 10));
    }
    handles
}

#[test]
fn a_freed_slot_is_taken_in_the_commit_that_records_the_end() {
    // 40 one-step jobs through a queue of concurrency 4: when a job returns, the next
    // one starts at once, so its start, its step and the end that freed its slot share
    // one commit: one commit per wave (plus the first wave's start and the last wave's
    // end), not two (an end-and-start commit, then a commit of the steps).
    reset();
    const N: u32 = 40;
    const K: u32 = 4;
    let rt = ordo_testkit::store::temporary()
        .clock(Clock::Virtual)
        .queue("q", QueueOptions::new().concurrency(K as usize))
        .register("job", one_step)
        .build()
        .expect("build");
    let handles = enqueue_all_and_finish(&rt, N);
    let commits = rt.metrics().commits;
    // On sled the worker keeps the queue's limits alone and hands the slot straight to
    // the next job, whose step then shares the commit too: one commit per wave. On
    // PostgreSQL the limits hold for all workers together, so the slot goes back
    // through the journal (`Store::admit`) in the commit that records the end, which
    // starts the next job; its step is the wave's second commit.
    let per_wave = if ordo_testkit::store::is_sled() { 1 } else { 2 };
    assert!(
        commits <= u64::from(per_wave * N / K + 3),
        "{commits} commits for {N} jobs in waves of {K}"
    );
    assert_eq!(
        MOST.with(Cell::get),
        K as usize,
        "never more than {K} bodies at once, and {K} used"
    );
    all_succeeded_in_order(&rt, &handles, N);
}

#[test]
fn a_wide_queue_whose_jobs_end_together_hands_over_slots_a_bounded_number_at_a_time() {
    // 3,000 one-step jobs through a queue of concurrency 2,000: the first 2,000 end
    // together, far more than one commit ends (512 on sled, see `MAX_COMMIT_WORKFLOWS`;
    // 1,024 on PostgreSQL), and each end hands its slot to a waiting job in the commit
    // that records it. Ends held back for a later commit hold back their handovers: the
    // limit holds, every job runs once and in order, and no commit ends more than its
    // bound.
    reset();
    const N: u32 = 3_000;
    const K: u32 = 2_000;
    let ends = std::rc::Rc::new(RefCell::new(Vec::new()));
    let log = std::rc::Rc::clone(&ends);
    let rt = ordo_testkit::store::temporary()
        .clock(Clock::Virtual)
        .queue("q", QueueOptions::new().concurrency(K as usize))
        .register("job", one_step)
        .observer(move |event| {
            if let ordo::Event::Committed { workflows, .. } = event {
                log.borrow_mut().push(*workflows);
            }
        })
        .build()
        .expect("build");
    let handles = enqueue_all_and_finish(&rt, N);
    let ends = ends.borrow();
    let most = common::workflows_per_commit();
    assert!(ends.iter().all(|&n| n <= most), "ends per commit: {ends:?}");
    assert_eq!(ends.iter().sum::<usize>(), N as usize, "{ends:?}");
    assert!(
        MOST.with(Cell::get) <= K as usize,
        "at most {K} bodies at once, saw {}",
        MOST.with(Cell::get)
    );
    all_succeeded_in_order(&rt, &handles, N);
}

#[test]
fn a_burst_of_enqueues_is_written_a_thousand_at_a_time_and_runs_in_order() {
    // 2,500 enqueues made before the runtime runs: they are written over three commits
    // (1,024, 1,024, 452), not one, which would keep sled's garbage of 5,000 inserts
    // allocated at once (see `MAX_COMMIT_COMPLETIONS`); none is lost and they start in
    // enqueue order.
    use common::faulty::{FaultyStore, Log};
    reset();
    const N: u32 = 2_500;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::default();
    let rt = Runtime::builder()
        .store(Box::new(FaultyStore::new(
            ordo_testkit::store::open(dir.path()),
            log.clone(),
            None,
        )))
        .clock(Clock::Virtual)
        .queue("q", QueueOptions::new().concurrency(100))
        .register("job", one_step)
        .build()
        .expect("build");
    enqueue_all_and_finish(&rt, N);
    let queued: Vec<usize> = log
        .lines()
        .iter()
        .filter_map(|line| {
            let (_, tail) = line.split_once(" completions, ")?;
            tail.strip_suffix(" queued records")?.parse().ok()
        })
        .collect();
    assert_eq!(queued, [1024, 1024, 452], "{:?}", log.lines());
    assert_eq!(started(), (0..N).collect::<Vec<_>>());
}

#[test]
fn a_crash_at_any_commit_of_handed_over_slots_loses_nothing_and_runs_no_more_than_the_limit() {
    // The next workflow runs before its start record is durable: a crash before the
    // commit that records it must leave it enqueued (and the one that ended pending),
    // and after the restart every job runs to its result, still at most 3 at once.
    const N: u32 = 12;
    for crash_after in 1..=6 {
        reset();
        let dir = tempfile::tempdir().expect("temp dir");
        let open = |halt: Option<u64>| {
            let mut b: RuntimeBuilder = ordo_testkit::store::runtime(dir.path())
                .clock(Clock::Virtual)
                .queue("q", QueueOptions::new().concurrency(3))
                .register("job", one_step);
            if let Some(commits) = halt {
                b = b.halt_after_commits(commits);
            }
            b.build().expect("build")
        };
        {
            let rt = open(Some(crash_after));
            for n in 0..N {
                enqueue(&rt, n, EnqueueOptions::new());
            }
            futures::executor::block_on(rt.run());
        }
        assert!(MOST.with(Cell::get) <= 3, "crash after {crash_after}");
        if crash_after < 4 {
            // Four waves: the crash came before the last one started.
            assert!(started().len() < N as usize, "crash after {crash_after}");
        }
        RUNNING.with(|r| r.set(0));
        MOST.with(|m| m.set(0));
        let rt = open(None);
        rt.recover().expect("recover");
        for n in 0..N {
            let handle = rt
                .handle::<u32, String>(&format!("job-{n}"))
                .expect("handle");
            assert_eq!(
                rt.block_on(handle.result()).expect("runs"),
                Ok(n * 10),
                "crash after {crash_after}"
            );
        }
        assert!(MOST.with(Cell::get) <= 3, "crash after {crash_after}");
        let left = rt.journal().queue_records(b"").expect("read");
        assert!(left.is_empty(), "crash after {crash_after}: {left:?}");
    }
}

#[test]
fn a_priority_or_partition_the_queue_does_not_take_is_refused() {
    let rt = virtual_rt(QueueOptions::new());
    let refused = rt.enqueue::<_, u32, String>("q", "job", 1u32, EnqueueOptions::new().priority(3));
    assert!(
        matches!(refused, Err(Error::QueueOption { .. })),
        "{refused:?}"
    );
    let refused =
        rt.enqueue::<_, u32, String>("q", "job", 1u32, EnqueueOptions::new().partition("a"));
    assert!(
        matches!(refused, Err(Error::QueueOption { .. })),
        "{refused:?}"
    );
    let unknown = rt.enqueue::<_, u32, String>("nope", "job", 1u32, EnqueueOptions::new());
    assert!(
        matches!(unknown, Err(Error::UnknownQueue { .. })),
        "{unknown:?}"
    );
    assert!(rt.journal().workflows(None).expect("list").is_empty());
}

#[test]
fn a_rate_limit_of_10_per_second_starts_50_in_five_exact_waves() {
    reset();
    let rt = virtual_rt(QueueOptions::new().rate_limit(10, Duration::from_secs(1)));
    let origin = rt.block_on(async { ordo::executor::now() });
    let handles: Vec<_> = (0..50)
        .map(|n| enqueue(&rt, n, EnqueueOptions::new()))
        .collect();
    for handle in &handles {
        rt.block_on(handle.result()).expect("runs").expect("ok");
    }
    let mut waves = std::collections::BTreeMap::<u128, Vec<u32>>::new();
    STARTS.with(|s| {
        for (n, at) in s.borrow().iter() {
            waves
                .entry(at.duration_since(origin).as_millis())
                .or_default()
                .push(*n);
        }
    });
    let expected: Vec<(u128, Vec<u32>)> = (0..5u32)
        .map(|w| (u128::from(w) * 1000, (w * 10..w * 10 + 10).collect()))
        .collect();
    assert_eq!(waves.into_iter().collect::<Vec<_>>(), expected);
}

#[test]
fn deduplication_rejects_or_returns_the_holder_until_it_finishes_also_after_a_restart() {
    reset();
    let dir = tempfile::tempdir().expect("temp dir");
    let open = || {
        ordo_testkit::store::runtime(dir.path())
            .clock(Clock::Virtual)
            .queue("q", QueueOptions::new().concurrency(1))
            .register("job", job)
            .build()
            .expect("build")
    };
    let dedup = |on| EnqueueOptions::new().dedup("invoice-7", on);
    {
        let rt = open();
        let first = enqueue(&rt, 1, dedup(OnDuplicate::Reject));
        let second = rt.enqueue::<_, u32, String>("q", "job", 2u32, dedup(OnDuplicate::Reject));
        match second {
            Err(Error::Duplicate { workflow_id, .. }) => assert_eq!(workflow_id, "job-1"),
            other => panic!("expected a duplicate, got {other:?}"),
        }
        let same = rt
            .enqueue::<_, u32, String>("q", "job", 3u32, dedup(OnDuplicate::ReturnExisting))
            .expect("the holder's handle");
        assert_eq!(same.id(), first.id());
        // Durable, not run: the runtime goes before anything runs.
        rt.block_on(ordo::executor::sleep(Duration::from_millis(1)));
        assert!(matches!(
            first.status().expect("status"),
            Status::Enqueued | Status::Pending
        ));
    }
    {
        let rt = open();
        let again = rt.enqueue::<_, u32, String>("q", "job", 4u32, dedup(OnDuplicate::Reject));
        assert!(matches!(again, Err(Error::Duplicate { .. })), "{again:?}");
        rt.recover().expect("recover");
        let holder = rt.handle::<u32, String>("job-1").expect("handle");
        assert_eq!(rt.block_on(holder.result()).expect("runs"), Ok(10));
        // Free again once the holder has finished.
        let next = enqueue(&rt, 5, dedup(OnDuplicate::Reject));
        assert_eq!(rt.block_on(next.result()).expect("runs"), Ok(50));
    }
    // What deduplication turned away never ran.
    let ran = started();
    assert!(ran.contains(&1) && ran.contains(&5), "{ran:?}");
    assert!(![2, 3, 4].iter().any(|n| ran.contains(n)), "{ran:?}");
}

#[test]
fn enqueued_workflows_keep_their_places_across_a_restart() {
    reset();
    let dir = tempfile::tempdir().expect("temp dir");
    let open = |halt: Option<u64>| {
        let mut b: RuntimeBuilder = ordo_testkit::store::runtime(dir.path())
            .clock(Clock::Virtual)
            .queue("q", QueueOptions::new().concurrency(1).priority())
            .register("job", job);
        if let Some(commits) = halt {
            b = b.halt_after_commits(commits);
        }
        b.build().expect("build")
    };
    {
        // Dies after the first job's step is recorded: one started, five in the queue.
        let rt = open(Some(1));
        let handles: Vec<_> = [(0u32, 3u32), (1, 3), (2, 1), (3, 2), (4, 1), (5, 0)]
            .into_iter()
            .map(|(n, p)| enqueue(&rt, n, EnqueueOptions::new().priority(p)))
            .collect();
        let _ = rt.block_on(handles[5].result());
        let statuses: Vec<Status> = (0..6)
            .map(|n| {
                rt.journal()
                    .workflow(&format!("job-{n}"))
                    .expect("read")
                    .expect("recorded")
                    .status
            })
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == Status::Enqueued).count(),
            5
        );
    }
    assert_eq!(started(), vec![5]);
    let rt = open(None);
    rt.recover().expect("recover");
    let last = rt.handle::<u32, String>("job-1").expect("handle");
    rt.block_on(last.result()).expect("runs").expect("ok");
    // The one started before the crash finishes first (its step is recorded, so its body
    // does not run again); the others by priority, then enqueue order.
    assert_eq!(started(), vec![5, 2, 4, 3, 0, 1]);
}

#[test]
fn a_delayed_workflow_waits_its_delay_and_partitions_have_their_own_limits() {
    reset();
    let rt = ordo_testkit::store::temporary()
        .clock(Clock::Virtual)
        .queue("later", QueueOptions::new())
        .queue(
            "per-customer",
            QueueOptions::new().concurrency(1).partitioned(),
        )
        .register("job", job)
        .build()
        .expect("build");
    let origin = rt.block_on(async { ordo::executor::now() });
    let delayed = rt
        .enqueue::<_, u32, String>(
            "later",
            "job",
            7u32,
            EnqueueOptions::new()
                .id("d")
                .delay(Duration::from_secs(3600)),
        )
        .expect("enqueue");
    rt.block_on(ordo::executor::sleep(Duration::from_millis(10)));
    assert_eq!(delayed.status().expect("status"), Status::Delayed);
    rt.block_on(delayed.result()).expect("runs").expect("ok");
    let (n, at) = STARTS.with(|s| s.borrow()[0]);
    assert_eq!(
        (n, at.duration_since(origin)),
        (7, Duration::from_secs(3600))
    );

    reset();
    let origin = rt.block_on(async { ordo::executor::now() });
    let jobs: Vec<_> = [("a", 1u32), ("a", 2), ("b", 3), ("b", 4)]
        .into_iter()
        .map(|(customer, n)| {
            rt.enqueue::<_, u32, String>(
                "per-customer",
                "job",
                n,
                EnqueueOptions::new()
                    .id(format!("p-{n}"))
                    .partition(customer),
            )
            .expect("enqueue")
        })
        .collect();
    for handle in &jobs {
        rt.block_on(handle.result()).expect("runs").expect("ok");
    }
    let offsets: Vec<(u32, u64)> = STARTS.with(|s| {
        s.borrow()
            .iter()
            .map(|(n, at)| (*n, at.duration_since(origin).as_secs()))
            .collect()
    });
    // One at a time per customer, the two customers side by side.
    assert_eq!(offsets, vec![(1, 0), (3, 0), (2, 1), (4, 1)]);
    let missing = rt.enqueue::<_, u32, String>("per-customer", "job", 1u32, EnqueueOptions::new());
    assert!(
        matches!(missing, Err(Error::QueueOption { .. })),
        "{missing:?}"
    );
}

#[test]
fn cancelling_an_enqueued_workflow_takes_it_out_of_its_queue() {
    reset();
    let rt = virtual_rt(QueueOptions::new().concurrency(1));
    let first = enqueue(
        &rt,
        1,
        EnqueueOptions::new().dedup("x", OnDuplicate::Reject),
    );
    let second = enqueue(&rt, 2, EnqueueOptions::new());
    rt.block_on(ordo::executor::sleep(Duration::from_millis(10)));
    assert!(rt.cancel("job-2").expect("cancel"));
    assert!(matches!(
        rt.block_on(second.result()),
        Err(Error::Cancelled { .. })
    ));
    assert!(rt.cancel("job-1").expect("cancel"));
    assert_eq!(first.status().expect("status"), Status::Cancelled);
    // Both slots free, the dedup id too: a third runs at once.
    let third = enqueue(
        &rt,
        3,
        EnqueueOptions::new().dedup("x", OnDuplicate::Reject),
    );
    assert_eq!(rt.block_on(third.result()).expect("runs"), Ok(30));
    assert!(!started().contains(&2));
}

/// A start of an id enqueued in the same turn (its enqueue not committed yet) is that
/// queued workflow: its body runs once, both handles get its result, and the queue and
/// the runtime go on working. Under another workflow's name it is a conflict.
#[test]
fn a_start_of_an_id_just_enqueued_is_that_workflow_and_runs_once() {
    reset();
    let rt = ordo_testkit::store::temporary()
        .clock(Clock::Virtual)
        .queue("q", QueueOptions::new().concurrency(1))
        .register("job", job)
        .register("other", job)
        .build()
        .expect("build");
    let queued = enqueue(&rt, 4, EnqueueOptions::new());
    let direct = rt
        .start::<_, u32, String>("job", "job-4", 4u32)
        .expect("a start of the enqueued id");
    assert!(matches!(
        rt.start::<_, u32, String>("other", "job-4", 4u32),
        Err(Error::Conflict { .. })
    ));
    assert_eq!(rt.block_on(queued.result()).expect("queued"), Ok(40));
    assert_eq!(rt.block_on(direct.result()).expect("direct"), Ok(40));
    assert_eq!(started(), vec![4], "the body ran once");
    let next = enqueue(&rt, 5, EnqueueOptions::new());
    assert_eq!(rt.block_on(next.result()).expect("next"), Ok(50));
    assert_eq!(started(), vec![4, 5]);
}

/// A cancel right after an enqueue, before its commit, cancels it: it never runs, its
/// handle says so, and its deduplication id is free again.
#[test]
fn cancelling_an_enqueue_before_its_commit_cancels_it() {
    reset();
    let rt = virtual_rt(QueueOptions::new().concurrency(1));
    let first = enqueue(
        &rt,
        1,
        EnqueueOptions::new().dedup("x", OnDuplicate::Reject),
    );
    assert!(rt.cancel("job-1").expect("cancel"));
    assert_eq!(first.status().expect("status"), Status::Cancelled);
    assert!(matches!(
        rt.block_on(first.result()),
        Err(Error::Cancelled { .. })
    ));
    let second = enqueue(
        &rt,
        2,
        EnqueueOptions::new().dedup("x", OnDuplicate::Reject),
    );
    assert_eq!(rt.block_on(second.result()).expect("runs"), Ok(20));
    assert_eq!(started(), vec![2], "the cancelled one never ran");
}

/// A queued workflow that crashes its process on every resumption (here: panics) uses
/// up its recovery attempts; once `recover()` gives up on it, it no longer holds its
/// queue's slot, and the next workflow of the queue runs (the queue stopped for good).
#[test]
fn a_workflow_that_used_up_its_attempts_frees_its_queue_slot() {
    async fn poison(ctx: Ctx, _: u32) -> Result<u32, String> {
        ctx.step("explode", || async {
            panic!("poisoned input");
            #[allow(unreachable_code)]
            Ok::<u32, String>(0)
        })
        .await
    }
    let dir = common::journal_dir();
    let build = || {
        common::builder(dir.path())
            .queue("q", QueueOptions::new().concurrency(1))
            .register("job", job)
            .register("poison", poison)
            .max_recovery_attempts(1)
            .build()
            .expect("build")
    };
    {
        let rt = build();
        let bad = rt
            .enqueue::<_, u32, String>("q", "poison", 0u32, EnqueueOptions::new().id("bad"))
            .expect("enqueue");
        let _good = enqueue(&rt, 6, EnqueueOptions::new());
        assert!(matches!(
            rt.block_on(bad.result()),
            Err(Error::Panicked { .. })
        ));
    }
    {
        let rt = build();
        assert_eq!(
            rt.recover().expect("recover").resumed,
            vec!["bad".to_string()]
        );
        let bad = rt.handle::<u32, String>("bad").expect("handle");
        assert!(matches!(
            rt.block_on(bad.result()),
            Err(Error::Panicked { .. })
        ));
    }
    reset();
    let rt = build();
    let report = rt.recover().expect("recover");
    assert!(report.resumed.is_empty(), "{:?}", report.resumed);
    assert!(matches!(
        report.failed.as_slice(),
        [(id, Error::RecoveryExhausted { .. })] if id == "bad"
    ));
    let good = rt.handle::<u32, String>("job-6").expect("handle");
    assert_eq!(rt.block_on(good.result()).expect("runs"), Ok(60));
    assert_eq!(started(), vec![6]);
}

/// Enqueues `job`s from a workflow and returns their ids.
async fn fan_out(ctx: Ctx, n: u32) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            ctx.enqueue("q", "job", i, EnqueueOptions::new())
                .await
                .map_err(|e| e.to_string())?,
        );
        ctx.step("between", || async { Ok::<_, String>(()) })
            .await?;
    }
    let dup = ctx
        .enqueue(
            "q",
            "job",
            99u32,
            EnqueueOptions::new()
                .id("fixed")
                .dedup("once", OnDuplicate::Reject),
        )
        .await;
    let again = ctx
        .enqueue(
            "q",
            "job",
            98u32,
            EnqueueOptions::new().dedup("once", OnDuplicate::Reject),
        )
        .await;
    ids.push(dup.map_err(|e| e.to_string())?);
    ids.push(match again {
        Err(Error::Duplicate { workflow_id, .. }) => format!("duplicate of {workflow_id}"),
        other => format!("unexpected {other:?}"),
    });
    Ok(ids)
}

/// A job without the wait, for the checker's many runs.
async fn quick(_: Ctx, n: u32) -> Result<u32, String> {
    Ok(n)
}

#[test]
fn a_workflow_enqueues_exactly_once_across_a_crash_at_every_commit() {
    let register = |b: RuntimeBuilder| {
        b.queue("q", QueueOptions::new().concurrency(2))
            .register("job", quick)
            .register("fan_out", fan_out)
    };
    let expected = vec!["f/0", "f/2", "f/4", "fixed", "duplicate of fixed"];
    let checked = ordo_testkit::Check::<_, Vec<String>, String>::new("fan_out", 3u32, register)
        .id("f")
        .assert();
    assert_eq!(
        checked,
        Ok(expected.iter().map(|s| s.to_string()).collect())
    );
    // Each id enqueued once, and each ran.
    let rt = register(ordo_testkit::store::temporary().clock(Clock::Virtual))
        .build()
        .expect("build");
    let h = rt
        .start::<_, Vec<String>, String>("fan_out", "f", 3u32)
        .expect("start");
    let ids = rt.block_on(h.result()).expect("runs").expect("ok");
    assert_eq!(ids, expected);
    for (id, n) in ids[..4].iter().zip([0u32, 1, 2, 99]) {
        let job = rt.handle::<u32, String>(id).expect("recorded");
        assert_eq!(rt.block_on(job.result()).expect("runs"), Ok(n));
    }
    assert_eq!(rt.journal().workflows(None).expect("list").len(), 5);
}

/// Notes its input.
async fn reindex(_: Ctx, n: u32) -> Result<u32, String> {
    RUNS.with(|r| r.borrow_mut().push(n));
    Ok(n)
}

#[test]
fn a_hundred_calls_within_the_quiet_period_start_one_workflow_with_the_last_input() {
    reset();
    let rt = ordo_testkit::store::temporary()
        .clock(Clock::Virtual)
        .register("reindex", reindex)
        .build()
        .expect("build");
    let quiet = DebounceOptions::new(Duration::from_secs(5));
    let mut ids = Vec::new();
    for n in 0..100u32 {
        ids.push(rt.debounce("reindex", "doc-1", n, quiet).expect("debounce"));
        rt.block_on(ordo::executor::sleep(Duration::from_secs(1)));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one round");
    let handle = rt.handle::<u32, String>(&ids[0]).expect("handle");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(99));
    assert_eq!(RUNS.with(|r| r.borrow().clone()), vec![99]);
    // The max wait caps a round that never goes quiet.
    let capped = DebounceOptions::new(Duration::from_secs(5)).max_wait(Duration::from_secs(10));
    let origin = rt.block_on(async { ordo::executor::now() });
    let first = rt
        .debounce("reindex", "doc-2", 1000u32, capped)
        .expect("debounce");
    let mut joined = 0;
    for n in 1..30u32 {
        rt.block_on(ordo::executor::sleep(Duration::from_secs(1)));
        let id = rt
            .debounce("reindex", "doc-2", 1000 + n, capped)
            .expect("debounce");
        if id != first {
            break;
        }
        joined = n;
    }
    let handle = rt.handle::<u32, String>(&first).expect("handle");
    let ran = rt.block_on(handle.result()).expect("runs").expect("ok");
    // Calls came every second, never 5 s of quiet: the cap ended the round after 10 s,
    // with the input of the last call that joined it.
    assert!((9..=10).contains(&joined), "{joined}");
    assert_eq!(ran, 1000 + joined);
    let elapsed = rt
        .block_on(async { ordo::executor::now() })
        .duration_since(origin);
    assert!(elapsed >= Duration::from_secs(10), "{elapsed:?}");
}

/// A runtime on the journal at `dir` (virtual time) with `reindex` registered.
fn reindexing(dir: &std::path::Path) -> ordo::Runtime {
    ordo_testkit::store::runtime(dir)
        .clock(Clock::Virtual)
        .register("reindex", reindex)
        .build()
        .expect("build")
}

#[test]
fn a_debounced_call_survives_a_restart() {
    reset();
    let dir = tempfile::tempdir().expect("temp dir");
    let open = || reindexing(dir.path());
    let id = {
        let rt = open();
        let id = rt
            .debounce(
                "reindex",
                "doc",
                5u32,
                DebounceOptions::new(Duration::from_secs(60)),
            )
            .expect("debounce");
        rt.block_on(ordo::executor::sleep(Duration::from_millis(1)));
        id
    };
    assert!(RUNS.with(|r| r.borrow().is_empty()));
    let rt = open();
    let handle = rt.handle::<u32, String>(&id).expect("handle");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(5));
}

/// A cancel of the id a debounced call returned, before the call starts it, cancels it:
/// it never runs, its handles report `Cancelled`, and a restart does not start it
/// either; a later call for the key starts a new round under another id.
#[test]
fn cancelling_a_debounced_call_before_it_starts_cancels_it() {
    reset();
    let dir = tempfile::tempdir().expect("temp dir");
    let open = || reindexing(dir.path());
    let quiet = DebounceOptions::new(Duration::from_secs(60));
    let (staged, written) = {
        let rt = open();
        // One cancelled in the turn of its call, one after a commit wrote its round.
        let staged = rt.debounce("reindex", "a", 1u32, quiet).expect("debounce");
        assert!(rt.cancel(&staged).expect("cancel"), "the staged call");
        // A call in the same millisecond starts a new round, under another id (the
        // cancelled one's would have run).
        let after = rt.debounce("reindex", "a", 4u32, quiet).expect("debounce");
        assert_ne!(after, staged);
        let written = rt.debounce("reindex", "b", 2u32, quiet).expect("debounce");
        rt.block_on(ordo::executor::sleep(Duration::from_millis(1)));
        assert!(rt.cancel(&written).expect("cancel"), "the written call");
        for id in [&staged, &written] {
            let handle = rt.handle::<u32, String>(id).expect("handle");
            assert!(
                matches!(rt.block_on(handle.result()), Err(Error::Cancelled { .. })),
                "{id}"
            );
            assert_eq!(handle.status().expect("status"), Status::Cancelled);
        }
        // Past the quiet periods: the new round alone runs.
        let handle = rt.handle::<u32, String>(&after).expect("handle");
        assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(4));
        rt.block_on(ordo::executor::sleep(Duration::from_secs(120)));
        (staged, written)
    };
    let rt = open();
    rt.block_on(ordo::executor::sleep(Duration::from_secs(120)));
    assert_eq!(
        RUNS.with(|r| r.borrow().clone()),
        vec![4],
        "a cancelled call ran"
    );
    for id in [&staged, &written] {
        let handle = rt.handle::<u32, String>(id).expect("handle");
        assert_eq!(handle.status().expect("status"), Status::Cancelled);
    }
    let again = rt.debounce("reindex", "b", 3u32, quiet).expect("debounce");
    assert_ne!(again, written);
    let handle = rt.handle::<u32, String>(&again).expect("handle");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(3));
}

/// Rounds of two (name, key) pairs that `name/key` would write alike, called in one
/// millisecond, get two ids and both run, each with its own input; cancelling one
/// leaves the other.
#[test]
fn debounce_rounds_of_different_names_and_keys_never_share_an_id() {
    reset();
    let rt = ordo_testkit::store::temporary()
        .clock(Clock::Virtual)
        .register("x/y", reindex)
        .register("x", reindex)
        .build()
        .expect("build");
    let quiet = DebounceOptions::new(Duration::from_secs(5));
    let slash_in_name = rt.debounce("x/y", "z", 1u32, quiet).expect("debounce");
    let slash_in_key = rt.debounce("x", "y/z", 2u32, quiet).expect("debounce");
    let at_in_key = rt.debounce("x", "y/z@0", 3u32, quiet).expect("debounce");
    let cancelled = rt.debounce("x/y", "c", 4u32, quiet).expect("debounce");
    let kept = rt.debounce("x", "y/c", 5u32, quiet).expect("debounce");
    let ids = [&slash_in_name, &slash_in_key, &at_in_key, &cancelled, &kept];
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    assert!(rt.cancel(&cancelled).expect("cancel"));
    for (id, input) in [
        (&slash_in_name, 1),
        (&slash_in_key, 2),
        (&at_in_key, 3),
        (&kept, 5),
    ] {
        let handle = rt.handle::<u32, String>(id).expect("handle");
        assert_eq!(
            rt.block_on(handle.result()).expect("runs"),
            Ok(input),
            "{id}"
        );
    }
    let mut runs = RUNS.with(|r| r.borrow().clone());
    runs.sort_unstable();
    assert_eq!(runs, vec![1, 2, 3, 5]);
}

/// A start of the id a debounced call returned, before the round starts, is that
/// round (as a start of an id waiting in a queue is that queued workflow): it runs
/// once, with the round's input; under another name it is a conflict.
#[test]
fn a_start_of_a_debounced_id_is_that_round() {
    reset();
    let rt = ordo_testkit::store::temporary()
        .clock(Clock::Virtual)
        .register("reindex", reindex)
        .register("other", reindex)
        .build()
        .expect("build");
    let quiet = DebounceOptions::new(Duration::from_secs(5));
    let id = rt.debounce("reindex", "k", 1u32, quiet).expect("debounce");
    let started = rt
        .start::<_, u32, String>("reindex", &id, 99u32)
        .expect("the round's handle");
    assert!(matches!(
        rt.start::<_, u32, String>("other", &id, 98u32),
        Err(Error::Conflict { .. })
    ));
    assert_eq!(rt.block_on(started.result()).expect("runs"), Ok(1));
    assert_eq!(
        RUNS.with(|r| r.borrow().clone()),
        vec![1],
        "one run, the round's"
    );
}

/// Neither an enqueue, a fork nor a child launch takes the id a pending debounce round
/// holds (the enqueue under the round's name is that round; under another name, and a
/// fork, are refused; a child of the round's name adopts it), and a new round does not
/// take the id of a workflow enqueued in the same turn: every workflow runs once, with
/// its own input.
#[test]
fn no_other_start_takes_the_id_of_a_pending_debounce_round() {
    reset();
    let rt = ordo_testkit::store::temporary()
        .clock(Clock::Virtual)
        .queue("q", QueueOptions::new().concurrency(10))
        .register("reindex", reindex)
        .register("other", reindex)
        .register("parent", |ctx: Ctx, id: String| async move {
            let child = ctx.start_child_with::<_, u32, String>(
                "reindex",
                70u32,
                ordo::ChildOptions::default().id(id),
            );
            child.result().await.map_err(|e| e.to_string())?
        })
        .build()
        .expect("build");
    let quiet = DebounceOptions::new(Duration::from_secs(5));
    let id = rt.debounce("reindex", "k", 1u32, quiet).expect("debounce");
    // A workflow enqueued (in this turn, not committed) under the id the next round
    // would take, then that round.
    let ms = id.rsplit_once('@').expect("a round id ends in its time").1;
    let queued_id = format!("reindex/j@{ms}");
    let queued = rt
        .enqueue::<_, u32, String>("q", "other", 200u32, EnqueueOptions::new().id(&queued_id))
        .expect("enqueue");
    let round = rt.debounce("reindex", "j", 2u32, quiet).expect("debounce");
    assert_ne!(round, queued_id);
    let same = rt
        .enqueue::<_, u32, String>("q", "reindex", 100u32, EnqueueOptions::new().id(&id))
        .expect("the round");
    assert!(matches!(
        rt.enqueue::<_, u32, String>("q", "other", 101u32, EnqueueOptions::new().id(&id)),
        Err(Error::Conflict { .. })
    ));
    let source = rt
        .start::<_, u32, String>("reindex", "src", 5u32)
        .expect("start");
    rt.block_on(source.result()).expect("runs").expect("ok");
    assert!(matches!(
        rt.fork::<u32, String>("src", 0, &id),
        Err(Error::AlreadyExists { .. })
    ));
    let parent = rt
        .start::<_, u32, String>("parent", "p", id.clone())
        .expect("start");
    assert_eq!(rt.block_on(same.result()).expect("runs"), Ok(1));
    assert_eq!(
        rt.block_on(parent.result()).expect("runs"),
        Ok(1),
        "adopted the round"
    );
    assert_eq!(rt.block_on(queued.result()).expect("runs"), Ok(200));
    let round = rt.handle::<u32, String>(&round).expect("handle");
    assert_eq!(rt.block_on(round.result()).expect("runs"), Ok(2));
    let mut runs = RUNS.with(|r| r.borrow().clone());
    runs.sort_unstable();
    assert_eq!(runs, vec![1, 2, 5, 200], "each once, with its own input");
}
