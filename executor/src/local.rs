//! The executor's single-threaded state and the scheduling step: pick, poll, settle.
//!
//! Invariant: no `RefCell` borrow of this state is held while user code runs (a poll, a
//! future's or output's drop, a waker call, the stall hook). Each operation borrows,
//! moves what it needs out, releases, runs the user code, and borrows again.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use futures::future::MaybeDone;
use futures::task::waker_ref;
use slab::Slab;

use crate::clock::{Clock, ClockState};
use crate::join::{JoinError, JoinHandle};
use crate::scheduler::{Picker, Scheduler};
use crate::task::{BoxedTask, Stage, TaskEntry, TaskId, TaskRef};
use crate::timer::{TimerKey, Timers};
use crate::waker::{Remote, WakeTarget};

/// A stall hook, see `Executor::set_stall_hook`.
pub(crate) type StallHook = Box<dyn FnMut() -> bool>;

/// Everything the executor owns on its thread. Shared (`Rc`) by the `Executor`, its
/// `JoinHandle`s and `Sleep`s, and the thread-local "current executor".
pub(crate) struct Local {
    pub(crate) remote: Arc<Remote>,
    state: RefCell<State>,
    pub(crate) clock: ClockState,
    /// The task being polled right now, for `current_task_id` and to recognise a wake
    /// of a task during its own poll.
    running: Cell<Option<TaskRef>>,
    /// The running task woke itself: append it to the ready queue after its poll, not
    /// during it, so every wake made later in the same poll is ahead of it.
    repoll: Cell<bool>,
    /// `block_on`, `run_until_stalled` or a `run()` poll is driving this executor; a
    /// second, re-entrant driver is refused.
    driving: Cell<bool>,
    /// Set by `Executor`'s drop: later spawns are aborted at once.
    shut_down: Cell<bool>,
    /// In its own cell (not `State`) because it runs user code and must be taken out
    /// while it runs.
    stall_hook: RefCell<Option<StallHook>>,
    /// Most polls `run()` makes per outer poll before yielding to the outer runtime, and
    /// `block_on` between two looks at its own future.
    pub(crate) poll_budget: usize,
    /// The deadline (and outer waker) last handed to the embedding timer thread, so a
    /// `run()` that stays pending does not register the same deadline again and again.
    pub(crate) embed_deadline: RefCell<Option<(Instant, Waker)>>,
}

/// Most waker targets `State::wake_pool` keeps. Enough for steady spawning; a burst of
/// a hundred thousand tasks finishing together would otherwise leave a hundred thousand
/// targets pooled for the executor's whole life.
const WAKE_POOL_LIMIT: usize = 1024;

/// Room the ready queue keeps while the executor is idle.
const READY_KEEP: usize = 1024;

struct State {
    tasks: Slab<TaskEntry>,
    /// Tasks to poll. Entries carry ids, so one left behind by an abort is skipped.
    ready: VecDeque<TaskRef>,
    picker: Picker,
    next_id: u64,
    /// Tasks spawned and not yet finished, panicked or aborted: `run()` completes at 0.
    live: usize,
    timers: Timers,
    /// Waker targets of finished tasks that nobody else referenced, reused by `spawn`
    /// (at most `WAKE_POOL_LIMIT`).
    wake_pool: Vec<Arc<WakeTarget>>,
    trace: Option<Vec<TaskId>>,
}

impl fmt::Debug for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local").finish_non_exhaustive()
    }
}

/// What `idle_step` found to do when no task was ready and the stall hook was idle.
pub(crate) enum Idle {
    /// Tasks became ready (a cross-thread wake arrived, or virtual time jumped).
    Progress,
    /// Wait for a wake, or until this deadline (system clock).
    Wait(Option<Instant>),
}

