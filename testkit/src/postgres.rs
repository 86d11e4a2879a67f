//! [`TestPostgres`]: a real, throwaway PostgreSQL server for tests.
//!
//! [`TestPostgres::start`] runs `initdb` into a temporary folder and starts the server
//! with `pg_ctl` on a free TCP port of 127.0.0.1 (trust authentication, superuser
//! `postgres`, fsync on). [`TestPostgres::database`] creates a fresh, empty database
//! with `psql` and hands out its URL, so tests sharing one cluster never see each
//! other's tables. Dropping the fixture stops the server and removes the folder. The
//! fixture speaks no SQL itself: tests bring their own client and connect to the URL.
//!
//! ```no_run
//! use ordo_testkit::postgres::TestPostgres;
//!
//! // In a #[test]: skips (returns) on machines without PostgreSQL.
//! let Some(pg) = TestPostgres::start() else { return };
//! let url = pg.database("orders"); // postgres://postgres@127.0.0.1:PORT/orders_PID_N
//! // ... connect to `url` with a client of your choice ...
//! pg.restart(); // same data, same port: clients must reconnect
//! ```
//!
//! Where the server comes from:
//!
//! - `ORDO_TEST_POSTGRES_URL` set: that server (an *external* one). [`database`]
//!   creates databases on it with `psql`; [`stop`] and [`restart`] panic.
//! - Otherwise the server binaries (`initdb`, `pg_ctl`, `postgres`, `psql`) of
//!   `pg_config --bindir`, else of the highest version under
//!   `/usr/lib/postgresql/*/bin`, else of `PATH`.
//! - None found: [`start`] prints a "skipped" line to stderr and returns `None`, or
//!   panics if `ORDO_REQUIRE_POSTGRES=1` is set (CI).
//!
//! `initdb` refuses to run as root: under root (containers, CI) the server binaries run
//! as the `postgres` system user (Debian's `postgresql` package creates it) through
//! `runuser -u postgres --`, and the temporary folder is handed to that user.
//!
//! Each cluster takes a second or two to start; [`shared`] starts one per test process,
//! for tests that each take a [`database`]. Every cluster the fixture starts has a
//! watchdog (a detached `sh` loop) that stops the server and removes its folder once the
//! test process is gone, so neither a `static` (whose `Drop` never runs) nor a killed
//! test leaves a server behind.
//!
//! [`database`]: TestPostgres::database
//! [`stop`]: TestPostgres::stop
//! [`restart`]: TestPostgres::restart
//! [`start`]: TestPostgres::start
//! [`shared`]: TestPostgres::shared

use std::collections::hash_map::RandomState;
use std::ffi::OsStr;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tempfile::TempDir;

/// The environment variable naming an external server to use instead of starting one.
pub const URL_VAR: &str = "ORDO_TEST_POSTGRES_URL";
/// The environment variable that turns "no PostgreSQL, skipped" into a panic (CI).
pub const REQUIRE_VAR: &str = "ORDO_REQUIRE_POSTGRES";

const SKIP_MESSAGE: &str = "skipped: no PostgreSQL server binaries (initdb/pg_ctl) found; \
     install Debian's postgresql package or set ORDO_TEST_POSTGRES_URL";

/// How many start attempts pick another port after losing a race for the free one.
const PORT_ATTEMPTS: u32 = 5;

/// Databases created by this process, across all fixtures: part of every name.
static DATABASES: AtomicU64 = AtomicU64::new(0);

/// A PostgreSQL server for tests: a throwaway cluster this fixture started, or the
/// external server of `ORDO_TEST_POSTGRES_URL`.
///
/// See the [module docs](self) for where the server comes from.
///
/// ```no_run
/// use ordo_testkit::postgres::TestPostgres;
///
/// let Some(pg) = TestPostgres::start() else { return };
/// let a = pg.database("a");
/// let b = pg.database("b"); // another empty database: no table of `a` in it
/// assert_ne!(a, b);
/// drop(pg); // stops the server, removes its folder
/// ```
pub struct TestPostgres {
    /// The URL of the `postgres` database (external: the URL as given).
    url: String,
    /// Where `psql` (and, for a local cluster, the server binaries) live.
    bin_dir: PathBuf,
    /// `None` for an external server.
    local: Option<Local>,
}

