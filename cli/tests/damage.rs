//! A damaged quickstart journal is detected, never silently repaired. For a finished
//! and for a pending (crashed) journal, bytes are flipped, zeroed and truncated at many
//! offsets of every file in the folder. Each case ends either in the uninterrupted
//! run's receipt with no recorded step executed again, or in a typed error that names
//! the damage (exit 5 for the CLI); every file is byte-identical after a CLI call, and
//! after a refused start.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{files, ordo, restore, run_quickstart, text};

/// The receipt lines of a quickstart run.
fn receipt(stdout: &str) -> Vec<String> {
    let lines: Vec<&str> = stdout.lines().collect();
    let Some(at) = lines.iter().position(|l| l.starts_with("receipt: ")) else {
        return Vec::new();
    };
    lines[at..(at + 3).min(lines.len())]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Step ids the quickstart printed as executed (not replayed).
fn executed(stdout: &str) -> BTreeSet<u64> {
    stdout
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("executed")?;
            rest.split_whitespace().nth(1)?.parse().ok()
        })
        .collect()
}

/// The step ids the journal in `dir` has recorded for order-42.
fn recorded(dir: &Path) -> BTreeSet<u64> {
    let journal = ordo::journal::SledJournal::open_existing(dir).expect("journal reads");
    ordo::journal::Store::completions(&journal, "order-42")
        .expect("completions")
        .iter()
        .map(|c| c.step_id)
        .collect()
}

/// Offsets to damage in a file of `len` bytes: evenly spread, ends included.
fn offsets(len: usize, count: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let mut out: Vec<usize> = (0..count).map(|i| i * len / count).collect();
    out.push(len - 1);
    out.dedup();
    out
}

fn check_every_damage(crash_after: Option<u64>, per_file: usize) {
    let base = tempfile::tempdir().expect("temp dir");
    let reference = base.path().join("reference");
    // The uninterrupted run's receipt.
    let clean = run_quickstart(&reference);
    assert!(clean.status.success(), "{}", text(&clean.stderr));
    let expected = receipt(&text(&clean.stdout));
    assert_eq!(expected.len(), 3, "{}", text(&clean.stdout));

    let data = base.path().join("journal");
    let mut cmd = std::process::Command::new(common::quickstart_exe());
    cmd.arg("--data").arg(&data);
    if let Some(n) = crash_after {
        cmd.arg("--crash-after").arg(n.to_string());
    }
    let first = cmd.output().expect("run the quickstart");
    assert_eq!(first.status.success(), crash_after.is_none());
    let pristine = files(&data);
    let recorded_before = recorded(&data);
    assert!(!recorded_before.is_empty());
    assert!(files(&data) == pristine, "reading the journal changed it");

    let (mut detected, mut harmless) = (0, 0);
    let names: Vec<PathBuf> = pristine.keys().cloned().collect();
    for name in &names {
        let len = pristine[name].len();
        for at in offsets(len, if len <= 64 { 4 } else { per_file }) {
            for kind in ["flip", "zero", "truncate"] {
                let mut damaged = pristine.clone();
                let bytes = damaged.get_mut(name).expect("file");
                match kind {
                    "flip" => bytes[at] ^= 0x04,
                    "zero" => bytes[at..(at + 64).min(len)].fill(0),
                    _ => bytes.truncate(at),
                }
                if damaged == pristine {
                    continue; // zeroing zeros
                }
                restore(&data, &damaged);
                let case = format!("{kind} at {at} of {}", name.display());

                // The CLI: a listing, or exit 5 with one line; never a changed byte.
                let path = data.to_str().expect("utf-8");
                let cli = ordo(&["list", "--data", path]);
                match cli.status.code() {
                    Some(0) => {}
                    Some(5) => {
                        let err = text(&cli.stderr);
                        assert_eq!(err.lines().count(), 1, "{case}: {err}");
                        assert!(err.starts_with("ordo: "), "{case}: {err}");
                    }
                    other => panic!("{case}: ordo list exited {other:?}: {}", text(&cli.stderr)),
                }
                assert!(
                    files(&data) == damaged,
                    "{case}: the CLI changed the journal"
                );

                // The program: the same receipt with nothing recorded run again, or a
                // refusal that leaves the files as they were.
                let run = run_quickstart(&data);
                let stdout = text(&run.stdout);
                if run.status.success() {
                    assert_eq!(receipt(&stdout), expected, "{case}: {stdout}");
                    let again: Vec<_> = executed(&stdout)
                        .intersection(&recorded_before)
                        .copied()
                        .collect();
                    assert!(
                        again.is_empty(),
                        "{case}: recorded steps {again:?} ran again: {stdout}"
                    );
                    harmless += 1;
                } else {
                    let err = text(&run.stderr);
                    assert!(
                        err.contains("is damaged") || err.contains("corrupt journal record"),
                        "{case}: not a typed damage error: {err}"
                    );
                    assert!(executed(&stdout).is_empty(), "{case}: ran steps: {stdout}");
                    assert!(
                        files(&data) == damaged,
                        "{case}: a refused start changed the files"
                    );
                    detected += 1;
                }
            }
        }
    }
    assert!(detected > 5, "detected {detected}, harmless {harmless}");
}

#[test]
fn a_damaged_finished_journal_never_charges_twice() {
    check_every_damage(None, 10);
}

#[test]
fn a_damaged_pending_journal_resumes_exactly_or_is_refused() {
    check_every_damage(Some(3), 5);
}
