//! The interface the runtime journals through, so a server-backed store (PostgreSQL)
//! can stand in for sled without touching the runtime.

use crate::mail::Message;
use crate::record::{Batch, Completion, Outcome, Status, WorkflowRecord};
use crate::token_key::TokenKey;
use crate::Error;

/// What another writer of a shared journal committed that a workflow of this process
/// may be waiting for (see [`Store::changed_elsewhere`]).
///
/// ```
/// use ordo_journal::Elsewhere;
/// let change = Elsewhere::Mail("order-42".into());
/// assert_ne!(change, Elsewhere::Ended("order-42".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Elsewhere {
    /// Messages for this workflow.
    Mail(String),
    /// This workflow ended (succeeded, failed or was cancelled).
    Ended(String),
    /// An event of this workflow was set.
    Event(String),
    /// An awakeable of this workflow was resolved.
    Resolved(String),
    /// A worker gave back slots of a queue lane that every worker shares (see
    /// [`Store::admit`]): queued workflows held back by the lane's limits may start.
    Queue(String),
    /// Changes may have been missed (the store lost its connection for a while):
    /// everything should be looked at again.
    Missed,
}

/// A durable journal of workflow records and step completions.
///
/// Object safe: the runtime holds a `Box<dyn Store>`.
///
/// ```
/// use ordo_journal::{Batch, SledJournal, Status, Store, WorkflowRecord};
///
/// # fn main() -> Result<(), ordo_journal::Error> {
/// let store: Box<dyn Store> = Box::new(SledJournal::temporary()?);
/// let mut batch = Batch::new();
/// batch.put_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
/// store.commit(&batch)?;
/// assert_eq!(store.workflows(Some(Status::Pending))?.len(), 1);
/// assert_eq!(store.commit_count(), 1);
/// # Ok(()) }
/// ```
pub trait Store: Send + Sync {
    /// Applies the whole batch or none of it (also across a crash), then reaches the
    /// store's durability point once. An empty batch is a no-op and is not counted.
    ///
    /// Completions are append-only: within the batch and against what is recorded, each
    /// workflow's seqs must be distinct and greater than every seq already recorded for it
    /// (in any push order), or the whole batch is refused with
    /// [`Error::SeqOutOfOrder`].
    fn commit(&self, batch: &Batch) -> Result<(), Error>;

    /// The record of workflow `id`, if there is one.
    fn workflow(&self, id: &str) -> Result<Option<WorkflowRecord>, Error>;

