//! Operating workflows from outside: resume a cancelled or stuck one, fork one at a
//! delivery seq, and delete finished ones past their age (retention).
//!
//! Each operation writes its records with one commit of its own, on the runtime's
//! thread, before anything of the workflow runs: a resumed or forked workflow is
//! launched like a recovered one, with its recorded completions in its inbox, so the
//! replay rules hold for it exactly as for a restart.

use std::rc::Rc;
use std::time::{Duration, Instant};

use ordo_journal::{Batch, Status, WorkflowRecord, GC_BATCH};
use serde::de::DeserializeOwned;

use crate::core::{check_key, Core};
use crate::error::Error;
use crate::event::Event;
use crate::handle::WorkflowHandle;
use crate::launch::{launch, SpawnRoot};
use crate::registry::Registration;
use crate::runtime::Runtime;
use crate::workflow::{Phase, WorkflowState};

/// What a retention run ([`Runtime::gc`]) deleted.
///
/// ```
/// let report = ordo::GcReport::default();
/// assert_eq!((report.deleted, report.commits), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Finished workflows deleted, with their completions.
    pub deleted: u64,
    /// Commits it took (at most [`GC_BATCH`] workflows each).
    pub commits: u64,
}

impl Runtime {
    /// Cancels workflow `id` and, level by level, every workflow it launched as a child,
    /// their children, and so on, whatever their [`ParentEnd`](crate::ParentEnd) policy.
    /// Each level is read after the one above is cancelled, so nothing launched before a
    /// parent's cancellation is missed, and a cancelled workflow launches nothing more.
    /// Returns the ids it cancelled (pending ones; finished ones are left as they are).
    ///
    /// ```
    /// use ordo::{Ctx, Runtime, Status};
    /// use std::time::Duration;
    ///
    /// async fn leaf(ctx: Ctx, _: ()) -> Result<(), String> {
    ///     ctx.sleep(Duration::from_secs(3600)).await;
    ///     Ok(())
    /// }
    /// async fn root(ctx: Ctx, _: ()) -> Result<(), String> {
    ///     let child = ctx.start_child::<_, (), String>("leaf", ());
    ///     child.result().await.map_err(|e| e.to_string())?
    /// }
    /// let rt = Runtime::builder().temporary().register("leaf", leaf).register("root", root).build()?;
    /// rt.start::<_, (), String>("root", "r", ())?;
    /// rt.block_on(ordo::executor::sleep(Duration::from_millis(50))); // the child is launched
    /// assert_eq!(rt.cancel_tree("r")?, vec!["r".to_string(), "r/0".to_string()]);
    /// assert_eq!(rt.journal().workflow("r/0")?.map(|w| w.status), Some(Status::Cancelled));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel_tree(&self, id: &str) -> Result<Vec<String>, Error> {
        self.core.cancel_tree_at(id, self.now_ms())
    }

    /// Starts a cancelled workflow again, or a pending one that is not running here (one
    /// that exhausted its recovery attempts: [`Error::RecoveryExhausted`]), from its
    /// journal: it is `Pending` again with its recovery attempts at 0, its recorded
    /// steps replay (their bodies do not run again) and it continues live from there.
    /// A workflow already running here gets a handle to it, unchanged. A workflow
    /// cancelled by its deadline, or whose deadline passed, is resumed without one; a
    /// deadline still ahead is kept.
    ///
    /// # Errors
    ///
    /// [`Error::NotResumable`] for a finished (succeeded or failed) workflow,
    /// [`Error::NotFound`], [`Error::UnknownWorkflow`] when its name is not registered,
    /// [`Error::TypeMismatch`] when `O` or `E` is not the registered type, and journal
    /// errors.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime, Status};
    /// use std::time::Duration;
    ///
    /// async fn slow(ctx: Ctx, _: ()) -> Result<u32, String> {
    ///     let one = ctx.step("one", || async { Ok::<_, String>(1u32) }).await?;
    ///     ctx.sleep(Duration::from_secs(60)).await;
    ///     Ok(one + 1)
    /// }
    /// let rt = Runtime::builder().temporary().clock(ordo::Clock::Virtual)
    ///     .register("slow", slow).build()?;
    /// rt.start::<_, u32, String>("slow", "s-1", ())?;
    /// rt.cancel("s-1")?;
    /// let handle = rt.resume::<u32, String>("s-1")?;
    /// assert_eq!(handle.status()?, Status::Pending);
    /// assert_eq!(rt.block_on(handle.result())?, Ok(2));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn resume<O, E>(&self, id: &str) -> Result<WorkflowHandle<O, E>, Error>
    where
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        let wf = self.core.resume_with(
            id,
            self.now_ms(),
            |registration| registration.check_outputs::<O, E>(id, "handle"),
            SpawnRoot::On(&self.executor),
        )?;
        Ok(WorkflowHandle::new(
            id.to_string(),
            Rc::clone(&self.core),
            Some(wf),
        ))
    }

    /// Starts workflow `new_id` as a copy of workflow `id` up to delivery `at_seq`: the
    /// same name and input, and the first `at_seq` recorded completions of `id` (seqs
    /// `0..at_seq`, copied into `new_id`'s journal). The copy replays them, then runs
    /// live from there, on this binary's code (a fixed bug, a new patch path). The
    /// original is not touched, and the copy has no deadline. `ordo show ID` lists the
    /// seqs to choose from; `at_seq` 0 starts over with the same input, and the number of
    /// recorded completions replays them all. The copy carries the original's app
    /// version when it copies any of its history (that code's decisions are in it), this
    /// runtime's when `at_seq` is 0. A child the copy launched (under a derived id) but
    /// whose result it does not hold is started afresh as the fork's own child,
    /// `<new_id>/<step>`, with the same input; a child given an explicit id is the same
    /// child in any copy. The copy's awakeables have tokens of their own; a copied step
    /// that handed one out (an event, a message, a step's output) handed out the
    /// original's, which resolves the original: fork before such a step, or have the
    /// copy hand out its token again. Events the original set are not copied.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown `id`, [`Error::ForkPointOutOfRange`] when
    /// `at_seq` is beyond its recorded completions, [`Error::AlreadyExists`] when
    /// `new_id` is taken, [`Error::UnknownWorkflow`], [`Error::TypeMismatch`] for
    /// handle types other than the registered ones, and journal errors.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    ///
    /// async fn two(ctx: Ctx, base: u32) -> Result<u32, String> {
    ///     let a = ctx.step("a", move || async move { Ok::<_, String>(base + 1) }).await?;
    ///     let b = ctx.step("b", move || async move { Ok::<_, String>(a * 10) }).await?;
    ///     Ok(b)
    /// }
    /// let rt = Runtime::builder().temporary().register("two", two).build()?;
    /// let original = rt.start::<_, u32, String>("two", "t-1", 4u32)?;
    /// assert_eq!(rt.block_on(original.result())?, Ok(50));
    ///
    /// // Keep step "a" (seq 0), run "b" again.
    /// let fork = rt.fork::<u32, String>("t-1", 1, "t-1-retry")?;
    /// assert_eq!(rt.block_on(fork.result())?, Ok(50));
    /// assert_eq!(rt.journal().completions("t-1-retry")?[0], rt.journal().completions("t-1")?[0]);
    /// assert!(matches!(rt.fork::<u32, String>("t-1", 3, "t-1-b"), Err(ordo::Error::ForkPointOutOfRange { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fork<O, E>(
        &self,
        id: &str,
        at_seq: u64,
        new_id: &str,
    ) -> Result<WorkflowHandle<O, E>, Error>
    where
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        let wf = self.core.fork_with(
            id,
            at_seq,
            new_id,
            self.now_ms(),
            |registration| registration.check_outputs::<O, E>(new_id, "handle"),
            SpawnRoot::On(&self.executor),
        )?;
        Ok(WorkflowHandle::new(
            new_id.to_string(),
            Rc::clone(&self.core),
            Some(wf),
        ))
    }

    /// Deletes the finished workflows (succeeded, failed, cancelled) whose record was
    /// last written more than `older_than` ago on the runtime's clock, with their
    /// completions and status entries, at most [`GC_BATCH`] per commit (each commit is
    /// atomic: a crash leaves every workflow whole or gone). Pending workflows are never
    /// deleted. Runs to the end before it returns; [`RuntimeBuilder::retention`] sweeps
    /// in the background instead, yielding to the workflows between commits.
    ///
    /// [`RuntimeBuilder::retention`]: crate::RuntimeBuilder::retention
    ///
    /// # Errors
    ///
    /// Journal errors; a failed commit stops the runtime, as any failed commit does.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    /// async fn noop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    ///
    /// let rt = Runtime::builder().temporary().clock(ordo::Clock::Virtual)
    ///     .register("noop", noop).build()?;
    /// let handle = rt.start::<_, (), ()>("noop", "n-1", ())?;
    /// rt.block_on(handle.result())?.expect("finishes");
    /// assert_eq!(rt.gc(Duration::from_secs(3600))?.deleted, 0); // too recent
    /// rt.block_on(ordo::executor::sleep(Duration::from_secs(7200))); // two (virtual) hours
    /// assert_eq!(rt.gc(Duration::from_secs(3600))?.deleted, 1);
    /// assert!(rt.journal().workflow("n-1")?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn gc(&self, older_than: Duration) -> Result<GcReport, Error> {
        self.core.gc_at(self.now_ms(), older_than)
    }

    /// Starts the background retention sweep of [`RuntimeBuilder::retention`]: one
    /// commit of at most [`GC_BATCH`] deletions, then a millisecond's wait on the
    /// executor's clock, in which the workflows' deliveries and group commits go on.
    /// With the virtual clock the wait ends only when nothing else is left to do.
    ///
    /// [`RuntimeBuilder::retention`]: crate::RuntimeBuilder::retention
    pub(crate) fn spawn_retention_sweep(&self, older_than: Duration) {
        let core = Rc::clone(&self.core);
        let cutoff_ms = self.now_ms().saturating_sub(millis(older_than));
        drop(self.executor.spawn(async move {
            let Ok(ids) = crate::talk::collectable_before(&*core.store, cutoff_ms) else {
                // A record that cannot be read is reported where it is read for a
                // workflow; retention only skips its turn.
                return;
            };
            for chunk in ids.chunks(GC_BATCH) {
                // Not a yield: a ready task never lets the executor stall, and group
                // commits happen at stalls. A timer lets them happen in between.
                ordo_executor::sleep(SWEEP_PAUSE).await;
                if core.broken().is_some() {
                    return;
                }
                // Between two chunks anything may have happened (a resume, a fork
                // reading its original): delete only what is still finished and old.
                let mut batch = Batch::new();
                for id in chunk {
                    if core.running.borrow().contains_key(id) {
                        continue;
                    }
                    let still_expired = core
                        .store
                        .workflow(id)
                        .ok()
                        .flatten()
                        .filter(|r| r.status != Status::Pending && r.updated_ms < cutoff_ms);
                    if let Some(record) = still_expired {
                        // Read just now, and nothing commits before this batch does.
                        batch.delete_workflow_was(id, record.status);
                    }
                }
                if commit_deletions(&core, &batch).is_err() {
                    return;
                }
            }
        }));
    }

    /// Wall-clock ms on the runtime's clock (virtual or system).
    pub(crate) fn now_ms(&self) -> u64 {
        self.core.now_ms_at(self.executor.now())
    }
}

