//! The journal's one error type.
//!
//! Every variant names what failed: the path of the journal, or the key of the record,
//! so a message read in a log is enough to find the bad bytes.

use std::path::PathBuf;

/// Everything that can go wrong in the journal.
///
/// Keys in messages are printable (`workflow/<id>`, `workflow/<id>/seq/<n>`,
/// `status/<status>/<id>`, `meta/schema`, or `0x<hex>` for a key that is not even
/// well-formed).
///
/// ```
/// use ordo_journal::Error;
///
/// let err = Error::Corrupt { key: "workflow/order-42/seq/3".into(), reason: "truncated".into() };
/// assert_eq!(err.to_string(), "corrupt journal record at workflow/order-42/seq/3: truncated");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process has the journal open (sled holds an exclusive file lock on it).
    #[error(
        "journal at {} is held by another process (sled's exclusive file lock); \
         stop that process or open another path",
        path.display()
    )]
    Locked {
        /// The journal directory.
        path: PathBuf,
    },

    /// [`SledJournal::open_existing`](crate::SledJournal::open_existing) could not take a
    /// consistent copy of a journal that a running process keeps changing: each copy
    /// caught its files mid-write. Nothing is wrong with the journal; try again, or ask
    /// the running process (its admin socket).
    #[error(
        "journal at {} is in use by a running process, and changed while it was copied \
         for reading ({tries} tries): try again, or read it through the running \
         application's admin socket",
        path.display()
    )]
    Busy {
        /// The journal directory.
        path: PathBuf,
        /// How many copies were taken.
        tries: u32,
    },

    /// [`SledJournal::open_existing`](crate::SledJournal::open_existing) found no journal.
    #[error("no ordo journal at {}", path.display())]
    NotFound {
        /// The path that was looked at.
        path: PathBuf,
    },

    /// A stored key or value could not be decoded: truncated, garbled, trailing bytes, or
    /// inconsistent with the index that points at it.
    #[error("corrupt journal record at {key}: {reason}")]
    Corrupt {
        /// The record's key, printable.
        key: String,
        /// What was wrong with it.
        reason: String,
    },

    /// The journal's files hold less than was acknowledged (commits are missing), or
    /// cannot be read as a journal at all: damaged on disk (a flipped, zeroed or truncated
    /// byte, a lost or replaced file). Nothing was run and the files were left exactly as
    /// they were, for inspection. See the crate docs on damage for what is detected.
    #[error(
        "journal at {} is damaged: {reason}. Its files were left untouched: keep a copy for \
         inspection, then restore the journal from a backup (or move it aside to start an \
         empty one)",
        path.display()
    )]
    Damaged {
        /// The journal directory.
        path: PathBuf,
        /// What is missing or unreadable.
        reason: String,
    },

    /// A version written by a newer (or unknown) build of ordo.
    #[error("unsupported {what} version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Which version: the journal schema (with its path) or a record's format (with
        /// its key).
        what: String,
        /// The version found on disk.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// A workflow id the journal cannot store (its key length-prefixes ids with a `u16`).
    #[error("workflow id of {len} bytes is too long (at most {max} bytes)")]
    IdTooLong {
        /// The id's length in bytes.
        len: usize,
        /// The longest id the journal stores.
        max: usize,
    },

    /// A string the journal cannot store: it holds a NUL character (`\0`), which a
    /// PostgreSQL `text` column refuses ([`check_text`](crate::check_text)). The runtime
    /// refuses such an id, name, topic or key at the call that brings it in, on every
    /// store, so that a workflow tested on sled does not fail on PostgreSQL.
    #[error("{text:?} contains a NUL character (\\0), which the journal cannot store")]
    NulCharacter {
        /// The string refused.
        text: String,
    },

    /// A commit would record a completion whose seq is not after every seq already
    /// recorded (or earlier in the batch) for its workflow: completions are append-only.
    #[error("completion seq {seq} of workflow {workflow_id:?} is not after seq {after}: completions are append-only")]
    SeqOutOfOrder {
        /// The workflow.
        workflow_id: String,
        /// The seq the commit tried to record.
        seq: u64,
        /// The seq it must come after.
        after: u64,
    },

    /// [`Store::commit`](crate::Store::commit) on a journal opened read-only (or
    /// `Store::claim_pending` on a read-only `PgJournal`).
    #[error("journal at {} was opened read-only", path.display())]
    ReadOnly {
        /// The journal directory; for a `PgJournal`, the database's address
        /// (`postgres://USER@HOST:PORT/DBNAME`, without the password).
        path: PathBuf,
    },

    /// This worker's lease on a shared journal (`PgJournal`, feature `postgres`) was
    /// taken over by another worker (it stopped renewing it for longer than the lease,
    /// e.g. paused or cut off), so its commits are refused: the other worker now drives
    /// its workflows. Nothing it committed before is lost; the process should stop and
    /// start again as a new worker.
    #[error(
        "worker {worker:?} was fenced: its lease expired and another worker took over its \
         workflows, so its commits are refused. Restart this process to rejoin as a new worker"
    )]
    Fenced {
        /// The fenced worker's name.
        worker: String,
    },

    /// A pending workflow that another live worker drives (on a journal shared by many
    /// workers): this process may not resume it. It may once that worker is gone (its
    /// lease ran out) or has finished it.
    #[error(
        "workflow {workflow_id:?} is being driven by another live worker; it is not resumed \
         here (it is taken over if that worker dies)"
    )]
    DrivenElsewhere {
        /// The workflow's id.
        workflow_id: String,
    },

    /// A request left for the workers of a shared journal
    /// ([`ask_workers`](crate::ask_workers)) got no reply in time: no worker runs, or
    /// the one that took it (`taken_by`, a worker id) is still at it.
    #[error(
        "no worker answered within {waited:?} ({})",
        match taken_by {
            None => "none took the request: is an ordo application running on this database?".to_string(),
            Some(worker) => format!("worker {worker} took it and may still carry it out"),
        }
    )]
    Unanswered {
        /// How long the asker waited.
        waited: std::time::Duration,
        /// The worker that took the request, if one did.
        taken_by: Option<i64>,
    },

    /// The database of a server-backed journal refused a request or could not be
    /// reached in time (the message says which, and what the server said).
    #[error("journal database error: {0}")]
    Database(String),

    /// An I/O error outside the storage engine (for example the `fdatasync` of `Sync`).
    #[error("journal I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// The storage engine reported an error (its message, engine-independent so the
    /// [`Store`](crate::Store) trait does not leak sled).
    #[error("journal storage error: {0}")]
    Storage(String),
}

impl From<::sled::Error> for Error {
    fn from(err: ::sled::Error) -> Self {
        match err {
            ::sled::Error::Io(io) => Error::Io(io),
            other => Error::Storage(other.to_string()),
        }
    }
}
