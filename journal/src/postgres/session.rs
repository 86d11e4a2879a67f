//! How requests reach the database: each way (the caller's own current-thread tokio
//! runtime, or the store's thread for a caller inside a tokio runtime; see
//! `PgJournal::call`) has a [`Shared`] with a connection of its own, and both share
//! what they know ([`Known`]).
//!
//! Every request is an *attempt*: a function of the live connection that the store
//! runs, and runs again after a reconnect if the connection broke (with backoff, for at
//! most [`PgOptions::reconnect_for`](super::PgOptions::reconnect_for)). A commit whose
//! connection broke before its answer came is not blindly run again: the worker's commit
//! count (see `ordo.fence`) tells whether it landed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use tokio_postgres::{Client, Statement};

use super::tls::Target;

use crate::Error;

/// What this process is to the shared journal.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) id: i64,
    pub(crate) epoch: i64,
    pub(crate) name: String,
}

/// A job the thread runs to the end before the next.
pub(crate) type Job = Box<dyn FnOnce(Arc<Shared>) -> LocalBoxFuture<'static, ()> + Send>;

/// A connection with the statements prepared on it.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) st: Statements,
}

macro_rules! statements {
    ($($name:ident = $sql:expr;)*) => {
        /// Every statement the store runs, prepared once per connection.
        pub(crate) struct Statements { $(pub(crate) $name: Statement,)* }

        impl Statements {
            async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
                $(let $name = String::from($sql);)*
                let ($($name,)*) = futures::try_join!($(client.prepare(&$name),)*)?;
                Ok(Statements { $($name,)* })
            }
        }
    };
}

const WORKFLOW_COLUMNS: &str = "id, name, status, input, output_ok, output, created_ms, \
     updated_ms, recovery_attempts, app_version, deadline_ms, first_step, keyed_tokens";

/// Parameters `$first`, `$first + 1`, ... cast to arrays of `types`, in order.
fn typed_arrays(first: u32, types: &[&str]) -> Vec<String> {
    types
        .iter()
        .zip(first..)
        .map(|(ty, n)| format!("${n}::{ty}[]"))
        .collect()
}

/// `unnest` of the workflow record columns from parameter `$first` on (thirteen of
/// them) and whether each is new (`$is_new`), as rows `u`.
fn workflow_rows(first: u32, is_new: u32) -> String {
    let types = [
        "text", "text", "int2", "bytea", "bool", "bytea", "int8", "int8", "int4", "text", "int8",
        "int8", "bool",
    ];
    let columns = typed_arrays(first, &types);
    format!(
        "unnest({}, ${is_new}::bool[])
            AS u(id, name, status, input, output_ok, output, created_ms, updated_ms,
                recovery_attempts, app_version, deadline_ms, first_step, keyed_tokens,
                is_new)",
        columns.join(", ")
    )
}

/// The types of a completion's nine columns, in the order of `ordo.completions` (and of
/// `Encoded`'s completion columns).
const COMPLETION_TYPES: [&str; 9] = [
    "text", "int8", "int8", "text", "bool", "bytea", "int4", "int8", "int8",
];

/// The completions from parameter `$first` on (nine columns, arrays) as rows `new`.
fn new_completions(first: u32) -> String {
    let columns = typed_arrays(first, &COMPLETION_TYPES);
    format!(
        "new AS (SELECT * FROM unnest({})
            AS u(workflow_id, seq, step_id, name, ok, value, attempts, started_ms, ended_ms))",
        columns.join(", ")
    )
}

/// One completion from parameter `$first` on (nine scalar columns) as the row `new`:
/// no arrays to send and `unnest` for the commonest commit. (A `WITH` query read once
/// is folded into its reader by the planner: `new` costs nothing of its own.)
fn one_completion(first: u32) -> String {
    let columns: Vec<String> = COMPLETION_TYPES
        .iter()
        .zip(first..)
        .map(|(ty, n)| format!("${n}::{ty}"))
        .collect();
    format!(
        "new(workflow_id, seq, step_id, name, ok, value, attempts, started_ms, ended_ms)
            AS (SELECT {})",
        columns.join(", ")
    )
}

