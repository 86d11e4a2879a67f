//! The key space: one sled tree, one leading byte per kind of record.
//!
//! Keeping every kind in one tree is what makes a commit atomic for free: a single
//! `sled::Batch` applied to a single tree is recovered all or nothing after a crash, with
//! none of the cost of a multi-tree transaction.
//!
//! | kind | key | value |
//! |---|---|---|
//! | schema version | `m` `schema` | `u32` big-endian |
//! | commit counter | `m` `commits` | `u64` big-endian |
//! | records held in index entries | `m` `held` | empty: present once a commit kept a workflow record in a `Pending` index entry (see below) |
//! | workflow record | `w` id | [`codec`](crate::codec) workflow value |
//! | run of step completions | `c` id-len (`u16` BE) id first-seq last-seq (`u64` BE) | [`codec`](crate::codec) run value |
//! | status index (not of `Enqueued`, `Delayed` and `Succeeded`, see [`is_indexed`]) | `s` status byte id | empty; under `Pending`, for a queued workflow, its start mark and queue entry (see below) |
//! | type name | `t` fingerprint (`u64` BE) | [`codec`](crate::codec) string |
//! | messages, idempotency keys, events, awakeable resolutions, message counter | `q`, `k`, `e`, `a`, `m` `messages` | see [`mail`](crate::mail) |
//! | trace context (optional) | `x` id | [`codec`](crate::codec) string: a W3C `traceparent` |
//! | start group (schema 10) | `g` group number (`u64` BE) | the records of direct starts whose `Pending` entries it stands for, see [`start_group`](crate::start_group) |
//! | queue record | `u` runtime-defined key | see [`queue`](crate::queue) |
//!
//! A queued workflow's `Pending` index entry is written at its enqueue, not its start
//! (schema 6): it holds its queue entry (the queue record [`queue::ENTRY`](crate::queue::ENTRY)
//! and its id, read back as such), and, once it started, its start time, which makes its
//! record (still as enqueued) read as `Pending`. One sled entry for the queue entry, the
//! start mark and the index, removed with its end. Its value is the start time alone
//! (`u64` BE, a start without a queue entry, as schema 5 wrote every start mark), or a tag
//! byte (1 waiting, 2 started), the start time (`u64` BE, zero while waiting) and the
//! queue entry: never 8 bytes. Listing `Pending` skips the waiting ones. Since schema 8
//! the entry of a workflow enqueued into a queue also holds its record until a record of
//! its own is written (its end, say): tag byte 3 (waiting) or 4 (started), the start
//! time, the queue entry's length (`u32` BE, all ones for none), the entry and the
//! encoded record. A read of a workflow without a record of its own reads that one. A
//! workflow started directly (a new record, `Pending`) is written the same way (tag 4,
//! no queue entry): its start is one sled entry, a put while it stays pending replaces
//! the record in the entry, and its end writes its record and removes the entry, as for
//! any workflow. (Earlier schema 8 builds wrote a direct start's record under its own
//! key, with an empty entry; the held form is the one they read for queued workflows.)
//!
//! Completions are stored in *runs*: all the completions one commit appends to one
//! workflow share one sled entry. sled costs several microseconds per entry whatever its
//! size, so a key per completion would cap group commit far below the disk's limit.
//! Runs never overlap because completions are append-only (a commit only adds seqs past
//! the last recorded one), so with big-endian integers (byte order is numeric order) a
//! prefix scan of `c` id-len id returns one workflow's completions in `seq` order. The id
//! is length-prefixed in completion keys so that no id's prefix is another id's prefix
//! (`"a"` and `"ab"` never share completions).

use crate::record::Status;

/// Leading byte of the meta records (the schema version).
const META: u8 = b'm';
/// Leading byte of workflow records.
const WORKFLOW: u8 = b'w';
/// Leading byte of step completions.
const COMPLETION: u8 = b'c';
/// Leading byte of status-index entries.
const STATUS: u8 = b's';
/// Leading byte of the type table (fingerprint to type name).
const TYPE: u8 = b't';
/// Leading byte of trace contexts: the W3C `traceparent` a workflow was started with,
/// if it was given one. A separate record, not a field of the workflow record, so a
/// start without one writes nothing more.
const TRACE: u8 = b'x';

