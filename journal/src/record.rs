//! What the journal stores: workflow records, step completions, and the batch that
//! commits them together.
//!
//! These are plain values; how they are laid out on disk is [`key`](crate::key) and
//! [`codec`](crate::codec)'s business.

use std::fmt;
use std::str::FromStr;

/// Where a workflow is in its life.
///
/// ```
/// use ordo_journal::Status;
///
/// assert_eq!(Status::Succeeded.to_string(), "succeeded");
/// assert_eq!("pending".parse::<Status>(), Ok(Status::Pending));
/// assert!("done".parse::<Status>().is_err());
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Status {
    /// Started and not finished: recovery replays it.
    Pending,
    /// Returned `Ok`; its output is recorded.
    Succeeded,
    /// Returned `Err`; its error is recorded and recovery leaves it alone.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
    /// Waiting in a queue for a free slot (see the runtime's queues): recovery does not
    /// run it; the queue starts it.
    Enqueued,
    /// Waiting in a queue until its delay has passed; then `Enqueued`.
    Delayed,
}

impl Status {
    /// Every status, in the order of their index byte.
    ///
    /// ```
    /// use ordo_journal::Status;
    /// assert_eq!(Status::ALL.len(), 6);
    /// assert_eq!(Status::ALL[0], Status::Pending);
    /// ```
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Succeeded,
        Status::Failed,
        Status::Cancelled,
        Status::Enqueued,
        Status::Delayed,
    ];

    /// Whether a workflow with this status has ended for good (succeeded, failed or
    /// cancelled): it runs no more unless resumed.
    ///
    /// ```
    /// use ordo_journal::Status;
    /// assert!(Status::Cancelled.is_finished());
    /// assert!(!Status::Enqueued.is_finished());
    /// ```
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }

    /// The lowercase name used by `Display` and `FromStr`.
    ///
    /// ```
    /// assert_eq!(ordo_journal::Status::Cancelled.as_str(), "cancelled");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Enqueued => "enqueued",
            Status::Delayed => "delayed",
        }
    }

    /// The byte that stands for this status in status-index keys (part of the on-disk
    /// format: never renumber).
    pub(crate) fn index_byte(self) -> u8 {
        match self {
            Status::Pending => 0,
            Status::Succeeded => 1,
            Status::Failed => 2,
            Status::Cancelled => 3,
            Status::Enqueued => 4,
            Status::Delayed => 5,
        }
    }

    /// The inverse of [`Status::index_byte`].
    pub(crate) fn from_index_byte(byte: u8) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.index_byte() == byte)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Status`] from a string that names none.
///
/// ```
/// use ordo_journal::{ParseStatusError, Status};
/// let err = "done".parse::<Status>().unwrap_err();
/// assert_eq!(err, ParseStatusError("done".into()));
/// assert!(err.to_string().contains("expected pending, succeeded, failed, cancelled, enqueued or delayed"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown workflow status {0:?} (expected pending, succeeded, failed, cancelled, enqueued or delayed)")]
pub struct ParseStatusError(pub String);

impl FromStr for Status {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

/// A recorded result: the encoded `Ok` value or the encoded `Err` value.
///
/// The journal does not interpret the bytes; an `Err` is recorded and replayed exactly
/// like an `Ok`.
///
/// ```
/// use ordo_journal::Outcome;
///
/// let out = Outcome::Err(b"card declined".to_vec());
/// assert!(!out.is_ok());
/// assert_eq!(out.bytes(), b"card declined");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The encoded success value.
    Ok(Vec<u8>),
    /// The encoded error value.
    Err(Vec<u8>),
}

impl Outcome {
    /// Whether this is an `Ok` outcome.
    ///
    /// ```
    /// assert!(ordo_journal::Outcome::Ok(vec![]).is_ok());
    /// ```
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    /// The encoded bytes, whichever side they are on.
    ///
    /// ```
    /// assert_eq!(ordo_journal::Outcome::Err(vec![7]).bytes(), [7]);
    /// ```
    pub fn bytes(&self) -> &[u8] {
        match self {
            Outcome::Ok(bytes) | Outcome::Err(bytes) => bytes,
        }
    }

