//! `Runtime` and its builder: opening the journal, registering workflows, starting,
//! recovering and driving them.

use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ordo_executor::{Clock, Executor, Scheduler};
use ordo_journal::{Batch, Durability, SledJournal, Status, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::WallClock;
use crate::core::{Core, Metrics, Observer};
use crate::ctx::Ctx;
use crate::deadline::StartOptions;
use crate::error::Error;
use crate::event::Event;
use crate::handle::WorkflowHandle;
use crate::launch::{launch, SpawnRoot};
use crate::registry::Registry;
use crate::step::BeforeStepBody;
use crate::talk::Client;
use crate::telemetry::TraceParent;

/// The folder the runtime uses when none is given: the quickstart's and the CLI's.
///
/// ```
/// // `Runtime::builder().build()` keeps its journal in ./ordo-data, where
/// // `ordo list` looks by default.
/// assert_eq!(ordo::DEFAULT_DATA_DIR, "ordo-data");
/// ```
pub const DEFAULT_DATA_DIR: &str = "ordo-data";

/// How many times `recover()` resumes the same pending workflow before giving up.
///
/// ```
/// // Change it with `RuntimeBuilder::max_recovery_attempts`.
/// let rt = ordo::Runtime::builder()
///     .temporary()
///     .max_recovery_attempts(ordo::DEFAULT_MAX_RECOVERY_ATTEMPTS / 10)
///     .build()?;
/// # Ok::<(), ordo::Error>(())
/// ```
pub const DEFAULT_MAX_RECOVERY_ATTEMPTS: u32 = 100;

/// Where the journal lives.
enum StoreChoice {
    /// `ORDO_DATABASE_URL` if set, else sled in [`DEFAULT_DATA_DIR`].
    Default,
    Path(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(ordo_journal::PgOptions),
    Temporary,
    Custom(Box<dyn Store>),
}

/// Configures and builds a [`Runtime`].
///
/// ```
/// use ordo::{Clock, Ctx, Durability, Runtime};
///
/// async fn noop(_ctx: Ctx, _: ()) -> Result<(), String> { Ok(()) }
///
/// let dir = tempfile::tempdir()?;
/// let rt = Runtime::builder()
///     .path(dir.path().join("journal"))
///     .durability(Durability::Flush)
///     .clock(Clock::Virtual)
///     .register("noop", noop)
///     .build()?;
/// # drop(rt);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RuntimeBuilder {
    store: StoreChoice,
    durability: Durability,
    clock: Clock,
    start_time: Option<SystemTime>,
    registry: Registry,
    observer: Option<Observer>,
    halt_after_commits: Option<u64>,
    halt_before_finish: bool,
    /// Which ready task the executor polls next: FIFO, which determinism rule 2
    /// relies on, unless a fuzzer reorders things on purpose.
    scheduler: Scheduler,
    max_recovery_attempts: u32,
    before_step_body: Option<BeforeStepBody>,
    /// Recorded in the record of every workflow this runtime starts.
    app_version: Option<String>,
    /// Finished workflows older than this are deleted by a sweep at `recover()`.
    retention: Option<Duration>,
    /// Declared queues.
    queues: std::collections::BTreeMap<String, crate::queue::QueueOptions>,
    /// Declared schedules (a malformed one fails `build`).
    schedules: Vec<Result<crate::queue::Schedule, Error>>,
    /// The dashboard to serve, if asked for (see `dashboard`).
    pub(crate) dashboard: Option<crate::dashboard::Config>,
    /// Serve the admin socket in the journal's folder (journals at a path only).
    admin_socket: bool,
}

impl RuntimeBuilder {
    fn new() -> Self {
        RuntimeBuilder {
            store: StoreChoice::Default,
            durability: Durability::default(),
            clock: Clock::System,
            start_time: None,
            registry: Registry::default(),
            observer: None,
            halt_after_commits: None,
            halt_before_finish: false,
            scheduler: Scheduler::Fifo,
            max_recovery_attempts: DEFAULT_MAX_RECOVERY_ATTEMPTS,
            before_step_body: None,
            app_version: None,
            retention: None,
            queues: std::collections::BTreeMap::new(),
            schedules: Vec::new(),
            dashboard: None,
            admin_socket: true,
        }
    }

    /// Keeps the journal (a sled database) in this folder, created if missing.
    /// The default is `./ordo-data`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let rt = ordo::Runtime::builder().path(dir.path()).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = StoreChoice::Path(path.into());
        self
    }

    /// Keeps the journal in a temporary database, deleted when the runtime is
    /// dropped (tests, examples). Implies [`Durability::None`].
    ///
    /// ```
    /// let rt = ordo::Runtime::builder().temporary().build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn temporary(mut self) -> Self {
        self.store = StoreChoice::Temporary;
        self
    }

    /// Uses an already open journal, e.g. another [`Store`] implementation.
    ///
    /// ```
    /// let journal = ordo::journal::SledJournal::temporary()?;
    /// let rt = ordo::Runtime::builder().store(Box::new(journal)).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn store(mut self, store: Box<dyn Store>) -> Self {
        self.store = StoreChoice::Custom(store);
        self
    }

    /// Journals in the PostgreSQL database at `url`, shared with every other runtime
    /// (worker process) given the same database (see [`crate::multi_worker`]). Without
    /// any store chosen, the environment variable `ORDO_DATABASE_URL`, when set, does
    /// the same.
    ///
    /// ```no_run
    /// let rt = ordo::Runtime::builder().postgres("postgres://ordo@db.internal/orders").build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    #[cfg(feature = "postgres")]
    pub fn postgres(self, url: impl Into<String>) -> Self {
        self.postgres_with(ordo_journal::PgOptions::new(url))
    }

    /// Like [`RuntimeBuilder::postgres`], with a worker name, a lease, and how long to
    /// retry a lost connection ([`PgOptions`](ordo_journal::PgOptions)).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let options = ordo::journal::PgOptions::new("postgres://ordo@db.internal/orders")
    ///     .worker_name("orders-1")
    ///     .lease(Duration::from_secs(5));
    /// let rt = ordo::Runtime::builder().postgres_with(options).build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    #[cfg(feature = "postgres")]
    pub fn postgres_with(mut self, options: ordo_journal::PgOptions) -> Self {
        self.store = StoreChoice::Postgres(options);
        self
    }

    /// What a commit survives (default [`Durability::Sync`]: power loss).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let rt = ordo::Runtime::builder().path(dir.path()).durability(ordo::Durability::Flush).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The executor's clock. [`Clock::Virtual`] makes durable sleeps and retry
    /// backoffs take no real time (time jumps to the next deadline when idle).
    ///
    /// ```
    /// let rt = ordo::Runtime::builder().temporary().clock(ordo::Clock::Virtual).build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// With the virtual clock: the wall-clock time at which virtual time starts
    /// (default: now). Lets a test restart "later" and check durable sleeps.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let rt = ordo::Runtime::builder()
    ///     .temporary()
    ///     .clock(ordo::Clock::Virtual)
    ///     .start_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    ///     .build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn start_time(mut self, at: SystemTime) -> Self {
        self.start_time = Some(at);
        self
    }

    /// Registers a workflow function under `name`. The function takes a [`Ctx`] and
    /// its input `I` and returns `Result<O, E>`; all three are serde types, since
    /// they are journaled.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn echo(_ctx: Ctx, text: String) -> Result<String, ()> { Ok(text) }
    /// let rt = Runtime::builder().temporary().register("echo", echo).build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn register<F, Fut, I, O, E>(mut self, name: &str, workflow: F) -> Self
    where
        F: Fn(Ctx, I) -> Fut + 'static,
        Fut: Future<Output = Result<O, E>> + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + DeserializeOwned + 'static,
        E: Serialize + DeserializeOwned + 'static,
    {
        self.registry.register(name, workflow);
        self
    }

    /// Calls `observer` for every [`Event`]: each step delivered (executed or
    /// replayed), each group commit, each finished workflow.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let commits = Rc::new(Cell::new(0));
    /// let seen = Rc::clone(&commits);
    /// let rt = ordo::Runtime::builder()
    ///     .temporary()
    ///     .observer(move |event| {
    ///         if let ordo::Event::Committed { .. } = event { seen.set(seen.get() + 1) }
    ///     })
    ///     .build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn observer(mut self, observer: impl Fn(&Event) + 'static) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// How many times [`Runtime::recover`] resumes the same pending workflow before it
    /// reports it as [`Error::RecoveryExhausted`] instead (default 100).
    ///
    /// ```
    /// let rt = ordo::Runtime::builder().temporary().max_recovery_attempts(3).build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn max_recovery_attempts(mut self, attempts: u32) -> Self {
        self.max_recovery_attempts = attempts;
        self
    }

    /// The application's version (a release number, a git hash), recorded in the record
    /// of every workflow this runtime starts or forks, and shown by `ordo list` and
    /// `ordo show`. A workflow keeps the version it was started under while later
    /// versions resume it: the version says which code's decisions its journal holds, so
    /// a patch (see [`Ctx::patched`]) can be retired once no workflow started before it
    /// is left.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn noop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// let rt = Runtime::builder().temporary().app_version("2.3.1").register("noop", noop).build()?;
    /// let handle = rt.start::<_, (), ()>("noop", "n-1", ())?;
    /// rt.block_on(handle.result())?.expect("noop succeeds");
    /// let record = rt.journal().workflow("n-1")?.expect("recorded");
    /// assert_eq!(record.app_version.as_deref(), Some("2.3.1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn app_version(mut self, version: impl Into<String>) -> Self {
        self.app_version = Some(version.into());
        self
    }

    /// Automatic retention: finished workflows (succeeded, failed or cancelled) whose
    /// record was last written more than `older_than` ago are deleted with their
    /// completions, by a sweep that [`Runtime::recover`] starts on the executor. The
    /// sweep deletes at most [`GC_BATCH`](crate::GC_BATCH) workflows per commit and
    /// waits a millisecond of the executor's clock between commits, in which workflows
    /// go on making steps (with [`Clock::Virtual`] it waits until nothing else is left to
    /// do), so recovery is not held up; it ends when nothing is left to delete. A long-running process that wants more sweeps calls
    /// [`Runtime::gc`] (e.g. daily). Off by default: nothing is ever deleted.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let dir = tempfile::tempdir()?;
    /// let rt = ordo::Runtime::builder()
    ///     .path(dir.path())
    ///     .retention(Duration::from_secs(30 * 24 * 3600))
    ///     .build()?;
    /// rt.recover()?; // starts the sweep; `block_on`/`run` drive it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retention(mut self, older_than: Duration) -> Self {
        self.retention = Some(older_than);
        self
    }

    /// Declares queue `name` with its limits (see the `queue` module: dispatch happens
    /// in the group commit that frees a slot, no polling). Declaring a queue again
    /// replaces its options.
    ///
    /// ```
    /// use ordo::QueueOptions;
    /// let rt = ordo::Runtime::builder().temporary()
    ///     .queue("llm", QueueOptions::new().concurrency(4).rate_limit(60, std::time::Duration::from_secs(60)))
    ///     .build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn queue(mut self, name: &str, options: crate::queue::QueueOptions) -> Self {
        self.queues.insert(name.to_string(), options);
        self
    }

    /// Starts workflow `workflow` at every tick of `cron` (UTC; five fields, six with
    /// seconds first, or seven with a year last; `@daily`, `@hourly` and the like too;
    /// one that never matches, such as February 30, is accepted and never ticks), with
    /// the tick time (`SystemTime`) as input and the id
    /// `"<name>@<tick time>"`: exactly once per tick, across crashes and restarts.
    /// Ticks missed while no process ran are skipped; see [`RuntimeBuilder::schedule_with`].
    /// The schedule's task keeps [`Runtime::run`] going.
    ///
    /// `build` fails with [`Error::InvalidSchedule`] on a malformed expression or a name
    /// another schedule has, and
    /// [`Error::UnknownWorkflow`] or [`Error::TypeMismatch`] when `workflow` is not
    /// registered with a `SystemTime` input.
    ///
    /// ```
    /// use ordo::{Clock, Ctx, Runtime};
    /// use std::time::{Duration, SystemTime};
    /// async fn report(_: Ctx, tick: SystemTime) -> Result<(), String> { Ok(()) }
    ///
    /// let rt = Runtime::builder().temporary().clock(Clock::Virtual)
    ///     .register("report", report)
    ///     .schedule("every-5-min", "*/5 * * * *", "report")
    ///     .build()?;
    /// rt.block_on(ordo::executor::sleep(Duration::from_secs(3600)));
    /// let ticks = rt.journal().workflows(None)?.len();
    /// assert!((11..=12).contains(&ticks));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn schedule(self, name: &str, cron: &str, workflow: &str) -> Self {
        self.schedule_with(name, cron, workflow, crate::queue::MissedTicks::Skip)
    }

    /// [`RuntimeBuilder::schedule`], saying what to do with the ticks missed while no
    /// process ran the schedule.
    ///
    /// ```
    /// use ordo::{Ctx, MissedTicks, Runtime};
    /// use std::time::SystemTime;
    /// async fn bill(_: Ctx, tick: SystemTime) -> Result<(), String> { Ok(()) }
    /// let rt = Runtime::builder().temporary()
    ///     .register("bill", bill)
    ///     .schedule_with("hourly-billing", "0 * * * *", "bill", MissedTicks::Backfill)
    ///     .build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn schedule_with(
        mut self,
        name: &str,
        cron: &str,
        workflow: &str,
        missed: crate::queue::MissedTicks,
    ) -> Self {
        self.schedules
            .push(crate::queue::Schedule::parse(name, cron, workflow, missed));
        self
    }

    /// Whether the runtime serves the admin socket (see [`admin`](crate::admin)) in its
    /// journal's folder, `<path>/admin.sock`, through which the `ordo` CLI lists, shows,
    /// cancels, resumes, forks and collects workflows while the application runs. On by
    /// default for a journal at a [`path`](RuntimeBuilder::path); temporary and custom
    /// stores have none.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let rt = ordo::Runtime::builder().path(dir.path()).admin_socket(false).build()?;
    /// assert_eq!(rt.admin_socket(), None);
    /// assert!(!dir.path().join(ordo::admin::SOCKET_FILE).exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn admin_socket(mut self, serve: bool) -> Self {
        self.admin_socket = serve;
        self
    }

    /// Testing aid: after this many group commits the runtime behaves as if the
    /// process died right there: nothing more is committed or delivered, and running
    /// workflows stop with [`Error::Stopped`]. Reopen the journal and `recover()`.
    #[doc(hidden)]
    pub fn halt_after_commits(mut self, commits: u64) -> Self {
        self.halt_after_commits = Some(commits);
        self
    }

    /// Testing aid: behaves as if the process died right before the commit that would
    /// record the end of the last running workflow (a parent, after its children); the
    /// completions of that commit are written, the final statuses are not. Leaves a journal whose workflows
    /// replay entirely from records.
    #[doc(hidden)]
    pub fn halt_before_finish(mut self) -> Self {
        self.halt_before_finish = true;
        self
    }

    /// Testing aid: the executor's [`Scheduler`] (default [`Scheduler::Fifo`]). The
    /// replay fuzzer runs recoveries under [`Scheduler::Scripted`] to check that the
    /// order in which step bodies progress cannot change a replayed workflow's
    /// decisions. Workflows whose `ctx.spawn`ed tasks create steps need FIFO: the
    /// order those tasks are first polled in numbers their steps.
    #[doc(hidden)]
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = scheduler;
        self
    }

    /// Testing aid: `hook` is called when a live step body is about to start, and the
    /// body waits for the future it returns; an outcome it resolves to stands for the
    /// body's, which then never runs. ordo-testkit delays bodies with it (other
    /// latencies, other completion orders), notes which bodies ran, and mocks steps.
    #[doc(hidden)]
    pub fn before_step_body(mut self, hook: BeforeStepBody) -> Self {
        self.before_step_body = Some(hook);
        self
    }

    /// Opens the journal and builds the runtime.
    ///
    /// Fails with [`Error::Journal`] when the journal is locked by another process,
    /// corrupt, or of an unsupported version; or when a registered workflow name, a
    /// queue's name or the [`app_version`](RuntimeBuilder::app_version) is one the
    /// journal does not take on every store: one with a NUL character
    /// (`ordo_journal::Error::NulCharacter`), or a name over
    /// [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes (`IdTooLong`).
    ///
    /// ```
    /// # use ordo::Ctx;
    /// # async fn noop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// let rt = ordo::Runtime::builder().temporary().build()?;
    /// assert!(ordo::Runtime::builder().temporary().register("no\0op", noop).build().is_err());
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn build(mut self) -> Result<Runtime, Error> {
        // Each workflow's record carries its name and the version, and queue records
        // the names of queues: one the journal cannot store would fail the commit of
        // every workflow with it.
        for name in self
            .registry
            .names()
            .chain(self.queues.keys().map(String::as_str))
        {
            crate::core::check_key(name)?;
        }
        if let Some(version) = &self.app_version {
            crate::core::check_text(version)?;
        }
        if matches!(self.store, StoreChoice::Default) {
            self.store = default_store();
        }
        let admin_dir = match &self.store {
            StoreChoice::Path(path) if self.admin_socket => Some(path.clone()),
            _ => None,
        };
        #[cfg(feature = "postgres")]
        let mut relay = None;
        let store: Box<dyn Store> = match self.store {
            StoreChoice::Path(path) => Box::new(SledJournal::open(path, self.durability)?),
            StoreChoice::Temporary => Box::new(SledJournal::temporary()?),
            StoreChoice::Default => Box::new(SledJournal::open(DEFAULT_DATA_DIR, self.durability)?),
            #[cfg(feature = "postgres")]
            StoreChoice::Postgres(options) => {
                let journal = options.connect()?;
                relay = journal.relay();
                Box::new(journal)
            }
            StoreChoice::Custom(store) => store,
        };
        let executor = Executor::builder()
            .clock(self.clock)
            .scheduler(self.scheduler)
            .build();
        let clock = match self.clock {
            Clock::Virtual => {
                let start = self.start_time.unwrap_or_else(SystemTime::now);
                let start_ms = start
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                WallClock::virtual_from(start_ms, executor.now())
            }
            _ => WallClock::system(),
        };
        let next_message = store.last_message_number()? + 1;
        let mut core = Core::new(
            store,
            self.registry,
            clock,
            self.observer,
            self.halt_after_commits,
            self.max_recovery_attempts,
        );
        core.halt_before_finish = self.halt_before_finish;
        core.before_step_body = self.before_step_body;
        core.next_message.set(next_message);
        core.app_version.clone_from(&self.app_version);
        let mut schedules = Vec::with_capacity(self.schedules.len());
        for schedule in self.schedules {
            let schedule = schedule?;
            if schedules
                .iter()
                .any(|s: &crate::queue::Schedule| s.name == schedule.name)
            {
                // Ticks are named after the schedule: two of one name would share them,
                // and one of the two would never run.
                return Err(Error::InvalidSchedule {
                    schedule: schedule.name,
                    reason: "another schedule of this name was declared".into(),
                });
            }
            // Its ticks' ids (`<name>@<time>`) must fit the journal's keys.
            crate::core::check_key(&format!("{}@2000-01-01T00:00:00Z", schedule.name))?;
            core.registry
                .lookup(&schedule.workflow)?
                .encode_input(&schedule.name, &SystemTime::UNIX_EPOCH)?;
            schedules.push(schedule);
        }
        core.queues = crate::queue::Queues::load(self.queues, schedules, &*core.store)?;
        let core = Rc::new(core);
        for schedule in core.queues.schedules() {
            let task = crate::queue::schedule::run(Rc::downgrade(&core), Rc::clone(schedule));
            drop(executor.spawn(task));
        }
        let (admin, inbox) = match admin_dir {
            Some(dir) => {
                let (server, inbox) = crate::admin::server::start(&dir, executor.stall_waker())?;
                (Some(server), Some(inbox))
            }
            None => (None, None),
        };
        #[cfg(feature = "postgres")]
        let relayed = match relay {
            Some(relay) => Some(crate::admin::relay::start(relay, executor.stall_waker())?),
            None => None,
        };
        #[cfg(not(feature = "postgres"))]
        let relayed: Option<crate::admin::server::Inbox> = None;
        let hook_core = Rc::clone(&core);
        // `on_stall` launches the workflows whose start it committed; admin requests
        // are served between deliveries, like any client's.
        // What other workers commit (a shared journal) wakes the executor; the stall hook
        // hands it over.
        let change_waker = executor.stall_waker();
        core.store
            .on_change(Box::new(move || change_waker.wake_by_ref()));
        executor.set_stall_hook(move || {
            hook_core.take_changes_from_elsewhere();
            let stalled = hook_core.on_stall();
            let served = inbox.as_ref().is_some_and(|inbox| inbox.serve(&hook_core));
            let relayed = relayed
                .as_ref()
                .is_some_and(|inbox| inbox.serve(&hook_core));
            stalled || served || relayed
        });
        let dashboard = match self.dashboard {
            Some(config) => Some(crate::dashboard::start(config, &core, &executor)?),
            None => None,
        };
        Ok(Runtime {
            executor,
            admin,
            core,
            retention: self.retention,
            dashboard,
            takeover: std::cell::Cell::new(false),
        })
    }
}

