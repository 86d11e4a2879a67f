//! Requests for the workers: how a process that is no worker (the `ordo` CLI) asks the
//! workers of a shared journal to cancel, resume, fork or collect workflows.
//!
//! A request is a row of `ordo.requests`: the workflow it is about (if any), and its
//! body, opaque to the journal (the runtime's admin protocol: one JSON line). The asker
//! inserts it and notifies every worker ([`ask_workers`]); each worker's runtime runs a
//! [`Relay`] that takes the requests it should serve and writes their replies:
//!
//! - one about a workflow that a live worker drives is taken by that worker only, since
//!   only it can stop the workflow's running code;
//! - any other (no workflow, or one no live worker drives) by the first worker to ask,
//!   with `FOR UPDATE SKIP LOCKED`;
//! - one taken by a worker that died before it answered is taken again.
//!
//! The asker polls the row for the reply (a short-lived command, a few times a second)
//! and deletes it.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::session::db_error;
use crate::Error;

/// The next request a worker may serve: taken (marked with the worker's id) in the
/// same statement that finds it.
const TAKE: &str = "UPDATE ordo.requests SET taken_by = $1 WHERE id = (
        SELECT r.id FROM ordo.requests r
        WHERE r.reply IS NULL
            AND (r.taken_by IS NULL OR r.taken_by = $1
                OR r.taken_by IN (SELECT id FROM ordo.workers WHERE NOT alive))
            AND (r.target IS NULL OR NOT EXISTS (
                SELECT 1 FROM ordo.workflows w JOIN ordo.workers k ON k.id = w.owner
                WHERE w.id = r.target AND k.alive AND k.id <> $1))
        ORDER BY r.id LIMIT 1
        FOR UPDATE OF r SKIP LOCKED)
    RETURNING id, body";

/// How long [`ask_workers`] waits for a worker to take its request before it withdraws
/// it: live workers take a request at once (they are notified).
const TAKE_WITHIN: Duration = Duration::from_secs(5);

/// Rung by the listening connection when a request is made, and when the journal goes.
#[derive(Default)]
pub(crate) struct RequestBell {
    state: Mutex<(bool, bool)>,
    rung: Condvar,
}

impl RequestBell {
    /// A request was made (or may have been, after a lost connection).
    pub(crate) fn ring(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 = true;
        self.rung.notify_all();
    }

    /// The journal is dropped: relays stop.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1 = true;
        self.rung.notify_all();
    }

    /// Waits at most `wait` for a ring; `false` once closed.
    fn wait(&self, wait: Duration) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut state, _) = self
            .rung
            .wait_timeout_while(state, wait, |(rung, closed)| !*rung && !*closed)
            .unwrap_or_else(|p| p.into_inner());
        state.0 = false;
        !state.1
    }

    fn is_closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

/// A worker's end of the requests: [`take`](Relay::take) blocks until there is one to
/// serve, [`answer`](Relay::answer) writes its reply. Made by
/// [`PgJournal::relay`](super::PgJournal::relay); it ends (`take` gives `None`) when
/// the journal is dropped. It has a connection and a thread's worth of tokio of its
/// own, so a slow request never holds up the journal's commits.
///
/// ```no_run
/// let journal = ordo_journal::PgOptions::new("postgres://ordo@db/shop").connect()?;
/// let mut relay = journal.relay().expect("a worker, not read-only");
/// std::thread::spawn(move || {
///     while let Some((id, body)) = relay.take() {
///         let _ = relay.answer(id, &format!("echo {body}"));
///     }
/// });
/// # Ok::<(), ordo_journal::Error>(())
/// ```
pub struct Relay {
    pub(crate) config: super::tls::Target,
    pub(crate) worker: i64,
    pub(crate) bell: Arc<super::MailBell>,
    /// How long `take` waits for a ring before it looks anyway (a notification lost
    /// with a connection, a taker that died).
    pub(crate) every: Duration,
    pub(crate) runtime: Option<tokio::runtime::Runtime>,
    pub(crate) client: Option<Arc<Client>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("worker", &self.worker)
            .finish()
    }
}

impl Relay {
    /// The next request this worker should serve, `(id, body)`, taken; `None` once the
    /// journal is dropped. Blocks while there is none.
    pub fn take(&mut self) -> Option<(i64, String)> {
        loop {
            if self.bell.requests.is_closed() {
                return None;
            }
            let worker = self.worker;
            if let Ok(Some(row)) =
                self.query(move |client| async move { client.query_opt(TAKE, &[&worker]).await })
            {
                if let (Ok(id), Ok(body)) = (row.try_get(0), row.try_get(1)) {
                    return Some((id, body));
                }
            }
            if !self.bell.requests.wait(self.every) {
                return None;
            }
        }
    }

