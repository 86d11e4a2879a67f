//! The `replay` fuzz target's body, and the crash-and-replay checker the tests share.
//!
//! Hidden: a testing aid, not part of the API. `fuzz/fuzz_targets/replay.rs` calls
//! [`replay`]; `tests/replay_property.rs` drives [`check_case`] with proptest on stable;
//! `tests/replay.rs` runs hand-written shapes through [`check_crash_replay`].
//!
//! A [`Case`] is a workflow [`Shape`] from a small catalogue, each step body's latency
//! in two runs (a crashed one and its recovery) and outcome, a crash point and a
//! scheduler script. [`check_case`] runs it on a sled journal in a temporary folder and
//! panics when replay is wrong. With R, C and J the result, commit count and journal of
//! an uninterrupted run:
//!
//! 1. a run halted right before its final commit (every step recorded), recovered with
//!    the *other* latencies and the script, returns R without running a body and
//!    without writing a completion;
//! 2. a run halted after the k-th commit left a prefix of J (live runs are
//!    deterministic); recovering it (other latencies, the script) succeeds with no
//!    false [`Error::NonDeterminism`], keeps that prefix, runs no recorded step's body
//!    again and replays exactly the prefix; an order-insensitive shape returns R and
//!    records the same (name, ok) pairs as J;
//! 3. what that recovery recorded replays, with the first latencies, to its result.
//!
//! Why an order-sensitive shape (a race, completion-order consumption) may end
//! differently after a crash: the bodies in flight at the crash restart at recovery
//! time, so the live part of the recovered run sees other completion orders. What is
//! recorded is never re-decided.
//!
//! ```
//! // Any bytes are a case; a violation panics.
//! ordo::fuzzing::replay(&[0, 3, 1, 2, 7, 130, 5]);
//! ```

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use ordo_executor::Scheduler;
use ordo_journal::{Batch, Completion, SledJournal, Status, Store, WorkflowRecord};

use crate::{Clock, Ctx, Durability, Error, Metrics, RetryPolicy, Runtime, RuntimeBuilder, Step};

/// The workflow every checker run starts: registered as "shape", input `()`.
pub const WORKFLOW: &str = "shape";
/// The id it runs under.
pub const WORKFLOW_ID: &str = "wf";

/// A journal folder that lives as long as the returned guard.
pub fn journal_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A runtime on `dir` with the virtual clock (sleeps and latencies cost nothing) and
/// no fsync (runs reopen in-process; durability is tested with real kills).
pub fn builder(dir: &Path) -> RuntimeBuilder {
    virtual_time(Runtime::builder().path(dir).durability(Durability::None))
}

