//! The README's demo, end to end: the quickstart killed with `--crash-after k` and run
//! again resumes the interrupted checkout, replays what was committed, executes the
//! rest, and prints the receipt of an uninterrupted run.
//!
//! Runs the `quickstart` binary that cargo builds for this package's tests
//! (`CARGO_BIN_EXE_quickstart`), so `cargo test --workspace` on a clean checkout finds
//! it up to date.

use std::path::Path;
use std::process::{Command, Output};

fn run(data: &Path, crash_after: Option<u64>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quickstart"));
    cmd.arg("--data").arg(data);
    if let Some(k) = crash_after {
        cmd.arg("--crash-after").arg(k.to_string());
    }
    cmd.output().expect("quickstart runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A run that must finish: its `(replayed, executed)` summary and its receipt lines.
fn finished(output: &Output, what: &str) -> ((u64, u64), Vec<String>) {
    let text = stdout(output);
    assert!(
        output.status.success(),
        "{what}: quickstart failed ({}):\n{text}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = text
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix("replayed ")?;
            let (replayed, rest) = rest.split_once(" steps, executed ")?;
            let executed = rest.strip_suffix(" steps")?;
            Some((replayed.parse().ok()?, executed.parse().ok()?))
        })
        .unwrap_or_else(|| {
            panic!("{what}: no `replayed R steps, executed E steps` line in:\n{text}")
        });
    let receipt: Vec<String> = text
        .lines()
        .skip_while(|line| !line.starts_with("receipt:"))
        .take(3)
        .map(str::to_string)
        .collect();
    assert_eq!(receipt.len(), 3, "{what}: no receipt in:\n{text}");
    (summary, receipt)
}

#[test]
fn quickstart_resumes_after_a_crash_at_every_committed_step() {
    let fresh_dir = tempfile::tempdir().expect("tempdir");
    let fresh = run(&fresh_dir.path().join("data"), None);
    let ((replayed, total), receipt) = finished(&fresh, "fresh run");
    assert_eq!(replayed, 0, "a fresh run replays nothing");
    assert!(
        total >= 5,
        "the checkout has reservations, a sleep, a charge, shipping: {total}"
    );
    assert!(receipt[2].contains("shipped by courier"), "{receipt:?}");

    // Running it again gives the recorded receipt without executing anything.
    let again = run(&fresh_dir.path().join("data"), None);
    let (summary, again_receipt) = finished(&again, "re-run of a finished checkout");
    assert_eq!(summary, (0, 0), "a finished workflow is not run again");
    assert_eq!(again_receipt, receipt);

    // Nothing is left to crash in a finished checkout: the quickstart says so and how
    // to start over, instead of a silent success.
    let no_crash = run(&fresh_dir.path().join("data"), Some(3));
    let (summary, _) = finished(&no_crash, "--crash-after on a finished checkout");
    assert_eq!(summary, (0, 0));
    let stderr = String::from_utf8_lossy(&no_crash.stderr);
    assert!(
        stderr.contains("--crash-after 3 did not crash: order-42 had already finished")
            && stderr.contains("rm -rf"),
        "{stderr}"
    );

    for k in 1..total {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let crashed = run(&data, Some(k));
        let text = stdout(&crashed);
        assert!(
            !crashed.status.success(),
            "--crash-after {k} must abort:\n{text}"
        );
        assert!(
            text.contains("crashing after"),
            "--crash-after {k}:\n{text}"
        );
        assert!(
            !text.contains("receipt:"),
            "--crash-after {k} finished:\n{text}"
        );

        let resumed = run(&data, None);
        let what = format!("resume after --crash-after {k}");
        let ((replayed, executed), resumed_receipt) = finished(&resumed, &what);
        assert!(
            stdout(&resumed).contains("resuming 1 interrupted workflow(s): order-42"),
            "{what}:\n{}",
            stdout(&resumed)
        );
        assert!(replayed >= k, "{what}: replayed {replayed} < {k} committed");
        assert_eq!(
            replayed + executed,
            total,
            "{what}: replayed + executed = a fresh run's steps"
        );
        assert_eq!(
            resumed_receipt, receipt,
            "{what}: the receipt of an uninterrupted run"
        );
    }
}
