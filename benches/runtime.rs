//! The durable runtime's speed, side by side with the journal it sits on (issue 4).
//!
//! - `sequential/journal_single_commit_sync`: the baseline, one [`Store::commit`] of one
//!   completion on a `Sync` [`SledJournal`] (the journal's own single-commit rate).
//! - `sequential/ordo_sync`, `sequential/ordo_none`: a workflow of 100 sequential
//!   durable steps per iteration (start, 100 steps, finish); throughput is steps.
//!   Target: `ordo_sync` at 80%+ of the baseline's rate.
//! - `concurrent/join_all_1000_sync`: one workflow running 1,000 steps in a `join_all`
//!   with `Sync`. Target: 100,000+ steps/s.
//! - `replay/sequential_100k`: `recover()` and full replay of a workflow whose 100,000
//!   sequential steps are all recorded (the runtime is opened outside the timing).
//!   Target: 500,000+ steps/s. `replay/sequential_100k/journal_read_only` times just
//!   the journal read inside it (`Store::completions` on a freshly opened journal).
//! - `recovery/10k_workflows`: `recover()` of 10,000 pending workflows (each with one of
//!   its two steps recorded), timed alone (`recover_only`) and with driving all of them
//!   to completion (`recover_and_finish`), on a fresh copy of the journal each time.
//!   Target: under 1 s.
//!
//! Journals live under cargo's target tmpdir: the repository's disk, not tmpfs.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{bench_dir, sequential};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ordo::journal::{Batch, Completion, Outcome, SledJournal, Store};
use ordo::{Ctx, Durability, Error, Runtime, RuntimeBuilder};

/// `n` steps at once in a `join_all`.
async fn concurrent(ctx: Ctx, n: u64) -> Result<u64, ()> {
    let steps = (0..n).map(|i| ctx.step("c", move || async move { Ok::<u64, ()>(i) }));
    let values = futures::future::join_all(steps).await;
    values.into_iter().sum()
}

/// Whether `gated`'s second step may finish.
static GATE_OPEN: AtomicBool = AtomicBool::new(false);

/// Two steps (0, then 1); the second finishes only once [`GATE_OPEN`] is set: the
/// recovery benches' workflow, left pending with its first step recorded.
async fn gated(ctx: Ctx, _: u64) -> Result<u64, ()> {
    let first = ctx.step("first", || async { Ok::<_, ()>(0) }).await?;
    let second = ctx
        .step("second", || async {
            while !GATE_OPEN.load(Ordering::SeqCst) {
                ordo::executor::sleep(Duration::from_millis(50)).await;
            }
            Ok::<_, ()>(1)
        })
        .await?;
    Ok(first + second)
}

fn builder(dir: &Path, durability: Durability) -> RuntimeBuilder {
    Runtime::builder()
        .path(dir)
        .durability(durability)
        .register("sequential", sequential)
        .register("concurrent", concurrent)
        .register("gated", gated)
}

/// Starts workflow `name` under a fresh id and drives it to the end.
fn run_one(rt: &Runtime, name: &str, next_id: &Cell<u64>, n: u64) {
    let id = next_id.get();
    next_id.set(id + 1);
    let handle = rt.start::<_, u64, ()>(name, &format!("w{id}"), n).unwrap();
    let sum = rt.block_on(handle.result()).unwrap().unwrap();
    assert_eq!(sum, n * (n - 1) / 2);
}