impl Core {
    /// [`Runtime::cancel`], on the runtime's thread inside its executor (a served
    /// request): `true` when it cancelled a pending workflow.
    pub(crate) fn cancel_workflow(self: &Rc<Self>, id: &str) -> Result<bool, Error> {
        self.cancel_at(id, self.now_ms())
    }

    /// [`Runtime::cancel_tree`], on the runtime's thread inside its executor: the ids it
    /// cancelled.
    pub(crate) fn cancel_tree(self: &Rc<Self>, id: &str) -> Result<Vec<String>, Error> {
        self.cancel_tree_at(id, self.now_ms())
    }

    /// [`Runtime::resume`] without a typed handle, on the runtime's thread inside its
    /// executor: the workflow runs again (or goes on running, if it runs here).
    pub(crate) fn resume_workflow(self: &Rc<Self>, id: &str) -> Result<(), Error> {
        self.resume_with(id, self.now_ms(), |_| Ok(()), SpawnRoot::Here)
            .map(drop)
    }

    /// [`Runtime::fork`] without a typed handle, on the runtime's thread inside its
    /// executor; `new_id` defaults to the first free one of `ID.fork-SEQ`,
    /// `ID.fork-SEQ-2`, ... Returns the new workflow's id.
    pub(crate) fn fork_workflow(
        self: &Rc<Self>,
        id: &str,
        at_seq: u64,
        new_id: Option<&str>,
    ) -> Result<String, Error> {
        let new_id = match new_id {
            Some(new_id) => new_id.to_string(),
            None => self.free_fork_id(id, at_seq)?,
        };
        self.fork_with(
            id,
            at_seq,
            &new_id,
            self.now_ms(),
            |_| Ok(()),
            SpawnRoot::Here,
        )?;
        Ok(new_id)
    }

