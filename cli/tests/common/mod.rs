//! Helpers shared by the CLI's end-to-end tests: the two binaries, and a journal
//! folder's bytes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The quickstart binary (package `ordo-quickstart`), which writes a real journal.
///
/// Another package's binary has no `CARGO_BIN_EXE_*` variable here, so it is found
/// where cargo puts it: `cargo test --workspace` builds it for the quickstart's own
/// tests, into the folder above this test's (`target/<profile>/deps/cli-<hash>` →
/// `target/<profile>/quickstart`). Invoking cargo from inside a test would wait on the
/// build-directory lock that the running `cargo test` holds.
pub fn quickstart_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let quickstart = profile_dir.join(format!("quickstart{}", std::env::consts::EXE_SUFFIX));
    assert!(
        quickstart.is_file(),
        "{} is missing: `cargo test --workspace` builds it, `cargo test -p ordo-cli` does \
         not; run `cargo build -p ordo-quickstart` first",
        quickstart.display()
    );
    quickstart
}

/// Runs `ordo <args>`, with backtraces enabled so that a panic would show one.
pub fn ordo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run the ordo binary")
}

/// Lossy UTF-8 of a process's output.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Expects `out` (of `ordo <args>`) to be a success with nothing on stderr; returns
/// stdout.
pub fn succeeded(args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "ordo {args:?} failed ({:?}): {}",
        out.status.code(),
        text(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Expects `out` to be a failure with exit `code`, nothing on stdout, and exactly one
/// `ordo: ...` line on stderr that is no panic report; returns that line.
pub fn one_line_error(out: &Output, code: i32) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("ordo: "), "{stderr:?}");
    for word in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(word), "{stderr:?}");
    }
    stderr.trim_end().to_string()
}

/// `s` parsed as JSON.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|err| panic!("not JSON ({err}): {s}"))
}

/// Every file under `dir` (path relative to it) with its bytes; sockets (a running
/// application's, or a killed one's `admin.sock`) hold no bytes and are left out.
pub fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                let bytes = std::fs::read(&path).expect("read file");
                let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
                out.insert(relative, bytes);
            }
        }
    }
    out
}

/// Replaces whatever is in `dir` by `files` (as [`files`] returned them).
pub fn restore(dir: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) {
    let _ = std::fs::remove_dir_all(dir);
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create dir");
        std::fs::write(path, bytes).expect("write file");
    }
}

/// Runs the quickstart on the journal in `data`, whatever happens.
pub fn run_quickstart(data: &Path) -> Output {
    Command::new(quickstart_exe())
        .arg("--data")
        .arg(data)
        .output()
        .expect("run the quickstart")
}
