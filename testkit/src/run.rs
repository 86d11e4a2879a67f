//! One run: a process lifetime that opens a journal, recovers, starts (or re-attaches
//! to) the workflow under test, and drives it until it ends or a crash point stops it.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use futures::future::LocalBoxFuture;
use ordo::journal::{SledJournal, Store};
use ordo::{Clock, Durability, Error, Metrics, Runtime, RuntimeBuilder};
use ordo_executor::Scheduler;

use crate::env::Env;
use crate::memory::MemoryJournal;

/// A journal folder that lives as long as the returned guard.
///
/// # Panics
///
/// When the system's temporary folder is not writable (a broken test machine).
///
/// ```
/// let dir = ordo_testkit::journal_dir();
/// assert!(dir.path().is_dir());
/// ```
pub fn journal_dir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => panic!("ordo-testkit needs a temporary folder: {err}"),
    }
}

/// A runtime on `dir` with the virtual clock (sleeps and latencies cost nothing) and
/// no fsync (runs reopen in-process; durability is tested with real kills).
///
/// ```
/// let dir = ordo_testkit::journal_dir();
/// let rt = ordo_testkit::builder(dir.path()).build()?;
/// # Ok::<(), ordo::Error>(())
/// ```
pub fn builder(dir: &Path) -> RuntimeBuilder {
    virtual_time(Runtime::builder().path(dir).durability(Durability::None))
}

