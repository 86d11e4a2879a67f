//! [`replay_journal`]: replay every workflow of a saved journal against the current
//! code, without running a step body, and report each divergence.
//!
//! A journal saved from production (or from the previous release's tests) holds what
//! the deployed code recorded. Replaying it against new code before deploying catches a
//! renamed step, a step added or removed before a recorded one, or a step whose value
//! type changed: what would stop those workflows with [`ordo::Error::NonDeterminism`] or
//! [`ordo::Error::TypeMismatch`] in production.
//!
//! The journal is read through [`SledJournal::open_existing`] (a private copy: the
//! folder is never written, and a running process may hold it). Writes of the replay go
//! to memory. Finished workflows are presented to the runtime as pending, so recovery
//! replays them too; a replay that wants a live step is stopped there (its body never
//! runs): for a pending workflow that is where the journal ends, for a finished one it
//! is a divergence.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::rc::Rc;
use std::task::{Poll, Waker};

use futures::future::{FutureExt, LocalBoxFuture};
use ordo::journal::{
    Batch, Completion, Error as JournalError, Message, Outcome, SledJournal, Status, Store,
    WorkflowRecord,
};
use ordo::{Clock, Runtime, RuntimeBuilder, StepInfo};

use crate::memory::MemoryJournal;
use crate::report::{Divergence, DivergenceKind, RunPoint};

/// What [`replay_journal`] found.
///
/// ```
/// let report = ordo_testkit::JournalReport::default();
/// assert!(report.is_clean());
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct JournalReport {
    /// Ids of the workflows that replayed without diverging: finished ones to their
    /// recorded result, pending ones up to their first step the journal does not hold.
    pub replayed: Vec<String>,
    /// Each workflow that diverged.
    pub divergences: Vec<Divergence>,
    /// `(id, name)` of workflows whose name the code no longer registers.
    pub unregistered: Vec<(String, String)>,
}

impl JournalReport {
    /// `true` when every workflow replayed.
    ///
    /// ```
    /// assert!(ordo_testkit::JournalReport::default().is_clean());
    /// ```
    pub fn is_clean(&self) -> bool {
        self.divergences.is_empty() && self.unregistered.is_empty()
    }

    /// # Panics
    ///
    /// Unless [`is_clean`](JournalReport::is_clean), with every divergence.
    ///
    /// ```
    /// ordo_testkit::JournalReport::default().assert_clean();
    /// ```
    pub fn assert_clean(&self) {
        if self.is_clean() {
            return;
        }
        let mut report = String::from("the saved journal does not replay:");
        for divergence in &self.divergences {
            report.push_str(&format!("\n- {divergence}"));
        }
        for (id, name) in &self.unregistered {
            report.push_str(&format!(
                "\n- workflow {id:?} is a {name:?}, which is not registered"
            ));
        }
        panic!("{report}");
    }
}

/// Replays every pending or finished workflow of the journal at `path` against the
/// workflows `register` registers, without running any step body, and reports each
/// divergence.
///
/// # Errors
///
/// When the journal cannot be read: [`ordo::journal::Error::NotFound`] naming `path`,
/// a damaged or unsupported journal.
///
/// ```
/// use ordo::{Ctx, Durability, Runtime};
///
/// async fn greet(ctx: Ctx, name: String) -> Result<String, String> {
///     ctx.step("compose", move || async move { Ok::<_, String>(format!("hello {name}")) }).await
/// }
/// async fn greet_v2(ctx: Ctx, name: String) -> Result<String, String> {
///     // Renamed: journals written by `greet` no longer replay.
///     ctx.step("render", move || async move { Ok::<_, String>(format!("hello {name}")) }).await
/// }
///
/// let dir = tempfile::tempdir()?;
/// {
///     let rt = Runtime::builder().path(dir.path()).durability(Durability::None)
///         .register("greet", greet).build()?;
///     let handle = rt.start::<_, String, String>("greet", "g-1", "ada".to_string())?;
///     rt.block_on(handle.result())??;
/// }
/// let same = ordo_testkit::replay_journal(dir.path(), |b| b.register("greet", greet))?;
/// assert_eq!(same.replayed, ["g-1"]);
/// let renamed = ordo_testkit::replay_journal(dir.path(), |b| b.register("greet", greet_v2))?;
/// assert!(matches!(
///     *renamed.divergences[0].kind,
///     ordo_testkit::DivergenceKind::NonDeterminism(_)
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn replay_journal(
    path: impl AsRef<Path>,
    register: impl Fn(RuntimeBuilder) -> RuntimeBuilder,
) -> Result<JournalReport, ordo::Error> {
    replay_store(Box::new(SledJournal::open_existing(path)?), register)
}

