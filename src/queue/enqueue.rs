//! Putting workflows in queues: [`Runtime::enqueue`] from outside, [`Ctx::enqueue`] from
//! a workflow (a recorded step).

use std::future::Future;
use std::rc::Rc;

use futures::FutureExt;
use ordo_journal::WorkflowRecord;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::dispatch::Reserved;
use super::{EnqueueOptions, OnDuplicate};
use crate::core::Effect;
use crate::ctx::{Ctx, Never};
use crate::error::Error;
use crate::handle::WorkflowHandle;
use crate::runtime::Runtime;
use crate::step::{encode_result, Body, BodyOutput, Step};

/// The name of the enqueue step in the journal.
const ENQUEUE: &str = "ordo.enqueue";

/// What an enqueue step records.
#[derive(Serialize, Deserialize)]
enum Recorded {
    /// The id of the workflow enqueued (or found under its id or deduplication id, when
    /// asked to return it).
    Enqueued(String),
    /// Refused: the deduplication id is held by this workflow.
    Duplicate(String),
    /// Refused: the id is held by a workflow of this other name.
    Conflict(String),
}

/// An id for a workflow enqueued without one.
pub(crate) fn generated_id(queue: &str) -> String {
    format!("{queue}-{:016x}", fastrand::u64(..))
}

impl Runtime {
    /// Puts workflow `name` with `input` in queue `queue` (declared with
    /// [`RuntimeBuilder::queue`](crate::RuntimeBuilder::queue)); it starts when the
    /// queue's limits allow. Returns its handle at once (status `Enqueued`, or `Delayed`
    /// with [`EnqueueOptions::delay`]); the enqueue is durable with the next group
    /// commit, as a start is.
    ///
    /// An id already recorded (with the same name) gives that workflow's handle. A
    /// deduplication id in use gives [`Error::Duplicate`] or the holder's handle, as
    /// [`EnqueueOptions::dedup`] asks.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownQueue`], [`Error::QueueOption`] (a priority or partition key the
    /// queue does not take, or a missing partition key), [`Error::UnknownWorkflow`],
    /// [`Error::TypeMismatch`], [`Error::Conflict`], [`Error::Duplicate`], journal errors.
    ///
    /// ```
    /// use ordo::{Ctx, EnqueueOptions, QueueOptions, Runtime, Status};
    /// async fn charge(_: Ctx, cents: u64) -> Result<u64, String> { Ok(cents) }
    ///
    /// let rt = Runtime::builder().temporary()
    ///     .queue("payments", QueueOptions::new().concurrency(2))
    ///     .register("charge", charge)
    ///     .build()?;
    /// let handle = rt.enqueue::<_, u64, String>("payments", "charge", 500u64,
    ///     EnqueueOptions::new().id("charge-1"))?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(500));
    /// assert_eq!(handle.status()?, Status::Succeeded);
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn enqueue<I, O, E>(
        &self,
        queue: &str,
        name: &str,
        input: I,
        options: EnqueueOptions,
    ) -> Result<WorkflowHandle<O, E>, Error>
    where
        I: Serialize,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        if let Some(err) = self.core.broken() {
            return Err(err);
        }
        let core = &self.core;
        core.queues.options(queue)?;
        let registration = core.registry.lookup(name)?;
        let id = options.id.clone().unwrap_or_else(|| generated_id(queue));
        registration.check_outputs::<O, E>(&id, "handle")?;
        let input = registration.encode_input(&id, &input)?;
        let record = WorkflowRecord::new(&id, name, input, 0);
        let (id, dispatched) =
            core.queues
                .enqueue_outside(core, queue, record, &options, self.now_ms())?;
        if dispatched.is_none() {
            // Found under its id or its deduplication id: the holder may be another
            // workflow, whose types must be `O` and `E` too.
            let holder = core.holder_name(&id)?;
            if let Some(registration) = holder.and_then(|n| core.registry.get(&n).cloned()) {
                registration.check_outputs::<O, E>(&id, "handle")?;
            }
        }
        let running = core.running.borrow().get(&id).cloned();
        let mut handle = WorkflowHandle::new(id, Rc::clone(core), running);
        if let Some(dispatched) = dispatched {
            handle.follow_dispatch(dispatched);
        }
        Ok(handle)
    }
}

pub(crate) fn duplicate(queue: &str, options: &EnqueueOptions, existing: String) -> Error {
    Error::Duplicate {
        queue: queue.to_string(),
        dedup_id: options
            .dedup
            .as_ref()
            .map(|(d, _)| d.clone())
            .unwrap_or_default(),
        workflow_id: existing,
    }
}