fn sequential_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("sequential");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);

    let dir = bench_dir();
    group.throughput(Throughput::Elements(1));
    // Outside the closure: criterion calls it once for warm-up and again to measure.
    let journal = SledJournal::open(dir.path().join("baseline"), Durability::Sync).unwrap();
    let mut seq = 0;
    let mut batch = Batch::new();
    group.bench_function("journal_single_commit_sync", |b| {
        b.iter(|| {
            batch.clear();
            batch.push_completion(
                "w",
                Completion {
                    seq,
                    step_id: seq,
                    name: "s".into(),
                    outcome: Outcome::Ok(vec![seq as u8]),
                    attempts: 1,
                    started_ms: 1_700_000_000_000,
                    ended_ms: 1_700_000_000_000,
                },
            );
            journal.commit(&batch).unwrap();
            seq += 1;
        });
    });

    const STEPS: u64 = 100;
    group.throughput(Throughput::Elements(STEPS));
    for (label, durability) in [
        ("ordo_sync", Durability::Sync),
        ("ordo_none", Durability::None),
    ] {
        let rt = builder(&dir.path().join(label), durability)
            .build()
            .unwrap();
        let next_id = Cell::new(0);
        group.bench_function(label, |b| {
            b.iter(|| run_one(&rt, "sequential", &next_id, STEPS))
        });
    }
    group.finish();
}

fn concurrent_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("concurrent");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    const STEPS: u64 = 1_000;
    group.throughput(Throughput::Elements(STEPS));
    let dir = bench_dir();
    let rt = builder(dir.path(), Durability::Sync).build().unwrap();
    let next_id = Cell::new(0);
    group.bench_function("join_all_1000_sync", |b| {
        b.iter(|| run_one(&rt, "concurrent", &next_id, STEPS));
    });
    group.finish();
}

/// Drives `rt` until every started or recovered workflow has stopped: each is halted
/// right before its finish would be recorded.
/// Does nothing: a start and a finish.
async fn empty(_ctx: Ctx, _n: u64) -> Result<u64, ()> {
    Ok(0)
}

thread_local! {
    /// When the last of [`launched`]'s workflows first ran (the runtime's thread).
    static LAST_LAUNCH: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// `n` sequential steps, after noting when it first ran: a workflow runs only once its
/// start record is durable, so the latest such time over a batch of starts is when
/// every one of them was started for good.
async fn launched(ctx: Ctx, n: u64) -> Result<u64, ()> {
    LAST_LAUNCH.with(|last| last.set(Some(Instant::now())));
    sequential(ctx, n).await
}

thread_local! {
    /// How many of [`parked`]'s workflows ran, and who waits for the count.
    static PARKED: Cell<u64> = const { Cell::new(0) };
    static PARKED_WAITER: std::cell::RefCell<Option<std::task::Waker>> =
        const { std::cell::RefCell::new(None) };
}

/// Notes that it ran, then waits for an awakeable nobody resolves (an order waiting for
/// its payment's callback, say): its start is all it commits.
async fn parked(ctx: Ctx, _n: u64) -> Result<u64, ()> {
    PARKED.with(|n| n.set(n.get() + 1));
    if let Some(waiter) = PARKED_WAITER.with(|w| w.borrow_mut().take()) {
        waiter.wake();
    }
    let (_token, paid) = ctx.awakeable::<u64>();
    paid.await.map_err(|_| ())
}

/// Starts `count` workflows `name` (input `n`) in one turn, then drives them all to the
/// end.
fn start_many(rt: &Runtime, name: &str, next_id: &Cell<u64>, count: u64, n: u64) {
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let id = next_id.get();
            next_id.set(id + 1);
            rt.start::<_, u64, ()>(name, &format!("w{id}"), n).unwrap()
        })
        .collect();
    let results = rt.block_on(futures::future::join_all(
        handles.iter().map(|h| h.result()),
    ));
    assert!(results.into_iter().all(|r| r.is_ok()));
}

