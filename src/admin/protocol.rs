//! The admin socket's frames: one JSON object a line each way.
//!
//! A request is a [`Request`] on one line of at most [`MAX_FRAME`] bytes; its reply is
//! one line, `{"ok": <value>}` or `{"error": {"kind": <ErrorKind>, "message": ".."}}`.
//! A connection may carry several requests, one after the other. Bytes that are not a
//! request (not UTF-8, not JSON, an unknown verb, a missing field) get a typed error
//! and the connection goes on; a frame over the limit gets one and the connection is
//! closed (what follows it cannot be told apart from its tail).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ordo_journal::Status;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admin::view::status_filter;
use crate::error::Error;

/// The socket's file name in the journal's folder.
///
/// ```
/// let dir = std::path::Path::new("ordo-data");
/// assert_eq!(dir.join(ordo::admin::SOCKET_FILE), dir.join("admin.sock"));
/// ```
pub const SOCKET_FILE: &str = "admin.sock";

/// The longest request line the socket reads, newline excluded (64 KiB). A longer one
/// gets [`ErrorKind::FrameTooLarge`] and the connection is closed.
///
/// ```
/// assert_eq!(ordo::admin::MAX_FRAME, 65_536);
/// ```
pub const MAX_FRAME: usize = 64 * 1024;

/// What one line asks. In JSON the variant is the `verb` field, in snake case:
/// `{"verb":"cancel","id":"order-7","children":true}`.
///
/// ```
/// use ordo::admin::Request;
/// let request: Request = serde_json::from_str(r#"{"verb":"fork","id":"o-1","at_seq":2}"#)?;
/// assert_eq!(request, Request::Fork { id: "o-1".into(), at_seq: 2, new_id: None });
/// let line = serde_json::to_string(&Request::Stats)?;
/// assert_eq!(line, r#"{"verb":"stats"}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// The workflows (with `status`, if given) in id order, at most `limit` of them:
    /// replies with a list of [`WorkflowSummary`](crate::WorkflowSummary).
    List {
        /// `"pending"`, `"succeeded"`, `"failed"`, `"cancelled"`, or absent for all.
        #[serde(
            default,
            with = "status_filter",
            skip_serializing_if = "Option::is_none"
        )]
        status: Option<Status>,
        /// At most this many (the first screen); absent for all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// One workflow's record and steps: replies with a
    /// [`ShownWorkflow`](crate::admin::ShownWorkflow).
    Show {
        /// The workflow id.
        id: String,
    },
    /// Counts: replies with [`JournalStats`](crate::JournalStats).
    Stats,
    /// Cancels a workflow (and, with `children`, its descendants): replies with
    /// `{"cancelled": [ids]}`, the ids it cancelled (none if it had finished).
    Cancel {
        /// The workflow id.
        id: String,
        /// Cascade to its children, level by level.
        #[serde(default)]
        children: bool,
    },
    /// Starts a cancelled or stuck workflow again from its journal: replies with
    /// `{"resumed": id}`.
    Resume {
        /// The workflow id.
        id: String,
    },
    /// Copies a workflow up to delivery `at_seq` and runs the copy: replies with
    /// `{"forked": new_id}`.
    Fork {
        /// The workflow to copy.
        id: String,
        /// How many of its completions (seqs `0..at_seq`) the copy keeps.
        at_seq: u64,
        /// The copy's id; absent for `ID.fork-SEQ` (or the first free `-2`, `-3`...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_id: Option<String>,
    },
    /// Deletes finished workflows last written more than `older_than_ms` ago, sharing
    /// the runtime's thread with its workflows: replies with
    /// `{"deleted": n, "commits": n}`.
    Gc {
        /// The age, in milliseconds.
        older_than_ms: u64,
    },
}

/// The verbs a [`Request`] may name; any other is [`ErrorKind::UnknownVerb`].
pub(crate) const VERBS: [&str; 7] = ["list", "show", "stats", "cancel", "resume", "fork", "gc"];

/// What kind of failure an error reply reports (`"kind"`, in snake case).
///
/// ```
/// use ordo::admin::ErrorKind;
/// assert_eq!(serde_json::to_string(&ErrorKind::UnknownVerb)?, r#""unknown_verb""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The line is not UTF-8, not JSON, or not a JSON object with a string `verb`.
    BadFrame,
    /// The line is longer than [`MAX_FRAME`]; the connection is closed after the reply.
    FrameTooLarge,
    /// The `verb` is none the socket knows.
    UnknownVerb,
    /// The verb is known; its fields are missing or of the wrong type.
    BadRequest,
    /// Too many connections at once; try again.
    Busy,
    /// No workflow has that id.
    NotFound,
    /// The workflow finished (succeeded or failed): it cannot be resumed.
    NotResumable,
    /// The fork's new id is taken.
    AlreadyExists,
    /// The fork point is beyond the workflow's recorded completions.
    ForkPointOutOfRange,
    /// The workflow's name is not registered in the running application.
    UnknownWorkflow,
    /// The runtime stopped (a failed commit, or it is shutting down).
    Stopped,
    /// The journal failed (I/O, a damaged record).
    Journal,
    /// Any other failure; the message says which.
    Other,
}