    /// Converts into a `Result` of the encoded bytes.
    ///
    /// ```
    /// use ordo_journal::Outcome;
    ///
    /// assert_eq!(Outcome::Ok(vec![1]).into_result(), Ok(vec![1]));
    /// ```
    pub fn into_result(self) -> Result<Vec<u8>, Vec<u8>> {
        match self {
            Outcome::Ok(bytes) => Ok(bytes),
            Outcome::Err(bytes) => Err(bytes),
        }
    }
}

impl From<Result<Vec<u8>, Vec<u8>>> for Outcome {
    fn from(result: Result<Vec<u8>, Vec<u8>>) -> Self {
        match result {
            Ok(bytes) => Outcome::Ok(bytes),
            Err(bytes) => Outcome::Err(bytes),
        }
    }
}

/// One workflow: what it is, what it was given, and where it stands.
///
/// ```
/// use ordo_journal::{Status, WorkflowRecord};
///
/// let rec = WorkflowRecord::new("order-42", "checkout", b"{}".to_vec(), 1_700_000_000_000);
/// assert_eq!(rec.status, Status::Pending);
/// assert_eq!(rec.updated_ms, rec.created_ms);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRecord {
    /// The workflow's id, unique in the journal (at most 65,535 bytes).
    pub id: String,
    /// The registered workflow name, so recovery can find its function.
    pub name: String,
    /// The encoded input.
    pub input: Vec<u8>,
    /// Where the workflow stands ([`Store::workflows`](crate::Store::workflows) lists by
    /// it).
    pub status: Status,
    /// The encoded output or error, once finished.
    pub output: Option<Outcome>,
    /// When the workflow was started, in milliseconds since the UNIX epoch.
    pub created_ms: u64,
    /// When this record was last written, in milliseconds since the UNIX epoch.
    pub updated_ms: u64,
    /// How many times recovery has resumed it (capped by the runtime).
    pub recovery_attempts: u32,
    /// The version of the application that started the workflow, as given to the
    /// runtime's builder (`RuntimeBuilder::app_version`); `None` when none was given,
    /// and for records written before schema version 3, which had no such field.
    /// On the wire older records simply end before it.
    pub app_version: Option<String>,
    /// The workflow's deadline, in milliseconds since the UNIX epoch on the runtime's
    /// clock: past it, the runtime cancels the workflow (`StartOptions::timeout`).
    /// `None` for a workflow without one, and for records written before schema
    /// version 4, which had no such field.
    pub deadline_ms: Option<u64>,
    /// The id of the first step of the workflow's current run: 0 for its first run;
    /// a run that continues as new (`Ctx::continue_as_new`) hands on the number of steps
    /// it created, so no step id (nor a child id or an awakeable token named after one)
    /// of an earlier run is used again. 0 for records written before schema version 9.
    pub first_step: u64,
    /// Whether the awakeable tokens of this workflow carry a tag of the journal's
    /// [`TokenKey`](crate::TokenKey), so that nobody makes one up: true for every
    /// workflow recorded since schema version 9 ([`WorkflowRecord::new`]); false for
    /// records written before, whose workflows may have handed out tokens of the plain
    /// kind already, which stay valid (until the workflow continues as new: its next
    /// run's tokens are keyed). Last in the struct as on the wire.
    pub keyed_tokens: bool,
}

impl WorkflowRecord {
    /// A `Pending` record with no output, created and updated at `now_ms`.
    ///
    /// ```
    /// use ordo_journal::{Status, WorkflowRecord};
    /// let rec = WorkflowRecord::new("order-42", "checkout", b"input".to_vec(), 1_000);
    /// assert_eq!((rec.status, rec.created_ms, rec.updated_ms), (Status::Pending, 1_000, 1_000));
    /// assert_eq!(rec.output, None);
    /// ```
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        input: Vec<u8>,
        now_ms: u64,
    ) -> Self {
        WorkflowRecord {
            id: id.into(),
            name: name.into(),
            input,
            status: Status::Pending,
            output: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            recovery_attempts: 0,
            app_version: None,
            deadline_ms: None,
            first_step: 0,
            keyed_tokens: true,
        }
    }
}

