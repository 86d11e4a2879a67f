//! Crash tests with real processes: killed with SIGKILL at chosen and random points.
//!
//! A child process (this test binary, re-invoked on the `crash_child` entry) runs a
//! workflow of sequential steps around a concurrent `join_all` on the test's journal (sled,
//! or PostgreSQL with `ORDO_TEST_STORE=postgres`: `ordo_testkit::store`), and
//! is SIGKILLed: (a) right after each k-th committed step completion — the child's
//! observer parks the runtime inside the commit and the parent kills it there — and
//! (b) at random times. The parent then checks the journal the child left, recovers it
//! in-process, drives the workflow to the end and checks what a user would notice:
//!
//! - the result equals an uninterrupted run's;
//! - every completion the child acknowledged (printed after its commit) is in the
//!   journal;
//! - no step with a recorded completion ran its body again;
//! - only the steps in flight at the kill (started, not recorded) ran twice.
//!
//! Step bodies append `"<step id>\n"` to a log file (one per process) so body runs can
//! be counted across processes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ordo::journal::Completion;
use ordo::{Ctx, Durability, Event, RuntimeBuilder, Status};

mod common;

/// Carries the child's parameters; its absence makes `crash_child` a no-op.
const CHILD_ENV: &str = "ORDO_CRASH_CHILD";
/// The test entry the child runs.
const CHILD_TEST: &str = "crash_child";
/// Prefix of the child's protocol lines (the test harness prints around them).
const TAG: &str = "ORDO ";

const WORKFLOW: &str = "crashy";
const WORKFLOW_ID: &str = "order-7";
/// Sequential steps before the fan-out, concurrent steps, sequential steps after.
const SEQ_BEFORE: u64 = 3;
const FAN_OUT: u64 = 6;
const SEQ_AFTER: u64 = 3;
/// Every step of the workflow; each makes one completion.
const STEPS: u64 = SEQ_BEFORE + FAN_OUT + SEQ_AFTER;

/// A child or parent waits at most this long for the other side.
const PATIENCE: Duration = Duration::from_secs(60);

/// A step body: logs that it ran (to count runs across processes), then takes
/// `latency_ms` of real time, which is the window a random kill can land in.
async fn body(log: PathBuf, latency_ms: u64, value: u64) -> Result<u64, String> {
    let step = ordo::current_step().expect("called inside a step body");
    common::log_body_run(&log, &step.step_id.to_string());
    ordo::executor::sleep(Duration::from_millis(latency_ms)).await;
    Ok(value)
}

/// The workflow: 3 chained sequential steps, a `join_all` of 6 steps finishing in an
/// order unlike their call order, 3 more chained steps. Its result depends on every
/// step's value and on the order of the sequential ones.
fn register(builder: RuntimeBuilder, log: &Path) -> RuntimeBuilder {
    let log = log.to_path_buf();
    builder.register(WORKFLOW, move |ctx: Ctx, base: u64| {
        let log = log.clone();
        async move {
            let mut acc = base;
            for i in 0..SEQ_BEFORE {
                let log = log.clone();
                let value = acc * 7 + i;
                acc = ctx
                    .step(&format!("before-{i}"), move || body(log, 3, value))
                    .await?;
            }
            let fan = futures::future::join_all((0..FAN_OUT).map(|i| {
                let log = log.clone();
                // Distinct latencies, far from call order: several commits.
                let latency = 2 + 4 * ((i * 5) % FAN_OUT);
                ctx.step("fan", move || body(log, latency, i * i))
            }))
            .await
            .into_iter()
            .collect::<Result<Vec<u64>, String>>()?;
            acc += fan.iter().sum::<u64>();
            for i in 0..SEQ_AFTER {
                let log = log.clone();
                let value = acc * 3 + i;
                acc = ctx
                    .step(&format!("after-{i}"), move || body(log, 3, value))
                    .await?;
            }
            Ok::<_, String>(format!("{acc} fan={fan:?}"))
        }
    })
}

fn runtime(dir: &Path, log: &Path) -> RuntimeBuilder {
    register(
        ordo_testkit::store::runtime(dir).durability(Durability::Flush),
        log,
    )
}

