//! The step future: waits for its outcome to be *delivered*, starting its body only
//! when the journal has no outcome for it and replay is over.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::future::LocalBoxFuture;
use futures::FutureExt;
use ordo_journal::{Completion, Outcome};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::core::Core;
use crate::ctx::Ctx;
use crate::error::Error;
use crate::fingerprint;
use crate::workflow::{Settling, WorkflowState};

/// What a finished step body hands back: its encoded outcome (or why encoding
/// failed) and how many attempts it took.
pub(crate) struct BodyOutput {
    pub(crate) outcome: Result<Outcome, String>,
    pub(crate) attempts: u32,
    /// What the completion writes besides itself, in the same commit.
    pub(crate) effect: crate::core::Effect,
}

impl BodyOutput {
    /// One attempt's outcome, writing nothing else.
    pub(crate) fn new(outcome: Result<Outcome, String>) -> Self {
        BodyOutput {
            outcome,
            attempts: 1,
            effect: crate::core::Effect::None,
        }
    }

    /// The same outcome, committed together with `effect`.
    pub(crate) fn with_effect(mut self, effect: crate::core::Effect) -> Self {
        self.effect = effect;
        self
    }
}

/// A step body with its types erased; called at most once, when the step goes live.
pub(crate) type Body = Box<dyn FnOnce() -> LocalBoxFuture<'static, BodyOutput>>;

/// Encodes a step's `Result` as the journal's outcome.
///
/// Hidden, for the test kit: a step mock answers with the bytes the body would have
/// produced (see [`BeforeStepBody`]).
pub fn encode_result<T, E>(result: &Result<T, E>) -> Result<Outcome, String>
where
    T: Serialize + DeserializeOwned + 'static,
    E: Serialize + DeserializeOwned + 'static,
{
    match result {
        Ok(value) => codec::encode(fingerprint::of::<T>(), value).map(Outcome::Ok),
        Err(error) => codec::encode(fingerprint::of::<E>(), error).map(Outcome::Err),
    }
}

/// Testing aid (hidden), installed with `RuntimeBuilder::before_step_body`: called when
/// a live step body is about to start; the body starts once the returned future
/// resolves, unless it resolves to an outcome, which then stands for the body's. The test
/// kit delays bodies with it (other latencies, other completion orders), notes which
/// bodies ran, and answers mocked steps. Never called for a step the journal answers.
pub type BeforeStepBody = Rc<dyn Fn(&StepInfo) -> LocalBoxFuture<'static, Option<Outcome>>>;

/// Which step a body belongs to; readable from inside the body with
/// [`current_step`], to pass an idempotency key to an external service.
///
/// ```
/// let info = ordo::StepInfo { workflow_id: "order-42".into(), step_id: 3, name: "charge".into() };
/// assert_eq!(info.idempotency_key(), "order-42:3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// The workflow the step belongs to.
    pub workflow_id: String,
    /// The step's call-site number, stable across replays.
    pub step_id: u64,
    /// The step's name.
    pub name: String,
}

impl StepInfo {
    /// A key that is the same every time this step's body runs (a body runs again when
    /// the process died while it was in flight), and different for every other step:
    /// `"<workflow id>:<step id>"`. Pass it to a payment API's idempotency header and
    /// the effect happens exactly once.
    ///
    /// ```
    /// let info = ordo::StepInfo { workflow_id: "w".into(), step_id: 0, name: "s".into() };
    /// assert_eq!(info.idempotency_key(), "w:0");
    /// ```
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.workflow_id, self.step_id)
    }
}

thread_local! {
    /// The step whose body is being polled on this thread: its workflow and step id.
    /// The `StepInfo` is built only when a body asks for it (most never do).
    static CURRENT_STEP: RefCell<Option<(Rc<WorkflowState>, u64)>> = const { RefCell::new(None) };
}

/// The step whose body is running, when called from inside a step body (from the
/// body's own future, not from tasks it hands work to).
///
/// ```
/// # use ordo::{Ctx, Runtime};
/// async fn pay(ctx: Ctx, amount: u64) -> Result<String, String> {
///     ctx.step("charge", move || async move {
///         let key = ordo::current_step().expect("inside a step body").idempotency_key();
///         Ok::<_, String>(format!("charged {amount} with key {key}"))
///     })
///     .await
/// }
/// let rt = Runtime::builder().temporary().register("pay", pay).build()?;
/// let handle = rt.start::<_, String, String>("pay", "p-1", 5u64)?;
/// assert_eq!(rt.block_on(handle.result())?, Ok("charged 5 with key p-1:0".to_string()));
/// # Ok::<(), ordo::Error>(())
/// ```
pub fn current_step() -> Option<StepInfo> {
    CURRENT_STEP.with(|c| {
        c.borrow().as_ref().map(|(wf, step_id)| StepInfo {
            workflow_id: wf.id.clone(),
            step_id: *step_id,
            name: wf.step_name(*step_id).to_string(),
        })
    })
}