/// [`replay_journal`] on an open store (which this never writes to): what
/// [`crate::store::replay`] runs on PostgreSQL.
pub(crate) fn replay_store(
    base: Box<dyn Store>,
    register: impl Fn(RuntimeBuilder) -> RuntimeBuilder,
) -> Result<JournalReport, ordo::Error> {
    let originals: BTreeMap<String, WorkflowRecord> = base
        .workflows(None)?
        .into_iter()
        .map(|record| (record.id.clone(), record))
        .collect();
    let written = MemoryJournal::default();
    let store = Overlay {
        base,
        written: written.reopen(),
        consumed: Default::default(),
    };
    let stopped = Rc::new(Stopped::default());
    let rt = register(
        Runtime::builder()
            .store(Box::new(store))
            .clock(Clock::Virtual)
            .max_recovery_attempts(u32::MAX)
            .before_step_body(stopped.hook()),
    )
    .build()?;

    let mut report = JournalReport::default();
    let recovered = rt.recover()?;
    report.unregistered = recovered.unregistered;
    for (id, error) in recovered.failed {
        report
            .divergences
            .push(diverged(&id, DivergenceKind::of_error(error)));
    }
    // The handles' types are unknown here: a finished replay's output is read from the
    // journal, not decoded; the handle only says when the workflow settled, and why it
    // stopped if it failed.
    let mut waiting: Vec<(String, Settled)> = Vec::new();
    for id in recovered.resumed {
        let result = rt.handle::<(), ()>(&id)?.result().boxed_local();
        waiting.push((id, result));
    }
    let mut failures: BTreeMap<String, ordo::Error> = BTreeMap::new();
    rt.block_on(futures::future::poll_fn(|cx| {
        stopped.waker.replace(Some(cx.waker().clone()));
        let parked = stopped.workflows();
        waiting.retain_mut(|(id, result)| match result.poll_unpin(cx) {
            Poll::Ready(Err(error)) => {
                failures.insert(id.clone(), error);
                false
            }
            Poll::Ready(Ok(_)) => false,
            Poll::Pending => !parked.contains(id),
        });
        if waiting.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    let stopped_at = stopped.steps.take();
    drop(rt);

    for (id, original) in originals {
        if original.status == Status::Cancelled
            || report.unregistered.iter().any(|(u, _)| *u == id)
            || report.divergences.iter().any(|d| d.workflow_id == id)
        {
            continue;
        }
        let finished = matches!(original.status, Status::Succeeded | Status::Failed);
        let replayed_output = written
            .workflow(&id)?
            .filter(|record| record.status != Status::Pending)
            .and_then(|record| record.output);
        let kind = if let Some(output) = replayed_output {
            match &original.output {
                Some(recorded) if *recorded != output => Some(DivergenceKind::DifferentResult {
                    expected: describe(recorded),
                    found: describe(&output),
                }),
                _ => None,
            }
        } else if let Some(error) = failures.remove(&id) {
            Some(DivergenceKind::of_error(error))
        } else if let Some(step) = stopped_at.iter().find(|s| s.workflow_id == id) {
            finished.then(|| DivergenceKind::NewStep {
                step_id: step.step_id,
                name: step.name.clone(),
            })
        } else {
            None
        };
        match kind {
            Some(kind) => report.divergences.push(diverged(&id, kind)),
            None => report.replayed.push(id),
        }
    }
    Ok(report)
}

/// A workflow's handle result, with its types unknown: only when and why it ended.
type Settled = LocalBoxFuture<'static, Result<Result<(), ()>, ordo::Error>>;

fn diverged(id: &str, kind: DivergenceKind) -> Divergence {
    let mut divergence = Divergence::new(kind, RunPoint::SavedJournal);
    divergence.workflow_id = id.to_string();
    divergence
}

/// A recorded output, for a report: its kind and size (the bytes are the journal's
/// encoding, which only the workflow's types can read).
fn describe(output: &Outcome) -> String {
    let kind = if output.is_ok() { "Ok" } else { "Err" };
    format!(
        "{kind}({} bytes: {:02x?})",
        output.bytes().len(),
        output.bytes()
    )
}

/// The live steps the replay stopped at, and the driver to wake when it stops one.
#[derive(Default)]
struct Stopped {
    steps: RefCell<Vec<StepInfo>>,
    waker: RefCell<Option<Waker>>,
}

impl Stopped {
    /// The runtime's `before_step_body` hook: a live body never starts; the step waits
    /// forever, and the driver hears that its workflow reached the end of the journal.
    fn hook(self: &Rc<Self>) -> ordo::BeforeStepBody {
        let stopped = Rc::clone(self);
        Rc::new(move |step: &StepInfo| {
            stopped.steps.borrow_mut().push(step.clone());
            if let Some(waker) = stopped.waker.borrow().as_ref() {
                waker.wake_by_ref();
            }
            futures::future::pending().boxed_local()
        })
    }

    fn workflows(&self) -> HashSet<String> {
        self.steps
            .borrow()
            .iter()
            .map(|step| step.workflow_id.clone())
            .collect()
    }
}

/// The saved journal as the replay sees it: its records, with every finished workflow
/// pending again (so recovery replays it) and no recovery attempt counted; what the
/// replay writes goes to memory.
struct Overlay {
    base: Box<dyn Store>,
    written: MemoryJournal,
    /// `(destination, number)` of the saved journal's messages the replay consumed.
    consumed: std::sync::Mutex<HashSet<(String, u64)>>,
}

/// A recorded workflow as one to replay.
fn as_pending(mut record: WorkflowRecord) -> WorkflowRecord {
    if matches!(record.status, Status::Succeeded | Status::Failed) {
        record.status = Status::Pending;
        record.output = None;
    }
    record.recovery_attempts = 0;
    record
}

impl Store for Overlay {
    fn commit(&self, batch: &Batch) -> Result<(), JournalError> {
        self.written.commit(batch)?;
        let mut consumed = self
            .consumed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (destination, _, number) in batch.consumed() {
            consumed.insert((destination.clone(), *number));
        }
        Ok(())
    }

    fn workflow(&self, id: &str) -> Result<Option<WorkflowRecord>, JournalError> {
        match self.written.workflow(id)? {
            Some(record) => Ok(Some(record)),
            None => Ok(self.base.workflow(id)?.map(as_pending)),
        }
    }

    fn completions(&self, workflow_id: &str) -> Result<Vec<Completion>, JournalError> {
        let mut completions = self.base.completions(workflow_id)?;
        completions.extend(self.written.completions(workflow_id)?);
        Ok(completions)
    }

    fn workflows(&self, status: Option<Status>) -> Result<Vec<WorkflowRecord>, JournalError> {
        let mut all: BTreeMap<String, WorkflowRecord> = self
            .base
            .workflows(None)?
            .into_iter()
            .map(|record| (record.id.clone(), as_pending(record)))
            .collect();
        for record in self.written.workflows(None)? {
            all.insert(record.id.clone(), record);
        }
        Ok(all
            .into_values()
            .filter(|record| status.is_none_or(|s| record.status == s))
            .collect())
    }

    fn type_name(&self, fingerprint: u64) -> Result<Option<String>, JournalError> {
        match self.written.type_name(fingerprint)? {
            Some(name) => Ok(Some(name)),
            None => self.base.type_name(fingerprint),
        }
    }

    fn commit_count(&self) -> u64 {
        self.written.commit_count()
    }

    fn messages(&self, destination: &str) -> Result<Vec<Message>, JournalError> {
        let consumed = self
            .consumed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut messages: Vec<Message> = self
            .base
            .messages(destination)?
            .into_iter()
            .filter(|m| !consumed.contains(&(m.destination.clone(), m.number)))
            .collect();
        messages.extend(self.written.messages(destination)?);
        messages.sort_by_key(|m| m.number);
        Ok(messages)
    }

    fn message_key_used(&self, destination: &str, key: &str) -> Result<bool, JournalError> {
        Ok(self.written.message_key_used(destination, key)?
            || self.base.message_key_used(destination, key)?)
    }

    fn last_message_number(&self) -> Result<u64, JournalError> {
        Ok(self
            .written
            .last_message_number()?
            .max(self.base.last_message_number()?))
    }

    fn event(&self, workflow_id: &str, key: &str) -> Result<Option<Vec<u8>>, JournalError> {
        match self.written.event(workflow_id, key)? {
            Some(value) => Ok(Some(value)),
            None => self.base.event(workflow_id, key),
        }
    }

    fn events(&self, workflow_id: &str) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
        let mut all: BTreeMap<String, Vec<u8>> =
            self.base.events(workflow_id)?.into_iter().collect();
        all.extend(self.written.events(workflow_id)?);
        Ok(all.into_iter().collect())
    }

    /// The saved journal's queue records under those the replay wrote (a replay that
    /// deletes one hides only its own copy: queues are not what a replay checks).
    fn queue_records(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<ordo_journal::queue::QueueRecord>, JournalError> {
        let mut all: BTreeMap<Vec<u8>, Vec<u8>> =
            self.base.queue_records(prefix)?.into_iter().collect();
        all.extend(self.written.queue_records(prefix)?);
        Ok(all.into_iter().collect())
    }

    fn trace_context(&self, workflow_id: &str) -> Result<Option<String>, JournalError> {
        match self.written.trace_context(workflow_id)? {
            Some(traceparent) => Ok(Some(traceparent)),
            None => self.base.trace_context(workflow_id),
        }
    }

    fn awakeable(&self, workflow_id: &str, step_id: u64) -> Result<Option<Outcome>, JournalError> {
        match self.written.awakeable(workflow_id, step_id)? {
            Some(outcome) => Ok(Some(outcome)),
            None => self.base.awakeable(workflow_id, step_id),
        }
    }
}