impl Local {
    pub(crate) fn new(scheduler: Scheduler, clock: Clock, poll_budget: usize, trace: bool) -> Self {
        Local {
            remote: Arc::new(Remote::new()),
            state: RefCell::new(State {
                tasks: Slab::new(),
                ready: VecDeque::new(),
                picker: Picker::new(scheduler),
                next_id: 0,
                live: 0,
                timers: Timers::default(),
                wake_pool: Vec::new(),
                trace: trace.then(Vec::new),
            }),
            clock: ClockState::new(clock),
            running: Cell::new(None),
            repoll: Cell::new(false),
            driving: Cell::new(false),
            shut_down: Cell::new(false),
            stall_hook: RefCell::new(None),
            poll_budget: poll_budget.max(1),
            embed_deadline: RefCell::new(None),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    pub(crate) fn running_task(&self) -> Option<TaskId> {
        self.running.get().map(|task| task.id)
    }

    // ----- spawning -------------------------------------------------------------------

    pub(crate) fn spawn<F>(self: &Rc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let boxed: BoxedTask = Box::pin(MaybeDone::Future(future));
        let mut st = self.state.borrow_mut();
        let id = TaskId(st.next_id);
        st.next_id += 1;
        let key = st.tasks.vacant_key();
        let task = TaskRef { key, id };
        if self.shut_down.get() {
            st.tasks.insert(TaskEntry {
                id,
                future: None,
                waker: None,
                done: true,
                failure: Some(Box::new(JoinError::aborted(id))),
                queued: false,
                abort_requested: false,
                has_handle: true,
                join_waker: None,
            });
            drop(st);
            drop(boxed);
            return JoinHandle::new(self.clone(), task);
        }
        let waker = match st.wake_pool.pop() {
            Some(target) => {
                target.retarget(task);
                target
            }
            None => Arc::new(WakeTarget::new(task, self.remote.clone())),
        };
        st.tasks.insert(TaskEntry {
            id,
            future: Some(boxed),
            waker: Some(waker),
            done: false,
            failure: None,
            queued: true,
            abort_requested: false,
            has_handle: true,
            join_waker: None,
        });
        st.ready.push_back(task);
        st.live += 1;
        drop(st);
        JoinHandle::new(self.clone(), task)
    }

    // ----- waking ---------------------------------------------------------------------

    /// A wake on this thread while this executor runs. False if the state is busy (a
    /// wake from inside a drop the executor is doing), so the caller queues it remotely.
    pub(crate) fn wake(&self, task: TaskRef) -> bool {
        let Ok(mut st) = self.state.try_borrow_mut() else {
            return false;
        };
        if self.running.get() == Some(task) {
            if let Some(entry) = st.tasks.get_mut(task.key) {
                if entry.id == task.id && !entry.queued {
                    entry.queued = true;
                    self.repoll.set(true);
                }
            }
        } else {
            st.schedule(task);
        }
        true
    }

    // ----- the scheduling step --------------------------------------------------------

    /// Polls the next ready task; false if none is ready.
    pub(crate) fn poll_next(&self) -> bool {
        let (task, mut future, target) = {
            let mut st = self.state.borrow_mut();
            st.drain_remote(&self.remote);
            loop {
                let st = &mut *st;
                let Some(task) = st.picker.pick(&mut st.ready) else {
                    return false;
                };
                let Some(entry) = st.tasks.get_mut(task.key) else {
                    continue;
                };
                if entry.id != task.id {
                    continue;
                }
                entry.queued = false;
                let Some(future) = entry.future.take() else {
                    continue;
                };
                let target = entry.waker.take().expect("a running task has a waker");
                if let Some(trace) = &mut st.trace {
                    trace.push(task.id);
                }
                break (task, future, target);
            }
        };

        self.running.set(Some(task));
        let result = {
            // A borrowed waker: no reference count traffic unless the task clones it.
            let waker = waker_ref(&target);
            let mut cx = Context::from_waker(&waker);
            catch_unwind(AssertUnwindSafe(|| future.as_mut().poll_task(&mut cx)))
        };
        self.running.set(None);
        let repoll = self.repoll.replace(false);

        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        let entry = st
            .tasks
            .get_mut(task.key)
            .expect("a task's slot outlives its poll");
        let (failure, leftover) = match result {
            Ok(Poll::Pending) if !entry.abort_requested => {
                entry.future = Some(future);
                entry.waker = Some(target);
                if repoll {
                    st.ready.push_back(task);
                }
                return true;
            }
            Ok(Poll::Ready(())) if !entry.has_handle => {
                // The common end of a detached task: nobody wants the output, so the
                // slot goes at once (no join waker: detaching took it) and the task is
                // marked done by leaving the slab.
                let removed = st.tasks.remove(task.key);
                st.live -= 1;
                st.recycle(target);
                drop(guard);
                drop(removed);
                drop_quietly(Some(future));
                return true;
            }
            Ok(Poll::Pending) => (Some(JoinError::aborted(task.id)), Some(future)),
            // The output is inside `future`: kept for the handle.
            Ok(Poll::Ready(())) => {
                entry.future = Some(future);
                (None, None)
            }
            Err(payload) => {
                let error = JoinError::panic(task.id, &*payload);
                drop(payload);
                (Some(error), Some(future))
            }
        };
        entry.finish(failure);
        entry.queued = false;
        let join_waker = entry.join_waker.take();
        if !entry.has_handle {
            // Nothing in the entry runs user code when dropped any more: the future
            // (or output) is in `leftover`, the join waker taken.
            st.tasks.remove(task.key);
        }
        st.live -= 1;
        st.recycle(target);
        drop(guard);
        drop_quietly(leftover);
        if let Some(waker) = join_waker {
            waker.wake();
        }
        true
    }

    /// Polls up to `budget` tasks, firing due timers before and whenever the queue runs
    /// dry; returns how many polls it made.
    pub(crate) fn run_batch(&self, budget: usize) -> usize {
        self.fire_due_timers();
        let mut polls = 0;
        while polls < budget {
            if self.poll_next() {
                polls += 1;
            } else if self.fire_due_timers() == 0 {
                break;
            }
        }
        polls
    }

    /// Whether a task is ready (after taking in cross-thread wakes).
    pub(crate) fn has_ready(&self) -> bool {
        let mut st = self.state.borrow_mut();
        st.drain_remote(&self.remote);
        !st.ready.is_empty()
    }

    pub(crate) fn live_tasks(&self) -> usize {
        self.state.borrow().live
    }

    /// The stalled executor's next move once the stall hook declined: take in
    /// cross-thread wakes; else jump virtual time to the next deadline; else say how
    /// long to wait.
    pub(crate) fn idle_step(&self) -> Idle {
        let next = {
            let mut st = self.state.borrow_mut();
            st.drain_remote(&self.remote);
            if !st.ready.is_empty() {
                return Idle::Progress;
            }
            // Idle: give back what a burst of ready tasks grew the queue to (a hundred
            // thousand workflows started at once), keeping room for ordinary traffic.
            st.ready.shrink_to(READY_KEEP);
            st.timers.next_deadline()
        };
        match next {
            Some(deadline) if self.clock.is_virtual() => {
                self.clock.advance_to(deadline);
                self.fire_due_timers();
                Idle::Progress
            }
            next => Idle::Wait(next),
        }
    }

    /// Runs the stall hook, if any; its answer (true: it may have made tasks ready).
    pub(crate) fn call_stall_hook(&self) -> bool {
        let hook = self.stall_hook.borrow_mut().take();
        let Some(hook) = hook else {
            return false;
        };
        // Put back by a guard, so a hook that panics (a user's observer inside it, say)
        // is still installed when the panic is caught above: losing it would leave every
        // later stall without its hook, and whatever waits on it hanging forever.
        let mut guard = RestoreHook {
            slot: &self.stall_hook,
            hook: Some(hook),
        };
        match guard.hook.as_mut() {
            Some(hook) => hook(),
            None => false,
        }
    }

    pub(crate) fn set_stall_hook(&self, hook: StallHook) {
        let old = self.stall_hook.borrow_mut().replace(hook);
        drop(old);
    }

    /// Marks the executor as driven until the guard drops; panics if it already is.
    pub(crate) fn start_driving(&self, by: &str) -> Driving<'_> {
        if self.driving.replace(true) {
            panic!(
                "ordo_executor: Executor::{by} called while the same executor is already \
                 being driven on this thread (from inside one of its own tasks or its stall \
                 hook); spawn the work instead"
            );
        }
        Driving(self)
    }

    // ----- timers ---------------------------------------------------------------------

    /// Wakes every due timer's waker in (deadline, creation) order; returns how many.
    fn fire_due_timers(&self) -> usize {
        let mut due = Vec::new();
        {
            let mut st = self.state.borrow_mut();
            if st.timers.is_empty() {
                return 0;
            }
            st.timers.take_due(self.now(), &mut due);
        }
        let fired = due.len();
        for waker in due {
            waker.wake();
        }
        fired
    }

    pub(crate) fn register_timer(
        &self,
        deadline: Instant,
        key: Option<TimerKey>,
        waker: &Waker,
    ) -> TimerKey {
        let mut st = self.state.borrow_mut();
        if let Some(key) = key {
            if let Ok(old) = st.timers.update(key, waker) {
                drop(st);
                drop(old);
                return key;
            }
        }
        st.timers.insert(deadline, waker.clone())
    }

    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        let waker = match self.state.try_borrow_mut() {
            Ok(mut st) => st.timers.cancel(key),
            Err(_) => None,
        };
        drop(waker);
    }

