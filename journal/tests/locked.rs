//! A journal held by one process is refused to another runtime with an error naming the
//! path, while a reader (`open_existing`, the CLI's way in) still reads it.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use ordo_journal::{Batch, Durability, Error, SledJournal, Store, WorkflowRecord};

/// Runs `locked_child` against `path` and returns its `RESULT:` lines.
fn child_results(path: &Path) -> Vec<String> {
    let out = common::child("locked_child")
        .env("ORDO_JOURNAL_PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.split_once("RESULT: ").map(|(_, r)| r))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        results.len(),
        2,
        "child output:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    results
}

#[test]
fn a_second_process_gets_locked_naming_the_path_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let held = SledJournal::open(&path, Durability::Flush).unwrap();
    let mut batch = Batch::new();
    batch.put_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
    held.commit(&batch).unwrap();

    let expected = format!(
        "locked: journal at {} is held by another process (sled's exclusive file lock); \
         stop that process or open another path",
        path.display()
    );
    // The reader neither waits for the lock nor takes it: it reads a private copy.
    assert_eq!(
        child_results(&path),
        [expected, "opened: 1 workflows".into()]
    );

    drop(held);
    assert_eq!(
        child_results(&path),
        ["opened: 1 workflows", "opened: 1 workflows"]
    );
}

/// The child: opens the journal both ways and reports what happened.
#[test]
#[ignore = "child process of a_second_process_gets_locked_naming_the_path_until_the_first_closes"]
fn locked_child() {
    if !common::is_child() {
        return;
    }
    let path = std::env::var_os("ORDO_JOURNAL_PATH").unwrap();
    let report = |result: Result<SledJournal, Error>| match result {
        Ok(journal) => println!(
            "RESULT: opened: {} workflows",
            journal.workflows(None).unwrap().len()
        ),
        Err(err @ Error::Locked { .. }) => println!("RESULT: locked: {err}"),
        Err(other) => println!("RESULT: unexpected: {other:?}"),
    };
    report(SledJournal::open(&path, Durability::Sync));
    report(SledJournal::open_existing(&path));
}

/// A seal slot (`magic | generation | commits | crc32 | 0`) saying `commits` commits
/// were acknowledged.
fn seal_slot(generation: u64, commits: u64) -> [u8; 32] {
    let mut slot = [0u8; 32];
    slot[..8].copy_from_slice(b"ordoseal");
    slot[8..16].copy_from_slice(&generation.to_le_bytes());
    slot[16..24].copy_from_slice(&commits.to_le_bytes());
    let crc = crc32fast::hash(&slot[..24]);
    slot[24..28].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// While a process holds the journal, a copy that fails the check is what is torn (the
/// holder opened, and so checked, the journal): the reader reports the journal busy,
/// never damaged with advice to move it aside. Once nobody holds it, the same files are
/// reported damaged, which they are.
#[test]
fn a_reader_never_calls_a_held_journal_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let held = SledJournal::open(&path, Durability::Flush).unwrap();
    let mut batch = Batch::new();
    batch.put_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
    held.commit(&batch).unwrap();
    // Every copy now fails the check: its seal counts commits its log does not hold,
    // as a copy whose log was caught mid-write does.
    let mut seal = Vec::new();
    seal.extend_from_slice(&seal_slot(100, 1_000));
    seal.extend_from_slice(&seal_slot(99, 999));
    std::fs::write(path.join("ordo.seal"), &seal).unwrap();
    match SledJournal::open_existing(&path) {
        Err(err @ Error::Busy { .. }) => {
            assert!(
                err.to_string().contains("in use by a running process"),
                "{err}"
            );
        }
        other => panic!("expected Busy while held, got {:?}", other.map(|_| ())),
    }
    drop(held);
    // The holder's next seal write would have fixed nothing: the files are as left.
    std::fs::write(path.join("ordo.seal"), &seal).unwrap();
    assert!(matches!(
        SledJournal::open_existing(&path),
        Err(Error::Damaged { .. })
    ));
}
