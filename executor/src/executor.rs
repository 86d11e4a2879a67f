//! `Executor` and its builder: spawning and the two ways of driving it on this thread.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::task::waker_ref;

use crate::clock::Clock;
use crate::context;
use crate::embed::Run;
use crate::join::JoinHandle;
use crate::local::{Idle, Local};
use crate::scheduler::Scheduler;
use crate::task::TaskId;
use crate::waker::{MainWake, Remote, StallWake};

/// The default poll budget: large enough that the bookkeeping between batches is
/// negligible, small enough that an outer runtime is polled often.
const DEFAULT_POLL_BUDGET: usize = 128;

/// A single-threaded, deterministic executor.
///
/// Tasks are first polled in spawn order and re-polled in wake order (with the default
/// [`Scheduler::Fifo`]); the same spawns and wakes give the same sequence of polls every
/// run. `Executor` is neither `Send` nor `Clone`: it has one owner on one thread.
/// Dropping it drops every unfinished task's future, in spawn order; wakes arriving
/// afterwards are ignored.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use ordo_executor::{yield_now, Executor};
///
/// let ex = Executor::new();
/// let log = Rc::new(RefCell::new(Vec::new()));
/// for n in 0..3 {
///     let log = log.clone();
///     drop(ex.spawn(async move {
///         log.borrow_mut().push(n);
///         yield_now().await;
///         log.borrow_mut().push(n + 10);
///     }));
/// }
/// ex.run_until_stalled();
/// assert_eq!(*log.borrow(), [0, 1, 2, 10, 11, 12]);
/// ```
///
/// It stays on the thread that made it:
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<ordo_executor::Executor>();
/// ```
pub struct Executor {
    local: Rc<Local>,
}

