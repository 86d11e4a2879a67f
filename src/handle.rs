//! `WorkflowHandle`: a typed view of one workflow's final result.

use std::future::Future;
use std::marker::PhantomData;
use std::rc::Rc;
use std::task::Poll;

use ordo_journal::{Outcome, Status};
use serde::de::DeserializeOwned;

use crate::codec;
use crate::core::Core;
use crate::error::Error;
use crate::queue::Dispatched;
use crate::workflow::WorkflowState;

/// A handle on a started (or recorded) workflow, typed by its output `O` and error `E`.
///
/// Cheap to clone. [`WorkflowHandle::result`] resolves once the workflow's final
/// status is durable in the journal; for a workflow that finished in an earlier run it
/// resolves at once from the journal, without running anything.
///
/// ```
/// use ordo::{Ctx, Runtime};
///
/// async fn double(_ctx: Ctx, n: u32) -> Result<u32, String> { Ok(n * 2) }
///
/// let rt = Runtime::builder().temporary().register("double", double).build()?;
/// let handle = rt.start::<_, u32, String>("double", "d-1", 21u32)?;
/// assert_eq!(handle.id(), "d-1");
/// assert_eq!(rt.block_on(handle.result())?, Ok(42));
/// # Ok::<(), ordo::Error>(())
/// ```
pub struct WorkflowHandle<O, E> {
    id: String,
    core: Rc<Core>,
    /// The running workflow, when it runs in this process.
    running: Option<Rc<WorkflowState>>,
    /// For a workflow this handle's enqueue put in a queue: its running state, once the
    /// queue starts it (so a result read after its end needs no journal read).
    dispatched: Option<Dispatched>,
    _types: PhantomData<fn() -> (O, E)>,
}

impl<O, E> Clone for WorkflowHandle<O, E> {
    fn clone(&self) -> Self {
        WorkflowHandle {
            id: self.id.clone(),
            core: Rc::clone(&self.core),
            running: self.running.clone(),
            dispatched: self.dispatched.clone(),
            _types: PhantomData,
        }
    }
}

impl<O, E> std::fmt::Debug for WorkflowHandle<O, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowHandle")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<O: DeserializeOwned + 'static, E: DeserializeOwned + 'static> WorkflowHandle<O, E> {
    pub(crate) fn new(id: String, core: Rc<Core>, running: Option<Rc<WorkflowState>>) -> Self {
        WorkflowHandle {
            id,
            core,
            running,
            dispatched: None,
            _types: PhantomData,
        }
    }

    /// Follows the workflow its enqueue staged: once the queue starts it, this handle
    /// awaits its running state like a started workflow's handle.
    pub(crate) fn follow_dispatch(&mut self, dispatched: Dispatched) {
        self.dispatched = Some(dispatched);
    }

    /// The workflow's id.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// # async fn nop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// # let rt = Runtime::builder().temporary().register("nop", nop).build()?;
    /// let handle = rt.start::<_, (), ()>("nop", "n-1", ())?;
    /// assert_eq!(handle.id(), "n-1");
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The workflow's status as the journal records it now.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime, Status};
    /// # async fn nop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// # let rt = Runtime::builder().temporary().register("nop", nop).build()?;
    /// let handle = rt.start::<_, (), ()>("nop", "n-1", ())?;
    /// assert_eq!(handle.status()?, Status::Pending);
    /// rt.block_on(handle.result())?.expect("nop succeeds");
    /// assert_eq!(handle.status()?, Status::Succeeded);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self) -> Result<Status, Error> {
        match self.core.store.workflow(&self.id)? {
            Some(record) => Ok(record.status),
            // Started in this turn: its record is in the next commit.
            None if self.running.is_some() => Ok(Status::Pending),
            // Enqueued (or debounced) in this turn.
            None if self.core.queues.is_waiting(&self.id) => Ok(Status::Enqueued),
            None => Err(Error::NotFound {
                workflow_id: self.id.clone(),
            }),
        }
    }

    /// The workflow's result: `Ok(Ok(output))` or `Ok(Err(error))` as the workflow
    /// returned them, once durable; `Err` when the runtime could not bring the workflow
    /// to an end (non-determinism, a panic, a journal failure, a type mismatch).
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// async fn refuse(_: Ctx, _: ()) -> Result<(), String> { Err("no".into()) }
    /// # let rt = Runtime::builder().temporary().register("refuse", refuse).build()?;
    /// let handle = rt.start::<_, (), String>("refuse", "r-1", ())?;
    /// assert_eq!(rt.block_on(handle.result())?, Err("no".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn result(&self) -> impl Future<Output = Result<Result<O, E>, Error>> + 'static {
        let id = self.id.clone();
        let core = Rc::clone(&self.core);
        let (running, dispatched) = (self.running.clone(), self.dispatched.clone());
        async move {
            // Dispatched by now (or by the time this runs): the running state, no read.
            let running = running.or_else(|| dispatched.and_then(|d| d.get().cloned()));
            let outcome = final_outcome(Rc::clone(&core), id.clone(), running).await?;
            decode_outcome(&core, &id, &outcome)
        }
    }
}