    // ----- join handles ---------------------------------------------------------------

    pub(crate) fn poll_join<T: 'static>(
        &self,
        task: TaskRef,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, JoinError>> {
        let mut st = self.state.borrow_mut();
        let entry = match st.tasks.get_mut(task.key) {
            Some(entry) if entry.id == task.id => entry,
            _ => panic!(
                "ordo_executor: JoinHandle of {} polled after it completed",
                task.id
            ),
        };
        match entry.stage() {
            Stage::Running => {
                let stale = match &entry.join_waker {
                    Some(waker) if waker.will_wake(cx.waker()) => None,
                    _ => entry.join_waker.replace(cx.waker().clone()),
                };
                drop(st);
                drop(stale);
                Poll::Pending
            }
            Stage::Failed(error) => {
                let error = JoinError::clone(error);
                let removed = st.tasks.remove(task.key);
                drop(st);
                drop(removed);
                Poll::Ready(Err(error))
            }
            Stage::Finished => {
                let mut removed = st.tasks.remove(task.key);
                drop(st);
                let mut output: Option<T> = None;
                if let Some(future) = &mut removed.future {
                    future.as_mut().take_output_into(&mut output);
                }
                drop(removed);
                Poll::Ready(Ok(output.expect("a finished task holds its output")))
            }
        }
    }