/// A cluster this fixture started.
struct Local {
    port: u16,
    /// `dir/data`.
    data: PathBuf,
    /// `dir/server.log`.
    log: PathBuf,
    /// Root: the server binaries run as the `postgres` user through `runuser`.
    as_postgres_user: bool,
    /// Serialises stop and start; `true` while the server runs.
    running: Mutex<bool>,
    /// Stops the server and removes `dir` once this process is gone; killed on drop.
    watchdog: Option<Child>,
    /// Dropped last: removed after the server stopped.
    dir: TempDir,
}

impl TestPostgres {
    /// Starts a throwaway cluster and returns it, or returns `None` when there is no
    /// PostgreSQL on this machine.
    ///
    /// `None` comes with a line on stderr ("skipped: no PostgreSQL server binaries
    /// (initdb/pg_ctl) found; ..."); with `ORDO_REQUIRE_POSTGRES=1` set it panics
    /// instead. With `ORDO_TEST_POSTGRES_URL` set it starts nothing and returns that
    /// external server. Binaries that are found but fail (initdb, pg_ctl, a port taken
    /// on every attempt) panic with the command, its exit status, its stderr and the
    /// tail of the server log.
    ///
    /// ```no_run
    /// use ordo_testkit::postgres::TestPostgres;
    ///
    /// #[test]
    /// fn stores_orders() {
    ///     let Some(pg) = TestPostgres::start() else { return };
    ///     let url = pg.database("orders");
    ///     // ...
    /// }
    /// ```
    pub fn start() -> Option<TestPostgres> {
        if let Some(url) = std::env::var_os(URL_VAR).filter(|u| !u.is_empty()) {
            return Some(Self::external(url.to_string_lossy().into_owned()));
        }
        let Some(bin_dir) = find_bin_dir(&["initdb", "pg_ctl", "postgres", "psql"]) else {
            if required() {
                panic!("{REQUIRE_VAR} is set but no PostgreSQL server binaries (initdb/pg_ctl) were found; install Debian's postgresql package or set {URL_VAR}");
            }
            eprintln!("{SKIP_MESSAGE}");
            return None;
        };
        Some(Self::start_local(bin_dir))
    }

