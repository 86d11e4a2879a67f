//! One running workflow's state: its step slots, its inbox of committed completions,
//! and where it stands in replay.
//!
//! Everything here is touched only from the runtime's thread, hence `Cell`/`RefCell`;
//! no borrow is held across an `.await` or a call into user code.
//!
//! A service may keep a million workflows parked in a durable sleep, so a workflow
//! keeps only what its future can still ask for: slots of the steps in use (not of
//! every step it ran), an inbox that gives its buffer back once delivered, and replay
//! bookkeeping that is dropped when replay ends.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::Waker;

use futures::future::AbortHandle;
use ordo_journal::{Completion, Outcome, Status, WorkflowRecord};
use slab::Slab;

use crate::error::Error;
use crate::names;
use crate::slots::{StepSlot, StepSlots};

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
    /// Kept to rewrite the whole record when the workflow finishes. A boxed slice, 8
    /// bytes smaller than a `Vec`: it never grows.
    pub(crate) input: Box<[u8]>,
    pub(crate) created_ms: u64,
    /// The app version recorded when it started, kept when its record is rewritten.
    pub(crate) app_version: Option<String>,
    /// Its deadline (wall-clock ms), past which it is cancelled (see `deadline`);
    /// rewritten into every record of it.
    pub(crate) deadline_ms: Option<u64>,
    /// The id of its current run's first step ([`WorkflowRecord::first_step`]); set
    /// when a run that continues as new is committed (see `Core::commit_with`), before
    /// the next run creates a step.
    pub(crate) first_step: Cell<u64>,
    /// Whether its awakeable tokens are keyed ([`WorkflowRecord::keyed_tokens`]).
    pub(crate) keyed_tokens: bool,
    /// Recovery attempts as recorded: counts resumptions that ended without progress
    /// (a crash or a panic). Reset to 0 in the commit of the first new completion.
    pub(crate) recovery_attempts: Cell<u32>,
    /// The record as it was before this process counted its own resumption, if it did:
    /// written back when the resumption stops on a divergence (non-determinism, a type
    /// mismatch), which is the code's fault, not the workflow's: a corrected binary finds
    /// the workflow exactly as it was. Dropped at the first progress. Boxed: a record is
    /// about 170 bytes, which every workflow would carry (most never resumed) for as long
    /// as it runs or stays parked.
    pub(crate) before_resume: RefCell<Option<Box<WorkflowRecord>>>,
    /// Whether a resumption that counted a recovery attempt has shown yet what it does
    /// after its replay (see `Core::settle`).
    pub(crate) settling: Cell<Settling>,

    /// The next delivery sequence number, assigned at commit.
    pub(crate) next_seq: Cell<u64>,
    /// Slots of the steps in use; ids are dense and the next id is the number of steps
    /// created. Determinism rule 1: an id is taken synchronously when `ctx.step` is
    /// called, so program order, not poll order, numbers steps.
    pub(crate) steps: RefCell<StepSlots>,
    /// Committed completions not yet delivered, in `seq` order; its buffer is freed
    /// whenever it empties (see `next_delivery`).
    pub(crate) inbox: RefCell<VecDeque<Delivery>>,
    /// Where replay stands while the workflow replays (no step body may start:
    /// determinism rule 3); `None` once it is live. Boxed and dropped when replay ends:
    /// a parked workflow keeps 16 bytes for it, not 80.
    replay: RefCell<Option<Box<Replay>>>,
    pub(crate) phase: Cell<Phase>,
    /// The root task's abort handle, aborted when the workflow fails.
    root_abort: RefCell<Option<AbortHandle>>,
    /// The `ctx.spawn`ed tasks' abort handles, aborted with the root's. Keyed, so a
    /// finished task takes its handle out again: a workflow that spawns in a loop for
    /// months must not keep one per task it ever ran. Boxed and made at the first
    /// spawn: most workflows spawn nothing, and keep 16 bytes for it, not 48.
    spawned: RefCell<Option<Box<Slab<AbortHandle>>>>,
    /// How the run ended and who waits to hear it (see [`Ending`]); `None` while it
    /// runs and nobody waits. Boxed: a running or parked workflow keeps 16 bytes for
    /// it, not 64; the box is made when a handle first waits or the run ends.
    ending: RefCell<Option<Box<Ending>>>,
    /// Its unconsumed messages and waiting `recv`s, loaded from the journal by the first
    /// `recv` (a workflow that never receives keeps none).
    pub(crate) mailbox: RefCell<Option<Box<crate::talk::mailbox::Mailbox>>>,
    /// The children it launched (live or replayed), for its end's cancel policy.
    pub(crate) children: RefCell<Vec<crate::talk::children::ChildLaunch>>,
    /// Its trace context and its run's span (see `telemetry`).
    pub(crate) telemetry: crate::telemetry::RunTelemetry,
}

