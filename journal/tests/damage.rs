//! A damaged journal is detected, never silently repaired: one flipped, zeroed or
//! truncated byte anywhere in the journal folder either leaves every acknowledged record
//! readable and exact, or opening fails with a typed error, and the files stay byte for
//! byte as they were (sled's own recovery would zero what it takes for a torn tail).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{completion, workflow};
use ordo_journal::{Batch, Durability, Error, SledJournal, Status, Store};

const WORKFLOWS: u64 = 6;
const COMMITS_PER_WORKFLOW: u64 = 8;

/// Writes the reference journal: each workflow gets its record, then one commit per
/// completion; half of them finish.
fn write_journal(path: &Path) {
    let journal = SledJournal::open(path, Durability::Flush).unwrap();
    for w in 0..WORKFLOWS {
        let mut batch = Batch::new();
        batch.put_workflow(workflow(&format!("w{w}"), Status::Pending));
        journal.commit(&batch).unwrap();
    }
    for seq in 0..COMMITS_PER_WORKFLOW {
        for w in 0..WORKFLOWS {
            let mut batch = Batch::new();
            batch.push_completion(&format!("w{w}"), completion(seq));
            journal.commit(&batch).unwrap();
        }
    }
    for w in (0..WORKFLOWS).step_by(2) {
        let mut batch = Batch::new();
        batch.put_workflow(workflow(&format!("w{w}"), Status::Succeeded));
        journal.commit(&batch).unwrap();
    }
}

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