impl ErrorKind {
    /// The kind of a runtime error.
    pub(crate) fn of(err: &Error) -> ErrorKind {
        match err {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::NotResumable { .. } => ErrorKind::NotResumable,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::ForkPointOutOfRange { .. } => ErrorKind::ForkPointOutOfRange,
            Error::UnknownWorkflow { .. } => ErrorKind::UnknownWorkflow,
            Error::Stopped { .. } | Error::RuntimeGone => ErrorKind::Stopped,
            Error::Journal(_) => ErrorKind::Journal,
            _ => ErrorKind::Other,
        }
    }
}

/// One reply line: `{"ok": value}` or `{"error": {"kind": .., "message": ..}}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    Ok(Value),
    Error { kind: ErrorKind, message: String },
}

impl Reply {
    pub(crate) fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply::Error {
            kind,
            message: message.into(),
        }
    }

    /// The line to send, newline included.
    pub(crate) fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|err| {
            // Only a value that cannot be JSON could fail; say so rather than go mute.
            format!(
                r#"{{"error":{{"kind":"other","message":"cannot encode the reply: {}"}}}}"#,
                err.to_string().replace(['"', '\\'], "'")
            )
            .into_bytes()
        });
        line.push(b'\n');
        line
    }
}

/// Parses one request line (without its newline).
pub(crate) fn parse(line: &[u8]) -> Result<Request, Reply> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|err| Reply::error(ErrorKind::BadFrame, format!("not a JSON line: {err}")))?;
    let Some(verb) = value.get("verb").and_then(Value::as_str) else {
        return Err(Reply::error(
            ErrorKind::BadFrame,
            "a request is a JSON object with a string \"verb\"",
        ));
    };
    if !VERBS.contains(&verb) {
        return Err(Reply::error(
            ErrorKind::UnknownVerb,
            format!(
                "unknown verb {verb:?}; the socket knows {}",
                VERBS.join(", ")
            ),
        ));
    }
    let verb = verb.to_string();
    serde_json::from_value(value).map_err(|err| {
        Reply::error(
            ErrorKind::BadRequest,
            format!("bad {verb:?} request: {err}"),
        )
    })
}