/// The virtual clock from a fixed origin: two runs from the same journal see the same
/// virtual times.
fn virtual_time(b: RuntimeBuilder) -> RuntimeBuilder {
    b.clock(Clock::Virtual)
        .start_time(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// Where a checker keeps the journal that runs crash on and recover from.
pub enum Journal {
    /// sled in a temporary folder: what users run.
    Sled(tempfile::TempDir),
    /// A [`MemoryJournal`]: no files, no sled threads, many times faster (the fuzzer).
    Memory(MemoryJournal),
}

/// Which kind of [`Journal`] a checker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalKind {
    /// [`Journal::Sled`].
    Sled,
    /// [`Journal::Memory`].
    Memory,
}

impl Journal {
    /// An empty journal.
    pub fn new(kind: JournalKind) -> Journal {
        match kind {
            JournalKind::Sled => Journal::Sled(journal_dir()),
            JournalKind::Memory => Journal::Memory(MemoryJournal::default()),
        }
    }

    /// A runtime builder on this journal, with the virtual clock.
    pub fn builder(&self) -> RuntimeBuilder {
        match self {
            Journal::Sled(dir) => builder(dir.path()),
            Journal::Memory(journal) => {
                virtual_time(Runtime::builder().store(Box::new(journal.reopen())))
            }
        }
    }

    /// An independent copy (of a closed journal), to run two futures from one crash.
    pub fn fork(&self) -> Journal {
        match self {
            Journal::Sled(dir) => {
                let twin = journal_dir();
                copy_dir(dir.path(), twin.path());
                Journal::Sled(twin)
            }
            Journal::Memory(journal) => Journal::Memory(journal.fork()),
        }
    }
}

/// What a [`MemoryJournal`] holds.
#[derive(Clone, Default)]
struct Records {
    workflows: BTreeMap<String, WorkflowRecord>,
    /// Each workflow's completions in `seq` order.
    completions: BTreeMap<String, Vec<Completion>>,
    /// The type table.
    types: BTreeMap<u64, String>,
}

/// A [`Store`] in memory that outlives the runtimes opened on it, as a journal on disk
/// outlives a crashed process: [`MemoryJournal::reopen`] is "open the same journal
/// again". Atomic and append-only like [`SledJournal`]; durable only as long as the
/// value lives.
#[derive(Default)]
pub struct MemoryJournal {
    /// Shared by every handle on the same journal; a std mutex because `Store` must be
    /// `Sync` (nothing here ever waits on it).
    records: Arc<Mutex<Records>>,
    /// Commits through this handle (`Store::commit_count` counts per opening).
    commits: AtomicU64,
}

impl MemoryJournal {
    /// Another handle on the same records, as if the journal were opened again.
    pub fn reopen(&self) -> MemoryJournal {
        MemoryJournal {
            records: Arc::clone(&self.records),
            commits: AtomicU64::new(0),
        }
    }

    /// An independent copy of the records.
    pub fn fork(&self) -> MemoryJournal {
        MemoryJournal {
            records: Arc::new(Mutex::new(self.lock().clone())),
            commits: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryJournal {
    fn commit(&self, batch: &Batch) -> Result<(), ordo_journal::Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut records = self.lock();
        // Check everything before changing anything: all of the batch or none of it.
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, c) in batch.completions() {
            let reset = batch.resets().contains(id);
            let after = last.get(id.as_str()).copied().or_else(|| {
                if reset {
                    return None;
                }
                records
                    .completions
                    .get(id)
                    .and_then(|cs| cs.last())
                    .map(|c| c.seq)
            });
            if let Some(after) = after.filter(|&after| c.seq <= after) {
                return Err(ordo_journal::Error::SeqOutOfOrder {
                    workflow_id: id.clone(),
                    seq: c.seq,
                    after,
                });
            }
            last.insert(id, c.seq);
        }
        for id in batch.resets() {
            records.completions.remove(id);
        }
        for (id, c) in batch.completions() {
            records
                .completions
                .entry(id.clone())
                .or_default()
                .push(c.clone());
        }
        for record in batch.workflows() {
            records.workflows.insert(record.id.clone(), record.clone());
        }
        for (fingerprint, name) in batch.types() {
            records.types.insert(*fingerprint, name.clone());
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn workflow(&self, id: &str) -> Result<Option<WorkflowRecord>, ordo_journal::Error> {
        Ok(self.lock().workflows.get(id).cloned())
    }

    fn completions(&self, workflow_id: &str) -> Result<Vec<Completion>, ordo_journal::Error> {
        Ok(self
            .lock()
            .completions
            .get(workflow_id)
            .cloned()
            .unwrap_or_default())
    }

    fn workflows(
        &self,
        status: Option<Status>,
    ) -> Result<Vec<WorkflowRecord>, ordo_journal::Error> {
        Ok(self
            .lock()
            .workflows
            .values()
            .filter(|record| status.is_none_or(|s| record.status == s))
            .cloned()
            .collect())
    }

    fn type_name(&self, fingerprint: u64) -> Result<Option<String>, ordo_journal::Error> {
        Ok(self.lock().types.get(&fingerprint).cloned())
    }

    fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// One recorded completion as a user sees it: `(step id, name, outcome is Ok)`.
pub type RecordedStep = (u64, String, bool);

fn steps_of(store: &dyn Store, id: &str) -> Vec<RecordedStep> {
    store
        .completions(id)
        .expect("completions readable")
        .into_iter()
        .map(|c| (c.step_id, c.name, c.outcome.is_ok()))
        .collect()
}

/// The recorded steps of workflow `id` in the (closed) journal at `dir`, in delivery
/// order.
pub fn recorded_steps(dir: &Path, id: &str) -> Vec<RecordedStep> {
    let journal = SledJournal::open(dir, Durability::None).expect("journal opens");
    steps_of(&journal, id)
}

/// How long an outside call takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// Milliseconds of virtual time: completions at different instants, so in
    /// different commits.
    Delay(u8),
    /// Polls returning `Pending` (`yield_now`), no time: completions in the same
    /// commit, in an order the scheduler decides.
    Yields(u8),
}

/// Where step bodies' latencies come from.
#[derive(Clone, Debug)]
enum Latencies {
    /// 0..40 ms from a seed and the step's salt (the hand-written tests).
    Seeded(u64),
    /// `list[salt % len]` (the fuzzer).
    Listed(Rc<[Latency]>),
}

/// What a test workflow's bodies see: their latencies, which of them fail, and a log
/// of which step ids ran their body.
#[derive(Clone)]
pub struct Env {
    latencies: Rc<RefCell<Latencies>>,
    /// `failures[salt % len]`: the body returns `Err`. The same in every run of a
    /// case: the outside world answers the same, only its timing changes.
    failures: Rc<[bool]>,
    bodies: Rc<RefCell<Vec<u64>>>,
    /// What the workflow returned in this run, even when a halt kept it from being
    /// recorded: what a full replay of this run's journal must return.
    returned: Rc<RefCell<Option<Result<String, String>>>>,
}

impl Default for Env {
    fn default() -> Self {
        Env::with_seed(0)
    }
}

impl Env {
    /// Seeded 0..40 ms latencies; every body succeeds.
    pub fn with_seed(seed: u64) -> Self {
        Env {
            latencies: Rc::new(RefCell::new(Latencies::Seeded(seed))),
            failures: Rc::from(Vec::new()),
            bodies: Rc::default(),
            returned: Rc::default(),
        }
    }

    /// Listed latencies and failures, indexed by salt modulo their length.
    pub fn listed(latencies: &[Latency], failures: &[bool]) -> Self {
        let latencies: Rc<[Latency]> = if latencies.is_empty() {
            Rc::from(vec![Latency::Delay(0)])
        } else {
            Rc::from(latencies)
        };
        Env {
            latencies: Rc::new(RefCell::new(Latencies::Listed(latencies))),
            failures: Rc::from(failures),
            bodies: Rc::default(),
            returned: Rc::default(),
        }
    }

    /// The latency of the body with this salt.
    pub fn latency(&self, salt: u64) -> Latency {
        match &*self.latencies.borrow() {
            Latencies::Seeded(seed) => {
                let mut x = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                x ^= x >> 31;
                x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                x ^= x >> 29;
                Latency::Delay((x % 40) as u8)
            }
            Latencies::Listed(list) => list[(salt % list.len() as u64) as usize],
        }
    }

    /// Whether the body with this salt returns `Err`.
    pub fn fails(&self, salt: u64) -> bool {
        !self.failures.is_empty() && self.failures[(salt % self.failures.len() as u64) as usize]
    }

    /// What every test step body does: note that it ran, then take its time.
    pub async fn body(&self, salt: u64) {
        let step = crate::current_step().expect("called inside a step body");
        self.bodies.borrow_mut().push(step.step_id);
        match self.latency(salt) {
            Latency::Delay(ms) => ordo_executor::sleep(Duration::from_millis(ms.into())).await,
            Latency::Yields(n) => {
                for _ in 0..n {
                    ordo_executor::yield_now().await;
                }
            }
        }
    }

    /// Notes what the workflow is returning (shapes call it last).
    pub fn note_return(&self, result: &Result<String, String>) {
        *self.returned.borrow_mut() = Some(result.clone());
    }

    /// What the workflow returned in this run, if it noted it.
    pub fn returned(&self) -> Option<Result<String, String>> {
        self.returned.borrow().clone()
    }

    /// The step ids whose body ran, in the order they started (a retried body once per
    /// attempt).
    pub fn bodies_run(&self) -> Vec<u64> {
        self.bodies.borrow().clone()
    }
}

/// A step whose body logs itself, takes its latency, and returns `value` (or an
/// error naming it, when `env` says this salt fails).
pub fn step(ctx: &Ctx, env: &Env, name: &str, salt: u64, value: u64) -> Step<u64, String> {
    let env = env.clone();
    let label = format!("{name}#{salt}");
    ctx.step(name, move || async move {
        env.body(salt).await;
        if env.fails(salt) {
            Err(format!("{label} failed"))
        } else {
            Ok(value)
        }
    })
}

/// Registers the workflow under test ([`WORKFLOW`], input `()`, output and error
/// `String`) on a builder, its bodies seeing `Env`.
pub type Register<'a> = &'a dyn Fn(RuntimeBuilder, Env) -> RuntimeBuilder;

/// Where a run stops as if the process were killed.
#[derive(Clone, Copy, Debug)]
pub enum Halt {
    /// It runs to the end.
    Never,
    /// Right after this many group commits.
    AfterCommits(u64),
    /// Right before the commit that would record the workflow's end.
    BeforeFinish,
}

/// What one run ([`run_once`]) saw.
pub struct RunResult {
    /// What the workflow's handle returned.
    pub result: Result<Result<String, String>, Error>,
    /// The runtime's counters.
    pub metrics: Metrics,
    /// The workflow's recorded steps when the run ended.
    pub journal: Vec<RecordedStep>,
}

/// One process lifetime: open the journal at `dir`, recover, start (or re-attach to)
/// workflow [`WORKFLOW_ID`], drive it until it ends or `halt` stops it.
pub fn run_once(dir: &Path, register: Register<'_>, env: &Env, halt: Halt) -> RunResult {
    run_on(builder(dir), register, env, halt, Scheduler::Fifo)
}

/// [`run_once`] on a built-up runtime builder, under `scheduler`.
pub fn run_on(
    b: RuntimeBuilder,
    register: Register<'_>,
    env: &Env,
    halt: Halt,
    scheduler: Scheduler,
) -> RunResult {
    let mut b = b.scheduler(scheduler);
    match halt {
        Halt::Never => {}
        Halt::AfterCommits(k) => b = b.halt_after_commits(k),
        Halt::BeforeFinish => b = b.halt_before_finish(),
    }
    let rt = register(b, env.clone()).build().expect("runtime builds");
    let report = rt.recover().expect("recover");
    assert!(report.is_clean(), "recovery report: {report:?}");
    let handle = rt
        .start::<_, String, String>(WORKFLOW, WORKFLOW_ID, ())
        .expect("start");
    let result = rt.block_on(handle.result());
    RunResult {
        result,
        metrics: rt.metrics(),
        journal: steps_of(rt.journal(), WORKFLOW_ID),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Same steps, same outcomes, same result whatever the timing.
    Insensitive,
    /// The result may follow the completion order.
    Sensitive,
    /// Sensitive, and even two live runs under the same latencies may differ:
    /// `select!` polls its branches in random order, so two bodies finishing at the
    /// same instant (one commit) are queued, and delivered, in either order.
    Random,
}

/// One crash-and-replay experiment: a workflow and the conditions of its runs.
pub struct Scenario<'a> {
    /// The workflow under test.
    pub register: Register<'a>,
    /// Whether its result may follow completion order.
    pub order: Order,
    /// The bodies' world in the uninterrupted and the crashed run.
    pub first: &'a dyn Fn() -> Env,
    /// The bodies' world in recoveries: other latencies, same outcomes.
    pub second: &'a dyn Fn() -> Env,
    /// The executor scheduler of every recovery.
    pub recovery_scheduler: Scheduler,
    /// Where the journal lives.
    pub journal: JournalKind,
}

/// Which crash points [`check_scenario`] tries.
#[derive(Clone, Copy, Debug)]
pub enum Crashes {
    /// After every commit but the last (the hand-written tests).
    Every,
    /// After commit `1 + selector % (commits - 1)` (the fuzzer).
    One(u64),
}

/// Full replay: a run that stops right before recording the finish, then a recovery
/// under `replay_env` and `scheduler`, must give the result the halted run would
/// have (`expected`, or what it noted in its `Env`) without running any body or
/// recording a new step.
fn check_full_replay(
    journal: &Journal,
    register: Register<'_>,
    order: Order,
    (record_env, record_scheduler): (&Env, Scheduler),
    (replay_env, replay_scheduler): (&Env, Scheduler),
    expected: &Result<String, String>,
    what: &str,
) {
    let halted = run_on(
        journal.builder(),
        register,
        record_env,
        Halt::BeforeFinish,
        record_scheduler,
    );
    assert!(
        matches!(halted.result, Err(Error::Stopped { .. })),
        "{what}: the run halted before finishing returned {:?}",
        halted.result
    );
    // What the recording run returned, when the shape noted it; else what an identical
    // run returned (`expected`), which a `select!` run may not match.
    let expected = match record_env.returned() {
        Some(returned) => {
            assert!(
                order == Order::Random || &returned == expected,
                "{what}: a run identical to one that returned {expected:?} returned {returned:?}"
            );
            returned
        }
        None => expected.clone(),
    };
    let replayed = run_on(
        journal.builder(),
        register,
        replay_env,
        Halt::Never,
        replay_scheduler,
    );
    let result = replayed
        .result
        .unwrap_or_else(|err| panic!("{what}: full replay failed: {err}"));
    assert_eq!(result, expected, "{what}: full replay gave another result");
    assert!(
        replay_env.bodies_run().is_empty(),
        "{what}: bodies ran during a full replay: {:?}",
        replay_env.bodies_run()
    );
    assert_eq!(
        replayed.journal, halted.journal,
        "{what}: a full replay recorded steps"
    );
    // The replay delivers what the recording run delivered. (Not every recorded step:
    // a completion queued in the cycle the workflow returned in, say a `select!`
    // loser's, is committed with the finish but never delivered.)
    let delivered = halted.metrics.steps_executed + halted.metrics.steps_replayed;
    assert_eq!(
        (
            replayed.metrics.steps_replayed,
            replayed.metrics.steps_executed
        ),
        (delivered, 0),
        "{what}: (replayed, executed) steps of a full replay"
    );
}

/// The (name, ok) pairs of recorded steps, sorted: what an order-insensitive shape
/// records whatever the timing. (Not the ids: a sequence numbers its next step when
/// the previous one completes, so ids follow completion order.)
fn outcomes(steps: &[RecordedStep]) -> Vec<(&str, bool)> {
    let mut outcomes: Vec<_> = steps
        .iter()
        .map(|(_, name, ok)| (name.as_str(), *ok))
        .collect();
    outcomes.sort_unstable();
    outcomes
}

/// The crash-and-replay check (see the module docs for what is checked). Returns the
/// uninterrupted run's result.
pub fn check_scenario(s: &Scenario<'_>, crashes: Crashes) -> Result<String, String> {
    let register = s.register;
    let first = run_on(
        Journal::new(s.journal).builder(),
        register,
        &(s.first)(),
        Halt::Never,
        Scheduler::Fifo,
    );
    let expected = first
        .result
        .unwrap_or_else(|err| panic!("the uninterrupted run failed: {err}"));
    // `halt_after_commits` counts commits of steps and results, not the first commit,
    // which holds the workflow's start record alone.
    let commits = first.metrics.commits - 1;
    let journal = first.journal;

    check_full_replay(
        &Journal::new(s.journal),
        register,
        s.order,
        (&(s.first)(), Scheduler::Fifo),
        (&(s.second)(), s.recovery_scheduler.clone()),
        &expected,
        "uninterrupted",
    );

    if commits < 2 {
        return expected; // no commit to crash after but the last
    }
    let points: Vec<u64> = match crashes {
        Crashes::Every => (1..commits).collect(),
        Crashes::One(selector) => vec![1 + selector % (commits - 1)],
    };
    for k in points {
        let crashed = Journal::new(s.journal);
        let halted = run_on(
            crashed.builder(),
            register,
            &(s.first)(),
            Halt::AfterCommits(k),
            Scheduler::Fifo,
        );
        if s.order == Order::Random && halted.result.is_ok() {
            continue; // this run took another path, which ended before commit k
        }
        assert!(
            matches!(halted.result, Err(Error::Stopped { .. })),
            "k={k}: the run halted after {k} of {commits} commits returned {:?}",
            halted.result
        );
        let before_crash = halted.journal;
        assert!(
            s.order == Order::Random || journal.starts_with(&before_crash),
            "k={k}: a crashed run's journal {before_crash:?} is not a prefix of the uninterrupted {journal:?}"
        );
        let twin = crashed.fork();

        let env = (s.second)();
        let resumed = run_on(
            crashed.builder(),
            register,
            &env,
            Halt::Never,
            s.recovery_scheduler.clone(),
        );
        let result = resumed
            .result
            .unwrap_or_else(|err| panic!("k={k}: recovery failed: {err}"));
        assert!(
            resumed.journal.starts_with(&before_crash),
            "k={k}: history rewritten: {before_crash:?} became {:?}",
            resumed.journal
        );
        for id in env.bodies_run() {
            assert!(
                !before_crash.iter().any(|step| step.0 == id),
                "k={k}: step {id} was recorded but its body ran again"
            );
        }
        assert_eq!(
            resumed.metrics.steps_replayed,
            before_crash.len() as u64,
            "k={k}: steps replayed"
        );
        if s.order == Order::Insensitive {
            assert_eq!(result, expected, "k={k}: result after a crash");
            assert_eq!(
                outcomes(&resumed.journal),
                outcomes(&journal),
                "k={k}: recorded step names and outcomes after a crash"
            );
        }
        // The twin recovers the same way but stops before finishing; replaying that
        // with the first latencies must reach the same result.
        check_full_replay(
            &twin,
            register,
            s.order,
            (&(s.second)(), s.recovery_scheduler.clone()),
            (&(s.first)(), s.recovery_scheduler.clone()),
            &result,
            &format!("k={k} twin"),
        );
    }
    expected
}

/// The hand-written tests' check: seeded latencies, every crash point, FIFO, and a
/// shape that must return `Ok`.
pub fn check_crash_replay(
    register: Register<'_>,
    order: Order,
    seed: u64,
    other_seed: u64,
) -> String {
    let scenario = Scenario {
        register,
        order,
        first: &|| Env::with_seed(seed),
        second: &|| Env::with_seed(other_seed),
        recovery_scheduler: Scheduler::Fifo,
        journal: JournalKind::Sled,
    };
    check_scenario(&scenario, Crashes::Every).expect("shape returns Ok")
}

/// The fuzzer's catalogue of workflow shapes; sizes are small and bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `join_all` of `n` steps.
    JoinAll {
        /// 1..=8 steps.
        n: u8,
    },
    /// `join_all` of `outer` `join_all`s of `inner` steps each.
    NestedJoins {
        /// 1..=3 groups.
        outer: u8,
        /// 1..=3 steps per group.
        inner: u8,
    },
    /// Two sequences of steps side by side in one `join!`, each stopping at its first
    /// `Err`.
    TwoSequences {
        /// 1..=4 steps in the first.
        a: u8,
        /// 1..=4 steps in the second.
        b: u8,
    },
    /// A step, then a step raced against a durable `ctx.sleep`, then a step.
    /// Order-sensitive: the winner follows the latencies.
    SelectTimeout {
        /// 0..=40 ms.
        timeout_ms: u8,
        /// `select_biased!` (the step's branch polled first) rather than `select!`,
        /// which polls in random order: then even two live runs under the same
        /// latencies may differ when both finish at once ([`Order::Random`]).
        biased: bool,
    },
    /// `n` steps in a `FuturesUnordered`, a follow-up step started per completion.
    /// Order-sensitive: the follow-ups are numbered in completion order.
    Unordered {
        /// 1..=5 first steps.
        n: u8,
    },
    /// `tasks` `ctx.spawn`ed tasks, each a step then two joined steps, beside a step
    /// of the main task.
    Spawned {
        /// 1..=3 tasks.
        tasks: u8,
    },
    /// A `step_with` whose body fails `fails` times before succeeding, under a
    /// `RetryPolicy` of `max_attempts`, beside a plain step.
    Retry {
        /// 0..=4 failures.
        fails: u8,
        /// 1..=4 attempts.
        max_attempts: u8,
    },
    /// A step joined with a durable sleep followed by a step.
    Sleep {
        /// 0..=60 ms.
        ms: u8,
    },
}

impl Shape {
    /// Whether the result may follow completion order.
    pub fn order(self) -> Order {
        match self {
            Shape::SelectTimeout { biased: false, .. } => Order::Random,
            Shape::SelectTimeout { biased: true, .. } => Order::Sensitive,
            Shape::Unordered { .. } => Order::Sensitive,
            _ => Order::Insensitive,
        }
    }

    /// Whether its steps are all created by the workflow's one root task. Only then
    /// may a non-FIFO scheduler run it: the order in which `ctx.spawn`ed tasks are
    /// first polled numbers the steps they create (DESIGN.md §3: "with the FIFO
    /// executor").
    pub fn single_task(self) -> bool {
        !matches!(self, Shape::Spawned { .. })
    }

    /// Registers this shape as [`WORKFLOW`].
    pub fn register(self, b: RuntimeBuilder, env: Env) -> RuntimeBuilder {
        b.register(WORKFLOW, move |ctx: Ctx, (): ()| {
            let env = env.clone();
            async move {
                let result = self.run(&ctx, &env).await;
                env.note_return(&result);
                result
            }
        })
    }

    async fn run(self, ctx: &Ctx, env: &Env) -> Result<String, String> {
        match self {
            Shape::JoinAll { n } => {
                let steps: Vec<_> = (0..u64::from(n))
                    .map(|i| step(ctx, env, "item", i, i * i))
                    .collect();
                Ok(format!("{:?}", futures::future::join_all(steps).await))
            }
            Shape::NestedJoins { outer, inner } => {
                let groups = (0..u64::from(outer)).map(|g| {
                    let steps: Vec<_> = (0..u64::from(inner))
                        .map(|i| step(ctx, env, &format!("g{g}"), g * 10 + i, g * 100 + i))
                        .collect();
                    futures::future::join_all(steps)
                });
                Ok(format!("{:?}", futures::future::join_all(groups).await))
            }
            Shape::TwoSequences { a, b } => {
                let sequence = |prefix: &'static str, len: u8, salt: u64| async move {
                    let mut values = Vec::new();
                    for i in 0..u64::from(len) {
                        values.push(
                            step(ctx, env, &format!("{prefix}{i}"), salt + i, salt * 10 + i)
                                .await?,
                        );
                    }
                    Ok::<_, String>(values)
                };
                let (a, b) = futures::join!(sequence("a", a, 10), sequence("b", b, 20));
                Ok(format!("{a:?} {b:?}"))
            }
            Shape::SelectTimeout { timeout_ms, biased } => {
                let first = step(ctx, env, "before", 1, 1).await;
                let work = step(ctx, env, "work", 2, 2).fuse();
                let timeout = ctx.sleep(Duration::from_millis(timeout_ms.into())).fuse();
                futures::pin_mut!(work, timeout);
                let winner = if biased {
                    futures::select_biased! {
                        done = work => format!("work {done:?}"),
                        () = timeout => "timeout".to_string(),
                    }
                } else {
                    futures::select! {
                        done = work => format!("work {done:?}"),
                        () = timeout => "timeout".to_string(),
                    }
                };
                let after = step(ctx, env, "after", 3, 3).await;
                Ok(format!("{first:?} {winner} {after:?}"))
            }
            Shape::Unordered { n } => {
                let mut pending: FuturesUnordered<_> = (0..u64::from(n))
                    .map(|i| step(ctx, env, "first", i, i).map(move |r| (i, r)))
                    .collect();
                let mut order = Vec::new();
                let mut follow_ups = FuturesUnordered::new();
                while let Some((i, done)) = pending.next().await {
                    order.push((i, done));
                    follow_ups.push(step(ctx, env, &format!("then{i}"), 50 + i, 10 * i));
                }
                let mut second = Vec::new();
                while let Some(done) = follow_ups.next().await {
                    second.push(done);
                }
                Ok(format!("{order:?} {second:?}"))
            }
            Shape::Spawned { tasks } => {
                let handles: Vec<_> = (0..u64::from(tasks))
                    .map(|t| {
                        let (c, e) = (ctx.clone(), env.clone());
                        ctx.spawn(async move {
                            let x = step(&c, &e, &format!("task{t}-a"), 100 + t, t).await?;
                            let (y, z) = futures::join!(
                                step(&c, &e, &format!("task{t}-b"), 110 + t, x + 1),
                                step(&c, &e, &format!("task{t}-c"), 120 + t, x + 2)
                            );
                            Ok::<_, String>((x, y?, z?))
                        })
                    })
                    .collect();
                let main = step(ctx, env, "main", 200, 7).await;
                let mut results = Vec::new();
                for handle in handles {
                    results.push(handle.await);
                }
                Ok(format!("{main:?} {results:?}"))
            }
            Shape::Retry {
                fails,
                max_attempts,
            } => {
                let attempts = Rc::new(Cell::new(0u8));
                let policy =
                    RetryPolicy::new(max_attempts.into()).backoff(Duration::from_millis(5), 2.0);
                let retried = {
                    let env = env.clone();
                    ctx.step_with("retried", policy, move || {
                        let (env, attempts) = (env.clone(), Rc::clone(&attempts));
                        async move {
                            env.body(300).await;
                            attempts.set(attempts.get() + 1);
                            if attempts.get() <= fails {
                                Err(format!("attempt {} failed", attempts.get()))
                            } else {
                                Ok(u64::from(attempts.get()))
                            }
                        }
                    })
                };
                let (retried, plain) = futures::join!(retried, step(ctx, env, "plain", 301, 1));
                Ok(format!("{retried:?} {plain:?}"))
            }
            Shape::Sleep { ms } => {
                let slept = async {
                    ctx.sleep(Duration::from_millis(ms.into())).await;
                    step(ctx, env, "after-sleep", 2, 2).await
                };
                let (before, after) = futures::join!(step(ctx, env, "beside", 1, 1), slept);
                Ok(format!("{before:?} {after:?}"))
            }
        }
    }
}

/// One fuzz case: a shape and the world its runs see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The workflow.
    pub shape: Shape,
    /// Step body latencies in the uninterrupted and the crashed run (by salt).
    pub latencies: Vec<Latency>,
    /// Step body latencies in the recoveries (by salt).
    pub recovery_latencies: Vec<Latency>,
    /// Which bodies return `Err` (by salt), in every run.
    pub failures: Vec<bool>,
    /// Picks the crash point among the uninterrupted run's commits.
    pub crash_selector: u64,
    /// The recoveries' `Scheduler::Scripted` bytes (single-task shapes).
    pub script: Vec<u8>,
    /// Where the journal lives ([`Case::from_bytes`] picks memory, for speed).
    pub journal: JournalKind,
}

/// Reads bounded values from fuzzer bytes; zeros once they run out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// A value in `lo..=hi`.
    fn range(&mut self, lo: u8, hi: u8) -> u8 {
        lo + self.byte() % (hi - lo + 1)
    }

    fn latency(&mut self) -> Latency {
        let b = self.byte();
        if b & 0x80 == 0 {
            Latency::Delay(b % 41)
        } else {
            Latency::Yields(b & 0x07)
        }
    }
}

