//! One running workflow's state: its step slots, its inbox of committed completions,
//! and where it stands in replay.
//!
//! Everything here is touched only from the runtime's thread, hence `Cell`/`RefCell`;
//! no borrow is held across an `.await` or a call into user code.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::task::Waker;

use futures::future::AbortHandle;
use ordo_journal::{Completion, Outcome, Status, WorkflowRecord};

use crate::error::Error;

/// A committed completion waiting to be delivered to its step.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) step_id: u64,
    pub(crate) name: Rc<str>,
    pub(crate) outcome: Outcome,
    /// `true` when it comes from the journal at recovery (replay), not from a body
    /// that ran in this process.
    pub(crate) recorded: bool,
}

/// A step the workflow created (called `ctx.step` for), by step id.
#[derive(Debug)]
pub(crate) struct StepSlot {
    /// Interned (see `WorkflowState::names`).
    pub(crate) name: Rc<str>,
    /// Whether the journal has this step's completion: its body must never run.
    pub(crate) recorded: bool,
    /// The delivered outcome, until the step future takes it.
    pub(crate) outcome: Option<Outcome>,
    /// The step future's waker, woken on delivery.
    pub(crate) waker: Option<Waker>,
}

/// Where a workflow is in its life inside this runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Its code runs (live or replaying).
    Running,
    /// It returned; its final record waits in the outbox for the next commit.
    Finishing,
    /// Its final record is durable, or it failed in this process; nothing more happens.
    Done,
}

pub(crate) struct WorkflowState {
    pub(crate) id: String,
    pub(crate) name: String,
    /// Kept to rewrite the whole record when the workflow finishes.
    pub(crate) input: Vec<u8>,
    pub(crate) created_ms: u64,
    /// Recovery attempts as recorded: counts resumptions that ended without progress
    /// (a crash or a panic). Reset to 0 in the commit of the first new completion.
    pub(crate) recovery_attempts: Cell<u32>,
    /// The record as it was before this process counted its own resumption, if it did:
    /// written back when the resumption stops on a divergence (non-determinism, a type
    /// mismatch), which is the code's fault, not the workflow's: a corrected binary finds
    /// the workflow exactly as it was. Dropped at the first progress.
    pub(crate) before_resume: RefCell<Option<WorkflowRecord>>,

    /// The next delivery sequence number, assigned at commit.
    pub(crate) next_seq: Cell<u64>,
    /// Created steps; ids are dense, so the id is the index and the next id is the
    /// length. Determinism rule 1: an id is taken synchronously when `ctx.step` is
    /// called, so program order, not poll order, numbers steps.
    pub(crate) steps: RefCell<Vec<StepSlot>>,
    /// The journal's recorded steps `(step id, name)`, sorted by id, to check a
    /// replayed step's name the moment it is created. Ids are created in increasing
    /// order, so a cursor walks this list: no hashing, no random access (replaying
    /// 100,000 steps is a linear scan).
    recorded_steps: Vec<(u64, Rc<str>)>,
    /// The first entry of `recorded_steps` whose id has not been created yet.
    recorded_cursor: Cell<usize>,
    /// Every step name this workflow used, shared by its slots and deliveries: steps
    /// mostly repeat a few names, and a replay of 100,000 "charge" steps should not
    /// allocate and free 100,000 copies of "charge".
    names: RefCell<HashSet<Rc<str>>>,
    /// Committed completions not yet delivered, in `seq` order.
    pub(crate) inbox: RefCell<VecDeque<Delivery>>,
    /// Recorded completions still to deliver; while > 0 the workflow is replaying and
    /// no step body may start (determinism rule 3).
    replay_left: Cell<usize>,
    /// Steps that wanted to start their body during replay; woken when it ends.
    deferred: RefCell<Vec<Waker>>,
    pub(crate) phase: Cell<Phase>,
    /// The root task and `ctx.spawn`ed tasks, aborted when the workflow fails.
    aborts: RefCell<Vec<AbortHandle>>,
    /// The final result once known: the durable output, or why it failed here.
    result: RefCell<Option<Result<Outcome, Error>>>,
    /// Handles waiting for `result`.
    waiters: RefCell<Vec<Waker>>,
}

