//! The README's demo, end to end: `examples/quickstart.rs` killed with
//! `--crash-after k` and run again resumes the interrupted checkout, replays what was
//! committed, executes the rest, and prints the receipt of an uninterrupted run.
//!
//! Runs the example binary that `cargo test` builds next to this test
//! (`target/<profile>/examples/quickstart`) directly: invoking cargo from inside a test
//! would wait on the build-directory lock that the running `cargo test` holds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

/// The example binary built by this `cargo test` run.
fn quickstart_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/quickstart-<hash> → target/<profile>/examples/quickstart
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("quickstart{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run the whole `cargo test -p ordo` (which builds the examples) \
                 or `cargo build --examples` first",
                binary.display()
            )
        });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest_source = std::iter::once(root.join("examples/quickstart.rs"))
        .chain(
            std::fs::read_dir(root.join("src"))
                .expect("src/ readable")
                .filter_map(|e| e.ok().map(|e| e.path())),
        )
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    assert!(
        built >= newest_source,
        "{} is older than the sources: rebuild it (`cargo build --examples`, or the whole \
         `cargo test -p ordo`)",
        binary.display()
    );
    binary
}

fn run(data: &Path, crash_after: Option<u64>) -> Output {
    let mut cmd = Command::new(quickstart_binary());
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