/// The end of a run as its handles see it (see [`WorkflowState`]'s `ending`).
#[derive(Default)]
struct Ending {
    /// The final result once known: the durable output, or why it failed here.
    result: Option<Result<Outcome, Error>>,
    /// The run that replaced this one (continue-as-new), whose result handles await.
    continued_as: Option<Rc<WorkflowState>>,
    /// Handles waiting for `result`.
    waiters: Vec<Waker>,
}

/// A replaying workflow's bookkeeping (see [`WorkflowState`]'s `replay`).
struct Replay {
    /// The journal's recorded steps `(step id, name)`, sorted by id, to check a
    /// replayed step's name the moment it is created. Ids are created in increasing
    /// order, so a cursor walks this list: no hashing, no random access (replaying
    /// 100,000 steps is a linear scan).
    recorded_steps: Vec<(u64, Rc<str>)>,
    /// The first entry of `recorded_steps` whose id has not been created yet.
    cursor: usize,
    /// Recorded completions still to deliver, more than 0.
    left: usize,
    /// Steps that wanted to start their body during replay; woken when it ends.
    deferred: Vec<Waker>,
}

/// Where a resumption that counted a recovery attempt stands (`WorkflowState::settling`).
///
/// A recovery attempt is counted, durably, before a resumed workflow replays: its own
/// code could crash the process. At the first commit after its replay, a workflow that
/// waits only on ordo (a durable sleep, a message, an awakeable, a child) gives the
/// attempt back in that commit: it did not crash anything, and a process crashed again
/// and again by another workflow must not use up the attempts of every workflow parked
/// beside it. One that wants to run a step body of its own keeps the attempt, and its
/// bodies start once that commit is durable (one commit later than they would), so the
/// give-backs of the others are never lost to the crash its body may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settling {
    /// Nothing to settle: not resumed, or settled.
    Settled,
    /// Resumed with an attempt counted; has asked for no step body of its own yet.
    Unsettled,
    /// Resumed with an attempt counted, and a step body of its own waits to start.
    WantsBody,
}

