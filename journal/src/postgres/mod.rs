//! [`PgJournal`]: the journal on PostgreSQL, shared by many worker processes (feature
//! `postgres`).
//!
//! # Commits
//!
//! One [`Store::commit`] is one round trip and one WAL flush, whatever it holds: most
//! often one statement (workflow records and completions), otherwise one transaction
//! sent in one flight, `BEGIN`, the fence, one statement per kind of record in the batch
//! (whole column arrays, `unnest`ed) and `COMMIT`, with no wait in between. Completions stay append-only (a statement refuses a seq at or before a
//! recorded one, [`Error::SeqOutOfOrder`]).
//!
//! # Workers, leases and fencing
//!
//! Each `PgJournal` is a *worker*: a row of `ordo.workers` with a name, an *epoch* and a
//! lease, renewed by a heartbeat on the store's thread every third of the lease. A
//! worker whose lease expired is declared dead by the next worker that claims work
//! ([`Store::claim_pending`]): that bumps its epoch, and from then on the dead worker
//! can write nothing ([`Error::Fenced`]), so a paused worker that wakes up can never
//! write after its workflows were taken over. Two checks make sure of it:
//!
//! - Each of the worker's connections holds the worker's advisory lock (shared) for its
//!   life, and checks the worker's epoch once it holds it. A worker is declared dead only
//!   by a transaction holding that lock exclusively: the claiming worker first ends the
//!   dead worker's connections (`pg_terminate_backend`: all workers must connect as one
//!   role, or one with `pg_signal_backend`, and directly or through a pooler in session
//!   mode), then declares it dead once they are gone. The commonest commit (completions
//!   of workflows the worker drives and knows, see `commit::KnownSeqs`) runs on such a
//!   connection with no check of its own: an epoch checked in every commit cost the
//!   server a fifth of that commit.
//! - Every other commit also checks the epoch itself (`ordo.fence`, or the update of the
//!   worker's row in a one-statement commit), and counts the commit on the worker's row,
//!   which tells after a lost answer whether it landed.
//!
//! Pending workflows carry their owner; a claim takes those of no owner, of dead owners
//! and its own, with `FOR UPDATE SKIP LOCKED`, so two workers claiming at once never
//! take the same one. Workers do this every half lease ([`Store::takeover_interval`]):
//! a dead worker's workflows are running again on others within about 1.5 leases.
//!
//! A worker that registers under a name already in the table takes that row over (its
//! epoch moves on, under the lock, after the old process's connections are ended), so a
//! restarted process named as before gets its workflows back at once, and the old
//! process, if it still runs, is fenced. Without a name a worker gets
//! a unique one. Dropping the journal releases its workflows and marks it dead.
//!
//! # Read-only
//!
//! A journal opened with [`PgOptions::read_only`] (the `ordo` CLI's) is no worker: it
//! registers no row, runs no heartbeat, releases nothing on drop, never creates or
//! migrates the schema, and refuses [`Store::commit`] and [`Store::claim_pending`]
//! ([`Error::ReadOnly`]). It only reads, so it never fences or disturbs the workers.
//!
//! # Connections
//!
//! A request runs on the calling thread, on a current-thread tokio runtime of the
//! store's own that the caller blocks on for the request's length: tokio never runs
//! inside ordo's executor between requests. A caller that is itself inside a tokio
//! runtime (which may not block on another) is answered by the store's thread instead,
//! blocking on a channel only; the thread also keeps the lease and listens for other
//! workers' changes whichever way requests run. A request whose connection
//! breaks is sent again on a new connection, with backoff, for at most
//! [`PgOptions::reconnect_for`]; a commit whose answer was lost is first looked up (the
//! worker's commit count says whether it landed, or for a commit that does not count,
//! whether its first completion is recorded), so it is applied exactly once. A new
//! connection takes the worker's lock and checks its epoch before anything else. TLS is
//! used as the URL asks for it, with libpq's meaning of `sslmode` and `sslrootcert`
//! (see `tls`: rustls, nothing to install).
//!
//! # Changes other workers wait for
//!
//! A commit that stores messages, sets events, resolves awakeables or ends workflows
//! also sends one `pg_notify('ordo_change', "<worker> <kind> <workflow id>")` per
//! workflow touched, delivered when it commits. Every worker `LISTEN`s on its heartbeat
//! connection and hands what others committed to its runtime
//! ([`Store::changed_elsewhere`]), which reads a mailbox again or wakes the waiters: no
//! polling. After a lost listening connection it reports [`Elsewhere::Missed`], and
//! everything is looked at again. Message numbers come in blocks reserved per worker
//! ([`Store::reserve_message_numbers`]), so no two workers number two messages alike.
//!
//! # Starts, queues and requests across workers
//!
//! A new workflow record (a start, an enqueue) is inserted only where no record has its
//! id, and the ids refused come back in the commit's answer
//! ([`Store::refused_starts`]): two workers starting one id at once run it once. A
//! queue's limits hold for all workers together through `ordo.admit`
//! ([`Store::admit`]). A deduplication id is taken when the enqueue is made, before its
//! commit, in one statement that orders two workers taking it at once
//! ([`Store::reserve_queue_holder`]): one of two enqueues under one deduplication id
//! on two workers in the same instant is refused. Processes that are no worker leave
//! requests for the workers in `ordo.requests` ([`ask_workers`], [`Relay`]).

mod commit;
mod relay;
mod schema;
mod session;
mod tls;

pub use relay::{ask_workers, Relay};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::Row;

use self::commit::{signed, unsigned, Encoded};
use self::session::{connect, db_error, Conn, Job, Known, Shared, Worker};
use self::tls::Target;
use crate::mail::Message;
use crate::queue::{Admission, Admitted, QueueRecord, Swap};
use crate::record::{Batch, Completion, Outcome, Status, WorkflowRecord};
use crate::{Elsewhere, Error, Store, TokenKey};

/// How long [`Store::reserve_queue_holder`] waits for the record of a holder another
/// live worker reserved but has not committed yet.
const HOLDER_PATIENCE: Duration = Duration::from_secs(2);

/// How long a takeover waits for the connections it ended (see `session::LOCK_CLASS`)
/// to be gone before it declares their worker dead (or tries again at the next round).
const EVICT_PATIENCE: Duration = Duration::from_secs(2);

/// The statement of the commonest commit: one completion, of a workflow the worker
/// knows (no server-side order check), on a connection fenced as a whole (no fence of
/// its own). Parameters: `$1` to `$9` the completion's columns (workflow id `text`, seq
/// `int8`, step id `int8`, name `text`, ok `bool`, value `bytea`, attempts `int4`,
/// started and ended `int8`). No answer row.
///
/// For `benches/postgres.rs`, which runs it alone on a plain client to split a commit's
/// time between the server and ordo; not a stable interface.
#[doc(hidden)]
pub fn steps_commit_statement() -> String {
    session::session_fenced_commit(true)
}

/// The version of the PostgreSQL schema this build creates and reads.
pub const PG_SCHEMA_VERSION: i32 = schema::VERSION;