impl WorkflowState {
    pub(crate) fn new(record: &WorkflowRecord, recorded: Vec<Completion>) -> Self {
        let next_seq = recorded.last().map_or(0, |c| c.seq + 1);
        let replay_left = recorded.len();
        let mut names = HashSet::new();
        let mut recorded_steps = Vec::with_capacity(recorded.len());
        let mut inbox = VecDeque::with_capacity(recorded.len());
        let mut previous: Option<Rc<str>> = None;
        for c in recorded {
            // Consecutive completions often share a name: skip the hashing then.
            let name = match previous {
                Some(p) if *p == *c.name => p,
                _ => intern(&mut names, &c.name),
            };
            previous = Some(Rc::clone(&name));
            recorded_steps.push((c.step_id, Rc::clone(&name)));
            inbox.push_back(Delivery {
                step_id: c.step_id,
                name,
                outcome: c.outcome,
                recorded: true,
            });
        }
        // Already sorted for sequential workflows (seq order = id order), which the
        // sort detects in linear time.
        recorded_steps.sort_by_key(|(step_id, _)| *step_id);
        WorkflowState {
            id: record.id.clone(),
            name: record.name.clone(),
            input: record.input.clone(),
            created_ms: record.created_ms,
            recovery_attempts: Cell::new(record.recovery_attempts),
            before_resume: RefCell::new(None),
            next_seq: Cell::new(next_seq),
            // At least every recorded step will be created again.
            steps: RefCell::new(Vec::with_capacity(replay_left)),
            recorded_steps,
            recorded_cursor: Cell::new(0),
            names: RefCell::new(names),
            inbox: RefCell::new(inbox),
            replay_left: Cell::new(replay_left),
            deferred: RefCell::new(Vec::new()),
            phase: Cell::new(Phase::Running),
            aborts: RefCell::new(Vec::new()),
            result: RefCell::new(None),
            waiters: RefCell::new(Vec::new()),
        }
    }

    /// Creates the next step slot and returns its id, checking it against the
    /// journal when replaying.
    pub(crate) fn create_step(&self, name: &str) -> u64 {
        let id = self.steps_created();
        let recorded = self.take_recorded(id);
        let slot_name = match &recorded {
            Some(recorded) if **recorded == *name => Rc::clone(recorded),
            Some(recorded) => {
                self.fail(Error::NonDeterminism {
                    workflow_id: self.id.clone(),
                    step_id: id,
                    recorded: recorded.to_string(),
                    found: name.to_string(),
                });
                self.intern(name)
            }
            None => self.intern(name),
        };
        self.steps.borrow_mut().push(StepSlot {
            name: slot_name,
            recorded: recorded.is_some(),
            outcome: None,
            waker: None,
        });
        id
    }

    /// The recorded name of step `id`, which is being created; ids come in increasing
    /// order, so the cursor only moves forward.
    fn take_recorded(&self, id: u64) -> Option<Rc<str>> {
        let mut cursor = self.recorded_cursor.get();
        while self
            .recorded_steps
            .get(cursor)
            .is_some_and(|(r, _)| *r < id)
        {
            cursor += 1;
        }
        self.recorded_cursor.set(cursor);
        match self.recorded_steps.get(cursor) {
            Some((r, name)) if *r == id => Some(Rc::clone(name)),
            _ => None,
        }
    }

    /// The shared copy of a step name.
    pub(crate) fn intern(&self, name: &str) -> Rc<str> {
        intern(&mut self.names.borrow_mut(), name)
    }

    pub(crate) fn steps_created(&self) -> u64 {
        self.steps.borrow().len() as u64
    }

    /// The name step `step_id` was created with (empty for an id never created).
    pub(crate) fn step_name(&self, step_id: u64) -> Rc<str> {
        let steps = self.steps.borrow();
        usize::try_from(step_id)
            .ok()
            .and_then(|i| steps.get(i))
            .map_or_else(|| Rc::from(""), |slot| Rc::clone(&slot.name))
    }

    pub(crate) fn is_replaying(&self) -> bool {
        self.replay_left.get() > 0
    }

