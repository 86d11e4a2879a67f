//! Talking to a running application through its admin socket (`<data>/admin.sock`).
//!
//! A running application holds the journal's lock, so the CLI could only read a private
//! copy of it, and could change nothing. When something accepts on the socket, the CLI
//! asks it instead: reads show the live state, and `cancel`, `resume`, `fork` and `gc`
//! happen on the application's own thread. When nothing does (no socket file, or a
//! stale one left by a killed process), the CLI reads the journal itself.

use std::io::ErrorKind as IoErrorKind;
use std::path::{Path, PathBuf};

use ordo::admin::{call, CallError, Request, SOCKET_FILE};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::CliError;

/// The admin socket of the journal in `data`.
pub fn socket(data: &Path) -> PathBuf {
    data.join(SOCKET_FILE)
}

/// Asks the application serving the journal in `data`: `Ok(None)` if none serves it.
pub fn ask(data: &Path, request: &Request) -> Result<Option<Value>, CliError> {
    match call(&socket(data), request) {
        Ok(value) => Ok(Some(value)),
        Err(err) if no_application(&err) => Ok(None),
        Err(err) => Err(CliError::Remote(err)),
    }
}

/// Whether a call failed because no application serves the socket: no socket, a stale
/// one (left by a killed process), or `--data` naming something that is not a folder.
fn no_application(err: &CallError) -> bool {
    matches!(
        err,
        CallError::Connect { source, .. } if matches!(
            source.kind(),
            IoErrorKind::NotFound | IoErrorKind::ConnectionRefused | IoErrorKind::NotADirectory
        )
    )
}

/// How long a read (`list`, `show`, `stats`) waits for the application's answer before
/// it reads the journal itself: an application whose runtime is not being driven (busy
/// elsewhere, or shutting down) answers only once it is.
const READ_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Asks the application serving the journal in `data` for a read: `Ok(None)` if none
/// serves it, or if it did not answer within [`READ_PATIENCE`], or its runtime stopped
/// (the journal is read instead, as for an application that is not running).
pub fn ask_to_read(data: &Path, request: &Request) -> Result<Option<Value>, CliError> {
    match ordo::admin::call_within(&socket(data), request, READ_PATIENCE) {
        Ok(value) => Ok(Some(value)),
        Err(err) if no_application(&err) => Ok(None),
        Err(CallError::Io { source, .. })
            if matches!(
                source.kind(),
                IoErrorKind::WouldBlock | IoErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(CallError::Refused {
            kind: ordo::admin::ErrorKind::Stopped,
            ..
        }) => Ok(None),
        Err(err) => Err(CliError::Remote(err)),
    }
}

/// Asks the application serving `data`, which must run: `verb` needs it.
pub fn ask_running(data: &Path, verb: &'static str, request: &Request) -> Result<Value, CliError> {
    ask(data, request)?.ok_or_else(|| CliError::NeedsRunningApp {
        verb,
        socket: socket(data),
    })
}

/// Whom `cancel`, `resume`, `fork` and `gc` ask: the application serving a folder's
/// journal on its socket, or the workers of a PostgreSQL journal through requests left
/// in it.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// The admin socket in this journal folder.
    Socket(&'a Path),
    /// The workers of this PostgreSQL journal.
    Workers(&'a crate::postgres::Url),
}

impl Via<'_> {
    /// Asks for `request` (about workflow `target`, if any); `verb` needs a running
    /// application (or worker).
    pub fn ask(
        self,
        verb: &'static str,
        target: Option<&str>,
        request: &Request,
    ) -> Result<Value, CliError> {
        match self {
            Via::Socket(data) => ask_running(data, verb, request),
            Via::Workers(url) => crate::postgres::ask(url, verb, target, request),
        }
    }

    /// A reply's value as `T`.
    pub fn decode<T: DeserializeOwned>(self, value: Value) -> Result<T, CliError> {
        match self {
            Via::Socket(data) => decode(data, value),
            Via::Workers(_) => decode(Path::new(crate::postgres::REPLY_SOURCE), value),
        }
    }
}

/// A reply's value as `T`.
pub fn decode<T: DeserializeOwned>(data: &Path, value: Value) -> Result<T, CliError> {
    serde_json::from_value(value).map_err(|err| {
        CliError::Remote(CallError::BadReply {
            path: socket(data),
            detail: err.to_string(),
        })
    })
}

/// Bytes the files in `dir` take (what `stats` reports as size on disk while an
/// application holds the journal and sled cannot be asked).
pub fn folder_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}
