//! Queues (issue 12), side by side with direct starts in one run.
//!
//! - `dispatch/freed_slot_to_first_poll`: a queue of concurrency 1 holding a chain of
//!   workflows; the time from one's body returning (the slot freed) to the next one's
//!   first poll. No polling: the slot is handed over as the body returns (the next
//!   one's start is committed with the end), so microseconds. Reported per dispatch.
//! - `throughput/direct_10000_sync` and `throughput/queue_c100_10000_sync`: 10,000
//!   workflows of one step on a `Sync` journal, started directly (all at once) or
//!   through a queue of concurrency 100. Target: the queue costs under 20%.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ordo::{Ctx, Durability, EnqueueOptions, QueueOptions, Runtime};

thread_local! {
    /// When each chained workflow was first polled, and when each one's body returned.
    static FIRST_POLLS: RefCell<Vec<Instant>> = const { RefCell::new(Vec::new()) };
    static RETURNS: RefCell<Vec<Instant>> = const { RefCell::new(Vec::new()) };
}

async fn chained(ctx: Ctx, n: u64) -> Result<u64, ()> {
    FIRST_POLLS.with(|p| p.borrow_mut().push(Instant::now()));
    let out = ctx
        .step("work", move || async move { Ok::<_, ()>(n) })
        .await;
    RETURNS.with(|r| r.borrow_mut().push(Instant::now()));
    out
}

async fn one_step(ctx: Ctx, n: u64) -> Result<u64, ()> {
    ctx.step("work", move || async move { Ok::<_, ()>(n) })
        .await
}

fn dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("dispatch");
    group.sample_size(20);
    group.bench_function("freed_slot_to_first_poll", |b| {
        b.iter_custom(|iters| {
            let dir = common::bench_dir();
            let rt = Runtime::builder()
                .path(dir.path())
                .durability(Durability::None)
                .queue("chain", QueueOptions::new().concurrency(1))
                .register("chained", chained)
                .build()
                .unwrap();
            FIRST_POLLS.with(|p| p.borrow_mut().clear());
            RETURNS.with(|r| r.borrow_mut().clear());
            // One more than measured: the first start follows no end.
            let handles: Vec<_> = (0..=iters)
                .map(|n| {
                    rt.enqueue::<_, u64, ()>(
                        "chain",
                        "chained",
                        n,
                        EnqueueOptions::new().id(format!("c-{n}")),
                    )
                    .unwrap()
                })
                .collect();
            for h in &handles {
                rt.block_on(h.result()).unwrap().unwrap();
            }
            let polls = FIRST_POLLS.with(|p| p.borrow().clone());
            let ends = RETURNS.with(|r| r.borrow().clone());
            // The return of workflow i frees the slot workflow i + 1 takes.
            ends.iter()
                .zip(&polls[1..])
                .map(|(end, poll)| poll.saturating_duration_since(*end))
                .sum::<Duration>()
        });
    });
    group.finish();
}

const N: u64 = 10_000;

/// Total time of `iters` runs, each on a fresh `Sync` journal: `start` puts the `N`
/// workflows in (directly or through a queue) and returns their handles, awaited to the
/// end.
fn time_runs(
    iters: u64,
    queue: Option<QueueOptions>,
    start: impl Fn(&Runtime, u64) -> ordo::WorkflowHandle<u64, ()>,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = common::bench_dir();
        let mut builder = Runtime::builder()
            .path(dir.path())
            .durability(Durability::Sync)
            .register("one_step", one_step);
        if let Some(options) = queue.clone() {
            builder = builder.queue("q", options);
        }
        let rt = builder.build().unwrap();
        let started = Instant::now();
        let handles: Vec<_> = (0..N).map(|n| start(&rt, n)).collect();
        for h in &handles {
            rt.block_on(h.result()).unwrap().unwrap();
        }
        total += started.elapsed();
    }
    total
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("throughput");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(N));
    group.bench_function("direct_10000_sync", |b| {
        b.iter_custom(|iters| {
            time_runs(iters, None, |rt, n| {
                rt.start::<_, u64, ()>("one_step", &format!("w-{n}"), n)
                    .unwrap()
            })
        });
    });
    group.bench_function("queue_c100_10000_sync", |b| {
        b.iter_custom(|iters| {
            time_runs(
                iters,
                Some(QueueOptions::new().concurrency(100)),
                |rt, n| {
                    let options = EnqueueOptions::new().id(format!("w-{n}"));
                    rt.enqueue::<_, u64, ()>("q", "one_step", n, options)
                        .unwrap()
                },
            )
        });
    });
    group.finish();
}

criterion_group!(benches, dispatch, throughput);
criterion_main!(benches);