/// Starts share the group commit, all `Sync`, in one run, next to the gathered-steps
/// rate (1,000 steps in one `join_all`):
/// - `starts_10k_until_running_sync`: 10,000 starts of workflows of 10 steps, timed from
///   the first `start()` call to the first run of the last workflow started (each runs
///   only once its start record is durable); the steps that follow are outside the
///   timing. The starts per second the issue asks for.
/// - `starts_10k_parked_sync`: 10,000 starts of workflows that wait for an awakeable
///   as soon as they run, timed the same way: their starts are all they commit, so
///   this row is the start path alone (in the row above, the workflows started first
///   commit their first steps while the later ones' starts are committed).
/// - `starts_10k_sync`: 10,000 starts of a workflow that does nothing, to its end (the
///   start commit and the finish commit: a conservative starts per second).
/// - `10k_workflows_x_10_steps_sync`: 10,000 workflows of 10 steps each, starts
///   included, to their end.
///
/// Each iteration starts from an empty journal.
fn starts(c: &mut Criterion) {
    let mut group = c.benchmark_group("starts");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(10);
    let dir = bench_dir();
    let gathered = builder(&dir.path().join("gathered"), Durability::Sync)
        .build()
        .unwrap();
    let next_id = Cell::new(0);
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("gathered_steps_1000_sync", |b| {
        b.iter(|| run_one(&gathered, "concurrent", &next_id, 1_000));
    });
    drop(gathered);
    let fresh = || {
        let journal = bench_dir();
        let rt = builder(journal.path(), Durability::Sync)
            .register("empty", empty)
            .register("launched", launched)
            .register("parked", parked)
            .build()
            .unwrap();
        (rt, journal)
    };
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("starts_10k_until_running_sync", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (rt, journal) = fresh();
                LAST_LAUNCH.with(|last| last.set(None));
                let begun = Instant::now();
                start_many(&rt, "launched", &Cell::new(0), 10_000, 10);
                let last = LAST_LAUNCH.with(Cell::get).unwrap();
                total += last.duration_since(begun);
                drop((rt, journal));
            }
            total
        });
    });
    group.bench_function("starts_10k_parked_sync", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (rt, journal) = fresh();
                PARKED.with(|n| n.set(0));
                let begun = Instant::now();
                let handles: Vec<_> = (0..10_000u64)
                    .map(|id| {
                        rt.start::<_, u64, ()>("parked", &format!("w{id}"), 0u64)
                            .unwrap()
                    })
                    .collect();
                rt.block_on(std::future::poll_fn(|cx| {
                    if PARKED.with(Cell::get) >= 10_000 {
                        return std::task::Poll::Ready(());
                    }
                    PARKED_WAITER.with(|w| *w.borrow_mut() = Some(cx.waker().clone()));
                    std::task::Poll::Pending
                }));
                total += begun.elapsed();
                drop((handles, rt, journal)); // the parked workflows stay pending
            }
            total
        });
    });
    group.bench_function("starts_10k_sync", |b| {
        b.iter_batched(
            fresh,
            |(rt, journal)| {
                start_many(&rt, "empty", &Cell::new(0), 10_000, 0);
                (rt, journal) // dropped outside the timing
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("10k_workflows_x_10_steps_sync", |b| {
        b.iter_batched(
            fresh,
            |(rt, journal)| {
                start_many(&rt, "sequential", &Cell::new(0), 10_000, 10);
                (rt, journal)
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn run_to_halt(rt: &Runtime, id: &str) {
    let handle = rt.handle::<u64, ()>(id).unwrap();
    let stopped = rt.block_on(handle.result());
    assert!(matches!(stopped, Err(Error::Stopped { .. })), "{stopped:?}");
}

fn replay(c: &mut Criterion) {
    const STEPS: u64 = 100_000;
    let dir = bench_dir();
    // One journal holding all 100,000 steps but not the end, built once: replaying it
    // halts before the finish again, so every iteration replays everything.
    {
        let rt = builder(dir.path(), Durability::None)
            .halt_before_finish()
            .build()
            .unwrap();
        rt.start::<_, u64, ()>("sequential", "long", STEPS).unwrap();
        run_to_halt(&rt, "long");
    }
    let replayer = || {
        builder(dir.path(), Durability::None)
            .halt_before_finish()
            .max_recovery_attempts(u32::MAX)
            .build()
            .unwrap()
    };

    let mut group = c.benchmark_group("replay");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(10);
    group.throughput(Throughput::Elements(STEPS));
    group.bench_function("sequential_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let rt = replayer();
                let start = Instant::now();
                let report = rt.recover().unwrap();
                assert_eq!(report.resumed.len(), 1);
                run_to_halt(&rt, "long");
                total += start.elapsed();
                assert_eq!(rt.metrics().steps_replayed, STEPS);
                assert_eq!(rt.metrics().steps_executed, 0);
            }
            total
        });
    });
    // The part of the above that is the journal's: reading the 100,000 completions
    // back from a freshly opened journal (cold sled page cache, like a recovery).
    group.bench_function("sequential_100k/journal_read_only", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let journal = SledJournal::open(dir.path(), Durability::None).unwrap();
                let start = Instant::now();
                let completions = journal.completions("long").unwrap();
                total += start.elapsed();
                assert_eq!(completions.len() as u64, STEPS);
            }
            total
        });
    });
    group.finish();
}

