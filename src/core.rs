//! The runtime's heart: the outbox of completions, group commit, and delivery.
//!
//! Determinism rule 2 (DESIGN.md §3) lives here: *"Every event that can wake workflow
//! code becomes a completion and is queued. When the executor stalls (no ready task),
//! the runtime commits every queued completion, across all workflows, in one journal
//! commit, then delivers them one at a time per workflow, in `seq` order, running the
//! executor until it stalls between two deliveries to the same workflow."*
//!
//! [`Core::on_stall`] is installed as the executor's stall hook, so "the executor
//! stalled" is exactly "the hook was called".

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

use ordo_journal::{Batch, Completion, Outcome, Store};

use crate::clock::WallClock;
use crate::error::Error;
use crate::event::Event;
use crate::registry::Registry;
use crate::workflow::{Delivery, Phase, WorkflowState};

/// What ran since the last commit and must be journaled before anyone sees it.
#[derive(Default)]
struct Outbox {
    /// Step completions without their `seq` yet, in the order they happened.
    completions: Vec<(Rc<WorkflowState>, Completion)>,
    /// Workflows that returned, with their encoded output.
    finished: Vec<(Rc<WorkflowState>, Outcome)>,
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
        if self.completions.len() <= MAX_COMMIT_COMPLETIONS {
            return std::mem::take(self);
        }
        let rest = self.completions.split_off(MAX_COMMIT_COMPLETIONS);
        Outbox {
            completions: std::mem::replace(&mut self.completions, rest),
            finished: Vec::new(),
        }
    }
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
    metrics: Cell<Metrics>,
    /// Stop committing after this many commits, as if the process died there
    /// (tests and the replay fuzzer simulate crashes with it).
    halt_after_commits: Option<u64>,
    /// Halt at the first commit that would record a finished workflow, committing
    /// only its completions: leaves a journal holding every step but not the end.
    pub(crate) halt_before_finish: bool,
    halted: Cell<bool>,
    pub(crate) max_recovery_attempts: u32,
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
            metrics: Cell::new(Metrics::default()),
            halt_after_commits,
            halt_before_finish: false,
            halted: Cell::new(false),
            max_recovery_attempts,
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

    fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(observer) = &self.observer {
            observer(&event());
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
        let mut running = self.running.borrow_mut();
        if running.get(&wf.id).is_some_and(|w| Rc::ptr_eq(w, wf)) {
            running.remove(&wf.id);
        }
    }

    /// Queues a step completion (a body finished, a timer fired).
    pub(crate) fn queue_completion(&self, wf: Rc<WorkflowState>, completion: Completion) {
        if wf.phase.get() == Phase::Done {
            return;
        }
        self.outbox.borrow_mut().completions.push((wf, completion));
    }

    /// Queues a workflow's final output; handles see it once it is durable.
    pub(crate) fn queue_finished(&self, wf: Rc<WorkflowState>, output: Outcome) {
        wf.phase.set(Phase::Finishing);
        self.outbox.borrow_mut().finished.push((wf, output));
    }

    /// The executor's stall hook: deliver, else commit and deliver. Returns whether it
    /// may have made a task ready.
    pub(crate) fn on_stall(&self) -> bool {
        if self.deliver_round() {
            return true;
        }
        if self.commit() {
            self.deliver_round();
            return true;
        }
        false
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
    fn commit(&self) -> bool {
        let Outbox {
            completions,
            mut finished,
        } = self.outbox.borrow_mut().take_commit();
        // A workflow stopped after it returned (cancelled, say) must not be recorded
        // as finished.
        finished.retain(|(wf, _)| wf.phase.get() == Phase::Finishing);
        if completions.is_empty() && finished.is_empty() {
            return false;
        }
        if self.halted.get() {
            return false;
        }
        let halt_now = self.halt_before_finish && !finished.is_empty();
        if halt_now {
            finished.clear();
            if completions.is_empty() {
                self.halt();
                return true;
            }
        }
        let now_ms = self.now_ms();
        let mut batch = Batch::new();
        // The batch owns what it commits; `staged` and `finished` remember whose each
        // entry is, and the entries are taken back after the commit (no copies).
        let mut staged = Vec::with_capacity(completions.len());
        for (wf, mut completion) in completions {
            completion.seq = wf.next_seq.get();
            wf.next_seq.set(completion.seq + 1);
            batch.push_completion(&wf.id, completion);
            staged.push(wf);
        }
        let finished: Vec<Rc<WorkflowState>> = finished
            .into_iter()
            .map(|(wf, output)| {
                batch.put_workflow(wf.final_record(output, now_ms));
                wf
            })
            .collect();
        if let Err(err) = self.store.commit(&batch) {
            // Nothing of this batch is known to be durable: nobody may see it. The
            // workflows stop here and stay `Pending`; recovery will replay them.
            let err = Error::from(err);
            for wf in staged.iter().chain(finished.iter()) {
                wf.fail(err.clone());
                self.forget(wf);
            }
            return true;
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
        for (wf, record) in finished.into_iter().zip(records) {
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
        if halt_now || self.halt_after_commits.is_some_and(|limit| commit >= limit) {
            self.halt();
        }
        true
    }

    /// Simulates the process dying right after the last commit: nothing more is
    /// committed or delivered, every running workflow stops with `Error::Stopped`.
    fn halt(&self) {
        self.halted.set(true);
        let running: Vec<_> = self
            .running
            .borrow_mut()
            .drain()
            .map(|(_, wf)| wf)
            .collect();
        for wf in running {
            wf.fail(Error::Stopped {
                workflow_id: wf.id.clone(),
            });
        }
        self.delivering.borrow_mut().clear();
        *self.outbox.borrow_mut() = Outbox::default();
    }
}
