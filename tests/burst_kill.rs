//! A burst of workflows finishing together, SIGKILLed in the middle of its ends.
//!
//! A child process (this test binary, re-invoked on the `burst_child` entry) starts
//! 3,000 workflows of one step at once. Their steps are committed 512 workflows at a
//! time, and each workflow's end goes in the first commit after its own step's, while
//! the rest of the burst's steps are still queued (at most 512 ends per commit). The
//! child parks inside the commit that brings its ends past a chosen count, and the
//! parent SIGKILLs it there, then recovers the journal in-process and checks what a
//! user would notice:
//!
//! - every workflow the child reported finished is finished in the journal;
//! - after recovery, every workflow returns the result an uninterrupted run gives;
//! - a workflow whose step was recorded before the kill never ran its body again;
//!   the others ran it at most twice (once in flight at the kill, once after).
//!
//! Step bodies append `"<workflow id>\n"` to a log file, so runs are counted across
//! processes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ordo::{Ctx, Durability, Event, RuntimeBuilder, Status};

/// Carries the child's parameters; its absence makes `burst_child` a no-op.
const CHILD_ENV: &str = "ORDO_BURST_CHILD";
/// The test entry the child runs.
const CHILD_TEST: &str = "burst_child";
/// Prefix of the child's protocol lines (the test harness prints around them).
const TAG: &str = "ORDO ";
/// Workflows of the burst.
const BURST: u64 = 3_000;
/// The child parks in the commit that brings its ends to at least this many: the
/// second commit with ends, in the middle of the burst.
const HOLD_AT_ENDS: u64 = 600;
/// A child or parent waits at most this long for the other side.
const PATIENCE: Duration = Duration::from_secs(60);

fn id(i: u64) -> String {
    format!("burst-{i}")
}

/// One step that logs its run and doubles `n`.
fn register(builder: RuntimeBuilder, log: &Path) -> RuntimeBuilder {
    let log = log.to_path_buf();
    builder.register("double", move |ctx: Ctx, n: u64| {
        let log = log.clone();
        async move {
            ctx.step("double", move || async move {
                let step = ordo::current_step().expect("called inside a step body");
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("body log opens");
                file.write_all(format!("{}\n", step.workflow_id).as_bytes())
                    .expect("body log write");
                Ok::<u64, String>(n * 2)
            })
            .await
        }
    })
}

fn runtime(dir: &Path, log: &Path) -> RuntimeBuilder {
    register(
        ordo_testkit::store::runtime(dir).durability(Durability::Flush),
        log,
    )
}

/// The child process: starts the burst on the journal named by `ORDO_BURST_CHILD`
/// (`<journal dir>\t<body log>`) and reports its ends after each commit; parks inside
/// the commit that brings them to [`HOLD_AT_ENDS`].
#[test]
#[ignore = "the child process of the burst kill test; does nothing when run directly"]
fn burst_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let Some((dir, log)) = spec.split_once('\t') else {
        panic!("bad {CHILD_ENV}: {spec:?}");
    };
    let ends = std::cell::Cell::new(0u64);
    let rt = runtime(Path::new(dir), Path::new(log))
        .observer(move |event| {
            if let Event::Committed { workflows, .. } = event {
                ends.set(ends.get() + *workflows as u64);
                // Once this line is out, the commit it reports is durable.
                println!("{TAG}ends {}", ends.get());
                if ends.get() >= HOLD_AT_ENDS {
                    println!("{TAG}hold");
                    loop {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        })
        .build()
        .expect("child runtime");
    let handles = rt
        .start_many::<_, _, u64, String>("double", (0..BURST).map(|i| (id(i), i)))
        .expect("child start");
    for handle in handles {
        let handle = handle.expect("started");
        rt.block_on(handle.result())
            .expect("child run")
            .expect("workflow succeeds");
    }
    println!("{TAG}done");
}

/// Spawns the child on `dir`, waits for it to park, SIGKILLs it; the ends it reported.
fn run_child_and_kill(dir: &Path, log: &Path) -> u64 {
    let exe = std::env::current_exe().expect("test binary path");
    let mut command = Command::new(exe);
    ordo_testkit::store::pass_to(&mut command);
    let mut child: Child = command
        .args([
            "--exact",
            CHILD_TEST,
            "--nocapture",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}\t{}", dir.display(), log.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child spawns");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, ours)) = line.split_once(TAG) {
                if tx.send(ours.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    let deadline = Instant::now() + PATIENCE;
    let mut ends = 0;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line == "hold" => break,
            Ok(line) => {
                if let Some(n) = line.strip_prefix("ends ") {
                    ends = n.parse().expect("ends count");
                }
                seen.push(line);
            }
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child never parked ({err}); saw {seen:?}");
            }
        }
    }
    // `Child::kill` is SIGKILL on Unix; reaped, the journal can be reopened.
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    ends
}

/// How many times each workflow's body ran, from a body log.
fn body_runs(log: &Path) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        *runs.entry(line.to_string()).or_insert(0) += 1;
    }
    runs
}

#[test]
fn sigkill_in_the_middle_of_a_burst_of_ends_loses_and_repeats_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("journal");
    let log = tmp.path().join("bodies.log");
    let acknowledged = run_child_and_kill(&dir, &log);
    assert!(
        acknowledged >= HOLD_AT_ENDS,
        "parked at {acknowledged} ends"
    );

    // The journal as the child left it.
    let (finished, stepped) = {
        let journal = ordo_testkit::store::open(&dir);
        let finished = journal
            .workflows(Some(Status::Succeeded))
            .expect("workflows readable")
            .len() as u64;
        let mut stepped = Vec::new();
        for i in 0..BURST {
            if !journal
                .completions(&id(i))
                .expect("completions readable")
                .is_empty()
            {
                stepped.push(id(i));
            }
        }
        (finished, stepped)
    };
    // Parked inside the commit that reported them: exactly the acknowledged ends.
    assert_eq!(finished, acknowledged, "ends in the journal");
    assert!(
        (stepped.len() as u64) < BURST,
        "the kill came after every step was recorded ({} of {BURST})",
        stepped.len()
    );
    let before_recovery = body_runs(&log);

    let rt = runtime(&dir, &log).build().expect("journal reopens");
    let report = rt.recover().expect("recover");
    assert!(report.is_clean(), "recovery report: {report:?}");
    let handles = rt
        .start_many::<_, _, u64, String>("double", (0..BURST).map(|i| (id(i), i)))
        .expect("handles to the burst");
    for (i, handle) in (0..BURST).zip(handles) {
        let handle = handle.expect("known workflow");
        assert_eq!(
            rt.block_on(handle.result()).expect("runs to the end"),
            Ok(i * 2),
            "workflow {}",
            id(i)
        );
    }

    let runs = body_runs(&log);
    assert_eq!(runs.len() as u64, BURST, "every body ran");
    for recorded in &stepped {
        assert_eq!(
            runs.get(recorded),
            Some(&1),
            "{recorded}'s step was recorded before the kill; its body ran again"
        );
    }
    for (workflow, &n) in &runs {
        assert!(n <= 2, "{workflow}'s body ran {n} times");
        if n == 2 {
            assert_eq!(
                before_recovery.get(workflow),
                Some(&1),
                "{workflow} ran twice without having been in flight at the kill"
            );
        }
    }
}
