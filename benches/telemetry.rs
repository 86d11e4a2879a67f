//! What tracing and metrics cost (issue 13): the same workflow of 100 sequential steps
//! on a `Durability::None` journal, in one run, with telemetry disabled and enabled.
//!
//! - `telemetry/disabled`: no `tracing` subscriber, no `metrics` recorder.
//! - `telemetry/enabled_noop`: a subscriber that is interested in every span and event
//!   and does nothing with them, and `metrics`' no-op recorder: what ordo itself spends
//!   on building spans, fields and metric keys. Target: under 10% below `disabled`.
//! - `telemetry/enabled_registry`: `tracing-subscriber`'s registry (the span store every
//!   layered subscriber sits on) and the no-op recorder, for reference.
//!
//! - `telemetry/paired` (printed, not a criterion entry): disabled and `enabled_noop`
//!   alternating workflow by workflow on one runtime, so a busy machine slows both
//!   alike; it prints their ns per step and the overhead.
//!
//! Subscribers and recorder are installed for this thread only (`with_default`,
//! `with_local_recorder`), so all run side by side in one process.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::sequential;
use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ordo::{Durability, Runtime};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Metadata, Subscriber};

const STEPS: u64 = 100;

/// Interested in everything, keeps nothing.
struct Noop;

impl Subscriber for Noop {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// A runtime on a fresh `None` journal.
fn runtime(dir: &tempfile::TempDir, name: &str) -> Runtime {
    Runtime::builder()
        .path(dir.path().join(name))
        .durability(Durability::None)
        .register("sequential", sequential)
        .build()
        .unwrap()
}

/// Runs one workflow of [`STEPS`] steps under a fresh id.
fn run_one(rt: &Runtime, next_id: &Cell<u64>) {
    let id = next_id.get();
    next_id.set(id + 1);
    let handle = rt
        .start::<_, u64, ()>("sequential", &format!("w{id}"), STEPS)
        .unwrap();
    let sum = rt.block_on(handle.result()).unwrap().unwrap();
    assert_eq!(sum, STEPS * (STEPS - 1) / 2);
}

fn telemetry(c: &mut Criterion) {
    let mut group = c.benchmark_group("telemetry");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(20);
    group.throughput(Throughput::Elements(STEPS));

    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(base).unwrap();
    let next_id = Cell::new(0u64);

    // First, before any subscriber exists in the process: the true disabled path.
    let rt = runtime(&dir, "disabled");
    group.bench_function("disabled", |b| b.iter(|| run_one(&rt, &next_id)));

    let recorder = metrics::NoopRecorder;
    let noop = Dispatch::new(Noop);
    let rt = runtime(&dir, "enabled_noop");
    metrics::with_local_recorder(&recorder, || {
        tracing::dispatcher::with_default(&noop, || {
            group.bench_function("enabled_noop", |b| b.iter(|| run_one(&rt, &next_id)));
        });
    });
    let registry = Dispatch::new(tracing_subscriber::registry());
    let rt = runtime(&dir, "enabled_registry");
    metrics::with_local_recorder(&recorder, || {
        tracing::dispatcher::with_default(&registry, || {
            group.bench_function("enabled_registry", |b| b.iter(|| run_one(&rt, &next_id)));
        });
    });
    group.finish();

    // Paired: the same runtime alternating disabled and enabled workflow by workflow,
    // so a busy machine slows both alike; the ratio is the overhead. (Once a subscriber
    // exists, disabled callsites are checked per call rather than cached as never, so
    // this slightly understates the overhead.)
    let rt = runtime(&dir, "paired");
    let (mut disabled, mut enabled) = (Duration::ZERO, Duration::ZERO);
    let rounds = 1_000;
    for _ in 0..rounds {
        let began = Instant::now();
        run_one(&rt, &next_id);
        disabled += began.elapsed();
        let began = Instant::now();
        metrics::with_local_recorder(&recorder, || {
            tracing::dispatcher::with_default(&noop, || run_one(&rt, &next_id));
        });
        enabled += began.elapsed();
    }
    let per_step = |total: Duration| total.as_secs_f64() * 1e9 / (rounds * STEPS) as f64;
    println!(
        "telemetry/paired ({rounds} workflows each, alternating): disabled {:.0} ns/step, \
         enabled_noop {:.0} ns/step, overhead {:+.1}%",
        per_step(disabled),
        per_step(enabled),
        (enabled.as_secs_f64() / disabled.as_secs_f64() - 1.0) * 100.0
    );
}

mod group {
    #![allow(missing_docs)]
    // criterion_group! makes an undocumented `pub fn`.
    use super::*;
    criterion_group!(benches, telemetry);
}
criterion_main!(group::benches);