/// One delivered step outcome of one workflow (the workflow id is the key it is stored
/// under, see [`Batch::push_completion`]).
///
/// ```
/// use ordo_journal::{Completion, Outcome};
///
/// let c = Completion {
///     seq: 0, step_id: 2, name: "charge".into(), outcome: Outcome::Ok(vec![7]),
///     attempts: 1, started_ms: 10, ended_ms: 12,
/// };
/// assert!(c.outcome.is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Delivery order within the workflow: 0, 1, 2... Replay delivers in this order.
    pub seq: u64,
    /// The call-site step number, taken when the step was created.
    pub step_id: u64,
    /// The step's name, compared on replay to detect non-determinism.
    pub name: String,
    /// The recorded result.
    pub outcome: Outcome,
    /// How many attempts produced the outcome (1 without retries).
    pub attempts: u32,
    /// When the first attempt started, in milliseconds since the UNIX epoch.
    pub started_ms: u64,
    /// When the last attempt ended, in milliseconds since the UNIX epoch.
    pub ended_ms: u64,
}

/// What a batch knows about a workflow's status before the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prior {
    /// Nothing: every other status's index entry is removed blindly.
    Unknown,
    /// The workflow has no record yet.
    Absent,
    /// The record had this status.
    Was(Status),
    /// A queued workflow's start ([`Batch::start_queued`]): the stored record, `Enqueued`
    /// or `Delayed`, is this one but for its status and `updated_ms`.
    Queued,
}