impl Executor {
    /// An executor with the default settings: [`Scheduler::Fifo`], [`Clock::System`],
    /// a poll budget of 128, no trace.
    ///
    /// ```
    /// let ex = ordo_executor::Executor::new();
    /// assert_eq!(ex.block_on(async { 1 + 1 }), 2);
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to choose the scheduler, clock, poll budget and tracing.
    ///
    /// ```
    /// use ordo_executor::{Clock, Executor, Scheduler};
    ///
    /// let ex = Executor::builder()
    ///     .scheduler(Scheduler::Seeded(7))
    ///     .clock(Clock::Virtual)
    ///     .poll_budget(32)
    ///     .trace(true)
    ///     .build();
    /// # drop(ex);
    /// ```
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::default()
    }

    /// Spawns a task. The future need not be `Send`; it is first polled when the
    /// executor is next driven, after every task spawned before it.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use ordo_executor::Executor;
    ///
    /// let ex = Executor::new();
    /// let not_send = Rc::new(5);
    /// let handle = ex.spawn(async move { *not_send * 2 });
    /// assert_eq!(ex.block_on(handle).unwrap(), 10);
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.local.spawn(future)
    }

    /// Drives `future` and every spawned task on this thread until `future` completes,
    /// and returns its output. While nothing is ready the thread parks until a wake or
    /// the earliest timer (or, with [`Clock::Virtual`], time jumps to that timer).
    ///
    /// Between two looks at `future`, at most the poll budget of tasks is polled. A
    /// panic in `future` itself propagates to the caller; panics in tasks are caught and
    /// reported through their `JoinHandle`.
    ///
    /// # Panics
    ///
    /// If this thread is already inside a `block_on` (of any executor), or this executor
    /// is already being driven (from inside one of its own tasks).
    ///
    /// ```
    /// use ordo_executor::{spawn, Executor};
    ///
    /// let ex = Executor::new();
    /// let out = ex.block_on(async {
    ///     let child = spawn(async { "child" });
    ///     child.await.unwrap()
    /// });
    /// assert_eq!(out, "child");
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _nested = context::enter_block_on();
        let _driving = self.local.start_driving("block_on");
        let _current = context::enter(&self.local);
        let _blocking = Blocking::start(&self.local.remote);

        let main = Arc::new(MainWake {
            woken: AtomicBool::new(true),
            remote: self.local.remote.clone(),
        });
        let waker = waker_ref(&main);
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if main.woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
            }
            // A batch that stopped short of the budget ran the queue dry (no task ready,
            // no timer due, cross-thread wakes taken in): no second batch to find that
            // out again, which was a batch and two clock reads per delivered step.
            let budget = self.local.poll_budget;
            if self.local.run_batch(budget) >= budget || main.woken.load(Ordering::Acquire) {
                continue;
            }
            // Stalled: no task ready, `future` not woken. The hook goes first, then
            // cross-thread wakes / virtual time, then the thread parks.
            if self.local.call_stall_hook() || main.woken.load(Ordering::Acquire) {
                continue;
            }
            match self.local.idle_step() {
                Idle::Progress => {}
                Idle::Wait(None) => std::thread::park(),
                Idle::Wait(Some(deadline)) => {
                    let now = Instant::now();
                    if deadline > now {
                        std::thread::park_timeout(deadline - now);
                    }
                }
            }
        }
    }

    /// Polls ready tasks until none is ready, and returns how many polls it made.
    ///
    /// Takes in cross-thread wakes and fires due timers as it goes, and calls the stall
    /// hook before returning. It never waits and never moves a virtual clock: a task
    /// sleeping on a timer that is not due yet simply stays pending. A task that always
    /// wakes itself makes it run forever.
    ///
    /// # Panics
    ///
    /// If this executor is already being driven (from inside one of its own tasks).
    ///
    /// ```
    /// use ordo_executor::{yield_now, Executor};
    ///
    /// let ex = Executor::new();
    /// let handle = ex.spawn(async { yield_now().await });
    /// assert_eq!(ex.run_until_stalled(), 2);
    /// assert!(handle.is_finished());
    /// assert_eq!(ex.run_until_stalled(), 0);
    /// ```
    pub fn run_until_stalled(&self) -> usize {
        let _driving = self.local.start_driving("run_until_stalled");
        let _current = context::enter(&self.local);
        let mut polls = 0;
        loop {
            polls += self.local.run_batch(usize::MAX);
            if !self.local.call_stall_hook() {
                return polls;
            }
        }
    }

    /// Runs `f` with this executor as the current one, without polling any task: what
    /// `f` spawns with [`spawn`](crate::spawn) waits for the executor to be driven, and
    /// [`now`](crate::now) is this executor's time. For work done on an executor that is
    /// not being driven (a runtime's last commit as it is dropped, say). Nests: the
    /// executor current before is current again when `f` returns.
    ///
    /// ```
    /// use ordo_executor::{spawn, Executor};
    ///
    /// let ex = Executor::new();
    /// let handle = ex.enter(|| spawn(async { 7 }));
    /// assert!(!handle.is_finished()); // spawned, not polled
    /// assert_eq!(ex.block_on(handle).unwrap(), 7);
    /// ```
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let _current = context::enter(&self.local);
        f()
    }

    /// A future that drives this executor from inside another runtime (tokio,
    /// async-std, another ordo executor's task) and completes once no task is left.
    ///
    /// See [`Run`] for how wakes, the poll budget and timers reach the outer runtime.
    ///
    /// ```
    /// use ordo_executor::{spawn, Executor};
    ///
    /// let inner = Executor::new();
    /// let handle = inner.spawn(async { spawn(async { 1 }).await.unwrap() + 1 });
    /// // Any executor can poll `run()`; here the futures crate's block_on.
    /// futures::executor::block_on(inner.run());
    /// assert!(handle.is_finished());
    /// ```
    pub fn run(&self) -> Run<'_> {
        Run::new(self)
    }

    /// This executor's time: the system clock, or its virtual clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ordo_executor::{sleep, Clock, Executor};
    ///
    /// let ex = Executor::builder().clock(Clock::Virtual).build();
    /// let t0 = ex.now();
    /// ex.block_on(sleep(Duration::from_secs(10)));
    /// assert_eq!(ex.now() - t0, Duration::from_secs(10));
    /// ```
    pub fn now(&self) -> Instant {
        self.local.now()
    }

    /// Installs the stall hook (replacing any previous one): a callback run whenever
    /// the executor has nothing to do.
    ///
    /// It is called when no task is ready — after cross-thread wakes were taken in and
    /// due timers fired — and before the executor would park the thread (`block_on`),
    /// move virtual time (`block_on`, `run()`), return `Pending` or `Ready` from
    /// `run()`, or return from `run_until_stalled`. It runs with this executor as the
    /// current one and no internal borrow held, so it may spawn, wake wakers, call
    /// [`now`](crate::now) or create sleeps. Returning `true` says it may have made
    /// tasks ready: the executor polls again (and calls the hook again at the next
    /// stall; a hook that always returns `true` keeps the executor spinning). Returning
    /// `false` lets the executor go on to park, jump or return. It is never called
    /// re-entrantly. This is how a layer above (ordo's durable runtime) commits and
    /// delivers queued events exactly when every task is idle.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::collections::VecDeque;
    /// use std::rc::Rc;
    /// use futures::channel::mpsc;
    /// use futures::StreamExt;
    /// use ordo_executor::Executor;
    ///
    /// let ex = Executor::new();
    /// let (tx, mut rx) = mpsc::unbounded::<u32>();
    /// // Feed one item per stall.
    /// let mut pending: VecDeque<u32> = (1..=3).collect();
    /// ex.set_stall_hook(move || match pending.pop_front() {
    ///     Some(item) => tx.unbounded_send(item).is_ok(),
    ///     None => false,
    /// });
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let log = seen.clone();
    /// let consumer = ex.spawn(async move {
    ///     for _ in 0..3 {
    ///         let item = rx.next().await.unwrap();
    ///         log.borrow_mut().push(item);
    ///     }
    /// });
    /// ex.block_on(consumer).unwrap();
    /// assert_eq!(*seen.borrow(), [1, 2, 3]);
    /// ```
    pub fn set_stall_hook(&self, hook: impl FnMut() -> bool + 'static) {
        self.local.set_stall_hook(Box::new(hook));
    }

    /// A waker that rouses whoever drives this executor (a parked `block_on`, or the
    /// outer runtime polling [`Executor::run`]) so that its stall hook runs again, without
    /// making any task ready. It is `Send + Sync`: a stall hook that takes work from
    /// other threads (requests arriving on a channel) registers it where those threads
    /// signal. Unlike a task waiting on the channel, it keeps nothing alive: `run()`
    /// still completes once no task is left.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use ordo_executor::Executor;
    ///
    /// let ex = Executor::new();
    /// let asked = Arc::new(AtomicBool::new(false));
    /// let (answer, answered) = futures::channel::oneshot::channel::<&str>();
    /// let (seen, mut answer) = (asked.clone(), Some(answer));
    /// ex.set_stall_hook(move || {
    ///     if seen.load(Ordering::Acquire) {
    ///         if let Some(answer) = answer.take() { let _ = answer.send("served"); }
    ///     }
    ///     false
    /// });
    /// let waker = ex.stall_waker();
    /// let other = std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     asked.store(true, Ordering::Release);
    ///     waker.wake(); // `block_on` is parked: nothing was ready
    /// });
    /// assert_eq!(ex.block_on(answered), Ok("served"));
    /// other.join().unwrap();
    /// ```
    pub fn stall_waker(&self) -> std::task::Waker {
        futures::task::waker(Arc::new(StallWake {
            remote: self.local.remote.clone(),
        }))
    }

    /// Takes the poll trace recorded so far: the id of each task polled, in order.
    /// Empty unless the executor was built with [`ExecutorBuilder::trace`]`(true)`.
    ///
    /// ```
    /// use ordo_executor::{yield_now, Executor};
    ///
    /// let ex = Executor::builder().trace(true).build();
    /// let a = ex.spawn(async { yield_now().await });
    /// let b = ex.spawn(async {});
    /// ex.run_until_stalled();
    /// assert_eq!(ex.take_trace(), [a.id(), b.id(), a.id()]);
    /// ```
    pub fn take_trace(&self) -> Vec<TaskId> {
        self.local.take_trace()
    }

    pub(crate) fn local(&self) -> &Rc<Local> {
        &self.local
    }
}