    /// The records of workflows `ids`, in the order of `ids` (`None` where there is
    /// none; an id given twice is answered twice). A store whose every read is a round
    /// trip to a server answers them all in one; the default reads them one by one.
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Store, WorkflowRecord};
    ///
    /// # fn main() -> Result<(), ordo_journal::Error> {
    /// let store = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.put_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
    /// store.commit(&batch)?;
    /// let records = store.workflows_by_id(&["order-7", "order-42"])?;
    /// assert!(records[0].is_none());
    /// assert_eq!(records[1].as_ref().map(|r| r.name.as_str()), Some("checkout"));
    /// # Ok(()) }
    /// ```
    fn workflows_by_id(&self, ids: &[&str]) -> Result<Vec<Option<WorkflowRecord>>, Error> {
        ids.iter().map(|id| self.workflow(id)).collect()
    }

    /// Every completion of workflow `workflow_id`, in `seq` order.
    fn completions(&self, workflow_id: &str) -> Result<Vec<Completion>, Error>;

    /// Every workflow with `status` (found through the status index where the store
    /// keeps one for it, else by reading the records; never by reading completions), or
    /// every workflow if `None`; in id byte order.
    fn workflows(&self, status: Option<Status>) -> Result<Vec<WorkflowRecord>, Error>;

    /// The type name recorded for values with this fingerprint (see
    /// [`Batch::put_type`]), if any.
    fn type_name(&self, fingerprint: u64) -> Result<Option<String>, Error>;

    /// How many non-empty commits succeeded since this store was opened.
    fn commit_count(&self) -> u64;

    /// The key the runtime tags awakeable tokens with (see [`TokenKey`]), kept by the
    /// store for good. `None` (the default) for a store that keeps none: its workflows'
    /// tokens are plain ones, which anyone who knows a workflow's id can make up.
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// assert!(SledJournal::temporary()?.token_key().is_some());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn token_key(&self) -> Option<TokenKey> {
        None
    }

    /// The unconsumed messages sent to `destination`, of every topic, oldest (lowest
    /// number) first.
    fn messages(&self, destination: &str) -> Result<Vec<Message>, Error>;

    /// Whether a message with idempotency key `key` was ever stored for `destination`.
    fn message_key_used(&self, destination: &str, key: &str) -> Result<bool, Error>;

    /// The highest message number any committed batch gave (0 if none): the writer's
    /// next number must be greater.
    fn last_message_number(&self) -> Result<u64, Error>;

    /// The latest value of event `key` of workflow `workflow_id`.
    fn event(&self, workflow_id: &str, key: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Every event of workflow `workflow_id`, `(key, latest value)` in key byte order.
    fn events(&self, workflow_id: &str) -> Result<Vec<(String, Vec<u8>)>, Error>;

    /// The recorded resolution of the awakeable of step `step_id` of workflow
    /// `workflow_id`, if it was resolved.
    fn awakeable(&self, workflow_id: &str, step_id: u64) -> Result<Option<Outcome>, Error>;
    /// The W3C `traceparent` workflow `workflow_id` was started with (see
    /// [`Batch::put_trace_context`]), if it was given one.
    ///
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Store, WorkflowRecord};
    /// let store: Box<dyn Store> = Box::new(SledJournal::temporary()?);
    /// let mut batch = Batch::new();
    /// batch.insert_workflow(WorkflowRecord::new("traced", "checkout", vec![], 0));
    /// batch.put_trace_context("traced", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
    /// batch.insert_workflow(WorkflowRecord::new("untraced", "checkout", vec![], 0));
    /// store.commit(&batch)?;
    /// assert!(store.trace_context("traced")?.is_some_and(|t| t.contains("0af7651916cd43dd")));
    /// assert_eq!(store.trace_context("untraced")?, None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn trace_context(&self, workflow_id: &str) -> Result<Option<String>, Error>;

    /// The queue records whose key starts with `prefix`, in key order (see
    /// [`queue`](crate::queue)).
    fn queue_records(&self, prefix: &[u8]) -> Result<Vec<crate::queue::QueueRecord>, Error>;

    /// The pending workflows this process may drive now, made its own. A store with
    /// one writer (sled) gives every pending workflow; a store shared by many workers
    /// gives those that no live worker drives (unowned, owned by a worker whose lease
    /// expired, or already this worker's), and no two workers the same one.
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Store, WorkflowRecord};
    /// let store = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.insert_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
    /// store.commit(&batch)?;
    /// assert_eq!(store.claim_pending()?[0].id, "order-42");
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn claim_pending(&self) -> Result<Vec<WorkflowRecord>, Error> {
        self.workflows(Some(Status::Pending))
    }

    /// Makes pending (or queued: `Enqueued`, `Delayed`) workflow `id` this process's to
    /// drive, if no live worker drives it: `false` if another one does. A store with one
    /// writer always says `true`.
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// assert!(SledJournal::temporary()?.claim("order-42")?);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn claim(&self, id: &str) -> Result<bool, Error> {
        let _ = id;
        Ok(true)
    }

    /// The ids of the queued workflows (`Enqueued`, `Delayed`) that no live worker
    /// holds (their enqueuer died, or its lease ran out): what a worker may take over
    /// with [`Store::claim_queued`], if it declares their queues. A store with one
    /// writer gives none (the default): its runtime reads every queued workflow when it
    /// starts.
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// assert!(SledJournal::temporary()?.unheld_queued()?.is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn unheld_queued(&self) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    /// Makes those of queued workflows `ids` that no live worker holds this worker's,
    /// so it dispatches them, and returns their records; the others stay where they
    /// are. A store with one writer gives none (the default).
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// assert!(SledJournal::temporary()?.claim_queued(&["mail-7".into()])?.is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn claim_queued(&self, ids: &[String]) -> Result<Vec<WorkflowRecord>, Error> {
        let _ = ids;
        Ok(Vec::new())
    }

    /// Sets how many workflows of a queue lane this worker runs and takes slots for up
    /// to `want` more, under limits every worker of a shared store obeys together, in
    /// one atomic step; `None` (the default) on a store with one writer, whose runtime
    /// applies the limits itself. A shared store tells the other workers
    /// ([`Elsewhere::Queue`]) when this worker runs fewer than it did.
    ///
    /// ```
    /// use ordo_journal::queue::Admission;
    /// use ordo_journal::{SledJournal, Store};
    /// let store = SledJournal::temporary()?;
    /// let ask = Admission { lane: "q".into(), concurrency: Some(1), want: 3, ..Admission::default() };
    /// assert_eq!(store.admit(&ask)?, None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn admit(
        &self,
        admission: &crate::queue::Admission,
    ) -> Result<Option<crate::queue::Admitted>, Error> {
        let _ = admission;
        Ok(None)
    }

    /// On a store shared by many workers: makes workflow `id` the holder of queue
    /// record `key` (a deduplication id: its value is the holder's workflow id), at once
    /// and atomically across workers, unless another workflow holds it. That one holds
    /// it while its record is pending or queued, or, before its record is committed,
    /// while the worker that reserved it lives. Returns `None` when `id` holds it now,
    /// else the holder's id. A store with one writer (the default) returns `None`
    /// without writing: its runtime knows every holder itself, and writes the record in
    /// the commit of the enqueue.
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// let store = SledJournal::temporary()?;
    /// assert_eq!(store.reserve_queue_holder(b"d/emails/welcome-7", "email-1")?, None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn reserve_queue_holder(&self, key: &[u8], id: &str) -> Result<Option<String>, Error> {
        let _ = (key, id);
        Ok(None)
    }

    /// Gives back a reservation [`Store::reserve_queue_holder`] made for workflow `id`
    /// whose record will never be committed (its enqueue was undone): queue record
    /// `key` goes if it still names `id` and no commit wrote it since. A store with one
    /// writer does nothing (the default).
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// SledJournal::temporary()?.release_queue_holder(b"d/emails/welcome-7", "email-1")?;
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn release_queue_holder(&self, key: &[u8], id: &str) -> Result<(), Error> {
        let _ = (key, id);
        Ok(())
    }

    /// On a store shared by many workers: if queue record `key` holds `expected`
    /// (`None`: no record) now, makes `writes` (puts `Some`, deletes `None`, each key at
    /// most once) at once, in one transaction ordered with every other swap of `key` on
    /// any worker; if it holds something else, writes nothing and says what it holds.
    /// A store with one writer returns `None` without writing (the default): its
    /// runtime keeps such records itself and writes them with its commits.
    ///
    /// It is what a record that workers change at any time, outside any commit, needs
    /// (a debounced call: each call of any worker updates it, and one worker fires it).
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// let store = SledJournal::temporary()?;
    /// let writes = [(b"b/reindex".to_vec(), Some(b"round 1".to_vec()))];
    /// assert_eq!(store.swap_queue_record(b"b/reindex", None, &writes)?, None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn swap_queue_record(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<Option<crate::queue::Swap>, Error> {
        let _ = (key, expected, writes);
        Ok(None)
    }

    /// The ids of the new workflow records ([`Batch::insert_workflow`]: starts,
    /// enqueues) of the last [`Store::commit`] that were not written because another
    /// writer of a shared store had already written a record under that id; each is
    /// reported once. The rest of the commit is written. A store with one writer
    /// refuses none (the default): its runtime checks ids itself before it starts.
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Store, WorkflowRecord};
    /// let store = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.insert_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
    /// store.commit(&batch)?;
    /// assert!(store.refused_starts().is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn refused_starts(&self) -> Vec<String> {
        Vec::new()
    }

    /// Reserves `count` message numbers for this process alone and returns the first,
    /// on a store shared by many writers (so two workers never number two messages
    /// alike); `None` (the default) on a store with one writer, whose runtime numbers
    /// messages after [`Store::last_message_number`] itself.
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// assert_eq!(SledJournal::temporary()?.reserve_message_numbers(1_000)?, None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn reserve_message_numbers(&self, count: u64) -> Result<Option<u64>, Error> {
        let _ = count;
        Ok(None)
    }

    /// Asks the store to call `wake` whenever another writer commits something a
    /// workflow of this process may wait for; [`Store::changed_elsewhere`] then says
    /// what. A store with one writer never calls it (the default does nothing).
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// let store = SledJournal::temporary()?;
    /// store.on_change(Box::new(|| {}));
    /// assert!(store.changed_elsewhere().is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn on_change(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = wake;
    }

    /// What other writers committed since the last call (see [`Store::on_change`]),
    /// each once.
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// assert!(SledJournal::temporary()?.changed_elsewhere().is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn changed_elsewhere(&self) -> Vec<Elsewhere> {
        Vec::new()
    }

    /// How often a runtime on this store should claim again, to take over the workflows
    /// of workers that died; `None` (the default) for a store with one writer.
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// assert_eq!(SledJournal::temporary()?.takeover_interval(), None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn takeover_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// The most workflows a runtime's group commit should serve on this store, when the
    /// store has a bound of its own; `None` (the default): the runtime's, 512 workflows,
    /// which bounds what sled keeps per entry a commit writes until the commit ends.
    /// A store without such a cost per entry may take more: fewer, larger commits are
    /// faster where each one is a round trip and a sync.
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// assert_eq!(SledJournal::temporary()?.max_commit_workflows(), None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    fn max_commit_workflows(&self) -> Option<usize> {
        None
    }
}
