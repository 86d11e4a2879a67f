//! `JoinHandle` (await a task's outcome, abort it) and `JoinError`.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::local::Local;
use crate::task::{TaskId, TaskRef};

/// An owned permission to await a spawned task's outcome.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked or was
/// aborted (including by the executor being dropped before the task finished).
/// Dropping the handle *detaches* the task: it keeps running and its output is dropped.
///
/// ```
/// use ordo_executor::Executor;
///
/// let ex = Executor::new();
/// let handle = ex.spawn(async { 6 * 7 });
/// assert_eq!(ex.block_on(handle).unwrap(), 42);
/// ```
#[must_use = "dropping a JoinHandle detaches the task; bind it to `_handle` or call `drop` to make that explicit"]
pub struct JoinHandle<T> {
    local: Rc<Local>,
    task: TaskRef,
    /// The handle does not own a `T`; it only knows the output's type.
    output: PhantomData<fn() -> T>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(local: Rc<Local>, task: TaskRef) -> Self {
        JoinHandle {
            local,
            task,
            output: PhantomData,
        }
    }

    /// Cancels the task: its future is dropped (right away, or — if a task aborts
    /// itself — as soon as its current poll returns) and awaiting the handle gives an
    /// error for which [`JoinError::is_aborted`] is true. Aborting a finished task does
    /// nothing.
    ///
    /// ```
    /// use ordo_executor::{Executor, yield_now};
    ///
    /// let ex = Executor::new();
    /// let handle = ex.spawn(async { loop { yield_now().await } });
    /// handle.abort();
    /// let err = ex.block_on(handle).unwrap_err();
    /// assert!(err.is_aborted());
    /// ```
    pub fn abort(&self) {
        self.local.abort(self.task);
    }

    /// The task's id.
    ///
    /// ```
    /// let ex = ordo_executor::Executor::new();
    /// let handle = ex.spawn(async {});
    /// assert_eq!(handle.id().as_u64(), 0);
    /// ```
    pub fn id(&self) -> TaskId {
        self.task.id
    }

    /// Whether the task has completed, panicked or been aborted.
    ///
    /// ```
    /// let ex = ordo_executor::Executor::new();
    /// let handle = ex.spawn(async {});
    /// assert!(!handle.is_finished());
    /// ex.run_until_stalled();
    /// assert!(handle.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.local.is_finished(self.task)
    }
}

impl<T: 'static> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.local.poll_join(self.task, cx)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.local.detach(self.task);
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.task.id)
            .finish_non_exhaustive()
    }
}

/// Why a task produced no output.
///
/// ```
/// use ordo_executor::Executor;
///
/// let ex = Executor::new();
/// let handle = ex.spawn(async { panic!("boom") });
/// let err = ex.block_on(handle).unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.panic_message(), Some("boom"));
/// assert_eq!(err.to_string(), "task 0 panicked: boom");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinError {
    id: TaskId,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// The panic message (the payload, if it was a string).
    Panic(String),
    Aborted,
}

impl JoinError {
    pub(crate) fn panic(id: TaskId, payload: &(dyn std::any::Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "<non-string panic payload>".to_owned()
        };
        JoinError {
            id,
            kind: Kind::Panic(message),
        }
    }

    pub(crate) fn aborted(id: TaskId) -> Self {
        JoinError {
            id,
            kind: Kind::Aborted,
        }
    }

    /// True if the task panicked.
    ///
    /// ```
    /// let ex = ordo_executor::Executor::new();
    /// let err = ex.block_on(ex.spawn(async { panic!("x") })).unwrap_err();
    /// assert!(err.is_panic() && !err.is_aborted());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panic(_))
    }

    /// True if the task was aborted, or dropped unfinished because its executor was.
    ///
    /// ```
    /// let ex = ordo_executor::Executor::new();
    /// let handle = ex.spawn(async {});
    /// handle.abort();
    /// assert!(ex.block_on(handle).unwrap_err().is_aborted());
    /// ```
    pub fn is_aborted(&self) -> bool {
        matches!(self.kind, Kind::Aborted)
    }

    /// The panic message, if the task panicked with a string payload (`panic!("...")`).
    ///
    /// ```
    /// let ex = ordo_executor::Executor::new();
    /// let err = ex.block_on(ex.spawn(async { panic!("bad {}", 7) })).unwrap_err();
    /// assert_eq!(err.panic_message(), Some("bad 7"));
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        match &self.kind {
            Kind::Panic(message) => Some(message),
            Kind::Aborted => None,
        }
    }

    /// The task that failed.
    ///
    /// ```
    /// let ex = ordo_executor::Executor::new();
    /// let handle = ex.spawn(async {});
    /// let id = handle.id();
    /// handle.abort();
    /// assert_eq!(ex.block_on(handle).unwrap_err().id(), id);
    /// ```
    pub fn id(&self) -> TaskId {
        self.id
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Panic(message) => write!(f, "{} panicked: {message}", self.id),
            Kind::Aborted => write!(f, "{} was aborted", self.id),
        }
    }
}

impl std::error::Error for JoinError {}
