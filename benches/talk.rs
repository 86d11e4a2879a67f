//! Workflows that talk, side by side with a plain step (issue 10).
//!
//! - `round_trip/journal_commit_sync`: one [`Store::commit`] of one completion on a
//!   `Sync` journal: a single durability point, the reference.
//! - `round_trip/client_send_sync`: a client thread sends a message to a waiting
//!   workflow and waits until it is durable (the receipt is in the same commit).
//! - `round_trip/client_message_sync`: a client thread sends a message to a waiting
//!   workflow, which answers with an event the client waits for (ping-pong). Target:
//!   within 1.5x of `journal_commit_sync`.
//! - `round_trip/client_message_plus_step_sync`: the same with one plain durable step
//!   between the receipt and the answer: the difference is a plain step's round trip.
//! - `fan_out/children_1000_none`: a parent launches 1,000 children and joins them.
//! - `messages/into_one_workflow_none`: 10,000 client messages into one running workflow
//!   (already waiting in its first receipt; the time includes a 1 ms wait for that) that
//!   receives them with `recv_many` (up to 16,384 per receipt); throughput is
//!   messages. Target: 100,000+ messages/s.
//! - `messages/into_one_workflow_one_at_a_time_none`: the same, one `recv` at a time
//!   (each receipt its own commit).
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ordo::journal::{Batch, Completion, Outcome, SledJournal, Store};
use ordo::{Client, Ctx, Durability, Runtime};

fn bench_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// The message that ends the serving workflows (so the runtime's `run` completes).
const STOP: u64 = u64::MAX;

/// Answers every "ping" `n` with event `pong-n`.
async fn ponger(ctx: Ctx, _: ()) -> Result<(), ()> {
    while let Some(n) = ctx.recv::<u64>("ping", Duration::MAX).await {
        if n == STOP {
            break;
        }
        ctx.set_event(&format!("pong-{n}"), n).await;
    }
    Ok(())
}

/// Receives and drops every "in" message.
async fn sink(ctx: Ctx, _: ()) -> Result<(), ()> {
    while let Some(n) = ctx.recv::<u64>("in", Duration::MAX).await {
        if n == STOP {
            break;
        }
    }
    Ok(())
}

/// Steps on demand: each "step" message runs one durable step, then says so.
async fn stepper(ctx: Ctx, _: ()) -> Result<(), ()> {
    while let Some(n) = ctx.recv::<u64>("go", Duration::MAX).await {
        if n == STOP {
            break;
        }
        ctx.step("s", move || async move { Ok::<u64, ()>(n) })
            .await?;
        ctx.set_event(&format!("done-{n}"), n).await;
    }
    Ok(())
}

/// Receives `n` messages one `recv` at a time.
async fn one_by_one(ctx: Ctx, n: u64) -> Result<u64, ()> {
    let mut sum = 0;
    for _ in 0..n {
        sum += ctx.recv::<u64>("m", Duration::MAX).await.ok_or(())?;
    }
    Ok(sum)
}

async fn square(_: Ctx, n: u64) -> Result<u64, ()> {
    Ok(n * n)
}

async fn fan_out(ctx: Ctx, n: u64) -> Result<u64, ()> {
    let children: Vec<_> = (0..n)
        .map(|i| ctx.start_child::<_, u64, ()>("square", i))
        .collect();
    let mut total = 0;
    for result in futures::future::join_all(children.into_iter().map(|c| c.result())).await {
        total += result.unwrap()?;
    }
    Ok(total)
}

/// Receives `n` messages with `recv_many`, up to 16,384 per receipt.
async fn drain(ctx: Ctx, n: u64) -> Result<u64, ()> {
    let mut sum = 0;
    let mut left = n;
    while left > 0 {
        let batch = ctx.recv_many::<u64>("m", 16_384, Duration::MAX).await;
        left = left.checked_sub(batch.len() as u64).ok_or(())?;
        sum += batch.iter().sum::<u64>();
    }
    Ok(sum)
}