/// The virtual clock from a fixed origin: two runs from the same journal see the same
/// virtual times.
pub(crate) fn virtual_time(b: RuntimeBuilder) -> RuntimeBuilder {
    b.clock(Clock::Virtual)
        .start_time(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// The virtual clock of a process restarted on `store` right after the last one
/// stopped: from the latest time the journal recorded (the fixed origin if none). A
/// restart happens after the crash in wall time too: a recovered durable sleep sleeps
/// only its remainder, and `ctx.now()` never goes back.
fn restarted(b: RuntimeBuilder, store: &dyn Store) -> RuntimeBuilder {
    match latest_ms(store) {
        Some(ms) => b
            .clock(Clock::Virtual)
            .start_time(UNIX_EPOCH + Duration::from_millis(ms)),
        None => virtual_time(b),
    }
}

/// The latest wall time (ms) a record or completion of `store` carries.
fn latest_ms(store: &dyn Store) -> Option<u64> {
    let workflows = store.workflows(None).ok()?;
    let mut latest = None;
    for record in workflows {
        latest = latest.max(Some(record.updated_ms));
        if let Ok(completions) = store.completions(&record.id) {
            latest = latest.max(completions.iter().map(|c| c.ended_ms).max());
        }
    }
    latest
}

/// Where a checker keeps the journal that runs crash on and recover from.
pub enum Journal {
    /// sled in a temporary folder: what users run.
    Sled(tempfile::TempDir),
    /// A [`MemoryJournal`]: no files, no sled threads, many times faster.
    Memory(MemoryJournal),
    /// A database of its own in the test cluster of [`crate::postgres`]
    /// ([`PgJournal`](ordo::journal::PgJournal)), by URL: the store many workers share.
    #[cfg(feature = "postgres")]
    Postgres(String),
}

/// Which kind of [`Journal`] a checker uses.
///
/// ```
/// let journal = ordo_testkit::Journal::new(ordo_testkit::JournalKind::Memory);
/// let rt = journal.builder().build()?;
/// # Ok::<(), ordo::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalKind {
    /// [`Journal::Sled`].
    Sled,
    /// [`Journal::Memory`].
    Memory,
    /// [`Journal::Postgres`] (panics where [`crate::postgres::TestPostgres::shared`]
    /// finds no server: check that first).
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Journal {
    /// An empty journal.
    ///
    /// ```
    /// let journal = ordo_testkit::Journal::new(ordo_testkit::JournalKind::Sled);
    /// assert!(matches!(journal, ordo_testkit::Journal::Sled(_)));
    /// ```
    pub fn new(kind: JournalKind) -> Journal {
        match kind {
            JournalKind::Sled => Journal::Sled(journal_dir()),
            JournalKind::Memory => Journal::Memory(MemoryJournal::default()),
            #[cfg(feature = "postgres")]
            JournalKind::Postgres => Journal::Postgres(test_cluster().database("check")),
        }
    }

    /// A runtime builder on this journal, with the virtual clock starting where the
    /// journal's last run stopped (a fixed origin for an empty journal).
    ///
    /// ```
    /// let journal = ordo_testkit::Journal::new(ordo_testkit::JournalKind::Memory);
    /// assert_eq!(journal.builder().build()?.metrics().commits, 0);
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn builder(&self) -> RuntimeBuilder {
        match self {
            Journal::Sled(dir) => match SledJournal::open(dir.path(), Durability::None) {
                Ok(journal) => {
                    let b = restarted(Runtime::builder(), &journal);
                    b.store(Box::new(journal))
                }
                // `build` reports it.
                Err(_) => builder(dir.path()),
            },
            Journal::Memory(journal) => {
                let journal = journal.reopen();
                let b = restarted(Runtime::builder(), &journal);
                b.store(Box::new(journal))
            }
            // Every run the same worker: a restart takes its workflows back at once.
            #[cfg(feature = "postgres")]
            Journal::Postgres(url) => {
                match ordo::journal::PgOptions::new(url.as_str())
                    .worker_name("ordo-testkit")
                    .connect()
                {
                    Ok(journal) => {
                        let b = restarted(Runtime::builder(), &journal);
                        b.store(Box::new(journal))
                    }
                    Err(err) => panic!("the test database at {url} cannot be opened: {err}"),
                }
            }
        }
    }

    /// An independent copy (of a closed journal), to run two futures from one crash.
    ///
    /// # Panics
    ///
    /// When a sled journal's folder cannot be copied (a broken test machine).
    ///
    /// ```
    /// let journal = ordo_testkit::Journal::new(ordo_testkit::JournalKind::Memory);
    /// let _twin = journal.fork();
    /// ```
    pub fn fork(&self) -> Journal {
        match self {
            Journal::Sled(dir) => {
                let twin = journal_dir();
                copy_dir(dir.path(), twin.path());
                Journal::Sled(twin)
            }
            Journal::Memory(journal) => Journal::Memory(journal.fork()),
            #[cfg(feature = "postgres")]
            Journal::Postgres(url) => Journal::Postgres(test_cluster().copy_database(url)),
        }
    }
}

/// A PostgreSQL journal's database goes with it, as a sled journal's folder does: a
/// checker makes one per crash point it tries, and a cluster holding them all would
/// fill a small CI disk (1.6 GB for the catalogue, mostly copies of `template1`).
///
/// The drop runs on a thread of its own, one database after another: PostgreSQL 15
/// checkpoints in every `DROP DATABASE`, which made the catalogue's run 1.7x as long
/// when the test waited for it.
#[cfg(feature = "postgres")]
impl Drop for Journal {
    fn drop(&mut self) {
        use std::sync::mpsc::{channel, Sender};
        use std::sync::OnceLock;
        // A `Sender` is `Sync`: every test thread sends on this one.
        static DROPPER: OnceLock<Sender<String>> = OnceLock::new();
        if let Journal::Postgres(url) = self {
            let dropper = DROPPER.get_or_init(|| {
                let (send, receive) = channel::<String>();
                std::thread::spawn(move || {
                    for url in receive {
                        test_cluster().drop_database(&url);
                    }
                });
                send
            });
            // A dropper gone with its thread leaves the database to the cluster's end.
            let _ = dropper.send(std::mem::take(url));
        }
    }
}

/// The shared test cluster of [`crate::postgres`].
#[cfg(feature = "postgres")]
fn test_cluster() -> &'static crate::postgres::TestPostgres {
    match crate::postgres::TestPostgres::shared() {
        Some(pg) => pg,
        None => {
            panic!("JournalKind::Postgres needs a PostgreSQL server (see ordo_testkit::postgres)")
        }
    }
}

/// One recorded completion as a user sees it: `(step id, name, outcome is Ok)`.
pub type RecordedStep = (u64, String, bool);

fn steps_of(store: &dyn Store, id: &str) -> Result<Vec<RecordedStep>, Error> {
    Ok(store
        .completions(id)?
        .into_iter()
        .map(|c| (c.step_id, c.name, c.outcome.is_ok()))
        .collect())
}

/// The recorded steps of workflow `id` in the (closed) journal at `dir`, in delivery
/// order.
///
/// # Panics
///
/// When the journal cannot be opened or read: a test helper, it fails the test.
///
/// ```
/// let dir = ordo_testkit::journal_dir();
/// assert!(ordo_testkit::recorded_steps(dir.path(), "none").is_empty());
/// ```
pub fn recorded_steps(dir: &Path, id: &str) -> Vec<RecordedStep> {
    let read = SledJournal::open(dir, Durability::None)
        .map_err(Error::from)
        .and_then(|journal| steps_of(&journal, id));
    match read {
        Ok(steps) => steps,
        Err(err) => panic!("the journal at {} is not readable: {err}", dir.display()),
    }
}

/// Copies a (closed) journal folder, to run two futures from one crash.
///
/// # Panics
///
/// When a file cannot be read or written: a test helper, it fails the test.
///
/// ```
/// let (from, to) = (ordo_testkit::journal_dir(), ordo_testkit::journal_dir());
/// std::fs::write(from.path().join("f"), b"x")?;
/// ordo_testkit::copy_dir(from.path(), &to.path().join("copy"));
/// assert_eq!(std::fs::read(to.path().join("copy/f"))?, b"x");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn copy_dir(from: &Path, to: &Path) {
    if let Err(err) = try_copy_dir(from, to) {
        panic!(
            "copying the journal {} to {}: {err}",
            from.display(),
            to.display()
        );
    }
}

