//! One test suite, both stores: the journal a test names by a folder (its *place*) is
//! a sled database in that folder, or, with `ORDO_TEST_STORE=postgres`, a PostgreSQL
//! database of the test server whose name is derived from the folder's path.
//!
//! A test written against a place runs unchanged on either store: it builds its
//! runtimes with [`builder`] (virtual clock, no fsync) or [`runtime`] (a plain
//! builder), reads what was recorded with [`open`] or [`recorded_steps`], copies a
//! journal with [`copy`], replays it with [`replay`]. Reopening the same place after a
//! restart, or in a child process the test spawned and killed, reopens the same
//! journal: on PostgreSQL the same database, under the same worker name, so the new
//! runtime takes the old one's workflows back at once, as a restarted process would.
//!
//! The choice comes from the environment, so one `cargo test` command runs a suite on
//! sled and the same command with the variable set runs it on PostgreSQL:
//!
//! - `ORDO_TEST_STORE` unset, empty or `sled`: sled (the default; fast).
//! - `ORDO_TEST_STORE=postgres`: the server of [`TestPostgres::shared`] (one cluster
//!   per test process, or the external server of `ORDO_TEST_POSTGRES_URL`); without
//!   PostgreSQL on the machine that is a panic, not a skip: the run asked for it.
//!
//! A test that spawns child processes hands them the store with [`pass_to`], so they
//! reach the parent's server rather than start clusters of their own.
//!
//! [`TestPostgres::shared`]: crate::postgres::TestPostgres::shared
//!
//! ```
//! use ordo::Ctx;
//!
//! async fn hello(_ctx: Ctx, name: String) -> Result<String, String> {
//!     Ok(format!("hello {name}"))
//! }
//!
//! let place = ordo_testkit::journal_dir();
//! {
//!     let rt = ordo_testkit::store::builder(place.path()).register("hello", hello).build()?;
//!     let handle = rt.start::<_, String, String>("hello", "h-1", "ada".to_string())?;
//!     assert_eq!(rt.block_on(handle.result())?, Ok("hello ada".to_string()));
//! }
//! // The same place again: the same journal, on whichever store the run chose.
//! let journal = ordo_testkit::store::open(place.path());
//! assert_eq!(journal.workflow("h-1")?.map(|w| w.name), Some("hello".to_string()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;
use std::process::Command;

use ordo::journal::{SledJournal, Store};
use ordo::{Durability, Error, Runtime, RuntimeBuilder};

use crate::journal_replay::{replay_store, JournalReport};
use crate::run::RecordedStep;

/// The environment variable choosing the store: `sled` (or unset) or `postgres`.
pub const STORE_VAR: &str = "ORDO_TEST_STORE";

/// The worker name of every runtime on a place: a runtime reopening a place (a
/// restart, a child process after its parent's) is the same worker again and takes the
/// last one's workflows back at once, fencing it if it still runs.
const WORKER: &str = "ordo-test";

/// Which store the tests of this process run on.
///
/// ```
/// // `cargo test` without ORDO_TEST_STORE: sled.
/// # if std::env::var_os(ordo_testkit::store::STORE_VAR).is_none() {
/// assert_eq!(ordo_testkit::store::chosen(), ordo_testkit::store::TestStore::Sled);
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestStore {
    /// A sled journal in the place's folder.
    Sled,
    /// A database of the PostgreSQL test server, named after the place.
    #[cfg(feature = "postgres")]
    Postgres,
}

/// The store `ORDO_TEST_STORE` chose.
///
/// # Panics
///
/// On a value other than `sled` or `postgres` (a typo must not quietly test sled).
///
/// ```
/// let store = ordo_testkit::store::chosen();
/// println!("testing on {store:?}");
/// ```
pub fn chosen() -> TestStore {
    let value = std::env::var(STORE_VAR).unwrap_or_default();
    match value.trim() {
        "" | "sled" => TestStore::Sled,
        #[cfg(feature = "postgres")]
        "postgres" => TestStore::Postgres,
        other => panic!("{STORE_VAR}={other:?}: expected `sled` or `postgres`"),
    }
}

/// A plain runtime builder (system clock, default durability) on the journal at
/// `place`: [`RuntimeBuilder::path`] on sled, the place's database on PostgreSQL.
///
/// ```
/// let place = ordo_testkit::journal_dir();
/// let rt = ordo_testkit::store::runtime(place.path()).build()?;
/// # Ok::<(), ordo::Error>(())
/// ```
pub fn runtime(place: impl AsRef<Path>) -> RuntimeBuilder {
    let place = place.as_ref();
    match chosen() {
        TestStore::Sled => Runtime::builder().path(place),
        #[cfg(feature = "postgres")]
        TestStore::Postgres => Runtime::builder()
            .postgres_with(ordo::journal::PgOptions::new(database_of(place)).worker_name(WORKER)),
    }
}

