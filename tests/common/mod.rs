//! Shared helpers for the runtime's end-to-end tests. The crash-and-replay checker
//! lives in ordo-testkit, shared with the `replay` fuzz target and users.
#![allow(dead_code, unused_imports)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

pub use ordo_testkit::catalogue::{check_crash_replay, run_once, step};
pub use ordo_testkit::{journal_dir, Env, Halt, Order, RunResult};
// A test's journal is a place: a sled folder, or with ORDO_TEST_STORE=postgres a
// PostgreSQL database named after it (ordo_testkit::store); the suite runs on both.
pub use ordo_testkit::store::{builder, recorded_steps};

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

/// Most workflows one commit serves: `MAX_COMMIT_WORKFLOWS` in `src/core.rs` on sled,
/// the store's own bound on PostgreSQL (`Store::max_commit_workflows`).
pub fn workflows_per_commit() -> usize {
    if ordo_testkit::store::is_sled() {
        512
    } else {
        1024
    }
}

/// A gate step bodies wait at, opened once for all of them from the test's thread (the
/// runtime's executor runs there): they wake in the order they began to wait.
pub mod gate {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    thread_local! {
        static GATE: RefCell<(bool, Vec<Waker>)> = const { RefCell::new((false, Vec::new())) };
    }

    /// Ready once the gate is open.
    pub struct Gate;

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            GATE.with(|gate| {
                let mut gate = gate.borrow_mut();
                if gate.0 {
                    Poll::Ready(())
                } else {
                    gate.1.push(cx.waker().clone());
                    Poll::Pending
                }
            })
        }
    }

    /// How many waits are parked at the gate.
    pub fn waiting() -> usize {
        GATE.with(|gate| gate.borrow().1.len())
    }

    /// Opens the gate and drives `rt` until `done()`, without letting it stall: what the
    /// opened bodies return is still waiting for a commit when this returns.
    pub fn open_until(rt: &ordo::Runtime, done: impl Fn() -> bool) {
        rt.block_on(async {
            open();
            while !done() {
                ordo::executor::yield_now().await;
            }
        });
    }

    /// Drives `rt` until `n` waits are parked at the gate.
    pub fn until_waiting(rt: &ordo::Runtime, n: usize) {
        rt.block_on(async {
            while waiting() < n {
                ordo::executor::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
    }

    /// Opens the gate: every parked wait wakes, in the order it began.
    pub fn open() {
        let wakers = GATE.with(|gate| {
            let mut gate = gate.borrow_mut();
            gate.0 = true;
            std::mem::take(&mut gate.1)
        });
        for waker in wakers {
            waker.wake();
        }
    }
}

/// Simulated latency of an outside call, on the executor's (virtual) clock.
pub async fn latency(ms: u64) {
    ordo::executor::sleep(Duration::from_millis(ms)).await;
}

/// A [`Store`](ordo::journal::Store) over a test's journal (either store) that logs every commit into a
/// shared log (which step bodies can write to as well, to check what ran before which
/// commit) and can fail one commit on purpose.
pub mod faulty {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use ordo::journal::{Batch, Completion, Error, Status, Store, WorkflowRecord};

    /// Where the failing commit fails.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Fault {
        /// Before anything is applied: nothing of the batch is written.
        BeforeApply,
        /// After the store applied the batch (its flush or fsync failed, or the answer
        /// of PostgreSQL's COMMIT was lost, say).
        AfterApply,
    }

    /// A shared, thread-safe log of lines.
    #[derive(Clone, Default)]
    pub struct Log(pub Arc<Mutex<Vec<String>>>);

    impl Log {
        pub fn push(&self, line: impl Into<String>) {
            self.0.lock().expect("log").push(line.into());
        }
        pub fn lines(&self) -> Vec<String> {
            self.0.lock().expect("log").clone()
        }
    }

    pub struct FaultyStore {
        pub inner: Box<dyn Store>,
        pub log: Log,
        /// Fail commit number `.0` (1-based) this way.
        pub fault: Option<(u64, Fault)>,
        pub attempts: AtomicU64,
        /// Where reads of workflow records are logged, if anywhere: `read ID` for one,
        /// `read N at once` for [`Store::workflows_by_id`].
        pub reads: Option<Log>,
    }

    impl FaultyStore {
        pub fn new(inner: Box<dyn Store>, log: Log, fault: Option<(u64, Fault)>) -> Self {
            FaultyStore {
                inner,
                log,
                fault,
                attempts: AtomicU64::new(0),
                reads: None,
            }
        }
    }

    fn injected() -> Error {
        Error::Io(std::io::Error::other("injected commit failure"))
    }

    impl Store for FaultyStore {
        fn commit(&self, batch: &Batch) -> Result<(), Error> {
            let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let pending = batch
                .workflows()
                .iter()
                .filter(|w| w.status == Status::Pending)
                .count();
            let queued = batch
                .workflows()
                .iter()
                .filter(|w| matches!(w.status, Status::Enqueued | Status::Delayed))
                .count();
            let mut line = format!(
                "commit {n}: {pending} pending records, {} completions",
                batch.completion_count()
            );
            if queued > 0 {
                line.push_str(&format!(", {queued} queued records"));
            }
            self.log.push(line);
            match self.fault {
                Some((k, Fault::BeforeApply)) if k == n => Err(injected()),
                Some((k, Fault::AfterApply)) if k == n => {
                    self.inner.commit(batch)?;
                    Err(injected())
                }
                _ => self.inner.commit(batch),
            }
        }
        fn workflow(&self, id: &str) -> Result<Option<WorkflowRecord>, Error> {
            if let Some(reads) = &self.reads {
                reads.push(format!("read {id}"));
            }
            self.inner.workflow(id)
        }
        fn workflows_by_id(&self, ids: &[&str]) -> Result<Vec<Option<WorkflowRecord>>, Error> {
            if let Some(reads) = &self.reads {
                reads.push(format!("read {} at once", ids.len()));
            }
            self.inner.workflows_by_id(ids)
        }
        fn completions(&self, workflow_id: &str) -> Result<Vec<Completion>, Error> {
            self.inner.completions(workflow_id)
        }
        fn workflows(&self, status: Option<Status>) -> Result<Vec<WorkflowRecord>, Error> {
            self.inner.workflows(status)
        }
        fn type_name(&self, fingerprint: u64) -> Result<Option<String>, Error> {
            self.inner.type_name(fingerprint)
        }
        fn commit_count(&self) -> u64 {
            self.inner.commit_count()
        }
        fn messages(&self, destination: &str) -> Result<Vec<ordo::journal::Message>, Error> {
            self.inner.messages(destination)
        }
        fn message_key_used(&self, destination: &str, key: &str) -> Result<bool, Error> {
            self.inner.message_key_used(destination, key)
        }
        fn last_message_number(&self) -> Result<u64, Error> {
            self.inner.last_message_number()
        }
        fn event(&self, workflow_id: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
            self.inner.event(workflow_id, key)
        }
        fn events(&self, workflow_id: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
            self.inner.events(workflow_id)
        }
        fn trace_context(&self, workflow_id: &str) -> Result<Option<String>, Error> {
            self.inner.trace_context(workflow_id)
        }
        fn queue_records(
            &self,
            prefix: &[u8],
        ) -> Result<Vec<ordo::journal::queue::QueueRecord>, Error> {
            self.inner.queue_records(prefix)
        }
        fn awakeable(
            &self,
            workflow_id: &str,
            step_id: u64,
        ) -> Result<Option<ordo::journal::Outcome>, Error> {
            self.inner.awakeable(workflow_id, step_id)
        }
        // The rest as the store answers them: on PostgreSQL, its worker's claims,
        // refusals and notifications.
        fn claim_pending(&self) -> Result<Vec<WorkflowRecord>, Error> {
            self.inner.claim_pending()
        }
        fn claim(&self, id: &str) -> Result<bool, Error> {
            self.inner.claim(id)
        }
        fn unheld_queued(&self) -> Result<Vec<String>, Error> {
            self.inner.unheld_queued()
        }
        fn claim_queued(&self, ids: &[String]) -> Result<Vec<WorkflowRecord>, Error> {
            self.inner.claim_queued(ids)
        }
        fn swap_queue_record(
            &self,
            key: &[u8],
            expected: Option<&[u8]>,
            writes: &[(Vec<u8>, Option<Vec<u8>>)],
        ) -> Result<Option<ordo::journal::queue::Swap>, Error> {
            self.inner.swap_queue_record(key, expected, writes)
        }
        fn admit(
            &self,
            admission: &ordo::journal::queue::Admission,
        ) -> Result<Option<ordo::journal::queue::Admitted>, Error> {
            self.inner.admit(admission)
        }
        fn reserve_queue_holder(&self, key: &[u8], id: &str) -> Result<Option<String>, Error> {
            self.inner.reserve_queue_holder(key, id)
        }
        fn release_queue_holder(&self, key: &[u8], id: &str) -> Result<(), Error> {
            self.inner.release_queue_holder(key, id)
        }
        fn refused_starts(&self) -> Vec<String> {
            self.inner.refused_starts()
        }
        fn reserve_message_numbers(&self, count: u64) -> Result<Option<u64>, Error> {
            self.inner.reserve_message_numbers(count)
        }
        fn on_change(&self, wake: Box<dyn Fn() + Send + Sync>) {
            self.inner.on_change(wake);
        }
        fn changed_elsewhere(&self) -> Vec<ordo::journal::Elsewhere> {
            self.inner.changed_elsewhere()
        }
        fn takeover_interval(&self) -> Option<std::time::Duration> {
            self.inner.takeover_interval()
        }
        fn max_commit_workflows(&self) -> Option<usize> {
            self.inner.max_commit_workflows()
        }
    }
}

/// An order workflow of three steps, its versions after code changes, and a journal where
/// it was interrupted: what the non-determinism and recovery-attempt tests replay.
pub mod order {
    use ordo::{Ctx, Error, RuntimeBuilder};

    use super::{builder, journal_dir};

    /// reserve, charge, ship.
    pub fn original(b: RuntimeBuilder) -> RuntimeBuilder {
        b.register("order", |ctx: Ctx, (): ()| async move {
            let a = ctx
                .step("reserve", || async { Ok::<_, String>(1u32) })
                .await?;
            let b = ctx
                .step("charge", || async { Ok::<_, String>(2u32) })
                .await?;
            let c = ctx.step("ship", || async { Ok::<_, String>(3u32) }).await?;
            Ok::<_, String>(a + b + c)
        })
    }

    /// "charge" renamed "bill".
    pub fn renamed(b: RuntimeBuilder) -> RuntimeBuilder {
        b.register("order", |ctx: Ctx, (): ()| async move {
            let a = ctx
                .step("reserve", || async { Ok::<_, String>(1u32) })
                .await?;
            let b = ctx.step("bill", || async { Ok::<_, String>(2u32) }).await?;
            let c = ctx.step("ship", || async { Ok::<_, String>(3u32) }).await?;
            Ok::<_, String>(a + b + c)
        })
    }

    /// A journal where "reserve" and "charge" are recorded and "o-1" is pending.
    pub fn interrupted() -> tempfile::TempDir {
        let dir = journal_dir();
        let rt = original(builder(dir.path()).halt_after_commits(2))
            .build()
            .expect("build");
        let h = rt
            .start::<_, u32, String>("order", "o-1", ())
            .expect("start");
        assert!(matches!(
            rt.block_on(h.result()),
            Err(Error::Stopped { .. })
        ));
        drop((h, rt));
        dir
    }
}

/// The hour-long durable sleeper, and processes that record its deadline and die, or
/// restart and wake it: what the durable-sleep and clock tests run.
pub mod sleeper {
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use ordo::{Ctx, Error};

    use super::builder;

    /// Wall-clock seconds at which the sleep tests' first process starts.
    pub const T0: u64 = 1_800_000_000;

    /// Sleeps an hour durably, then returns the (recorded) wall time it woke, in seconds.
    pub async fn sleeper(ctx: Ctx, (): ()) -> Result<u64, String> {
        ctx.sleep(Duration::from_secs(3600)).await;
        let woke = ctx.now().await;
        Ok(woke
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs())
    }

    /// A process that starts `id` at `T0`, records the sleep's deadline and dies.
    pub fn record_deadline_then_die(dir: &Path, id: &str) {
        let rt = builder(dir)
            .start_time(UNIX_EPOCH + Duration::from_secs(T0))
            .halt_after_commits(1)
            .register("sleeper", sleeper)
            .build()
            .expect("build");
        let h = rt
            .start::<_, u64, String>("sleeper", id, ())
            .expect("start");
        assert!(matches!(
            rt.block_on(h.result()),
            Err(Error::Stopped { .. })
        ));
        drop((h, rt));
        assert_eq!(
            super::recorded_steps(dir, id),
            vec![(0, "ordo.sleep.until".into(), true)]
        );
    }

    /// A process whose wall clock reads `start_secs` at start, that recovers `id`;
    /// returns when it woke, in seconds.
    pub fn restart_and_wake(dir: &Path, id: &str, start_secs: u64) -> u64 {
        let rt = builder(dir)
            .start_time(UNIX_EPOCH + Duration::from_secs(start_secs))
            .register("sleeper", sleeper)
            .build()
            .expect("build");
        rt.recover().expect("recover");
        let h = rt.handle::<u64, String>(id).expect("handle");
        rt.block_on(h.result()).expect("result").expect("ok")
    }
}

/// Appends `line` and a newline to the body log at `log` (created if missing): how step
/// bodies note their runs, to count them across the processes of a kill test.
pub fn log_body_run(log: &std::path::Path, line: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("body log opens");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("body log write");
    file.flush().expect("body log flush");
}

/// A child process of this test binary, running one `#[ignore]`d test as a worker, to
/// be killed with SIGKILL once it said a given line.
pub mod worker {
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Runs the ignored test `test` of this binary with `env` set to `dir`; returns the
    /// child and the lines of its stdout.
    pub fn spawn(test: &str, env: &str, dir: &Path) -> (Child, impl Iterator<Item = String>) {
        let exe = std::env::current_exe().expect("test binary path");
        let mut child = Command::new(exe);
        ordo_testkit::store::pass_to(&mut child);
        let mut child = child
            .args(["--exact", test, "--nocapture", "--ignored"])
            .env(env, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("child spawns");
        let stdout = child.stdout.take().expect("stdout");
        (child, BufReader::new(stdout).lines().map_while(Result::ok))
    }

    /// [`spawn`], returning once the child printed a line containing `line` (panics if
    /// it ended first).
    pub fn spawn_until(test: &str, env: &str, dir: &Path, line: &str) -> Child {
        let (child, mut lines) = spawn(test, env, dir);
        let said = lines.any(|l| l.contains(line));
        assert!(said, "the worker ended before saying {line:?}");
        child
    }

    /// SIGKILL, and reap.
    pub fn kill(mut child: Child) {
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// Wall-clock milliseconds since the epoch.
    pub fn now_ms() -> u64 {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX)
    }
}

/// Leaves in the journal at `dir` workflow `id` of registered name `name`, started with
/// `input` and pending with no step taken, its record as a build before journal schema 9
/// wrote it: plain awakeable tokens, and every run numbered from step 0.
pub fn started_before_schema_9<I>(dir: &std::path::Path, name: &str, id: &str, input: I)
where
    I: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    {
        let rt = builder(dir)
            .register(name, |_: ordo::Ctx, _: I| {
                std::future::pending::<Result<(), ()>>()
            })
            .build()
            .expect("build");
        let _started = rt.start::<_, (), ()>(name, id, input).expect("start");
        // Driven until the start is committed.
        let wait = rt
            .client()
            .get_event::<u8>(id, "never", Duration::from_millis(50));
        assert_eq!(rt.block_on(wait).expect("read"), None);
    }
    let journal = ordo_testkit::store::open(dir);
    let mut old = journal.workflow(id).expect("read").expect("recorded");
    old.keyed_tokens = false;
    let mut batch = ordo::journal::Batch::new();
    batch.update_workflow(old, ordo::Status::Pending);
    journal.commit(&batch).expect("commit");
}
