//! The runtime's one error type.

/// Everything that can go wrong in the durable runtime.
///
/// Each variant names what failed (workflow id, step id, workflow name, journal path),
/// so a message read in a log is enough to find the record involved. Journal errors
/// convert into [`Error::Journal`] with `?`.
///
/// ```
/// use ordo::Error;
///
/// let err = Error::NonDeterminism {
///     workflow_id: "order-42".into(),
///     step_id: 3,
///     recorded: "charge".into(),
///     found: "charge-card".into(),
/// };
/// assert!(err.to_string().contains("order-42"));
/// assert!(err.to_string().contains("charge-card"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The journal failed: locked by another process, corrupt, unsupported version, I/O.
    ///
    /// Shared behind an `Arc` so the error can reach every handle of a workflow.
    #[error(transparent)]
    Journal(std::sync::Arc<ordo_journal::Error>),

    /// No workflow is registered under this name.
    #[error("no workflow is registered under the name {name:?}")]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
    },

    /// No workflow with this id exists in the journal.
    #[error("no workflow with id {workflow_id:?} exists in the journal")]
    NotFound {
        /// The id asked for.
        workflow_id: String,
    },

    /// A workflow with this id already exists under another name.
    #[error("workflow {workflow_id:?} already exists as {existing:?}, not {requested:?}")]
    Conflict {
        /// The id both starts used.
        workflow_id: String,
        /// The name recorded in the journal.
        existing: String,
        /// The name this start asked for.
        requested: String,
    },

    /// Replay diverged from the journal: the workflow's code no longer makes the
    /// decisions it made when the journal was written. The journal is left untouched,
    /// so the workflow can still be recovered by a binary with the original code.
    #[error(
        "non-deterministic replay of workflow {workflow_id:?} at step {step_id}: \
         the journal recorded {recorded:?}, the code now has {found:?}"
    )]
    NonDeterminism {
        /// The workflow being replayed.
        workflow_id: String,
        /// The step id (call-site number) where the divergence was found.
        step_id: u64,
        /// What the journal recorded at that step (its step name).
        recorded: String,
        /// What the code did instead (another step name, or a description such as
        /// "no step with this id was created").
        found: String,
    },

    /// Recorded bytes do not decode as the type the code now expects (a workflow's
    /// input or output, or a step's outcome), typically after a change of types: every
    /// recorded value carries its type's fingerprint, checked on every read.
    #[error(
        "type mismatch in workflow {workflow_id:?}, {what}: the journal recorded {recorded}, \
         the code reads {expected}: {detail}"
    )]
    TypeMismatch {
        /// The workflow whose data did not decode.
        workflow_id: String,
        /// Which value: "input", "output", "step 3 (\"charge\")"...
        what: String,
        /// The Rust type the code expected.
        expected: &'static str,
        /// The type the journal recorded the value as (its name, when known).
        recorded: String,
        /// What did not match.
        detail: String,
    },

    /// A value could not be encoded for the journal.
    #[error("could not encode {what} of workflow {workflow_id:?}: {detail}")]
    Encode {
        /// The workflow whose value failed to encode.
        workflow_id: String,
        /// Which value.
        what: String,
        /// The encoder's message.
        detail: String,
    },

    /// The workflow (or one of its step bodies) panicked. It stays `Pending` in the
    /// journal, so a fixed binary can resume it with `recover()`. The outcomes of its
    /// steps whose bodies had returned before the panic are recorded, in a commit of
    /// their own: the resumed run replays them rather than running those bodies again.
    #[error("workflow {workflow_id:?} panicked: {message}")]
    Panicked {
        /// The workflow that panicked.
        workflow_id: String,
        /// The panic message.
        message: String,
    },

    /// The workflow was left `Pending` after too many recovery attempts; it is not
    /// resumed any more until its record is repaired by hand.
    #[error(
        "workflow {workflow_id:?} was not resumed: {attempts} recovery attempts (limit {limit})"
    )]
    RecoveryExhausted {
        /// The workflow.
        workflow_id: String,
        /// Attempts recorded.
        attempts: u32,
        /// The runtime's limit.
        limit: u32,
    },

    /// The workflow is recorded as cancelled.
    #[error("workflow {workflow_id:?} was cancelled")]
    Cancelled {
        /// The workflow.
        workflow_id: String,
    },

    /// The workflow's deadline ([`StartOptions::timeout`](crate::StartOptions::timeout),
    /// [`ChildOptions::timeout`](crate::ChildOptions::timeout), or its parent's) passed
    /// before it returned, and it was cancelled: its status is `Cancelled`, as after
    /// [`Runtime::cancel`](crate::Runtime::cancel).
    #[error(
        "workflow {workflow_id:?} was cancelled at its deadline ({deadline_ms} ms since the \
         UNIX epoch)"
    )]
    DeadlineExceeded {
        /// The workflow.
        workflow_id: String,
        /// Its deadline, in milliseconds since the UNIX epoch on the runtime's clock.
        deadline_ms: u64,
    },

    /// [`Runtime::resume`](crate::Runtime::resume) of a workflow that finished: only a
    /// cancelled workflow or a pending one (one that exhausted its recovery attempts,
    /// say) can be resumed. Fork it instead to run it again.
    #[error(
        "workflow {workflow_id:?} is {status} and cannot be resumed: only a cancelled or \
         pending workflow can (fork it to run it again)"
    )]
    NotResumable {
        /// The workflow.
        workflow_id: String,
        /// Its recorded status.
        status: ordo_journal::Status,
    },

    /// [`Runtime::fork`](crate::Runtime::fork) at a seq past the original's recorded
    /// completions.
    #[error(
        "cannot fork workflow {workflow_id:?} at seq {at_seq}: it has {recorded} recorded \
         completions (fork points are 0..={recorded})"
    )]
    ForkPointOutOfRange {
        /// The workflow to fork.
        workflow_id: String,
        /// The fork point asked for.
        at_seq: u64,
        /// How many completions it has recorded.
        recorded: u64,
    },

    /// A new workflow (a fork) was given the id of one that exists.
    #[error("a workflow with id {workflow_id:?} already exists")]
    AlreadyExists {
        /// The id asked for.
        workflow_id: String,
    },

    /// The runtime stopped (it was dropped, or halted on purpose) before the workflow
    /// finished; the workflow stays `Pending` in the journal.
    #[error("the runtime stopped before workflow {workflow_id:?} finished")]
    Stopped {
        /// The workflow.
        workflow_id: String,
    },

    /// A message was sent to a workflow id that has no record (nor a start under way).
    #[error("cannot send to workflow {workflow_id:?}: no workflow with this id exists")]
    UnknownDestination {
        /// The destination asked for.
        workflow_id: String,
    },

    /// An awakeable token that no workflow gave out (malformed, or of a workflow that
    /// does not exist).
    #[error("unknown awakeable token {token:?}: {reason}")]
    UnknownAwakeable {
        /// The token as given.
        token: String,
        /// Why it is not one.
        reason: String,
    },

    /// An awakeable that was already resolved: the first resolution stands.
    #[error("awakeable {token:?} was already resolved")]
    AwakeableResolved {
        /// The token as given.
        token: String,
    },

    /// A [`Client`](crate::Client) whose runtime was dropped: nothing it asked for
    /// after that point happened.
    #[error("the runtime this client talks to is gone (dropped)")]
    RuntimeGone,
    /// A trace context given at start is not a W3C `traceparent`
    /// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase, ids not all
    /// zero). Nothing was started.
    #[error("invalid W3C traceparent {traceparent:?}: {reason}")]
    InvalidTraceParent {
        /// The value given.
        traceparent: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A queue no [`RuntimeBuilder::queue`](crate::RuntimeBuilder::queue) declared.
    #[error("unknown queue {queue:?}: declare it with RuntimeBuilder::queue")]
    UnknownQueue {
        /// The queue asked for.
        queue: String,
    },

    /// An enqueue's options do not fit its queue (a priority in a queue without
    /// priorities, a partition key missing or unexpected). Nothing was enqueued.
    #[error("cannot enqueue in queue {queue:?}: {reason}")]
    QueueOption {
        /// The queue.
        queue: String,
        /// What does not fit.
        reason: String,
    },

    /// An enqueue whose deduplication id is held by a workflow that has not finished.
    #[error(
        "queue {queue:?} already holds deduplication id {dedup_id:?} (workflow {workflow_id:?})"
    )]
    Duplicate {
        /// The queue.
        queue: String,
        /// The deduplication id.
        dedup_id: String,
        /// The workflow that holds it.
        workflow_id: String,
    },

    /// A schedule whose cron expression does not parse.
    #[error("invalid schedule {schedule:?}: {reason}")]
    InvalidSchedule {
        /// The schedule's name.
        schedule: String,
        /// Why it does not parse.
        reason: String,
    },

    /// The dashboard ([`RuntimeBuilder::dashboard`](crate::RuntimeBuilder::dashboard))
    /// could not be set up: an address it refuses or cannot bind, a token it cannot use.
    /// Nothing was started.
    #[error("dashboard at {addr}: {reason}")]
    Dashboard {
        /// The address asked for.
        addr: String,
        /// What is wrong.
        reason: String,
    },

    /// The admin socket (see the `admin` module) could not be set up in the journal's
    /// folder: a path too long for a Unix socket, a file of another kind in its place,
    /// permissions. `RuntimeBuilder::admin_socket(false)` runs without one.
    #[error("cannot serve the admin socket at {}: {detail}", path.display())]
    AdminSocket {
        /// Where the socket was to be.
        path: std::path::PathBuf,
        /// What failed.
        detail: String,
    },
}

impl From<ordo_journal::Error> for Error {
    fn from(err: ordo_journal::Error) -> Self {
        Error::Journal(std::sync::Arc::new(err))
    }
}

/// `Result` with the runtime's [`Error`].
///
/// ```
/// fn open() -> ordo::Result<ordo::Runtime> {
///     ordo::Runtime::builder().temporary().build()
/// }
/// assert!(open().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
