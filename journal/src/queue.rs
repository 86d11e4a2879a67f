//! Queue records: what the runtime's queues, schedules and debouncers keep between
//! restarts (a workflow's place in its queue, a rate limiter's window, a deduplication
//! id, a schedule's last tick, a debounced call), committed in the same batches as the
//! workflow records they go with.
//!
//! | kind | key | value |
//! |---|---|---|
//! | queue record | `u` runtime-defined key | runtime-defined bytes |
//!
//! The journal does not interpret them: the runtime names its keys (one leading byte per
//! kind of its own) and encodes its values. Within a batch, puts and deletes of queue
//! records apply in the order they were made.

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

/// Adds the batch's queue records to `writes` (`k` is scratch).
pub(crate) fn encode(batch: &Batch, k: &mut Vec<u8>, writes: &mut ::sled::Batch) {
    for (key, value) in &batch.queue {
        k.clear();
        k.push(QUEUE);
        k.extend_from_slice(key);
        match value {
            Some(value) => writes.insert(k.as_slice(), value.as_slice()),
            None => writes.remove(k.as_slice()),
        }
    }
}

/// The queue records whose key starts with `prefix`, in key order, keys without the
/// leading byte.
pub(crate) fn scan(db: &::sled::Db, prefix: &[u8]) -> Result<Vec<QueueRecord>, Error> {
    let mut full = Vec::with_capacity(prefix.len() + 1);
    full.push(QUEUE);
    full.extend_from_slice(prefix);
    let mut out = Vec::new();
    for entry in db.scan_prefix(full) {
        let (key, value) = entry?;
        out.push((key[1..].to_vec(), value.to_vec()));
    }
    Ok(out)
}