/// Copies a closed journal folder.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn recovery(c: &mut Criterion) {
    const WORKFLOWS: u64 = 10_000;
    let pristine = bench_dir();
    // 10,000 pending workflows, each with the first of its two steps recorded: started
    // one by one, and left (the runtime dropped) once every first step is committed and
    // every second step waits at its closed gate.
    {
        GATE_OPEN.store(false, Ordering::SeqCst);
        let rt = builder(pristine.path(), Durability::None).build().unwrap();
        for i in 0..WORKFLOWS {
            rt.start::<_, u64, ()>("gated", &format!("w{i}"), 2u64)
                .unwrap();
        }
        rt.block_on(async {
            while rt.metrics().completions_committed < WORKFLOWS {
                ordo::executor::sleep(Duration::from_millis(10)).await;
            }
        });
        assert_eq!(rt.metrics().completions_committed, WORKFLOWS);
    }
    GATE_OPEN.store(true, Ordering::SeqCst);
    let scratch = bench_dir();
    let copy = Cell::new(0);
    let fresh_runtime = || {
        copy.set(copy.get() + 1);
        let dir = scratch.path().join(copy.get().to_string());
        copy_dir(pristine.path(), &dir);
        (builder(&dir, Durability::Sync).build().unwrap(), dir)
    };

    let mut group = c.benchmark_group("recovery");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(10);
    group.throughput(Throughput::Elements(WORKFLOWS));
    group.bench_function("10k_workflows/recover_only", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (rt, dir) = fresh_runtime();
                let start = Instant::now();
                let report = rt.recover().unwrap();
                total += start.elapsed();
                assert_eq!(report.resumed.len() as u64, WORKFLOWS);
                drop(rt);
                std::fs::remove_dir_all(dir).unwrap();
            }
            total
        });
    });
    group.bench_function("10k_workflows/recover_and_finish", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (rt, dir) = fresh_runtime();
                let start = Instant::now();
                let report = rt.recover().unwrap();
                let handles: Vec<_> = report
                    .resumed
                    .iter()
                    .map(|id| rt.handle::<u64, ()>(id).unwrap())
                    .collect();
                for handle in handles {
                    assert_eq!(rt.block_on(handle.result()).unwrap(), Ok(1));
                }
                total += start.elapsed();
                assert_eq!(rt.metrics().steps_replayed, WORKFLOWS);
                assert_eq!(rt.metrics().steps_executed, WORKFLOWS);
                drop(rt);
                std::fs::remove_dir_all(dir).unwrap();
            }
            total
        });
    });
    group.finish();
}

mod group {
    // criterion_group! makes an undocumented `pub fn`.
    #![allow(missing_docs)]
    use super::*;

    criterion_group!(
        benches,
        sequential_steps,
        concurrent_steps,
        starts,
        replay,
        recovery
    );
}
criterion_main!(group::benches);