/// Claims the pending workflows the store lets this runtime drive (all of them on
/// sled), commits their attempt counters in one commit, and launches them with `spawn`:
/// [`Runtime::recover`], and the periodic takeover on a shared store.
pub(crate) fn resume_claimed(
    core: &Rc<Core>,
    spawn: SpawnRoot<'_>,
) -> Result<RecoveryReport, Error> {
    let mut report = RecoveryReport::default();
    let mut batch = Batch::new();
    let mut to_resume = Vec::new();
    for record in core.store.claim_pending()? {
        if core.running.borrow().contains_key(&record.id) {
            continue;
        }
        let Some(registration) = core.registry.get(&record.name).cloned() else {
            report.unregistered.push((record.id, record.name));
            continue;
        };
        let id = record.id.clone();
        match core.prepare_resume(record) {
            Ok((wf, record)) => {
                batch.update_workflow(record, Status::Pending);
                to_resume.push((wf, registration));
            }
            Err(err) => report.failed.push((id, err)),
        }
    }
    if !batch.is_empty() {
        core.store.commit(&batch)?;
    }
    for (wf, registration) in to_resume {
        core.note_halt_subject(&wf.id);
        report.resumed.push(wf.id.clone());
        launch(core, &wf, &registration, spawn);
    }
    Ok(report)
}

