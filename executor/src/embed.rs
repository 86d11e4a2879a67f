//! Driving the executor from inside another runtime: the `Run` future, and the helper
//! thread that turns the executor's timers into outer wake-ups.
//!
//! When embedded, the executor's thread belongs to the outer runtime, so the executor
//! must never park it. Cross-thread and out-of-poll wakes reach the outer runtime through
//! the outer waker (`Remote::outer`). Timers with the system clock need someone to wake
//! the outer task at the earliest deadline: one process-wide helper thread, started on
//! first need, keeps `(deadline, waker)` requests and wakes each when due. A thread
//! rather than the outer runtime's own timer because the executor must not depend on
//! which runtime embeds it. Requests that turn out stale only cause a spurious outer
//! poll.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::context;
use crate::executor::Executor;
use crate::local::Idle;

/// The future returned by [`Executor::run`]: drives the executor from another runtime.
///
/// Each poll takes in wakes, fires due timers and polls at most the poll budget of
/// tasks ([`ExecutorBuilder::poll_budget`](crate::ExecutorBuilder::poll_budget)). If
/// tasks are still ready then, it wakes the outer task and returns `Pending`, so the
/// outer runtime gets to run its own work. When no task is ready it calls the stall
/// hook; then it completes if no task is left, jumps a virtual clock to the next
/// timer, or returns `Pending` having registered the outer waker for every inner wake
/// (and, with the system clock, for the earliest timer deadline via a helper thread).
///
/// `Run` borrows a `!Sync` executor, so it is `!Send`: run it on a current-thread
/// runtime, in a tokio `LocalSet`, or under any single-thread `block_on`.
///
/// ```
/// use std::time::Duration;
/// use ordo_executor::{sleep, Executor};
///
/// let ex = Executor::new();
/// let handle = ex.spawn(async {
///     sleep(Duration::from_millis(2)).await;
///     "slept"
/// });
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// rt.block_on(ex.run());
/// assert!(handle.is_finished());
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Run<'a> {
    executor: &'a Executor,
}

impl<'a> Run<'a> {
    pub(crate) fn new(executor: &'a Executor) -> Self {
        Run { executor }
    }
}

impl Future for Run<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let local = self.executor.local();
        let _driving = local.start_driving("run");
        let _current = context::enter(local);
        // Registered first, so a wake from another thread while this poll runs is not
        // missed after the poll returns `Pending`.
        local.remote.outer.register(cx.waker());
        let budget = local.poll_budget;
        let mut polls = 0;
        loop {
            polls += local.run_batch(budget - polls);
            if local.has_ready() {
                if polls >= budget {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                continue;
            }
            if local.call_stall_hook() {
                continue;
            }
            if local.live_tasks() == 0 {
                return Poll::Ready(());
            }
            match local.idle_step() {
                Idle::Progress => {}
                Idle::Wait(deadline) => {
                    if let Some(deadline) = deadline {
                        let mut registered = local.embed_deadline.borrow_mut();
                        let fresh = match &*registered {
                            Some((at, waker)) => *at != deadline || !waker.will_wake(cx.waker()),
                            None => true,
                        };
                        if fresh {
                            *registered = Some((deadline, cx.waker().clone()));
                            wake_at(deadline, cx.waker().clone());
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// The helper thread's requests, earliest first.
struct TimerRequests {
    queue: Mutex<RequestQueue>,
    changed: Condvar,
}

/// Pending wake-ups keyed by (deadline, request number); the number keeps equal
/// deadlines apart. A `Mutex` (not a lock-free structure) because requests are rare:
/// at most one per `run()` poll that goes idle with a new earliest deadline.
#[derive(Default)]
struct RequestQueue {
    wakeups: BTreeMap<(Instant, u64), Waker>,
    next_request: u64,
}

static TIMER_THREAD: OnceLock<&'static TimerRequests> = OnceLock::new();

/// Asks the helper thread to wake `waker` at `deadline`.
fn wake_at(deadline: Instant, waker: Waker) {
    let requests = TIMER_THREAD.get_or_init(|| {
        let requests: &'static TimerRequests = Box::leak(Box::new(TimerRequests {
            queue: Mutex::new(RequestQueue::default()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("ordo-executor-timer".into())
            .spawn(move || timer_thread(requests))
            .expect("ordo_executor: could not start the timer thread for Executor::run");
        requests
    });
    let mut queue = requests.queue.lock().unwrap_or_else(|e| e.into_inner());
    let request = queue.next_request;
    queue.next_request += 1;
    queue.wakeups.insert((deadline, request), waker);
    drop(queue);
    requests.changed.notify_one();
}

fn timer_thread(requests: &'static TimerRequests) {
    let mut queue = requests.queue.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(entry) = queue.wakeups.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            drop(queue);
            for waker in due {
                waker.wake();
            }
            queue = requests.queue.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        queue = match queue.wakeups.keys().next() {
            Some(&(deadline, _)) => {
                let wait = deadline.saturating_duration_since(now);
                requests
                    .changed
                    .wait_timeout(queue, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => requests
                .changed
                .wait(queue)
                .unwrap_or_else(|e| e.into_inner()),
        };
    }
}