/// What went wrong with a [`call`].
///
/// ```
/// let gone = ordo::admin::call(std::path::Path::new("/nonexistent/admin.sock"), &ordo::admin::Request::Stats);
/// assert!(matches!(gone, Err(ordo::admin::CallError::Connect { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Nobody serves the socket (no application runs, or a stale socket file).
    #[error("cannot connect to the admin socket at {}: {source}", path.display())]
    Connect {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed after it was made.
    #[error("the admin socket at {} failed: {source}", path.display())]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The application answered with an error.
    #[error("{message}")]
    Refused {
        /// Its kind.
        kind: ErrorKind,
        /// Its message (names the workflow, the verb...).
        message: String,
    },
    /// The answer is not an admin reply.
    #[error("the admin socket at {} sent something that is not a reply: {detail}", path.display())]
    BadReply {
        /// The socket's path.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// Sends `request` to the admin socket at `socket` and returns the reply's `ok` value:
/// the client side of the protocol, which the `ordo` CLI uses.
///
/// # Errors
///
/// [`CallError::Connect`] when nothing serves the socket, [`CallError::Refused`] with
/// the reply's kind and message, [`CallError::Io`] and [`CallError::BadReply`] when the
/// connection or the reply breaks.
///
/// ```
/// use ordo::admin::{call, Request, SOCKET_FILE};
/// use ordo::{Ctx, Runtime};
///
/// async fn noop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
/// let dir = tempfile::tempdir()?;
/// let rt = Runtime::builder().path(dir.path()).register("noop", noop).build()?;
/// let handle = rt.start::<_, (), ()>("noop", "n-1", ())?;
/// rt.block_on(handle.result())?.expect("runs");
/// let socket = dir.path().join(SOCKET_FILE);
/// let asker = std::thread::spawn(move || call(&socket, &Request::Stats));
/// // The runtime's thread serves the request while it is driven.
/// let stats = rt.block_on(async {
///     loop {
///         if asker.is_finished() { break asker.join().expect("no panic"); }
///         ordo::executor::sleep(std::time::Duration::from_millis(5)).await;
///     }
/// })?;
/// assert_eq!(stats["succeeded"], 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn call(socket: &Path, request: &Request) -> Result<Value, CallError> {
    // A runtime that stalls for good (its thread blocked elsewhere) must not hang the
    // caller forever; a long gc answers within this.
    call_within(socket, request, Duration::from_secs(600))
}

/// [`call`], waiting at most `patience` for the reply: past it, [`CallError::Io`] with
/// a `WouldBlock` or `TimedOut` kind (an application whose runtime is not being driven
/// answers only once it is).
///
/// ```
/// use std::time::Duration;
/// use ordo::admin::{call_within, CallError, Request};
/// let none = call_within(std::path::Path::new("/nonexistent/admin.sock"), &Request::Stats, Duration::from_secs(1));
/// assert!(matches!(none, Err(CallError::Connect { .. })));
/// ```
///
/// # Errors
///
/// As [`call`]'s.
pub fn call_within(
    socket: &Path,
    request: &Request,
    patience: Duration,
) -> Result<Value, CallError> {
    let io = |source| CallError::Io {
        path: socket.to_path_buf(),
        source,
    };
    let mut stream = connect(socket).map_err(|source| CallError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    let mut line = serde_json::to_vec(request).map_err(|err| CallError::BadReply {
        path: socket.to_path_buf(),
        detail: format!("cannot encode the request: {err}"),
    })?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    stream.set_read_timeout(Some(patience)).map_err(io)?;
    let mut reply = Vec::new();
    BufReader::new(stream)
        .read_until(b'\n', &mut reply)
        .map_err(io)?;
    if reply.last() != Some(&b'\n') {
        return Err(CallError::BadReply {
            path: socket.to_path_buf(),
            detail: "the connection closed before a whole reply".into(),
        });
    }
    decode_reply(&reply, socket)
}

/// The value of one reply line (`{"ok": ..}`), or the error it carries
/// ([`CallError::Refused`]); `source` names where it came from in
/// [`CallError::BadReply`]. What [`call`] does with the line it reads, for replies that
/// come another way (from the workers of a PostgreSQL journal).
///
/// ```
/// use std::path::Path;
/// let value = ordo::admin::decode_reply(br#"{"ok":{"resumed":"a"}}"#, Path::new("here"))?;
/// assert_eq!(value["resumed"], "a");
/// let refused = ordo::admin::decode_reply(
///     br#"{"error":{"kind":"not_found","message":"no workflow"}}"#,
///     Path::new("here"),
/// );
/// assert!(matches!(refused, Err(ordo::admin::CallError::Refused { .. })));
/// # Ok::<(), ordo::admin::CallError>(())
/// ```
///
/// # Errors
///
/// [`CallError::Refused`] for an error reply, [`CallError::BadReply`] for a line that is
/// no reply.
pub fn decode_reply(line: &[u8], source: &Path) -> Result<Value, CallError> {
    match serde_json::from_slice::<Reply>(line) {
        Ok(Reply::Ok(value)) => Ok(value),
        Ok(Reply::Error { kind, message }) => Err(CallError::Refused { kind, message }),
        Err(err) => Err(CallError::BadReply {
            path: source.to_path_buf(),
            detail: err.to_string(),
        }),
    }
}

/// The longest socket path `bind` and `connect` take as it is: a Unix socket's address
/// holds at most 108 bytes with its final zero on Linux (`sun_path`).
const SUN_PATH_MAX: usize = 107;

/// `path` (a socket's, or a folder one is bound in) as a path short enough for a socket
/// address: itself, or for a longer one (a data folder deep in a tree) its folder opened
/// and named through `/proc/self/fd/N` (Linux), with the open folder to keep while the
/// path is used.
pub(crate) fn addressable(path: &Path) -> std::io::Result<(PathBuf, Option<std::fs::File>)> {
    use std::os::fd::AsRawFd;
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((path.to_path_buf(), None));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok((path.to_path_buf(), None));
    };
    let opened = std::fs::File::open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", opened.as_raw_fd())).join(name);
    Ok((short, Some(opened)))
}

/// Connects to the socket at `path`, however long the path (see [`addressable`]).
pub(crate) fn connect(path: &Path) -> std::io::Result<UnixStream> {
    let (address, _dir) = addressable(path)?;
    UnixStream::connect(address)
}