impl Default for Executor {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Current while futures are dropped, so a destructor that spawns (or asks the
        // time) gets this executor: its spawn is aborted at once instead of panicking.
        let _current = context::enter(&self.local);
        self.local.shutdown();
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor")
            .field("live_tasks", &self.local.live_tasks())
            .finish_non_exhaustive()
    }
}

/// While `block_on` runs, cross-thread wakes unpark its thread.
struct Blocking<'a>(&'a Remote);

impl<'a> Blocking<'a> {
    fn start(remote: &'a Remote) -> Self {
        remote.blocking.store(true, Ordering::Release);
        Blocking(remote)
    }
}

impl Drop for Blocking<'_> {
    fn drop(&mut self) {
        self.0.blocking.store(false, Ordering::Release);
    }
}

/// Configures an [`Executor`]; from [`Executor::builder`].
///
/// ```
/// use ordo_executor::{Clock, Executor, Scheduler};
///
/// let ex = Executor::builder().scheduler(Scheduler::Fifo).clock(Clock::System).build();
/// # drop(ex);
/// ```
#[derive(Clone, Debug)]
pub struct ExecutorBuilder {
    scheduler: Scheduler,
    clock: Clock,
    poll_budget: usize,
    trace: bool,
}

impl Default for ExecutorBuilder {
    fn default() -> Self {
        ExecutorBuilder {
            scheduler: Scheduler::Fifo,
            clock: Clock::System,
            poll_budget: DEFAULT_POLL_BUDGET,
            trace: false,
        }
    }
}

