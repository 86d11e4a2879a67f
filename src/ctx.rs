//! `Ctx`: what a workflow calls to make durable steps, sleeps, clock reads and tasks.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::{AbortHandle, Abortable};
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::core::{Core, PendingStart};
use crate::error::Error;
use crate::firing::Firing;
use crate::retry::RetryPolicy;
use crate::step::{encode_result, Body, BodyOutput, Step};
use crate::workflow::WorkflowState;

/// The error type of the runtime's own steps, which cannot fail.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) enum Never {}

/// Names of the runtime's own steps in the journal.
const SLEEP_UNTIL: &str = "ordo.sleep.until";
const SLEEP: &str = "ordo.sleep";
const NOW: &str = "ordo.now";
const RANDOM: &str = "ordo.random";

/// A body that runs `body` once and records its `Result` after one attempt.
fn once<F, Fut, T, E>(body: F) -> Body
where
    F: FnOnce() -> Fut + 'static,
    Fut: Future<Output = Result<T, E>> + 'static,
    T: Serialize + DeserializeOwned + 'static,
    E: Serialize + DeserializeOwned + 'static,
{
    // A combinator, not an `async` block, which would keep `body` and its future both.
    Box::new(move || {
        body()
            .map(|result| BodyOutput::new(encode_result(&result)))
            .boxed_local()
    })
}

/// The durable deadline of a `recv` or `get_event`: `timeout` from when its step runs,
/// recorded under a step id the caller took at the call (rule 1), so after a restart
/// only the remainder is waited. Waiting forever (`Duration::MAX`) records nothing.
pub(crate) struct Deadline {
    /// The recording step; `None` when waiting forever.
    step: Option<Step<u64, Never>>,
    /// What the body waiting for it reads once it is recorded.
    pub(crate) at: DeadlineAt,
}

/// The recorded deadline as the waiting body sees it.
#[derive(Clone)]
pub(crate) struct DeadlineAt {
    ms: Rc<Cell<u64>>,
    asked: Duration,
    forever: bool,
}

impl Deadline {
    /// Waits until the deadline is recorded (at once when waiting forever).
    pub(crate) async fn recorded(self) {
        if let Some(step) = self.step {
            let Ok(ms) = step.await;
            self.at.ms.set(ms);
        }
    }
}

impl DeadlineAt {
    /// The executor instant of the deadline (`None`: never), once it is recorded.
    pub(crate) fn instant(&self, core: &Core) -> Option<std::time::Instant> {
        (!self.forever).then(|| {
            core.clock
                .instant_at(self.ms.get(), ordo_executor::now(), self.asked)
        })
    }
}

/// A workflow's handle on the runtime: every durable thing a workflow does goes
/// through it. Cheap to clone (two `Rc`s); not `Send`, like the workflow itself.
///
/// ```
/// use ordo::{Ctx, Runtime};
///
/// async fn greet(ctx: Ctx, name: String) -> Result<String, String> {
///     let greeting = ctx
///         .step("compose", move || async move { Ok::<_, String>(format!("hello, {name}")) })
///         .await?;
///     Ok(greeting)
/// }
///
/// let rt = Runtime::builder().temporary().register("greet", greet).build()?;
/// let handle = rt.start::<_, String, String>("greet", "g-1", "ada".to_string())?;
/// assert_eq!(rt.block_on(handle.result())?, Ok("hello, ada".to_string()));
/// # Ok::<(), ordo::Error>(())
/// ```
#[derive(Clone)]
pub struct Ctx {
    pub(crate) core: Rc<Core>,
    pub(crate) wf: Rc<WorkflowState>,
}

impl Ctx {
    pub(crate) fn new(core: Rc<Core>, wf: Rc<WorkflowState>) -> Self {
        Ctx { core, wf }
    }

