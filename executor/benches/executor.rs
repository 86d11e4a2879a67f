//! ordo's executor against `futures::executor::LocalPool`, `async_executor::LocalExecutor`
//! and tokio's current-thread runtime with a `LocalSet`, side by side in one run.
//!
//! Each benchmark is 10 000 operations per iteration (criterion reports elements/s;
//! divide the time by 10 000 for ns per operation):
//! - `spawn_complete_10k`: spawn 10 000 trivial tasks, run them all to completion;
//! - `spawn_yield_10k`: the same with tasks that yield once (same yield everywhere);
//! - `ping_pong_10k`: two tasks bounce 10 000 messages over `futures::channel::mpsc`.
//!
//! Run with `cargo bench -p ordo-executor --bench executor`. On a busy machine prefer
//! the `compare` bench, which interleaves the executors and reports the minimum.

mod workloads;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use workloads::{trivial, yield_once, AsyncExecutor, Ordo, Pool, Subject, Tokio, N};

fn bench_one<S: Subject>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    work: fn(&mut S),
) {
    let mut subject = S::new();
    group.bench_function(S::NAME, |b| b.iter(|| work(&mut subject)));
}

fn bench_all(c: &mut Criterion, name: &str, work: Work) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(N as u64));
    bench_one::<Ordo>(&mut group, work.ordo);
    bench_one::<Pool>(&mut group, work.pool);
    bench_one::<AsyncExecutor>(&mut group, work.async_executor);
    bench_one::<Tokio>(&mut group, work.tokio);
    group.finish();
}

/// One workload, monomorphised for each executor.
struct Work {
    ordo: fn(&mut Ordo),
    pool: fn(&mut Pool),
    async_executor: fn(&mut AsyncExecutor),
    tokio: fn(&mut Tokio),
}

macro_rules! work {
    ($body:expr) => {
        Work {
            ordo: |s| $body(s),
            pool: |s| $body(s),
            async_executor: |s| $body(s),
            tokio: |s| $body(s),
        }
    };
}

fn spawn_complete(c: &mut Criterion) {
    bench_all(
        c,
        "spawn_complete_10k",
        work!(|s: &mut dyn SpawnN| s.spawn_trivial()),
    );
}

fn spawn_yield(c: &mut Criterion) {
    bench_all(
        c,
        "spawn_yield_10k",
        work!(|s: &mut dyn SpawnN| s.spawn_yielding()),
    );
}

fn ping_pong(c: &mut Criterion) {
    bench_all(
        c,
        "ping_pong_10k",
        work!(|s: &mut dyn SpawnN| s.ping_pong()),
    );
}

/// Object-safe view of a `Subject`, so one closure serves all four executors.
trait SpawnN {
    fn spawn_trivial(&mut self);
    fn spawn_yielding(&mut self);
    fn ping_pong(&mut self);
}

impl<S: Subject> SpawnN for S {
    fn spawn_trivial(&mut self) {
        self.spawn_n(trivial);
    }
    fn spawn_yielding(&mut self) {
        self.spawn_n(yield_once);
    }
    fn ping_pong(&mut self) {
        self.ping_pong_n();
    }
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
        targets = spawn_complete, spawn_yield, ping_pong
    }
}
criterion_main!(group::benches);
