//! The journal on PostgreSQL (`--postgres URL`, or `ORDO_DATABASE_URL`), opened
//! read-only.
//!
//! The CLI opens it with [`PgOptions::read_only`]: it is no worker, so it registers no
//! row, renews no lease, creates and migrates nothing, and writes nothing; the
//! applications running on the database never notice it. `list`, `show` and `stats`
//! read it through the same [`Store`](ordo::journal::Store) methods as a folder's
//! journal. `cancel`, `resume`, `fork` and `gc` are requests the CLI leaves in the
//! journal for the workers ([`ordo::journal::ask_workers`]): a cancel is served by the
//! worker that drives the workflow, the others by the first worker to take them, with
//! the same replies as an application's admin socket gives.

use std::path::Path;
use std::time::Duration;

use ordo::admin::Request;
use ordo::journal::{Error as JournalError, PgJournal, PgOptions};
use serde_json::Value;

use crate::error::CliError;

/// How long opening retries a server that refuses or drops connections (it may be
/// restarting) before the CLI gives up: short, someone is waiting at the shell.
const CONNECT_FOR: Duration = Duration::from_secs(3);

/// A PostgreSQL URL and where the CLI got it, for messages.
#[derive(Debug)]
pub struct Url {
    /// The URL or `key=value` connection string, as given (it may hold a password:
    /// never printed).
    url: String,
    /// The environment variable it came from; `None`: `--postgres`.
    env: Option<&'static str>,
}

impl Url {
    /// The URL of `--postgres`.
    pub fn given(url: String) -> Url {
        Url { url, env: None }
    }

    /// The URL of the environment variable `var`.
    pub fn from_env(url: String, var: &'static str) -> Url {
        Url {
            url,
            env: Some(var),
        }
    }

    /// Where the URL came from, for messages (never the URL: it may hold a password).
    pub fn origin(&self) -> String {
        match self.env {
            None => "--postgres".to_string(),
            Some(var) => format!("{var} (neither --postgres nor --data was given)"),
        }
    }
}

/// Opens the journal at `url` read-only; a failure (server unreachable, login refused,
/// no such database, no ordo schema in it, a newer schema) is
/// [`CliError::PostgresOpen`].
pub fn open(url: &Url) -> Result<PgJournal, CliError> {
    PgOptions::new(url.url.clone())
        .read_only()
        .reconnect_for(CONNECT_FOR)
        .connect()
        .map_err(|source| CliError::PostgresOpen {
            origin: url.origin(),
            source,
        })
}

/// What names the workers' replies in error messages.
pub const REPLY_SOURCE: &str = "the workers of the PostgreSQL journal";

/// How long the CLI waits for a worker's reply once one took the request (a gc of a
/// large journal takes a while); a request no worker takes is withdrawn after 5 s.
const ANSWER_WITHIN: Duration = Duration::from_secs(600);

/// Asks the workers of the journal at `url` for `request` (about workflow `target`, if
/// any): its reply's value. No worker to take it is [`CliError::NoWorker`].
pub fn ask(
    url: &Url,
    verb: &'static str,
    target: Option<&str>,
    request: &Request,
) -> Result<Value, CliError> {
    let body = serde_json::to_string(request)?;
    match ordo::journal::ask_workers(&url.url, target, &body, ANSWER_WITHIN) {
        Ok(line) => ordo::admin::decode_reply(line.as_bytes(), Path::new(REPLY_SOURCE))
            .map_err(CliError::Remote),
        Err(source @ JournalError::Unanswered { .. }) => Err(CliError::NoWorker {
            verb,
            origin: url.origin(),
            source,
        }),
        Err(source) => Err(CliError::PostgresOpen {
            origin: url.origin(),
            source,
        }),
    }
}