    /// The first of `ID.fork-SEQ`, `ID.fork-SEQ-2`, ... that no workflow has.
    fn free_fork_id(&self, id: &str, at_seq: u64) -> Result<String, Error> {
        let base = format!("{id}.fork-{at_seq}");
        let mut candidate = base.clone();
        let mut n = 1u64;
        while self.holder_name(&candidate)?.is_some() {
            n += 1;
            candidate = format!("{base}-{n}");
        }
        Ok(candidate)
    }

    /// Records as cancelled a workflow whose start (or enqueue, or debounced call) was
    /// never committed: `record` as it would have been written, over a record of status
    /// `prior` (`None`: there is none yet), with what `batch` holds already.
    fn commit_cancelled(
        &self,
        mut record: WorkflowRecord,
        prior: Option<Status>,
        now_ms: u64,
        mut batch: Batch,
    ) -> Result<(), Error> {
        record.status = Status::Cancelled;
        record.updated_ms = now_ms;
        let name = record.name.clone();
        match prior {
            Some(prior) => batch.update_workflow(record, prior),
            None => batch.insert_workflow(record),
        }
        self.store.commit(&batch)?;
        crate::telemetry::workflow_finished(&name, Status::Cancelled);
        Ok(())
    }

    /// The body of [`Runtime::cancel`], with the time to record.
    pub(crate) fn cancel_at(self: &Rc<Self>, id: &str, now_ms: u64) -> Result<bool, Error> {
        if let Some(err) = self.broken() {
            return Err(err);
        }
        if let Some(start) = self.unstage_start(id) {
            // Started but not committed yet: it never ran.
            let prior = (!start.is_new).then_some(Status::Pending);
            self.commit_cancelled(start.record, prior, now_ms, Batch::new())?;
            start.wf.fail(Error::Cancelled {
                workflow_id: id.to_string(),
            });
            self.forget(&start.wf);
            return Ok(true);
        }
        if let Some(staged) = self.queues.unstage(&*self.store, id) {
            // Enqueued but not committed yet: it never waited.
            self.commit_cancelled(staged.record, None, now_ms, Batch::new())?;
            self.watchers
                .wake(&crate::talk::watch::WatchKey::Workflow(id.to_string()));
            return Ok(true);
        }
        if let Some(taken) = self.queues.cancel_debounced(&*self.store, id)? {
            // A debounced call that has not started it yet: it never will.
            let mut record = WorkflowRecord::new(id, taken.name, taken.call.input, now_ms);
            record.app_version.clone_from(&self.app_version);
            let mut batch = Batch::new();
            if let Some(key) = taken.delete {
                batch.delete_queue_record(key);
            }
            self.commit_cancelled(record, None, now_ms, batch)?;
            self.watchers
                .wake(&crate::talk::watch::WatchKey::Workflow(id.to_string()));
            return Ok(true);
        }
        let mut record = self.record(id)?;
        let previous = record.status;
        if !matches!(
            previous,
            Status::Pending | Status::Enqueued | Status::Delayed
        ) {
            return Ok(false);
        }
        let running = self.running.borrow().get(id).cloned();
        if running
            .as_ref()
            .is_some_and(|wf| wf.phase.get() == Phase::Finishing)
        {
            // It returned; its final record is about to be committed.
            return Ok(false);
        }
        // On a journal shared by many workers, a pending workflow another live worker
        // drives is that worker's to cancel: a record written behind its back would be
        // overwritten by its next commit. One no live worker drives becomes ours first.
        if running.is_none() && previous == Status::Pending && !self.store.claim(id)? {
            return Err(Error::from(ordo_journal::Error::DrivenElsewhere {
                workflow_id: id.to_string(),
            }));
        }
        record.status = Status::Cancelled;
        record.updated_ms = now_ms;
        let name = record.name.clone();
        let mut batch = Batch::new();
        batch.update_workflow(record, previous);
        // A queued workflow leaves its queue (and frees its slot) with its cancellation.
        self.queues.leave(id, &mut batch);
        // Its children started with `ParentEnd::Cancel` end with it, in the same commit,
        // as they do when it returns.
        let mut children = Vec::new();
        if let Some(wf) = &running {
            self.stage_children_end(wf, now_ms, &mut batch, &mut children);
        }
        // It and those children keep what their finished bodies returned.
        let cancelled = std::iter::once(id).chain(children.iter().map(String::as_str));
        self.stage_finished_bodies(cancelled, &mut batch);
        self.store.commit(&batch)?;
        for child in &children {
            self.end_cancelled_child(child);
            self.watchers
                .wake(&crate::talk::watch::WatchKey::Workflow(child.clone()));
        }
        self.watchers
            .wake(&crate::talk::watch::WatchKey::Workflow(id.to_string()));
        crate::telemetry::workflow_finished(&name, Status::Cancelled);
        if let Some(wf) = running {
            wf.fail(Error::Cancelled {
                workflow_id: id.to_string(),
            });
            self.forget(&wf);
        }
        Ok(true)
    }

