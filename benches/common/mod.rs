//! What the runtime benches share: journal folders on the repository's disk, and a
//! journal of finished workflows to list or collect.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ordo::journal::{Batch, Completion, Outcome, SledJournal, Status, Store, WorkflowRecord};
use ordo::{Ctx, Durability};

/// `n` sequential steps, each returning its index: the benches' sequential workflow.
pub async fn sequential(ctx: Ctx, n: u64) -> Result<u64, ()> {
    let mut sum = 0;
    for i in 0..n {
        sum += ctx
            .step("s", move || async move { Ok::<u64, ()>(i) })
            .await?;
    }
    Ok(sum)
}

/// Steps a [`gathered`] workflow runs at once in each round (64: the batch size the
/// PostgreSQL bench compares with pgbench's 64-row transactions).
pub const GATHER: u64 = 64;

/// `rounds` rounds of [`GATHER`] steps at once in a `join_all`: the benches' gathered
/// workflow.
pub async fn gathered(ctx: Ctx, rounds: u64) -> Result<u64, ()> {
    let mut sum = 0;
    for _ in 0..rounds {
        let steps = (0..GATHER).map(|i| ctx.step("c", move || async move { Ok::<u64, ()>(i) }));
        for value in futures::future::join_all(steps).await {
            sum += value?;
        }
    }
    Ok(sum)
}

/// A fresh folder under cargo's target tmpdir (the repository's disk, not tmpfs).
pub fn bench_dir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// A journal in `dir` of `workflows` succeeded workflows (`done-000000`...) with two
/// completions each, written through the journal directly, last updated long ago.
pub fn finished_journal(dir: &Path, workflows: u64) {
    finished_journal_in_tiers(dir, workflows, 1);
}

/// [`finished_journal`] in `tiers` consecutive id ranges of equal size, the workflows of
/// tier `t` last updated at [`tier_updated_ms`]`(t)`: a gc with the cutoff
/// `tier_updated_ms(t) + 500` deletes tiers `0..=t`.
pub fn finished_journal_in_tiers(dir: &Path, workflows: u64, tiers: u64) {
    let journal = SledJournal::open(dir, Durability::None).unwrap();
    let mut batch = Batch::new();
    for first in (0..workflows).step_by(1000) {
        batch.clear();
        for n in first..(first + 1000).min(workflows) {
            let id = format!("done-{n:06}");
            let mut record = WorkflowRecord::new(&id, "job", vec![0; 16], 1_000);
            record.updated_ms = tier_updated_ms(n * tiers / workflows);
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

/// When the workflows of tier `tier` of [`finished_journal_in_tiers`] were last
/// updated, in milliseconds since the UNIX epoch: seconds apart, all long ago.
pub fn tier_updated_ms(tier: u64) -> u64 {
    1_000 + tier * 1_000
}

/// Copies the regular files and folders of `from` into `to` (a socket left by a
/// runtime is skipped).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