/// Rows `new` (see [`new_completions`]) and `bad`, which raises (`ordo.out_of_order`) if
/// one is at or before a recorded seq of its workflow: completions are append-only.
fn completion_rows(new: String) -> String {
    format!(
        "{new},
        firsts AS (SELECT workflow_id, min(seq) AS first FROM new GROUP BY workflow_id),
        bad AS (SELECT ordo.out_of_order(f.workflow_id, f.first, l.last)
            FROM firsts f CROSS JOIN LATERAL (SELECT max(c.seq) AS last
                FROM ordo.completions c WHERE c.workflow_id = f.workflow_id) l
            WHERE f.first <= l.last)"
    )
}

/// A commit in one statement (`fast`, `steps`, `fast_known` and `fast`'s `_notify`
/// forms): the fence, the workflow records if `records` (parameters 3 to 15 and 25,
/// owner `$1`), the completions (from parameter 16, or 3 without records), and their
/// append, checked by the server against each workflow's last recorded seq if
/// `checked`; with `notify` (records only), the notifications of the commit (kinds
/// `$26`, ids `$27`; see `notify`), sent at its end like the transaction's. Its answer:
/// the worker's commit count, and the new records refused; or no row if the worker was
/// fenced, and then it wrote and notified nothing (every write is conditioned on
/// `counted`).
///
/// The fenced case is told by the missing row rather than raised by `ordo.fence` in the
/// statement (as the transaction's `fence` does): the aggregate that chose between the
/// two cost the server about 14 µs a commit (a tokio-postgres loop of both forms on
/// one server, 222 against 208 µs). The row lock taken by `counted` orders the commit
/// against a takeover all the same.
pub(crate) fn one_statement_commit(records: bool, checked: bool, notify: bool) -> String {
    let first = if records { 16 } else { 3 };
    let completions = if checked {
        completion_rows(new_completions(first))
    } else {
        new_completions(first)
    };
    let in_order = if checked {
        "NOT EXISTS (SELECT 1 FROM bad) AND "
    } else {
        ""
    };
    let (rows, refused) = if records {
        (
            format!(
                "u AS (SELECT * FROM {} WHERE EXISTS (SELECT FROM counted)),
        {},
        ",
                workflow_rows(3, 25),
                upserts("$1")
            ),
            "array(SELECT id FROM u WHERE is_new EXCEPT SELECT id FROM fresh)",
        )
    } else {
        (String::new(), "'{}'::text[]")
    };
    // A `SELECT` in a `WITH` runs only if read: the answer reads `notified` (once, and
    // only when `counted` has its row).
    let (notified, read_notified) = if notify {
        (
            format!(
                ",
        notified AS (SELECT {NOTIFY} FROM (SELECT DISTINCT * FROM
            unnest($26::text[], $27::text[]) AS u(k, i)) n)"
            ),
            " WHERE (SELECT count(*) FROM notified) >= 0",
        )
    } else {
        (String::new(), "")
    };
    format!(
        "WITH {FENCE},
        {rows}{completions},
        appended AS (INSERT INTO ordo.completions SELECT * FROM new
            WHERE {in_order}EXISTS (SELECT FROM counted)){notified}
        SELECT commits, {refused} FROM counted{read_notified}"
    )
}

/// The commit of completions only, of workflows whose last recorded seqs the worker
/// knows (`steps_known`; with `one`, the single completion's columns as scalar
/// parameters from `$1` on, [`one_completion`], else arrays, [`new_completions`]): the
/// commonest commit by far, and the one statement without the fence or the commit
/// count. It runs only on a connection fenced as a whole (see [`LOCK_CLASS`]), which
/// refuses a fenced worker's commits as the per-commit fence does, without the update
/// of the worker's row that cost the server a fifth of such a commit (pgbench, one
/// insert a commit with and without ordo's fence: about 3,100 against 3,800 commits/s,
/// alternating runs). A commit of this form whose answer was lost is looked up by its
/// first completion instead of the count (`landed`). No answer row.
pub(crate) fn session_fenced_commit(one: bool) -> String {
    let new = if one {
        one_completion(1)
    } else {
        new_completions(1)
    };
    format!("WITH {new} INSERT INTO ordo.completions SELECT * FROM new")
}

