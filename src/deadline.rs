//! Workflow deadlines: a timeout given at start ([`StartOptions::timeout`],
//! [`ChildOptions::timeout`](crate::ChildOptions::timeout)) becomes an absolute deadline,
//! recorded with the workflow, past which the runtime cancels it.
//!
//! - **Recorded, absolute.** The deadline is wall-clock milliseconds on the runtime's
//!   clock (the virtual one too), computed once when the start is taken and written in
//!   the workflow's record (`WorkflowRecord::deadline_ms`) by the commit that makes the
//!   start durable. A restart re-arms it from the record, so only the remainder counts.
//! - **Expiry is a cancellation.** When the deadline passes before the workflow returns,
//!   the workflow is cancelled as by [`Runtime::cancel`](crate::Runtime::cancel), with
//!   one commit of its own: its status becomes `Cancelled`, its tasks and running step
//!   bodies are dropped, and recovery never resumes it. Its handles report
//!   [`Error::DeadlineExceeded`] (read back from the journal too: a cancelled record whose
//!   deadline had passed when it was written), where a plain cancel reports
//!   [`Error::Cancelled`].
//! - **Children.** A child inherits its parent's deadline; given a timeout of its own,
//!   its deadline is the earlier of the two, so no child outlives its parent's deadline.
//!   The commit that cancels an expired workflow cancels, level by level, every workflow
//!   it launched as a child (and theirs), whatever their [`ParentEnd`](crate::ParentEnd)
//!   policy: [`ParentEnd`](crate::ParentEnd) is about a parent that *returns*. A
//!   parent whose child expired sees [`Error::Cancelled`] from the child's handle
//!   (its journal records that the child was cancelled, not why).
//! - **Only new workflows.** The options of a start under an id already recorded are
//!   ignored, like its input. [`Runtime::resume`](crate::Runtime::resume) drops a
//!   deadline that has passed (resuming means letting the workflow finish); a fork
//!   starts without one; a workflow that continues as new keeps its deadline.
//! - **Cost.** The timer is part of the workflow's root future: it starts with the run
//!   and is dropped when the workflow returns, so it keeps neither
//!   [`Runtime::run`](crate::Runtime::run) nor `block_on` alive, and a workflow without
//!   a deadline has no timer and no extra allocation.
//! - **Recovery.** A recovered workflow's timer is checked before its future is first
//!   polled: a workflow whose deadline passed while no process ran it is cancelled
//!   without delivering a single recorded completion or starting a step body.
//!
//! Not a completion: a deadline ends the workflow, it never wakes workflow code, so no
//! replay can depend on it (determinism rule 2 is about what workflow code sees).

use std::collections::HashSet;
use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use futures::FutureExt;
use ordo_journal::{Batch, Outcome, Status, WorkflowRecord};

use crate::core::Core;
use crate::error::Error;
use crate::talk::watch::WatchKey;
use crate::telemetry::TraceParent;
use crate::workflow::{Phase, WorkflowState};

/// How to start a workflow: a timeout, the caller's trace context. Given to
/// [`Runtime::start_with`](crate::Runtime::start_with) and
/// [`Client::start_with`](crate::Client::start_with); both apply only to a new workflow
/// (a workflow already recorded under the id keeps its own, as it keeps its input).
///
/// ```
/// use ordo::{Ctx, Runtime, StartOptions};
/// use std::time::Duration;
///
/// async fn quick(_: Ctx, n: u32) -> Result<u32, String> { Ok(n + 1) }
/// let rt = Runtime::builder().temporary().register("quick", quick).build()?;
/// let options = StartOptions::default().timeout(Duration::from_secs(30));
/// let handle = rt.start_with::<_, u32, String>("quick", "q-1", 1u32, options)?;
/// assert_eq!(rt.block_on(handle.result())?, Ok(2)); // in time: unaffected
/// let record = rt.journal().workflow("q-1")?.expect("recorded");
/// assert_eq!(record.deadline_ms, Some(record.created_ms + 30_000));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// How long the workflow may take, from the start; `None`: no limit.
    timeout: Option<Duration>,
    /// The caller's trace context, journaled with the start (see `telemetry`).
    traceparent: Option<TraceParent>,
}