/// [`crate::builder`] on the chosen store: a runtime on the journal at `place` with
/// the virtual clock from a fixed origin and no fsync.
///
/// ```
/// let place = ordo_testkit::journal_dir();
/// let rt = ordo_testkit::store::builder(place.path()).build()?;
/// # Ok::<(), ordo::Error>(())
/// ```
pub fn builder(place: impl AsRef<Path>) -> RuntimeBuilder {
    let place = place.as_ref();
    match chosen() {
        TestStore::Sled => crate::builder(place),
        #[cfg(feature = "postgres")]
        TestStore::Postgres => crate::run::virtual_time(runtime(place)),
    }
}

/// A runtime builder on a journal of its own that nobody reopens:
/// [`RuntimeBuilder::temporary`] on sled, a fresh database on PostgreSQL.
///
/// ```
/// let rt = ordo_testkit::store::temporary().build()?;
/// # Ok::<(), ordo::Error>(())
/// ```
pub fn temporary() -> RuntimeBuilder {
    match chosen() {
        TestStore::Sled => Runtime::builder().temporary(),
        #[cfg(feature = "postgres")]
        TestStore::Postgres => {
            Runtime::builder().postgres(without_flush_waits(server().database("temporary")))
        }
    }
}

/// The journal at `place`, opened directly, to read what runs recorded or to write
/// records a test needs (no runtime may be open on it: on sled its file lock says so,
/// and on PostgreSQL this is the place's worker, which fences a runtime still open).
///
/// # Panics
///
/// When the journal cannot be opened.
///
/// ```
/// let place = ordo_testkit::journal_dir();
/// let journal = ordo_testkit::store::open(place.path());
/// assert!(journal.workflows(None)?.is_empty());
/// # Ok::<(), ordo::journal::Error>(())
/// ```
pub fn open(place: impl AsRef<Path>) -> Box<dyn Store> {
    let place = place.as_ref();
    let opened: Result<Box<dyn Store>, ordo::journal::Error> = match chosen() {
        // Flushed: what it writes is there for a runtime reopening the place.
        TestStore::Sled => {
            SledJournal::open(place, Durability::Flush).map(|j| Box::new(j) as Box<dyn Store>)
        }
        #[cfg(feature = "postgres")]
        TestStore::Postgres => ordo::journal::PgOptions::new(database_of(place))
            .worker_name(WORKER)
            .connect()
            .map(|j| Box::new(j) as Box<dyn Store>),
    };
    match opened {
        Ok(journal) => journal,
        Err(err) => panic!("the journal of {} cannot be opened: {err}", place.display()),
    }
}

/// The journal at `place` for reading while a process (a child the test spawned)
/// may still drive it: on sled a private copy ([`SledJournal::open_existing`]), on
/// PostgreSQL a read-only connection that registers no worker.
///
/// # Panics
///
/// When there is no journal at `place` or it cannot be read.
///
/// ```
/// let place = ordo_testkit::journal_dir();
/// drop(ordo_testkit::store::runtime(place.path()).build()?);
/// let journal = ordo_testkit::store::read(place.path());
/// assert!(journal.workflows(None)?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read(place: impl AsRef<Path>) -> Box<dyn Store> {
    let place = place.as_ref();
    let opened: Result<Box<dyn Store>, ordo::journal::Error> = match chosen() {
        TestStore::Sled => SledJournal::open_existing(place).map(|j| Box::new(j) as Box<dyn Store>),
        #[cfg(feature = "postgres")]
        TestStore::Postgres => ordo::journal::PgOptions::new(database_of(place))
            .read_only()
            .connect()
            .map(|j| Box::new(j) as Box<dyn Store>),
    };
    match opened {
        Ok(journal) => journal,
        Err(err) => panic!("the journal of {} cannot be read: {err}", place.display()),
    }
}

/// [`crate::recorded_steps`] on the chosen store: the recorded steps of workflow `id`
/// in the (closed) journal at `place`, in delivery order.
///
/// # Panics
///
/// When the journal cannot be opened or read.
///
/// ```
/// let place = ordo_testkit::journal_dir();
/// assert!(ordo_testkit::store::recorded_steps(place.path(), "none").is_empty());
/// ```
pub fn recorded_steps(place: impl AsRef<Path>, id: &str) -> Vec<RecordedStep> {
    let place = place.as_ref();
    match open(place).completions(id) {
        Ok(completions) => completions
            .into_iter()
            .map(|c| (c.step_id, c.name, c.outcome.is_ok()))
            .collect(),
        Err(err) => panic!("the journal of {} is not readable: {err}", place.display()),
    }
}