/// Recovers whatever is in `dir`, (re)starts the workflow and drives it to the end.
fn recover_and_finish(dir: &Path, log: &Path) -> (Result<String, String>, ordo::Metrics) {
    let rt = runtime(dir, log)
        .build()
        .expect("journal reopens after the kill");
    let report = rt.recover().expect("recover");
    assert!(report.is_clean(), "recovery report: {report:?}");
    let handle = rt
        .start::<_, String, String>(WORKFLOW, WORKFLOW_ID, 1u64)
        .expect("start");
    let result = rt
        .block_on(handle.result())
        .expect("the workflow runs to the end");
    (result, rt.metrics())
}

/// The result of an uninterrupted run, in-process.
fn expected_result() -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("bodies.log");
    let (result, metrics) = recover_and_finish(&dir.path().join("journal"), &log);
    assert_eq!(metrics.steps_executed, STEPS);
    assert_eq!(body_runs(&log).len() as u64, STEPS);
    result.expect("the workflow succeeds")
}

/// How many times each step's body ran, from a body log.
fn body_runs(log: &Path) -> BTreeMap<u64, usize> {
    let mut runs = BTreeMap::new();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        let id = line.parse().expect("body log line is a step id");
        *runs.entry(id).or_insert(0) += 1;
    }
    runs
}

// ---------------------------------------------------------------------------------
// The child side.

