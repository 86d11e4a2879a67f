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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ordo::journal::{Batch, Completion, Outcome, SledJournal, Status, Store, WorkflowRecord};
use ordo::{Durability, Runtime};

const WORKFLOWS: u64 = 100_000;

fn bench_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// A journal of `WORKFLOWS` succeeded workflows, written through the journal directly.
fn template(dir: &Path) {
    let journal = SledJournal::open(dir, Durability::None).unwrap();
    let mut batch = Batch::new();
    for first in (0..WORKFLOWS).step_by(1000) {
        batch.clear();
        for n in first..first + 1000 {
            let id = format!("done-{n:06}");
            let mut record = WorkflowRecord::new(&id, "job", vec![0; 16], 1_000);
            record.status = Status::Succeeded;
            record.output = Some(Outcome::Ok(vec![1; 16]));
            batch.insert_workflow(record);
            for seq in 0..2 {
                batch.push_completion(
                    &id,
                    Completion {
                        seq,
                        step_id: seq,
                        name: "step".into(),
                        outcome: Outcome::Ok(vec![2; 16]),
                        attempts: 1,
                        started_ms: 1_000,
                        ended_ms: 1_001,
                    },
                );
            }
        }
        journal.commit(&batch).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn gc(c: &mut Criterion) {
    let base = bench_dir();
    let template_dir = base.path().join("template");
    template(&template_dir);

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
                    let dir = bench_dir();
                    copy_dir(&template_dir, dir.path());
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
