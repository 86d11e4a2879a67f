//! What the read requests return, in the shapes `ordo list`, `ordo show` and
//! `ordo stats` print with `--json` (their field names are a stable interface), so the
//! CLI prints the same thing whether it read the journal itself or asked a running
//! application.

use ordo_journal::{Completion, Outcome, Status, WorkflowRecord};
use serde::{Deserialize, Serialize};

/// One workflow as `list` gives it: its record without the encoded values, and how many
/// completions it has.
///
/// ```
/// use ordo::{Status, WorkflowSummary};
/// let row: WorkflowSummary = serde_json::from_str(
///     r#"{"id":"o-1","name":"order","status":"pending","steps":2,
///        "created_ms":1,"updated_ms":2,"app_version":null}"#,
/// )?;
/// assert_eq!((row.status, row.steps), (Status::Pending, 2));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowSummary {
    /// The workflow id.
    pub id: String,
    /// The registered workflow name.
    pub name: String,
    /// `pending`, `succeeded`, `failed`, `cancelled`, `enqueued` or `delayed` in JSON.
    #[serde(with = "status_name")]
    pub status: Status,
    /// Completions recorded (steps, durable timers, messages received...).
    pub steps: u64,
    /// When the workflow was started, ms since the Unix epoch.
    pub created_ms: u64,
    /// When its record last changed, ms since the Unix epoch.
    pub updated_ms: u64,
    /// The version of the application that started it
    /// ([`RuntimeBuilder::app_version`](crate::RuntimeBuilder::app_version)), if known.
    pub app_version: Option<String>,
}

impl WorkflowSummary {
    /// The summary of `record`, which has `steps` completions.
    ///
    /// ```
    /// use ordo::journal::WorkflowRecord;
    /// let record = WorkflowRecord::new("o-1", "order", vec![1, 2, 3], 1_000);
    /// let row = ordo::WorkflowSummary::new(record, 4);
    /// assert_eq!((row.id.as_str(), row.steps, row.created_ms), ("o-1", 4, 1_000));
    /// ```
    pub fn new(record: WorkflowRecord, steps: u64) -> Self {
        WorkflowSummary {
            id: record.id,
            name: record.name,
            status: record.status,
            steps,
            created_ms: record.created_ms,
            updated_ms: record.updated_ms,
            app_version: record.app_version,
        }
    }
}

/// Counts of what a journal holds, as `stats` gives them.
///
/// ```
/// let stats = ordo::JournalStats::default();
/// assert_eq!(stats.workflows, stats.pending + stats.succeeded + stats.failed + stats.cancelled + stats.enqueued + stats.delayed);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JournalStats {
    /// Every workflow, whatever its status.
    pub workflows: u64,
    /// Started and not finished.
    pub pending: u64,
    /// Returned `Ok`.
    pub succeeded: u64,
    /// Returned `Err`.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Waiting in a queue.
    #[serde(default)]
    pub enqueued: u64,
    /// Waiting in a queue until their delay has passed.
    #[serde(default)]
    pub delayed: u64,
    /// Completions recorded across all workflows.
    pub completions: u64,
}

impl JournalStats {
    /// Counts one more workflow with `status` and `completions` completions.
    ///
    /// ```
    /// let mut stats = ordo::JournalStats::default();
    /// stats.count(ordo::Status::Failed, 3);
    /// assert_eq!((stats.workflows, stats.failed, stats.completions), (1, 1, 3));
    /// ```
    pub fn count(&mut self, status: Status, completions: u64) {
        self.workflows += 1;
        self.completions += completions;
        *match status {
            Status::Pending => &mut self.pending,
            Status::Succeeded => &mut self.succeeded,
            Status::Failed => &mut self.failed,
            Status::Cancelled => &mut self.cancelled,
            Status::Enqueued => &mut self.enqueued,
            Status::Delayed => &mut self.delayed,
        } += 1;
    }
}

/// A workflow's record and its step timeline in delivery order, as `show` gives them.
///
/// ```
/// use ordo::journal::WorkflowRecord;
/// let shown = ordo::admin::ShownWorkflow::new(WorkflowRecord::new("o-1", "order", vec![0; 3], 5), vec![]);
/// assert_eq!((shown.record.input_bytes, shown.steps.len()), (3, 0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShownWorkflow {
    /// The workflow record.
    pub record: ShownRecord,
    /// Its completions in delivery (`seq`) order.
    pub steps: Vec<ShownStep>,
}