    /// The body of [`Runtime::cancel_tree`], with the time to record.
    pub(crate) fn cancel_tree_at(
        self: &Rc<Self>,
        id: &str,
        now_ms: u64,
    ) -> Result<Vec<String>, Error> {
        let mut cancelled = Vec::new();
        // A child given its ancestor's id explicitly is that ancestor: visit each once.
        let mut seen = std::collections::HashSet::new();
        let mut level = vec![id.to_string()];
        while !level.is_empty() {
            let mut next = Vec::new();
            for id in level {
                if !seen.insert(id.clone()) {
                    continue;
                }
                if self.cancel_at(&id, now_ms)? {
                    cancelled.push(id.clone());
                }
                next.extend(self.children_of(&id)?);
            }
            level = next;
        }
        Ok(cancelled)
    }

    /// The body of [`Runtime::resume`]: `check` vets the registration (the handle's
    /// types), `spawn` spawns the root task of a workflow launched again.
    pub(crate) fn resume_with(
        self: &Rc<Self>,
        id: &str,
        now_ms: u64,
        check: impl FnOnce(&Registration) -> Result<(), Error>,
        spawn: SpawnRoot<'_>,
    ) -> Result<Rc<WorkflowState>, Error> {
        if let Some(err) = self.broken() {
            return Err(err);
        }
        let running = self.running.borrow().get(id).cloned();
        if let Some(wf) = running {
            check(self.registry.lookup(&wf.name)?)?;
            return Ok(wf);
        }
        let record = self.record(id)?;
        if matches!(record.status, Status::Succeeded | Status::Failed) {
            return Err(Error::NotResumable {
                workflow_id: id.to_string(),
                status: record.status,
            });
        }
        let registration = self.registry.lookup(&record.name)?.clone();
        check(&registration)?;
        self.resume_record(record, &registration, now_ms, spawn)
    }