/// The final outcome of workflow `id`: awaited if it runs here (`running`), else read
/// from the journal.
pub(crate) async fn final_outcome(
    core: Rc<Core>,
    id: String,
    running: Option<Rc<WorkflowState>>,
) -> Result<Outcome, Error> {
    let running = match running {
        Some(wf) => Some(wf),
        None => until_dispatched(&core, &id).await?,
    };
    match running {
        Some(wf) => {
            futures::future::poll_fn(|cx| match wf.poll_result(cx.waker()) {
                Some(result) => Poll::Ready(result),
                None => Poll::Pending,
            })
            .await
        }
        // A journal shared by many workers: another one may drive it. Its end is
        // notified (see `Core::take_changes_from_elsewhere`); wait for it.
        None if core.store.takeover_interval().is_some() => {
            let key = crate::talk::watch::WatchKey::Workflow(id.clone());
            let ended =
                crate::talk::watch::wait_for(Rc::clone(&core), key, None, |core| {
                    match core.record(&id)?.status {
                        Status::Pending | Status::Enqueued | Status::Delayed => Ok(None),
                        _ => recorded_outcome(core, &id).map(Some),
                    }
                })
                .await?;
            ended.ok_or_else(|| Error::Stopped {
                workflow_id: id.clone(),
            })
        }
        None => recorded_outcome(&core, &id),
    }
}

/// For a workflow waiting in a queue (`Enqueued` or `Delayed`), waits until the queue
/// starts it (its running state) or it leaves the queue otherwise (cancelled: `None`);
/// for any other, `None` at once.
async fn until_dispatched(core: &Rc<Core>, id: &str) -> Result<Option<Rc<WorkflowState>>, Error> {
    let waiting = |core: &Core| -> Result<bool, Error> {
        if core.queues.is_waiting(id) {
            return Ok(true);
        }
        Ok(core
            .store
            .workflow(id)?
            .is_some_and(|record| matches!(record.status, Status::Enqueued | Status::Delayed)))
    };
    if core.running.borrow().contains_key(id) || !waiting(core)? {
        return Ok(core.running.borrow().get(id).cloned());
    }
    let key = crate::talk::watch::WatchKey::Workflow(id.to_string());
    let found = crate::talk::watch::wait_for(Rc::clone(core), key, None, |core| {
        if let Some(wf) = core.running.borrow().get(id) {
            return Ok(Some(Some(Rc::clone(wf))));
        }
        Ok((!waiting(core)?).then_some(None))
    })
    .await?;
    Ok(found.flatten())
}

/// The final outcome of a workflow that does not run in this process.
fn recorded_outcome(core: &Core, id: &str) -> Result<Outcome, Error> {
    let mut record = core.record(id)?;
    match (record.status, record.output.take()) {
        (Status::Succeeded | Status::Failed, Some(output)) => Ok(output),
        // By its deadline, or by a cancel.
        (Status::Cancelled, _) => Err(crate::deadline::cancelled_error(&record)),
        (Status::Pending | Status::Enqueued | Status::Delayed, _) => Err(Error::Stopped {
            workflow_id: id.to_string(),
        }),
        (status, None) => Err(Error::TypeMismatch {
            workflow_id: id.to_string(),
            what: "output".into(),
            expected: "a recorded output",
            recorded: "no output".into(),
            detail: format!("the record is {status} but holds no output"),
        }),
    }
}

fn decode_outcome<O: DeserializeOwned + 'static, E: DeserializeOwned + 'static>(
    core: &Core,
    id: &str,
    outcome: &Outcome,
) -> Result<Result<O, E>, Error> {
    codec::decode_result(outcome)
        .map_err(|(key, err)| codec::type_error(&*core.store, id, "output".into(), key, err))
}