    pub(crate) fn is_finished(&self, task: TaskRef) -> bool {
        match self.state.borrow().tasks.get(task.key) {
            Some(entry) if entry.id == task.id => !entry.is_running(),
            _ => true,
        }
    }

    pub(crate) fn abort(&self, task: TaskRef) {
        let mut st = self.state.borrow_mut();
        let st_ref = &mut *st;
        let Some(entry) = st_ref.tasks.get_mut(task.key) else {
            return;
        };
        if entry.id != task.id || !entry.is_running() {
            return;
        }
        let Some(future) = entry.future.take() else {
            // It is aborting itself from inside its own poll: honoured after the poll.
            entry.abort_requested = true;
            return;
        };
        entry.finish(Some(JoinError::aborted(task.id)));
        let join_waker = entry.join_waker.take();
        let target = entry.waker.take();
        let removed = (!entry.has_handle).then(|| st_ref.tasks.remove(task.key));
        st_ref.live -= 1;
        if let Some(target) = target {
            st_ref.recycle(target);
        }
        drop(st);
        drop(future);
        drop(removed);
        if let Some(waker) = join_waker {
            waker.wake();
        }
    }

    pub(crate) fn detach(&self, task: TaskRef) {
        let Ok(mut st) = self.state.try_borrow_mut() else {
            return;
        };
        let Some(entry) = st.tasks.get_mut(task.key) else {
            return;
        };
        if entry.id != task.id {
            return;
        }
        entry.has_handle = false;
        if entry.is_running() {
            // The common case (a spawn whose handle is dropped at once): just the flag.
            let join_waker = entry.join_waker.take();
            drop(st);
            drop(join_waker);
            return;
        }
        // Finished: the output (inside `future`) is dropped outside the borrow.
        let output = entry.future.take();
        let join_waker = entry.join_waker.take();
        st.tasks.remove(task.key);
        drop(st);
        drop(join_waker);
        drop(output);
    }

