//! The runtime's heart: the outbox of completions, group commit, and delivery.
//!
//! Determinism rule 2 (the crate docs' "Determinism" section) lives here: *"Every event that can wake workflow
//! code becomes a completion and is queued. When the executor stalls (no ready task),
//! the runtime commits every queued completion, across all workflows, in one journal
//! commit, then delivers them one at a time per workflow, in `seq` order, running the
//! executor until it stalls between two deliveries to the same workflow."*
//!
//! [`Core::on_stall`] is installed as the executor's stall hook, so "the executor
//! stalled" is exactly "the hook was called".

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Instant;

use ordo_journal::{Batch, Completion, Outcome, Status, Store, WorkflowRecord};

use crate::clock::WallClock;
use crate::codec;
use crate::error::Error;
use crate::event::Event;
use crate::fingerprint;
use crate::launch::launch;
use crate::registry::{Registration, Registry};
use crate::workflow::{Delivery, Phase, WorkflowState};

/// A workflow whose start record waits for the next group commit: it is launched only
/// once that record is durable, so no step of it runs for a start a crash could lose.
pub(crate) struct PendingStart {
    pub(crate) wf: Rc<WorkflowState>,
    /// What the commit writes: a new `Pending` record, or a pending workflow's record
    /// with one more recovery attempt counted.
    pub(crate) record: WorkflowRecord,
    /// Whether the journal has no record of it yet (a new start, not a resumption).
    pub(crate) is_new: bool,
    pub(crate) registration: Registration,
}

/// What ran since the last commit and must be journaled before anyone sees it.
#[derive(Default)]
struct Outbox {
    /// Step completions without their `seq` yet, in the order they happened.
    completions: Vec<(Rc<WorkflowState>, Completion)>,
    /// Workflows that returned, with their encoded output.
    finished: Vec<(Rc<WorkflowState>, Outcome)>,
    /// Workflows started since the last commit: their records share it (issue: 10,000
    /// starts were 10,000 commits).
    starts: Vec<PendingStart>,
    /// Runs that continue as new: the old run, and the new one to launch once its record
    /// (new input, history reset) is durable.
    continued: Vec<(Rc<WorkflowState>, PendingStart)>,
}

/// Most completions one group commit writes; the rest wait for the next stall, in
/// order. sled applies a batch under one epoch guard, and every tree node an insert
/// replaces stays allocated until the batch ends: one batch of a hundred thousand
/// completions (a hundred thousand workflows started together) peaks at hundreds of
/// megabytes, which the allocator keeps as resident memory afterwards. Capped, the peak
/// is bounded however many workflows run, and a commit still serves thousands of them.
const MAX_COMMIT_COMPLETIONS: usize = 16 * 1024;