    /// One cluster for the whole test process, started by the first call; `None` (with
    /// the same skip line, printed once) when [`start`](Self::start) finds none.
    ///
    /// Tests share it by each taking their own [`database`](Self::database). It is never
    /// dropped: its watchdog stops it and removes its folder after the process exits.
    /// Do not [`stop`](Self::stop) or [`restart`](Self::restart) it; tests running at
    /// the same time would lose their connections. Use a [`start`](Self::start)ed
    /// cluster of the test's own for that.
    ///
    /// ```no_run
    /// use ordo_testkit::postgres::TestPostgres;
    ///
    /// #[test]
    /// fn one_of_many() {
    ///     let Some(pg) = TestPostgres::shared() else { return };
    ///     let url = pg.database("one_of_many");
    ///     // ...
    /// }
    /// ```
    pub fn shared() -> Option<&'static TestPostgres> {
        static SHARED: OnceLock<Option<TestPostgres>> = OnceLock::new();
        SHARED.get_or_init(TestPostgres::start).as_ref()
    }

    /// Creates a fresh, empty database in the cluster and returns its URL:
    /// `postgres://postgres@127.0.0.1:PORT/NAME_PID_N`.
    ///
    /// `name` is lowercased and every character outside `[a-z0-9_]` becomes `_`; the
    /// process id and a per-process counter make it unique, so every call gets a
    /// database of its own (on an external server also a random per-process tag, since
    /// process ids repeat across machines). Panics if `psql` fails.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// let url = pg.database("Payments-v2");
    /// assert!(url.contains("/payments_v2_"));
    /// ```
    pub fn database(&self, name: &str) -> String {
        let external_tag = self.local.is_none().then(process_tag);
        let name = database_name(
            name,
            std::process::id(),
            external_tag,
            DATABASES.fetch_add(1, Ordering::Relaxed),
        );
        let mut psql = self.psql();
        psql.arg("-d")
            .arg(&self.url)
            .arg("-c")
            .arg(format!("CREATE DATABASE \"{name}\""));
        run(&mut psql, &format!("creating database {name}"));
        with_database(&self.url, &name)
    }

    /// A new database holding a copy of the one at `url` (of this cluster), which must
    /// have no open connection (a closed journal): `CREATE DATABASE .. TEMPLATE`,
    /// retried for a few seconds while the server still counts a just-closed
    /// connection. Panics if it cannot be made.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// let original = pg.database("orders");
    /// let twin = pg.copy_database(&original);
    /// assert_ne!(twin, original);
    /// ```
    pub fn copy_database(&self, url: &str) -> String {
        let external_tag = self.local.is_none().then(process_tag);
        let name = database_name(
            "copy",
            std::process::id(),
            external_tag,
            DATABASES.fetch_add(1, Ordering::Relaxed),
        );
        self.copy_database_as(url, &name)
    }

    /// The database called exactly `name` (`[a-z0-9_]`, at most 63 characters), created
    /// empty if it does not exist yet, and its URL. Unlike [`database`](Self::database),
    /// every process asking for one name gets the same database: a test and the child
    /// processes it spawns meet in it. Two processes creating it at once both succeed.
    /// Panics on another name, or if `psql` fails.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// let url = pg.named_database("orders_journal");
    /// assert_eq!(pg.named_database("orders_journal"), url);
    /// ```
    pub fn named_database(&self, name: &str) -> String {
        check_name(name);
        let mut psql = self.psql();
        psql.arg("-d")
            .arg(&self.url)
            .arg("-c")
            .arg(format!("CREATE DATABASE \"{name}\""));
        match try_run(&mut psql, &format!("creating database {name}")) {
            Ok(_) => {}
            // Made by an earlier call, or by another process at the same moment.
            Err(failure)
                if failure.contains("already exists")
                    || failure.contains("duplicate key value") => {}
            Err(failure) => panic!("{failure}"),
        }
        with_database(&self.url, name)
    }

    /// A new database called exactly `name` holding a copy of the one at `url`, like
    /// [`copy_database`](Self::copy_database); panics if `name` exists already.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// let original = pg.named_database("orders_journal");
    /// let twin = pg.copy_database_as(&original, "orders_twin");
    /// assert!(twin.ends_with("/orders_twin"));
    /// ```
    pub fn copy_database_as(&self, url: &str, name: &str) -> String {
        check_name(name);
        let source = database_of_url(url);
        let began = std::time::Instant::now();
        loop {
            let mut psql = self.psql();
            psql.arg("-d")
                .arg(&self.url)
                .arg("-c")
                .arg(format!("CREATE DATABASE \"{name}\" TEMPLATE \"{source}\""));
            match try_run(&mut psql, &format!("copying database {source}")) {
                Ok(_) => return with_database(&self.url, name),
                Err(failure)
                    if failure.contains("being accessed by other users")
                        && began.elapsed() < std::time::Duration::from_secs(10) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(failure) => panic!("{failure}"),
            }
        }
    }

    /// Drops the database at `url` (of this cluster), ending any session still
    /// connected to it (`DROP DATABASE .. WITH (FORCE)`). Best effort: a database that
    /// is gone already, or a server that refuses, only leaves it where it was. Tests
    /// that make many databases drop the ones they are done with, so that a run's
    /// disk use stays that of the databases in use, not of all it ever made.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// let url = pg.database("scratch");
    /// pg.drop_database(&url);
    /// ```
    pub fn drop_database(&self, url: &str) {
        let name = database_of_url(url);
        if name.is_empty() || name == "postgres" {
            return;
        }
        let mut psql = self.psql();
        psql.arg("-d").arg(&self.url).arg("-c").arg(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            name.replace('"', "\"\"")
        ));
        let _ = try_run(&mut psql, &format!("dropping database {name}"));
    }

    /// The URL of the cluster's `postgres` database,
    /// `postgres://postgres@127.0.0.1:PORT/postgres` (an external server: its URL as
    /// given).
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// assert!(pg.url().ends_with("/postgres"));
    /// ```
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, a shutdown
    /// checkpoint is written); a stopped server stays stopped. Its data and port are
    /// kept for [`start_again`](Self::start_again).
    ///
    /// Panics on an external server (see [`is_external`](Self::is_external)), or if
    /// `pg_ctl` fails.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// pg.stop();
    /// // ... clients now see connection errors ...
    /// pg.start_again();
    /// ```
    pub fn stop(&self) {
        let local = self.local_or_panic("stop");
        let mut running = local.lock_running();
        if *running {
            let mut cmd = local.server_command(&self.bin_dir, "pg_ctl");
            cmd.arg("-D")
                .arg(&local.data)
                .args(["-m", "fast", "-w", "stop"]);
            local.run_server(&mut cmd, "stopping the server");
            *running = false;
        }
    }

    /// Starts a [`stop`](Self::stop)ped server again on the same data and port; a
    /// running server is left alone. Panics on an external server, or if `pg_ctl`
    /// fails (for instance, another process took the port meanwhile).
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// pg.stop();
    /// pg.start_again();
    /// ```
    pub fn start_again(&self) {
        let local = self.local_or_panic("start_again");
        let mut running = local.lock_running();
        if !*running {
            local
                .pg_ctl_start(&self.bin_dir)
                .unwrap_or_else(|failure| panic!("{failure}"));
            *running = true;
        }
    }

    /// [`stop`](Self::stop), then [`start_again`](Self::start_again): the same data on
    /// the same port, every connection cut. For tests of reconnecting.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// let url = pg.database("reconnect");
    /// pg.restart();
    /// // `url` names the same, still existing database
    /// ```
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Whether this is the server of `ORDO_TEST_POSTGRES_URL` rather than a cluster the
    /// fixture started: it has no [`dir`](Self::dir) and cannot be stopped.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// if !pg.is_external() {
    ///     pg.restart();
    /// }
    /// ```
    pub fn is_external(&self) -> bool {
        self.local.is_none()
    }

    /// The cluster's temporary folder (`data/`, `server.log`, the Unix socket), removed
    /// on drop; `None` for an external server.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// if let Some(dir) = pg.dir() {
    ///     println!("server log: {}", dir.join("server.log").display());
    /// }
    /// ```
    pub fn dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|local| local.dir.path())
    }

    /// The folder of the PostgreSQL binaries found (`psql`, `pgbench`, ...; for an
    /// external server, the folder `psql` was found in).
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// let pgbench = pg.bin_dir().join("pgbench");
    /// let status = std::process::Command::new(pgbench)
    ///     .args(["-i", &pg.database("bench")])
    ///     .status()
    ///     .expect("pgbench runs");
    /// assert!(status.success());
    /// ```
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The server of `ORDO_TEST_POSTGRES_URL`.
    fn external(url: String) -> TestPostgres {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            panic!("{URL_VAR} must be a postgres:// or postgresql:// URL, not {url:?}");
        }
        let bin_dir = find_bin_dir(&["psql"]).unwrap_or_else(|| {
            panic!("{URL_VAR} is set but no psql was found to create databases with; install Debian's postgresql-client package")
        });
        TestPostgres {
            url,
            bin_dir,
            local: None,
        }
    }

    /// initdb into a new temporary folder, then start the server on a free port.
    fn start_local(bin_dir: PathBuf) -> TestPostgres {
        let dir = tempfile::Builder::new()
            .prefix("ordo-pg-")
            .tempdir()
            .expect("creating a temporary folder for a PostgreSQL cluster");
        // The folder is ours: its owner is this process's effective user.
        let as_postgres_user = dir
            .path()
            .metadata()
            .expect("reading the temporary folder's owner")
            .uid()
            == 0;
        if as_postgres_user {
            let (uid, gid) = postgres_user_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!("handing {} to the postgres user: {e}", dir.path().display())
            });
        }
        let mut pg = TestPostgres {
            url: String::new(),
            local: Some(Local {
                port: 0,
                data: dir.path().join("data"),
                log: dir.path().join("server.log"),
                as_postgres_user,
                running: Mutex::new(false),
                watchdog: None,
                dir,
            }),
            bin_dir,
        };
        // From here on a panic drops `pg`: the server (if any) is stopped, the folder
        // removed.
        let bin_dir = pg.bin_dir.clone();
        let local = pg.local.as_mut().expect("a local cluster");
        local.watchdog = Some(local.spawn_watchdog(&bin_dir));
        local.initdb(&bin_dir);
        local.start_on_free_port(&bin_dir);
        pg.url = format!("postgres://postgres@127.0.0.1:{}/postgres", local.port);
        pg
    }

    fn local_or_panic(&self, what: &str) -> &Local {
        self.local.as_ref().unwrap_or_else(|| {
            panic!("TestPostgres::{what}: the server of {URL_VAR} is external and is not stopped or started by the fixture; skip the test when is_external() is true")
        })
    }

    /// Runs `sql` on the database at `url` with `psql` (not through ordo: what a test
    /// checks the journal's tables with) and returns its output, unaligned, without
    /// headers, trimmed. Panics if `psql` fails.
    ///
    /// ```no_run
    /// # let pg = ordo_testkit::postgres::TestPostgres::start().expect("a server");
    /// let url = pg.database("orders");
    /// assert_eq!(pg.query(&url, "SELECT 1 + 1"), "2");
    /// ```
    pub fn query(&self, url: &str, sql: &str) -> String {
        let out = self
            .psql()
            .args(["-A", "-t", "-d", url, "-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("running psql: {e}"));
        assert!(
            out.status.success(),
            "psql -c {sql:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `psql` without a psqlrc, failing on the first error.
    fn psql(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"]);
        if self.local.is_some() {
            // The URL says everything; a PGOPTIONS or PGSSLMODE of the caller's must not.
            remove_pg_env(&mut cmd);
        }
        cmd
    }
}

impl Drop for TestPostgres {
    /// Stops the server (`pg_ctl stop -m immediate`) and removes its folder; nothing
    /// for an external server.
    fn drop(&mut self) {
        let Some(local) = self.local.as_mut() else {
            return;
        };
        if local.data.join("postmaster.pid").exists() {
            let mut cmd = local.server_command(&self.bin_dir, "pg_ctl");
            cmd.arg("-D")
                .arg(&local.data)
                .args(["-m", "immediate", "-w", "stop"]);
            // Best effort: drop must not panic (it may run while a test panics).
            if let Err(e) = cmd.output() {
                eprintln!("ordo-testkit postgres: could not stop the server: {e}");
            }
        }
        if let Some(mut watchdog) = local.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        // `local.dir` (a TempDir) removes the folder as the fields drop.
    }
}

impl Local {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, bool> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A server binary, run as the `postgres` user when this process is root, in the
    /// cluster's folder, without the caller's `PG*` variables.
    fn server_command(&self, bin_dir: &Path, program: &str) -> Command {
        let program = bin_dir.join(program);
        let mut cmd = if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        // The postgres user may not be allowed into the caller's working directory.
        cmd.current_dir(self.dir.path());
        remove_pg_env(&mut cmd);
        cmd
    }

    /// Runs a server command, panicking with its output and the log's tail.
    fn run_server(&self, cmd: &mut Command, context: &str) -> Output {
        try_run(cmd, context).unwrap_or_else(|failure| panic!("{failure}{}", self.log_tail()))
    }

    fn initdb(&self, bin_dir: &Path) {
        let mut cmd = self.server_command(bin_dir, "initdb");
        cmd.arg("-D").arg(&self.data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            // Skips syncing initdb's own files only; the server keeps fsync on.
            "--no-sync",
        ]);
        run(&mut cmd, "initdb");
        let socket_dir = self.dir.path().to_string_lossy().replace('\'', "''");
        let settings = format!(
            "\n# ordo-testkit\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\nmax_connections = 200\n\
             max_wal_size = 96MB\nmin_wal_size = 32MB\n"
        );
        // A small WAL: each `CREATE DATABASE` logs its template (7 MB), and a test
        // making hundreds would otherwise keep up to 1 GB of WAL between checkpoints.
        append(&self.data.join("postgresql.conf"), &settings);
    }

    /// Picks a free port and starts the server on it; another port if a parallel
    /// process took it between the pick and the start.
    fn start_on_free_port(&mut self, bin_dir: &Path) {
        let mut attempt = 1;
        loop {
            self.port = free_port();
            append(
                &self.data.join("postgresql.conf"),
                &format!("port = {}\n", self.port),
            );
            let log_before = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
            match self.pg_ctl_start(bin_dir) {
                Ok(()) => break,
                Err(failure) => {
                    let log = fs::read(&self.log).unwrap_or_default();
                    let new =
                        String::from_utf8_lossy(log.get(log_before as usize..).unwrap_or(&[]));
                    let port_taken = new.contains("could not bind")
                        || new.contains("could not create any TCP/IP sockets");
                    if !port_taken || attempt == PORT_ATTEMPTS {
                        panic!("{failure}");
                    }
                    attempt += 1;
                }
            }
        }
        *self.lock_running() = true;
    }

    /// `pg_ctl start`, waiting until the server accepts connections. On failure, a
    /// message with the command, its output and the log's tail.
    fn pg_ctl_start(&self, bin_dir: &Path) -> Result<(), String> {
        let mut cmd = self.server_command(bin_dir, "pg_ctl");
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60", "start"]);
        match try_run(
            &mut cmd,
            &format!("starting the server on port {}", self.port),
        ) {
            Ok(_) => Ok(()),
            Err(failure) => {
                // A server that came up too late for -w must not outlive the fixture.
                let mut stop = self.server_command(bin_dir, "pg_ctl");
                stop.arg("-D")
                    .arg(&self.data)
                    .args(["-m", "immediate", "-w", "stop"]);
                let _ = stop.output();
                Err(format!("{failure}{}", self.log_tail()))
            }
        }
    }

    /// A detached `sh` that waits for this process to end, then stops the server and
    /// removes the folder. In a process group of its own, so a Ctrl-C of the test run
    /// does not take it down with the tests.
    fn spawn_watchdog(&self, bin_dir: &Path) -> Child {
        const SCRIPT: &str = r#"
while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ "$5" = root ]; then
    runuser -u postgres -- "$2" -D "$3" -m immediate -w stop
else
    "$2" -D "$3" -m immediate -w stop
fi
rm -rf "$4"
"#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("ordo-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(bin_dir.join("pg_ctl"))
            .arg(&self.data)
            .arg(self.dir.path())
            .arg(if self.as_postgres_user {
                "root"
            } else {
                "user"
            })
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        remove_pg_env(&mut cmd);
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawning the PostgreSQL watchdog {cmd:?}: {e}"))
    }

    /// The last lines of the server log, for failure messages.
    fn log_tail(&self) -> String {
        match fs::read(&self.log) {
            Ok(log) => {
                let log = String::from_utf8_lossy(&log);
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                format!("\n--- tail of {}\n{tail}", self.log.display())
            }
            Err(e) => format!("\n--- no server log at {}: {e}", self.log.display()),
        }
    }
}

/// Whether `ORDO_REQUIRE_POSTGRES` asks for a panic instead of a skip.
fn required() -> bool {
    std::env::var_os(REQUIRE_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The first folder holding all of `programs`: `pg_config --bindir`, then the highest
/// version under `/usr/lib/postgresql`, then `PATH`.
fn find_bin_dir(programs: &[&str]) -> Option<PathBuf> {
    let has_all = |dir: &Path| programs.iter().all(|p| dir.join(p).is_file());
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|dir| has_all(dir)) {
        return Some(dir);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = parse_version(&entry.file_name())?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).find(|dir| has_all(dir))
}

/// "15" -> [15], "9.6" -> [9, 6]; anything else is no version.
fn parse_version(name: &OsStr) -> Option<Vec<u32>> {
    name.to_str()?
        .split('.')
        .map(|part| part.parse().ok())
        .collect()
}

/// The uid and gid of the `postgres` system user.
fn postgres_user_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let mut cmd = Command::new("id");
        cmd.args([flag, "postgres"]);
        let out = try_run(&mut cmd, "looking up the postgres user").unwrap_or_else(|failure| {
            panic!("{failure}\nrunning as root, the fixture runs initdb and the server as the `postgres` system user, which Debian's postgresql package creates; create it, run the tests as another user, or set {URL_VAR}")
        });
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("`id {flag} postgres` printed no number: {e}"))
    };
    (id("-u"), id("-g"))
}

