//! Child workflows: `Ctx::start_child` launches a workflow whose start is recorded in
//! the parent's journal before the child runs, and whose result reaches the parent as a
//! recorded completion.
//!
//! Two step ids are taken at the call: the launch and the result. The launch's
//! completion and the child's start record are one commit, so a parent that crashes
//! after it finds its launch recorded on replay and adopts the child (which recovery
//! resumes on its own) instead of starting a second one; a parent that crashes before
//! it launches again, under the same derived id.

use std::future::Future;
use std::marker::PhantomData;
use std::rc::Rc;

use futures::FutureExt;
use ordo_journal::{Outcome, Status, WorkflowRecord};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::core::Effect;
use crate::ctx::{Ctx, Never, TaskHandle};
use crate::error::Error;
use crate::step::{encode_result, Body, BodyOutput, Step};
use crate::talk::watch::{wait_for, WatchKey};

const START: &str = "ordo.child.start";
const RESULT: &str = "ordo.child.result";

/// What happens to an unfinished child when its parent ends.
///
/// ```
/// assert_eq!(ordo::ParentEnd::default(), ordo::ParentEnd::Abandon);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ParentEnd {
    /// The child goes on by itself (the default).
    #[default]
    Abandon,
    /// The child is cancelled, in the commit that records the parent's end.
    Cancel,
}

/// How to launch a child: its id and what happens to it when the parent ends.
///
/// ```
/// let options = ordo::ChildOptions::default().id("invoice-42").on_parent_end(ordo::ParentEnd::Cancel);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    id: Option<String>,
    on_parent_end: ParentEnd,
    /// The child's own timeout; its deadline is never later than its parent's.
    timeout: Option<std::time::Duration>,
}

impl ChildOptions {
    /// Gives the child this id instead of the derived `"<parent id>/<launch step id>"`.
    /// A workflow already recorded under the id (with the same name) is adopted.
    ///
    /// ```
    /// let options = ordo::ChildOptions::default().id("invoice-42");
    /// # let _ = options;
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// What happens to the child if the parent ends before it.
    ///
    /// ```
    /// let options = ordo::ChildOptions::default().on_parent_end(ordo::ParentEnd::Cancel);
    /// # let _ = options;
    /// ```
    pub fn on_parent_end(mut self, policy: ParentEnd) -> Self {
        self.on_parent_end = policy;
        self
    }

    /// Cancels the child if it has not returned `timeout` after its launch, as
    /// [`StartOptions::timeout`](crate::StartOptions::timeout) does for a workflow. A
    /// child without one inherits its parent's deadline; with one, its deadline is the
    /// earlier of the two: no child outlives its parent's deadline. The parent sees an
    /// expired child's end as [`Error::Cancelled`] from [`ChildHandle::result`].
    ///
    /// ```
    /// use ordo::{ChildOptions, Clock, Ctx, Error, Runtime};
    /// use std::time::Duration;
    ///
    /// async fn slow(ctx: Ctx, _: ()) -> Result<(), String> {
    ///     ctx.sleep(Duration::from_secs(3600)).await;
    ///     Ok(())
    /// }
    /// async fn parent(ctx: Ctx, _: ()) -> Result<String, String> {
    ///     let options = ChildOptions::default().timeout(Duration::from_secs(60));
    ///     let child = ctx.start_child_with::<_, (), String>("slow", (), options);
    ///     match child.result().await {
    ///         Err(Error::Cancelled { .. }) => Ok("gave up on the child".into()),
    ///         other => Err(format!("{other:?}")),
    ///     }
    /// }
    /// let rt = Runtime::builder().temporary().clock(Clock::Virtual)
    ///     .register("slow", slow).register("parent", parent).build()?;
    /// let h = rt.start::<_, String, String>("parent", "p", ())?;
    /// assert_eq!(rt.block_on(h.result())?, Ok("gave up on the child".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A launch as recorded in the parent's journal (the launch step's outcome).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChildLaunch {
    pub(crate) id: String,
    pub(crate) cancel_with_parent: bool,
}