    /// The id this workflow was started with.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// async fn who(ctx: Ctx, _: ()) -> Result<String, ()> { Ok(ctx.workflow_id().to_string()) }
    /// # let rt = Runtime::builder().temporary().register("who", who).build()?;
    /// # let h = rt.start::<_, String, ()>("who", "w-7", ())?;
    /// assert_eq!(rt.block_on(h.result())?, Ok("w-7".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn workflow_id(&self) -> &str {
        &self.wf.id
    }

    /// A durable step: `body` runs at most once per successful journal write (at
    /// least once overall), and its `Result` is journaled before the workflow sees it.
    ///
    /// The step id is taken now, at the call, before anything is awaited
    /// (determinism rule 1), so steps created in a `join_all` or in two branches of a
    /// `join!` are numbered by program order. On replay, the recorded outcome is
    /// returned and `body` is not called. `Err` outcomes are recorded and replayed too.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// async fn add(ctx: Ctx, (a, b): (i64, i64)) -> Result<i64, String> {
    ///     let sum = ctx.step("add", move || async move { Ok::<_, String>(a + b) }).await?;
    ///     let checked = ctx
    ///         .step("check", move || async move {
    ///             if sum >= 0 { Ok(sum) } else { Err(format!("{sum} is negative")) }
    ///         })
    ///         .await?;
    ///     Ok(checked)
    /// }
    /// # let rt = Runtime::builder().temporary().register("add", add).build()?;
    /// let handle = rt.start::<_, i64, String>("add", "a-1", (2i64, -5i64))?;
    /// assert_eq!(rt.block_on(handle.result())?, Err("-3 is negative".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn step<F, Fut, T, E>(&self, name: &str, body: F) -> Step<T, E>
    where
        F: FnOnce() -> Fut + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
        T: Serialize + DeserializeOwned + 'static,
        E: Serialize + DeserializeOwned + 'static,
    {
        let id = self.wf.create_step(name);
        let body = once(body);
        Step::new(self.clone(), id, body)
    }

    /// A durable step whose body is retried on `Err` as `policy` says, with
    /// exponential backoff on the runtime's clock. Only the final outcome is recorded,
    /// with its attempt count.
    ///
    /// ```
    /// # use ordo::{Clock, Ctx, RetryPolicy, Runtime};
    /// # use std::{cell::Cell, rc::Rc, time::Duration};
    /// async fn flaky(ctx: Ctx, _: ()) -> Result<u32, String> {
    ///     let tries = Rc::new(Cell::new(0u32));
    ///     let policy = RetryPolicy::new(5).backoff(Duration::from_secs(60), 2.0);
    ///     ctx.step_with("call", policy, move || {
    ///         let tries = Rc::clone(&tries);
    ///         async move {
    ///             tries.set(tries.get() + 1);
    ///             if tries.get() < 3 { Err("busy".to_string()) } else { Ok(tries.get()) }
    ///         }
    ///     })
    ///     .await
    /// }
    /// // Virtual time: the minutes of backoff take no time.
    /// let rt = Runtime::builder().temporary().clock(Clock::Virtual).register("flaky", flaky).build()?;
    /// let handle = rt.start::<_, u32, String>("flaky", "f-1", ())?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(3));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn step_with<F, Fut, T, E>(
        &self,
        name: &str,
        policy: RetryPolicy,
        mut body: F,
    ) -> Step<T, E>
    where
        F: FnMut() -> Fut + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
        T: Serialize + DeserializeOwned + 'static,
        E: Serialize + DeserializeOwned + 'static,
    {
        let id = self.wf.create_step(name);
        let body: Body = Box::new(move || {
            async move {
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let result = crate::telemetry::attempt(attempts, body()).await;
                    if result.is_ok() || attempts >= policy.max_attempts {
                        let mut output = BodyOutput::new(encode_result(&result));
                        output.attempts = attempts;
                        return output;
                    }
                    ordo_executor::sleep(policy.delay_after(attempts)).await;
                }
            }
            .boxed_local()
        });
        Step::new(self.clone(), id, body)
    }

    /// The durable deadline `timeout` from now, recorded under step `id` (see
    /// [`Deadline`]).
    pub(crate) fn deadline(&self, id: u64, timeout: Duration) -> Deadline {
        let forever = timeout == Duration::MAX;
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let step = if forever {
            // The id stays taken; nothing is recorded under it.
            self.wf.release_step(id);
            None
        } else {
            let core = Rc::clone(&self.core);
            Some(self.internal_step(
                id,
                move || async move { core.now_ms().saturating_add(millis) },
            ))
        };
        Deadline {
            step,
            at: DeadlineAt {
                ms: Rc::new(Cell::new(0)),
                asked: Duration::from_millis(millis),
                forever,
            },
        }
    }

    /// An internal step whose body is infallible.
    pub(crate) fn internal_step<T, Fut>(
        &self,
        id: u64,
        body: impl FnOnce() -> Fut + 'static,
    ) -> Step<T, Never>
    where
        T: Serialize + DeserializeOwned + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let body = once(move || body().map(Ok::<T, Never>));
        Step::new(self.clone(), id, body)
    }

    /// A durable sleep: the wake-up time is recorded when the sleep starts, so after a
    /// restart only the remainder is slept; the firing itself is a recorded completion,
    /// so a `select!` between a step and a timeout picks the same winner on replay.
    ///
    /// Takes two step ids at the call: one for the recorded deadline, one for the
    /// firing.
    ///
    /// ```
    /// # use ordo::{Clock, Ctx, Runtime};
    /// # use std::time::Duration;
    /// async fn wait(ctx: Ctx, _: ()) -> Result<u64, ()> {
    ///     let before = ctx.now().await;
    ///     ctx.sleep(Duration::from_secs(3600)).await;
    ///     let after = ctx.now().await;
    ///     Ok(after.duration_since(before).unwrap_or_default().as_secs())
    /// }
    /// let rt = Runtime::builder().temporary().clock(Clock::Virtual).register("wait", wait).build()?;
    /// let handle = rt.start::<_, u64, ()>("wait", "w-1", ())?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(3600)); // an hour, instantly
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + 'static {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let until_id = self.wf.create_step(SLEEP_UNTIL);
        let fire_id = self.wf.create_step(SLEEP);
        let core = Rc::clone(&self.core);
        let deadline: Step<u64, Never> = self.internal_step(until_id, move || async move {
            core.now_ms().saturating_add(millis)
        });
        // The firing's step exists from the call on, so a sleep dropped before its
        // deadline was even delivered (a `select!` loser) still gives its slot back. It
        // is polled, and its timer set, only once the deadline is known. Combinators, not
        // an `async` block, which would hold each step twice (captured, and being
        // awaited): a parked workflow keeps this future for as long as it sleeps.
        let fired = Firing::new(self.clone(), fire_id, Duration::from_millis(millis));
        deadline.then(move |Ok(deadline)| fired.at(deadline))
    }

    /// The current wall-clock time, recorded: a replay sees the time of the first run.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// async fn stamp(ctx: Ctx, _: ()) -> Result<bool, ()> {
    ///     Ok(ctx.now().await > std::time::UNIX_EPOCH)
    /// }
    /// # let rt = Runtime::builder().temporary().register("stamp", stamp).build()?;
    /// # let h = rt.start::<_, bool, ()>("stamp", "s-1", ())?;
    /// assert_eq!(rt.block_on(h.result())?, Ok(true));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn now(&self) -> impl Future<Output = SystemTime> + 'static {
        let id = self.wf.create_step(NOW);
        let core = Rc::clone(&self.core);
        let step: Step<u64, Never> = self.internal_step(id, move || async move { core.now_ms() });
        async move {
            let Ok(ms) = step.await;
            UNIX_EPOCH + Duration::from_millis(ms)
        }
    }

    /// A random `u64`, recorded: a replay sees the same number.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// async fn roll(ctx: Ctx, _: ()) -> Result<u64, ()> { Ok(ctx.random().await % 6 + 1) }
    /// # let rt = Runtime::builder().temporary().register("roll", roll).build()?;
    /// # let h = rt.start::<_, u64, ()>("roll", "r-1", ())?;
    /// let face = rt.block_on(h.result())?.expect("a roll");
    /// assert!((1..=6).contains(&face));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn random(&self) -> impl Future<Output = u64> + 'static {
        let id = self.wf.create_step(RANDOM);
        let step: Step<u64, Never> = self.internal_step(id, || async { fastrand::u64(..) });
        async move {
            let Ok(value) = step.await;
            value
        }
    }

    /// Ends this run of the workflow and starts it over, under the same id, with `input`:
    /// its recorded history is dropped in the same commit that records the new input,
    /// so an endless workflow (a subscription, a poller) keeps a bounded journal, and a
    /// replay after a crash replays only the current run. Handles of the workflow follow
    /// it to its final result. The returned future never completes: `return` it, or
    /// `.await` it as the last thing the run does.
    ///
    /// `input` must be of the workflow's registered input type.
    ///
    /// The next run numbers its steps on from where this run stopped (the journal
    /// records where it starts), so nothing named after a step id is shared between
    /// runs: its children started without an explicit
    /// [`ChildOptions::id`](crate::ChildOptions::id) get ids of their own (not the
    /// earlier runs' children, finished), and its awakeables give out tokens of their
    /// own; a token an earlier run gave out is refused with
    /// [`Error::UnknownAwakeable`](crate::Error::UnknownAwakeable) (or
    /// [`Error::AwakeableResolved`](crate::Error::AwakeableResolved) if it was
    /// resolved), never completes this run's awakeable.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    ///
    /// async fn poller(ctx: Ctx, round: u32) -> Result<u32, String> {
    ///     ctx.step("poll", || async { Ok::<_, String>(()) }).await?;
    ///     ctx.sleep(Duration::from_secs(60)).await;
    ///     if round < 100 {
    ///         return ctx.continue_as_new(round + 1).await;
    ///     }
    ///     Ok(round)
    /// }
    ///
    /// let rt = Runtime::builder().temporary().clock(ordo::Clock::Virtual)
    ///     .register("poller", poller).build()?;
    /// let handle = rt.start::<_, u32, String>("poller", "p", 0u32)?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(100));
    /// // Only the last run's two steps (the poll and the sleep's two records) are kept.
    /// assert_eq!(rt.journal().completions("p")?.len(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn continue_as_new<I: Serialize, T>(&self, input: I) -> ContinueAsNew<T> {
        if let Err(err) = self.prepare_continue(&input) {
            self.wf.fail(err);
        }
        ContinueAsNew {
            _output: PhantomData,
        }
    }

    /// Checks and encodes the next run's input and queues the continuation.
    fn prepare_continue<I: Serialize>(&self, input: &I) -> Result<(), Error> {
        let wf = &self.wf;
        let registration = self.core.registry.lookup(&wf.name)?.clone();
        let encoded = registration.encode_input(&wf.id, input)?;
        let now_ms = self.core.now_ms();
        let mut record = wf.pending_record(0, now_ms);
        record.input = encoded;
        // The next run gives out tokens of its own (its steps come after every earlier
        // run's): keyed, also for a workflow whose earlier runs gave out plain ones.
        record.keyed_tokens = true;
        let next = Rc::new(WorkflowState::new(&record, Vec::new()));
        crate::telemetry::continue_trace(wf, &next);
        self.core.queue_continue(
            Rc::clone(wf),
            PendingStart {
                wf: next,
                record,
                is_new: false,
                registration,
            },
        );
        Ok(())
    }

    /// Runs `fut` as a task of this workflow on the same executor, so it may run
    /// steps concurrently with the workflow's main body. If the task panics, the
    /// workflow is stopped and reported as panicked; if the workflow stops, the task is
    /// cancelled.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// async fn fan_out(ctx: Ctx, n: u32) -> Result<u32, ()> {
    ///     let tasks: Vec<_> = (0..n)
    ///         .map(|i| {
    ///             let c = ctx.clone();
    ///             ctx.spawn(async move { c.step("square", move || async move { Ok::<_, ()>(i * i) }).await })
    ///         })
    ///         .collect();
    ///     let mut total = 0;
    ///     for task in tasks {
    ///         total += task.await?;
    ///     }
    ///     Ok(total)
    /// }
    /// # let rt = Runtime::builder().temporary().register("fan_out", fan_out).build()?;
    /// # let h = rt.start::<_, u32, ()>("fan_out", "f-1", 4u32)?;
    /// assert_eq!(rt.block_on(h.result())?, Ok(0 + 1 + 4 + 9));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn spawn<F>(&self, fut: F) -> TaskHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let (handle, registration) = AbortHandle::new_pair();
        let key = self.wf.register_abort(handle);
        let wf = Rc::clone(&self.wf);
        let task = Abortable::new(AssertUnwindSafe(fut).catch_unwind(), registration);
        let inner = ordo_executor::spawn(async move {
            let result = task.await;
            wf.unregister_abort(key);
            match result {
                Ok(Ok(value)) => Some(value),
                Ok(Err(panic)) => {
                    wf.fail(Error::Panicked {
                        workflow_id: wf.id.clone(),
                        message: format!(
                            "a spawned task panicked: {}",
                            crate::panic_message(&*panic)
                        ),
                    });
                    None
                }
                Err(_aborted) => None,
            }
        });
        TaskHandle { inner }
    }
}