/// A port of 127.0.0.1 nobody listened on a moment ago.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

/// A random tag for this process's database names on an external server.
fn process_tag() -> u32 {
    static TAG: OnceLock<u32> = OnceLock::new();
    *TAG.get_or_init(|| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish() as u32
    })
}

/// `name` as `[a-z0-9_]` (at most 24 characters), the process id, the external tag if
/// any, and the counter: `payments_v2_4242_0`.
fn database_name(name: &str, pid: u32, external_tag: Option<u32>, n: u64) -> String {
    let mut base: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    if base.is_empty() {
        base.push_str("db");
    }
    match external_tag {
        Some(tag) => format!("{base}_{pid}_{tag:08x}_{n}"),
        None => format!("{base}_{pid}_{n}"),
    }
}

/// Panics unless `name` is a database name the fixture may splice into SQL as it is.
fn check_name(name: &str) {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    assert!(plain, "database name {name:?}: use 1 to 63 of [a-z0-9_]");
}

/// `url` naming database `name` instead: the path replaced, a `?query` kept.
/// The database name at the end of `url`'s path (before any `?`).
fn database_of_url(url: &str) -> String {
    url.rsplit('/')
        .next()
        .and_then(|last| last.split('?').next())
        .unwrap_or_default()
        .to_owned()
}