impl StartOptions {
    /// Cancels the workflow if it has not returned `timeout` after its start (on the
    /// runtime's clock). The deadline this makes is recorded with the workflow, so a
    /// restart does not give it more time: after a crash only the remainder counts. An
    /// expired workflow's status is `Cancelled` and its handles report
    /// [`Error::DeadlineExceeded`]; its children are cancelled with it.
    ///
    /// ```
    /// use ordo::{Clock, Ctx, Error, Runtime, StartOptions, Status};
    /// use std::time::Duration;
    ///
    /// async fn slow(ctx: Ctx, _: ()) -> Result<(), String> {
    ///     ctx.sleep(Duration::from_secs(3600)).await;
    ///     Ok(())
    /// }
    /// let rt = Runtime::builder().temporary().clock(Clock::Virtual).register("slow", slow).build()?;
    /// let options = StartOptions::default().timeout(Duration::from_secs(60));
    /// let handle = rt.start_with::<_, (), String>("slow", "s-1", (), options)?;
    /// assert!(matches!(rt.block_on(handle.result()), Err(Error::DeadlineExceeded { .. })));
    /// assert_eq!(handle.status()?, Status::Cancelled);
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Continues the caller's trace (see [`Runtime::start_traced`](crate::Runtime::start_traced)).
    ///
    /// ```
    /// use ordo::{StartOptions, TraceParent};
    /// let traceparent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
    /// let options = StartOptions::default().traceparent(traceparent);
    /// # let _ = options;
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn traceparent(mut self, traceparent: TraceParent) -> Self {
        self.traceparent = Some(traceparent);
        self
    }

    /// The deadline, in wall-clock ms, of a workflow started at `now_ms` with these
    /// options, and the trace context.
    pub(crate) fn into_parts(self, now_ms: u64) -> (Option<u64>, Option<TraceParent>) {
        (
            self.timeout.map(|timeout| after(now_ms, timeout)),
            self.traceparent,
        )
    }
}

/// The wall-clock ms `timeout` after `now_ms`, saturating.
pub(crate) fn after(now_ms: u64, timeout: Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
}

/// The deadline of a child launched at `now_ms` by a parent whose deadline is `parent`,
/// with its own `timeout`, if any: the earlier of the two, so that no child outlives its
/// parent's deadline.
pub(crate) fn of_child(parent: Option<u64>, now_ms: u64, timeout: Option<Duration>) -> Option<u64> {
    let own = timeout.map(|timeout| after(now_ms, timeout));
    match (parent, own) {
        (Some(parent), Some(own)) => Some(parent.min(own)),
        (parent, own) => parent.or(own),
    }
}

/// The error handles report for a workflow recorded as `Cancelled`: a record written at
/// or after its deadline was cancelled by it.
pub(crate) fn cancelled_error(record: &WorkflowRecord) -> Error {
    match record.deadline_ms {
        Some(deadline_ms) if record.updated_ms >= deadline_ms => Error::DeadlineExceeded {
            workflow_id: record.id.clone(),
            deadline_ms,
        },
        _ => Error::Cancelled {
            workflow_id: record.id.clone(),
        },
    }
}

/// A workflow resumed ([`Runtime::resume`](crate::Runtime::resume)) after its deadline
/// passed runs without one: resuming it means letting it finish, and a deadline already
/// past would cancel it again at once. A deadline still ahead is kept. `record` is the
/// resumed record, written now (`updated_ms`).
pub(crate) fn on_resume(record: &mut WorkflowRecord) {
    if record
        .deadline_ms
        .is_some_and(|deadline| deadline <= record.updated_ms)
    {
        record.deadline_ms = None;
    }
}

/// `fut`, the root future of workflow `wf`, bounded by its deadline: when the deadline
/// passes first, the workflow and its children are cancelled ([`expire`]) and the future
/// is dropped without another poll. The deadline is checked before each poll of `fut`,
/// so an already expired workflow never runs. Without a deadline, `fut` as it is.
pub(crate) fn bound(
    core: &Rc<Core>,
    wf: &Rc<WorkflowState>,
    fut: LocalBoxFuture<'static, Result<Outcome, Error>>,
) -> LocalBoxFuture<'static, Result<Outcome, Error>> {
    let Some(deadline_ms) = wf.deadline_ms else {
        return fut;
    };
    let (core, wf) = (Rc::clone(core), Rc::clone(wf));
    async move {
        // The executor instant is taken at the first poll: `recover()` launches from
        // outside the executor.
        let at = core
            .clock
            .instant_at(deadline_ms, ordo_executor::now(), Duration::MAX);
        let mut expiry = std::pin::pin!(ordo_executor::sleep_until(at));
        let mut fut = fut;
        let returned = futures::future::poll_fn(|cx| {
            if expiry.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            fut.poll_unpin(cx).map(Some)
        })
        .await;
        match returned {
            Some(result) => result,
            None => {
                drop(fut); // its step bodies with it, before the cancellation is written
                Err(expire(&core, &wf, deadline_ms))
            }
        }
    }
    .boxed_local()
}