/// The key of the schema version.
pub(crate) const SCHEMA: &[u8] = b"mschema";

/// The key of the commit counter (`u64` big-endian): how many commits the journal ever
/// acknowledged, checked against the seal at open.
pub(crate) const COMMITS: &[u8] = b"mcommits";

/// The key present (empty value) once a commit kept a workflow record in a `Pending`
/// index entry (a started or queued workflow's, schema 8): until then no record is held
/// there, and a read of a workflow looks at its own key alone (a journal written by an
/// older build, opened read-only, say). Never removed.
pub(crate) const HELD: &[u8] = b"mheld";

/// The longest workflow id a completion key can length-prefix.
///
/// ```
/// use ordo_journal::{Batch, Error, SledJournal, Store, WorkflowRecord, MAX_ID_LEN};
/// let journal = SledJournal::temporary()?;
/// let mut batch = Batch::new();
/// batch.put_workflow(WorkflowRecord::new("x".repeat(MAX_ID_LEN + 1), "checkout", vec![], 0));
/// assert!(matches!(journal.commit(&batch), Err(Error::IdTooLong { .. })));
/// # Ok::<(), ordo_journal::Error>(())
/// ```
pub const MAX_ID_LEN: usize = u16::MAX as usize;

/// The prefix of every workflow record, for listing all workflows.
pub(crate) const WORKFLOW_PREFIX: &[u8] = &[WORKFLOW];

/// Writes the key of workflow `id` into `out` (cleared first).
pub(crate) fn workflow(id: &str, out: &mut Vec<u8>) {
    out.clear();
    out.push(WORKFLOW);
    out.extend_from_slice(id.as_bytes());
}

/// Writes the key of workflow `id`'s trace context into `out` (cleared first).
pub(crate) fn trace_context(id: &str, out: &mut Vec<u8>) {
    out.clear();
    out.push(TRACE);
    out.extend_from_slice(id.as_bytes());
}

/// Writes the prefix shared by all completions of workflow `id` into `out`.
///
/// The caller has checked `id.len() <= MAX_ID_LEN`; longer ids are clamped so this
/// function cannot panic, and [`check_id`] rejects them before anything is written.
pub(crate) fn completion_prefix(id: &str, out: &mut Vec<u8>) {
    let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    out.clear();
    out.push(COMPLETION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(id.as_bytes());
}

/// Writes the key of the run of completions `first..=last` of workflow `id` into `out`.
pub(crate) fn completion_run(id: &str, first: u64, last: u64, out: &mut Vec<u8>) {
    completion_prefix(id, out);
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&last.to_be_bytes());
}

/// The `(first, last)` seqs at the end of a run key whose prefix is `prefix_len` bytes.
pub(crate) fn run_range(key: &[u8], prefix_len: usize) -> Option<(u64, u64)> {
    let tail: &[u8; 16] = key.get(prefix_len..)?.try_into().ok()?;
    let (first, last) = tail.split_at(8);
    let first = u64::from_be_bytes(first.try_into().ok()?);
    let last = u64::from_be_bytes(last.try_into().ok()?);
    (first <= last).then_some((first, last))
}

/// Whether records with `status` have status-index entries: `Pending`, `Failed` and
/// `Cancelled`; not `Enqueued` and `Delayed` (since schema version 5), nor `Succeeded`
/// (since schema version 7).
///
/// sled costs microseconds per entry written or removed, and an index entry is paid
/// for at every status change. A queued workflow's status changes twice before its end
/// (`Enqueued` to `Pending`, and from `Delayed` first), for a listing that only
/// inspection asks for (the runtime finds its queued workflows through its queue
/// records). `Succeeded` is the status nearly every workflow ends with: its entry was
/// one sled write in six of a one-step workflow's life (start, step, end), for a listing
/// that covers most of the journal anyway, so reading the records costs it little. The
/// statuses worth an index are the ones looked for among many others: `Pending` (what
/// recovery resumes), `Failed` and `Cancelled` (what an operator looks for). Listing an
/// unindexed status scans the workflow records instead.
pub(crate) fn is_indexed(status: Status) -> bool {
    !matches!(
        status,
        Status::Enqueued | Status::Delayed | Status::Succeeded
    )
}

