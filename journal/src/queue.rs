//! Queue records: what the runtime's queues, schedules and debouncers keep between
//! restarts (a workflow's place in its queue, a rate limiter's window, a deduplication
//! id, a schedule's last tick, a debounced call), committed in the same batches as the
//! workflow records they go with.
//!
//! | kind | key | value |
//! |---|---|---|
//! | queue record | `u` runtime-defined key | runtime-defined bytes |
//!
//! The journal does not interpret their values: the runtime names its keys (one leading
//! byte per kind of its own) and encodes its values. Within a batch, puts and deletes of
//! queue records apply in the order they were made.
//!
//! One kind of key is the journal's own: [`ENTRY`] followed by a workflow id is that
//! workflow's *queue entry*, kept from its enqueue to its end. A store may keep it with
//! the workflow rather than as a record of its own (sled keeps it in the workflow's
//! `Pending` status-index entry, which also marks the start of a queued workflow and,
//! until the workflow has a record of its own, holds its record: one sled entry serves
//! as workflow record, queue entry, queued index and start mark, see the sled key layout
//! in the source of `key.rs`).
//! It reads back like any other queue record, and goes when it is deleted or, on sled,
//! with the `Pending` index entry when the workflow ends.

use crate::record::Batch;
use crate::Error;

/// A queue record: its key (without the journal's leading byte) and its value.
pub type QueueRecord = (Vec<u8>, Vec<u8>);

/// A request to start queued workflows under limits that every worker of a shared
/// journal obeys together ([`Store::admit`](crate::Store::admit)).
///
/// A *lane* is one queue, or one partition of a partitioned queue: what its limits
/// count. The store keeps, per lane, how many of its workflows each worker runs (its
/// *slots*) and the start times of the rate limiter's window. A worker always says how
/// many it runs now (not how many it gave back), so a request sent twice, after a
/// connection lost its answer, takes no slot twice.
///
/// ```
/// use ordo_journal::queue::Admission;
/// let ask = Admission { lane: "payments".into(), concurrency: Some(5), want: 2, ..Admission::default() };
/// assert_eq!(ask.running, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// The lane: the queue, and the partition key in a partitioned queue, in one string
    /// of the runtime's making.
    pub lane: String,
    /// Workflows of the lane running at once on all workers together, if limited.
    pub concurrency: Option<u64>,
    /// At most `.0` starts per `.1` milliseconds on all workers together, if limited.
    pub rate: Option<(u64, u64)>,
    /// The caller's clock (ms since the Unix epoch): what the rate window counts from.
    pub now_ms: u64,
    /// Workflows of the lane this worker runs now: the slots it keeps, whatever the
    /// limits (they run already: ones taken over from a dead worker hold a slot too).
    pub running: u64,
    /// Workflows this worker would start now, on top of `running`.
    pub want: u64,
}

/// What [`Store::admit`](crate::Store::admit) granted.
///
/// ```
/// let granted = ordo_journal::queue::Admitted { granted: 2, retry_at_ms: None };
/// assert_eq!(granted.granted, 2);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admitted {
    /// How many of the `want` workflows may start now (their slots are taken).
    pub granted: u64,
    /// When the rate limiter lets more through, if it held some back.
    pub retry_at_ms: Option<u64>,
}

/// What [`Store::swap_queue_record`](crate::Store::swap_queue_record) did, on a store
/// shared by many workers.
///
/// ```
/// use ordo_journal::queue::Swap;
/// let seen = Swap::Changed(Some(b"round 2".to_vec()));
/// assert_ne!(seen, Swap::Done);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The record held what the caller expected: the writes are made.
    Done,
    /// It held this instead (`None`: no record): nothing was written.
    Changed(Option<Vec<u8>>),
}

/// Leading byte of queue records.
pub(crate) const QUEUE: u8 = b'u';

/// Leading byte of the queue records that are workflows' queue entries: `ENTRY` then the
/// workflow id (see the [module](self) documentation).
///
/// ```
/// use ordo_journal::{Batch, SledJournal, Store};
/// use ordo_journal::queue::ENTRY;
/// let journal = SledJournal::temporary()?;
/// let mut batch = Batch::new();
/// let key = [&[ENTRY][..], b"order-1"].concat();
/// batch.put_queue_record(key.clone(), b"payments".to_vec());
/// journal.commit(&batch)?;
/// assert_eq!(journal.queue_records(&[ENTRY])?, vec![(key, b"payments".to_vec())]);
/// # Ok::<(), ordo_journal::Error>(())
/// ```
pub const ENTRY: u8 = b'e';

