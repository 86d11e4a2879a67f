//! Journal commits against the disk's own limit, side by side in one run.
//!
//! - `commit/raw_fdatasync`: append 64 bytes to a file and `fdatasync` it, the floor for
//!   any durable commit on this filesystem.
//! - `commit/<mode>/<n>`: one [`Store::commit`] of `n` completions (64-byte outcomes,
//!   spread over up to 16 workflows) with each [`Durability`]; throughput is completions.
//! - `read/completions`: reading back one workflow's 10,000 completions.
//!
//! Everything lives under cargo's target tmpdir: the repository's filesystem, not tmpfs.
#![allow(missing_docs, clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ordo_journal::{Batch, Completion, Durability, Outcome, SledJournal, Store};

fn bench_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn completion(seq: u64) -> Completion {
    Completion {
        seq,
        step_id: seq,
        name: "charge".into(),
        outcome: Outcome::Ok(vec![0x5a; 64]),
        attempts: 1,
        started_ms: 1_700_000_000_000,
        ended_ms: 1_700_000_000_001,
    }
}

fn commits(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(10);

    let dir = bench_dir();
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_fdatasync", |b| {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("raw"))
            .unwrap();
        let record = [0x5a_u8; 64];
        b.iter(|| {
            file.write_all(&record).unwrap();
            file.sync_data().unwrap();
        });
    });

    for (mode, durability) in [
        ("sync", Durability::Sync),
        ("flush", Durability::Flush),
        ("none", Durability::None),
    ] {
        for size in [1_u64, 16, 256] {
            let journal =
                SledJournal::open(dir.path().join(format!("{mode}-{size}")), durability).unwrap();
            let ids: Vec<String> = (0..16).map(|w| format!("workflow-{w:04}")).collect();
            let mut batch = Batch::new();
            let mut next_seq = 0_u64;
            group.throughput(Throughput::Elements(size));
            group.bench_function(BenchmarkId::new(mode, size), |b| {
                b.iter(|| {
                    batch.clear();
                    for i in 0..size {
                        batch.push_completion(
                            &ids[(i % 16) as usize],
                            completion(next_seq + i / 16),
                        );
                    }
                    next_seq += size.div_ceil(16);
                    journal.commit(&batch).unwrap();
                });
            });
        }
    }
    group.finish();
}

/// Reading back a workflow's 10,000 completions, as one commit wrote them (one run) and
/// as a sequential workflow writes them: one commit, so one run, per step.
fn read_back(c: &mut Criterion) {
    const STEPS: u64 = 10_000;
    let journal = SledJournal::temporary().unwrap();
    let mut batch = Batch::new();
    for seq in 0..STEPS {
        batch.push_completion("one-batch", completion(seq));
    }
    journal.commit(&batch).unwrap();
    for seq in 0..STEPS {
        let mut batch = Batch::new();
        batch.push_completion("one-per-step", completion(seq));
        journal.commit(&batch).unwrap();
    }

    let mut group = c.benchmark_group("read");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(10);
    group.throughput(Throughput::Elements(STEPS));
    for id in ["one-batch", "one-per-step"] {
        group.bench_function(BenchmarkId::new("completions", id), |b| {
            b.iter(|| {
                let read = journal.completions(id).unwrap();
                assert_eq!(read.len(), STEPS as usize);
                read
            });
        });
    }
    group.finish();
}

criterion_group!(benches, commits, read_back);
criterion_main!(benches);