/// How a child ended, as recorded in the parent's journal (the result step's outcome).
#[derive(Serialize, Deserialize)]
enum ChildEnd {
    /// Its output or error, encoded with its own types' fingerprints.
    Finished(Result<Vec<u8>, Vec<u8>>),
    Cancelled,
}

/// A child workflow launched by [`Ctx::start_child`]: its id at once, its result as a
/// recorded completion.
///
/// Dropping the handle does not stop the child (see [`ParentEnd`] for what happens when
/// the parent ends).
#[must_use = "a child's result is read through its handle"]
pub struct ChildHandle<O, E> {
    id: String,
    launch: Result<TaskHandle<Result<ChildLaunch, String>>, Error>,
    result: Step<ChildEndBytes, Never>,
    _types: PhantomData<fn() -> (O, E)>,
}

/// The result step's outcome type: a `ChildEnd`, kept encoded for the typed handle.
#[derive(Serialize, Deserialize)]
struct ChildEndBytes(ChildEnd);

impl<O: DeserializeOwned + 'static, E: DeserializeOwned + 'static> ChildHandle<O, E> {
    /// The child's workflow id.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn child(_: Ctx, n: u32) -> Result<u32, String> { Ok(n) }
    /// async fn parent(ctx: Ctx, _: ()) -> Result<String, String> {
    ///     let handle = ctx.start_child::<_, u32, String>("child", 1u32);
    ///     Ok(handle.id().to_string())
    /// }
    /// let rt = Runtime::builder().temporary().register("child", child).register("parent", parent).build()?;
    /// let h = rt.start::<_, String, String>("parent", "p", ())?;
    /// assert_eq!(rt.block_on(h.result())?, Ok("p/0".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The child's result, once its final record is durable: `Ok(Ok(output))` or
    /// `Ok(Err(error))` as it returned them (an error of the child is a recorded outcome
    /// for the parent, like a step's); `Err` if the child was cancelled
    /// ([`Error::Cancelled`]), could not be launched (another workflow holds its id,
    /// [`Error::Conflict`]), or its types are not `O` and `E`.
    ///
    /// A child that panicked (or crashed its process) has no result: like any workflow
    /// that panics, it stays pending so that a fixed binary can resume it, and this
    /// waits until then. Bound the wait (a `select!` with [`Ctx::sleep`]) where that
    /// matters. A parent cancelled with its children (`cancel_tree`) and then resumed sees
    /// them cancelled: resume the children first.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn square(_: Ctx, n: u64) -> Result<u64, String> { Ok(n * n) }
    /// async fn sum(ctx: Ctx, n: u64) -> Result<u64, String> {
    ///     let children: Vec<_> = (1..=n).map(|i| ctx.start_child::<_, u64, String>("square", i)).collect();
    ///     let mut total = 0;
    ///     for child in children {
    ///         total += child.result().await.map_err(|e| e.to_string())??;
    ///     }
    ///     Ok(total)
    /// }
    /// let rt = Runtime::builder().temporary().register("square", square).register("sum", sum).build()?;
    /// let h = rt.start::<_, u64, String>("sum", "s", 3u64)?;
    /// assert_eq!(rt.block_on(h.result())?, Ok(1 + 4 + 9));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn result(self) -> impl Future<Output = Result<Result<O, E>, Error>> + 'static {
        let ChildHandle {
            id, launch, result, ..
        } = self;
        async move {
            let launched = launch?.await;
            if let Err(existing) = launched {
                return Err(Error::Conflict {
                    workflow_id: id,
                    existing,
                    requested: "this child".into(),
                });
            }
            let Ok(ChildEndBytes(ended)) = result.await;
            let outcome = match ended {
                ChildEnd::Cancelled => return Err(Error::Cancelled { workflow_id: id }),
                ChildEnd::Finished(outcome) => Outcome::from(outcome),
            };
            decode(&id, &outcome)
        }
    }
}

fn decode<O: DeserializeOwned + 'static, E: DeserializeOwned + 'static>(
    id: &str,
    outcome: &Outcome,
) -> Result<Result<O, E>, Error> {
    codec::decode_result(outcome)
        .map_err(|(key, err)| codec::type_error_here(id, "output".into(), key, err))
}

