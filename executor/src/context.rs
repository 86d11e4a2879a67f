//! The executor running on this thread, and the free functions that use it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::join::JoinHandle;
use crate::local::Local;
use crate::task::{TaskId, TaskRef};
use crate::waker::Remote;

thread_local! {
    /// The executor being driven on this thread (by `block_on`, `run_until_stalled` or a
    /// poll of `run()`), for the free functions and the same-thread wake fast path.
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
    /// Whether this thread is inside `block_on`, to refuse a nested one.
    static IN_BLOCK_ON: Cell<bool> = const { Cell::new(false) };
}

/// Makes `local` the current executor until dropped, then restores the previous one
/// (executors can be nested: one's `run()` may be polled by another's task).
pub(crate) struct Enter {
    previous: Option<Rc<Local>>,
}

pub(crate) fn enter(local: &Rc<Local>) -> Enter {
    let previous = CURRENT.with(|current| current.replace(Some(local.clone())));
    Enter { previous }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|current| current.replace(previous));
    }
}

/// Marks this thread as inside `block_on` until dropped.
pub(crate) struct BlockOnGuard(());

pub(crate) fn enter_block_on() -> BlockOnGuard {
    if IN_BLOCK_ON.with(|flag| flag.replace(true)) {
        panic!(
            "ordo_executor: block_on called while this thread is already inside block_on; \
             a nested block_on would block the outer executor. Spawn the future and await \
             its JoinHandle instead, or embed with Executor::run()"
        );
    }
    BlockOnGuard(())
}

impl Drop for BlockOnGuard {
    fn drop(&mut self) {
        let _ = IN_BLOCK_ON.try_with(|flag| flag.set(false));
    }
}

/// Delivers a wake to `remote`'s executor directly if it is the one running on this
/// thread right now; returns false if the caller must use the cross-thread queue.
pub(crate) fn wake_local(remote: &Arc<Remote>, task: TaskRef) -> bool {
    CURRENT
        .try_with(|current| match current.try_borrow() {
            Ok(current) => match current.as_ref() {
                Some(local) if Arc::ptr_eq(&local.remote, remote) => local.wake(task),
                _ => false,
            },
            Err(_) => false,
        })
        .unwrap_or(false)
}

/// The current executor, if any.
pub(crate) fn try_current() -> Option<Rc<Local>> {
    CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()
        .flatten()
}

/// The current executor, or a panic naming the function that needed one.
pub(crate) fn current(function: &str) -> Rc<Local> {
    let local = CURRENT.with(|current| current.borrow().clone());
    match local {
        Some(local) => local,
        None => panic!(
            "ordo_executor::{function}() called outside an executor: call it from a task, \
             from inside Executor::block_on / run / run_until_stalled, or from a stall hook"
        ),
    }
}

/// Spawns a task on the executor currently running on this thread.
///
/// # Panics
///
/// Outside an executor (not inside a task, `block_on`, `run`, `run_until_stalled` or a
/// stall hook).
///
/// ```
/// use ordo_executor::{spawn, Executor};
///
/// let ex = Executor::new();
/// let total = ex.block_on(async {
///     let a = spawn(async { 1 });
///     let b = spawn(async { 2 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(total, 3);
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    current("spawn").spawn(future)
}

/// The current executor's time: the system clock, or its virtual clock.
///
/// # Panics
///
/// Outside an executor.
///
/// ```
/// use std::time::Duration;
/// use ordo_executor::{now, sleep, Clock, Executor};
///
/// let ex = Executor::builder().clock(Clock::Virtual).build();
/// let elapsed = ex.block_on(async {
///     let start = now();
///     sleep(Duration::from_secs(60)).await;
///     now() - start
/// });
/// assert_eq!(elapsed, Duration::from_secs(60));
/// ```
pub fn now() -> Instant {
    current("now").now()
}

/// The id of the task being polled on this thread, if any (`None` in `block_on`'s own
/// future, in a stall hook and outside executors).
///
/// ```
/// use ordo_executor::{current_task_id, Executor};
///
/// let ex = Executor::new();
/// let handle = ex.spawn(async { current_task_id() });
/// let id = handle.id();
/// assert_eq!(ex.block_on(handle).unwrap(), Some(id));
/// assert_eq!(current_task_id(), None);
/// ```
pub fn current_task_id() -> Option<TaskId> {
    CURRENT
        .try_with(|current| {
            current
                .borrow()
                .as_ref()
                .and_then(|local| local.running_task())
        })
        .ok()
        .flatten()
}
