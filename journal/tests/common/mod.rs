//! Helpers shared by the journal's integration tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::process::Command;

use ordo_journal::{Completion, Durability, Outcome, SledJournal, Status, Store, WorkflowRecord};

/// A completion whose fields all derive from `seq`, so a read-back can be checked exactly.
pub fn completion(seq: u64) -> Completion {
    Completion {
        seq,
        step_id: seq * 3 + 1,
        name: format!("step-{seq}"),
        outcome: if seq % 2 == 0 {
            Outcome::Ok(seq.to_le_bytes().to_vec())
        } else {
            Outcome::Err(format!("error {seq}").into_bytes())
        },
        attempts: (seq % 5) as u32 + 1,
        started_ms: 1_700_000_000_000 + seq,
        ended_ms: 1_700_000_000_100 + seq,
    }
}

/// A new journal in a temporary folder, `Durability::Flush`: the folder (removed when
/// dropped), the journal's path in it, and the journal.
pub fn flush_journal() -> (tempfile::TempDir, std::path::PathBuf, SledJournal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    (dir, path, journal)
}

/// The ids of the workflows `journal` lists with `status` (all if `None`), in order.
pub fn ids(journal: &SledJournal, status: Option<Status>) -> Vec<String> {
    journal
        .workflows(status)
        .unwrap()
        .into_iter()
        .map(|rec| rec.id)
        .collect()
}

/// A workflow record with the given status and an output that matches it.
pub fn workflow(id: &str, status: Status) -> WorkflowRecord {
    WorkflowRecord {
        id: id.to_owned(),
        name: "checkout".to_owned(),
        input: format!("input of {id}").into_bytes(),
        status,
        output: match status {
            Status::Pending | Status::Enqueued | Status::Delayed => None,
            Status::Succeeded => Some(Outcome::Ok(b"receipt".to_vec())),
            Status::Failed | Status::Cancelled => Some(Outcome::Err(b"declined".to_vec())),
        },
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_000_500,
        recovery_attempts: 2,
        app_version: Some("1.4.2".to_owned()),
        deadline_ms: Some(1_700_000_060_000),
        first_step: 12,
        keyed_tokens: true,
    }
}

/// A command that re-runs this test binary with only the (ignored) test `name`, which
/// acts as the child process when `ORDO_JOURNAL_CHILD` is set.
pub fn child(name: &str) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env("ORDO_JOURNAL_CHILD", "1");
    cmd
}

/// Whether this process is a child started by [`child`].
pub fn is_child() -> bool {
    std::env::var_os("ORDO_JOURNAL_CHILD").is_some()
}

/// The journal path and durability a parent passed to its child process
/// (`ORDO_JOURNAL_PATH`, `ORDO_JOURNAL_DURABILITY`: "sync", else `Flush`).
pub fn child_journal() -> (std::path::PathBuf, Durability) {
    let path = std::env::var_os("ORDO_JOURNAL_PATH").expect("ORDO_JOURNAL_PATH set by the parent");
    let durability = match std::env::var("ORDO_JOURNAL_DURABILITY").as_deref() {
        Ok("sync") => Durability::Sync,
        _ => Durability::Flush,
    };
    (path.into(), durability)
}

pub mod crash_fs;
pub mod strace;