fn restore(dir: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) {
    let _ = std::fs::remove_dir_all(dir);
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Checks that `journal` holds exactly what `write_journal` acknowledged.
fn holds_everything(journal: &SledJournal) -> Result<(), String> {
    for w in 0..WORKFLOWS {
        let id = format!("w{w}");
        let status = if w % 2 == 0 {
            Status::Succeeded
        } else {
            Status::Pending
        };
        let record = journal.workflow(&id).map_err(|e| e.to_string())?;
        if record != Some(workflow(&id, status)) {
            return Err(format!("{id}: record {record:?}"));
        }
        let completions = journal.completions(&id).map_err(|e| e.to_string())?;
        let expected: Vec<_> = (0..COMMITS_PER_WORKFLOW).map(completion).collect();
        if completions != expected {
            return Err(format!("{id}: {} completions differ", completions.len()));
        }
    }
    Ok(())
}

enum Damage {
    Flip(usize),
    Zero(usize),
    Truncate(usize),
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    match *damage {
        Damage::Flip(at) => bytes[at] ^= 0x10,
        Damage::Zero(at) => {
            let end = (at + 64).min(bytes.len());
            bytes[at..end].fill(0);
        }
        Damage::Truncate(at) => bytes.truncate(at),
    }
}

/// The offsets to damage in a file of `len` bytes: the start, the end, and evenly spread
/// points in between (where sled's log records are).
fn offsets(len: usize, count: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let mut out: Vec<usize> = (0..count).map(|i| i * len / count).collect();
    out.push(len - 1);
    out.dedup();
    out
}

#[test]
fn any_damaged_byte_is_either_harmless_or_a_typed_error_and_the_files_are_kept() {
    let base = tempfile::tempdir().unwrap();
    let original = base.path().join("original");
    write_journal(&original);
    let pristine = files(&original);
    assert!(
        pristine.contains_key(Path::new("ordo.seal")),
        "{:?}",
        pristine.keys()
    );

    let work = base.path().join("work");
    let (mut harmless, mut detected) = (0, 0);
    for (name, bytes) in &pristine {
        // Every seal byte matters; sled's log is sampled.
        let count = if bytes.len() <= 64 { bytes.len() } else { 40 };
        for at in offsets(bytes.len(), count) {
            for damage in [Damage::Flip(at), Damage::Zero(at), Damage::Truncate(at)] {
                let mut damaged = pristine.clone();
                apply(damaged.get_mut(name).unwrap(), &damage);
                restore(&work, &damaged);
                let case = format!(
                    "{} at {at} of {}",
                    match damage {
                        Damage::Flip(_) => "flip",
                        Damage::Zero(_) => "zero",
                        Damage::Truncate(_) => "truncate",
                    },
                    name.display()
                );

                // The reader never changes a byte, whatever it finds.
                let read = SledJournal::open_existing(&work);
                if let Ok(journal) = &read {
                    holds_everything(journal).unwrap_or_else(|e| panic!("{case}: reader: {e}"));
                }
                drop(read);
                assert!(
                    files(&work) == damaged,
                    "{case}: open_existing changed the files"
                );

                match SledJournal::open(&work, Durability::Flush) {
                    Ok(journal) => {
                        // Opened: then nothing acknowledged may be missing or wrong.
                        holds_everything(&journal).unwrap_or_else(|e| panic!("{case}: {e}"));
                        harmless += 1;
                    }
                    Err(Error::Damaged { path, reason }) => {
                        assert_eq!(path, work, "{case}");
                        assert!(!reason.is_empty());
                        assert!(
                            files(&work) == damaged,
                            "{case}: damaged files were changed"
                        );
                        detected += 1;
                    }
                    Err(err @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => {
                        assert!(files(&work) == damaged, "{case}: {err}: files were changed");
                        detected += 1;
                    }
                    Err(other) => panic!("{case}: untyped failure {other:?}"),
                }
            }
        }
    }
    // Both outcomes must really occur, or the test proves nothing.
    assert!(detected > 20, "detected {detected}, harmless {harmless}");
    assert!(harmless > 0, "detected {detected}, harmless {harmless}");
}

#[test]
fn a_lost_tail_is_reported_with_what_is_missing() {
    let base = tempfile::tempdir().unwrap();
    let path = base.path().join("j");
    write_journal(&path);
    let pristine = files(&path);
    // Replace sled's log by an empty database's: every acknowledged commit is gone.
    let fresh = base.path().join("fresh");
    drop(SledJournal::open(&fresh, Durability::Flush).unwrap());
    std::fs::copy(fresh.join("db"), path.join("db")).unwrap();
    std::fs::copy(fresh.join("conf"), path.join("conf")).unwrap();
    let before = files(&path);
    let err = SledJournal::open(&path, Durability::Sync).unwrap_err();
    let acknowledged = WORKFLOWS * (2 + COMMITS_PER_WORKFLOW) - WORKFLOWS / 2;
    assert_eq!(
        err.to_string(),
        format!(
            "journal at {} is damaged: it holds 0 commits but {acknowledged} were acknowledged: \
             the last {acknowledged} are missing. Its files were left untouched: keep a copy for \
             inspection, then restore the journal from a backup (or move it aside to start an \
             empty one)",
            path.display()
        )
    );
    assert!(files(&path) == before);

    // A missing seal beside a journal is damage too.
    restore(&path, &pristine);
    std::fs::remove_file(path.join("ordo.seal")).unwrap();
    let err = SledJournal::open(&path, Durability::Flush).unwrap_err();
    assert!(
        err.to_string().contains("its seal (ordo.seal) is missing"),
        "{err}"
    );

    // The intact journal reopens, and holds everything.
    restore(&path, &pristine);
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    holds_everything(&journal).unwrap();
}

#[test]
fn a_check_copy_left_by_a_process_that_died_is_removed_at_the_next_open() {
    let base = tempfile::tempdir().unwrap();
    let path = base.path().join("j");
    write_journal(&path);
    // What a process killed in the middle of its check leaves in the journal folder.
    let stale = path.join(".ordo-verify-999999-0");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("db"), vec![7u8; 4096]).unwrap();
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    holds_everything(&journal).unwrap();
    assert!(!stale.exists(), "the stale copy is still there");
}

#[test]
fn a_journal_without_its_token_key_is_refused_and_kept_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write_journal(&path);
    let key = SledJournal::open(&path, Durability::Flush)
        .unwrap()
        .token_key()
        .expect("a journal has a token key");
    // A copy that left the key behind: a new key would refuse every token given out.
    let key_file = path.join("ordo.token_key");
    let kept = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let before = files(&path);
    for err in [
        SledJournal::open(&path, Durability::Flush).unwrap_err(),
        SledJournal::open_existing(&path).unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::Damaged { reason, .. } if reason.contains("ordo.token_key is missing")),
            "{err:?}"
        );
    }
    assert!(files(&path) == before, "a refused open changed the files");
    // Put back, the journal opens with the key it had.
    std::fs::write(&key_file, kept).unwrap();
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert_eq!(journal.token_key(), Some(key));
    holds_everything(&journal).unwrap();
}

#[test]
fn a_new_token_key_is_readable_by_its_owner_alone_whatever_a_killed_process_left() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    std::fs::create_dir_all(&path).unwrap();
    // A half-written key file of a process killed while it drew the key, world-writable.
    let left = path.join("ordo.token_key.new");
    std::fs::write(&left, b"junk").unwrap();
    std::fs::set_permissions(&left, std::fs::Permissions::from_mode(0o666)).unwrap();
    let journal = SledJournal::open(&path, Durability::Flush).unwrap();
    assert!(journal.token_key().is_some());
    let mode = std::fs::metadata(path.join("ordo.token_key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}