impl Ctx {
    /// Launches child workflow `name` with `input`, with default [`ChildOptions`]: its
    /// id is `"<this workflow's id>/<launch step id>"`, and it is abandoned (runs on) if
    /// this workflow ends first. See [`Ctx::start_child_with`].
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn child(_: Ctx, n: u32) -> Result<u32, String> { Ok(n + 1) }
    /// async fn parent(ctx: Ctx, _: ()) -> Result<u32, String> {
    ///     let child = ctx.start_child::<_, u32, String>("child", 41u32);
    ///     child.result().await.map_err(|e| e.to_string())?
    /// }
    /// let rt = Runtime::builder().temporary().register("child", child).register("parent", parent).build()?;
    /// let h = rt.start::<_, u32, String>("parent", "p", ())?;
    /// assert_eq!(rt.block_on(h.result())?, Ok(42));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn start_child<I, O, E>(&self, name: &str, input: I) -> ChildHandle<O, E>
    where
        I: Serialize,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        self.start_child_with(name, input, ChildOptions::default())
    }

    /// Launches child workflow `name` with `input` and `options`, returning its handle
    /// at once. Takes two step ids at the call (the launch and the result). The launch is
    /// recorded in the same commit as the child's start, before the child runs: a parent
    /// that crashes in between adopts its child on replay instead of starting another.
    ///
    /// ```
    /// use ordo::{ChildOptions, Ctx, ParentEnd, Runtime};
    /// async fn child(_: Ctx, _: ()) -> Result<(), String> { Ok(()) }
    /// async fn parent(ctx: Ctx, _: ()) -> Result<String, String> {
    ///     let options = ChildOptions::default().id("report-7").on_parent_end(ParentEnd::Cancel);
    ///     let child = ctx.start_child_with::<_, (), String>("child", (), options);
    ///     child.result().await.map_err(|e| e.to_string())??;
    ///     Ok("done".into())
    /// }
    /// let rt = Runtime::builder().temporary().register("child", child).register("parent", parent).build()?;
    /// let h = rt.start::<_, String, String>("parent", "p", ())?;
    /// assert_eq!(rt.block_on(h.result())?, Ok("done".to_string()));
    /// assert!(rt.journal().workflow("report-7")?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_child_with<I, O, E>(
        &self,
        name: &str,
        input: I,
        options: ChildOptions,
    ) -> ChildHandle<O, E>
    where
        I: Serialize,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        let launch_id = self.wf.create_step(START);
        let result_id = self.wf.create_step(RESULT);
        let id = options
            .id
            .unwrap_or_else(|| format!("{}/{launch_id}", self.wf.id));
        let cancel_with_parent = options.on_parent_end == ParentEnd::Cancel;
        let prepared = self.prepare_child::<I, O, E>(name, &id, &input);
        let launch = prepared.map(|record| {
            let launch_step: Step<ChildLaunch, String> = Step::new(
                self.clone(),
                launch_id,
                self.launch_body(record, cancel_with_parent, options.timeout),
            );
            let wf = Rc::clone(&self.wf);
            // Its own task, so the child launches whether or not the handle is awaited.
            self.spawn(async move {
                let launched = launch_step.await;
                if let Ok(launch) = &launched {
                    wf.children.borrow_mut().push(launch.clone());
                }
                launched
            })
        });
        let result = Step::new(self.clone(), result_id, self.result_body(id.clone()));
        ChildHandle {
            id,
            launch,
            result,
            _types: PhantomData,
        }
    }

    /// Checks the child's name and types, and builds its start record.
    fn prepare_child<I: Serialize, O: DeserializeOwned + 'static, E: DeserializeOwned + 'static>(
        &self,
        name: &str,
        id: &str,
        input: &I,
    ) -> Result<WorkflowRecord, Error> {
        crate::core::check_key(id)?;
        let registration = self.core.registry.lookup(name)?;
        registration.check_outputs::<O, E>(id, "child")?;
        let encoded = registration.encode_input(id, input)?;
        Ok(WorkflowRecord::new(id, name, encoded, 0))
    }

    /// The launch: adopts a workflow recorded (or running) under the id with the same
    /// name, else starts the child in the commit that records the launch.
    fn launch_body(
        &self,
        record: WorkflowRecord,
        cancel_with_parent: bool,
        timeout: Option<std::time::Duration>,
    ) -> Body {
        let (core, wf) = (Rc::clone(&self.core), Rc::clone(&self.wf));
        Box::new(move || {
            async move {
                let launch = ChildLaunch {
                    id: record.id.clone(),
                    cancel_with_parent,
                };
                let existing = match core.holder_name(&record.id) {
                    Ok(existing) => existing,
                    Err(err) => {
                        wf.fail(err);
                        return std::future::pending().await;
                    }
                };
                match existing {
                    Some(name) if name == record.name => {
                        BodyOutput::new(encode_result::<_, String>(&Ok(launch)))
                    }
                    Some(name) => BodyOutput::new(encode_result::<ChildLaunch, _>(&Err(name))),
                    None => {
                        let Some(registration) = core.registry.get(&record.name).cloned() else {
                            return std::future::pending().await;
                        };
                        let mut record = record;
                        let now_ms = core.now_ms();
                        record.created_ms = now_ms;
                        record.updated_ms = now_ms;
                        record.app_version.clone_from(&core.app_version);
                        record.deadline_ms =
                            crate::deadline::of_child(wf.deadline_ms, now_ms, timeout);
                        // Running here from now on: a second launch of the id finds it.
                        let child = core.fresh_start(record, registration, true);
                        BodyOutput::new(encode_result::<_, String>(&Ok(launch)))
                            .with_effect(Effect::StartChild(Box::new(child)))
                    }
                }
            }
            .boxed_local()
        })
    }

    /// The result: waits for the child's final record (or its cancellation).
    fn result_body(&self, id: String) -> Body {
        let (core, wf) = (Rc::clone(&self.core), Rc::clone(&self.wf));
        Box::new(move || {
            async move {
                let watch = WatchKey::Workflow(id.clone());
                let ended = wait_for(Rc::clone(&core), watch, None, |core| {
                    let Some(record) = core.store.workflow(&id)? else {
                        return Ok(None);
                    };
                    Ok(match (record.status, record.output) {
                        (Status::Cancelled, _) => Some(ChildEnd::Cancelled),
                        (Status::Succeeded | Status::Failed, Some(output)) => {
                            Some(ChildEnd::Finished(output.into_result()))
                        }
                        _ => None,
                    })
                })
                .await;
                match ended {
                    Ok(Some(end)) => {
                        BodyOutput::new(encode_result::<_, Never>(&Ok(ChildEndBytes(end))))
                    }
                    Ok(None) => std::future::pending().await,
                    Err(err) => {
                        wf.fail(err);
                        std::future::pending().await
                    }
                }
            }
            .boxed_local()
        })
    }
}