    /// Parks a step that may not start its body until replay ends.
    pub(crate) fn defer_until_live(&self, waker: &Waker) {
        self.deferred.borrow_mut().push(waker.clone());
    }

    /// Bookkeeping after a recorded completion was delivered: the last one ends replay
    /// and lets deferred step bodies start.
    pub(crate) fn recorded_delivered(&self) {
        let left = self.replay_left.get().saturating_sub(1);
        self.replay_left.set(left);
        if left == 0 {
            let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
            for waker in deferred {
                waker.wake();
            }
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.phase.get() == Phase::Running
    }

    pub(crate) fn register_abort(&self, handle: AbortHandle) {
        self.aborts.borrow_mut().push(handle);
    }

    /// Stops the workflow in this process with `error`: its tasks are aborted (their
    /// futures dropped, in-flight step bodies cancelled) and its handles see the error.
    /// The journal is not touched: the workflow stays `Pending` there.
    pub(crate) fn fail(&self, error: Error) {
        if self.phase.get() == Phase::Done || self.result.borrow().is_some() {
            return;
        }
        self.phase.set(Phase::Done);
        self.inbox.borrow_mut().clear();
        self.set_result(Err(error));
        self.abort_tasks();
    }

    /// Aborts the root task and every `ctx.spawn`ed task.
    pub(crate) fn abort_tasks(&self) {
        let aborts = std::mem::take(&mut *self.aborts.borrow_mut());
        for handle in aborts {
            handle.abort();
        }
    }

    /// Records the final result and wakes every handle waiting for it.
    pub(crate) fn set_result(&self, result: Result<Outcome, Error>) {
        *self.result.borrow_mut() = Some(result);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }

    /// The final result if known, else registers `waker` to hear about it.
    pub(crate) fn poll_result(&self, waker: &Waker) -> Option<Result<Outcome, Error>> {
        if let Some(result) = &*self.result.borrow() {
            return Some(result.clone());
        }
        let mut waiters = self.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
        None
    }

    /// The record of the workflow while it is pending, with `attempts`.
    pub(crate) fn pending_record(&self, attempts: u32, now_ms: u64) -> WorkflowRecord {
        WorkflowRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            input: self.input.clone(),
            status: Status::Pending,
            output: None,
            created_ms: self.created_ms,
            updated_ms: now_ms,
            recovery_attempts: attempts,
        }
    }

    /// The error this workflow stopped with in this process, if any.
    pub(crate) fn failure(&self) -> Option<Error> {
        match &*self.result.borrow() {
            Some(Err(err)) => Some(err.clone()),
            _ => None,
        }
    }

    /// The record to write when the workflow finishes with `output`.
    pub(crate) fn final_record(&self, output: Outcome, now_ms: u64) -> WorkflowRecord {
        WorkflowRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            input: self.input.clone(),
            status: if output.is_ok() {
                Status::Succeeded
            } else {
                Status::Failed
            },
            output: Some(output),
            created_ms: self.created_ms,
            updated_ms: now_ms,
            recovery_attempts: self.recovery_attempts.get(),
        }
    }

    /// When the workflow returns while replaying, the recorded completions it never
    /// took must belong to steps it created (a `select!` loser's completion, say);
    /// one for a step it never created means the code diverged.
    pub(crate) fn check_undelivered_on_return(&self) -> Result<(), Error> {
        let created = self.steps_created();
        let inbox = self.inbox.borrow();
        match inbox.iter().find(|d| d.recorded && d.step_id >= created) {
            Some(d) => Err(Error::NonDeterminism {
                workflow_id: self.id.clone(),
                step_id: d.step_id,
                recorded: d.name.to_string(),
                found: format!("the workflow returned after creating only {created} steps"),
            }),
            None => Ok(()),
        }
    }
}

/// The shared copy of `name` in `names`, added if new.
fn intern(names: &mut HashSet<Rc<str>>, name: &str) -> Rc<str> {
    if let Some(shared) = names.get(name) {
        return Rc::clone(shared);
    }
    let shared: Rc<str> = Rc::from(name);
    names.insert(Rc::clone(&shared));
    shared
}
