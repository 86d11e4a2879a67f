//! Retention's speed (issue 11): `Runtime::gc` of 100,000 finished workflows, each
//! with its record, its status-index entry and one run of two completions; throughput
//! is workflows deleted per second. Each iteration works on a fresh copy of one
//! journal built once (the copy and the runtime's open are outside the timing).
//!
//! - `gc/100k_finished_sync`: `Durability::Sync`, the default (one `fdatasync` per
//!   commit of `GC_BATCH` workflows).
//! - `gc/100k_finished_none`: no durability point, what the deletion itself costs.
//!
//! Journals live under cargo's target tmpdir: the repository's disk, not tmpfs.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ordo::{Durability, Runtime};

const WORKFLOWS: u64 = 100_000;

fn gc(c: &mut Criterion) {
    let base = common::bench_dir();
    let template_dir = base.path().join("template");
    common::finished_journal(&template_dir, WORKFLOWS);

    let mut group = c.benchmark_group("gc");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(10);
    group.throughput(Throughput::Elements(WORKFLOWS));
    for (label, durability) in [("sync", Durability::Sync), ("none", Durability::None)] {
        group.bench_function(format!("100k_finished_{label}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = common::bench_dir();
                    common::copy_dir(&template_dir, dir.path());
                    let rt = Runtime::builder()
                        .path(dir.path())
                        .durability(durability)
                        .build()
                        .unwrap();
                    let start = Instant::now();
                    let report = rt.gc(Duration::ZERO).unwrap();
                    total += start.elapsed();
                    assert_eq!(report.deleted, WORKFLOWS);
                    assert!(rt.journal().workflows(None).unwrap().is_empty());
                }
                total
            });
        });
    }
    group.finish();
}

mod group {
    // criterion_group! makes an undocumented `pub fn`.
    #![allow(missing_docs)]
    use super::*;

    criterion_group!(benches, gc);
}
criterion_main!(group::benches);