impl ExecutorBuilder {
    /// Which ready task runs next (default [`Scheduler::Fifo`]).
    ///
    /// ```
    /// let ex = ordo_executor::Executor::builder()
    ///     .scheduler(ordo_executor::Scheduler::Scripted(vec![3, 1, 4]))
    ///     .build();
    /// # drop(ex);
    /// ```
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = scheduler;
        self
    }

    /// Where time comes from (default [`Clock::System`]).
    ///
    /// ```
    /// let ex = ordo_executor::Executor::builder().clock(ordo_executor::Clock::Virtual).build();
    /// # drop(ex);
    /// ```
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How many task polls one poll of [`Executor::run`] may make before yielding to
    /// the outer runtime, and `block_on` between two polls of its own future (default
    /// 128; 0 is treated as 1).
    ///
    /// ```
    /// let ex = ordo_executor::Executor::builder().poll_budget(16).build();
    /// # drop(ex);
    /// ```
    pub fn poll_budget(mut self, budget: usize) -> Self {
        self.poll_budget = budget;
        self
    }

    /// Records every task poll, for [`Executor::take_trace`] (default off).
    ///
    /// ```
    /// let ex = ordo_executor::Executor::builder().trace(true).build();
    /// assert!(ex.take_trace().is_empty());
    /// ```
    pub fn trace(mut self, enabled: bool) -> Self {
        self.trace = enabled;
        self
    }

    /// Builds the executor.
    ///
    /// ```
    /// let ex = ordo_executor::Executor::builder().build();
    /// # drop(ex);
    /// ```
    pub fn build(self) -> Executor {
        Executor {
            local: Rc::new(Local::new(
                self.scheduler,
                self.clock,
                self.poll_budget,
                self.trace,
            )),
        }
    }
}