/// The store of a builder given none: PostgreSQL at `ORDO_DATABASE_URL` when that is set
/// (and this build has the `postgres` feature), else sled in [`DEFAULT_DATA_DIR`].
fn default_store() -> StoreChoice {
    #[cfg(feature = "postgres")]
    if let Some(url) = std::env::var("ORDO_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    {
        return StoreChoice::Postgres(ordo_journal::PgOptions::new(url));
    }
    StoreChoice::Path(PathBuf::from(DEFAULT_DATA_DIR))
}

/// What [`Runtime::recover`] did with each pending workflow.
///
/// ```
/// let report = ordo::RecoveryReport::default();
/// assert!(report.resumed.is_empty() && report.is_clean());
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Ids of the workflows now being replayed.
    pub resumed: Vec<String>,
    /// `(id, name)` of pending workflows whose name is not registered; left as they are.
    pub unregistered: Vec<(String, String)>,
    /// Workflows left alone, with why: too many recovery attempts, or a record that
    /// could not be read.
    pub failed: Vec<(String, Error)>,
}

impl RecoveryReport {
    /// `true` when every pending workflow was resumed.
    ///
    /// ```
    /// assert!(ordo::RecoveryReport::default().is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.unregistered.is_empty() && self.failed.is_empty()
    }
}