impl crate::core::Core {
    /// The ids of the children workflow `id` launched: those its journal records (the
    /// launches' outcomes) and those it launched here since.
    pub(crate) fn children_of(&self, id: &str) -> Result<Vec<String>, Error> {
        let mut ids = std::collections::BTreeSet::new();
        let running = self.running.borrow().get(id).cloned();
        if let Some(wf) = running {
            ids.extend(wf.children.borrow().iter().map(|c| c.id.clone()));
        }
        recorded_children(&*self.store, id, &mut ids)?;
        Ok(ids.into_iter().collect())
    }
}

impl crate::core::Core {
    /// For fork `new_id` of workflow `original_id`, whose copied history is
    /// `completions`: the launches of children under the original's derived ids
    /// (`original_id/N`) are rewritten to the fork's (`new_id/N`), the ids its replay
    /// derives, and each such child whose result the copy does not hold is started
    /// afresh under the fork's id, with the original child's name and input. Returns
    /// their start records, for the fork's commit. (The fork waited forever for a child
    /// nobody started, and a cancel of its tree reached the original's child.)
    pub(crate) fn fork_children(
        &self,
        original_id: &str,
        new_id: &str,
        completions: &mut [ordo_journal::Completion],
        now_ms: u64,
    ) -> Result<Vec<(WorkflowRecord, crate::registry::Registration)>, Error> {
        let key = crate::fingerprint::of::<ChildLaunch>();
        let results: std::collections::HashSet<u64> = completions
            .iter()
            .filter(|c| c.name == RESULT)
            .map(|c| c.step_id)
            .collect();
        let mut starts = Vec::new();
        for completion in completions.iter_mut().filter(|c| c.name == START) {
            let Outcome::Ok(bytes) = &completion.outcome else {
                continue;
            };
            let Ok(mut launch) = codec::decode::<ChildLaunch>(key, bytes) else {
                continue;
            };
            if launch.id != format!("{original_id}/{}", completion.step_id) {
                // An id given explicitly names the same child in any copy.
                continue;
            }
            let child_id = format!("{new_id}/{}", completion.step_id);
            crate::core::check_key(&child_id)?;
            // The result step is created right after the launch step.
            if !results.contains(&(completion.step_id + 1)) {
                let original = self
                    .store
                    .workflow(&launch.id)?
                    .ok_or_else(|| Error::NotFound {
                        workflow_id: launch.id.clone(),
                    })?;
                if self.running.borrow().contains_key(&child_id)
                    || self.store.workflow(&child_id)?.is_some()
                {
                    return Err(Error::AlreadyExists {
                        workflow_id: child_id,
                    });
                }
                let registration = self.registry.lookup(&original.name)?.clone();
                let mut record =
                    WorkflowRecord::new(&child_id, original.name, original.input, now_ms);
                record.app_version.clone_from(&self.app_version);
                starts.push((record, registration));
            }
            launch.id = child_id;
            let encoded = codec::encode(key, &launch).map_err(|detail| Error::Encode {
                workflow_id: new_id.to_string(),
                what: format!("the launch of step {}", completion.step_id),
                detail,
            })?;
            completion.outcome = Outcome::Ok(encoded);
        }
        Ok(starts)
    }
}