impl Ctx {
    /// Puts workflow `name` with `input` in queue `queue`, as a recorded step: the
    /// enqueue happens once, however often this workflow is replayed. Resolves to the
    /// enqueued workflow's id (by default `"<this workflow's id>/<step id>"`), or the
    /// holder's id when [`OnDuplicate::ReturnExisting`] finds its deduplication id in
    /// use. Takes one step id at the call.
    ///
    /// The enqueued workflow runs on its own: read its result with
    /// [`Ctx::get_event`] / messages, or from outside with its id.
    ///
    /// # Errors
    ///
    /// [`Error::Duplicate`] (recorded: a replay gives it again), [`Error::Conflict`]
    /// (recorded), and, before anything is recorded, [`Error::UnknownQueue`],
    /// [`Error::QueueOption`], [`Error::UnknownWorkflow`] and input encoding errors.
    ///
    /// ```
    /// use ordo::{Ctx, EnqueueOptions, QueueOptions, Runtime};
    /// async fn email(_: Ctx, to: String) -> Result<(), String> { Ok(()) }
    /// async fn signup(ctx: Ctx, user: String) -> Result<String, String> {
    ///     let options = EnqueueOptions::new().dedup(format!("welcome-{user}"), ordo::OnDuplicate::Reject);
    ///     ctx.enqueue("emails", "email", user, options).await.map_err(|e| e.to_string())
    /// }
    /// let rt = Runtime::builder().temporary()
    ///     .queue("emails", QueueOptions::new().concurrency(4))
    ///     .register("email", email).register("signup", signup)
    ///     .build()?;
    /// let h = rt.start::<_, String, String>("signup", "u-1", "ada".to_string())?;
    /// assert_eq!(rt.block_on(h.result())?, Ok("u-1/0".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn enqueue<I: Serialize>(
        &self,
        queue: &str,
        name: &str,
        input: I,
        options: EnqueueOptions,
    ) -> impl Future<Output = Result<String, Error>> + 'static {
        let step_id = self.wf.create_step(ENQUEUE);
        let id = options
            .id
            .clone()
            .unwrap_or_else(|| format!("{}/{step_id}", self.wf.id));
        let prepared = self.prepare_enqueue(queue, name, &id, &input);
        let step = prepared.map(|record| {
            Step::<Recorded, Never>::new(
                self.clone(),
                step_id,
                self.enqueue_body(queue.to_string(), record, options.clone()),
            )
        });
        let queue = queue.to_string();
        async move {
            let Ok(recorded) = step?.await;
            match recorded {
                Recorded::Enqueued(id) => Ok(id),
                Recorded::Duplicate(existing) => Err(duplicate(&queue, &options, existing)),
                Recorded::Conflict(existing) => {
                    Err(crate::core::conflict(&id, &existing, "this enqueue"))
                }
            }
        }
    }

    fn prepare_enqueue<I: Serialize>(
        &self,
        queue: &str,
        name: &str,
        id: &str,
        input: &I,
    ) -> Result<WorkflowRecord, Error> {
        self.core.queues.options(queue)?;
        let registration = self.core.registry.lookup(name)?;
        let encoded = registration.encode_input(id, input)?;
        Ok(WorkflowRecord::new(id, name, encoded, 0))
    }

    /// The enqueue step's body: reserves the id (and deduplication id) and writes the
    /// enqueued record in the commit that records the step.
    fn enqueue_body(&self, queue: String, record: WorkflowRecord, options: EnqueueOptions) -> Body {
        let (core, wf) = (Rc::clone(&self.core), Rc::clone(&self.wf));
        Box::new(move || {
            async move {
                let id = record.id.clone();
                let reserved = core
                    .queues
                    .reserve(&core, &queue, record, &options, core.now_ms());
                let (recorded, effect) = match reserved {
                    Ok(Reserved::New(staged)) => (Recorded::Enqueued(id), Effect::Enqueue(staged)),
                    Ok(Reserved::Existing(id)) => (Recorded::Enqueued(id), Effect::None),
                    Ok(Reserved::Duplicate {
                        existing,
                        on_duplicate,
                    }) => match on_duplicate {
                        OnDuplicate::Reject => (Recorded::Duplicate(existing), Effect::None),
                        OnDuplicate::ReturnExisting => (Recorded::Enqueued(existing), Effect::None),
                    },
                    Err(Error::Conflict { existing, .. }) => {
                        (Recorded::Conflict(existing), Effect::None)
                    }
                    Err(err) => {
                        wf.fail(err);
                        return std::future::pending().await;
                    }
                };
                BodyOutput::new(encode_result::<_, Never>(&Ok(recorded))).with_effect(effect)
            }
            .boxed_local()
        })
    }
}