/// Polls a body with [`CURRENT_STEP`] set to its step.
struct WithStep {
    wf: Rc<WorkflowState>,
    step_id: u64,
    body: LocalBoxFuture<'static, BodyOutput>,
}

impl Future for WithStep {
    type Output = BodyOutput;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BodyOutput> {
        let current = (Rc::clone(&self.wf), self.step_id);
        // Restored by a guard, also when the body panics: a stale step here would hand
        // the next, unrelated body another step's idempotency key.
        let _restore = RestoreStep(CURRENT_STEP.with(|c| c.replace(Some(current))));
        self.body.as_mut().poll(cx)
    }
}

/// Puts back the step that was current before a body's poll.
struct RestoreStep(Option<(Rc<WorkflowState>, u64)>);

impl Drop for RestoreStep {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT_STEP.with(|c| *c.borrow_mut() = previous);
    }
}

/// How the names of ordo's own steps (a sleep's, a message's, a child's launch...)
/// begin: `ordo.sleep`, `ordo.recv`, `ordo.child.start`.
pub(crate) const OWN_STEP_PREFIX: &str = "ordo.";

/// A durable step: resolves to the step's recorded `Result<T, E>`.
///
/// Created by [`Ctx::step`] and [`Ctx::step_with`], which take the step id at the call
/// (determinism rule 1). The body starts on the first poll when the step is live;
/// when the journal holds its outcome the body never runs and the recorded outcome is
/// delivered instead. Dropping an unfinished step (a `select!` loser) cancels its body.
///
/// ```
/// use ordo::{Ctx, Runtime, Step};
///
/// async fn both(ctx: Ctx, _: ()) -> Result<(u32, u32), String> {
///     // Two steps created now (ids 0 and 1), awaited together.
///     let a: Step<u32, String> = ctx.step("a", || async { Ok(1) });
///     let b: Step<u32, String> = ctx.step("b", || async { Ok(2) });
///     assert_eq!((a.id(), b.id()), (0, 1));
///     let (a, b) = futures::join!(a, b);
///     Ok((a?, b?))
/// }
/// let rt = Runtime::builder().temporary().register("both", both).build()?;
/// let handle = rt.start::<_, (u32, u32), String>("both", "b-1", ())?;
/// assert_eq!(rt.block_on(handle.result())?, Ok((1, 2)));
/// # Ok::<(), ordo::Error>(())
/// ```
#[must_use = "a step does nothing unless awaited"]
pub struct Step<T, E> {
    ctx: Ctx,
    id: u64,
    body: Option<Body>,
    /// The running body, stopped when the step is dropped unfinished.
    running: Option<Running>,
    /// Whether the body runs in the step's own polls (see [`Step::in_place`]).
    in_place: bool,
    deferred: bool,
    done: bool,
    _outcome: PhantomData<fn() -> (T, E)>,
}

impl<T, E> Step<T, E> {
    pub(crate) fn new(ctx: Ctx, id: u64, body: Body) -> Self {
        Step {
            ctx,
            id,
            body: Some(body),
            running: None,
            in_place: false,
            deferred: false,
            done: false,
            _outcome: PhantomData,
        }
    }

    /// The step's call-site number.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// async fn two(ctx: Ctx, _: ()) -> Result<(u64, u64), ()> {
    ///     let a = ctx.step("a", || async { Ok::<u8, ()>(1) });
    ///     let b = ctx.step("b", || async { Ok::<u8, ()>(2) });
    ///     Ok((a.id(), b.id()))
    /// }
    /// # let rt = Runtime::builder().temporary().register("two", two).build()?;
    /// # let h = rt.start::<_, (u64, u64), ()>("two", "t", ())?;
    /// assert_eq!(rt.block_on(h.result())?, Ok((0, 1)));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// This step with its body polled in the step's own polls instead of spawned as a
    /// task: for ordo's own waits (a `recv`, a `get_event`, an awakeable), whose bodies
    /// only wait for a wake that also reaches whatever awaits the step. A workflow
    /// parked in one then keeps no task and no task slot for it. A body run in place
    /// makes progress only while the step is polled, which these waits always are.
    pub(crate) fn in_place(mut self) -> Self {
        self.in_place = true;
        self
    }