/// The durable runtime: a journal, registered workflows, and the deterministic
/// executor that runs them on this thread.
///
/// Not `Send`: a runtime and its workflows live on one thread. To use it from tokio,
/// drive [`Runtime::run`] inside a `LocalSet` (or a current-thread runtime); step
/// bodies may then await tokio timers and sockets.
///
/// Dropping a runtime is a graceful shutdown: what waits for its next group commit
/// (starts and enqueues it acknowledged, the outcomes of step bodies that returned,
/// the results of workflows that returned, clients' messages) is committed first, and
/// nothing more runs; the next process's [`Runtime::recover`] goes on from there. A
/// queued workflow it had not started yet is left enqueued. On PostgreSQL that last
/// commit waits for an unreachable server as any commit does
/// (`journal::PgOptions::reconnect_for`). `std::process::exit` runs no destructor:
/// drop the runtime before it.
///
/// ```
/// use ordo::{Ctx, Runtime};
///
/// async fn hello(ctx: Ctx, name: String) -> Result<String, String> {
///     ctx.step("greet", move || async move { Ok::<_, String>(format!("hello {name}")) }).await
/// }
///
/// let dir = tempfile::tempdir()?;
/// let rt = Runtime::builder().path(dir.path()).register("hello", hello).build()?;
/// rt.recover()?; // resume whatever a previous process left pending
/// let handle = rt.start::<_, String, String>("hello", "h-1", "ordo".to_string())?;
/// assert_eq!(rt.block_on(handle.result())?, Ok("hello ordo".to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Runtime {
    // Declared first so it is dropped first: unfinished workflow tasks go before the
    // journal they point at.
    pub(crate) executor: Executor,
    /// Dropped after the executor (which holds its inbox) and before the core, whose
    /// journal lock keeps the socket file this runtime's until it is removed.
    admin: Option<crate::admin::server::AdminServer>,
    pub(crate) core: Rc<Core>,
    /// The automatic retention's age limit (see [`RuntimeBuilder::retention`]).
    pub(crate) retention: Option<Duration>,
    /// The dashboard's server, stopped when the runtime is dropped.
    pub(crate) dashboard: Option<crate::dashboard::Dashboard>,
    /// Whether the takeover task of a shared journal runs (started by the first
    /// [`Runtime::recover`]).
    takeover: std::cell::Cell<bool>,
}