    /// Makes `record` (cancelled, or pending and not running here) pending again with no
    /// recovery attempt counted, durably, then launches it on its recorded completions.
    fn resume_record(
        self: &Rc<Self>,
        record: WorkflowRecord,
        registration: &Registration,
        now_ms: u64,
        spawn: SpawnRoot<'_>,
    ) -> Result<Rc<WorkflowState>, Error> {
        let previous = record.status;
        let completions = self.store.completions(&record.id)?;
        let mut resumed = record;
        resumed.status = Status::Pending;
        resumed.output = None;
        resumed.recovery_attempts = 0;
        resumed.updated_ms = now_ms;
        crate::deadline::on_resume(&mut resumed);
        let mut batch = Batch::new();
        batch.update_workflow(resumed.clone(), previous);
        self.store.commit(&batch)?;
        // No `before_resume`: a graceful shutdown must not write the cancelled record
        // back, and there is no attempt to give back.
        let wf = Rc::new(WorkflowState::new(&resumed, completions));
        launch(self, &wf, registration, spawn);
        Ok(wf)
    }

    /// The body of [`Runtime::fork`]: `check` vets the registration (the handle's
    /// types), `spawn` spawns the fork's root task.
    pub(crate) fn fork_with(
        self: &Rc<Self>,
        id: &str,
        at_seq: u64,
        new_id: &str,
        now_ms: u64,
        check: impl FnOnce(&Registration) -> Result<(), Error>,
        spawn: SpawnRoot<'_>,
    ) -> Result<Rc<WorkflowState>, Error> {
        if let Some(err) = self.broken() {
            return Err(err);
        }
        let original = self.record(id)?;
        check_key(new_id)?;
        if self.holder_name(new_id)?.is_some() {
            return Err(Error::AlreadyExists {
                workflow_id: new_id.to_string(),
            });
        }
        let registration = self.registry.lookup(&original.name)?.clone();
        check(&registration)?;
        let mut completions = self.store.completions(id)?;
        let recorded = completions.len() as u64;
        if at_seq > recorded {
            return Err(Error::ForkPointOutOfRange {
                workflow_id: id.to_string(),
                at_seq,
                recorded,
            });
        }
        // `at_seq <= len`, which is a `usize`.
        completions.truncate(usize::try_from(at_seq).unwrap_or(usize::MAX));
        let children = self.fork_children(id, new_id, &mut completions, now_ms)?;
        let mut record = WorkflowRecord::new(new_id, original.name, original.input, now_ms);
        // The copied steps keep their ids: the fork numbers from where the original's
        // run did.
        record.first_step = original.first_step;
        // The version says which code's decisions the journal holds: a copy of none of
        // the original's is this binary's; one of some holds the original's.
        record.app_version = if at_seq == 0 {
            self.app_version.clone()
        } else {
            original.app_version
        };
        let mut batch = Batch::new();
        batch.insert_workflow(record.clone());
        for (child, _) in &children {
            batch.insert_workflow(child.clone());
        }
        for (seq, completion) in (0u64..).zip(&completions) {
            let mut copy = completion.clone();
            copy.seq = seq; // dense from 0 in the copy, whatever the original's history
            batch.push_completion(new_id, copy);
        }
        self.store.commit(&batch)?;
        let (_, copied) = batch.into_parts();
        let copied = copied.into_iter().map(|(_, c)| c).collect();
        let wf = Rc::new(WorkflowState::new(&record, copied));
        launch(self, &wf, &registration, spawn);
        for (child, registration) in children {
            let start = self.fresh_start(child, registration, true);
            launch(self, &start.wf, &start.registration, spawn);
        }
        Ok(wf)
    }