    /// Starts the body, as its own task or in place (see [`Step::in_place`]); its
    /// outcome becomes a queued completion.
    fn start(&self, body: Body) -> Running {
        let core = Rc::clone(&self.ctx.core);
        let wf = Rc::clone(&self.ctx.wf);
        let step_id = self.id;
        let started_ms = core.now_ms();
        let name = wf.step_name(step_id);
        let body = match before_body(&core, &wf, step_id, &name) {
            None => body(),
            Some(before) => async move {
                match before.await {
                    Some(outcome) => BodyOutput::new(Ok(outcome)),
                    None => body().await,
                }
            }
            .boxed_local(),
        };
        let body = WithStep {
            wf: Rc::clone(&wf),
            step_id,
            body,
        };
        let body = crate::telemetry::step_body::<E, _>(&wf, step_id, &name, body);
        let task = AssertUnwindSafe(body).catch_unwind();
        // A combinator, not an `async` block, which would hold `task` twice: a step
        // whose body waits long keeps this future for as long as it waits.
        let run = task.map(move |ended| {
            complete(&core, wf, step_id, &name, started_ms, ended);
        });
        if self.in_place {
            Running::InPlace(run.boxed_local())
        } else {
            Running::Task(ordo_executor::spawn(run))
        }
    }
}

/// The test kit's hook for the live body of step `step_id` about to start, if one is
/// installed (see [`BeforeStepBody`]): the body starts once it resolves, unless it
/// resolves to an outcome, which stands for the body's.
pub(crate) fn before_body(
    core: &Core,
    wf: &WorkflowState,
    step_id: u64,
    name: &str,
) -> Option<LocalBoxFuture<'static, Option<Outcome>>> {
    core.before_step_body.as_ref().map(|hook| {
        hook(&StepInfo {
            workflow_id: wf.id.clone(),
            step_id,
            name: name.to_string(),
        })
    })
}

/// Where a started step body runs.
enum Running {
    /// A task of its own, aborted when the step is dropped unfinished (the executor's
    /// own handle: no shared abort flag to allocate and check per step).
    Task(ordo_executor::JoinHandle<()>),
    /// In the step's own polls, dropped with it (see [`Step::in_place`]).
    InPlace(LocalBoxFuture<'static, ()>),
}

/// Queues what a live body of step `step_id` ended with as its completion: its outcome,
/// or the workflow's failure when the body panicked or its outcome could not be encoded.
pub(crate) fn complete(
    core: &Core,
    wf: Rc<WorkflowState>,
    step_id: u64,
    name: &str,
    started_ms: u64,
    ended: std::thread::Result<BodyOutput>,
) {
    match ended {
        Err(panic) => wf.fail(Error::Panicked {
            workflow_id: wf.id.clone(),
            message: format!(
                "step {step_id} ({name:?}) panicked: {}",
                crate::panic_message(&*panic)
            ),
        }),
        Ok(BodyOutput {
            outcome: Err(detail),
            ..
        }) => wf.fail(Error::Encode {
            workflow_id: wf.id.clone(),
            what: format!("the outcome of step {step_id} ({name:?})"),
            detail,
        }),
        Ok(BodyOutput {
            outcome: Ok(outcome),
            attempts,
            effect,
        }) => {
            let ended_ms = core.now_ms();
            core.queue_completion(
                Rc::clone(&wf),
                Completion {
                    seq: 0, // assigned at commit
                    step_id,
                    name: String::from(name),
                    outcome,
                    attempts,
                    started_ms,
                    ended_ms,
                },
                effect,
            );
        }
    }
}

/// What a step future finds in its step's slot when polled.
pub(crate) enum Found {
    /// No slot: the step was released, or the workflow is being torn down.
    Gone,
    /// Its outcome, delivered: the step is over.
    Delivered(Outcome),
    /// No outcome delivered yet; `recorded` when the journal holds one.
    Waiting { recorded: bool },
}

/// Looks at step `id`'s slot for a poll with `cx`, whose waker its delivery wakes.
pub(crate) fn look(wf: &WorkflowState, id: u64, cx: &Context<'_>) -> Found {
    if !wf.is_running() {
        // Failed or returning: the workflow's tasks are being torn down.
        return Found::Gone;
    }
    let (found, replaced) = {
        let mut steps = wf.steps.borrow_mut();
        let Some(slot) = steps.get_mut(id) else {
            return Found::Gone;
        };
        match slot.outcome.take() {
            Some(outcome) => (Found::Delivered(outcome), None),
            None => {
                let recorded = slot.recorded;
                let replaced = if slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    None
                } else {
                    slot.waker.replace(cx.waker().clone())
                };
                (Found::Waiting { recorded }, replaced)
            }
        }
    };
    // The replaced waker is dropped after the borrow ends: dropping a waker can run its
    // owner's code, which may come back here.
    drop(replaced);
    found
}

