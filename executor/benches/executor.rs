//! ordo's executor against `futures::executor::LocalPool`, `async_executor::LocalExecutor`
//! and tokio's current-thread runtime with a `LocalSet`, side by side in one run.
//!
//! Each benchmark is 10 000 operations per iteration (criterion reports elements/s;
//! divide the time by 10 000 for ns per operation):
//! - `spawn_complete`: spawn 10 000 trivial tasks, run them all to completion;
//! - `spawn_yield`: the same with tasks that yield once (same yield future everywhere);
//! - `ping_pong`: two tasks bounce 10 000 messages over `futures::channel::mpsc`.
//!
//! Each executor is reused across iterations where its API allows, as a long-running
//! program would. Run with
//! `cargo bench -p ordo-executor -- --warm-up-time 1 --measurement-time 2`.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::channel::mpsc;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use futures::StreamExt;

const N: usize = 10_000;

/// Returns `Pending` once after waking itself: the same yield for every executor, so
/// none gets an advantage from its own `yield_now` (tokio's consults its coop budget).
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

async fn trivial() {
    black_box(());
}

async fn yield_once() {
    YieldOnce(false).await;
}

/// The two halves of a ping-pong of `n` messages.
fn ping_pong(n: usize) -> (impl Future<Output = ()>, impl Future<Output = ()>) {
    let (to_pong, mut pong_rx) = mpsc::unbounded::<usize>();
    let (to_ping, mut ping_rx) = mpsc::unbounded::<usize>();
    let ping = async move {
        for i in 0..n {
            if to_pong.unbounded_send(i).is_err() {
                break;
            }
            black_box(ping_rx.next().await);
        }
    };
    let pong = async move {
        while let Some(i) = pong_rx.next().await {
            if to_ping.unbounded_send(i).is_err() {
                break;
            }
        }
    };
    (ping, pong)
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio current-thread runtime")
}

/// One benchmark group with all four executors running `spawn_all` then to completion.
fn compare<F, Fut>(c: &mut Criterion, name: &str, make: F)
where
    F: Fn() -> Fut + Copy,
    Fut: Future<Output = ()> + 'static,
{
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(N as u64));

    let ordo = ordo_executor::Executor::new();
    group.bench_function("ordo", |b| {
        b.iter(|| {
            for _ in 0..N {
                drop(ordo.spawn(make()));
            }
            ordo.run_until_stalled();
        })
    });

    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    group.bench_function("futures_LocalPool", |b| {
        b.iter(|| {
            for _ in 0..N {
                spawner
                    .spawn_local(make())
                    .expect("LocalPool accepts tasks");
            }
            pool.run();
        })
    });

    let local_ex = async_executor::LocalExecutor::new();
    group.bench_function("async_executor_LocalExecutor", |b| {
        b.iter(|| {
            for _ in 0..N {
                local_ex.spawn(make()).detach();
            }
            while local_ex.try_tick() {}
        })
    });

    let rt = tokio_runtime();
    group.bench_function("tokio_LocalSet", |b| {
        b.iter(|| {
            let local = tokio::task::LocalSet::new();
            for _ in 0..N {
                drop(local.spawn_local(make()));
            }
            rt.block_on(local);
        })
    });
    group.finish();
}

fn spawn_complete(c: &mut Criterion) {
    compare(c, "spawn_complete_10k", trivial);
}

fn spawn_yield(c: &mut Criterion) {
    compare(c, "spawn_yield_10k", yield_once);
}

fn ping_pong_10k(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping_pong_10k");
    group.throughput(Throughput::Elements(N as u64));

    let ordo = ordo_executor::Executor::new();
    group.bench_function("ordo", |b| {
        b.iter(|| {
            let (ping, pong) = ping_pong(N);
            drop(ordo.spawn(ping));
            drop(ordo.spawn(pong));
            ordo.run_until_stalled();
        })
    });

    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    group.bench_function("futures_LocalPool", |b| {
        b.iter(|| {
            let (ping, pong) = ping_pong(N);
            spawner.spawn_local(ping).expect("LocalPool accepts tasks");
            spawner.spawn_local(pong).expect("LocalPool accepts tasks");
            pool.run();
        })
    });

    let local_ex = async_executor::LocalExecutor::new();
    group.bench_function("async_executor_LocalExecutor", |b| {
        b.iter(|| {
            let (ping, pong) = ping_pong(N);
            local_ex.spawn(ping).detach();
            local_ex.spawn(pong).detach();
            while local_ex.try_tick() {}
        })
    });

    let rt = tokio_runtime();
    group.bench_function("tokio_LocalSet", |b| {
        b.iter(|| {
            let (ping, pong) = ping_pong(N);
            let local = tokio::task::LocalSet::new();
            drop(local.spawn_local(ping));
            drop(local.spawn_local(pong));
            rt.block_on(local);
        })
    });
    group.finish();
}

mod group {
    // criterion_group! makes an undocumented `pub fn`.
    #![allow(missing_docs)]
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
        targets = spawn_complete, spawn_yield, ping_pong_10k
    }
}
criterion_main!(group::benches);