    /// Writes the reply to request `id`.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the database cannot be reached.
    pub fn answer(&mut self, id: i64, reply: &str) -> Result<(), Error> {
        let reply = reply.to_owned();
        self.query(move |client| async move {
            client
                .execute(
                    "UPDATE ordo.requests SET reply = $2 WHERE id = $1",
                    &[&id, &reply],
                )
                .await
        })
        .map(drop)
    }

    /// Runs `query` on the relay's connection, connecting first if needed.
    fn query<R, F, Fut>(&mut self, query: F) -> Result<R, Error>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<R, tokio_postgres::Error>>,
    {
        if self.runtime.is_none() {
            self.runtime = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::Io)?,
            );
        }
        let Some(runtime) = &self.runtime else {
            return Err(Error::Database("no runtime".into()));
        };
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let config = self.config.clone();
            let (client, connection) = runtime.block_on(config.connect()).map_err(db_error)?;
            runtime.spawn(connection);
            self.client = Some(Arc::new(client));
        }
        let Some(client) = self.client.clone() else {
            return Err(Error::Database("no connection".into()));
        };
        runtime.block_on(query(client)).map_err(db_error)
    }
}

/// Asks the workers of the journal at `url` to serve request `body` (about workflow
/// `target`, if any) and waits at most `wait` for the reply; a request that no worker
/// takes within 5 s (or `wait`, if shorter) is withdrawn. Used by processes that are
/// no worker, like the `ordo` CLI.
///
/// # Errors
///
/// [`Error::Database`] when the database cannot be reached; [`Error::Unanswered`] when
/// no worker answered within `wait` (none runs, or the one that took it is still at
/// it).
///
/// ```no_run
/// use std::time::Duration;
/// let reply = ordo_journal::ask_workers(
///     "postgres://ordo@db/shop",
///     Some("order-42"),
///     r#"{"cancel":{"id":"order-42"}}"#,
///     Duration::from_secs(30),
/// )?;
/// # let _ = reply;
/// # Ok::<(), ordo_journal::Error>(())
/// ```
pub fn ask_workers(
    url: &str,
    target: Option<&str>,
    body: &str,
    wait: Duration,
) -> Result<String, Error> {
    let config = super::tls::Target::parse(url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Io)?;
    let target = target.map(str::to_owned);
    let body = body.to_owned();
    runtime.block_on(async move {
        let (client, connection) = config.connect().await.map_err(db_error)?;
        tokio::spawn(connection);
        let row = client
            .query_one(
                "WITH made AS (INSERT INTO ordo.requests (target, body) VALUES ($1, $2)
                     RETURNING id)
                 SELECT id, pg_notify('ordo_change', '0 r ' || id) FROM made",
                &[&target as &(dyn tokio_postgres::types::ToSql + Sync), &body],
            )
            .await
            .map_err(db_error)?;
        let id: i64 = row.try_get(0).map_err(db_error)?;
        let began = Instant::now();
        let answered = loop {
            let row = client
                .query_one(
                    "SELECT reply, taken_by FROM ordo.requests WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(db_error)?;
            let reply: Option<String> = row.try_get(0).map_err(db_error)?;
            let taken: Option<i64> = row.try_get(1).map_err(db_error)?;
            if let Some(reply) = reply {
                break Ok(reply);
            }
            let waited = began.elapsed();
            if waited >= wait || (taken.is_none() && waited >= TAKE_WITHIN) {
                break Err(Error::Unanswered {
                    waited: wait,
                    taken_by: taken,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        client
            .execute("DELETE FROM ordo.requests WHERE id = $1", &[&id])
            .await
            .map_err(db_error)?;
        answered
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_wakes_a_waiting_relay_and_a_close_stops_it() {
        let bell = Arc::new(RequestBell::default());
        let waiter = {
            let bell = Arc::clone(&bell);
            std::thread::spawn(move || {
                let began = Instant::now();
                (bell.wait(Duration::from_secs(30)), began.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        bell.ring();
        let (open, waited) = waiter.join().unwrap_or((false, Duration::MAX));
        assert!(open && waited < Duration::from_secs(30), "{waited:?}");
        bell.close();
        assert!(!bell.wait(Duration::from_secs(30)));
    }
}