/// At most this many listed latencies/failures; salts index them modulo the length.
const MAX_PLANS: u8 = 8;
/// At most this many scheduler script bytes.
const MAX_SCRIPT: usize = 32;

impl Case {
    /// Decodes fuzzer bytes into a case; every byte string is a valid case.
    ///
    /// ```
    /// let case = ordo::fuzzing::Case::from_bytes(&[]);
    /// assert_eq!(case.shape, ordo::fuzzing::Shape::JoinAll { n: 1 });
    /// ```
    pub fn from_bytes(data: &[u8]) -> Case {
        let mut r = Reader(data);
        let kind = r.byte();
        let shape = match kind % 8 {
            0 => Shape::JoinAll { n: r.range(1, 8) },
            1 => Shape::NestedJoins {
                outer: r.range(1, 3),
                inner: r.range(1, 3),
            },
            2 => Shape::TwoSequences {
                a: r.range(1, 4),
                b: r.range(1, 4),
            },
            3 => Shape::SelectTimeout {
                timeout_ms: r.range(0, 40),
                biased: (kind / 8) % 2 == 0,
            },
            4 => Shape::Unordered { n: r.range(1, 5) },
            5 => Shape::Spawned {
                tasks: r.range(1, 3),
            },
            6 => Shape::Retry {
                fails: r.range(0, 4),
                max_attempts: r.range(1, 4),
            },
            _ => Shape::Sleep { ms: r.range(0, 60) },
        };
        let crash_selector = r.byte().into();
        let plans = r.range(1, MAX_PLANS);
        let (mut latencies, mut recovery_latencies, mut failures) =
            (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..plans {
            latencies.push(r.latency());
            recovery_latencies.push(r.latency());
            // Mostly successes: a failure often ends a sequence early.
            failures.push(r.byte() % 4 == 0);
        }
        let script = r.0.iter().take(MAX_SCRIPT).copied().collect();
        Case {
            shape,
            latencies,
            recovery_latencies,
            failures,
            crash_selector,
            script,
            journal: JournalKind::Memory,
        }
    }
}

/// Runs one case through [`check_scenario`], at its one crash point; panics on a
/// violation.
///
/// ```
/// use ordo::fuzzing::{check_case, Case, Latency, Shape};
/// check_case(&Case {
///     shape: Shape::TwoSequences { a: 2, b: 3 },
///     latencies: vec![Latency::Delay(5), Latency::Yields(2)],
///     recovery_latencies: vec![Latency::Delay(30)],
///     failures: vec![false, false, true],
///     crash_selector: 2,
///     script: vec![1, 0, 1],
///     journal: ordo::fuzzing::JournalKind::Sled,
/// });
/// ```
pub fn check_case(case: &Case) {
    let shape = case.shape;
    let register = move |b: RuntimeBuilder, env: Env| shape.register(b, env);
    let first = || Env::listed(&case.latencies, &case.failures);
    let second = || Env::listed(&case.recovery_latencies, &case.failures);
    let recovery_scheduler = if shape.single_task() {
        Scheduler::Scripted(case.script.clone())
    } else {
        Scheduler::Fifo
    };
    let scenario = Scenario {
        register: &register,
        order: shape.order(),
        first: &first,
        second: &second,
        recovery_scheduler,
        journal: case.journal,
    };
    // A shape's own `Err` results are results like any other: compared, not failures.
    let _ = check_scenario(&scenario, Crashes::One(case.crash_selector));
}

/// The `replay` fuzz target: decode `data` into a [`Case`] and check it.
///
/// ```
/// ordo::fuzzing::replay(b"any bytes at all");
/// ```
pub fn replay(data: &[u8]) {
    check_case(&Case::from_bytes(data));
}