    /// The body of [`Runtime::gc`]: deletes, all at once, what was finished before
    /// `now_ms - older_than`.
    pub(crate) fn gc_at(&self, now_ms: u64, older_than: Duration) -> Result<GcReport, Error> {
        if let Some(err) = self.broken() {
            return Err(err);
        }
        let cutoff_ms = now_ms.saturating_sub(millis(older_than));
        let ids = crate::talk::collectable_before(&*self.store, cutoff_ms)?;
        let mut report = GcReport::default();
        for chunk in ids.chunks(GC_BATCH) {
            let mut batch = Batch::new();
            let running = self.running.borrow();
            for id in chunk.iter().filter(|id| !running.contains_key(id)) {
                batch.delete_workflow(id);
            }
            drop(running);
            let deleted = commit_deletions(self, &batch)?;
            report.deleted += deleted as u64;
            report.commits += 1;
        }
        Ok(report)
    }

    /// A retention run that shares the runtime's thread, for requests from other threads
    /// (a [`Client`](crate::Client), the admin socket): it deletes what was finished more
    /// than `older_than` ago, one commit of at most [`GC_BATCH`] at a time, and after each
    /// commit waits on the executor's clock nineteen times as long as that commit took,
    /// so workflows keep at least nineteen twentieths of the thread while it runs (see
    /// `GC_SHARE`). Between two commits anything may happen (a resume, a fork reading
    /// its original): each batch deletes only what is still finished, old, and not
    /// running here.
    pub(crate) async fn gc_paced(self: Rc<Self>, older_than: Duration) -> Result<GcReport, Error> {
        if let Some(err) = self.broken() {
            return Err(err);
        }
        let cutoff_ms = self.now_ms().saturating_sub(millis(older_than));
        let ids = crate::talk::collectable_before(&*self.store, cutoff_ms)?;
        let mut report = GcReport::default();
        for chunk in ids.chunks(GC_BATCH) {
            if let Some(err) = self.broken() {
                return Err(err);
            }
            let began = Instant::now();
            let mut batch = Batch::new();
            for id in chunk {
                if self.running.borrow().contains_key(id) {
                    continue;
                }
                let record = self.store.workflow(id)?;
                if let Some(r) =
                    record.filter(|r| r.status != Status::Pending && r.updated_ms < cutoff_ms)
                {
                    // Read just now, and nothing commits before this batch does.
                    batch.delete_workflow_was(id, r.status);
                }
            }
            let deleted = commit_deletions(&self, &batch)?;
            if deleted > 0 {
                report.deleted += deleted as u64;
                report.commits += 1;
            }
            // Not a yield: group commits happen at stalls, which a ready task prevents.
            ordo_executor::sleep(SWEEP_PAUSE.max(began.elapsed().saturating_mul(GC_SHARE))).await;
        }
        Ok(report)
    }
}

