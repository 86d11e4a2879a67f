//! The CLI's errors: one line on stderr and an exit code per kind of failure.

use std::path::PathBuf;

use ordo::admin::{CallError, ErrorKind};
use ordo::journal::Error as JournalError;

/// The exit codes, as printed at the end of `ordo --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  any other error (I/O, storage)
  2  usage error
  3  no journal at --data, or no workflow with that id, or the PostgreSQL journal
     (--postgres, ORDO_DATABASE_URL) cannot be opened: server unreachable, login
     refused, no such database, or no ordo schema in it
  4  cancel, resume and fork need the running application, and none serves --data;
     or no worker of the PostgreSQL journal took the request
  5  the journal is damaged or corrupt, or was written by another ordo version";

/// Everything the CLI reports instead of output.
#[derive(Debug)]
pub enum CliError {
    /// The journal failed to open or to read; its message names the path or key.
    Journal(JournalError),
    /// `ordo show` of an id the journal does not hold.
    UnknownWorkflow {
        /// The id asked for.
        id: String,
    },
    /// JSON encoding failed (not expected: every value is a plain struct).
    Json(serde_json::Error),
    /// The running application refused the request, or its admin socket failed.
    Remote(CallError),
    /// `cancel`, `resume` or `fork` without an application serving the journal.
    NeedsRunningApp {
        /// The command.
        verb: &'static str,
        /// The socket nobody serves.
        socket: PathBuf,
    },
    /// The PostgreSQL journal could not be opened (read-only): the server is
    /// unreachable or refused the login, the database does not exist, holds no ordo
    /// schema, or holds a newer one.
    PostgresOpen {
        /// Where the URL came from (`--postgres` or the environment variable).
        origin: String,
        /// What failed.
        source: JournalError,
    },
    /// `cancel`, `resume`, `fork` or `gc` on a PostgreSQL journal that no worker
    /// served: none runs, or the one that took the request did not answer in time.
    NoWorker {
        /// The command.
        verb: &'static str,
        /// Where the URL came from (`--postgres` or the environment variable).
        origin: String,
        /// [`JournalError::Unanswered`].
        source: JournalError,
    },
}

impl From<JournalError> for CliError {
    fn from(err: JournalError) -> Self {
        CliError::Journal(err)
    }
}

impl From<serde_json::Error> for CliError {
    fn from(err: serde_json::Error) -> Self {
        CliError::Json(err)
    }
}

impl CliError {
    /// The process exit code (see [`EXIT_CODES_HELP`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Journal(JournalError::NotFound { .. })
            | CliError::UnknownWorkflow { .. }
            | CliError::Remote(CallError::Refused {
                kind: ErrorKind::NotFound,
                ..
            })
            | CliError::PostgresOpen {
                source: JournalError::Database(_),
                ..
            } => 3,
            CliError::NeedsRunningApp { .. } | CliError::NoWorker { .. } => 4,
            CliError::Journal(
                JournalError::Corrupt { .. }
                | JournalError::Damaged { .. }
                | JournalError::UnsupportedVersion { .. },
            )
            | CliError::PostgresOpen {
                source: JournalError::UnsupportedVersion { .. },
                ..
            } => 5,
            CliError::Journal(_)
            | CliError::Json(_)
            | CliError::Remote(_)
            | CliError::PostgresOpen { .. } => 1,
        }
    }

    /// The message, on one line whatever the underlying error's text holds, so a
    /// script (or a log) gets exactly one line per failure.
    pub fn one_line(&self) -> String {
        let message = match self {
            CliError::Journal(err @ JournalError::NotFound { .. }) => {
                format!("{err} (run an ordo program first, or point --data at its folder)")
            }
            CliError::Journal(err @ JournalError::Corrupt { .. }) => format!(
                "{err} (the CLI changed nothing; keep a copy of the journal for inspection \
                 and restore it from a backup)"
            ),
            CliError::Journal(err) => err.to_string(),
            CliError::UnknownWorkflow { id } => {
                format!("no workflow with id {id:?} in the journal (try `ordo list`)")
            }
            CliError::Json(err) => format!("could not encode JSON: {err}"),
            CliError::Remote(CallError::Refused { message, .. }) => {
                format!("the running application refused: {message}")
            }
            CliError::Remote(err) => err.to_string(),
            CliError::NeedsRunningApp { verb, socket } => format!(
                "`ordo {verb}` needs the running application, and none serves {} \
                 (start the application; it serves the socket while it runs)",
                socket.display()
            ),
            CliError::PostgresOpen {
                origin,
                source: source @ JournalError::Database(_),
            } => format!(
                "cannot open the PostgreSQL journal given by {origin}: {source}; check \
                 that URL: the server's host and port, that the server runs and accepts \
                 connections, the database name, the user and the password"
            ),
            CliError::PostgresOpen { origin, source } => {
                format!("cannot open the PostgreSQL journal given by {origin}: {source}")
            }
            CliError::NoWorker {
                verb,
                origin,
                source,
            } => format!(
                "`ordo {verb}` on the PostgreSQL journal given by {origin}: {source}. \
                 Cancel, resume, fork and gc are carried out by a running worker (an ordo \
                 application on this database); start one"
            ),
        };
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Turns a panic (a bug, in the CLI or below it) into one `ordo: internal error` line
/// instead of Rust's multi-line report and backtrace hint.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-string payload".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!("internal error{place}: {message}");
        eprintln!(
            "ordo: {}",
            line.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }));
}