/// How to connect a [`PgJournal`]: the URL, the worker's name and lease, how long to
/// retry a lost connection.
///
/// ```no_run
/// use std::time::Duration;
/// use ordo_journal::PgOptions;
///
/// let journal = PgOptions::new("postgres://ordo@db.internal/orders")
///     .worker_name("orders-1")
///     .lease(Duration::from_secs(5))
///     .connect()?;
/// # Ok::<(), ordo_journal::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PgOptions {
    url: String,
    worker_name: Option<String>,
    lease: Duration,
    reconnect_for: Duration,
    read_only: bool,
}

impl PgOptions {
    /// Options for the database at `url` (a `postgres://` URL or a `key=value`
    /// connection string), with a unique worker name, a 10 s lease, and lost
    /// connections retried for a minute.
    ///
    /// ```
    /// let options = ordo_journal::PgOptions::new("postgres://localhost/ordo");
    /// # let _ = options;
    /// ```
    pub fn new(url: impl Into<String>) -> PgOptions {
        PgOptions {
            url: url.into(),
            worker_name: None,
            lease: Duration::from_secs(10),
            reconnect_for: Duration::from_secs(60),
            read_only: false,
        }
    }

    /// Names the worker. A process that starts again under its old name gets its
    /// workflows back at once (and fences the old process if it still runs); two live
    /// processes must not share a name.
    ///
    /// ```
    /// let options = ordo_journal::PgOptions::new("postgres://localhost/ordo").worker_name("billing-7");
    /// # let _ = options;
    /// ```
    pub fn worker_name(mut self, name: impl Into<String>) -> PgOptions {
        self.worker_name = Some(name.into());
        self
    }

    /// How long the worker's lease lasts without a heartbeat (at least 300 ms): after
    /// that, other workers may take its workflows over, and it is fenced.
    ///
    /// ```
    /// let options = ordo_journal::PgOptions::new("postgres://localhost/ordo")
    ///     .lease(std::time::Duration::from_secs(3));
    /// # let _ = options;
    /// ```
    pub fn lease(mut self, lease: Duration) -> PgOptions {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// How long a request keeps trying to reconnect when the connection is lost
    /// (PostgreSQL restarting, a network cut) before it fails.
    ///
    /// ```
    /// let options = ordo_journal::PgOptions::new("postgres://localhost/ordo")
    ///     .reconnect_for(std::time::Duration::from_secs(300));
    /// # let _ = options;
    /// ```
    pub fn reconnect_for(mut self, wait: Duration) -> PgOptions {
        self.reconnect_for = wait;
        self
    }

    /// Opens the journal read-only, for inspecting it (the `ordo` CLI does): [`connect`]
    /// then writes nothing at all. It registers no worker (the
    /// [`worker_name`](Self::worker_name) and [`lease`](Self::lease) are ignored), runs
    /// no heartbeat, releases nothing on drop, and neither creates nor migrates the
    /// schema: a database without an ordo schema is refused with [`Error::Database`]
    /// ("no ordo schema in this database ..."), one at a newer version with
    /// [`Error::UnsupportedVersion`]. [`Store::commit`] and [`Store::claim_pending`]
    /// return [`Error::ReadOnly`], whose `path` is the database's address
    /// (`postgres://USER@HOST:PORT/DBNAME`, never the password).
    ///
    /// [`connect`]: Self::connect
    ///
    /// ```no_run
    /// use ordo_journal::{Batch, Error, PgOptions, Store};
    ///
    /// let journal = PgOptions::new("postgres://ordo@db.internal/orders").read_only().connect()?;
    /// println!("{} workflows", journal.workflows(None)?.len());
    /// assert!(journal.is_read_only());
    /// let mut batch = Batch::new();
    /// batch.delete_workflow("order-42");
    /// assert!(matches!(journal.commit(&batch), Err(Error::ReadOnly { .. })));
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn read_only(mut self) -> PgOptions {
        self.read_only = true;
        self
    }

    /// Connects, creates or migrates the schema, and registers the worker (read-only:
    /// checks the schema and writes nothing, see [`read_only`](Self::read_only)).
    ///
    /// ```no_run
    /// let journal = ordo_journal::PgOptions::new("postgres://localhost/ordo").connect()?;
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn connect(self) -> Result<PgJournal, Error> {
        PgJournal::open(self)
    }
}

/// The journal on PostgreSQL: every record kind sled keeps, in tables of the schema
/// `ordo`, shared by any number of worker processes (how commits, worker leases and
/// fencing work is described at the top of its source, `journal/src/postgres/mod.rs`).
///
/// ```no_run
/// use ordo_journal::{Batch, PgJournal, Status, Store, WorkflowRecord};
///
/// let journal = PgJournal::connect("postgres://ordo@localhost/ordo")?;
/// let mut batch = Batch::new();
/// batch.insert_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
/// journal.commit(&batch)?;
/// assert_eq!(journal.workflow("order-42")?.map(|w| w.status), Some(Status::Pending));
/// # Ok::<(), ordo_journal::Error>(())
/// ```
pub struct PgJournal {
    jobs: UnboundedSender<Job>,
    /// Serializes requests, and is the caller's own way to the database (see `call`).
    serial: std::sync::Mutex<Inline>,
    thread: Option<JoinHandle<()>>,
    /// `None`: opened [read-only](PgOptions::read_only), no worker.
    worker: Option<Worker>,
    /// The database's address without the password, for [`Error::ReadOnly`].
    address: String,
    fenced: Arc<AtomicBool>,
    commits: AtomicU64,
    lease: Duration,
    mail: Arc<MailBell>,
    /// Where the database is, for [`PgJournal::relay`]'s connection.
    config: Target,
    /// The new records of the last commit that another worker had written first.
    refused: std::sync::Mutex<Vec<String>>,
    /// The journal's token key (`ordo.token_key`), read when a worker opens it; `None`
    /// when opened read-only.
    token_key: Option<TokenKey>,
}

/// The caller's own way to the database: a current-thread tokio runtime that a
/// request runs on, on the calling thread, with a connection of its own.
///
/// The store's thread answers through two wake-ups of two threads per request; run
/// on the caller's thread, a request is one wake-up on the socket, about 55 µs less per
/// commit (a loop of one commit statement on one thread against the same loop
/// answered through a second thread: 225 against 280 µs). A caller inside a tokio
/// runtime cannot block on another runtime, so its requests still go through the
/// store's thread (`PgJournal::call`). Both ways share what they know ([`Known`]), and
/// one lock serializes them, as the store's thread did alone before.
struct Inline {
    /// `None` once dropped (see `PgJournal`'s `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
}

/// The worker of a journal opened read-only: no worker row has id 0 (ids count from
/// 1), so `ordo.fence` would refuse a commit even if one got past `Store::commit`'s
/// check.
fn read_only_worker() -> Worker {
    Worker {
        id: 0,
        epoch: 0,
        name: String::new(),
    }
}

/// The destinations of messages other workers committed (their `pg_notify`s), and whom
/// to wake when one comes.
#[derive(Default)]
pub(crate) struct MailBell {
    state: std::sync::Mutex<Bell>,
    /// Requests for the workers ([`relay`]).
    requests: relay::RequestBell,
}

#[derive(Default)]
struct Bell {
    changes: std::collections::BTreeSet<Elsewhere>,
    /// The listening connection was lost: notifications may have been missed, so every
    /// destination with messages counts.
    resync: bool,
    wake: Option<Box<dyn Fn() + Send + Sync>>,
}

impl MailBell {
    fn ring(&self, change: Option<Elsewhere>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match change {
            Some(change) => {
                state.changes.insert(change);
            }
            None => {
                state.resync = true;
                self.requests.ring();
            }
        }
        if let Some(wake) = &state.wake {
            wake();
        }
    }
}

impl std::fmt::Debug for PgJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("PgJournal");
        match &self.worker {
            Some(worker) => f
                .field("worker", &worker.name)
                .field("epoch", &worker.epoch),
            None => f.field("read_only", &self.address),
        }
        .finish_non_exhaustive()
    }
}