/// The first key of a worker's advisory lock ("ordo" in ASCII); the second is the
/// worker's id, its low 31 bits ([`lock_keys`]: ids count from 1, so two workers' keys
/// meet only after two billion registrations, and then only delay a takeover).
///
/// Every connection of a worker that commits holds this lock, shared with the worker's
/// other connections, for its whole life, and checks its worker's epoch only once it
/// holds it (`hold`, then `verify`, in `Shared::reconnect`). A worker is declared dead
/// (`expire`) or its name taken over (`register`) only by a transaction that holds the
/// lock exclusively, and that waits for no one: it first ends the connections that
/// hold the lock (`pg_terminate_backend`), then tries again. So when that transaction
/// commits, no connection of the old worker that checked its epoch before is left, and
/// every later one finds it fenced: a commit on such a connection needs no check of its
/// own (see [`session_fenced_commit`]). A backend ends its transaction (committed or
/// rolled back) before it lets its locks go, so a commit of the old worker either
/// landed before the takeover, which then sees it, or not at all.
pub(crate) const LOCK_CLASS: u32 = 0x6f72_646f;

/// The two keys of the lock of the worker whose id is the SQL `int8` expression `id`
/// (see [`LOCK_CLASS`]).
pub(crate) fn lock_keys(id: &str) -> String {
    format!("{LOCK_CLASS}, ({id} & 2147483647)::int4")
}

/// The rows `l` (their `pid`) of `pg_locks` that are another connection holding the
/// lock of worker `w` (see [`LOCK_CLASS`]), joined to `w`. Lateral, so `pg_locks`
/// (which takes every lock manager partition's lock for a moment) is read only for the
/// workers left by the query's conditions on `w`: most often none.
pub(crate) fn holders() -> String {
    format!(
        "CROSS JOIN LATERAL (SELECT l.pid FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = {LOCK_CLASS}::oid AND l.objid = (w.id & 2147483647)::oid
            AND l.objsubid = 2 AND l.pid <> pg_backend_pid()) l"
    )
}

/// Whether worker row `w` is another's (`$1` is this worker) whose lease ran out.
const LAPSED: &str = "w.alive AND w.id <> $1 AND w.lease_until < clock_timestamp()";

/// One notification of a change (kind `k`, id `i`) by worker `$1` to every worker
/// listening (see `PgJournal`'s docs).
const NOTIFY: &str = "pg_notify('ordo_change', $1::int8 || ' ' || k || ' ' || i)";

/// The fence without plpgsql: rows `counted`, the worker's commit count after this
/// commit, or none when the worker's row (`$1`) no longer has epoch `$2` or is not
/// alive (fenced).
const FENCE: &str = "counted AS (UPDATE ordo.workers SET commits = commits + 1
            WHERE id = $1 AND epoch = $2 AND alive RETURNING commits)";

/// Whether queue record `q` (a deduplication id) may be taken by workflow `$2` for
/// worker `$3`: it names the same workflow, or it is this worker's own reservation (the
/// runtime knows its own holders), or the workflow it names is neither pending nor
/// queued and no live worker reserved it for a workflow not yet committed.
const FREE: &str = "(q.value = $2 OR q.reserved_by = $3
    OR (NOT EXISTS (SELECT 1 FROM ordo.workflows w
            WHERE w.id = convert_from(q.value, 'UTF8') AND w.status IN (0, 4, 5))
        AND (q.reserved_by IS NULL OR EXISTS (SELECT 1 FROM ordo.workflows w
                WHERE w.id = convert_from(q.value, 'UTF8'))
            OR NOT EXISTS (SELECT 1 FROM ordo.workers k
                WHERE k.id = q.reserved_by AND k.alive))))";

