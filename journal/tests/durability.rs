//! `Durability::Sync` really calls `fdatasync` on sled's data file in every commit, after
//! the log writes of that commit and before the commit returns; `Flush` never does (sled's
//! own flush only calls `sync_file_range`). Observed with strace, which must be installed:
//! without it these tests fail.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::completion;
use common::strace::{self, Call, Event};
use ordo_journal::{Batch, SledJournal, Store};

const COMMITS: u64 = 20;

/// Runs `durability_child` under strace: its events and the journal's `db` path.
fn traced(mode: &str, dir: &Path) -> (Vec<Event>, std::path::PathBuf) {
    let base = dir.canonicalize().unwrap();
    let journal = base.join("journal");
    let mut child = common::child("durability_child");
    child
        .env("ORDO_JOURNAL_PATH", &journal)
        .env("ORDO_JOURNAL_DURABILITY", mode);
    let run = strace::run(&child, &base.join("trace"));
    (run.events, journal.join("db"))
}

/// The trace lines where the child printed `ACK <n>`, in order.
fn acks(events: &[Event]) -> Vec<usize> {
    events
        .iter()
        .filter(
            |e| matches!(&e.call, Call::Stdout(bytes) if bytes.windows(4).any(|w| w == b"ACK ")),
        )
        .map(|e| e.start)
        .collect()
}

#[test]
fn sync_fdatasyncs_the_log_after_each_commits_writes_and_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (events, db) = traced("sync", dir.path());
    let acks = acks(&events);
    assert_eq!(acks.len() as u64, COMMITS, "one acknowledgement per commit");
    let mut window_start = 0;
    for (n, &ack) in acks.iter().enumerate() {
        let window: Vec<&Event> = events
            .iter()
            .filter(|e| e.start > window_start && e.start < ack)
            .collect();
        let last_write = window
            .iter()
            .filter(|e| matches!(&e.call, Call::Write { path, .. } if *path == db))
            .map(|e| e.end)
            .max();
        let last_write =
            last_write.unwrap_or_else(|| panic!("commit {n} wrote nothing to the log"));
        // A sync covers the writes that returned before it was entered, and counts once it
        // returned before the acknowledgement.
        let covering = window.iter().any(|e| {
            matches!(&e.call, Call::Sync { path, data_only: true } if *path == db)
                && e.start > last_write
                && e.end < ack
        });
        assert!(
            covering,
            "commit {n}: no fdatasync of {} after its last log write (trace line {last_write}) \
             and before its acknowledgement (line {ack})",
            db.display()
        );
        window_start = ack;
    }
}

#[test]
fn flush_never_fsyncs_the_log_but_sled_writes_it_out_before_each_commit_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (events, db) = traced("flush", dir.path());
    let acks = acks(&events);
    assert_eq!(acks.len() as u64, COMMITS, "one acknowledgement per commit");
    // From the first commit to the last acknowledgement (sled syncs once more when the
    // child drops the journal).
    let (first_commit, last_ack) = (acks[0], acks[acks.len() - 1]);
    let syncs = events
        .iter()
        .filter(|e| {
            e.start > first_commit
                && e.end < last_ack
                && matches!(&e.call, Call::Sync { path, .. } if *path == db)
        })
        .count();
    assert_eq!(
        syncs, 0,
        "Flush must not fsync the log, nor let sled's flusher do it"
    );
    let mut window_start = 0;
    for (n, &ack) in acks.iter().enumerate() {
        let ranges = events
            .iter()
            .filter(|e| e.start > window_start && e.end < ack)
            .filter(|e| matches!(&e.call, Call::SyncRange { path } if *path == db))
            .count();
        assert!(
            ranges > 0,
            "commit {n}: sled's flush did not write the log out"
        );
        window_start = ack;
    }
}

/// The child: `COMMITS` commits of one completion each, printing `ACK <n>` after each.
#[test]
#[ignore = "child process of the strace durability tests"]
fn durability_child() {
    if !common::is_child() {
        return;
    }
    let (path, durability) = common::child_journal();
    let journal = SledJournal::open(&path, durability).unwrap();
    let mut batch = Batch::new();
    for seq in 0..COMMITS {
        batch.clear();
        batch.push_completion("w", completion(seq));
        journal.commit(&batch).unwrap();
        println!("ACK {seq}");
    }
}