/// A task started with [`Ctx::spawn`]; resolves to the task's output.
///
/// Never resolves if the task was cancelled or panicked: the workflow awaiting it is
/// being stopped in that case, and its handle reports why.
///
/// ```
/// use ordo::{Ctx, Runtime, TaskHandle};
///
/// async fn two_lanes(ctx: Ctx, _: ()) -> Result<u32, ()> {
///     let c = ctx.clone();
///     let lane: TaskHandle<Result<u32, ()>> =
///         ctx.spawn(async move { c.step("left", || async { Ok::<_, ()>(1) }).await });
///     let right = ctx.step("right", || async { Ok::<_, ()>(2) }).await?;
///     Ok(lane.await? + right)
/// }
///
/// let rt = Runtime::builder().temporary().register("two_lanes", two_lanes).build()?;
/// let handle = rt.start::<_, u32, ()>("two_lanes", "t-1", ())?;
/// assert_eq!(rt.block_on(handle.result())?, Ok(3));
/// # Ok::<(), ordo::Error>(())
/// ```
#[must_use = "dropping a TaskHandle detaches the task"]
pub struct TaskHandle<T> {
    inner: ordo_executor::JoinHandle<Option<T>>,
}

impl<T: 'static> Future for TaskHandle<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Ready(Ok(Some(value))) => Poll::Ready(value),
            Poll::Ready(_) | Poll::Pending => Poll::Pending,
        }
    }
}

/// The future [`Ctx::continue_as_new`] returns: it never completes, since the run that
/// awaits it is over; its output type is whatever the workflow returns.
///
/// ```
/// # use ordo::{Ctx, ContinueAsNew};
/// async fn forever(ctx: Ctx, n: u64) -> Result<(), String> {
///     let next: ContinueAsNew<Result<(), String>> = ctx.continue_as_new(n + 1);
///     next.await
/// }
/// ```
#[must_use = "a continuation happens when the run awaits it or returns it"]
pub struct ContinueAsNew<T> {
    _output: PhantomData<fn() -> T>,
}

impl<T> Future for ContinueAsNew<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        // The run is over: the runtime aborts its tasks once the continuation is durable.
        Poll::Pending
    }
}