/// Everything one group commit writes: workflow upserts and completions of any number of
/// workflows, applied all or nothing by [`Store::commit`](crate::Store::commit).
///
/// A batch can be cleared and reused so its vectors keep their capacity.
///
/// ```
/// use ordo_journal::{Batch, Completion, Outcome, WorkflowRecord};
///
/// let mut batch = Batch::new();
/// batch.put_workflow(WorkflowRecord::new("a", "flow", vec![], 0));
/// batch.push_completion("a", Completion {
///     seq: 0, step_id: 0, name: "s".into(), outcome: Outcome::Ok(vec![]),
///     attempts: 1, started_ms: 0, ended_ms: 0,
/// });
/// assert_eq!(batch.completion_count(), 1);
/// batch.clear();
/// assert!(batch.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Whole records, not field updates: a status change rewrites the record and its
    /// status-index entry in the same commit.
    pub(crate) workflows: Vec<WorkflowRecord>,
    /// What the writer knows of each record's status before this batch (same index as
    /// `workflows`): it spares the status index the blind removal of every other status
    /// (sled costs microseconds per entry, and a start is one of ten thousand).
    pub(crate) priors: Vec<Prior>,
    /// `(workflow id, completion)` pairs in push order.
    pub(crate) completions: Vec<(String, Completion)>,
    /// `(fingerprint, type name)` of value types to name in the journal's type table.
    pub(crate) types: Vec<(u64, String)>,
    /// Workflows whose recorded completions this batch removes (continue-as-new), before
    /// it adds any of its own completions of them.
    pub(crate) resets: Vec<String>,
    /// Messages, events and awakeable resolutions (see [`mail`](crate::mail)).
    pub(crate) mail: crate::mail::Mail,
    /// `(workflow id, traceparent)` of workflows started with a trace context; empty for
    /// every start without one, which so costs nothing more.
    pub(crate) trace_contexts: Vec<(String, String)>,
    /// Workflows this batch deletes entirely (retention), before it writes anything else.
    pub(crate) deletes: Vec<String>,
    /// What the writer knows of each deleted workflow's status (same index as
    /// `deletes`): with it, the store removes that status's index entry without reading
    /// the record first.
    pub(crate) delete_priors: Vec<Prior>,
    /// Queue records put (`Some`) or deleted (`None`), in order (see [`queue`](crate::queue)).
    pub(crate) queue: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    /// An empty batch.
    ///
    /// ```
    /// assert!(ordo_journal::Batch::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Batch::default()
    }

    /// An empty batch with room for `completions` completions, for a writer that knows
    /// how many it will push (a group commit does): no regrowing as they are pushed.
    ///
    /// ```
    /// use ordo_journal::{Batch, Completion, Outcome};
    /// let mut batch = Batch::with_completion_capacity(2);
    /// for seq in 0..2 {
    ///     let step = Completion {
    ///         seq, step_id: seq, name: "charge".into(), outcome: Outcome::Ok(vec![7]),
    ///         attempts: 1, started_ms: 10, ended_ms: 12,
    ///     };
    ///     batch.push_completion("order-42", step);
    /// }
    /// assert_eq!(batch.completion_count(), 2);
    /// ```
    pub fn with_completion_capacity(completions: usize) -> Self {
        Batch {
            completions: Vec::with_capacity(completions),
            ..Batch::default()
        }
    }

    /// Writes (inserts or replaces) a workflow record. If the same id is put twice, the
    /// later record wins.
    ///
    /// ```
    /// use ordo_journal::{Batch, WorkflowRecord};
    /// let mut batch = Batch::new();
    /// batch.put_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
    /// assert_eq!(batch.workflow_count(), 1);
    /// assert_eq!(batch.workflows()[0].id, "order-42");
    /// ```
    pub fn put_workflow(&mut self, rec: WorkflowRecord) {
        self.workflows.push(rec);
        self.priors.push(Prior::Unknown);
    }

    /// Writes the record of a workflow that has none yet (a start): like
    /// [`Batch::put_workflow`], but cheaper, since no other status can be indexed. The
    /// caller promises the id is new; a put of the same id earlier in the batch is fine.
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Status, Store, WorkflowRecord};
    /// let journal = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.insert_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.workflows(Some(Status::Pending))?.len(), 1);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn insert_workflow(&mut self, rec: WorkflowRecord) {
        self.workflows.push(rec);
        self.priors.push(Prior::Absent);
    }

    /// Rewrites a record whose status is `previous` now (or earlier in this batch): only
    /// that status's index entry moves.
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Status, Store, WorkflowRecord};
    /// let journal = SledJournal::temporary()?;
    /// let mut record = WorkflowRecord::new("order-42", "checkout", vec![], 0);
    /// let mut batch = Batch::new();
    /// batch.insert_workflow(record.clone());
    /// record.status = Status::Cancelled;
    /// batch.update_workflow(record, Status::Pending);
    /// journal.commit(&batch)?;
    /// assert!(journal.workflows(Some(Status::Pending))?.is_empty());
    /// assert_eq!(journal.workflows(Some(Status::Cancelled))?.len(), 1);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn update_workflow(&mut self, rec: WorkflowRecord, previous: Status) {
        self.workflows.push(rec);
        self.priors.push(Prior::Was(previous));
    }

    /// Starts a queued workflow: `rec` is its record as stored (`Enqueued` or `Delayed`)
    /// but for its status, `Pending` now, and `updated_ms`, the start time. A store may
    /// keep the stored record and mark it started rather than rewrite it (sled does:
    /// one entry instead of two); every read reports it `Pending` from then on.
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Status, Store, WorkflowRecord};
    /// let journal = SledJournal::temporary()?;
    /// let mut record = WorkflowRecord::new("report-1", "report", vec![], 0);
    /// record.status = Status::Enqueued;
    /// let mut batch = Batch::new();
    /// batch.insert_workflow(record.clone());
    /// journal.commit(&batch)?;
    /// record.status = Status::Pending;
    /// record.updated_ms = 5;
    /// let mut batch = Batch::new();
    /// batch.start_queued(record.clone());
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.workflow("report-1")?, Some(record));
    /// assert_eq!(journal.workflows(Some(Status::Pending))?.len(), 1);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn start_queued(&mut self, rec: WorkflowRecord) {
        debug_assert_eq!(rec.status, Status::Pending);
        self.workflows.push(rec);
        self.priors.push(Prior::Queued);
    }

    /// Adds one completion of workflow `workflow_id`, stored under its `seq`.
    ///
    /// ```
    /// use ordo_journal::{Batch, Completion, Outcome};
    /// let step = Completion {
    ///     seq: 0,
    ///     step_id: 0,
    ///     name: "reserve".into(),
    ///     outcome: Outcome::Ok(vec![1]),
    ///     attempts: 1,
    ///     started_ms: 0,
    ///     ended_ms: 5,
    /// };
    /// let mut batch = Batch::new();
    /// batch.push_completion("order-42", step.clone());
    /// assert_eq!(batch.completion_count(), 1);
    /// assert_eq!(batch.completions()[0], ("order-42".to_string(), step));
    /// ```
    pub fn push_completion(&mut self, workflow_id: &str, c: Completion) {
        self.completions.push((workflow_id.to_owned(), c));
    }

    /// Whether the batch writes nothing.
    ///
    /// ```
    /// use ordo_journal::{Batch, WorkflowRecord};
    /// let mut batch = Batch::new();
    /// assert!(batch.is_empty());
    /// batch.put_workflow(WorkflowRecord::new("w", "n", vec![], 0));
    /// assert!(!batch.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.workflows.is_empty()
            && self.completions.is_empty()
            && self.types.is_empty()
            && self.resets.is_empty()
            && self.mail.is_empty()
            && self.trace_contexts.is_empty()
            && self.deletes.is_empty()
            && self.queue.is_empty()
    }

    /// Names the type whose values carry `fingerprint` (the runtime puts one before every
    /// value it stores), so an error can name a recorded type that the code reading it
    /// no longer has. Naming a fingerprint again replaces the name.
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Store};
    /// let journal = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.put_type(0x1234, "shop::Receipt".into());
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.type_name(0x1234)?.as_deref(), Some("shop::Receipt"));
    /// assert_eq!(journal.type_name(0x9999)?, None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn put_type(&mut self, fingerprint: u64, name: String) {
        self.types.push((fingerprint, name));
    }

    /// Records the W3C `traceparent` workflow `workflow_id` was started with, so a run
    /// recovered after a crash continues the caller's trace. Written in the same commit
    /// as the start (put both in one batch); a later put for the same id replaces it.
    /// The journal stores the string as given: checking its format is the caller's job.
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Store, WorkflowRecord};
    /// let journal = SledJournal::temporary()?;
    /// let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// let mut batch = Batch::new();
    /// batch.insert_workflow(WorkflowRecord::new("order-42", "checkout", vec![], 0));
    /// batch.put_trace_context("order-42", traceparent.to_string());
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.trace_context("order-42")?.as_deref(), Some(traceparent));
    /// assert_eq!(batch.trace_contexts()[0].0, "order-42");
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn put_trace_context(&mut self, workflow_id: &str, traceparent: String) {
        self.trace_contexts
            .push((workflow_id.to_owned(), traceparent));
    }

    /// The `(workflow id, traceparent)` pairs of [`Batch::put_trace_context`], in put
    /// order.
    ///
    /// ```
    /// let mut batch = ordo_journal::Batch::new();
    /// assert!(batch.trace_contexts().is_empty());
    /// batch.put_trace_context("w", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    /// assert_eq!(batch.trace_contexts().len(), 1);
    /// ```
    pub fn trace_contexts(&self) -> &[(String, String)] {
        &self.trace_contexts
    }

    /// How many completions the batch holds.
    ///
    /// ```
    /// use ordo_journal::{Batch, Completion, Outcome};
    /// let step = Completion {
    ///     seq: 0,
    ///     step_id: 0,
    ///     name: "reserve".into(),
    ///     outcome: Outcome::Ok(vec![1]),
    ///     attempts: 1,
    ///     started_ms: 0,
    ///     ended_ms: 5,
    /// };
    /// let mut batch = Batch::new();
    /// batch.push_completion("order-42", step.clone());
    /// assert_eq!(batch.completion_count(), 1);
    /// ```
    pub fn completion_count(&self) -> usize {
        self.completions.len()
    }

    /// How many workflow records the batch writes.
    ///
    /// ```
    /// use ordo_journal::{Batch, WorkflowRecord};
    /// let mut batch = Batch::new();
    /// batch.put_workflow(WorkflowRecord::new("a", "checkout", vec![], 0));
    /// batch.put_workflow(WorkflowRecord::new("b", "checkout", vec![], 0));
    /// assert_eq!(batch.workflow_count(), 2);
    /// ```
    pub fn workflow_count(&self) -> usize {
        self.workflows.len()
    }

    /// The workflow records, in put order.
    ///
    /// ```
    /// use ordo_journal::{Batch, WorkflowRecord};
    /// let mut batch = Batch::new();
    /// batch.put_workflow(WorkflowRecord::new("a", "checkout", vec![], 0));
    /// assert_eq!(batch.workflows()[0].name, "checkout");
    /// ```
    pub fn workflows(&self) -> &[WorkflowRecord] {
        &self.workflows
    }

    /// The `(workflow id, completion)` pairs, in push order.
    ///
    /// ```
    /// use ordo_journal::{Batch, Completion, Outcome};
    /// let step = Completion {
    ///     seq: 0,
    ///     step_id: 0,
    ///     name: "reserve".into(),
    ///     outcome: Outcome::Ok(vec![1]),
    ///     attempts: 1,
    ///     started_ms: 0,
    ///     ended_ms: 5,
    /// };
    /// let mut batch = Batch::new();
    /// batch.push_completion("order-42", step.clone());
    /// assert_eq!(batch.completions()[0].0, "order-42");
    /// ```
    pub fn completions(&self) -> &[(String, Completion)] {
        &self.completions
    }

    /// Removes every recorded completion of `workflow_id`, before this batch adds any of
    /// its own for it: the workflow's history starts over at seq 0 (continue-as-new, so
    /// an endless workflow's journal stays bounded). Completions stay append-only
    /// otherwise.
    ///
    /// ```
    /// use ordo_journal::{Batch, Completion, Outcome, SledJournal, Store};
    /// let journal = SledJournal::temporary()?;
    /// let step = |seq| Completion { seq, step_id: seq, name: "poll".into(),
    ///     outcome: Outcome::Ok(vec![]), attempts: 1, started_ms: 0, ended_ms: 0 };
    /// let mut batch = Batch::new();
    /// batch.push_completion("poller", step(0));
    /// batch.push_completion("poller", step(1));
    /// journal.commit(&batch)?;
    /// let mut batch = Batch::new();
    /// batch.reset_completions("poller");
    /// batch.push_completion("poller", step(0));
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.completions("poller")?, vec![step(0)]);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn reset_completions(&mut self, workflow_id: &str) {
        self.resets.push(workflow_id.to_owned());
    }

    /// The workflows whose completions [`Batch::reset_completions`] removes.
    ///
    /// ```
    /// let mut batch = ordo_journal::Batch::new();
    /// batch.reset_completions("poller");
    /// assert_eq!(batch.resets(), ["poller"]);
    /// ```
    pub fn resets(&self) -> &[String] {
        &self.resets
    }

    /// Deletes workflow `workflow_id` entirely: its record, its status-index entry and
    /// every recorded completion (and every other record kind a store keeps per
    /// workflow). Retention uses it for finished workflows past their age. Deletions are
    /// applied before everything else in the batch, so a record or completion of the same
    /// id put in the same batch starts a new workflow. Deleting an id with no record is a
    /// no-op.
    ///
    /// Applied all or nothing with the rest of the batch: after a crash a workflow is
    /// either entirely there or entirely gone.
    ///
    /// ```
    /// use ordo_journal::{Batch, Completion, Outcome, SledJournal, Status, Store, WorkflowRecord};
    /// let journal = SledJournal::temporary()?;
    /// let mut record = WorkflowRecord::new("order-42", "checkout", vec![], 0);
    /// record.status = Status::Succeeded;
    /// let mut batch = Batch::new();
    /// batch.put_workflow(record);
    /// batch.push_completion("order-42", Completion { seq: 0, step_id: 0, name: "charge".into(),
    ///     outcome: Outcome::Ok(vec![]), attempts: 1, started_ms: 0, ended_ms: 0 });
    /// journal.commit(&batch)?;
    ///
    /// let mut batch = Batch::new();
    /// batch.delete_workflow("order-42");
    /// assert_eq!(batch.deletes(), ["order-42"]);
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.workflow("order-42")?, None);
    /// assert!(journal.completions("order-42")?.is_empty());
    /// assert!(journal.workflows(Some(Status::Succeeded))?.is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn delete_workflow(&mut self, workflow_id: &str) {
        self.deletes.push(workflow_id.to_owned());
        self.delete_priors.push(Prior::Unknown);
    }

    /// [`Batch::delete_workflow`] of a workflow whose record the caller has just read
    /// with status `status` (retention reads it to check that the workflow is still
    /// finished and old): the store then removes that status's index entry without
    /// reading the record again. The status must be the record's at commit time, as for
    /// [`Batch::update_workflow`]; a stale one would leave an index entry behind.
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Status, Store, WorkflowRecord};
    /// let journal = SledJournal::temporary()?;
    /// let mut record = WorkflowRecord::new("order-42", "checkout", vec![], 0);
    /// record.status = Status::Failed;
    /// let mut batch = Batch::new();
    /// batch.put_workflow(record);
    /// journal.commit(&batch)?;
    ///
    /// let mut batch = Batch::new();
    /// batch.delete_workflow_was("order-42", Status::Failed);
    /// assert_eq!(batch.deletes(), ["order-42"]);
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.workflow("order-42")?, None);
    /// assert!(journal.workflows(Some(Status::Failed))?.is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn delete_workflow_was(&mut self, workflow_id: &str, status: Status) {
        self.deletes.push(workflow_id.to_owned());
        self.delete_priors.push(Prior::Was(status));
    }

    /// The workflows [`Batch::delete_workflow`] and [`Batch::delete_workflow_was`]
    /// delete, in call order.
    ///
    /// ```
    /// let mut batch = ordo_journal::Batch::new();
    /// batch.delete_workflow("old");
    /// assert_eq!(batch.deletes(), ["old"]);
    /// assert!(!batch.is_empty());
    /// ```
    pub fn deletes(&self) -> &[String] {
        &self.deletes
    }

    /// The `(fingerprint, type name)` pairs of [`Batch::put_type`], in put order.
    ///
    /// ```
    /// let mut batch = ordo_journal::Batch::new();
    /// batch.put_type(7, "u32".into());
    /// assert_eq!(batch.types(), &[(7, "u32".to_string())]);
    /// ```
    pub fn types(&self) -> &[(u64, String)] {
        &self.types
    }

    /// Takes the batch apart: its workflow records and its `(workflow id, completion)`
    /// pairs, each in push order. A caller that must keep what it committed (the
    /// runtime hands committed completions to their workflows) takes them back
    /// instead of copying them into the batch.
    ///
    /// ```
    /// use ordo_journal::{Batch, Completion, Outcome, WorkflowRecord};
    /// let mut batch = Batch::new();
    /// batch.put_workflow(WorkflowRecord::new("a", "checkout", vec![], 0));
    /// let c = Completion { seq: 0, step_id: 3, name: "charge".into(), outcome: Outcome::Ok(vec![1]),
    ///                      attempts: 1, started_ms: 0, ended_ms: 1 };
    /// batch.push_completion("a", c.clone());
    /// let (workflows, completions) = batch.into_parts();
    /// assert_eq!(workflows[0].id, "a");
    /// assert_eq!(completions, vec![("a".to_string(), c)]);
    /// ```
    pub fn into_parts(self) -> (Vec<WorkflowRecord>, Vec<(String, Completion)>) {
        let _ = self.priors;
        (self.workflows, self.completions)
    }

    /// Empties the batch, keeping its allocations.
    ///
    /// ```
    /// use ordo_journal::{Batch, WorkflowRecord};
    /// let mut batch = Batch::new();
    /// batch.put_workflow(WorkflowRecord::new("a", "checkout", vec![], 0));
    /// batch.clear();
    /// assert!(batch.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.workflows.clear();
        self.priors.clear();
        self.types.clear();
        self.resets.clear();
        self.trace_contexts.clear();
        self.deletes.clear();
        self.delete_priors.clear();
        self.completions.clear();
        self.mail.clear();
        self.queue.clear();
    }
}
