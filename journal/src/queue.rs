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