impl Outbox {
    /// What the next commit writes: the oldest completions, at most
    /// [`MAX_COMMIT_COMPLETIONS`], and the finished workflows once no completion is
    /// left behind (a final record is never written before a completion queued ahead
    /// of it).
    fn take_commit(&mut self) -> Outbox {
        if self.completions.len() <= MAX_COMMIT_COMPLETIONS
            && self.starts.len() <= MAX_COMMIT_COMPLETIONS
        {
            return std::mem::take(self);
        }
        // Starts are capped the same way; a workflow's own completions can only follow
        // its start's commit, so no order is at stake between the two.
        let completions = split_front(&mut self.completions, MAX_COMMIT_COMPLETIONS);
        let starts = split_front(&mut self.starts, MAX_COMMIT_COMPLETIONS);
        let (finished, continued) = if self.completions.is_empty() {
            (
                std::mem::take(&mut self.finished),
                std::mem::take(&mut self.continued),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Outbox {
            completions,
            finished,
            starts,
            continued,
        }
    }
}

/// Takes the first `n` items of `items` (all, if there are fewer).
fn split_front<T>(items: &mut Vec<T>, n: usize) -> Vec<T> {
    if items.len() <= n {
        return std::mem::take(items);
    }
    let rest = items.split_off(n);
    std::mem::replace(items, rest)
}

/// Counters a user can read with [`Runtime::metrics`](crate::Runtime::metrics).
///
/// ```
/// let metrics = ordo::Metrics::default();
/// assert_eq!(metrics.commits, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Group commits this runtime made (each one is one durability point).
    pub commits: u64,
    /// Step completions written by those commits.
    pub completions_committed: u64,
    /// Steps whose outcome came from a body that ran in this process.
    pub steps_executed: u64,
    /// Steps whose outcome came from the journal (replay).
    pub steps_replayed: u64,
}

pub(crate) type Observer = Box<dyn Fn(&Event)>;

pub(crate) struct Core {
    pub(crate) store: Box<dyn Store>,
    pub(crate) registry: Registry,
    pub(crate) clock: WallClock,
    /// Workflows running in this process, by id.
    pub(crate) running: RefCell<HashMap<String, Rc<WorkflowState>>>,
    outbox: RefCell<Outbox>,
    /// Workflows with a non-empty inbox, each at most once.
    delivering: RefCell<VecDeque<Rc<WorkflowState>>>,
    /// Reused between delivery rounds, so a round allocates nothing.
    round: RefCell<Vec<Rc<WorkflowState>>>,
    observer: Option<Observer>,
    /// The first panic of the observer during the current stall, re-raised at its end.
    observer_panic: RefCell<Option<Box<dyn std::any::Any + Send>>>,
    metrics: Cell<Metrics>,
    /// Stop committing after this many commits, as if the process died there
    /// (tests and the replay fuzzer simulate crashes with it).
    halt_after_commits: Option<u64>,
    /// Halt at the first commit that would record a finished workflow, committing
    /// only its completions: leaves a journal holding every step but not the end.
    pub(crate) halt_before_finish: bool,
    halted: Cell<bool>,
    /// Fingerprints whose type name this process has put in the journal (or found no
    /// name for), so each is written once per process.
    types_named: RefCell<HashSet<u64>>,
    /// Commits that recorded completions or results, which `halt_after_commits` counts.
    progress_commits: Cell<u64>,
    /// The first commit error, after which nothing is committed or delivered again:
    /// after a failed flush or fsync the kernel may have dropped dirty pages, so nothing
    /// written since the last good commit can be trusted ("fsyncgate"). Only a reopen,
    /// which replays what is really on disk, continues.
    broken: RefCell<Option<Error>>,
    pub(crate) max_recovery_attempts: u32,
    /// Testing aid: delays (or answers) live step bodies (see `BeforeStepBody`).
    pub(crate) before_step_body: Option<crate::step::BeforeStepBody>,
}

impl Core {
    pub(crate) fn new(
        store: Box<dyn Store>,
        registry: Registry,
        clock: WallClock,
        observer: Option<Observer>,
        halt_after_commits: Option<u64>,
        max_recovery_attempts: u32,
    ) -> Self {
        Core {
            store,
            registry,
            clock,
            running: RefCell::new(HashMap::new()),
            outbox: RefCell::new(Outbox::default()),
            delivering: RefCell::new(VecDeque::new()),
            round: RefCell::new(Vec::new()),
            observer,
            observer_panic: RefCell::new(None),
            metrics: Cell::new(Metrics::default()),
            halt_after_commits,
            halt_before_finish: false,
            halted: Cell::new(false),
            progress_commits: Cell::new(0),
            types_named: RefCell::new(HashSet::new()),
            broken: RefCell::new(None),
            max_recovery_attempts,
            before_step_body: None,
        }
    }

    pub(crate) fn metrics(&self) -> Metrics {
        self.metrics.get()
    }

    fn update_metrics(&self, f: impl FnOnce(&mut Metrics)) {
        let mut m = self.metrics.get();
        f(&mut m);
        self.metrics.set(m);
    }

    /// Calls the observer. A panic in it is held until the current stall is handled
    /// (see `on_stall`), so it never leaves the runtime's own bookkeeping half done.
    pub(crate) fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(observer) = &self.observer {
            let event = event();
            let call = std::panic::catch_unwind(AssertUnwindSafe(|| observer(&event)));
            if let Err(panic) = call {
                self.observer_panic.borrow_mut().get_or_insert(panic);
            }
        }
    }