/// Cancels `wf`, whose deadline `deadline_ms` passed, and every pending workflow it
/// launched as a child, level by level (their children too), in one commit; then stops
/// those running here and wakes whoever waits for their ends (a parent's child handle,
/// a client). Returns the error that ends `wf`: [`Error::DeadlineExceeded`], or the
/// journal's error when the commit failed (which stops the runtime, as any failed
/// commit does).
fn expire(core: &Rc<Core>, wf: &Rc<WorkflowState>, deadline_ms: u64) -> Error {
    let exceeded = Error::DeadlineExceeded {
        workflow_id: wf.id.clone(),
        deadline_ms,
    };
    if let Some(err) = core.broken() {
        return err;
    }
    let now_ms = core.now_ms();
    let cancelled = match cancel_tree(core, &wf.id, now_ms) {
        Ok(cancelled) => cancelled,
        Err(err) => return err,
    };
    for record in &cancelled {
        crate::telemetry::workflow_finished(&record.name, Status::Cancelled);
        let running = core.running.borrow().get(&record.id).cloned();
        if let Some(stopped) = running {
            stopped.fail(if Rc::ptr_eq(&stopped, wf) {
                exceeded.clone()
            } else {
                cancelled_error(record)
            });
            core.forget(&stopped);
        }
    }
    if core.watchers.any() {
        for record in &cancelled {
            core.watchers.wake(&WatchKey::Workflow(record.id.clone()));
        }
    }
    exceeded
}

/// Writes `Cancelled` (at `now_ms`) over the record of workflow `id` and of each of its
/// descendants that is still pending and has not returned, in one commit; returns the
/// records written. Each level of children is read after the level above is known, as
/// `Runtime::cancel_tree` does; nothing can launch in between (one thread, no await).
fn cancel_tree(core: &Core, id: &str, now_ms: u64) -> Result<Vec<WorkflowRecord>, Error> {
    let mut batch = Batch::new();
    let mut seen = HashSet::new();
    let mut level = vec![id.to_string()];
    while !level.is_empty() {
        let mut next = Vec::new();
        for id in level {
            if !seen.insert(id.clone()) {
                continue;
            }
            let returned = core
                .running
                .borrow()
                .get(&id)
                .is_some_and(|wf| wf.phase.get() == Phase::Finishing);
            if !returned {
                if let Some(mut record) = core.store.workflow(&id)? {
                    if record.status == Status::Pending {
                        record.status = Status::Cancelled;
                        record.updated_ms = now_ms;
                        batch.update_workflow(record, Status::Pending);
                        // A queued workflow leaves its queue (its slot freed) with it.
                        core.queues.leave(&id, &mut batch);
                    }
                }
            }
            next.extend(core.children_of(&id)?);
        }
        level = next;
    }
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    // Outcomes of bodies that returned before the deadline's timer fired (a slow call
    // that ended past the deadline), not committed yet, go with the cancellation.
    let cancelled: Vec<String> = batch.workflows().iter().map(|r| r.id.clone()).collect();
    core.stage_finished_bodies(cancelled.iter().map(String::as_str), &mut batch);
    if let Err(err) = core.store.commit(&batch) {
        let err = Error::from(err);
        core.break_down(err.clone());
        return Err(err);
    }
    let (records, _) = batch.into_parts();
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_deadline_is_never_later_than_its_parents() {
        let hour = Duration::from_secs(3600);
        assert_eq!(of_child(None, 1_000, None), None);
        assert_eq!(of_child(Some(5_000), 1_000, None), Some(5_000));
        assert_eq!(of_child(None, 1_000, Some(hour)), Some(3_601_000));
        assert_eq!(of_child(Some(5_000), 1_000, Some(hour)), Some(5_000));
        let second = Duration::from_secs(1);
        assert_eq!(of_child(Some(5_000), 1_000, Some(second)), Some(2_000));
        assert_eq!(after(u64::MAX - 1, Duration::MAX), u64::MAX);
    }

    #[test]
    fn a_cancelled_record_names_its_deadline_only_once_it_passed() {
        let mut record = WorkflowRecord::new("w", "n", Vec::new(), 1_000);
        record.status = Status::Cancelled;
        record.updated_ms = 4_000;
        assert!(matches!(cancelled_error(&record), Error::Cancelled { .. }));
        record.deadline_ms = Some(5_000);
        assert!(matches!(cancelled_error(&record), Error::Cancelled { .. }));
        record.updated_ms = 5_000;
        assert!(matches!(
            cancelled_error(&record),
            Error::DeadlineExceeded {
                deadline_ms: 5_000,
                ..
            }
        ));
    }
}