impl PgJournal {
    /// Connects with the default [`PgOptions`].
    ///
    /// ```no_run
    /// let journal = ordo_journal::PgJournal::connect("host=/var/run/postgresql dbname=ordo")?;
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn connect(url: &str) -> Result<PgJournal, Error> {
        PgOptions::new(url).connect()
    }

    /// The worker's name (given, or generated unique); empty for a
    /// [read-only](PgOptions::read_only) journal, which is no worker.
    ///
    /// ```no_run
    /// let journal = ordo_journal::PgOptions::new("postgres://localhost/ordo").worker_name("w1").connect()?;
    /// assert_eq!(journal.worker_name(), "w1");
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn worker_name(&self) -> &str {
        self.worker.as_ref().map_or("", |worker| &worker.name)
    }

    /// Whether the journal was opened with [`PgOptions::read_only`].
    ///
    /// ```no_run
    /// let journal = ordo_journal::PgOptions::new("postgres://localhost/ordo").read_only().connect()?;
    /// assert!(journal.is_read_only());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn is_read_only(&self) -> bool {
        self.worker.is_none()
    }

    /// Bytes the journal's tables take on the database server's disk, with their
    /// indexes and TOAST data (`pg_total_relation_size` of every table of the schema
    /// `ordo`).
    ///
    /// ```no_run
    /// let journal = ordo_journal::PgOptions::new("postgres://localhost/ordo").read_only().connect()?;
    /// println!("{} bytes", journal.size_on_disk()?);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn size_on_disk(&self) -> Result<u64, Error> {
        let row = self.read(|conn| {
            async move {
                conn.client
                    .query_one(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = 'ordo' AND c.relkind = 'r'",
                        &[],
                    )
                    .await
            }
            .boxed_local()
        })?;
        row.try_get(0).map(unsigned).map_err(db_error)
    }

    /// Whether this worker was fenced (see [`Error::Fenced`]): it can commit no more.
    ///
    /// ```no_run
    /// let journal = ordo_journal::PgJournal::connect("postgres://localhost/ordo")?;
    /// assert!(!journal.is_fenced());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    fn open(options: PgOptions) -> Result<PgJournal, Error> {
        let config = Target::parse(&options.url)?;
        let name = options.worker_name.clone().unwrap_or_else(unique_name);
        let address = address(&config);
        let fenced = Arc::new(AtomicBool::new(false));
        let (jobs, mut inbox) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<Option<Worker>, Error>>(1);
        let thread_fenced = Arc::clone(&fenced);
        let mail = Arc::new(MailBell::default());
        let thread_mail = Arc::clone(&mail);
        let relay_config = config.clone();
        let known = Arc::new(Known::default());
        let thread_known = Arc::clone(&known);
        let (inline_config, reconnect_for) = (config.clone(), options.reconnect_for);
        let thread = std::thread::Builder::new()
            .name("ordo-postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(Error::Io(err)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let deadline = Instant::now() + options.reconnect_for;
                    let opened = if options.read_only {
                        check_schema(&config, deadline).await.map(|()| None)
                    } else {
                        register(&config, &name, options.lease, deadline)
                            .await
                            .map(Some)
                    };
                    let worker = match opened {
                        Ok(Some((worker, commits))) => {
                            thread_known.set_commits(commits);
                            // Listening from before anything is driven (the caller waits
                            // for `ready`): no notification of a message to a workflow
                            // claimed here is missed.
                            let listener = listen(
                                &config,
                                worker.id,
                                &thread_mail,
                                Instant::now() + options.lease,
                            )
                            .await;
                            tokio::spawn(heartbeat(
                                config.clone(),
                                worker.clone(),
                                options.lease,
                                Arc::clone(&thread_fenced),
                                thread_mail,
                                listener.ok(),
                            ));
                            let _ = ready_tx.send(Ok(Some(worker.clone())));
                            worker
                        }
                        Ok(None) => {
                            let _ = ready_tx.send(Ok(None));
                            read_only_worker()
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                            return;
                        }
                    };
                    let shared = Arc::new(Shared::new(
                        config,
                        worker,
                        thread_known,
                        thread_fenced,
                        options.reconnect_for,
                    ));
                    while let Some(job) = inbox.recv().await {
                        job(Arc::clone(&shared)).await;
                    }
                });
            })?;
        let worker = ready_rx
            .recv()
            .map_err(|_| Error::Database("the PostgreSQL store's thread stopped".into()))??;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let inline = Inline {
            runtime: Some(runtime),
            shared: Arc::new(Shared::new(
                inline_config,
                worker.clone().unwrap_or_else(read_only_worker),
                known,
                Arc::clone(&fenced),
                reconnect_for,
            )),
        };
        let mut journal = PgJournal {
            jobs,
            serial: std::sync::Mutex::new(inline),
            thread: Some(thread),
            worker,
            address,
            fenced,
            commits: AtomicU64::new(0),
            lease: options.lease,
            mail,
            config: relay_config,
            refused: std::sync::Mutex::new(Vec::new()),
            token_key: None,
        };
        if journal.worker.is_some() {
            journal.token_key = Some(journal.read_token_key()?);
        }
        Ok(journal)
    }

    /// The token key the schema migration drew (a worker migrated the schema first).
    fn read_token_key(&self) -> Result<TokenKey, Error> {
        let rows = self.read(|conn| {
            async move {
                conn.client
                    .query("SELECT key FROM ordo.token_key", &[])
                    .await
            }
            .boxed_local()
        })?;
        let corrupt = |reason: String| Error::Corrupt {
            key: "ordo.token_key".into(),
            reason,
        };
        let [row] = &rows[..] else {
            return Err(corrupt(format!(
                "the table holds {} keys, not one",
                rows.len()
            )));
        };
        let bytes: Vec<u8> = row.try_get(0).map_err(db_error)?;
        TokenKey::from_bytes(&bytes).ok_or_else(|| {
            corrupt(format!(
                "the key is {} bytes, not {}",
                bytes.len(),
                TokenKey::LEN
            ))
        })
    }

    /// This worker's end of the requests that processes which are no worker (the
    /// `ordo` CLI) make of the workers ([`ask_workers`]); `None` when opened
    /// read-only. A runtime serves them on a thread of its own.
    ///
    /// ```no_run
    /// let journal = ordo_journal::PgOptions::new("postgres://ordo@db/shop").connect()?;
    /// assert!(journal.relay().is_some());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn relay(&self) -> Option<Relay> {
        let worker = self.worker.as_ref()?;
        Some(Relay {
            config: self.config.clone(),
            worker: worker.id,
            bell: Arc::clone(&self.mail),
            every: self.lease,
            runtime: None,
            client: None,
        })
    }

    /// Runs `job` and waits for its answer: on this thread (see [`Inline`]), or on the
    /// store's thread when this thread is inside a tokio runtime. One request at a
    /// time either way: a commit whose answer was lost tells whether it landed by the
    /// worker's commit count, which no other request of this worker may move meanwhile.
    fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(Arc<Shared>) -> futures::future::LocalBoxFuture<'static, Result<R, Error>>
            + Send
            + 'static,
    ) -> Result<R, Error> {
        let serial = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        if tokio::runtime::Handle::try_current().is_err() {
            if let Some(runtime) = &serial.runtime {
                let shared = Arc::clone(&serial.shared);
                return runtime.block_on(job(shared));
            }
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |shared| {
            job(shared)
                .map(move |result| {
                    let _ = tx.send(result);
                })
                .boxed_local()
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Database("the PostgreSQL store's thread stopped".into()))?;
        rx.recv()
            .map_err(|_| Error::Database("the PostgreSQL store's thread stopped".into()))?
    }

    /// Runs one read (see `call`), again on a new connection if needed.
    fn read<R, F>(&self, read: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: Fn(
                Arc<Conn>,
            )
                -> futures::future::LocalBoxFuture<'static, Result<R, tokio_postgres::Error>>
            + Send
            + 'static,
    {
        self.call(move |shared| async move { shared.run(|conn, _| read(conn)).await }.boxed_local())
    }

    /// Claims the pending workflows no live worker drives (only `id`, if given), after
    /// declaring dead (and fencing) the workers whose lease ran out: one transaction.
    fn claim_where(&self, id: Option<String>) -> Result<Vec<WorkflowRecord>, Error> {
        self.claim_with(Claim::Pending(id))
    }

    /// Claims what `which` says, after declaring dead (and fencing) the workers whose
    /// lease ran out: one transaction.
    fn claim_with(&self, which: Claim) -> Result<Vec<WorkflowRecord>, Error> {
        self.writable()?;
        if self.is_fenced() {
            return Err(self.fenced_error());
        }
        let rows = self.call(move |shared| {
            async move {
                let fence = [shared.worker.id, shared.worker.epoch];
                let which = &which;
                let (counted, rows) = shared
                    .run(|conn, _| async move {
                        let c = &conn.client;
                        let both: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                            [&fence[0], &fence[1]];
                        let me: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&fence[0]];
                        let claim = async {
                            match which {
                                Claim::Pending(id) => {
                                    c.query(&conn.st.claim, &[&fence[0], id]).await
                                }
                                Claim::Queued(ids) => {
                                    c.query(&conn.st.claim_queued, &[&fence[0], ids]).await
                                }
                            }
                        };
                        // A paused worker whose lease ran out may still hold its
                        // connections (and its lock): they are ended first, and
                        // `expire` declares it dead once they are gone.
                        let evicted: i64 = c.query_one(&conn.st.evict, &me).await?.try_get(0)?;
                        if evicted > 0 {
                            let until = Instant::now() + EVICT_PATIENCE;
                            while Instant::now() < until {
                                let left: i64 =
                                    c.query_one(&conn.st.evicting, &me).await?.try_get(0)?;
                                if left == 0 {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                        let (begin, fenced, expired, claimed, commit) = futures::join!(
                            c.batch_execute("BEGIN"),
                            c.query_one(&conn.st.fence, &both),
                            c.execute(&conn.st.expire, &me),
                            claim,
                            c.batch_execute("COMMIT"),
                        );
                        begin?;
                        let counted: i64 = fenced?.try_get(0)?;
                        expired?;
                        let rows = claimed?;
                        commit?;
                        Ok((counted, rows))
                    })
                    .await?;
                shared.known.set_commits(counted);
                // Workflows this worker now drives, written by others before.
                shared
                    .known
                    .seqs()
                    .forget(rows.iter().filter_map(|row| row.try_get::<_, &str>(0).ok()));
                Ok(rows)
            }
            .boxed_local()
        })?;
        rows.iter().map(workflow).collect()
    }

    fn fenced_error(&self) -> Error {
        Error::Fenced {
            worker: self.worker_name().to_owned(),
        }
    }

    /// [`Error::ReadOnly`] if the journal was opened read-only.
    fn writable(&self) -> Result<(), Error> {
        if self.is_read_only() {
            return Err(Error::ReadOnly {
                path: self.address.clone().into(),
            });
        }
        Ok(())
    }
}

/// What [`PgJournal::claim_with`] claims.
enum Claim {
    /// The pending workflows no live worker drives; only this one, pending or queued,
    /// if given.
    Pending(Option<String>),
    /// Those of these queued workflows that dead workers held.
    Queued(Vec<String>),
}

/// Where `config` points, for messages: `postgres://USER@HOST:PORT/DBNAME`, never the
/// password (the first host and port; a Unix socket folder as the host).
fn address(config: &Target) -> String {
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(folder)) => folder.display().to_string(),
        None => config
            .get_hostaddrs()
            .first()
            .map_or_else(|| "localhost".into(), ToString::to_string),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{dbname}")
}

fn unique_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{host}-{}-{nanos:x}", std::process::id())
}

fn lease_ms(lease: Duration) -> f64 {
    lease.as_secs_f64() * 1000.0
}

/// Connects, migrates, and registers (or re-registers) the worker `name`.
async fn register(
    config: &Target,
    name: &str,
    lease: Duration,
    deadline: Instant,
) -> Result<(Worker, i64), Error> {
    let mut client = connect(config, deadline).await?;
    schema::migrate(&mut client).await?;
    // A row of this name is taken over (its epoch moves on) only while this statement
    // holds its worker's lock (see `session::LOCK_CLASS`): connections of an earlier
    // process of this name that still hold it are ended, and it is tried again.
    let upsert = format!(
        "INSERT INTO ordo.workers (name, lease_until)
             VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond')
         ON CONFLICT (name) DO UPDATE SET epoch = ordo.workers.epoch + 1, alive = true,
             lease_until = EXCLUDED.lease_until
             WHERE pg_try_advisory_xact_lock({})
         RETURNING id, epoch, commits",
        session::lock_keys("ordo.workers.id")
    );
    let evict = format!(
        "SELECT count(pg_terminate_backend(l.pid))
             FROM ordo.workers w {} WHERE w.name = $1",
        session::holders()
    );
    let row = loop {
        let row = client
            .query_opt(&upsert, &[&name, &lease_ms(lease)])
            .await
            .map_err(db_error)?;
        if let Some(row) = row {
            break row;
        }
        if Instant::now() > deadline {
            return Err(Error::Database(format!(
                "worker {name}'s row is held by connections of an earlier process of that \
                 name, which came back each time they were ended: is another live process \
                 using the same worker name?"
            )));
        }
        client.query_one(&evict, &[&name]).await.map_err(db_error)?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let id: i64 = row.try_get(0).map_err(db_error)?;
    // Slots an earlier process under this name held: this one counts its own again.
    client
        .execute("DELETE FROM ordo.queue_slots WHERE worker = $1", &[&id])
        .await
        .map_err(db_error)?;
    let worker = Worker {
        id,
        epoch: row.try_get(1).map_err(db_error)?,
        name: name.to_owned(),
    };
    Ok((worker, row.try_get(2).map_err(db_error)?))
}

/// Connects and checks, writing nothing, that the database holds an ordo schema this
/// build reads (a [read-only](PgOptions::read_only) open).
async fn check_schema(config: &Target, deadline: Instant) -> Result<(), Error> {
    let client = connect(config, deadline).await?;
    let exists = client
        .query_one("SELECT to_regclass('ordo.schema_version') IS NOT NULL", &[])
        .await
        .and_then(|row| row.try_get::<_, bool>(0))
        .map_err(db_error)?;
    let found: Option<i32> = if exists {
        client
            .query_one("SELECT max(version) FROM ordo.schema_version", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(db_error)?
    } else {
        None
    };
    match found.unwrap_or(0) {
        0 => Err(Error::Database(
            "no ordo schema in this database (it was opened read-only, so nothing was \
             created: an ordo application creates the schema when it first connects; \
             check the database name)"
                .into(),
        )),
        found if found > schema::VERSION => Err(Error::UnsupportedVersion {
            what: "PostgreSQL journal schema".into(),
            found: u32::try_from(found).unwrap_or(0),
            supported: u32::try_from(schema::VERSION).unwrap_or(0),
        }),
        found if found < schema::VERSION => Err(Error::Database(format!(
            "the ordo schema in this database is at version {found}, older than this \
             build's {}: it was opened read-only, so it was not migrated (an ordo \
             application of this version migrates it when it connects)",
            schema::VERSION
        ))),
        _ => Ok(()),
    }
}

/// Opens the connection that renews the lease and listens for `ordo_change`
/// notifications, which ring `mail` (the connection's messages are polled by a task of
/// the store's runtime).
async fn listen(
    config: &Target,
    worker: i64,
    mail: &Arc<MailBell>,
    deadline: Instant,
) -> Result<tokio_postgres::Client, Error> {
    let mut backoff = Duration::from_millis(20);
    let (client, mut connection) = loop {
        match config.connect().await {
            Ok(pair) => break pair,
            Err(err) if Instant::now() + backoff < deadline => {
                let _ = err;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(err) => return Err(db_error(err)),
        }
    };
    let bell = Arc::clone(mail);
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notification(note) = message {
                // "<sender> <kind> <workflow id>": this worker told its own
                // workflows already.
                let mut parts = note.payload().splitn(3, ' ');
                let (Some(sender), Some(kind), Some(id)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                if sender.parse::<i64>().ok() == Some(worker) {
                    continue;
                }
                let change = match kind {
                    "m" => Elsewhere::Mail(id.to_owned()),
                    "w" => Elsewhere::Ended(id.to_owned()),
                    "e" => Elsewhere::Event(id.to_owned()),
                    "a" => Elsewhere::Resolved(id.to_owned()),
                    "q" => Elsewhere::Queue(id.to_owned()),
                    "r" => {
                        bell.requests.ring();
                        continue;
                    }
                    _ => continue,
                };
                bell.ring(Some(change));
            }
        }
    });
    client
        .batch_execute("LISTEN ordo_change")
        .await
        .map_err(db_error)?;
    Ok(client)
}

/// Renews the lease every third of it, on a connection of its own that also listens for
/// mail (a long commit never delays it). A renewal that finds the row moved on marks the
/// worker fenced. A new connection after a lost one rings for every mailbox, since
/// notifications may have been missed in between.
async fn heartbeat(
    config: Target,
    worker: Worker,
    lease: Duration,
    fenced: Arc<AtomicBool>,
    mail: Arc<MailBell>,
    mut client: Option<tokio_postgres::Client>,
) {
    if client.is_none() {
        mail.ring(None);
    }
    loop {
        tokio::time::sleep(lease / 3).await;
        if client
            .as_ref()
            .is_none_or(|c: &tokio_postgres::Client| c.is_closed())
        {
            client = listen(&config, worker.id, &mail, Instant::now() + lease / 3)
                .await
                .ok();
            if client.is_some() {
                mail.ring(None);
            }
        }
        let Some(c) = &client else { continue };
        let renewed = c
            .execute(
                "UPDATE ordo.workers
                     SET lease_until = clock_timestamp() + $3 * interval '1 millisecond'
                 WHERE id = $1 AND epoch = $2 AND alive",
                &[&worker.id, &worker.epoch, &lease_ms(lease)],
            )
            .await;
        match renewed {
            Ok(0) => {
                fenced.store(true, Ordering::SeqCst);
                return;
            }
            Ok(_) => {}
            Err(_) => client = None,
        }
    }
}

fn workflow_from_row(row: &Row) -> Result<WorkflowRecord, tokio_postgres::Error> {
    let id: String = row.try_get(0)?;
    let status: i16 = row.try_get(2)?;
    let output_ok: Option<bool> = row.try_get(4)?;
    let output: Option<Vec<u8>> = row.try_get(5)?;
    let attempts: i32 = row.try_get(8)?;
    Ok(WorkflowRecord {
        name: row.try_get(1)?,
        input: row.try_get(3)?,
        // An unknown status byte is caught by `check_status` below.
        status: u8::try_from(status)
            .ok()
            .and_then(Status::from_index_byte)
            .unwrap_or(Status::Pending),
        output: match (output_ok, output) {
            (Some(true), Some(bytes)) => Some(Outcome::Ok(bytes)),
            (Some(false), Some(bytes)) => Some(Outcome::Err(bytes)),
            _ => None,
        },
        created_ms: unsigned(row.try_get(6)?),
        updated_ms: unsigned(row.try_get(7)?),
        recovery_attempts: u32::from_ne_bytes(attempts.to_ne_bytes()),
        app_version: row.try_get(9)?,
        deadline_ms: row.try_get::<_, Option<i64>>(10)?.map(unsigned),
        first_step: unsigned(row.try_get(11)?),
        keyed_tokens: row.try_get(12)?,
        id,
    })
}

/// Decodes a workflow row; a status this build does not know is corrupt.
fn workflow(row: &Row) -> Result<WorkflowRecord, Error> {
    let status: i16 = row.try_get(2).map_err(db_error)?;
    let record = workflow_from_row(row).map_err(db_error)?;
    if u8::try_from(status)
        .ok()
        .and_then(Status::from_index_byte)
        .is_none()
    {
        return Err(Error::Corrupt {
            key: format!("ordo.workflows/{}", record.id),
            reason: format!("unknown status {status}"),
        });
    }
    Ok(record)
}

fn outcome(ok: bool, value: Vec<u8>) -> Outcome {
    if ok {
        Outcome::Ok(value)
    } else {
        Outcome::Err(value)
    }
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// Whether any of `texts` holds a NUL character, which no record here holds (`text`
/// cannot, and commits refuse them: [`Error::NulCharacter`]). A read of one finds
/// nothing, as on sled, rather than failing with the server's encoding error.
fn unstorable(texts: &[&str]) -> bool {
    texts
        .iter()
        .any(|text| crate::key::check_text(text).is_err())
}

/// The most workflows a runtime's group commit serves on this store
/// ([`Store::max_commit_workflows`]): as many as a commit's completions (1,024). The
/// runtime's own bound (512) is for sled, which keeps a copy of the tree node of every
/// entry a commit writes until it ends; a commit here is one statement over column
/// arrays, with no such cost per workflow. Measured with a one-off probe on a scratch
/// cluster (1,000 workflows of 10 steps started together in one process, two builds
/// alternated, three bursts each): 104,399 to 135,247 steps/s at 512 (22 commits a
/// burst), 135,106 to 159,453 at 1,024 (12 commits).
const MAX_COMMIT_WORKFLOWS: usize = 1024;

impl Store for PgJournal {
    fn commit(&self, batch: &Batch) -> Result<(), Error> {
        // Like a read-only sled journal: refused even when empty.
        self.writable()?;
        if batch.is_empty() {
            return Ok(());
        }
        if self.is_fenced() {
            return Err(self.fenced_error());
        }
        let encoded = Arc::new(Encoded::from_batch(batch)?);
        let refused = self.call(move |shared| {
            async move {
                let fence = [shared.worker.id, shared.worker.epoch];
                let in_order = shared.known.seqs().check(&encoded)?;
                let known = &shared.known;
                let sent = shared
                    .run(|conn, retried| {
                        let encoded = Arc::clone(&encoded);
                        let known = known.commits();
                        async move {
                            if retried && encoded.session_fenced(in_order) {
                                // The last attempt's answer was lost, and it did not
                                // count: it landed if its first completion is recorded
                                // (on this connection, which checked the worker is not
                                // fenced, nothing else appends to its workflow).
                                if let Some((id, seq)) = encoded.first_seq() {
                                    let row = conn
                                        .client
                                        .query_one(&conn.st.landed, &[&id, &seq])
                                        .await?;
                                    if row.try_get::<_, bool>(0)? {
                                        return Ok(Some((None, Vec::new())));
                                    }
                                }
                            } else if retried {
                                // The last attempt's answer was lost: it landed if the
                                // worker's count moved past what this process knew.
                                let row = conn
                                    .client
                                    .query_one(&conn.st.commits, &[&fence[0]])
                                    .await?;
                                let count: i64 = row.try_get(0)?;
                                if count > known {
                                    // Its new records that are not this worker's were
                                    // another's first.
                                    let row = conn
                                        .client
                                        .query_one(
                                            "SELECT coalesce(array_agg(id), '{}')
                                                 FROM ordo.workflows WHERE id = ANY($1)
                                                 AND owner IS DISTINCT FROM $2",
                                            &[&encoded.new_ids(), &fence[0]],
                                        )
                                        .await?;
                                    return Ok(Some((Some(count), row.try_get(0)?)));
                                }
                            }
                            encoded.send(&conn, fence[0], fence, in_order).await
                        }
                    })
                    .await;
                let mut known_seqs = shared.known.seqs();
                let (counted, refused) = match sent {
                    Ok(Some(sent)) => sent,
                    Ok(None) => {
                        known_seqs.failed(&encoded);
                        return Err(shared.fenced_now());
                    }
                    Err(err) => {
                        known_seqs.failed(&encoded);
                        return Err(err);
                    }
                };
                known_seqs.committed(&encoded, &refused);
                if let Some(counted) = counted {
                    shared.known.set_commits(counted);
                }
                Ok(refused)
            }
            .boxed_local()
        })?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = refused;
        Ok(())
    }

    fn refused_starts(&self) -> Vec<String> {
        std::mem::take(&mut *self.refused.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn workflow(&self, id: &str) -> Result<Option<WorkflowRecord>, Error> {
        if unstorable(&[id]) {
            return Ok(None);
        }
        let id = id.to_owned();
        let row = self.read(move |conn| {
            let id = id.clone();
            async move { conn.client.query_opt(&conn.st.workflow, &[&id]).await }.boxed_local()
        })?;
        row.as_ref().map(workflow).transpose()
    }

    /// One round trip for all of `ids` (`WHERE id = ANY(..)`).
    fn workflows_by_id(&self, ids: &[&str]) -> Result<Vec<Option<WorkflowRecord>>, Error> {
        if ids.len() < 2 {
            return ids.iter().map(|id| self.workflow(id)).collect();
        }
        let asked: Vec<String> = ids
            .iter()
            .filter(|&&id| !unstorable(&[id]))
            .map(|&id| id.to_owned())
            .collect();
        let rows = self.read(move |conn| {
            let asked = asked.clone();
            async move { conn.client.query(&conn.st.workflows_in, &[&asked]).await }.boxed_local()
        })?;
        // Each found record with how many times it is asked for: moved out at its last
        // ask, copied only for an id asked twice.
        let mut found: std::collections::HashMap<String, (WorkflowRecord, usize)> =
            std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let record = workflow(row)?;
            found.insert(record.id.clone(), (record, 0));
        }
        for &id in ids {
            if let Some((_, asks)) = found.get_mut(id) {
                *asks += 1;
            }
        }
        Ok(ids
            .iter()
            .map(|&id| match found.get_mut(id) {
                Some((record, asks)) if *asks > 1 => {
                    *asks -= 1;
                    Some(record.clone())
                }
                Some(_) => found.remove(id).map(|(record, _)| record),
                None => None,
            })
            .collect())
    }

    fn completions(&self, workflow_id: &str) -> Result<Vec<Completion>, Error> {
        if unstorable(&[workflow_id]) {
            return Ok(Vec::new());
        }
        let id = workflow_id.to_owned();
        let rows = self.read(move |conn| {
            let id = id.clone();
            async move { conn.client.query(&conn.st.completions, &[&id]).await }.boxed_local()
        })?;
        rows.iter()
            .map(|row| {
                let attempts: i32 = row.try_get(5)?;
                Ok(Completion {
                    seq: unsigned(row.try_get(0)?),
                    step_id: unsigned(row.try_get(1)?),
                    name: row.try_get(2)?,
                    outcome: outcome(row.try_get(3)?, row.try_get(4)?),
                    attempts: u32::from_ne_bytes(attempts.to_ne_bytes()),
                    started_ms: unsigned(row.try_get(6)?),
                    ended_ms: unsigned(row.try_get(7)?),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(db_error)
    }

    fn workflows(&self, status: Option<Status>) -> Result<Vec<WorkflowRecord>, Error> {
        let status = status.map(|s| i16::from(s.index_byte()));
        let rows = self.read(move |conn| {
            async move {
                match status {
                    Some(status) => conn.client.query(&conn.st.workflows_with, &[&status]).await,
                    None => conn.client.query(&conn.st.workflows, &[]).await,
                }
            }
            .boxed_local()
        })?;
        rows.iter().map(workflow).collect()
    }

    fn token_key(&self) -> Option<TokenKey> {
        self.token_key
    }

    fn type_name(&self, fingerprint: u64) -> Result<Option<String>, Error> {
        let fingerprint = signed(fingerprint);
        let row = self.read(move |conn| {
            async move {
                conn.client
                    .query_opt(&conn.st.type_name, &[&fingerprint])
                    .await
            }
            .boxed_local()
        })?;
        row.map(|row| row.try_get(0)).transpose().map_err(db_error)
    }

    fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn messages(&self, destination: &str) -> Result<Vec<Message>, Error> {
        if unstorable(&[destination]) {
            return Ok(Vec::new());
        }
        let destination = destination.to_owned();
        let dest = destination.clone();
        let rows = self.read(move |conn| {
            let dest = dest.clone();
            async move { conn.client.query(&conn.st.messages, &[&dest]).await }.boxed_local()
        })?;
        rows.iter()
            .map(|row| {
                Ok(Message {
                    destination: destination.clone(),
                    topic: row.try_get(0)?,
                    number: unsigned(row.try_get(1)?),
                    payload: row.try_get(2)?,
                    sent_ms: unsigned(row.try_get(3)?),
                    idempotency_key: row.try_get(4)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(db_error)
    }

    fn message_key_used(&self, destination: &str, key: &str) -> Result<bool, Error> {
        if unstorable(&[destination, key]) {
            return Ok(false);
        }
        let (destination, key) = (destination.to_owned(), key.to_owned());
        let row = self.read(move |conn| {
            let (d, k) = (destination.clone(), key.clone());
            async move { conn.client.query_one(&conn.st.key_used, &[&d, &k]).await }.boxed_local()
        })?;
        row.try_get(0).map_err(db_error)
    }

    fn last_message_number(&self) -> Result<u64, Error> {
        let row = self.read(move |conn| {
            async move { conn.client.query_one(&conn.st.last_message, &[]).await }.boxed_local()
        })?;
        row.try_get(0).map(unsigned).map_err(db_error)
    }

    fn event(&self, workflow_id: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        if unstorable(&[workflow_id, key]) {
            return Ok(None);
        }
        let (id, key) = (workflow_id.to_owned(), key.to_owned());
        let row = self.read(move |conn| {
            let (id, k) = (id.clone(), key.clone());
            async move { conn.client.query_opt(&conn.st.event, &[&id, &k]).await }.boxed_local()
        })?;
        row.map(|row| row.try_get(0)).transpose().map_err(db_error)
    }

    fn events(&self, workflow_id: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        if unstorable(&[workflow_id]) {
            return Ok(Vec::new());
        }
        let id = workflow_id.to_owned();
        let rows = self.read(move |conn| {
            let id = id.clone();
            async move { conn.client.query(&conn.st.events, &[&id]).await }.boxed_local()
        })?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(db_error)
    }

    fn awakeable(&self, workflow_id: &str, step_id: u64) -> Result<Option<Outcome>, Error> {
        if unstorable(&[workflow_id]) {
            return Ok(None);
        }
        let id = workflow_id.to_owned();
        let step = signed(step_id);
        let row = self.read(move |conn| {
            let id = id.clone();
            async move {
                conn.client
                    .query_opt(&conn.st.awakeable, &[&id, &step])
                    .await
            }
            .boxed_local()
        })?;
        row.map(|row| Ok(outcome(row.try_get(0)?, row.try_get(1)?)))
            .transpose()
            .map_err(db_error)
    }

    fn trace_context(&self, workflow_id: &str) -> Result<Option<String>, Error> {
        if unstorable(&[workflow_id]) {
            return Ok(None);
        }
        let id = workflow_id.to_owned();
        let row = self.read(move |conn| {
            let id = id.clone();
            async move { conn.client.query_opt(&conn.st.trace, &[&id]).await }.boxed_local()
        })?;
        row.map(|row| row.try_get(0)).transpose().map_err(db_error)
    }

    fn queue_records(&self, prefix: &[u8]) -> Result<Vec<QueueRecord>, Error> {
        let (low, high) = (prefix.to_vec(), successor(prefix));
        let rows = self.read(move |conn| {
            let (low, high) = (low.clone(), high.clone());
            async move { conn.client.query(&conn.st.queue_scan, &[&low, &high]).await }
                .boxed_local()
        })?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(db_error)
    }

    fn reserve_queue_holder(&self, key: &[u8], id: &str) -> Result<Option<String>, Error> {
        self.writable()?;
        let Some(worker) = self.worker.as_ref().map(|w| w.id) else {
            return Ok(None);
        };
        // A holder reserved by another worker whose commit is still in flight: its
        // record lands within milliseconds. Waiting for it lets the caller read the
        // holder it is given (a handle on it), unless that worker died meanwhile.
        let patience = Instant::now() + HOLDER_PATIENCE;
        loop {
            let (key, value) = (key.to_vec(), id.as_bytes().to_vec());
            let row = self.read(move |conn| {
                let (key, value) = (key.clone(), value.clone());
                async move {
                    let c = &conn.client;
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                        [&key, &value, &worker];
                    // One flight, one transaction (see the statements).
                    let (begin, inserted, locked, holder, commit) = futures::join!(
                        c.batch_execute("BEGIN"),
                        c.execute(&conn.st.reserve_insert, &params),
                        c.query(&conn.st.reserve_lock, &params[..1]),
                        c.query_opt(&conn.st.reserve_holder, &params),
                        c.batch_execute("COMMIT"),
                    );
                    begin?;
                    inserted?;
                    locked?;
                    let holder = holder?;
                    commit?;
                    Ok(holder)
                }
                .boxed_local()
            })?;
            // Gone between the insert and the lock (its holder ended): again.
            let Some(row) = row else { continue };
            let holder: Vec<u8> = row.try_get(0).map_err(db_error)?;
            let committed: bool = row.try_get(1).map_err(db_error)?;
            if holder == id.as_bytes() {
                return Ok(None);
            }
            if committed || Instant::now() >= patience {
                return Ok(Some(String::from_utf8_lossy(&holder).into_owned()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn release_queue_holder(&self, key: &[u8], id: &str) -> Result<(), Error> {
        self.writable()?;
        let Some(worker) = self.worker.as_ref().map(|w| w.id) else {
            return Ok(());
        };
        let (key, value) = (key.to_vec(), id.as_bytes().to_vec());
        self.read(move |conn| {
            let (key, value) = (key.clone(), value.clone());
            async move {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
                    [&key, &value, &worker];
                conn.client.execute(&conn.st.release_holder, &params).await
            }
            .boxed_local()
        })?;
        Ok(())
    }

    fn swap_queue_record(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<Option<Swap>, Error> {
        self.writable()?;
        if self.is_fenced() {
            return Err(self.fenced_error());
        }
        let key = key.to_vec();
        let expected = expected.map(<[u8]>::to_vec);
        let (mut put_keys, mut put_values, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        for (k, value) in writes {
            match value {
                Some(value) => {
                    put_keys.push(k.clone());
                    put_values.push(value.clone());
                }
                None => deletes.push(k.clone()),
            }
        }
        let found = self.read(move |conn| {
            let (key, expected) = (key.clone(), expected.clone());
            let (put_keys, put_values, deletes) =
                (put_keys.clone(), put_values.clone(), deletes.clone());
            async move {
                let c = &conn.client;
                let one: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&key];
                let (begin, locked, read) = futures::join!(
                    c.batch_execute("BEGIN"),
                    c.execute(&conn.st.swap_lock, &one),
                    c.query_opt(&conn.st.swap_read, &one),
                );
                let held = begin
                    .and(locked)
                    .and_then(|_| read?.map(|row| row.try_get::<_, Vec<u8>>(0)).transpose());
                match held {
                    Ok(held) if held == expected => {}
                    // Something else: nothing to write (or the read failed).
                    other => {
                        c.batch_execute("ROLLBACK").await?;
                        return other.map(Some);
                    }
                }
                let gone: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&deletes];
                let new: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&put_keys, &put_values];
                let (deleted, put, commit) = futures::join!(
                    c.execute(&conn.st.queue_delete, &gone),
                    c.execute(&conn.st.queue_put, &new),
                    c.batch_execute("COMMIT"),
                );
                deleted?;
                put?;
                commit?;
                Ok(None)
            }
            .boxed_local()
        })?;
        Ok(Some(found.map_or(Swap::Done, Swap::Changed)))
    }

    fn claim_pending(&self) -> Result<Vec<WorkflowRecord>, Error> {
        let mut claimed = self.claim_where(None)?;
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    fn claim(&self, id: &str) -> Result<bool, Error> {
        if unstorable(&[id]) {
            return Ok(false);
        }
        Ok(!self.claim_where(Some(id.to_owned()))?.is_empty())
    }

    fn unheld_queued(&self) -> Result<Vec<String>, Error> {
        let rows = self.read(move |conn| {
            async move { conn.client.query(&conn.st.unheld_queued, &[]).await }.boxed_local()
        })?;
        rows.iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(db_error)
    }

    fn claim_queued(&self, ids: &[String]) -> Result<Vec<WorkflowRecord>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut claimed = self.claim_with(Claim::Queued(ids.to_vec()))?;
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    fn admit(&self, admission: &Admission) -> Result<Option<Admitted>, Error> {
        self.writable()?;
        if self.is_fenced() {
            return Err(self.fenced_error());
        }
        let Admission {
            lane,
            concurrency,
            rate,
            now_ms,
            running,
            want,
        } = admission.clone();
        let row = self.call(move |shared| {
            async move {
                let lane = lane.into_bytes();
                let fence = [shared.worker.id, shared.worker.epoch];
                let limits = [
                    concurrency.map(signed),
                    rate.map(|(limit, _)| signed(limit)),
                    rate.map(|(_, period)| signed(period)),
                ];
                let counts = [signed(now_ms), signed(running), signed(want)];
                let (lane, fence, limits, counts) = (&lane, &fence, &limits, &counts);
                shared
                    .run(|conn, _| async move {
                        let [concurrency, limit, period] = limits;
                        conn.client
                            .query_one(
                                &conn.st.admit,
                                &[
                                    lane,
                                    &fence[0],
                                    &fence[1],
                                    concurrency,
                                    limit,
                                    period,
                                    &counts[0],
                                    &counts[1],
                                    &counts[2],
                                ],
                            )
                            .await
                    })
                    .await
            }
            .boxed_local()
        })?;
        let granted: i64 = row.try_get(0).map_err(db_error)?;
        let retry_at: Option<i64> = row.try_get(1).map_err(db_error)?;
        Ok(Some(Admitted {
            granted: unsigned(granted),
            retry_at_ms: retry_at.map(unsigned),
        }))
    }

    fn reserve_message_numbers(&self, count: u64) -> Result<Option<u64>, Error> {
        self.writable()?;
        let count = signed(count);
        let row = self.read(move |conn| {
            async move { conn.client.query_one(&conn.st.reserve, &[&count]).await }.boxed_local()
        })?;
        row.try_get(0)
            .map(|first| Some(unsigned(first)))
            .map_err(db_error)
    }

    fn on_change(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let mut state = self.mail.state.lock().unwrap_or_else(|p| p.into_inner());
        let pending = !state.changes.is_empty() || state.resync;
        state.wake = Some(wake);
        if pending {
            if let Some(wake) = &state.wake {
                wake();
            }
        }
    }

    fn changed_elsewhere(&self) -> Vec<Elsewhere> {
        let (mut changes, resync) = {
            let mut state = self.mail.state.lock().unwrap_or_else(|p| p.into_inner());
            let changes: Vec<Elsewhere> = std::mem::take(&mut state.changes).into_iter().collect();
            (changes, std::mem::take(&mut state.resync))
        };
        if resync {
            // Every mailbox with messages, and everyone waiting looks again.
            let rows = self.read(move |conn| {
                async move {
                    conn.client
                        .query("SELECT DISTINCT destination FROM ordo.messages", &[])
                        .await
                }
                .boxed_local()
            });
            match rows {
                Ok(rows) => changes.extend(
                    rows.iter()
                        .filter_map(|row| row.try_get(0).ok())
                        .map(Elsewhere::Mail),
                ),
                // Try again at the next ring.
                Err(_) => self.mail.ring(None),
            }
            changes.push(Elsewhere::Missed);
        }
        changes
    }

    fn takeover_interval(&self) -> Option<Duration> {
        // A read-only journal claims nothing.
        self.worker.as_ref().map(|_| self.lease / 2)
    }

    fn max_commit_workflows(&self) -> Option<usize> {
        Some(MAX_COMMIT_WORKFLOWS)
    }
}

impl Drop for PgJournal {
    /// Releases the worker's pending workflows (others may claim them at once) and
    /// marks it dead (read-only: nothing), then stops the store's thread.
    fn drop(&mut self) {
        if let Some(worker) = self.worker.clone().filter(|_| !self.is_fenced()) {
            let _ = self.call(move |shared| {
                async move {
                    shared
                        .run(|conn, _| {
                            // Integers only: formatting them into the text is safe. A
                            // simple query's statements form one transaction.
                            let release = format!(
                                "UPDATE ordo.workflows SET owner = NULL
                                     WHERE owner = {id} AND status = 0;
                                 UPDATE ordo.workers SET alive = false, epoch = epoch + 1
                                     WHERE id = {id} AND epoch = {epoch};",
                                id = worker.id,
                                epoch = worker.epoch
                            );
                            async move { conn.client.batch_execute(&release).await }
                        })
                        .await
                }
                .boxed_local()
            });
        }
        self.mail.requests.close();
        // Closing the channel ends the thread's loop, its runtime and connections.
        let (closed, _) = tokio::sync::mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The caller's runtime ends with its connection's task; without waiting, so a
        // journal dropped inside a tokio runtime does not panic there.
        let inline = self.serial.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(runtime) = inline.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