/// Decodes step `id`'s delivered outcome as `Result<T, E>` and gives its slot back (a
/// parked workflow keeps no slot for a step that is over). A type mismatch fails the
/// workflow: `None`.
pub(crate) fn decode_delivered<T: DeserializeOwned + 'static, E: DeserializeOwned + 'static>(
    ctx: &Ctx,
    id: u64,
    outcome: Outcome,
) -> Option<Result<T, E>> {
    let wf = &ctx.wf;
    let (decoded, key) = match &outcome {
        Outcome::Ok(bytes) => {
            let key = fingerprint::of::<T>();
            (codec::decode::<T>(key, bytes).map(Ok), key)
        }
        Outcome::Err(bytes) => {
            let key = fingerprint::of::<E>();
            (codec::decode::<E>(key, bytes).map(Err), key)
        }
    };
    let decoded = decoded.map_err(|err| {
        // Named before the slot goes; only a mismatch needs the name.
        let what = format!("the outcome of step {} ({:?})", id, wf.step_name(id));
        codec::type_error(&*ctx.core.store, &wf.id, what, key, err)
    });
    wf.release_step(id);
    match decoded {
        Ok(result) => Some(result),
        Err(mismatch) => {
            wf.fail(mismatch);
            None
        }
    }
}

/// Whether a step with no outcome delivered yet, whose body has not started, may start
/// it now.
pub(crate) enum Go {
    /// Never: the journal holds its outcome, which will be delivered.
    Recorded,
    /// Not yet: `cx`'s waker is woken when it may.
    Wait,
    /// Now: the step is live.
    Start,
}

/// [`Go`] for step `id` (`recorded` as [`look`] found it); `deferred` remembers that
/// the poll's waker waits for the end of replay.
pub(crate) fn may_start(
    ctx: &Ctx,
    id: u64,
    recorded: bool,
    deferred: &mut bool,
    cx: &Context<'_>,
) -> Go {
    let wf = &ctx.wf;
    if recorded {
        // The journal has this step's outcome: it will be delivered; the body must
        // never run again.
        Go::Recorded
    } else if wf.is_replaying() {
        // Determinism rule 3: no step starts live until every recorded completion has
        // been delivered.
        if !*deferred {
            *deferred = true;
            wf.defer_until_live(cx.waker());
        }
        Go::Wait
    } else if wf.settling.get() != Settling::Settled
        && !wf.step_name(id).starts_with(OWN_STEP_PREFIX)
    {
        // Resumed with a recovery attempt counted: a body of its own starts once the
        // commit that settles the resumption is durable (see `Settling`). Ordo's own
        // waits (a sleep, a message) start now.
        wf.settling.set(Settling::WantsBody);
        ctx.core.wait_for_settling(cx.waker());
        Go::Wait
    } else {
        Go::Start
    }
}

impl<T: DeserializeOwned + 'static, E: DeserializeOwned + 'static> Future for Step<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, E>> {
        let this = &mut *self;
        assert!(!this.done, "a step was polled after it completed");
        match look(&this.ctx.wf, this.id, cx) {
            Found::Gone => {}
            Found::Delivered(outcome) => {
                this.done = true;
                this.running = None;
                if let Some(result) = decode_delivered(&this.ctx, this.id, outcome) {
                    return Poll::Ready(result);
                }
            }
            Found::Waiting { recorded } => {
                if this.running.is_none() && this.body.is_some() {
                    match may_start(&this.ctx, this.id, recorded, &mut this.deferred, cx) {
                        Go::Recorded => this.body = None,
                        Go::Wait => {}
                        Go::Start => {
                            if let Some(body) = this.body.take() {
                                this.running = Some(this.start(body));
                            }
                        }
                    }
                }
                if let Some(Running::InPlace(run)) = &mut this.running {
                    if run.as_mut().poll(cx).is_ready() {
                        // Its completion is queued: the step waits for its delivery.
                        this.running = None;
                    }
                }
            }
        }
        Poll::Pending
    }
}

impl<T, E> Drop for Step<T, E> {
    fn drop(&mut self) {
        if let Some(Running::Task(task)) = self.running.take() {
            task.abort();
        }
        if !self.done {
            // Dropped unfinished (a `select!` loser): its outcome, if one is delivered
            // yet, goes nowhere.
            self.ctx.wf.release_step(self.id);
        }
    }
}