/// Whether `status` is a queued one (`Enqueued`, `Delayed`): such a record may carry a
/// start mark in its `Pending` index entry, which makes it read as `Pending`.
pub(crate) fn is_queued(status: Status) -> bool {
    matches!(status, Status::Enqueued | Status::Delayed)
}

/// Writes the status-index key of workflow `id` with `status` into `out`.
pub(crate) fn status(status: Status, id: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&status_prefix(status));
    out.extend_from_slice(id.as_bytes());
}

/// The prefix of all status-index entries for `status`.
pub(crate) fn status_prefix(status: Status) -> [u8; 2] {
    [STATUS, status.index_byte()]
}

/// The key of the type table entry for `fingerprint`.
pub(crate) fn type_name(fingerprint: u64) -> [u8; 9] {
    let mut key = [TYPE; 9];
    key[1..].copy_from_slice(&fingerprint.to_be_bytes());
    key
}

/// Rejects an id (or topic, or any other string the journal puts in a key) longer than
/// [`MAX_ID_LEN`] bytes, as a commit holding it would be: [`Error::IdTooLong`](crate::Error::IdTooLong).
///
/// ```
/// use ordo_journal::{check_id, MAX_ID_LEN};
/// assert!(check_id("order-42").is_ok());
/// assert!(check_id(&"x".repeat(MAX_ID_LEN + 1)).is_err());
/// ```
pub fn check_id(id: &str) -> Result<(), crate::Error> {
    if id.len() > MAX_ID_LEN {
        return Err(crate::Error::IdTooLong {
            len: id.len(),
            max: MAX_ID_LEN,
        });
    }
    Ok(())
}

/// Rejects a string that holds a NUL character (`\0`):
/// [`Error::NulCharacter`](crate::Error::NulCharacter). PostgreSQL's `text` cannot hold
/// one, so the PostgreSQL store refuses a commit that carries one in an id, a name, a
/// topic or a key; the runtime refuses such a string at the call that brings it in, on
/// every store (sled could hold it), so that the same code behaves the same on both.
///
/// ```
/// use ordo_journal::check_text;
/// assert!(check_text("charge card").is_ok());
/// assert!(check_text("charge\0card").is_err());
/// ```
pub fn check_text(text: &str) -> Result<(), crate::Error> {
    if text.as_bytes().contains(&0) {
        return Err(crate::Error::NulCharacter {
            text: text.to_owned(),
        });
    }
    Ok(())
}