/// The two statements of a commit that write workflow records from the rows of `u`,
/// owned by worker `owner` (a parameter): `fresh` inserts the new ones where no record
/// has their id (returning those it wrote), `put` writes over the others.
fn upserts(owner: &str) -> String {
    format!(
        "fresh AS (INSERT INTO ordo.workflows (id, name, status, input, output_ok, output,
                created_ms, updated_ms, recovery_attempts, app_version, deadline_ms, first_step,
                keyed_tokens, owner)
            SELECT id, name, status, input, output_ok, output, created_ms, updated_ms,
                recovery_attempts, app_version, deadline_ms, first_step, keyed_tokens, {owner}
            FROM u WHERE is_new
            ON CONFLICT (id) DO NOTHING RETURNING id),
        put AS (INSERT INTO ordo.workflows (id, name, status, input, output_ok, output,
                created_ms, updated_ms, recovery_attempts, app_version, deadline_ms, first_step,
                keyed_tokens, owner)
            SELECT id, name, status, input, output_ok, output, created_ms, updated_ms,
                recovery_attempts, app_version, deadline_ms, first_step, keyed_tokens, {owner}
            FROM u WHERE NOT is_new
            ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, status = EXCLUDED.status,
                input = EXCLUDED.input, output_ok = EXCLUDED.output_ok,
                output = EXCLUDED.output, created_ms = EXCLUDED.created_ms,
                updated_ms = EXCLUDED.updated_ms,
                recovery_attempts = EXCLUDED.recovery_attempts,
                app_version = EXCLUDED.app_version, deadline_ms = EXCLUDED.deadline_ms,
                first_step = EXCLUDED.first_step, keyed_tokens = EXCLUDED.keyed_tokens,
                owner = EXCLUDED.owner)"
    )
}

