//! Wakers: `Send + Sync`, generation-checked, recycled, with a same-thread fast path.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;

use crossbeam_queue::SegQueue;
use futures::task::{ArcWake, AtomicWaker};

use crate::context;
use crate::task::{TaskId, TaskRef};

/// The part of an executor that other threads may touch.
///
/// Everything else lives in the single-threaded `Local`; this is what a waker needs to
/// reach the executor when it is called from another thread, or from this thread while
/// the executor is not running.
pub(crate) struct Remote {
    /// Wakes waiting to join the ready queue, in arrival order. A lock-free queue so a
    /// waking thread never blocks on (or deadlocks with) the executor thread.
    pub(crate) queue: SegQueue<TaskRef>,
    /// Set after every push to `queue`, cleared before draining it: the executor checks
    /// this one flag before each poll instead of probing the queue (measurably cheaper
    /// on the same-thread hot path, where the queue is almost always empty).
    pub(crate) queued: AtomicBool,
    /// Set when the executor is dropped: later wakes are ignored instead of piling up.
    pub(crate) closed: AtomicBool,
    /// True while `block_on` runs, so wakes unpark its thread only when that helps
    /// (unparking a thread that some other runtime parks would be a spurious wake-up).
    pub(crate) blocking: AtomicBool,
    /// The executor's thread (`Executor` is `!Send`, so it never changes).
    pub(crate) thread: Thread,
    /// The waker of the outer runtime polling `Executor::run()`.
    pub(crate) outer: AtomicWaker,
}

impl Remote {
    pub(crate) fn new() -> Self {
        Remote {
            queue: SegQueue::new(),
            queued: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            blocking: AtomicBool::new(false),
            thread: std::thread::current(),
            outer: AtomicWaker::new(),
        }
    }

    /// Queues a wake from outside the run loop and rouses whoever drives the executor.
    pub(crate) fn wake(&self, task: TaskRef) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.queue.push(task);
        self.queued.store(true, Ordering::Release);
        self.notify();
    }

    /// Rouses the driver: unparks `block_on`, or wakes the outer runtime of `run()`.
    pub(crate) fn notify(&self) {
        if self.blocking.load(Ordering::Acquire) {
            self.thread.unpark();
        }
        self.outer.wake();
    }
}

/// What a task's waker points at: the task's (key, id) and the executor's `Remote`.
///
/// A finished task's target is recycled for the next spawn when the executor holds the
/// only reference, so steady-state spawning allocates no waker. The key and id are
/// atomics only because the type must be `Sync`; they change only while unshared, so
/// relaxed loads and stores (plain moves on common hardware) suffice.
pub(crate) struct WakeTarget {
    key: AtomicUsize,
    id: AtomicU64,
    remote: Arc<Remote>,
}

impl WakeTarget {
    pub(crate) fn new(task: TaskRef, remote: Arc<Remote>) -> Self {
        WakeTarget {
            key: AtomicUsize::new(task.key),
            id: AtomicU64::new(task.id.0),
            remote,
        }
    }

    /// Points a recycled (unshared) target at a new task.
    pub(crate) fn retarget(&self, task: TaskRef) {
        self.key.store(task.key, Ordering::Relaxed);
        self.id.store(task.id.0, Ordering::Relaxed);
    }

    fn task(&self) -> TaskRef {
        TaskRef {
            key: self.key.load(Ordering::Relaxed),
            id: TaskId(self.id.load(Ordering::Relaxed)),
        }
    }
}

impl ArcWake for WakeTarget {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        // Fast path: on the executor's own thread, while it runs, the wake goes straight
        // into the ready queue. Otherwise it takes the cross-thread queue, which joins
        // the ready queue in arrival order at the next scheduling step.
        let task = arc_self.task();
        if !context::wake_local(&arc_self.remote, task) {
            arc_self.remote.wake(task);
        }
    }
}

/// The waker of `block_on`'s own future, which is not a task.
pub(crate) struct MainWake {
    pub(crate) woken: AtomicBool,
    pub(crate) remote: Arc<Remote>,
}

impl ArcWake for MainWake {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.woken.store(true, Ordering::Release);
        arc_self.remote.notify();
    }
}

/// The waker of `Executor::stall_waker`: rouses the driver, wakes no task.
pub(crate) struct StallWake {
    pub(crate) remote: Arc<Remote>,
}

impl ArcWake for StallWake {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        if !arc_self.remote.closed.load(Ordering::Acquire) {
            arc_self.remote.notify();
        }
    }
}
