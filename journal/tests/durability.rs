//! `Durability::Sync` really calls `fdatasync` on sled's data file, once per commit, and
//! `Flush` does not (sled's own flush only calls `sync_file_range`). Observed with strace.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::completion;
use ordo_journal::{Batch, SledJournal, Store};

const COMMITS: usize = 20;

/// Runs `durability_child` under strace and returns (fdatasync calls on `<dir>/db`,
/// sync_file_range calls on it), or `None` if strace cannot run here.
fn traced_syncs(mode: &str) -> Option<(usize, usize)> {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let child = common::child("durability_child");
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-y",
        "-e",
        "trace=fdatasync,fsync,sync_file_range",
        "-o",
    ])
    .arg(&trace)
    .arg(child.get_program())
    .args(child.get_args())
    .env("ORDO_JOURNAL_CHILD", "1")
    .env("ORDO_JOURNAL_PATH", dir.path().join("journal"))
    .env("ORDO_JOURNAL_DURABILITY", mode);
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "strace could not run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("COMMITTED"),
        "the child did not commit"
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let on_db = |call: &str| {
        trace
            .lines()
            .filter(|l| l.contains(call) && l.contains("/journal/db>"))
            .count()
    };
    Some((on_db("fdatasync("), on_db("sync_file_range(")))
}

#[test]
fn sync_fdatasyncs_the_data_file_once_per_commit_and_flush_never_does() {
    let Some((sync_fdatasyncs, sync_ranges)) = traced_syncs("sync") else {
        eprintln!("skipped: strace not available");
        return;
    };
    assert_eq!(sync_fdatasyncs, COMMITS, "one fdatasync per Sync commit");
    assert!(
        sync_ranges >= COMMITS,
        "sled's flush ran sync_file_range {sync_ranges} times"
    );

    let (flush_fdatasyncs, flush_ranges) = traced_syncs("flush").unwrap();
    assert_eq!(flush_fdatasyncs, 0, "Flush must not fdatasync");
    assert!(
        flush_ranges >= COMMITS,
        "sled's flush ran sync_file_range {flush_ranges} times"
    );
}

/// The child: `COMMITS` commits of one completion each.
#[test]
#[ignore = "child process of the strace durability test"]
fn durability_child() {
    if !common::is_child() {
        return;
    }
    let (path, durability) = common::child_journal();
    let journal = SledJournal::open(&path, durability).unwrap();
    let mut batch = Batch::new();
    for seq in 0..COMMITS as u64 {
        batch.clear();
        batch.push_completion("w", completion(seq));
        journal.commit(&batch).unwrap();
    }
    println!("COMMITTED");
}