/// The workflow id of queue record `key`, if it is a queue entry that sled keeps in the
/// workflow's `Pending` index entry (a UTF-8 id, short enough for a key).
pub(crate) fn entry_id(key: &[u8]) -> Option<&str> {
    let (&kind, id) = key.split_first()?;
    let id = std::str::from_utf8(id).ok().filter(|_| kind == ENTRY)?;
    crate::key::check_id(id).ok().map(|()| id)
}

impl Batch {
    /// Writes queue record `key` (replacing any value it had).
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Store};
    /// let journal = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.put_queue_record(b"e/order-1".to_vec(), b"payments".to_vec());
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.queue_records(b"e/")?, vec![(b"e/order-1".to_vec(), b"payments".to_vec())]);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn put_queue_record(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.queue.push((key, Some(value)));
    }

    /// Deletes queue record `key` (nothing if it has none).
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Store};
    /// let journal = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.put_queue_record(b"e/order-1".to_vec(), vec![]);
    /// journal.commit(&batch)?;
    /// let mut batch = Batch::new();
    /// batch.delete_queue_record(b"e/order-1".to_vec());
    /// journal.commit(&batch)?;
    /// assert!(journal.queue_records(b"")?.is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn delete_queue_record(&mut self, key: Vec<u8>) {
        self.queue.push((key, None));
    }

    /// The queue records this batch puts (`Some`) or deletes (`None`), in order: what a
    /// [`Store`](crate::Store) other than sled applies.
    ///
    /// ```
    /// let mut batch = ordo_journal::Batch::new();
    /// batch.delete_queue_record(b"k".to_vec());
    /// assert_eq!(batch.queue_records(), &[(b"k".to_vec(), None)]);
    /// ```
    pub fn queue_records(&self) -> &[(Vec<u8>, Option<Vec<u8>>)] {
        &self.queue
    }
}

/// Adds the put (`Some`) or delete (`None`) of queue record `key` to `writes` (`k` is
/// scratch).
pub(crate) fn encode_record(
    key: &[u8],
    value: Option<&[u8]>,
    k: &mut Vec<u8>,
    writes: &mut ::sled::Batch,
) {
    k.clear();
    k.push(QUEUE);
    k.extend_from_slice(key);
    match value {
        Some(value) => writes.insert(k.as_slice(), value),
        None => writes.remove(k.as_slice()),
    }
}

/// The value of a `Pending` status-index entry on sled (see [`key`](crate::key)): what
/// it says of the workflow's start and queue entry, and, for a workflow started or
/// enqueued since schema 8, its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark<'a> {
    /// Empty: the index entry of a record that says `Pending` itself.
    Plain,
    /// A workflow started at this time (ms): a queued one, with its queue entry if it
    /// has one; and its record (encoded, as started) if it has no record of its own (a
    /// direct start's mark holds its record and no queue entry).
    Started(u64, Option<&'a [u8]>, Option<&'a [u8]>),
    /// A queued workflow waiting for its start, with its queue entry, and its record
    /// (encoded, as enqueued) if it has no record of its own.
    Waiting(&'a [u8], Option<&'a [u8]>),
}

/// First byte of a mark of a waiting queued workflow (then 8 unused bytes, the entry).
const WAITING: u8 = 1;
/// First byte of a mark of a started queued workflow with a queue entry (then the start
/// time, `u64` big-endian, and the entry).
const STARTED: u8 = 2;
/// First byte of a mark of a waiting queued workflow that holds its record (schema 8):
/// then 8 unused bytes, the entry's length (`u32` big-endian), the entry, the record.
const WAITING_WITH_RECORD: u8 = 3;
/// First byte of a mark of a started queued workflow that holds its record (schema 8):
/// then the start time (`u64` big-endian), the entry's length (`u32` big-endian,
/// [`NO_ENTRY`] for none), the entry, the record.
const STARTED_WITH_RECORD: u8 = 4;
/// The entry length of a mark that holds a record and no queue entry.
const NO_ENTRY: u32 = u32::MAX;