fn with_database(url: &str, name: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority_start..];
    let authority_end = rest
        .find(['/', '?'])
        .map_or(url.len(), |i| authority_start + i);
    let query = url[authority_end..]
        .find('?')
        .map_or("", |i| &url[authority_end + i..]);
    format!("{}/{name}{query}", &url[..authority_end])
}

/// Removes the caller's `PG*` variables (`PGDATA`, `PGPORT`, `PGOPTIONS`, ...).
fn remove_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}

fn append(path: &Path, text: &str) {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("appending to {}: {e}", path.display()));
}

/// Runs `cmd`, panicking with its status, stderr and stdout if it fails.
fn run(cmd: &mut Command, context: &str) -> Output {
    try_run(cmd, context).unwrap_or_else(|failure| panic!("{failure}"))
}

/// Runs `cmd`; a failure as a message with the command, its status, stderr and stdout.
fn try_run(cmd: &mut Command, context: &str) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ordo-testkit postgres: {context}: could not run {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(out);
    }
    Err(format!(
        "ordo-testkit postgres: {context}: {cmd:?} failed ({})\n--- stderr\n{}\n--- stdout\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim_end(),
        String::from_utf8_lossy(&out.stdout).trim_end(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_sanitised_and_unique() {
        assert_eq!(
            database_name("Payments-v2", 42, None, 7),
            "payments_v2_42_7"
        );
        assert_eq!(database_name("", 1, None, 0), "db_1_0");
        assert_eq!(database_name("x", 1, Some(0xab), 3), "x_1_000000ab_3");
        let long = database_name(&"é".repeat(100), u32::MAX, Some(u32::MAX), 1 << 40);
        assert!(long.len() <= 63, "{long} is too long for PostgreSQL");
        assert!(long.starts_with(&"_".repeat(24)));
    }

    #[test]
    fn urls_get_their_database_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "a_1_0"),
            "postgres://postgres@127.0.0.1:5432/a_1_0"
        );
        assert_eq!(
            with_database("postgresql://u:p@db.example:5/x?sslmode=require", "b"),
            "postgresql://u:p@db.example:5/b?sslmode=require"
        );
        assert_eq!(with_database("postgres://h", "c"), "postgres://h/c");
        assert_eq!(
            with_database("postgres://h?application_name=t", "c"),
            "postgres://h/c?application_name=t"
        );
    }

    #[test]
    fn versions_sort_numerically() {
        let mut v = ["9.6", "15", "10", "x"]
            .iter()
            .filter_map(|n| parse_version(OsStr::new(n)))
            .collect::<Vec<_>>();
        v.sort();
        assert_eq!(v, vec![vec![9, 6], vec![10], vec![15]]);
    }
}