impl ShownWorkflow {
    /// The view of `record` and its `completions` (in delivery order).
    ///
    /// See [`ShownWorkflow`] for an example.
    pub fn new(record: WorkflowRecord, completions: Vec<Completion>) -> Self {
        ShownWorkflow {
            record: ShownRecord::from(record),
            steps: completions.into_iter().map(ShownStep::from).collect(),
        }
    }
}

/// The workflow record, with encoded values reduced to their sizes.
///
/// ```
/// use ordo::journal::WorkflowRecord;
/// let record = ordo::admin::ShownRecord::from(WorkflowRecord::new("o-1", "order", vec![0; 3], 5));
/// assert_eq!((record.status, record.output), (ordo::Status::Pending, None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShownRecord {
    /// The workflow id.
    pub id: String,
    /// The registered workflow name.
    pub name: String,
    /// Its status (lowercase in JSON).
    #[serde(with = "status_name")]
    pub status: Status,
    /// When it was started, ms since the Unix epoch.
    pub created_ms: u64,
    /// When its record last changed, ms since the Unix epoch.
    pub updated_ms: u64,
    /// Times recovery resumed it without progress.
    pub recovery_attempts: u32,
    /// The version of the application that started it; `null` when unknown.
    pub app_version: Option<String>,
    /// Its deadline (ms since the UNIX epoch), past which the runtime cancels it;
    /// `null` when it has none.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// Size of the encoded input.
    pub input_bytes: usize,
    /// The recorded output or error; `null` while the workflow is pending.
    pub output: Option<ShownOutput>,
}

impl From<WorkflowRecord> for ShownRecord {
    fn from(r: WorkflowRecord) -> Self {
        ShownRecord {
            output: r.output.as_ref().map(ShownOutput::from),
            input_bytes: r.input.len(),
            id: r.id,
            name: r.name,
            status: r.status,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            recovery_attempts: r.recovery_attempts,
            app_version: r.app_version,
            deadline_ms: r.deadline_ms,
        }
    }
}

/// A recorded outcome: which side, and how big its encoding is.
///
/// ```
/// let out = ordo::admin::ShownOutput::from(&ordo::journal::Outcome::Err(vec![1, 2]));
/// assert_eq!((out.ok, out.bytes), (false, 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShownOutput {
    /// `true` for `Ok`, `false` for `Err`.
    pub ok: bool,
    /// Size of the encoded value.
    pub bytes: usize,
}

impl From<&Outcome> for ShownOutput {
    fn from(outcome: &Outcome) -> Self {
        ShownOutput {
            ok: outcome.is_ok(),
            bytes: outcome.bytes().len(),
        }
    }
}

/// One completion, with its value reduced to its size.
///
/// ```
/// use ordo::journal::{Completion, Outcome};
/// let step = ordo::admin::ShownStep::from(Completion {
///     seq: 0, step_id: 1, name: "charge".into(), outcome: Outcome::Ok(vec![7]),
///     attempts: 1, started_ms: 10, ended_ms: 12,
/// });
/// assert_eq!((step.seq, step.name.as_str(), step.ok, step.output_bytes), (0, "charge", true, 1));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShownStep {
    /// Delivery order, 0, 1, 2... per workflow: the unit `fork` takes.
    pub seq: u64,
    /// The call-site number the workflow gave the step.
    pub step_id: u64,
    /// The step's name.
    pub name: String,
    /// `true` if the step returned `Ok`.
    pub ok: bool,
    /// Attempts it took.
    pub attempts: u32,
    /// When its body started, ms since the Unix epoch.
    pub started_ms: u64,
    /// When it ended, ms since the Unix epoch.
    pub ended_ms: u64,
    /// Size of the encoded `Ok` or `Err` value.
    pub output_bytes: usize,
}

impl From<Completion> for ShownStep {
    fn from(c: Completion) -> Self {
        ShownStep {
            seq: c.seq,
            step_id: c.step_id,
            ok: c.outcome.is_ok(),
            output_bytes: c.outcome.bytes().len(),
            name: c.name,
            attempts: c.attempts,
            started_ms: c.started_ms,
            ended_ms: c.ended_ms,
        }
    }
}

/// A [`Status`] as its lowercase name in JSON (`"pending"`), as the CLI has always
/// printed it.
pub(crate) mod status_name {
    use ordo_journal::Status;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(status: &Status, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(status.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// An optional [`Status`] as its lowercase name in JSON, or `null`.
pub(crate) mod status_filter {
    use ordo_journal::Status;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        status: &Option<Status>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match status {
            Some(status) => s.serialize_str(status.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Status>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(name) => name.parse().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