fn try_copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            try_copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Where a run stops as if the process were killed.
#[derive(Clone, Copy, Debug)]
pub enum Halt {
    /// It runs to the end.
    Never,
    /// Right after this many group commits (of steps or results).
    AfterCommits(u64),
    /// Right before the commit that would record the workflow's end.
    BeforeFinish,
}

/// What one run saw.
pub struct RunResult<R = Result<String, String>> {
    /// What the workflow's handle returned (or why the run could not start it).
    pub result: Result<R, Error>,
    /// The runtime's counters.
    pub metrics: Metrics,
    /// The workflow's recorded steps when the run ended.
    pub journal: Vec<RecordedStep>,
    /// How many workflows the journal held when the run ended (the subject, and the
    /// children or peers it talked to).
    pub workflows: usize,
}

/// A started workflow's result, as its handle's future.
pub type Started<R> = Result<LocalBoxFuture<'static, Result<R, Error>>, Error>;

/// What the checker runs: the workflow registered on a builder (its bodies seeing the
/// run's [`Env`]), and how to start it and await its result.
pub struct Subject<'a, R> {
    /// Registers the workflow (and whatever it needs) on a builder.
    pub register: &'a dyn Fn(RuntimeBuilder, Env) -> RuntimeBuilder,
    /// Starts (or re-attaches to) the workflow; the future is its handle's result.
    pub start: &'a dyn Fn(&Runtime) -> Started<R>,
    /// Its id, in reports.
    pub workflow_id: &'a str,
}

/// One process lifetime on the runtime `b` builds: recover, start (or re-attach to)
/// the subject, drive it until it ends or `halt` stops it; step bodies see `env`.
pub fn run_on<R>(
    b: RuntimeBuilder,
    subject: &Subject<'_, R>,
    env: &Env,
    halt: Halt,
    scheduler: Scheduler,
) -> RunResult<R> {
    let mut b = b.scheduler(scheduler).before_step_body(env.hook());
    match halt {
        Halt::Never => {}
        Halt::AfterCommits(k) => b = b.halt_after_commits(k),
        Halt::BeforeFinish => b = b.halt_before_finish(),
    }
    let rt = match (subject.register)(b, env.clone()).build() {
        Ok(rt) => rt,
        Err(err) => {
            return RunResult {
                result: Err(err),
                metrics: Metrics::default(),
                journal: Vec::new(),
                workflows: 0,
            }
        }
    };
    let result = recover_and_start(&rt, subject);
    let (result, journal) = match steps_of(rt.journal(), subject.workflow_id) {
        Ok(journal) => (result, journal),
        Err(err) => (Err(err), Vec::new()),
    };
    RunResult {
        result,
        metrics: rt.metrics(),
        journal,
        workflows: rt.journal().workflows(None).map_or(0, |all| all.len()),
    }
}

fn recover_and_start<R>(rt: &Runtime, subject: &Subject<'_, R>) -> Result<R, Error> {
    let report = rt.recover()?;
    if let Some((_, err)) = report.failed.into_iter().next() {
        return Err(err);
    }
    if let Some((_, name)) = report.unregistered.into_iter().next() {
        return Err(Error::UnknownWorkflow { name });
    }
    let result = (subject.start)(rt)?;
    rt.block_on(result)
}