/// A key taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    /// The schema version.
    Schema,
    /// The commit counter.
    Commits,
    /// A workflow record.
    Workflow(&'a str),
    /// A run of step completions.
    Completions {
        /// Their workflow.
        id: &'a str,
        /// The first seq in the run.
        first: u64,
        /// The last seq in the run.
        last: u64,
    },
    /// A type table entry.
    Type(u64),
    /// A workflow's trace context.
    TraceContext(&'a str),
    /// A start group (see [`crate::start_group`]).
    Group(u64),
    /// A status-index entry.
    Status {
        /// The indexed status.
        status: Status,
        /// The workflow.
        id: &'a str,
    },
}

/// Parses a raw key, or says why it is not one of the journal's.
pub(crate) fn parse(key: &[u8]) -> Result<Key<'_>, &'static str> {
    let utf8 = |bytes| std::str::from_utf8(bytes).map_err(|_| "workflow id is not UTF-8");
    match key.split_first() {
        None => Err("empty key"),
        Some((&META, _)) if key == SCHEMA => Ok(Key::Schema),
        Some((&META, _)) if key == COMMITS => Ok(Key::Commits),
        Some((&WORKFLOW, id)) => Ok(Key::Workflow(utf8(id)?)),
        Some((&COMPLETION, rest)) => {
            let (len, rest) = rest.split_first_chunk::<2>().ok_or("truncated id length")?;
            let len = usize::from(u16::from_be_bytes(*len));
            if rest.len() != len + 16 {
                return Err("completion key length does not match its id length");
            }
            let (first, last) =
                run_range(rest, len).ok_or("completion run ends before it starts")?;
            Ok(Key::Completions {
                id: utf8(&rest[..len])?,
                first,
                last,
            })
        }
        Some((&TRACE, id)) => Ok(Key::TraceContext(utf8(id)?)),
        Some((&crate::start_group::GROUP, rest)) => {
            let bytes: [u8; 8] = rest
                .try_into()
                .map_err(|_| "start group key is not 8 bytes")?;
            Ok(Key::Group(u64::from_be_bytes(bytes)))
        }
        Some((&TYPE, rest)) => {
            let bytes: [u8; 8] = rest.try_into().map_err(|_| "type key is not 8 bytes")?;
            Ok(Key::Type(u64::from_be_bytes(bytes)))
        }
        Some((&STATUS, rest)) => {
            let (&byte, id) = rest.split_first().ok_or("truncated status byte")?;
            let status = Status::from_index_byte(byte).ok_or("unknown status byte")?;
            Ok(Key::Status {
                status,
                id: utf8(id)?,
            })
        }
        Some(_) => Err("unknown key kind"),
    }
}

/// A printable name for a raw key: `workflow/<id>`, `workflow/<id>/seq/<n>` (or
/// `.../seq/<first>-<last>` for a run),
/// `status/<status>/<id>`, `trace/<id>`, `meta/schema`, or `0x<hex>` if it does not parse.
pub(crate) fn describe(key: &[u8]) -> String {
    match parse(key) {
        Ok(Key::Schema) => "meta/schema".to_owned(),
        Ok(Key::Commits) => "meta/commits".to_owned(),
        Ok(Key::Workflow(id)) => format!("workflow/{}", id.escape_debug()),
        Ok(Key::Completions { id, first, last }) if first == last => {
            format!("workflow/{}/seq/{first}", id.escape_debug())
        }
        Ok(Key::Completions { id, first, last }) => {
            format!("workflow/{}/seq/{first}-{last}", id.escape_debug())
        }
        Ok(Key::Status { status, id }) => format!("status/{status}/{}", id.escape_debug()),
        Ok(Key::Type(fingerprint)) => format!("type/{fingerprint:016x}"),
        Ok(Key::TraceContext(id)) => format!("trace/{}", id.escape_debug()),
        Ok(Key::Group(number)) => format!("startgroup/{number}"),
        Err(_) => hex(key),
    }
}

/// `0x` followed by the bytes in lowercase hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_keys_sort_by_seq_and_never_share_a_prefix_across_ids() {
        let (mut a, mut b, mut ab) = (Vec::new(), Vec::new(), Vec::new());
        completion_run("a", 255, 255, &mut a);
        completion_run("a", 256, 256, &mut b);
        assert!(a < b, "big-endian seq must sort numerically");
        completion_prefix("ab", &mut ab);
        assert!(!a.starts_with(&ab) && !ab.starts_with(&a[..4]));
    }

    #[test]
    fn every_key_kind_parses_back_and_describes_itself() {
        let mut k = Vec::new();
        completion_run("order/42", 7, 7, &mut k);
        assert_eq!(
            parse(&k),
            Ok(Key::Completions {
                id: "order/42",
                first: 7,
                last: 7
            })
        );
        assert_eq!(describe(&k), "workflow/order/42/seq/7");
        completion_run("x", 3, 9, &mut k);
        assert_eq!(describe(&k), "workflow/x/seq/3-9");
        completion_run("x", 9, 3, &mut k);
        assert_eq!(parse(&k), Err("completion run ends before it starts"));
        workflow("x", &mut k);
        assert_eq!(describe(&k), "workflow/x");
        status(Status::Failed, "x", &mut k);
        assert_eq!(describe(&k), "status/failed/x");
        trace_context("x", &mut k);
        assert_eq!(parse(&k), Ok(Key::TraceContext("x")));
        assert_eq!(describe(&k), "trace/x");
        assert_eq!(describe(SCHEMA), "meta/schema");
        assert_eq!(describe(&crate::start_group::key(3)), "startgroup/3");
        assert_eq!(parse(&crate::start_group::key(3)), Ok(Key::Group(3)));
        assert_eq!(describe(&[b'c', 0, 9, b'x']), "0x63000978");
        assert_eq!(describe(&[]), "0x");
    }
}