    // ----- tracing and shutdown -------------------------------------------------------

    pub(crate) fn take_trace(&self) -> Vec<TaskId> {
        match &mut self.state.borrow_mut().trace {
            Some(trace) => std::mem::take(trace),
            None => Vec::new(),
        }
    }

    /// Drops every unfinished future in spawn order, then everything else the executor
    /// holds. Handles of dropped tasks then report `aborted`.
    pub(crate) fn shutdown(&self) {
        self.shut_down.set(true);
        self.remote.closed.store(true, Ordering::Release);
        let mut order: Vec<TaskRef> = {
            let st = self.state.borrow();
            st.tasks
                .iter()
                .filter(|(_, entry)| entry.is_running())
                .map(|(key, entry)| TaskRef { key, id: entry.id })
                .collect()
        };
        order.sort_by_key(|task| task.id);
        for task in order {
            self.abort(task);
        }
        let (ready, timer_wakers, pool) = {
            let mut st = self.state.borrow_mut();
            (
                std::mem::take(&mut st.ready),
                st.timers.clear(),
                std::mem::take(&mut st.wake_pool),
            )
        };
        drop((ready, timer_wakers, pool));
        let hook = self.stall_hook.borrow_mut().take();
        drop(hook);
        while self.remote.queue.pop().is_some() {}
    }
}

/// Clears the driving flag when `block_on`, `run_until_stalled` or a `run()` poll ends,
/// including by a panic.
pub(crate) struct Driving<'a>(&'a Local);

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        self.0.driving.set(false);
    }
}

impl State {
    /// Puts a woken task at the tail of the ready queue unless it is already queued,
    /// finished, or not the task the waker was made for.
    #[inline]
    fn schedule(&mut self, task: TaskRef) {
        if let Some(entry) = self.tasks.get_mut(task.key) {
            if entry.id == task.id && !entry.queued && entry.is_running() {
                entry.queued = true;
                self.ready.push_back(task);
            }
        }
    }

    /// Moves cross-thread wakes into the ready queue, in arrival order.
    #[inline]
    fn drain_remote(&mut self, remote: &Remote) {
        // Cleared before popping, so a push racing with this drain either is popped now
        // or leaves the flag set for the next drain.
        if !remote.queued.load(Ordering::Relaxed) || !remote.queued.swap(false, Ordering::Acquire) {
            return;
        }
        while let Some(task) = remote.queue.pop() {
            self.schedule(task);
        }
    }

    /// Keeps a finished task's waker target for the next spawn if nobody else holds it.
    ///
    /// "Nobody else" is `strong_count == 1` (no `Weak` is ever made): with no clone
    /// left, no waker can observe the retargeting, and none can appear, since making a
    /// clone needs a reference. Plain loads, unlike `Arc::get_mut`'s compare-exchange.
    fn recycle(&mut self, target: Arc<WakeTarget>) {
        if Arc::strong_count(&target) == 1 && self.wake_pool.len() < WAKE_POOL_LIMIT {
            self.wake_pool.push(target);
        }
    }
}

/// Drops a task's future, swallowing a panic from its destructor: the task has already
/// failed, and the executor must go on with the others.
fn drop_quietly(future: Option<BoxedTask>) {
    if let Some(future) = future {
        let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
    }
}

/// Reinstalls a stall hook taken out for a call, unless the call installed another.
struct RestoreHook<'a> {
    slot: &'a RefCell<Option<StallHook>>,
    hook: Option<StallHook>,
}

impl Drop for RestoreHook<'_> {
    fn drop(&mut self) {
        let mut slot = self.slot.borrow_mut();
        if slot.is_none() {
            *slot = self.hook.take();
        }
    }
}
