//! The journal on PostgreSQL (`--postgres URL`, or `ORDO_DATABASE_URL`), opened
//! read-only.
//!
//! The CLI opens it with [`PgOptions::read_only`]: it is no worker, so it registers no
//! row, renews no lease, creates and migrates nothing, and writes nothing; the
//! applications running on the database never notice it. `list`, `show` and `stats`
//! read it through the same [`Store`](ordo::journal::Store) methods as a folder's
//! journal. `cancel`, `resume`, `fork` and `gc` act through an application's admin
//! socket, which applications on PostgreSQL do not serve yet: they refuse.

use std::time::Duration;

use ordo::journal::{PgJournal, PgOptions};

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

/// The refusal of `ordo <verb>` on the journal at `url`.
pub fn refuse(verb: &'static str, url: &Url) -> CliError {
    CliError::NotOnPostgres {
        verb,
        origin: url.origin(),
        from_env: url.env.is_some(),
    }
}