/// The child process: runs the workflow on the journal named by `ORDO_CRASH_CHILD`
/// (`<journal dir>\t<body log>\t<hold after k completions, 0 = never>`), printing a
/// line per commit and per delivered step. With a hold point it parks inside the
/// commit that reaches k completions, after announcing it, and waits to be killed.
#[test]
#[ignore = "the child process of the crash tests; does nothing when run directly"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('\t');
    let (Some(dir), Some(log), Some(hold)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad {CHILD_ENV}: {spec:?}");
    };
    let hold: u64 = hold.parse().expect("hold count");
    let committed = std::cell::Cell::new(0u64);
    let rt = runtime(Path::new(dir), Path::new(log))
        .observer(move |event| match event {
            Event::Committed { completions, .. } => {
                committed.set(committed.get() + *completions as u64);
                // println! writes whole lines to the pipe: once a line is out, the
                // commit it reports is durable (Flush survives a kill).
                println!("{TAG}committed {}", committed.get());
                if hold > 0 && committed.get() >= hold {
                    println!("{TAG}hold {}", committed.get());
                    loop {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
            Event::Step { step_id, .. } => println!("{TAG}delivered {step_id}"),
            _ => {}
        })
        .build()
        .expect("child runtime");
    rt.recover().expect("child recover");
    println!("{TAG}started");
    let handle = rt
        .start::<_, String, String>(WORKFLOW, WORKFLOW_ID, 1u64)
        .expect("child start");
    let result = rt.block_on(handle.result()).expect("child run");
    println!("{TAG}result {}", result.expect("workflow succeeds"));
}

// ---------------------------------------------------------------------------------
// The parent side.

/// A running child and its protocol lines as they arrive.
struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ChildProcess {
    fn spawn(dir: &Path, log: &Path, hold: u64) -> Self {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe);
        ordo_testkit::store::pass_to(&mut child);
        let mut child = child
            .args([
                "--exact",
                CHILD_TEST,
                "--nocapture",
                "--ignored",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{}\t{}\t{hold}", dir.display(), log.display()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("child spawns");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness may print on the same line before ours.
                if let Some((_, ours)) = line.split_once(TAG) {
                    if tx.send(ours.to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        ChildProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`; `false` if the child ended first.
    fn wait_for(&mut self, prefix: &str) -> bool {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.starts_with(prefix);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "child gave no {prefix:?} line in {PATIENCE:?}; saw {:?}",
                        self.seen
                    );
                }
            }
        }
    }

    /// SIGKILLs the child (`Child::kill` is SIGKILL on Unix), reaps it, and returns
    /// every protocol line it printed.
    fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill(); // it may have exited already
        self.finish()
    }

    /// Waits for the child to exit (it must succeed) and returns its lines.
    fn join(mut self) -> Vec<String> {
        let status = self.child.wait().expect("wait for child");
        if !status.success() {
            let mut err = String::new();
            if let Some(mut stderr) = self.child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!("child failed ({status}): {err}\nlines: {:?}", self.seen);
        }
        self.finish()
    }

    fn finish(mut self) -> Vec<String> {
        // Reaped: sled's file lock is released, the journal can be reopened.
        self.child.wait().expect("wait for child");
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
        self.seen
    }
}

/// What the child acknowledged: the completion count of its last reported commit and
/// the steps it delivered (each delivered only after its commit).
struct Acknowledged {
    committed: u64,
    delivered: Vec<u64>,
    result: Option<String>,
}

fn acknowledged(lines: &[String]) -> Acknowledged {
    let mut ack = Acknowledged {
        committed: 0,
        delivered: Vec::new(),
        result: None,
    };
    for line in lines {
        if let Some(n) = line.strip_prefix("committed ") {
            ack.committed = n.parse().expect("committed count");
        } else if let Some(id) = line.strip_prefix("delivered ") {
            ack.delivered.push(id.parse().expect("delivered step id"));
        } else if let Some(result) = line.strip_prefix("result ") {
            ack.result = Some(result.to_string());
        }
    }
    ack
}

/// The journal as the killed child left it.
fn journal_state(dir: &Path) -> (Option<Status>, Vec<Completion>) {
    // A sled child killed before it created its folder left no journal at all.
    if ordo_testkit::store::is_sled() && !dir.exists() {
        return (None, Vec::new());
    }
    let journal = ordo_testkit::store::open(dir);
    let status = journal
        .workflow(WORKFLOW_ID)
        .expect("workflow record readable")
        .map(|w| w.status);
    let completions = journal
        .completions(WORKFLOW_ID)
        .expect("completions readable");
    (status, completions)
}

/// Everything checked after a child was killed (or finished): see the module docs.
/// `exact` says the kill point is known to be right after the last acknowledged
/// commit (the child was parked inside it), so nothing more can be recorded.
fn check_after_kill(
    dir: &Path,
    child_log: &Path,
    lines: &[String],
    expected: &str,
    exact: bool,
    what: &str,
) {
    let ack = acknowledged(lines);
    let (status, recorded) = journal_state(dir);
    let recorded_ids: Vec<u64> = recorded.iter().map(|c| c.step_id).collect();

    // Every acknowledged completion is durable.
    assert!(
        recorded.len() as u64 >= ack.committed,
        "{what}: the child acknowledged {} completions, the journal has {}",
        ack.committed,
        recorded.len()
    );
    if exact {
        assert_eq!(
            recorded.len() as u64,
            ack.committed,
            "{what}: journal beyond the kill point"
        );
    }
    for id in &ack.delivered {
        assert!(
            recorded_ids.contains(id),
            "{what}: delivered step {id} missing from the journal"
        );
    }
    if ack.result.is_some() {
        assert_eq!(
            status,
            Some(Status::Succeeded),
            "{what}: child printed a result"
        );
    }

    // In the child, each body ran at most once, and every recorded step ran there.
    let child_runs = body_runs(child_log);
    assert!(
        child_runs.values().all(|&n| n == 1),
        "{what}: child ran a body twice: {child_runs:?}"
    );
    for id in &recorded_ids {
        assert!(
            child_runs.contains_key(id),
            "{what}: step {id} recorded but never ran"
        );
    }

    // Recover in this process, with its own body log.
    let recovery_log = child_log.with_extension("recovery");
    let (result, metrics) = recover_and_finish(dir, &recovery_log);
    assert_eq!(
        result.as_deref(),
        Ok(expected),
        "{what}: result after recovery"
    );
    if status == Some(Status::Pending) {
        assert_eq!(
            metrics.steps_replayed,
            recorded.len() as u64,
            "{what}: replayed"
        );
    }

    // No step with a recorded completion ran its body again; every other step ran
    // exactly once here. So the steps that ran twice are exactly the ones in flight
    // at the kill: started by the child, not recorded.
    let recovery_runs = body_runs(&recovery_log);
    assert!(
        recovery_runs.values().all(|&n| n == 1),
        "{what}: recovery ran a body twice: {recovery_runs:?}"
    );
    for id in 0..STEPS {
        let recorded = recorded_ids.contains(&id);
        assert_eq!(
            recovery_runs.contains_key(&id),
            !recorded,
            "{what}: step {id} (recorded: {recorded}) body runs after recovery: {recovery_runs:?}"
        );
    }
    eprintln!(
        "{what}: {} recorded, status {status:?}, child ran {:?}, recovery ran {:?}",
        recorded.len(),
        child_runs.keys().collect::<Vec<_>>(),
        recovery_runs.keys().collect::<Vec<_>>()
    );
    let twice: Vec<u64> = child_runs
        .keys()
        .filter(|id| recovery_runs.contains_key(id))
        .copied()
        .collect();
    let in_flight: Vec<u64> = child_runs
        .keys()
        .filter(|id| !recorded_ids.contains(id))
        .copied()
        .collect();
    assert_eq!(
        twice, in_flight,
        "{what}: only in-flight steps may run twice"
    );
    if exact {
        // Parked inside the commit: the bodies then in flight are the concurrent
        // ones still running; a sequential step is never in flight at a commit.
        assert!(
            twice.len() < FAN_OUT as usize,
            "{what}: in flight at the kill: {twice:?}"
        );
    }

    // Recovery appended to the history the child left; it rewrote nothing.
    let (status_after, after) = journal_state(dir);
    assert_eq!(status_after, Some(Status::Succeeded), "{what}");
    assert_eq!(after.len() as u64, STEPS, "{what}: one completion per step");
    assert_eq!(
        &after[..recorded.len()],
        &recorded[..],
        "{what}: history rewritten"
    );
}

/// (a) SIGKILL right after the k-th committed completion, for every k (the last k
/// leaves every step recorded and only the final status missing).
#[test]
fn sigkill_after_each_committed_completion_recovers_the_same_result() {
    let expected = expected_result();
    for k in 1..=STEPS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, log) = (tmp.path().join("journal"), tmp.path().join("bodies.log"));
        let mut child = ChildProcess::spawn(&dir, &log, k);
        assert!(
            child.wait_for("hold "),
            "k={k}: the child finished before {k} completions"
        );
        let lines = child.kill();
        let ack = acknowledged(&lines);
        assert!(ack.committed >= k, "k={k}: parked at {}", ack.committed);
        check_after_kill(
            &dir,
            &log,
            &lines,
            &expected,
            true,
            &format!("kill after {k}"),
        );
    }
}

/// (b) SIGKILL at random times during the run; the window is calibrated on an
/// uninterrupted child, whose result must also equal the in-process run's.
fn random_kills(trials: u32, seed: u64) {
    let expected = expected_result();

    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, log) = (tmp.path().join("journal"), tmp.path().join("bodies.log"));
    let mut child = ChildProcess::spawn(&dir, &log, 0);
    assert!(child.wait_for("started"), "the child did not start");
    let started = Instant::now();
    let lines = child.join();
    let window = started.elapsed();
    let ack = acknowledged(&lines);
    assert_eq!(
        ack.result.as_deref(),
        Some(expected.as_str()),
        "uninterrupted child"
    );
    assert_eq!(ack.committed, STEPS);
    check_after_kill(&dir, &log, &lines, &expected, false, "uninterrupted child");

    let mut rng = fastrand::Rng::with_seed(seed);
    let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX).max(1);
    for trial in 0..trials {
        let delay = Duration::from_micros(rng.u64(..window_us));
        let tmp = tempfile::tempdir().expect("tempdir");
        let (dir, log) = (tmp.path().join("journal"), tmp.path().join("bodies.log"));
        let mut child = ChildProcess::spawn(&dir, &log, 0);
        assert!(
            child.wait_for("started"),
            "trial {trial}: the child did not start"
        );
        std::thread::sleep(delay);
        let lines = child.kill();
        let what = format!(
            "random kill {trial} after {delay:?} of {window:?} ({} completions acknowledged)",
            acknowledged(&lines).committed
        );
        check_after_kill(&dir, &log, &lines, &expected, false, &what);
    }
}

#[test]
fn sigkill_at_random_times_recovers_the_same_result() {
    random_kills(6, 0x0d0);
}

#[test]
#[ignore = "120 random kills (about 20 s); run with --ignored"]
fn sigkill_at_random_times_many_trials() {
    random_kills(120, 0x5eed);
}

/// Killed as soon as it starts: at most the workflow record and a first body's start
/// are on disk, possibly nothing; the journal must still open, and the workflow
/// resume or start fresh.
#[test]
fn sigkill_right_at_start_recovers_or_starts_fresh() {
    let expected = expected_result();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, log) = (tmp.path().join("journal"), tmp.path().join("bodies.log"));
    let mut child = ChildProcess::spawn(&dir, &log, 0);
    assert!(child.wait_for("started"), "the child did not start");
    let lines = child.kill();
    check_after_kill(&dir, &log, &lines, &expected, false, "kill at start");
}