statements! {
    fence = &format!("WITH {FENCE}
        SELECT CASE WHEN count(*) = 1 THEN max(commits) ELSE ordo.fence($1, $2) END
        FROM counted");
    commits = "SELECT commits, epoch, alive FROM ordo.workers WHERE id = $1";
    delete = "WITH gone AS (SELECT unnest($1::text[]) AS id),
        c AS (DELETE FROM ordo.completions t USING gone WHERE t.workflow_id = gone.id),
        tc AS (DELETE FROM ordo.trace_contexts t USING gone WHERE t.workflow_id = gone.id),
        m AS (DELETE FROM ordo.messages t USING gone WHERE t.destination = gone.id),
        k AS (DELETE FROM ordo.message_keys t USING gone WHERE t.destination = gone.id),
        e AS (DELETE FROM ordo.events t USING gone WHERE t.workflow_id = gone.id),
        a AS (DELETE FROM ordo.awakeables t USING gone WHERE t.workflow_id = gone.id)
        DELETE FROM ordo.workflows t USING gone WHERE t.id = gone.id";
    // New records (starts) are inserted only where no record has the id: one that
    // another worker started first is left as it is, and its id comes back (the
    // statement's one value: the ids refused), so this worker does not run it too.
    put_workflows = &format!("WITH u AS (SELECT * FROM {}),
        {}
        SELECT array(SELECT id FROM u WHERE is_new EXCEPT SELECT id FROM fresh)",
        workflow_rows(1, 15), upserts("$14"));
    put_types = "INSERT INTO ordo.types SELECT * FROM unnest($1::int8[], $2::text[])
        ON CONFLICT (fingerprint) DO UPDATE SET name = EXCLUDED.name";
    put_traces = "INSERT INTO ordo.trace_contexts SELECT * FROM unnest($1::text[], $2::text[])
        ON CONFLICT (workflow_id) DO UPDATE SET traceparent = EXCLUDED.traceparent";
    reset = "DELETE FROM ordo.completions WHERE workflow_id = ANY($1::text[])";
    append = &format!("WITH {}
        INSERT INTO ordo.completions SELECT * FROM new WHERE NOT EXISTS (SELECT 1 FROM bad)",
        completion_rows(new_completions(1)));
    // The commit of a batch of workflow records and completions only (most commits):
    // one statement, so one implicit transaction, without `BEGIN` and `COMMIT`. Its
    // parts see one snapshot and apply together; an order check that raises undoes
    // them all, and a fenced worker's commit writes nothing (no row comes back).
    fast = &one_statement_commit(true, true, false);
    // The commit of completions only (a batch without workflow records: most commits
    // of running workflows): `fast` without its workflow rows, whose empty inserts
    // still cost the server about 50 µs a commit (pgbench running both statements).
    steps = &one_statement_commit(false, true, false);
    // `fast` and `steps` without the read of each workflow's last recorded seq (`bad`),
    // for a batch whose every workflow's last seq this worker knows (see
    // `commit::KnownSeqs`): the read costs the server about 40 µs a commit. The
    // primary key still refuses a seq recorded twice.
    fast_known = &one_statement_commit(true, false, false);
    // These two run on a connection fenced as a whole, without the fence or the count
    // (see `session_fenced_commit`); `step_known` is the commonest commit of all, one
    // completion (a workflow of sequential steps, alone): its columns as scalars, not
    // arrays to `unnest`, which cost the server and the client more than the insert
    // itself.
    steps_known = &session_fenced_commit(false);
    step_known = &session_fenced_commit(true);
    // The first completion of a `session_fenced_commit` whose answer was lost: whether
    // it is recorded tells whether the commit landed (the worker knows its workflow's
    // last seq was before it, and only this worker appends to it).
    landed = "SELECT EXISTS (SELECT 1 FROM ordo.completions WHERE workflow_id = $1 AND seq = $2)";
    // `fast` and `fast_known` with the commit's notifications (a workflow's end, most
    // often), which would otherwise need the transaction.
    fast_notify = &one_statement_commit(true, true, true);
    fast_known_notify = &one_statement_commit(true, false, true);
    send = "INSERT INTO ordo.messages SELECT * FROM unnest($1::text[], $2::text[],
        $3::int8[], $4::bytea[], $5::int8[], $6::text[])";
    keys = "INSERT INTO ordo.message_keys SELECT * FROM unnest($1::text[], $2::text[])
        ON CONFLICT DO NOTHING";
    consume = "DELETE FROM ordo.messages m USING unnest($1::text[], $2::text[], $3::int8[])
        AS u(destination, topic, number)
        WHERE m.destination = u.destination AND m.topic = u.topic AND m.number = u.number";
    put_events = "INSERT INTO ordo.events SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
        ON CONFLICT (workflow_id, key) DO UPDATE SET value = EXCLUDED.value";
    resolve = "INSERT INTO ordo.awakeables SELECT * FROM unnest($1::text[], $2::int8[],
            $3::bool[], $4::bytea[])
        ON CONFLICT (workflow_id, step_id) DO UPDATE SET ok = EXCLUDED.ok, value = EXCLUDED.value";
    counter = "UPDATE ordo.counters SET value = greatest(value, $1) WHERE name = 'messages'";
    notify = &format!("SELECT {} FROM (SELECT DISTINCT * FROM
        unnest($2::text[], $3::text[]) AS u(k, i)) n", NOTIFY);
    reserve = "UPDATE ordo.counters SET value = value + $1 WHERE name = 'messages'
        RETURNING value - $1 + 1";
    queue_delete = "DELETE FROM ordo.queue_records WHERE key = ANY($1::bytea[])";
    // A commit's write ends any reservation of the key (see `reserve_holder`).
    queue_put = "INSERT INTO ordo.queue_records (key, value)
        SELECT * FROM unnest($1::bytea[], $2::bytea[])
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, reserved_by = NULL";
    // The three statements of a reservation of key `$1` by worker `$3` for workflow
    // `$2` (bytes), in one transaction: the key is inserted if absent, else locked
    // (waiting for a commit that writes it), then, in a statement whose snapshot sees
    // what that commit wrote, taken unless another workflow holds it (`FREE`). The last
    // returns the holder after it, and whether its record exists.
    reserve_insert = "INSERT INTO ordo.queue_records (key, value, reserved_by)
        VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING";
    reserve_lock = "SELECT 1 FROM ordo.queue_records WHERE key = $1 FOR UPDATE";
    reserve_holder = &format!("UPDATE ordo.queue_records q SET
            value = CASE WHEN {FREE} THEN $2 ELSE q.value END,
            reserved_by = CASE WHEN {FREE} THEN $3 ELSE q.reserved_by END
        WHERE key = $1
        RETURNING value, EXISTS (SELECT 1 FROM ordo.workflows w
            WHERE w.id = convert_from(value, 'UTF8'))");
    // A swap of queue record `$1` (see `PgJournal::swap_queue_record`): a lock of the
    // key for the transaction, taken even while the record is absent, then a read in a
    // statement of its own, whose snapshot sees what the swap that held the lock wrote.
    swap_lock = "SELECT pg_advisory_xact_lock(hashtextextended(encode($1, 'hex'), 7))";
    swap_read = "SELECT value FROM ordo.queue_records WHERE key = $1";
    release_holder = "DELETE FROM ordo.queue_records
        WHERE key = $1 AND value = $2 AND reserved_by = $3";
    // Workers whose lease ran out are declared dead only while this transaction holds
    // their lock (see `LOCK_CLASS`): one that a live connection of theirs still holds
    // is left for the next round, after `evict`.
    expire = &format!("UPDATE ordo.workers w SET alive = false, epoch = epoch + 1
        WHERE CASE WHEN {LAPSED}
            THEN pg_try_advisory_xact_lock({}) ELSE false END", lock_keys("w.id"));
    // Ends the connections of workers whose lease ran out (a paused process's, still
    // open): the number ended.
    evict = &format!("SELECT count(pg_terminate_backend(l.pid))
        FROM ordo.workers w {} WHERE {LAPSED}", holders());
    // How many connections `evict` ended are not gone yet.
    evicting = &format!("SELECT count(*) FROM ordo.workers w {} WHERE {LAPSED}", holders());
    // This connection's hold of its worker's lock, then the check of its epoch (see
    // `LOCK_CLASS`).
    hold = &format!("SELECT pg_advisory_lock_shared({})", lock_keys("$1::int8"));
    verify = "SELECT EXISTS (SELECT 1 FROM ordo.workers WHERE id = $1 AND epoch = $2 AND alive)";
    claim = &format!("UPDATE ordo.workflows SET owner = $1 WHERE id IN (
            SELECT id FROM ordo.workflows
            WHERE (status = 0 OR ($2::text IS NOT NULL AND status IN (4, 5)))
                AND ($2::text IS NULL OR id = $2)
                AND (owner IS NULL OR owner = $1
                OR owner IN (SELECT id FROM ordo.workers WHERE NOT alive))
            FOR UPDATE SKIP LOCKED)
        RETURNING {WORKFLOW_COLUMNS}");
    claim_queued = &format!("UPDATE ordo.workflows SET owner = $1 WHERE id IN (
            SELECT id FROM ordo.workflows
            WHERE status IN (4, 5) AND id = ANY($2::text[])
                AND (owner IS NULL OR owner IN (SELECT id FROM ordo.workers WHERE NOT alive))
            FOR UPDATE SKIP LOCKED)
        RETURNING {WORKFLOW_COLUMNS}");
    unheld_queued = "SELECT id FROM ordo.workflows WHERE status IN (4, 5)
        AND (owner IS NULL OR owner IN (SELECT id FROM ordo.workers
            WHERE NOT alive OR lease_until < clock_timestamp()))
        ORDER BY id";
    admit = "SELECT granted, retry_at FROM ordo.admit($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    workflow = &format!("SELECT {WORKFLOW_COLUMNS} FROM ordo.workflows WHERE id = $1");
    workflows_in = &format!(
        "SELECT {WORKFLOW_COLUMNS} FROM ordo.workflows WHERE id = ANY($1::text[])");
    workflows = &format!("SELECT {WORKFLOW_COLUMNS} FROM ordo.workflows ORDER BY id");
    workflows_with = &format!(
        "SELECT {WORKFLOW_COLUMNS} FROM ordo.workflows WHERE status = $1 ORDER BY id");
    completions = "SELECT seq, step_id, name, ok, value, attempts, started_ms, ended_ms
        FROM ordo.completions WHERE workflow_id = $1 ORDER BY seq";
    type_name = "SELECT name FROM ordo.types WHERE fingerprint = $1";
    messages = "SELECT topic, number, payload, sent_ms, idempotency_key FROM ordo.messages
        WHERE destination = $1 ORDER BY number";
    key_used = "SELECT EXISTS (SELECT 1 FROM ordo.message_keys
        WHERE destination = $1 AND key = $2)";
    last_message = "SELECT value FROM ordo.counters WHERE name = 'messages'";
    event = "SELECT value FROM ordo.events WHERE workflow_id = $1 AND key = $2";
    events = "SELECT key, value FROM ordo.events WHERE workflow_id = $1 ORDER BY key";
    awakeable = "SELECT ok, value FROM ordo.awakeables WHERE workflow_id = $1 AND step_id = $2";
    trace = "SELECT traceparent FROM ordo.trace_contexts WHERE workflow_id = $1";
    queue_scan = "SELECT key, value FROM ordo.queue_records
        WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2) ORDER BY key";
}