/// Copies the (closed) journal at `from` to the place `to`, to run two futures from one
/// crash: [`crate::copy_dir`] on sled, `CREATE DATABASE .. TEMPLATE` on PostgreSQL.
///
/// # Panics
///
/// When the copy cannot be made.
///
/// ```
/// let (from, to) = (ordo_testkit::journal_dir(), ordo_testkit::journal_dir());
/// drop(ordo_testkit::store::runtime(from.path()).build()?);
/// ordo_testkit::store::copy(from.path(), &to.path().join("twin"));
/// # Ok::<(), ordo::Error>(())
/// ```
pub fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) {
    let (from, to) = (from.as_ref(), to.as_ref());
    match chosen() {
        TestStore::Sled => crate::copy_dir(from, to),
        #[cfg(feature = "postgres")]
        TestStore::Postgres => {
            let source = database_of(from);
            server().copy_database_as(&source, &database_name(to));
        }
    }
}

/// [`crate::replay_journal`] on the chosen store: replays every workflow of the journal
/// at `place` against `register`'s registrations, without running a step body.
///
/// # Errors
///
/// When the journal cannot be read.
///
/// ```
/// let place = ordo_testkit::journal_dir();
/// drop(ordo_testkit::store::runtime(place.path()).build()?);
/// assert!(ordo_testkit::store::replay(place.path(), |b| b)?.is_clean());
/// # Ok::<(), ordo::Error>(())
/// ```
pub fn replay(
    place: impl AsRef<Path>,
    register: impl Fn(RuntimeBuilder) -> RuntimeBuilder,
) -> Result<JournalReport, Error> {
    let place = place.as_ref();
    match chosen() {
        TestStore::Sled => crate::replay_journal(place, register),
        #[cfg(feature = "postgres")]
        TestStore::Postgres => {
            let base = ordo::journal::PgOptions::new(database_of(place))
                .read_only()
                .connect()?;
            replay_store(Box::new(base), register)
        }
    }
}

/// Gives a child process the parent's store: `ORDO_TEST_STORE`, and on PostgreSQL the
/// parent's test server as `ORDO_TEST_POSTGRES_URL`, so the child's places are the
/// parent's databases.
///
/// ```no_run
/// let mut child = std::process::Command::new(std::env::current_exe()?);
/// ordo_testkit::store::pass_to(&mut child);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn pass_to(cmd: &mut Command) {
    match chosen() {
        TestStore::Sled => {
            cmd.env(STORE_VAR, "sled");
        }
        #[cfg(feature = "postgres")]
        TestStore::Postgres => {
            cmd.env(STORE_VAR, "postgres")
                .env(crate::postgres::URL_VAR, server().url());
        }
    }
}

/// Whether the chosen store is sled; for the few lines of a test that look at sled's
/// own files.
///
/// ```
/// # if std::env::var_os(ordo_testkit::store::STORE_VAR).is_none() {
/// assert!(ordo_testkit::store::is_sled());
/// # }
/// ```
pub fn is_sled() -> bool {
    chosen() == TestStore::Sled
}

/// The URL of `place`'s database, created on first use (by this process or another).
#[cfg(feature = "postgres")]
fn database_of(place: &Path) -> String {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    // Every runtime a test builds on a place asks: one `psql` per place and process.
    static KNOWN: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let name = database_name(place);
    let mut known = KNOWN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    known
        .entry(name)
        .or_insert_with_key(|name| without_flush_waits(server().named_database(name)))
        .clone()
}

/// `url`'s database with commits that do not wait for the WAL flush
/// (`synchronous_commit = off`), returned. These tests kill ordo's processes, never the
/// server, which keeps every commit it acknowledged either way; waiting for the disk
/// would only make the PostgreSQL pass several times slower on a busy CI disk.
#[cfg(feature = "postgres")]
fn without_flush_waits(url: String) -> String {
    let name = url.rsplit('/').next().unwrap_or_default();
    server().query(
        &url,
        &format!("ALTER DATABASE \"{name}\" SET synchronous_commit = off"),
    );
    url
}

/// `ordo_place_` and a hash of the place's absolute path: the same name in every
/// process, a different one for every place.
#[cfg(feature = "postgres")]
fn database_name(place: &Path) -> String {
    let absolute: std::path::PathBuf = if place.is_absolute() {
        place.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(place))
            .unwrap_or_else(|_| place.to_path_buf())
    };
    // FNV-1a: stable across processes and builds (std's hashers promise neither).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in absolute.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("ordo_place_{hash:016x}")
}

/// The PostgreSQL server of this run.
#[cfg(feature = "postgres")]
fn server() -> &'static crate::postgres::TestPostgres {
    match crate::postgres::TestPostgres::shared() {
        Some(pg) => pg,
        None => panic!(
            "{STORE_VAR}=postgres but no PostgreSQL server was found (see ordo_testkit::postgres)"
        ),
    }
}
