//! Tasks: their identity, their type-erased future and their lifecycle in the slab.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::future::MaybeDone;

use crate::join::JoinError;
use crate::waker::WakeTarget;

/// The identity of a spawned task: its spawn sequence number on its executor.
///
/// The first task spawned on an executor is `TaskId` 0, the next 1, and so on. Ids are
/// never reused, unlike the slab slots that hold the tasks, so a `TaskId` names one
/// task for the executor's whole life — which is what determinism tests compare.
///
/// ```
/// use ordo_executor::Executor;
///
/// let ex = Executor::new();
/// let a = ex.spawn(async {});
/// let b = ex.spawn(async {});
/// assert_eq!(a.id().as_u64(), 0);
/// assert_eq!(b.id().as_u64(), 1);
/// assert!(a.id() < b.id());
/// assert_eq!(b.id().to_string(), "task 1");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The spawn sequence number.
    ///
    /// ```
    /// let ex = ordo_executor::Executor::new();
    /// assert_eq!(ex.spawn(async {}).id().as_u64(), 0);
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.0)
    }
}

/// Where a task lives: its slab key plus its id.
///
/// The key finds the slot quickly; the id tells whether the slot still holds the same
/// task (slab keys are reused). Every waker and ready-queue entry carries both, so a wake
/// of a finished, aborted or replaced task is recognised as stale and ignored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TaskRef {
    pub(crate) key: usize,
    pub(crate) id: TaskId,
}

/// A spawned future with its output slot, behind one trait object.
///
/// `MaybeDone` gives both in one allocation without unsafe code: it holds the future
/// until it completes and then the output, and it is safely pollable through `Pin`.
pub(crate) trait Runnable {
    /// Polls the future; `Ready` once its output is stored.
    fn poll_task(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// Moves the output into `slot`, which must be an `Option<Output>`.
    fn take_output_into(self: Pin<&mut Self>, slot: &mut dyn Any);
}

impl<F> Runnable for MaybeDone<F>
where
    F: Future,
    F::Output: 'static,
{
    fn poll_task(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Future::poll(self, cx)
    }

    fn take_output_into(self: Pin<&mut Self>, slot: &mut dyn Any) {
        if let Some(slot) = slot.downcast_mut::<Option<F::Output>>() {
            *slot = self.take_output();
        }
    }
}

/// A boxed task future; the only allocation a spawn makes in steady state.
pub(crate) type BoxedTask = Pin<Box<dyn Runnable>>;

/// Where a task is in its life: a view computed from `TaskEntry`'s flat fields.
pub(crate) enum Stage<'a> {
    /// Not finished: the future is in `TaskEntry::future`, or out of it while being polled.
    Running,
    /// Completed: the output waits inside the `MaybeDone` in `TaskEntry::future`.
    Finished,
    /// Panicked or aborted: the future is gone and this is what the handle will report.
    Failed(&'a JoinError),
}

/// One slab slot: a task and the bookkeeping the scheduler and its handle need.
pub(crate) struct TaskEntry {
    pub(crate) id: TaskId,
    /// `None` while the task is being polled (so no borrow is held across the poll), after
    /// it failed, and after its output was taken.
    pub(crate) future: Option<BoxedTask>,
    /// The task's waker target; `None` only while being polled or once finished.
    pub(crate) waker: Option<Arc<WakeTarget>>,
    /// Completed, panicked or aborted. With `failure`, stored flat rather than as an
    /// enum so the entry fits one 64-byte cache line: polling 10 000 tasks walks 10 000
    /// entries, and their size shows up directly in the spawn benchmark.
    pub(crate) done: bool,
    /// Why a done task has no output (boxed: failures are rare, entries are not).
    pub(crate) failure: Option<Box<JoinError>>,
    /// The task is in the ready queue (or, if woken during its own poll, will be put at
    /// its tail after the poll). A wake of a queued task does nothing, so each task is in
    /// the queue at most once.
    pub(crate) queued: bool,
    /// `JoinHandle::abort` was called during the task's own poll; it is honoured as soon
    /// as that poll returns `Pending`.
    pub(crate) abort_requested: bool,
    /// Whether a `JoinHandle` still wants the outcome; if not, the slot is freed as soon
    /// as the task finishes.
    pub(crate) has_handle: bool,
    /// The waker of whoever awaits the `JoinHandle`.
    pub(crate) join_waker: Option<Waker>,
}

impl TaskEntry {
    pub(crate) fn is_running(&self) -> bool {
        !self.done
    }

    pub(crate) fn stage(&self) -> Stage<'_> {
        match (&self.failure, self.done) {
            (Some(error), _) => Stage::Failed(error),
            (None, true) => Stage::Finished,
            (None, false) => Stage::Running,
        }
    }

    /// Marks the task done; `failure` says why it has no output, if it has none.
    pub(crate) fn finish(&mut self, failure: Option<JoinError>) {
        self.done = true;
        self.failure = failure.map(Box::new);
    }
}

#[cfg(test)]
mod tests {
    use super::TaskEntry;

    #[test]
    fn a_task_entry_fits_one_cache_line() {
        assert!(
            std::mem::size_of::<TaskEntry>() <= 64,
            "TaskEntry is {} bytes",
            std::mem::size_of::<TaskEntry>()
        );
    }
}