impl WorkflowState {
    pub(crate) fn new(record: &WorkflowRecord, recorded: Vec<Completion>) -> Self {
        let next_seq = recorded.last().map_or(0, |c| c.seq + 1);
        let replay_left = recorded.len();
        let mut recorded_steps = Vec::with_capacity(recorded.len());
        let mut inbox = VecDeque::with_capacity(recorded.len());
        let mut previous: Option<Rc<str>> = None;
        for c in recorded {
            // Consecutive completions often share a name: skip the hashing then.
            let name = match previous {
                Some(p) if *p == *c.name => p,
                _ => names::intern(&c.name),
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
        let replay = (replay_left > 0).then(|| {
            Box::new(Replay {
                recorded_steps,
                cursor: 0,
                left: replay_left,
                deferred: Vec::new(),
            })
        });
        WorkflowState {
            id: record.id.clone(),
            name: record.name.clone(),
            input: record.input.as_slice().into(),
            created_ms: record.created_ms,
            app_version: record.app_version.clone(),
            deadline_ms: record.deadline_ms,
            first_step: Cell::new(record.first_step),
            keyed_tokens: record.keyed_tokens,
            recovery_attempts: Cell::new(record.recovery_attempts),
            before_resume: RefCell::new(None),
            settling: Cell::new(Settling::Settled),
            next_seq: Cell::new(next_seq),
            steps: RefCell::new(StepSlots::starting_at(record.first_step)),
            inbox: RefCell::new(inbox),
            replay: RefCell::new(replay),
            phase: Cell::new(Phase::Running),
            root_abort: RefCell::new(None),
            spawned: RefCell::new(None),
            ending: RefCell::new(None),
            mailbox: RefCell::new(None),
            children: RefCell::new(Vec::new()),
            telemetry: Default::default(),
        }
    }

    /// Creates the next step slot and returns its id, checking it against the
    /// journal when replaying.
    pub(crate) fn create_step(&self, name: &str) -> u64 {
        let id = self.steps_created();
        let recorded = if self.is_replaying() {
            self.take_recorded(id)
        } else {
            None
        };
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
            None => {
                // A live step's name goes to the journal with its outcome: one that no
                // store could hold would fail the commit of every workflow with it.
                // This workflow stops before the body runs, as on an outcome that
                // cannot be encoded (it stays pending for a fixed binary).
                if let Err(err) = crate::core::check_text(name) {
                    self.fail(Error::Encode {
                        workflow_id: self.id.clone(),
                        what: format!("the name of step {id}"),
                        detail: err.to_string(),
                    });
                }
                self.intern(name)
            }
        };
        self.steps.borrow_mut().push(StepSlot {
            name: slot_name,
            recorded: recorded.is_some(),
            outcome: None,
            waker: None,
        })
    }

    /// Whether step `id` exists and the journal holds its outcome (replay).
    pub(crate) fn step_recorded(&self, id: u64) -> bool {
        self.steps
            .borrow()
            .get(id)
            .is_some_and(|slot| slot.recorded)
    }

    /// Frees step `id`'s slot once its future took the outcome or was dropped. A
    /// completion delivered to it later (a `select!` loser's) is dropped.
    pub(crate) fn release_step(&self, id: u64) {
        let released = self.steps.borrow_mut().release(id);
        // Its waker, dropped with no borrow held.
        drop(released);
    }

    /// The root task was polled and waits: gives back step-window memory a burst of
    /// concurrent steps grew, once no committed outcome waits in the inbox
    /// ([`StepSlots::compact`]).
    pub(crate) fn compact_steps(&self) {
        let pending = !self.inbox.borrow().is_empty();
        self.steps.borrow_mut().compact(pending);
    }

    /// The recorded name of step `id`, which is being created; ids come in increasing
    /// order, so the cursor only moves forward.
    fn take_recorded(&self, id: u64) -> Option<Rc<str>> {
        let mut replay = self.replay.borrow_mut();
        let replay = replay.as_deref_mut()?;
        let recorded_steps = &replay.recorded_steps;
        let mut cursor = replay.cursor;
        while recorded_steps.get(cursor).is_some_and(|(r, _)| *r < id) {
            cursor += 1;
        }
        replay.cursor = cursor;
        match recorded_steps.get(cursor) {
            Some((r, name)) if *r == id => Some(Rc::clone(name)),
            _ => None,
        }
    }

    /// While replaying, the first recorded step `(id, name)` whose id is `id` or later,
    /// left in place: `Ctx::patched` asks whether the journal went past a point.
    pub(crate) fn recorded_from(&self, id: u64) -> Option<(u64, Rc<str>)> {
        let replay = self.replay.borrow();
        let replay = replay.as_deref()?;
        let rest = replay.recorded_steps.get(replay.cursor..)?;
        rest.iter()
            .find(|(r, _)| *r >= id)
            .map(|(r, name)| (*r, Rc::clone(name)))
    }

    /// The shared copy of a step name.
    pub(crate) fn intern(&self, name: &str) -> Rc<str> {
        names::intern(name)
    }

    pub(crate) fn steps_created(&self) -> u64 {
        self.steps.borrow().created()
    }

    /// The name step `step_id` was created with (empty for an id never created or
    /// already released).
    pub(crate) fn step_name(&self, step_id: u64) -> Rc<str> {
        self.slot_name(step_id).unwrap_or_else(|| Rc::from(""))
    }

    /// The shared name of step `step_id`, while its slot is in use.
    pub(crate) fn slot_name(&self, step_id: u64) -> Option<Rc<str>> {
        self.steps
            .borrow()
            .get(step_id)
            .map(|slot| Rc::clone(&slot.name))
    }

    /// Hands a delivered outcome to step `step_id`'s slot and wakes its future. `Err`
    /// when the workflow never created that step (the code diverged from the journal),
    /// saying how many it did create. A step already released (its future dropped)
    /// takes nothing: the outcome is dropped.
    pub(crate) fn put_outcome(&self, step_id: u64, outcome: Outcome) -> Result<(), String> {
        let waker = {
            let mut steps = self.steps.borrow_mut();
            let created = steps.created();
            match steps.get_mut(step_id) {
                Some(slot) => {
                    slot.outcome = Some(outcome);
                    slot.waker.take()
                }
                None if step_id < created => None,
                None => {
                    return Err(format!(
                        "no step with this id was created (the workflow created {created} steps)"
                    ))
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The next committed completion to deliver. The inbox's buffer is freed when it
    /// empties: a recovered workflow's inbox held its whole journal.
    pub(crate) fn next_delivery(&self) -> Option<Delivery> {
        let mut inbox = self.inbox.borrow_mut();
        let next = inbox.pop_front();
        if inbox.is_empty() && inbox.capacity() > 0 {
            *inbox = VecDeque::new();
        }
        next
    }

    pub(crate) fn is_replaying(&self) -> bool {
        self.replay.borrow().is_some()
    }

    /// Parks a step that may not start its body until replay ends (woken at once if it
    /// has ended).
    pub(crate) fn defer_until_live(&self, waker: &Waker) {
        match self.replay.borrow_mut().as_deref_mut() {
            Some(replay) => replay.deferred.push(waker.clone()),
            None => waker.wake_by_ref(),
        }
    }

    /// Bookkeeping after a recorded completion was delivered: the last one ends replay
    /// and lets deferred step bodies start.
    pub(crate) fn recorded_delivered(&self) {
        let ended = {
            let mut replay = self.replay.borrow_mut();
            match replay.as_deref_mut() {
                Some(state) if state.left > 1 => {
                    state.left -= 1;
                    None
                }
                // Only replay checks recorded names: they go with it.
                _ => replay.take(),
            }
        };
        if let Some(ended) = ended {
            for waker in ended.deferred {
                waker.wake();
            }
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.phase.get() == Phase::Running
    }

    /// Keeps the root task's `handle` to abort it when the workflow fails.
    pub(crate) fn register_root_abort(&self, handle: AbortHandle) {
        let replaced = self.root_abort.borrow_mut().replace(handle);
        // A second root (none is launched twice today) is aborted like a spawned task.
        if let Some(previous) = replaced {
            self.register_abort(previous);
        }
    }

    /// Keeps a `ctx.spawn`ed task's `handle` to abort it when the workflow fails;
    /// returns the key that [`WorkflowState::unregister_abort`] takes once the task is
    /// over.
    pub(crate) fn register_abort(&self, handle: AbortHandle) -> usize {
        self.spawned
            .borrow_mut()
            .get_or_insert_with(Box::default)
            .insert(handle)
    }

    /// Forgets the abort handle of a `ctx.spawn`ed task that is over.
    pub(crate) fn unregister_abort(&self, key: usize) {
        if let Some(spawned) = self.spawned.borrow_mut().as_mut() {
            spawned.try_remove(key);
        }
    }

    /// Stops the workflow in this process with `error`: its tasks are aborted (their
    /// futures dropped, in-flight step bodies cancelled) and its handles see the error.
    /// The journal is not touched: the workflow stays `Pending` there.
    pub(crate) fn fail(&self, error: Error) {
        if self.phase.get() == Phase::Done || self.has_result() {
            return;
        }
        self.phase.set(Phase::Done);
        self.inbox.borrow_mut().clear();
        self.set_result(Err(error));
        self.abort_tasks();
    }

    /// Aborts the root task and every `ctx.spawn`ed task.
    pub(crate) fn abort_tasks(&self) {
        let root = self.root_abort.borrow_mut().take();
        let spawned = self.spawned.borrow_mut().take();
        if let Some(handle) = root {
            handle.abort();
        }
        for (_, handle) in spawned.into_iter().flat_map(|spawned| *spawned) {
            handle.abort();
        }
    }

    /// Records the final result and wakes every handle waiting for it.
    pub(crate) fn set_result(&self, result: Result<Outcome, Error>) {
        let waiters = {
            let mut ending = self.ending.borrow_mut();
            let ending = ending.get_or_insert_with(Box::default);
            ending.result = Some(result);
            std::mem::take(&mut ending.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    /// The final result if known, else registers `waker` to hear about it.
    pub(crate) fn poll_result(&self, waker: &Waker) -> Option<Result<Outcome, Error>> {
        let successor = self
            .ending
            .borrow()
            .as_ref()
            .and_then(|ending| ending.continued_as.clone());
        if let Some(next) = successor {
            return next.poll_result(waker);
        }
        let mut ending = self.ending.borrow_mut();
        let ending = ending.get_or_insert_with(Box::default);
        if let Some(result) = &ending.result {
            return Some(result.clone());
        }
        if !ending.waiters.iter().any(|w| w.will_wake(waker)) {
            ending.waiters.push(waker.clone());
        }
        None
    }

    /// Whether the final result is known.
    fn has_result(&self) -> bool {
        self.ending
            .borrow()
            .as_ref()
            .is_some_and(|ending| ending.result.is_some())
    }

    /// The next run, continued as new, goes on numbering steps from `first`: it has
    /// created none yet.
    pub(crate) fn start_steps_at(&self, first: u64) {
        self.first_step.set(first);
        *self.steps.borrow_mut() = StepSlots::starting_at(first);
    }

    /// Hands this run over to `next`, the same workflow continued as new: the run stops
    /// (its tasks are aborted) and its handles follow `next` for the result.
    pub(crate) fn continue_as(&self, next: Rc<WorkflowState>) {
        self.phase.set(Phase::Done);
        self.abort_tasks();
        // Handles keep this run alive to follow it: it keeps nothing else.
        let slots = std::mem::take(&mut *self.steps.borrow_mut());
        drop(slots);
        self.inbox.borrow_mut().clear();
        let waiters = {
            let mut ending = self.ending.borrow_mut();
            let ending = ending.get_or_insert_with(Box::default);
            ending.continued_as = Some(next);
            std::mem::take(&mut ending.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }

    /// The record of the workflow while it is pending, with `attempts`.
    pub(crate) fn pending_record(&self, attempts: u32, now_ms: u64) -> WorkflowRecord {
        WorkflowRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            input: self.input.to_vec(),
            status: Status::Pending,
            output: None,
            created_ms: self.created_ms,
            updated_ms: now_ms,
            recovery_attempts: attempts,
            app_version: self.app_version.clone(),
            deadline_ms: self.deadline_ms,
            first_step: self.first_step.get(),
            keyed_tokens: self.keyed_tokens,
        }
    }

    /// The error this workflow stopped with in this process, if any.
    pub(crate) fn failure(&self) -> Option<Error> {
        match self.ending.borrow().as_ref().map(|ending| &ending.result) {
            Some(Some(Err(err))) => Some(err.clone()),
            _ => None,
        }
    }

    /// The record to write when the workflow finishes with `output`.
    pub(crate) fn final_record(&self, output: Outcome, now_ms: u64) -> WorkflowRecord {
        WorkflowRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            input: self.input.to_vec(),
            status: if output.is_ok() {
                Status::Succeeded
            } else {
                Status::Failed
            },
            output: Some(output),
            created_ms: self.created_ms,
            updated_ms: now_ms,
            recovery_attempts: self.recovery_attempts.get(),
            app_version: self.app_version.clone(),
            deadline_ms: self.deadline_ms,
            first_step: self.first_step.get(),
            keyed_tokens: self.keyed_tokens,
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