/// The state of one way of running requests (the store's thread, or the caller's own
/// runtime; see `PgJournal::call`): one job runs at a time, so its cells are never
/// borrowed across two jobs.
pub(crate) struct Shared {
    config: Target,
    conn: std::sync::Mutex<Option<Arc<Conn>>>,
    pub(crate) worker: Worker,
    /// What both ways share.
    pub(crate) known: Arc<Known>,
    pub(crate) fenced: Arc<AtomicBool>,
    reconnect_for: Duration,
}

/// What a worker's requests know whichever way they run: requests are serialized
/// (`PgJournal::call`), so these locks are never contended.
#[derive(Default)]
pub(crate) struct Known {
    /// The worker's commit count as of this process's last answered fence.
    commits: std::sync::atomic::AtomicI64,
    /// What this worker knows of its workflows' last recorded seqs.
    seqs: std::sync::Mutex<super::commit::KnownSeqs>,
}

impl Known {
    pub(crate) fn commits(&self) -> i64 {
        self.commits.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn set_commits(&self, commits: i64) {
        self.commits
            .store(commits, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn seqs(&self) -> std::sync::MutexGuard<'_, super::commit::KnownSeqs> {
        self.seqs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether an error means the connection, not the request, failed: the request may be
/// tried again on a new connection.
pub(crate) fn is_connection_error(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        // No SQLSTATE: an I/O error or a protocol error on the way.
        None => err.as_db_error().is_none(),
        Some(code) => {
            let code = code.code();
            // Class 08: connection exception; 57P01..57P03: the server shuts down or
            // is starting.
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
    }
}

/// An error from the server or the connection, as the journal's error.
pub(crate) fn db_error(err: tokio_postgres::Error) -> Error {
    match err.as_db_error() {
        Some(db) => Error::Database(format!(
            "{} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        )),
        // The cause ("Connection refused", ...) is the source's message, not the error's.
        None => {
            let mut message = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            Error::Database(message)
        }
    }
}

/// Opens a connection and prepares the statements, retrying with backoff until
/// `deadline`.
pub(crate) async fn connect(config: &Target, deadline: Instant) -> Result<Client, Error> {
    let mut backoff = Duration::from_millis(20);
    loop {
        match config.connect().await {
            Ok((client, connection)) => {
                // The connection's I/O runs as a task of the store's runtime; it ends
                // when the client is dropped or the server goes away.
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return Ok(client);
            }
            Err(err) if Instant::now() + backoff < deadline && is_connection_error(&err) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(err) => return Err(db_error(err)),
        }
    }
}

impl Shared {
    pub(crate) fn new(
        config: Target,
        worker: Worker,
        known: Arc<Known>,
        fenced: Arc<AtomicBool>,
        reconnect_for: Duration,
    ) -> Shared {
        Shared {
            config,
            conn: std::sync::Mutex::new(None),
            worker,
            known,
            fenced,
            reconnect_for,
        }
    }

    /// The connection, locked for a moment (never across an `await`).
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Conn>>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn conn(&self, deadline: Instant) -> Result<Arc<Conn>, Error> {
        if let Some(conn) = self.slot().as_ref() {
            if !conn.client.is_closed() {
                return Ok(Arc::clone(conn));
            }
        }
        // Boxed: connecting and preparing every statement make a future of tens of
        // kilobytes, which every request's future would carry (and move) otherwise.
        Box::pin(self.reconnect(deadline)).await
    }

    /// A new connection with every statement prepared, in the slot from then on.
    async fn reconnect(&self, deadline: Instant) -> Result<Arc<Conn>, Error> {
        *self.slot() = None;
        loop {
            let client = connect(&self.config, deadline).await?;
            // One plan per statement for the connection's life: PostgreSQL would plan
            // the `unnest` statements afresh at every commit otherwise.
            if let Err(err) = client
                .batch_execute("SET plan_cache_mode = force_generic_plan")
                .await
            {
                if is_connection_error(&err) && Instant::now() < deadline {
                    continue;
                }
                return Err(db_error(err));
            }
            let prepared = match Statements::prepare(&client).await {
                Ok(st) => self.hold(&client, &st).await.map(|held| (st, held)),
                Err(err) => Err(err),
            };
            match prepared {
                Ok((_, false)) => return Err(self.fenced_now()),
                Ok((st, true)) => {
                    let conn = Arc::new(Conn { client, st });
                    *self.slot() = Some(Arc::clone(&conn));
                    return Ok(conn);
                }
                Err(err) if is_connection_error(&err) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => return Err(db_error(err)),
            }
        }
    }

    /// Takes this worker's lock for the new connection `client`'s life, then checks that
    /// the worker is not fenced (see [`LOCK_CLASS`]): `false` if it is. A read-only
    /// journal's connection (no worker, id 0) takes nothing.
    async fn hold(&self, client: &Client, st: &Statements) -> Result<bool, tokio_postgres::Error> {
        let Worker { id, epoch, .. } = self.worker;
        if id == 0 {
            return Ok(true);
        }
        client.query_one(&st.hold, &[&id]).await?;
        client
            .query_one(&st.verify, &[&id, &epoch])
            .await?
            .try_get(0)
    }

    /// Runs `attempt` until it succeeds, fails on its own, or the connection could not
    /// be had back in time. `retried` tells the attempt whether an earlier one may have
    /// reached the server.
    pub(crate) async fn run<R, F, Fut>(&self, attempt: F) -> Result<R, Error>
    where
        F: Fn(Arc<Conn>, bool) -> Fut,
        Fut: Future<Output = Result<R, tokio_postgres::Error>>,
    {
        let deadline = Instant::now() + self.reconnect_for;
        let mut backoff = Duration::from_millis(20);
        let mut retried = false;
        loop {
            let conn = self.conn(deadline).await?;
            match attempt(conn, retried).await {
                Ok(value) => return Ok(value),
                Err(err) if is_connection_error(&err) && Instant::now() < deadline => {
                    *self.slot() = None;
                    retried = true;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(err) => return Err(self.error(err)),
            }
        }
    }

    /// Marks this worker fenced (it commits nothing more) and returns the error that
    /// says so.
    pub(crate) fn fenced_now(&self) -> Error {
        self.fenced.store(true, Ordering::SeqCst);
        Error::Fenced {
            worker: self.worker.name.clone(),
        }
    }

    /// The journal's error for a failed request: a refused fence or an append out of
    /// order are typed; the rest is the server's message.
    pub(crate) fn error(&self, err: tokio_postgres::Error) -> Error {
        if let Some(db) = err.as_db_error() {
            match db.code().code() {
                "OR001" => return self.fenced_now(),
                "OR002" => {
                    let detail = db.detail().unwrap_or_default();
                    let mut parts = detail.splitn(3, ' ');
                    let seq = parts.next().and_then(|s| s.parse::<i64>().ok());
                    let after = parts.next().and_then(|s| s.parse::<i64>().ok());
                    if let (Some(seq), Some(after), Some(workflow_id)) = (seq, after, parts.next())
                    {
                        return Error::SeqOutOfOrder {
                            workflow_id: workflow_id.to_owned(),
                            seq: seq as u64,
                            after: after as u64,
                        };
                    }
                }
                _ => {}
            }
        }
        db_error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request runs through `Shared::run`, whose future holds `conn`'s; the
    /// reconnect (a connection and some forty statements prepared in one `try_join!`)
    /// made that about 50 KB, allocated and moved at every commit, until it was boxed.
    #[test]
    fn a_request_future_does_not_carry_the_reconnect() -> Result<(), Error> {
        let shared = Shared::new(
            Target::parse("postgres://ordo@localhost/ordo")?,
            Worker {
                id: 1,
                epoch: 1,
                name: "w".into(),
            },
            Arc::default(),
            Arc::default(),
            Duration::from_secs(1),
        );
        let request = shared.run(|_, _| async { Ok::<_, tokio_postgres::Error>(()) });
        let size = std::mem::size_of_val(&request);
        assert!(size < 1024, "a request's future is {size} bytes");
        Ok(())
    }
}