/// How much longer than its last commit a paced gc (`Core::gc_paced`) waits before the
/// next one: 19, so its own work takes at most a twentieth of the runtime's thread. It
/// also makes the workflows' own commits dearer, by about as much again at the same
/// pace (in a profile: sled's deferred frees of what the deletions replaced, and its
/// node merges, run inside their commits), and that part grows with the deletion rate. Measured (`benches/admin.rs`, 1,000
/// workflows stepping during a gc of 100,000, steps per second of the runtime thread's
/// CPU time during the gc against without it, loaded 2-core machine): 82-85% with 9
/// (a tenth), 88-90% with 19, whose gc deletes about half as fast (750-1,200
/// workflows/s there against 1,300-2,300).
const GC_SHARE: u32 = 19;

/// How long the retention sweep waits between two commits (see
/// `Runtime::spawn_retention_sweep`).
const SWEEP_PAUSE: Duration = Duration::from_millis(1);

/// Commits a batch of deletions and tells the observer; returns how many it deleted.
/// A failed commit stops the runtime, like a failed group commit (nothing written
/// since the last good commit can be trusted).
fn commit_deletions(core: &Core, batch: &Batch) -> Result<usize, Error> {
    let deleted = batch.deletes().len();
    if deleted == 0 {
        return Ok(0);
    }
    if let Err(err) = core.store.commit(batch) {
        let err = Error::from(err);
        core.break_down(err.clone());
        return Err(err);
    }
    core.emit(|| Event::Collected { workflows: deleted });
    Ok(deleted)
}

/// `duration` in whole milliseconds, saturating.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