/// Adds to `ids` the children workflow `id`'s journal records it launched.
fn recorded_children(
    store: &dyn ordo_journal::Store,
    id: &str,
    ids: &mut std::collections::BTreeSet<String>,
) -> Result<(), ordo_journal::Error> {
    let key = crate::fingerprint::of::<ChildLaunch>();
    for completion in store.completions(id)? {
        if completion.name != START {
            continue;
        }
        if let Outcome::Ok(bytes) = &completion.outcome {
            if let Ok(launch) = codec::decode::<ChildLaunch>(key, bytes) {
                ids.insert(launch.id);
            }
        }
    }
    Ok(())
}

/// The finished workflows of `store` last written before `cutoff_ms` (milliseconds
/// since the UNIX epoch) that retention may delete: those
/// [`finished_before`](ordo_journal::finished_before) lists, but the children a pending
/// workflow launched, which it may still ask for their result (deleted, a parent waiting
/// for one would wait forever). [`Runtime::gc`](crate::Runtime::gc), the retention sweep
/// and the `ordo gc` command delete these.
///
/// ```
/// use ordo::journal::{Batch, SledJournal, Status, Store, WorkflowRecord};
/// let journal = SledJournal::temporary()?;
/// let mut done = WorkflowRecord::new("done", "job", vec![], 1_000);
/// done.status = Status::Succeeded;
/// let mut batch = Batch::new();
/// batch.put_workflow(done);
/// journal.commit(&batch)?;
/// assert_eq!(ordo::collectable_before(&journal, 2_000)?, vec!["done".to_string()]);
/// assert!(ordo::collectable_before(&journal, 500)?.is_empty());
/// # Ok::<(), ordo::journal::Error>(())
/// ```
///
/// # Errors
///
/// The journal's, reading records and completions.
pub fn collectable_before(
    store: &dyn ordo_journal::Store,
    cutoff_ms: u64,
) -> Result<Vec<String>, ordo_journal::Error> {
    let mut ids = ordo_journal::finished_before(store, cutoff_ms)?;
    if ids.is_empty() {
        return Ok(ids);
    }
    let mut awaited = std::collections::BTreeSet::new();
    for parent in store.workflows(Some(ordo_journal::Status::Pending))? {
        recorded_children(store, &parent.id, &mut awaited)?;
    }
    ids.retain(|id| !awaited.contains(id));
    Ok(ids)
}
