//! Shared helpers for the runtime's end-to-end tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use ordo::{Clock, Durability, Runtime, RuntimeBuilder};

/// A journal folder that lives as long as the test.
pub fn journal_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A runtime on `dir` with the virtual clock (sleeps and latencies cost nothing) and
/// no fsync (the tests reopen in-process; durability is tested with real kills).
pub fn builder(dir: &Path) -> RuntimeBuilder {
    Runtime::builder()
        .path(dir)
        .durability(Durability::None)
        .clock(Clock::Virtual)
        // A fixed origin: two runs from the same journal see the same virtual times.
        .start_time(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// Which step bodies ran, in the order they started: `(workflow id, step label)`.
#[derive(Clone, Default)]
pub struct BodyLog(Rc<RefCell<Vec<String>>>);

impl BodyLog {
    pub fn record(&self, label: impl Into<String>) {
        self.0.borrow_mut().push(label.into());
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    pub fn clear(&self) {
        self.0.borrow_mut().clear();
    }
}

/// Simulated latency of an outside call, on the executor's (virtual) clock.
pub async fn latency(ms: u64) {
    ordo::executor::sleep(Duration::from_millis(ms)).await;
}

/// The recorded `(step id, name, ok)` sequence of a workflow, in delivery order.
pub fn recorded_steps(dir: &Path, id: &str) -> Vec<(u64, String, bool)> {
    let journal = ordo::journal::SledJournal::open(dir, Durability::None).expect("journal opens");
    use ordo::journal::Store;
    journal
        .completions(id)
        .expect("completions readable")
        .into_iter()
        .map(|c| (c.step_id, c.name, c.outcome.is_ok()))
        .collect()
}

use std::cell::Cell;

use ordo::{Error, Metrics};

/// What a test workflow's bodies see: a latency seed (changed between runs to change
/// completion order) and a log of which step ids ran their body.
#[derive(Clone, Default)]
pub struct Env {
    pub seed: Rc<Cell<u64>>,
    pub bodies: Rc<RefCell<Vec<u64>>>,
}

impl Env {
    pub fn with_seed(seed: u64) -> Self {
        let env = Env::default();
        env.seed.set(seed);
        env
    }

    /// A body's latency in virtual ms, from the seed and a per-step salt.
    pub fn latency_ms(&self, salt: u64) -> u64 {
        let mut x = self.seed.get() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 29;
        x % 40
    }

    /// What every test step body does: note that it ran, then take its time.
    pub async fn body(&self, salt: u64) {
        let step = ordo::current_step().expect("called inside a step body");
        self.bodies.borrow_mut().push(step.step_id);
        latency(self.latency_ms(salt)).await;
    }

    pub fn bodies_run(&self) -> Vec<u64> {
        self.bodies.borrow().clone()
    }
}

/// A test workflow: registered as "shape", input `()`, output and error `String`.
pub type Register = fn(RuntimeBuilder, Env) -> RuntimeBuilder;

pub struct RunResult {
    pub result: Result<Result<String, String>, Error>,
    pub metrics: Metrics,
}

/// One process lifetime: open the journal, recover, start (or re-attach to) workflow
/// "wf", drive it, optionally halting after `halt` commits as if killed there.
/// Where a run stops as if killed.
#[derive(Clone, Copy, Debug)]
pub enum Halt {
    Never,
    AfterCommits(u64),
    BeforeFinish,
}

pub fn run_once(dir: &Path, register: Register, env: &Env, halt: Halt) -> RunResult {
    let mut b = builder(dir);
    match halt {
        Halt::Never => {}
        Halt::AfterCommits(h) => b = b.halt_after_commits(h),
        Halt::BeforeFinish => b = b.halt_before_finish(),
    }
    let rt = register(b, env.clone()).build().expect("runtime builds");
    let report = rt.recover().expect("recover");
    assert!(report.is_clean(), "recovery report: {report:?}");
    let handle = rt
        .start::<_, String, String>("shape", "wf", ())
        .expect("start");
    let result = rt.block_on(handle.result());
    RunResult {
        result,
        metrics: rt.metrics(),
    }
}

/// Copies a (closed) journal folder, to run two futures from one crash.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Whether a shape's result may depend on the order completions arrive in (a race,
/// completion-order consumption): then a crash mid-run may legitimately change it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Insensitive,
    Sensitive,
}

/// Full replay: a run that stops right before recording the finish, then a recovery
/// with other latencies, must give the same result as that run would have (`expected`)
/// without running any body.
fn check_full_replay(
    dir: &Path,
    register: Register,
    seed: u64,
    other_seed: u64,
    expected: &str,
    what: &str,
) {
    let halted = run_once(dir, register, &Env::with_seed(seed), Halt::BeforeFinish);
    assert!(
        matches!(halted.result, Err(Error::Stopped { .. })),
        "{what}: halt before finish"
    );
    let env = Env::with_seed(other_seed);
    let replayed = run_once(dir, register, &env, Halt::Never);
    assert_eq!(
        replayed.result.expect("replay succeeds"),
        Ok(expected.to_string()),
        "{what}: full replay"
    );
    assert!(
        env.bodies_run().is_empty(),
        "{what}: bodies ran during a full replay: {:?}",
        env.bodies_run()
    );
}

/// The crash-and-replay check every shape must pass. With R, C, J the result, commit
/// count and journal of an uninterrupted run:
/// 1. full replay (every step recorded, other latencies) gives R and runs no body;
/// 2. for every crash point k in 1..C, a run halted after k commits left a prefix of
///    J; recovering it succeeds, keeps that prefix, runs no recorded step's body
///    again, replays exactly the prefix, and (order-insensitive shapes) gives R;
/// 3. and what that recovery records replays, with other latencies, to its result.
pub fn check_crash_replay(register: Register, order: Order, seed: u64, other_seed: u64) -> String {
    let dir0 = journal_dir();
    let first = run_once(dir0.path(), register, &Env::with_seed(seed), Halt::Never);
    let expected = first
        .result
        .expect("uninterrupted run succeeds")
        .expect("shape returns Ok");
    let commits = first.metrics.commits;
    let journal = recorded_steps(dir0.path(), "wf");
    assert!(
        commits >= 2,
        "shape too small to crash inside: {commits} commits"
    );

    let full = journal_dir();
    check_full_replay(
        full.path(),
        register,
        seed,
        other_seed,
        &expected,
        "uninterrupted",
    );

    for k in 1..commits {
        let dir = journal_dir();
        let halted = run_once(
            dir.path(),
            register,
            &Env::with_seed(seed),
            Halt::AfterCommits(k),
        );
        assert!(
            matches!(halted.result, Err(Error::Stopped { .. })),
            "k={k}: halted run finished"
        );
        let before_crash = recorded_steps(dir.path(), "wf");
        assert_eq!(
            &journal[..before_crash.len()],
            &before_crash[..],
            "journal prefix at k={k}"
        );
        let twin = journal_dir();
        copy_dir(dir.path(), twin.path());

        let env = Env::with_seed(seed);
        let resumed = run_once(dir.path(), register, &env, Halt::Never);
        let result = resumed
            .result
            .expect("recovery succeeds")
            .expect("shape returns Ok");
        if order == Order::Insensitive {
            assert_eq!(result, expected, "result after crash at k={k}");
        }
        let after = recorded_steps(dir.path(), "wf");
        assert_eq!(
            &after[..before_crash.len()],
            &before_crash[..],
            "k={k}: history rewritten"
        );
        for id in env.bodies_run() {
            assert!(
                !before_crash.iter().any(|s| s.0 == id),
                "k={k}: step {id} was recorded but its body ran again"
            );
        }
        assert_eq!(
            resumed.metrics.steps_replayed,
            before_crash.len() as u64,
            "k={k}"
        );
        // The twin recovers the same way but stops before finishing; replaying that
        // with other latencies must reach the same result.
        check_full_replay(
            twin.path(),
            register,
            seed,
            other_seed,
            &result,
            &format!("k={k} twin"),
        );
    }
    expected
}