/// A runtime on its own thread, serving a client until the client is dropped.
fn serve(
    dir: PathBuf,
    durability: Durability,
    start: &'static [(&'static str, &'static str)],
) -> (Client, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = Runtime::builder()
            .path(dir)
            .durability(durability)
            .register("ponger", ponger)
            .register("stepper", stepper)
            .register("sink", sink)
            .build()
            .unwrap();
        for (name, id) in start {
            rt.start::<_, (), ()>(name, id, ()).unwrap();
        }
        tx.send(rt.client()).unwrap();
        futures::executor::block_on(rt.run());
    });
    (rx.recv().unwrap(), thread)
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));

    let dir = bench_dir();
    let journal = SledJournal::open(dir.path().join("baseline"), Durability::Sync).unwrap();
    let mut seq = 0u64;
    group.bench_function("journal_commit_sync", |b| {
        b.iter(|| {
            let mut batch = Batch::new();
            batch.push_completion(
                "w",
                Completion {
                    seq,
                    step_id: seq,
                    name: "s".into(),
                    outcome: Outcome::Ok(vec![0; 16]),
                    attempts: 1,
                    started_ms: 0,
                    ended_ms: 0,
                },
            );
            seq += 1;
            journal.commit(&batch).unwrap();
        });
    });
    drop(journal);

    let (client, thread) = serve(
        dir.path().join("talk"),
        Durability::Sync,
        &[("ponger", "pong"), ("stepper", "steps"), ("sink", "sink")],
    );
    let mut n = 0u64;
    group.bench_function("client_send_sync", |b| {
        b.iter(|| {
            n += 1;
            // Durable (and handed to the waiting receiver) when it resolves.
            futures::executor::block_on(client.send("sink", "in", n)).unwrap();
        });
    });
    group.bench_function("client_message_sync", |b| {
        b.iter(|| {
            n += 1;
            futures::executor::block_on(async {
                client.send("pong", "ping", n).await.unwrap();
                let back = client
                    .get_event::<u64>("pong", &format!("pong-{n}"), Duration::from_secs(10))
                    .await
                    .unwrap();
                assert_eq!(back, Some(n));
            });
        });
    });
    group.bench_function("client_message_plus_step_sync", |b| {
        b.iter(|| {
            n += 1;
            futures::executor::block_on(async {
                client.send("steps", "go", n).await.unwrap();
                let back = client
                    .get_event::<u64>("steps", &format!("done-{n}"), Duration::from_secs(10))
                    .await
                    .unwrap();
                assert_eq!(back, Some(n));
            });
        });
    });
    futures::executor::block_on(async {
        client.send("pong", "ping", STOP).await.unwrap();
        client.send("steps", "go", STOP).await.unwrap();
        client.send("sink", "in", STOP).await.unwrap();
    });
    drop(client);
    thread.join().unwrap();
    group.finish();
}

fn fan_out_children(c: &mut Criterion) {
    let mut group = c.benchmark_group("fan_out");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000));
    let dir = bench_dir();
    let rt = Runtime::builder()
        .path(dir.path())
        .durability(Durability::None)
        .register("square", square)
        .register("fan_out", fan_out)
        .build()
        .unwrap();
    let mut id = 0u64;
    group.bench_function("children_1000_none", |b| {
        b.iter(|| {
            id += 1;
            let h = rt
                .start::<_, u64, ()>("fan_out", &format!("f{id}"), 1_000u64)
                .unwrap();
            rt.block_on(h.result()).unwrap().unwrap();
        });
    });
    group.finish();
}

fn messages_into_one(c: &mut Criterion) {
    let mut group = c.benchmark_group("messages");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    const N: u64 = 10_000;
    group.throughput(Throughput::Elements(N));
    let dir = bench_dir();
    let rt = Runtime::builder()
        .path(dir.path())
        .durability(Durability::None)
        .register("drain", drain)
        .register("one_by_one", one_by_one)
        .build()
        .unwrap();
    let client = rt.client();
    let mut id = 0u64;
    group.bench_function("into_one_workflow_none", |b| {
        b.iter(|| {
            id += 1;
            let wid = format!("d{id}");
            let h = rt.start::<_, u64, ()>("drain", &wid, N).unwrap();
            // Running and waiting in its first receipt, as a service's workflow is.
            rt.block_on(ordo::executor::sleep(Duration::from_millis(1)));
            let sends = futures::future::join_all((0..N).map(|i| client.send(&wid, "m", i)));
            let (sum, sent) = rt.block_on(futures::future::join(h.result(), sends));
            assert!(sent.iter().all(Result::is_ok));
            assert_eq!(sum.unwrap().unwrap(), N * (N - 1) / 2);
        });
    });
    let mut id = 0u64;
    group.bench_function("into_one_workflow_one_at_a_time_none", |b| {
        b.iter(|| {
            id += 1;
            let wid = format!("o{id}");
            let h = rt.start::<_, u64, ()>("one_by_one", &wid, N).unwrap();
            // Running and waiting in its first receipt, as a service's workflow is.
            rt.block_on(ordo::executor::sleep(Duration::from_millis(1)));
            let sends = futures::future::join_all((0..N).map(|i| client.send(&wid, "m", i)));
            let (sum, sent) = rt.block_on(futures::future::join(h.result(), sends));
            assert!(sent.iter().all(Result::is_ok));
            assert_eq!(sum.unwrap().unwrap(), N * (N - 1) / 2);
        });
    });
    group.finish();
}

criterion_group!(benches, round_trip, fan_out_children, messages_into_one);
criterion_main!(benches);