impl<'a> Mark<'a> {
    /// Reads the value of `Pending` index entry `key`. A start mark without an entry is
    /// the start time alone (8 bytes, as schema 5 wrote every start mark); one with an
    /// entry is a tag byte, 8 bytes of time and the entry: never 8 bytes long.
    pub(crate) fn parse(key: &[u8], value: &'a [u8]) -> Result<Mark<'a>, Error> {
        let corrupt = || crate::codec::corrupt(key, "pending index entry is malformed".into());
        if value.is_empty() {
            return Ok(Mark::Plain);
        }
        if let Ok(time) = <[u8; 8]>::try_from(value) {
            return Ok(Mark::Started(u64::from_be_bytes(time), None, None));
        }
        let (tag, rest) = value.split_first().ok_or_else(corrupt)?;
        let (time, entry) = rest.split_at_checked(8).ok_or_else(corrupt)?;
        let time = u64::from_be_bytes(time.try_into().map_err(|_| corrupt())?);
        match *tag {
            WAITING => Ok(Mark::Waiting(entry, None)),
            STARTED => Ok(Mark::Started(time, Some(entry), None)),
            WAITING_WITH_RECORD | STARTED_WITH_RECORD => {
                let (len, rest) = entry.split_at_checked(4).ok_or_else(corrupt)?;
                let len = u32::from_be_bytes(len.try_into().map_err(|_| corrupt())?);
                let (entry, record) = if len == NO_ENTRY {
                    (None, rest)
                } else {
                    let len = usize::try_from(len).map_err(|_| corrupt())?;
                    let (entry, record) = rest.split_at_checked(len).ok_or_else(corrupt)?;
                    (Some(entry), record)
                };
                match (*tag, entry) {
                    (WAITING_WITH_RECORD, Some(entry)) => Ok(Mark::Waiting(entry, Some(record))),
                    (STARTED_WITH_RECORD, entry) => Ok(Mark::Started(time, entry, Some(record))),
                    _ => Err(corrupt()),
                }
            }
            _ => Err(corrupt()),
        }
    }

    /// The queue entry it holds, if any.
    pub(crate) fn entry(self) -> Option<&'a [u8]> {
        match self {
            Mark::Plain => None,
            Mark::Started(_, entry, _) => entry,
            Mark::Waiting(entry, _) => Some(entry),
        }
    }

    /// The workflow record it holds (encoded), if any: a queued workflow enqueued since
    /// schema 8 has no record of its own until one is written (its end, say).
    pub(crate) fn record(self) -> Option<&'a [u8]> {
        match self {
            Mark::Plain => None,
            Mark::Started(_, _, record) | Mark::Waiting(_, record) => record,
        }
    }

    /// Writes its stored form into `out` (cleared first).
    pub(crate) fn encode(self, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Mark::Plain => {}
            Mark::Started(time, None, None) => out.extend_from_slice(&time.to_be_bytes()),
            Mark::Started(time, Some(entry), None) => {
                out.push(STARTED);
                out.extend_from_slice(&time.to_be_bytes());
                out.extend_from_slice(entry);
            }
            Mark::Waiting(entry, None) => {
                out.push(WAITING);
                out.extend_from_slice(&[0; 8]);
                out.extend_from_slice(entry);
            }
            Mark::Started(time, entry, Some(record)) => {
                out.push(STARTED_WITH_RECORD);
                out.extend_from_slice(&time.to_be_bytes());
                encode_entry_and_record(entry, record, out);
            }
            Mark::Waiting(entry, Some(record)) => {
                out.push(WAITING_WITH_RECORD);
                out.extend_from_slice(&[0; 8]);
                encode_entry_and_record(Some(entry), record, out);
            }
        }
    }
}

/// The tail of a mark that holds a record: the entry's length, the entry, the record.
/// (An entry is a few dozen bytes of the runtime's encoding, and no sled value comes
/// near 4 GiB: the length always fits below [`NO_ENTRY`].)
fn encode_entry_and_record(entry: Option<&[u8]>, record: &[u8], out: &mut Vec<u8>) {
    let len = entry.map_or(NO_ENTRY, |entry| {
        u32::try_from(entry.len())
            .unwrap_or(NO_ENTRY - 1)
            .min(NO_ENTRY - 1)
    });
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(entry.unwrap_or_default());
    out.extend_from_slice(record);
}

/// The queue records whose key starts with `prefix`, in key order, keys without the
/// leading byte: the queue records stored as such, and the queue entries kept in
/// `Pending` index entries.
pub(crate) fn scan(db: &::sled::Db, prefix: &[u8]) -> Result<Vec<QueueRecord>, Error> {
    let mut full = Vec::with_capacity(prefix.len() + 1);
    full.push(QUEUE);
    full.extend_from_slice(prefix);
    let mut out = Vec::new();
    for entry in db.scan_prefix(full) {
        let (key, value) = entry?;
        out.push((key[1..].to_vec(), value.to_vec()));
    }
    let ids = match prefix.split_first() {
        None => Some(&[][..]),
        Some((&ENTRY, ids)) => Some(ids),
        Some(_) => None,
    };
    if let Some(ids) = ids {
        let mut pending = crate::key::status_prefix(crate::record::Status::Pending).to_vec();
        let start = out.len();
        pending.extend_from_slice(ids);
        for entry in db.scan_prefix(&pending) {
            let (key, value) = entry?;
            if let Some(found) = Mark::parse(&key, &value)?.entry() {
                let mut entry_key = Vec::with_capacity(key.len() - 1);
                entry_key.push(ENTRY);
                entry_key.extend_from_slice(&key[2..]);
                out.push((entry_key, found.to_vec()));
            }
        }
        if out.len() > start {
            out.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
    Ok(out)
}