    /// Wall-clock ms, read inside the executor.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms(ordo_executor::now())
    }

    pub(crate) fn now_ms_at(&self, now: Instant) -> u64 {
        self.clock.now_ms(now)
    }

    /// Registers a workflow as running here. Its recorded completions (if any) are
    /// already in its inbox, ready to be delivered at the next stall.
    pub(crate) fn admit(&self, wf: &Rc<WorkflowState>) {
        self.running
            .borrow_mut()
            .insert(wf.id.clone(), Rc::clone(wf));
        if !wf.inbox.borrow().is_empty() {
            self.delivering.borrow_mut().push_back(Rc::clone(wf));
        }
    }

    /// Forgets a workflow that stopped in this process (failed, or aborted).
    pub(crate) fn forget(&self, wf: &Rc<WorkflowState>) {
        {
            let mut running = self.running.borrow_mut();
            if running.get(&wf.id).is_some_and(|w| Rc::ptr_eq(w, wf)) {
                running.remove(&wf.id);
            }
        }
        self.undo_resume_after_divergence(wf);
    }

    /// A resumption that stopped because the code diverged from the journal (not because
    /// the workflow crashed) gives back the recovery attempt it counted: the record is
    /// written back as it was, so a corrected binary finds the workflow untouched.
    fn undo_resume_after_divergence(&self, wf: &WorkflowState) {
        let diverged = matches!(
            wf.failure(),
            Some(Error::NonDeterminism { .. } | Error::TypeMismatch { .. })
        );
        if !diverged {
            return;
        }
        let Some(before) = wf.before_resume.borrow_mut().take() else {
            return;
        };
        if self.halted.get() || self.broken.borrow().is_some() {
            return;
        }
        let attempts = before.recovery_attempts;
        let mut batch = Batch::new();
        batch.update_workflow(before, Status::Pending);
        match self.store.commit(&batch) {
            Ok(()) => wf.recovery_attempts.set(attempts),
            Err(err) => self.break_down(err.into()),
        }
    }

    /// On a graceful shutdown (the runtime dropped, not a crash), gives back the recovery
    /// attempt of every workflow resumed here that is still running without having made
    /// progress: a workflow parked in a month-long durable sleep lives through any number
    /// of deploys. A crash never gets here, so crashes keep counting.
    pub(crate) fn shut_down(&self) {
        if self.halted.get() || self.broken.borrow().is_some() {
            return;
        }
        let mut batch = Batch::new();
        for wf in self.running.borrow().values() {
            if !wf.is_running() {
                continue;
            }
            if let Some(before) = wf.before_resume.borrow_mut().take() {
                batch.update_workflow(before, Status::Pending);
            }
        }
        // Best effort: if it fails, the attempts stay counted, which is only conservative.
        let _ = self.store.commit(&batch);
    }

    /// The error every durable operation of this runtime fails with after a commit
    /// failed, if one did.
    pub(crate) fn broken(&self) -> Option<Error> {
        self.broken.borrow().clone()
    }

    /// Stages a started workflow: it is running here from now on (a second start of the
    /// same id finds it), its record goes into the next commit, and it is launched once
    /// that commit is durable.
    pub(crate) fn stage_start(&self, start: PendingStart) {
        self.running
            .borrow_mut()
            .insert(start.wf.id.clone(), Rc::clone(&start.wf));
        self.outbox.borrow_mut().starts.push(start);
    }

    /// Takes back a staged start that was never committed (a cancel before the commit).
    pub(crate) fn unstage_start(&self, id: &str) -> Option<PendingStart> {
        let mut outbox = self.outbox.borrow_mut();
        let index = outbox.starts.iter().position(|s| s.wf.id == id)?;
        Some(outbox.starts.remove(index))
    }

    /// Queues a step completion (a body finished, a timer fired).
    pub(crate) fn queue_completion(&self, wf: Rc<WorkflowState>, completion: Completion) {
        if wf.phase.get() == Phase::Done {
            return;
        }
        self.outbox.borrow_mut().completions.push((wf, completion));
    }

    /// Queues a run that continues as new (`next`); it is committed like a result.
    pub(crate) fn queue_continue(&self, wf: Rc<WorkflowState>, next: PendingStart) {
        wf.phase.set(Phase::Finishing);
        self.outbox.borrow_mut().continued.push((wf, next));
    }

    /// Queues a workflow's final output; handles see it once it is durable.
    pub(crate) fn queue_finished(&self, wf: Rc<WorkflowState>, output: Outcome) {
        wf.phase.set(Phase::Finishing);
        self.outbox.borrow_mut().finished.push((wf, output));
    }

    /// The executor's stall hook: deliver, else commit and deliver. Returns whether it
    /// may have made a task ready.
    pub(crate) fn on_stall(self: &Rc<Self>) -> bool {
        let progressed = if self.deliver_round() {
            true
        } else if self.commit() {
            self.deliver_round();
            true
        } else {
            false
        };
        // The observer's panic reaches the caller of `block_on` (or `run`) now that the
        // runtime is consistent; the executor keeps this hook for the next stall.
        if let Some(panic) = self.observer_panic.borrow_mut().take() {
            std::panic::resume_unwind(panic);
        }
        progressed
    }

    /// Delivers the next completion of every workflow that has one. One per workflow:
    /// the executor must stall before the same workflow gets the next one.
    fn deliver_round(&self) -> bool {
        let mut round = self.round.borrow_mut();
        round.extend(self.delivering.borrow_mut().drain(..));
        if round.is_empty() {
            return false;
        }
        for wf in round.drain(..) {
            if let Some(delivery) = wf.next_delivery() {
                self.deliver(&wf, delivery);
            }
            if !wf.inbox.borrow().is_empty() {
                self.delivering.borrow_mut().push_back(wf);
            }
        }
        true
    }

    fn deliver(&self, wf: &Rc<WorkflowState>, delivery: Delivery) {
        if !wf.is_running() {
            return;
        }
        let Delivery {
            step_id,
            name,
            outcome,
            recorded,
        } = delivery;
        let ok = outcome.is_ok();
        // A recorded step's name was checked when the step was created
        // (`WorkflowState::create_step`); a live completion carries its slot's name.
        if let Err(found) = wf.put_outcome(step_id, outcome) {
            // The journal says this step's outcome was delivered at this point; the
            // code has no such step now. Stop, and leave the journal as it is.
            wf.fail(Error::NonDeterminism {
                workflow_id: wf.id.clone(),
                step_id,
                recorded: name.to_string(),
                found,
            });
            return;
        }
        if recorded {
            self.update_metrics(|m| m.steps_replayed += 1);
            wf.recorded_delivered();
        } else {
            self.update_metrics(|m| m.steps_executed += 1);
        }
        self.emit(|| Event::Step {
            workflow_id: wf.id.clone(),
            step_id,
            name: name.to_string(),
            ok,
            replayed: recorded,
        });
    }

    /// Commits the outbox as one batch with one durability point, then hands the
    /// completions to their workflows' inboxes and the final results to handles.
    fn commit(self: &Rc<Self>) -> bool {
        let Outbox {
            mut completions,
            mut finished,
            mut starts,
            mut continued,
        } = self.outbox.borrow_mut().take_commit();
        // A workflow stopped after it returned (cancelled, say) must not be recorded
        // as finished.
        finished.retain(|(wf, _)| wf.phase.get() == Phase::Finishing);
        starts.retain(|start| start.wf.is_running());
        continued.retain(|(wf, _)| wf.phase.get() == Phase::Finishing);
        // A run that continues as new leaves its history behind, late completions too.
        completions.retain(|(wf, _)| !continued.iter().any(|(old, _)| Rc::ptr_eq(old, wf)));
        if completions.is_empty()
            && finished.is_empty()
            && starts.is_empty()
            && continued.is_empty()
        {
            return false;
        }
        if self.halted.get() || self.broken.borrow().is_some() {
            return false;
        }
        let halt_now = self.halt_before_finish && !finished.is_empty();
        if halt_now {
            finished.clear();
            if completions.is_empty() && starts.is_empty() {
                self.halt();
                return true;
            }
        }
        let now_ms = self.now_ms();
        let mut batch = Batch::new();
        // The batch owns what it commits; `staged` and `finished` remember whose each
        // entry is, and the entries are taken back after the commit (no copies).
        let mut staged = Vec::with_capacity(completions.len());
        // Starts first: a later put of the same id in this batch (its attempt reset, its
        // final record) overrides the start's.
        for start in &starts {
            if start.is_new {
                batch.insert_workflow(start.record.clone());
            } else {
                batch.update_workflow(start.record.clone(), Status::Pending);
            }
        }
        for (_, next) in &continued {
            batch.update_workflow(next.record.clone(), Status::Pending);
            batch.reset_completions(&next.record.id);
        }
        for (wf, mut completion) in completions {
            completion.seq = wf.next_seq.get();
            wf.next_seq.set(completion.seq + 1);
            // A new completion is progress: the resumption that got here did not crash,
            // so its attempts start over (in this same commit).
            if wf.recovery_attempts.get() > 0 {
                wf.recovery_attempts.set(0);
                wf.before_resume.borrow_mut().take();
                batch.update_workflow(wf.pending_record(0, now_ms), Status::Pending);
            }
            batch.push_completion(&wf.id, completion);
            staged.push(wf);
        }
        let finished: Vec<Rc<WorkflowState>> = finished
            .into_iter()
            .map(|(wf, output)| {
                batch.update_workflow(wf.final_record(output, now_ms), Status::Pending);
                wf
            })
            .collect();
        self.name_new_types(&mut batch);
        if let Err(err) = self.store.commit(&batch) {
            // Nothing of this batch is known to be durable, and nothing written since the
            // last good commit can be trusted: nobody may see any of it, and this runtime
            // commits nothing more. Every workflow stops here and stays `Pending`; a
            // reopen replays what is really on disk.
            // Staged starts and continuing runs are in `running` too: `break_down` fails
            // them with everything else.
            self.break_down(Error::from(err));
            return true;
        }
        for start in starts {
            if start.wf.is_running() {
                launch(self, &start.wf, &start.registration, |root| {
                    drop(ordo_executor::spawn(root));
                });
            }
        }
        for (old, next) in continued {
            old.continue_as(Rc::clone(&next.wf));
            self.forget(&old);
            launch(self, &next.wf, &next.registration, |root| {
                drop(ordo_executor::spawn(root));
            });
        }
        let commit = self.metrics().commits + 1;
        self.update_metrics(|m| {
            m.commits = commit;
            m.completions_committed += staged.len() as u64;
        });
        let (n_completions, n_workflows) = (staged.len(), finished.len());
        let (records, completions) = batch.into_parts();
        for (wf, (_, completion)) in staged.into_iter().zip(completions) {
            if !wf.is_running() {
                continue;
            }
            let was_empty = {
                let mut inbox = wf.inbox.borrow_mut();
                let was_empty = inbox.is_empty();
                inbox.push_back(Delivery {
                    step_id: completion.step_id,
                    name: wf.intern(&completion.name),
                    outcome: completion.outcome,
                    recorded: false,
                });
                was_empty
            };
            if was_empty {
                self.delivering.borrow_mut().push_back(wf);
            }
        }
        // The batch also holds starts and attempt resets (pending records) ahead of the
        // final records; only the latter pair with `finished` (main has the same filter).
        let finals = records.into_iter().filter(|r| r.status != Status::Pending);
        for (wf, record) in finished.into_iter().zip(finals) {
            // `final_record` always sets the output.
            let Some(output) = record.output else {
                continue;
            };
            let ok = output.is_ok();
            wf.phase.set(Phase::Done);
            wf.inbox.borrow_mut().clear();
            wf.set_result(Ok(output));
            self.forget(&wf);
            self.emit(|| Event::Finished {
                workflow_id: wf.id.clone(),
                ok,
            });
        }
        self.emit(|| Event::Committed {
            completions: n_completions,
            workflows: n_workflows,
            commit,
        });
        // The crash points count commits that record steps or results; a commit of
        // starts alone is not one (a test's "after N commits" means N steps' worth).
        if n_completions + n_workflows > 0 {
            self.progress_commits.set(self.progress_commits.get() + 1);
        }
        let progressed = self.progress_commits.get();
        if halt_now
            || self
                .halt_after_commits
                .is_some_and(|limit| progressed >= limit)
        {
            self.halt();
        }
        true
    }

    /// Adds to `batch` the names of value types it is the first to store in this
    /// process, so an error can name a recorded type that later code no longer has.
    fn name_new_types(&self, batch: &mut Batch) {
        let mut named = self.types_named.borrow_mut();
        let mut new = Vec::new();
        let values = batch
            .workflows()
            .iter()
            .flat_map(|w| {
                std::iter::once(&w.input[..]).chain(w.output.as_ref().map(Outcome::bytes))
            })
            .chain(batch.completions().iter().map(|(_, c)| c.outcome.bytes()));
        for bytes in values {
            let Some(fingerprint) = codec::fingerprint_of(bytes) else {
                continue;
            };
            if named.insert(fingerprint) {
                if let Some(name) = fingerprint::known_name(fingerprint) {
                    new.push((fingerprint, name));
                }
            }
        }
        for (fingerprint, name) in new {
            batch.put_type(fingerprint, name.to_string());
        }
    }

    /// Stops this runtime for good after a commit failed: every running workflow fails
    /// with `error`, nothing more is committed or delivered.
    pub(crate) fn break_down(&self, error: Error) {
        if self.broken.borrow().is_some() {
            return;
        }
        *self.broken.borrow_mut() = Some(error.clone());
        self.stop_everything(|_| error.clone());
    }

    /// Simulates the process dying right after the last commit: nothing more is
    /// committed or delivered, every running workflow stops with `Error::Stopped`.
    fn halt(&self) {
        self.halted.set(true);
        self.stop_everything(|wf| Error::Stopped {
            workflow_id: wf.id.clone(),
        });
    }

    /// Fails every running workflow with the error `why` gives it, and drops every
    /// delivery and every queued completion, start and result.
    fn stop_everything(&self, why: impl Fn(&WorkflowState) -> Error) {
        let running: Vec<_> = self
            .running
            .borrow_mut()
            .drain()
            .map(|(_, wf)| wf)
            .collect();
        for wf in running {
            wf.fail(why(&wf));
        }
        self.delivering.borrow_mut().clear();
        *self.outbox.borrow_mut() = Outbox::default();
    }
}