impl Runtime {
    /// A builder; see [`RuntimeBuilder`].
    ///
    /// ```
    /// let rt = ordo::Runtime::builder().temporary().build()?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// Starts workflow `name` with `id` and `input`, or returns a handle to the
    /// workflow already recorded under `id`.
    ///
    /// The workflow's record (`Pending`) is written by the runtime's next group commit,
    /// together with every other start, completion and result of that executor turn, and
    /// the workflow runs only once that record is durable: when the runtime is driven
    /// ([`Runtime::block_on`], [`Runtime::run`]). A runtime dropped before it was driven
    /// again commits it on its way out (see [`Runtime`]'s drop), so the next process's
    /// [`Runtime::recover`] runs it. A start that could not be committed
    /// reaches the handle as an error, and none of its steps ran. The same id again gives a handle to the same workflow: a
    /// finished one returns its recorded result without running, a pending one that is
    /// not running here is resumed (replayed), and `input` is ignored. The same id
    /// with another name fails with [`Error::Conflict`].
    ///
    /// ```
    /// use ordo::{Ctx, Error, Runtime};
    /// async fn one(_: Ctx, n: u8) -> Result<u8, ()> { Ok(n) }
    /// async fn two(_: Ctx, n: u8) -> Result<u8, ()> { Ok(n + 1) }
    ///
    /// let rt = Runtime::builder().temporary().register("one", one).register("two", two).build()?;
    /// let first = rt.start::<_, u8, ()>("one", "x", 1u8)?;
    /// assert_eq!(rt.block_on(first.result())?, Ok(1));
    /// let again = rt.start::<_, u8, ()>("one", "x", 99u8)?; // recorded result, not re-run
    /// assert_eq!(rt.block_on(again.result())?, Ok(1));
    /// assert!(matches!(rt.start::<_, u8, ()>("two", "x", 1u8), Err(Error::Conflict { .. })));
    /// // An input of another type than the registered one is refused:
    /// assert!(matches!(rt.start::<_, u8, ()>("one", "y", 1i32), Err(Error::TypeMismatch { .. })));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn start<I, O, E>(
        &self,
        name: &str,
        id: &str,
        input: I,
    ) -> Result<WorkflowHandle<O, E>, Error>
    where
        I: Serialize,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        self.start_with(name, id, input, StartOptions::default())
    }

    /// [`Runtime::start`], continuing the caller's trace: `traceparent` (a W3C
    /// `traceparent` header) is checked, and journaled in the same commit as the start,
    /// so every run of the workflow, a run recovered after a crash too, carries it in its
    /// span (see [`telemetry`](crate::telemetry)'s "Trace context"). A workflow already
    /// recorded under `id` keeps the trace context it was started with, as it keeps its
    /// input.
    ///
    /// Fails with [`Error::InvalidTraceParent`], starting nothing, on a malformed header.
    ///
    /// ```
    /// use ordo::{Ctx, Error, Runtime};
    /// async fn one(_: Ctx, n: u8) -> Result<u8, ()> { Ok(n) }
    ///
    /// let rt = Runtime::builder().temporary().register("one", one).build()?;
    /// let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// let handle = rt.start_traced::<_, u8, ()>("one", "t-1", 1u8, traceparent)?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(1));
    /// assert_eq!(rt.journal().trace_context("t-1")?.as_deref(), Some(traceparent));
    /// let garbage = rt.start_traced::<_, u8, ()>("one", "t-2", 1u8, "00-xyz");
    /// assert!(matches!(garbage, Err(Error::InvalidTraceParent { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_traced<I, O, E>(
        &self,
        name: &str,
        id: &str,
        input: I,
        traceparent: &str,
    ) -> Result<WorkflowHandle<O, E>, Error>
    where
        I: Serialize,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        let traceparent = TraceParent::parse(traceparent)?;
        self.start_with(
            name,
            id,
            input,
            StartOptions::default().traceparent(traceparent),
        )
    }

    /// [`Runtime::start`] with [`StartOptions`]: a timeout (see the `deadline` module:
    /// the deadline is recorded with the start, and the workflow is cancelled when it
    /// passes, its handles reporting [`Error::DeadlineExceeded`]), a trace context. The
    /// options apply to a new workflow; one already recorded under `id` keeps its own
    /// deadline and trace context, as it keeps its input.
    ///
    /// ```
    /// use ordo::{Clock, Ctx, Error, Runtime, StartOptions};
    /// use std::time::Duration;
    ///
    /// async fn nap(ctx: Ctx, minutes: u64) -> Result<u64, String> {
    ///     ctx.sleep(Duration::from_secs(60 * minutes)).await;
    ///     Ok(minutes)
    /// }
    /// let rt = Runtime::builder().temporary().clock(Clock::Virtual).register("nap", nap).build()?;
    /// let ten_minutes = || StartOptions::default().timeout(Duration::from_secs(600));
    /// let short = rt.start_with::<_, u64, String>("nap", "short", 5u64, ten_minutes())?;
    /// let long = rt.start_with::<_, u64, String>("nap", "long", 60u64, ten_minutes())?;
    /// assert_eq!(rt.block_on(short.result())?, Ok(5));
    /// assert!(matches!(rt.block_on(long.result()), Err(Error::DeadlineExceeded { .. })));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn start_with<I, O, E>(
        &self,
        name: &str,
        id: &str,
        input: I,
        options: StartOptions,
    ) -> Result<WorkflowHandle<O, E>, Error>
    where
        I: Serialize,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        let registration = self.registration_for::<I, O, E>(name, id)?;

        let encoded = registration.encode_input(id, &input)?;
        let now_ms = self.core.now_ms_at(self.executor.now());
        let running = self
            .core
            .start_workflow(name, id, registration, encoded, now_ms, options)?
            .running();
        Ok(WorkflowHandle::new(
            id.to_string(),
            Rc::clone(&self.core),
            running,
        ))
    }

    /// [`Runtime::start`] of many workflows of `name`, one per `(id, input)`, in one
    /// call: what each start answers, in order, each as `start` answers it alone (a
    /// handle, [`Error::Conflict`], an invalid id...). The same id twice is one
    /// workflow, both handles on it.
    ///
    /// `start` reads the journal once per call, to answer a known id; this reads it
    /// once for all of them. On PostgreSQL that read is a round trip to the server, so
    /// starting a fan-out of 64 workflows costs one read here, 64 with `start` in a
    /// loop. On sled the two cost the same. The starts share the next group commit
    /// either way.
    ///
    /// Fails as a whole only where every start would: an unknown `name`, a type of
    /// input or output other than the registered ones, an input that cannot be
    /// encoded, a runtime stopped by a failed commit, a journal that cannot be read.
    /// Nothing is started then.
    ///
    /// ```
    /// use ordo::{Ctx, Error, Runtime};
    /// async fn double(_: Ctx, n: u32) -> Result<u32, ()> { Ok(n * 2) }
    /// async fn other(_: Ctx, n: u32) -> Result<u32, ()> { Ok(n) }
    ///
    /// let rt = Runtime::builder()
    ///     .temporary()
    ///     .register("double", double)
    ///     .register("other", other)
    ///     .build()?;
    /// rt.start::<_, u32, ()>("other", "taken", 1u32)?;
    /// let starts = [("a", 1u32), ("b", 2), ("taken", 3), ("a", 9)];
    /// let handles = rt.start_many::<_, _, u32, ()>("double", starts)?;
    /// assert_eq!(rt.block_on(handles[0].as_ref().unwrap().result())?, Ok(2));
    /// assert_eq!(rt.block_on(handles[1].as_ref().unwrap().result())?, Ok(4));
    /// assert!(matches!(handles[2], Err(Error::Conflict { .. })));
    /// // "a" again: the same workflow, its input ignored.
    /// assert_eq!(rt.block_on(handles[3].as_ref().unwrap().result())?, Ok(2));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn start_many<S, I, O, E>(
        &self,
        name: &str,
        starts: impl IntoIterator<Item = (S, I)>,
    ) -> Result<Vec<Result<WorkflowHandle<O, E>, Error>>, Error>
    where
        S: Into<String>,
        I: Serialize,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        let starts: Vec<(String, I)> = (starts.into_iter())
            .map(|(id, input)| (id.into(), input))
            .collect();
        // The types are the call's, not a start's: checked once, naming the first id.
        let first = starts.first().map_or("", |(id, _)| id.as_str());
        let registration = self.registration_for::<I, O, E>(name, first)?;
        let encoded = (starts.into_iter())
            .map(|(id, input)| {
                let input = registration.encode_input(&id, &input)?;
                Ok((id, input))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let now_ms = self.core.now_ms_at(self.executor.now());
        let started = self
            .core
            .start_workflows(name, &registration, encoded, now_ms)?;
        Ok(started
            .into_iter()
            .map(|(id, started)| {
                let running = started?.running();
                Ok(WorkflowHandle::new(id, Rc::clone(&self.core), running))
            })
            .collect())
    }

    /// The registration of workflow `name`, for a start with input `I` and outcome
    /// `Result<O, E>` (a mismatch names workflow `id`), on a runtime whose commits still
    /// work.
    fn registration_for<I, O, E>(
        &self,
        name: &str,
        id: &str,
    ) -> Result<crate::registry::Registration, Error>
    where
        I: Serialize,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        if let Some(err) = self.core.broken() {
            return Err(err);
        }
        let registration = self.core.registry.lookup(name)?.clone();
        registration.check_input::<I>(id)?;
        registration.check_outputs::<O, E>(id, "handle")?;
        Ok(registration)
    }

    /// A handle on an existing workflow (running here or recorded in the journal).
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// # async fn nop(_: Ctx, _: ()) -> Result<u8, ()> { Ok(7) }
    /// # let rt = Runtime::builder().temporary().register("nop", nop).build()?;
    /// rt.start::<_, u8, ()>("nop", "n", ())?;
    /// let handle = rt.handle::<u8, ()>("n")?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(7));
    /// assert!(rt.handle::<u8, ()>("missing").is_err());
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn handle<O: DeserializeOwned + 'static, E: DeserializeOwned + 'static>(
        &self,
        id: &str,
    ) -> Result<WorkflowHandle<O, E>, Error> {
        let running = self.core.running.borrow().get(id).cloned();
        if running.is_none()
            && !self.core.queues.is_waiting(id)
            && self.core.store.workflow(id)?.is_none()
        {
            return Err(Error::NotFound {
                workflow_id: id.to_string(),
            });
        }
        Ok(WorkflowHandle::new(
            id.to_string(),
            Rc::clone(&self.core),
            running,
        ))
    }

    /// Resumes every `Pending` workflow in the journal that is not running here: each
    /// is replayed from its recorded completions and then continues live.
    ///
    /// Workflows whose name is not registered are reported and left as they are;
    /// workflows past the recovery-attempt limit are reported and not resumed
    /// ([`Runtime::resume`] starts one again). The attempt counters of all resumed
    /// workflows are written in one commit. A resumed workflow whose deadline
    /// ([`StartOptions::timeout`]) passed while no process ran it is cancelled as soon as
    /// the runtime is driven, before any of its recorded steps is replayed; the others'
    /// deadlines are re-armed, with the time left. With [`RuntimeBuilder::retention`],
    /// it also starts the retention sweep.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let rt = ordo::Runtime::builder().path(dir.path()).build()?;
    /// let report = rt.recover()?;
    /// assert!(report.resumed.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recover(&self) -> Result<RecoveryReport, Error> {
        if let Some(err) = self.core.broken() {
            return Err(err);
        }
        let began = Instant::now();
        let report = resume_claimed(&self.core, SpawnRoot::On(&self.executor))?;
        crate::telemetry::recovered(began, report.resumed.len());
        if let Some(older_than) = self.retention {
            self.spawn_retention_sweep(older_than);
        }
        if let Some(every) = self.core.store.takeover_interval() {
            if self.takeover.replace(true) {
                return Ok(report);
            }
            crate::multi_worker::spawn_takeover(&self.core, &self.executor, every);
        }
        Ok(report)
    }

    /// Cancels a pending workflow: its status becomes `Cancelled` durably, it stops
    /// running here (in-flight step bodies are dropped), recovery will not resume it,
    /// and its handles report [`Error::Cancelled`]. A step whose body had already
    /// returned, its outcome waiting for the next group commit, is recorded with the
    /// cancellation: a later [`Runtime::resume`] replays that outcome rather than
    /// running the body again. Returns `false`, changing nothing,
    /// when the workflow had already finished. A workflow started or enqueued in this
    /// turn, or one a [`Runtime::debounce`] call is to start (by the id it returned), is
    /// cancelled before it ever runs. The cancellation is durable when this returns, in a
    /// commit of its own: starts, enqueues and debounce calls of other ids made before it
    /// are durable with the next group commit, as always, not with this one.
    ///
    /// ```
    /// use ordo::{Ctx, Error, Runtime, Status};
    /// use std::time::Duration;
    ///
    /// async fn slow(ctx: Ctx, _: ()) -> Result<(), String> {
    ///     ctx.sleep(Duration::from_secs(3600)).await;
    ///     Ok(())
    /// }
    /// let rt = Runtime::builder().temporary().register("slow", slow).build()?;
    /// let handle = rt.start::<_, (), String>("slow", "s-1", ())?;
    /// assert!(rt.cancel("s-1")?);
    /// assert!(matches!(rt.block_on(handle.result()), Err(Error::Cancelled { .. })));
    /// assert_eq!(handle.status()?, Status::Cancelled);
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn cancel(&self, id: &str) -> Result<bool, Error> {
        self.core
            .cancel_at(id, self.core.now_ms_at(self.executor.now()))
    }

    /// Drives every workflow on this thread until `fut` completes, and returns its
    /// output. Typically `fut` is a handle's `result()`.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// # async fn nop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// # let rt = Runtime::builder().temporary().register("nop", nop).build()?;
    /// let handle = rt.start::<_, (), ()>("nop", "n", ())?;
    /// rt.block_on(handle.result())?.expect("nop succeeds");
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.executor.block_on(fut)
    }

    /// A future that drives every workflow from inside another executor (e.g. a tokio
    /// `LocalSet`), completing when no workflow task is left. Wake-ups inside the
    /// runtime are forwarded to the outer executor's waker. On a journal shared by many
    /// workers (PostgreSQL), once [`Runtime::recover`] ran it does not complete: the
    /// runtime keeps taking over dead workers' workflows (see [`crate::multi_worker`]).
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// # async fn nop(_: Ctx, _: ()) -> Result<u8, ()> { Ok(1) }
    /// # let rt = Runtime::builder().temporary().register("nop", nop).build()?;
    /// let handle = rt.start::<_, u8, ()>("nop", "n", ())?;
    /// futures::executor::block_on(rt.run()); // any executor can drive it
    /// assert_eq!(futures::executor::block_on(handle.result())?, Ok(1));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn run(&self) -> impl Future<Output = ()> + '_ {
        self.executor.run()
    }

    /// Counters: commits, completions committed, steps executed and replayed.
    ///
    /// ```
    /// let rt = ordo::Runtime::builder().temporary().build()?;
    /// assert_eq!(rt.metrics().commits, 0);
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.core.metrics()
    }

    /// A [`Client`]: a `Send + Sync + Clone` handle other threads use to start
    /// workflows, await results, send messages, read events and resolve awakeables.
    /// While any client exists, [`Runtime::run`] keeps serving (it does not complete
    /// when no workflow is left).
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    ///
    /// async fn wait(ctx: Ctx, _: ()) -> Result<Option<u32>, ()> {
    ///     Ok(ctx.recv::<u32>("n", Duration::from_secs(60)).await)
    /// }
    /// let rt = Runtime::builder().temporary().register("wait", wait).build()?;
    /// let handle = rt.start::<_, Option<u32>, ()>("wait", "w-1", ())?;
    /// let client = rt.client();
    /// let sender = std::thread::spawn(move || futures::executor::block_on(client.send("w-1", "n", 5u32)));
    /// assert_eq!(rt.block_on(handle.result())?, Ok(Some(5)));
    /// sender.join().expect("no panic")?;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn client(&self) -> Client {
        if let Some(shared) = self.core.client.borrow().upgrade() {
            return Client::new(shared);
        }
        let (shared, serve) = crate::talk::client::open(&self.core);
        *self.core.client.borrow_mut() = Arc::downgrade(&shared);
        drop(self.executor.spawn(serve));
        Client::new(shared)
    }

    /// Where this runtime serves its admin socket, if it does (see
    /// [`RuntimeBuilder::admin_socket`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let rt = ordo::Runtime::builder().path(dir.path()).build()?;
    /// assert_eq!(rt.admin_socket(), Some(dir.path().join("admin.sock").as_path()));
    /// assert_eq!(ordo::Runtime::builder().temporary().build()?.admin_socket(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn admin_socket(&self) -> Option<&std::path::Path> {
        self.admin
            .as_ref()
            .map(crate::admin::server::AdminServer::path)
    }

    /// The journal, for reading records (what the CLI shows).
    ///
    /// ```
    /// let rt = ordo::Runtime::builder().temporary().build()?;
    /// assert!(rt.journal().workflows(None)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal(&self) -> &dyn Store {
        &*self.core.store
    }
}

impl Drop for Runtime {
    /// A graceful shutdown (see [`Runtime`]): what waits for the next group commit is
    /// committed, then the recovery attempts of workflows parked without progress are
    /// given back. Not while a panic unwinds: the runtime may be in the middle of a
    /// change then, and a crash is what it is.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let core = &self.core;
            self.executor.enter(|| core.flush());
        }
        self.core.shut_down();
    }
}
