//! The queues' state on the runtime's thread, and dispatch inside the group commit.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::rc::{Rc, Weak};
use std::time::Duration;

use ordo_journal::{Batch, Status, Store, WorkflowRecord};

use ordo_journal::queue::Swap;

use super::records::{self, Debounced, Entry, DEBOUNCE, DEDUP, ENTRY, FIRED, WINDOW};
use super::schedule::Schedule;
use super::{millis, EnqueueOptions, OnDuplicate, QueueOptions};
use crate::core::{split_front, Core, PendingStart, MAX_COMMIT_COMPLETIONS};
use crate::error::Error;
use crate::talk::watch::WatchKey;
use crate::workflow::WorkflowState;

/// Where the queue puts a waiting workflow's running state when it starts it: the
/// handles given out by its enqueue follow it from there, as a started workflow's
/// handles do, instead of reading its record (twice) from the journal once it ended.
pub(crate) type Dispatched = Rc<OnceCell<Rc<WorkflowState>>>;

/// An enqueue ready to be written: the `Enqueued` (or `Delayed`) record and its entry.
pub(crate) struct Staged {
    pub(crate) record: WorkflowRecord,
    pub(crate) entry: Entry,
    /// Filled when the queue starts it.
    pub(crate) dispatched: Dispatched,
}

/// A slot handed straight to the next workflow of a lane ([`Queues::hand_over`]).
pub(crate) struct HandedOver {
    /// Its record, `Pending` now (its start is [`Batch::start_queued`]).
    pub(crate) record: WorkflowRecord,
    pub(crate) registration: crate::registry::Registration,
    /// Where its running state goes once launched.
    pub(crate) dispatched: Dispatched,
}

/// What an enqueue found.
pub(crate) enum Reserved {
    /// A new workflow, reserved (its id and deduplication id are taken); written by the
    /// next commit.
    New(Box<Staged>),
    /// A workflow already holds the id (with the same name).
    Existing(String),
    /// A workflow already holds the deduplication id.
    Duplicate {
        existing: String,
        on_duplicate: OnDuplicate,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reserved by an enqueue whose commit is to come.
    Reserved,
    /// In its lane, waiting for a slot.
    Waiting,
    /// Started (pending): holds a slot until its end.
    Running,
    /// Returned, its end not yet committed: its slot went straight to the next workflow
    /// of its lane ([`Queues::hand_over`]), so its end frees none.
    HandedOver,
}

/// A place in a lane: priority, enqueue order, workflow id. The id breaks ties between
/// the orders of different workers on a shared journal, which number their enqueues
/// apart.
type Place = (u32, u64, String);

struct Member {
    /// Its workflow's name, when the queue knows it (reserved or waiting; one adopted as
    /// running is named by its running state).
    name: Option<String>,
    lane: (String, String),
    /// Its place in the lane, while waiting.
    place: Place,
    dedup: Option<String>,
    state: State,
}

impl Member {
    /// Workflow `id` (named `name`, if known), in its queue under `entry`.
    fn new(id: &str, name: Option<&str>, entry: &Entry, state: State) -> Member {
        Member {
            name: name.map(str::to_owned),
            lane: (entry.queue.clone(), entry.partition.clone()),
            place: (entry.priority, entry.order, id.to_owned()),
            dedup: entry.dedup.clone(),
            state,
        }
    }
}

/// One queue, or one partition of a partitioned queue: what its limits count.
#[derive(Default)]
struct Lane {
    waiting: BTreeMap<Place, Staged>,
    /// Waiting entries whose delay had not passed when they were put in the lane.
    delayed: usize,
    running: usize,
    /// Start times (ms) of the last starts within the rate limit's period, oldest first.
    window: VecDeque<u64>,
    /// What the journal was last told this worker runs (a shared journal that keeps
    /// the limits of all workers, [`Store::admit`]).
    reported: Option<u64>,
}

/// Every queue of a runtime. Empty (and free) when the builder declared none.
#[derive(Default)]
pub(crate) struct Queues {
    options: BTreeMap<String, QueueOptions>,
    lanes: RefCell<BTreeMap<(String, String), Lane>>,
    members: RefCell<HashMap<String, Member>>,
    dedup: RefCell<HashMap<(String, String), String>>,
    /// Enqueues from outside workflows, for the next commit.
    ready: RefCell<Vec<Staged>>,
    next_order: Cell<u64>,
    /// Something changed (a slot freed, an entry added, a timer fired): the next commit
    /// runs a dispatch pass.
    dirty: Cell<bool>,
    /// The wall time (ms) the timer task is armed for, if any.
    armed: Cell<Option<u64>>,
    /// Declared schedules, by name (each runs as a task of its own).
    schedules: BTreeMap<String, Rc<Schedule>>,
    /// Debounced calls waiting for quiet, by record key.
    debounced: RefCell<BTreeMap<Vec<u8>, Debounced>>,
    /// Debounce keys whose pending call the next commit writes.
    debounce_writes: RefCell<Vec<Vec<u8>>>,
    /// Debounced calls fired (swapped out of their key) on a shared journal whose
    /// start the next commit writes, by fired record key.
    fired: RefCell<BTreeMap<Vec<u8>, Debounced>>,
    /// Other queue records for the next commit (a schedule's last tick).
    records: RefCell<Vec<(Vec<u8>, Vec<u8>)>>,
    /// `false` once the store said it keeps no limits across workers (one writer).
    shared_limits: Cell<bool>,
    /// The runtime is being dropped: no dispatch pass any more (see [`Queues::close`]).
    closing: Cell<bool>,
}

/// Whether `id` has the form of a debounce round's id: it ends in `@<ms>` (and maybe
/// `-<n>`). Other ids (most starts' and cancels') are not looked for among what may be
/// many rounds, nor, on a shared journal, in the journal's calls.
fn is_round_id(id: &str) -> bool {
    id.rsplit_once('@')
        .and_then(|(_, time)| time.split('-').next())
        .is_some_and(|ms| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()))
}

/// The workflow name a debounce record's key (`DEBOUNCE` or `FIRED`) names first.
fn round_workflow(key: &[u8]) -> String {
    records::parts(key)
        .ok()
        .and_then(|parts| parts.into_iter().next())
        .unwrap_or_default()
}

/// A debounced call taken back by [`Queues::cancel_debounced`].
pub(crate) struct TakenCall {
    /// The workflow it was to start.
    pub(crate) name: String,
    pub(crate) call: Debounced,
    /// Its record, for the cancellation's commit to delete (`None`: deleted already).
    pub(crate) delete: Option<Vec<u8>>,
}

impl Queues {
    /// Queues with these options, their state read back from `store`: waiting entries
    /// in their places, started ones counted against the limits, rate windows, and
    /// deduplication ids. Entries of workflows that ended without their entry being
    /// removed (cancelled by an older build, deleted) are removed now.
    pub(crate) fn load(
        options: BTreeMap<String, QueueOptions>,
        schedules: Vec<Schedule>,
        store: &dyn Store,
    ) -> Result<Queues, Error> {
        let queues = Queues {
            shared_limits: Cell::new(true),
            options,
            schedules: schedules
                .into_iter()
                .map(|s| (s.name.clone(), Rc::new(s)))
                .collect(),
            ..Queues::default()
        };
        queues.load_debounced(store)?;
        let mut stale = Batch::new();
        let mut next_order = 0;
        for (key, value) in store.queue_records(&[ENTRY])? {
            let id = records::parts(&key)?.concat();
            let entry: Entry = records::decode(&key, &value)?;
            next_order = next_order.max(entry.order + 1);
            let state = match store.workflow(&id)?.map(|r| (r.status, r)) {
                // Waiting in a queue this runtime does not declare: it would never
                // dispatch it (on a shared journal, a worker that declares it will).
                Some((Status::Enqueued | Status::Delayed, _))
                    if !queues.options.contains_key(&entry.queue) =>
                {
                    continue;
                }
                // On a journal shared by many workers, each dispatches its own queued
                // workflows: one that another live worker enqueued or runs is its
                // business (and counts against its limits, not these).
                Some((Status::Pending | Status::Enqueued | Status::Delayed, _))
                    if !store.claim(&id)? =>
                {
                    continue;
                }
                Some((Status::Pending, _)) => State::Running,
                Some((Status::Enqueued | Status::Delayed, record)) => {
                    queues.adopt_waiting(record, entry);
                    continue;
                }
                _ => {
                    stale.delete_queue_record(key);
                    if let Some(dedup) = &entry.dedup {
                        stale.delete_queue_record(records::key(DEDUP, &[&entry.queue, dedup]));
                    }
                    continue;
                }
            };
            debug_assert_eq!(state, State::Running);
            queues.adopt_running(id, entry);
        }
        for (key, value) in store.queue_records(&[WINDOW])? {
            let parts = records::parts(&key)?;
            let [queue, partition] = <[String; 2]>::try_from(parts).map_err(|_| {
                records::corrupt(&key, "window key is not queue and partition".into())
            })?;
            let window: Vec<u64> = records::decode(&key, &value)?;
            queues
                .lanes
                .borrow_mut()
                .entry((queue, partition))
                .or_default()
                .window = window.into();
        }
        queues.next_order.set(next_order);
        if !stale.is_empty() {
            store.commit(&stale)?;
        }
        queues
            .dirty
            .set(!queues.members.borrow().is_empty() || !queues.debounced.borrow().is_empty());
        Ok(queues)
    }

    /// Reads the debounced calls (and, on a shared journal, the fired ones whose start
    /// is not committed) from `store`: what the journal holds replaces what this worker
    /// knew of them.
    fn load_debounced(&self, store: &dyn Store) -> Result<(), Error> {
        for (key, value) in store.queue_records(&[DEBOUNCE])? {
            let pending: Debounced = records::decode(&key, &value)?;
            self.debounced.borrow_mut().insert(key, pending);
        }
        for (key, value) in store.queue_records(&[FIRED])? {
            let fired: Debounced = records::decode(&key, &value)?;
            self.fired.borrow_mut().insert(key, fired);
        }
        if !self.debounced.borrow().is_empty() || !self.fired.borrow().is_empty() {
            self.dirty.set(true);
        }
        Ok(())
    }

    /// The schedules, to start their tasks.
    pub(crate) fn schedules(&self) -> impl Iterator<Item = &Rc<Schedule>> {
        self.schedules.values()
    }

    /// Schedule `name`, if declared.
    pub(crate) fn schedule(&self, name: &str) -> Option<Rc<Schedule>> {
        self.schedules.get(name).cloned()
    }

    /// Puts a queue record in the next commit.
    pub(crate) fn put_record(&self, key: Vec<u8>, value: Vec<u8>) {
        self.records.borrow_mut().push((key, value));
    }

    /// The pending debounced call under record key `key`.
    pub(crate) fn debounced(&self, key: &[u8]) -> Option<Debounced> {
        self.debounced.borrow().get(key).cloned()
    }

    /// Takes back the debounced call that is to start workflow `id` (a round still
    /// pending, or one fired here whose start is not committed yet), so that it never
    /// starts it; `None` if no call here is to start `id`. On a shared journal the
    /// round's record is deleted by a swap, ordered with other workers' calls (a call
    /// that extended the round meanwhile is taken back too; one that fired it first
    /// wins, and `id` is then a workflow like any other).
    pub(crate) fn cancel_debounced(
        &self,
        store: &dyn Store,
        id: &str,
    ) -> Result<Option<TakenCall>, Error> {
        if !is_round_id(id) {
            return Ok(None);
        }
        // On a shared journal another worker may have taken the call since this one
        // last read the journal's calls: read again once before saying there is none.
        let mut read_again = store.takeover_interval().is_some();
        loop {
            let fired = {
                let mut fired = self.fired.borrow_mut();
                let key = fired
                    .iter()
                    .find(|(_, d)| d.id == id)
                    .map(|(k, _)| k.clone());
                key.and_then(|key| fired.remove(&key).map(|call| (key, call)))
            };
            if let Some((key, call)) = fired {
                return Ok(Some(TakenCall {
                    name: round_workflow(&key),
                    call,
                    delete: Some(key),
                }));
            }
            let found = self
                .debounced
                .borrow()
                .iter()
                .find(|(_, d)| d.id == id)
                .map(|(key, call)| (key.clone(), call.clone()));
            let Some((key, call)) = found else {
                if std::mem::take(&mut read_again) {
                    self.load_debounced(store)?;
                    continue;
                }
                return Ok(None);
            };
            let held = records::encode(&call);
            let delete = match store.swap_queue_record(&key, Some(&held), &[(key.clone(), None)])? {
                // One writer: the record (if a commit wrote it) goes with the cancellation.
                None => Some(key.clone()),
                Some(Swap::Done) => None,
                Some(Swap::Changed(now_held)) => {
                    let round = now_held
                        .map(|bytes| records::decode::<Debounced>(&key, &bytes))
                        .transpose()?;
                    self.remember_debounced(key, round);
                    continue;
                }
            };
            self.debounced.borrow_mut().remove(&key);
            self.dirty.set(true);
            return Ok(Some(TakenCall {
                name: round_workflow(&key),
                call,
                delete,
            }));
        }
    }

    /// Records a debounced call (written by the next commit; its firing time rearmed).
    pub(crate) fn debounce(&self, key: Vec<u8>, pending: Debounced) {
        self.debounced.borrow_mut().insert(key.clone(), pending);
        self.debounce_writes.borrow_mut().push(key);
        self.dirty.set(true);
    }

    /// Sets (or, `None`, forgets) what a shared journal holds for debounce key `key`,
    /// as a swap just wrote or found it; its firing time rearmed.
    pub(crate) fn remember_debounced(&self, key: Vec<u8>, pending: Option<Debounced>) {
        match pending {
            Some(pending) => self.debounced.borrow_mut().insert(key, pending),
            None => self.debounced.borrow_mut().remove(&key),
        };
        self.dirty.set(true);
    }

    /// Whether the builder declared queue `name`.
    pub(crate) fn options(&self, name: &str) -> Result<&QueueOptions, Error> {
        self.options.get(name).ok_or_else(|| Error::UnknownQueue {
            queue: name.to_string(),
        })
    }

    /// Whether workflow `id` is in a queue (waiting, running, or ended in a commit to
    /// come).
    pub(crate) fn is_member(&self, id: &str) -> bool {
        self.members.borrow().contains_key(id)
    }

    /// The name of workflow `id` if it waits here, not started yet: in a queue
    /// (reserved by an enqueue whose commit is to come, or waiting for a slot), or as a
    /// debounced call's round (pending, or fired and its start to come).
    pub(crate) fn waiting_name(&self, id: &str) -> Option<String> {
        let queued = self
            .members
            .borrow()
            .get(id)
            .filter(|m| matches!(m.state, State::Reserved | State::Waiting))
            .and_then(|m| m.name.clone());
        queued.or_else(|| self.round_name(id))
    }

    /// The workflow name of the debounced call's round that is to start `id` (pending,
    /// or fired and its start to come), if one here is.
    fn round_name(&self, id: &str) -> Option<String> {
        if !is_round_id(id) {
            return None;
        }
        let debounced = self.debounced.borrow();
        let fired = self.fired.borrow();
        debounced
            .iter()
            .chain(fired.iter())
            .find(|(_, call)| call.id == id)
            .map(|(key, _)| round_workflow(key))
    }

    /// Whether workflow `id` waits in a queue (reserved, enqueued or delayed).
    pub(crate) fn is_waiting(&self, id: &str) -> bool {
        self.members
            .borrow()
            .get(id)
            .is_some_and(|m| matches!(m.state, State::Reserved | State::Waiting))
            || self.debounced.borrow().values().any(|d| d.id == id)
    }

    /// Checks an enqueue against the queue's options, finds a workflow already holding
    /// its id or deduplication id, or reserves both for a new one (`record` is its
    /// `Pending`-less record: status and times are set here).
    pub(crate) fn reserve(
        &self,
        core: &Core,
        queue: &str,
        mut record: WorkflowRecord,
        options: &EnqueueOptions,
        now_ms: u64,
    ) -> Result<Reserved, Error> {
        crate::core::check_key(&record.id)?;
        for key in options
            .partition
            .iter()
            .chain(options.dedup.iter().map(|(id, _)| id))
        {
            crate::core::check_key(key)?;
        }
        let queue_options = self.options(queue)?;
        let refuse = |reason: &str| Error::QueueOption {
            queue: queue.to_string(),
            reason: reason.to_string(),
        };
        if options.priority != 0 && !queue_options.priority {
            return Err(refuse(
                "a priority was given, but the queue has no priorities",
            ));
        }
        let partition = match (&options.partition, queue_options.partitioned) {
            (Some(key), true) => key.clone(),
            (None, false) => String::new(),
            (None, true) => return Err(refuse("the queue is partitioned: give a partition key")),
            (Some(_), false) => {
                return Err(refuse(
                    "a partition key was given, but the queue has no partitions",
                ))
            }
        };
        let running = core
            .running
            .borrow()
            .get(&record.id)
            .map(|w| w.name.clone());
        let member = self
            .members
            .borrow()
            .get(&record.id)
            .map(|member| member.name.clone().unwrap_or_else(|| record.name.clone()));
        let existing = match running.or(member).or_else(|| self.round_name(&record.id)) {
            Some(name) => Some(name),
            None => core.store.workflow(&record.id)?.map(|r| r.name),
        };
        if let Some(name) = existing {
            if name != record.name {
                return Err(crate::core::conflict(&record.id, &name, &record.name));
            }
            return Ok(Reserved::Existing(record.id));
        }
        if let Some((dedup, on_duplicate)) = &options.dedup {
            let mut holder = self
                .dedup
                .borrow()
                .get(&(queue.to_string(), dedup.clone()))
                .cloned();
            if holder.is_none() {
                // On a journal shared by many workers: taken there too, at once, so
                // that another worker enqueueing under it in the same instant is
                // refused (a store with one writer takes nothing here).
                let key = records::key(DEDUP, &[queue, dedup]);
                holder = core.store.reserve_queue_holder(&key, &record.id)?;
            }
            if let Some(existing) = holder {
                return Ok(Reserved::Duplicate {
                    existing,
                    on_duplicate: *on_duplicate,
                });
            }
            self.dedup
                .borrow_mut()
                .insert((queue.to_string(), dedup.clone()), record.id.clone());
        }
        let order = self.next_order.get();
        self.next_order.set(order + 1);
        let not_before_ms = now_ms.saturating_add(millis(options.delay));
        record.status = if not_before_ms > now_ms {
            Status::Delayed
        } else {
            Status::Enqueued
        };
        record.created_ms = now_ms;
        record.updated_ms = now_ms;
        record.app_version.clone_from(&core.app_version);
        let entry = Entry {
            queue: queue.to_string(),
            partition,
            priority: options.priority,
            order,
            not_before_ms,
            dedup: options.dedup.as_ref().map(|(d, _)| d.clone()),
        };
        self.members.borrow_mut().insert(
            record.id.clone(),
            Member::new(&record.id, Some(&record.name), &entry, State::Reserved),
        );
        Ok(Reserved::New(Box::new(Staged {
            record,
            entry,
            dispatched: Dispatched::default(),
        })))
    }

    /// An enqueue from outside a workflow ([`Runtime::enqueue`](crate::Runtime::enqueue),
    /// a client's): reserves it and stages a new one for the next commit. Returns the id
    /// it is (or was) enqueued under, and, if it was staged now, where its running state
    /// will be once started (`None`: a workflow holds its id, or its deduplication id and
    /// `ReturnExisting` was asked).
    pub(crate) fn enqueue_outside(
        &self,
        core: &Core,
        queue: &str,
        record: WorkflowRecord,
        options: &EnqueueOptions,
        now_ms: u64,
    ) -> Result<(String, Option<Dispatched>), Error> {
        match self.reserve(core, queue, record, options, now_ms)? {
            Reserved::New(staged) => {
                let id = staged.record.id.clone();
                let dispatched = Rc::clone(&staged.dispatched);
                self.ready.borrow_mut().push(*staged);
                Ok((id, Some(dispatched)))
            }
            Reserved::Existing(id) => Ok((id, None)),
            Reserved::Duplicate {
                existing,
                on_duplicate: OnDuplicate::ReturnExisting,
            } => Ok((existing, None)),
            Reserved::Duplicate { existing, .. } => Err(super::duplicate(queue, options, existing)),
        }
    }

    /// Takes back an enqueue from outside a workflow whose commit is still to come (a
    /// cancel before it): it leaves the queue, its reservations given back.
    pub(crate) fn unstage(&self, store: &dyn Store, id: &str) -> Option<Staged> {
        let staged = {
            let mut ready = self.ready.borrow_mut();
            let index = ready.iter().position(|s| s.record.id == id)?;
            ready.remove(index)
        };
        self.release(store, &staged);
        Some(staged)
    }

    /// Gives back what `reserve` took for an enqueue that will never be committed (its
    /// workflow stopped before the step's commit).
    pub(crate) fn release(&self, store: &dyn Store, staged: &Staged) {
        let removed = self.members.borrow_mut().remove(&staged.record.id);
        if let (Some(_), Some(dedup)) = (removed, &staged.entry.dedup) {
            self.dedup
                .borrow_mut()
                .remove(&(staged.entry.queue.clone(), dedup.clone()));
            let key = records::key(DEDUP, &[&staged.entry.queue, dedup]);
            // Left in place if this fails: other workers see it taken until this one
            // is gone, and this one takes it again at will.
            if let Err(err) = store.release_queue_holder(&key, &staged.record.id) {
                tracing::warn!(error = %err, "could not give back a deduplication id");
            }
        }
    }

    /// The runtime is going away: commits from now on write what was staged (enqueues,
    /// debounce calls) but start no queued workflow, which would start on a runtime that
    /// will not run it; left enqueued, it starts on the next runtime, or at once on
    /// another worker of a shared journal.
    pub(crate) fn close(&self) {
        self.closing.set(true);
    }

    /// Whether the enqueue of `id` from outside waits for a commit to write it.
    pub(crate) fn is_staged(&self, id: &str) -> bool {
        self.ready
            .borrow()
            .iter()
            .any(|staged| staged.record.id == id)
    }

    /// The ids of the enqueues from outside still staged for a later commit.
    pub(crate) fn staged_ids(&self) -> HashSet<String> {
        (self.ready.borrow().iter())
            .map(|staged| staged.record.id.clone())
            .collect()
    }

    /// Whether the next commit has queue work: enqueues to write or a dispatch to run.
    pub(crate) fn needs_commit(&self) -> bool {
        self.dirty.get() || !self.ready.borrow().is_empty() || !self.records.borrow().is_empty()
    }

    /// Adds an enqueue's records to `batch` and puts it in its lane.
    pub(crate) fn write(&self, staged: Staged, batch: &mut Batch, now_ms: u64) {
        let id = staged.record.id.clone();
        batch.insert_workflow(staged.record.clone());
        batch.put_queue_record(records::key(ENTRY, &[&id]), records::encode(&staged.entry));
        if let Some(dedup) = &staged.entry.dedup {
            batch.put_queue_record(
                records::key(DEDUP, &[&staged.entry.queue, dedup]),
                id.as_bytes().to_vec(),
            );
        }
        self.admit(staged, now_ms);
    }

    fn admit(&self, staged: Staged, now_ms: u64) {
        let id = staged.record.id.clone();
        if let Some(member) = self.members.borrow_mut().get_mut(&id) {
            member.state = State::Waiting;
        }
        if let Some(dedup) = &staged.entry.dedup {
            self.dedup
                .borrow_mut()
                .insert((staged.entry.queue.clone(), dedup.clone()), id.clone());
        }
        let mut lanes = self.lanes.borrow_mut();
        let lane = lanes
            .entry((staged.entry.queue.clone(), staged.entry.partition.clone()))
            .or_default();
        if staged.entry.not_before_ms > now_ms || staged.record.status == Status::Delayed {
            lane.delayed += 1;
        }
        lane.waiting
            .insert((staged.entry.priority, staged.entry.order, id), staged);
        self.dirty.set(true);
    }

    /// Takes workflow `record`, waiting in the queue under `entry` (read back from the
    /// journal), into its lane.
    fn adopt_waiting(&self, record: WorkflowRecord, entry: Entry) {
        self.next_order
            .set(self.next_order.get().max(entry.order.saturating_add(1)));
        self.members.borrow_mut().insert(
            record.id.clone(),
            Member::new(&record.id, Some(&record.name), &entry, State::Reserved),
        );
        self.admit(
            Staged {
                record,
                entry,
                dispatched: Dispatched::default(),
            },
            0,
        );
    }

    /// Counts workflow `id`, started from the queue under `entry` and running here (after
    /// a restart, or taken over from a dead worker), against its lane's limits.
    fn adopt_running(&self, id: String, entry: Entry) {
        let member = Member::new(&id, None, &entry, State::Running);
        self.lanes
            .borrow_mut()
            .entry(member.lane.clone())
            .or_default()
            .running += 1;
        if let Some(dedup) = entry.dedup {
            self.dedup
                .borrow_mut()
                .insert((entry.queue, dedup), id.clone());
        }
        self.members.borrow_mut().insert(id, member);
        self.dirty.set(true);
    }

    /// After a takeover on a journal shared by many workers: the queued workflows
    /// `resumed` here (they ran on a dead worker) count against their lanes' limits,
    /// and the queued workflows waiting for a dead worker to dispatch them are this
    /// worker's to dispatch. Then a dispatch pass runs, also when nothing was taken
    /// over: slots a dead worker held may be free now.
    pub(crate) fn take_over(&self, store: &dyn Store, resumed: &[String]) -> Result<(), Error> {
        // Debounced calls are the journal's: rounds opened (or fired) by a worker that
        // is gone are fired by whoever learns of them.
        self.load_debounced(store)?;
        // A worker dispatches only the queues it declares: it leaves the others' queued
        // workflows to a worker that declares them.
        let unheld = if self.options.is_empty() {
            Vec::new()
        } else {
            store.unheld_queued()?
        };
        let unknown: Vec<&String> = {
            let members = self.members.borrow();
            resumed
                .iter()
                .filter(|id| !members.contains_key(*id))
                .collect()
        };
        if unknown.is_empty() && unheld.is_empty() {
            self.poke();
            return Ok(());
        }
        let mut entries = HashMap::new();
        for (key, value) in store.queue_records(&[ENTRY])? {
            let id = records::parts(&key)?.concat();
            entries.insert(id, (key, value));
        }
        let entry = |id: &str| -> Result<Option<Entry>, Error> {
            entries
                .get(id)
                .map(|(key, value)| records::decode(key, value))
                .transpose()
        };
        for id in unknown {
            if let Some(entry) = entry(id)? {
                self.adopt_running(id.clone(), entry);
            }
        }
        let mut mine = HashMap::new();
        for id in unheld {
            if self.members.borrow().contains_key(&id) {
                continue;
            }
            if let Some(entry) = entry(&id)?.filter(|e| self.options.contains_key(&e.queue)) {
                mine.insert(id, entry);
            }
        }
        let ids: Vec<String> = mine.keys().cloned().collect();
        for record in store.claim_queued(&ids)? {
            if let Some(entry) = mine.remove(&record.id) {
                self.adopt_waiting(record, entry);
            }
        }
        self.poke();
        Ok(())
    }

    /// The enqueue of `id` was refused by the journal (another worker had started or
    /// enqueued a workflow under that id first): it leaves this worker's lanes; the
    /// records the journal holds are the other worker's.
    pub(crate) fn refused(&self, id: &str) {
        let Some(member) = self.members.borrow_mut().remove(id) else {
            return;
        };
        if let Some(dedup) = &member.dedup {
            let key = (member.lane.0.clone(), dedup.clone());
            let mut holders = self.dedup.borrow_mut();
            if holders.get(&key).is_some_and(|holder| holder == id) {
                holders.remove(&key);
            }
        }
        if let Some(lane) = self.lanes.borrow_mut().get_mut(&member.lane) {
            if let Some(staged) = lane.waiting.remove(&member.place) {
                if staged.record.status == Status::Delayed {
                    lane.delayed = lane.delayed.saturating_sub(1);
                }
            }
        }
    }

    /// Runs a dispatch pass with the next commit (another worker freed slots, say).
    pub(crate) fn poke(&self) {
        if !self.members.borrow().is_empty() {
            self.dirty.set(true);
        }
    }

    /// Workflow `id` ended (or was cancelled) in the commit `batch` builds: it leaves its
    /// queue (entry and deduplication id removed in the same commit), and its slot is
    /// free for the dispatch that follows.
    /// Workflow `id`, running from its queue, was not resumed (it used up its recovery
    /// attempts: it crashed the process again and again): it no longer holds a slot, so
    /// one poisoned workflow does not stop its lane for good. Nothing is written: it
    /// stays pending, and [`Runtime::resume`](crate::Runtime::resume) runs it again
    /// (outside its queue's limits, as an operator's decision).
    pub(crate) fn set_aside(&self, id: &str) {
        let Some(member) = self.members.borrow_mut().remove(id) else {
            return;
        };
        if member.state == State::Running {
            if let Some(lane) = self.lanes.borrow_mut().get_mut(&member.lane) {
                lane.running = lane.running.saturating_sub(1);
            }
            self.dirty.set(true);
        }
    }

    pub(crate) fn leave(&self, id: &str, batch: &mut Batch) {
        if self.members.borrow().is_empty() {
            return;
        }
        let Some(member) = self.members.borrow_mut().remove(id) else {
            return;
        };
        batch.delete_queue_record(records::key(ENTRY, &[id]));
        if let Some(dedup) = &member.dedup {
            self.dedup
                .borrow_mut()
                .remove(&(member.lane.0.clone(), dedup.clone()));
            batch.delete_queue_record(records::key(DEDUP, &[&member.lane.0, dedup]));
        }
        let mut lanes = self.lanes.borrow_mut();
        if let Some(lane) = lanes.get_mut(&member.lane) {
            match member.state {
                State::Running => lane.running = lane.running.saturating_sub(1),
                // Its slot is the next one's already: nothing is freed.
                State::HandedOver => return,
                State::Waiting => {
                    if let Some(staged) = lane.waiting.remove(&member.place) {
                        if staged.record.status == Status::Delayed {
                            lane.delayed = lane.delayed.saturating_sub(1);
                        }
                    }
                }
                State::Reserved => {}
            }
        }
        self.dirty.set(true);
    }

    /// Workflow `id` returned (its end is staged for the next commit): if it holds a slot
    /// of a lane whose next waiting workflow may start now, that slot goes straight to
    /// that one, which is returned (its record `Pending` as of `now_ms`, and the status
    /// its journal record has) to be launched at once, its start record written by the
    /// next commit with the end that freed the slot.
    ///
    /// It may run before its start is durable because its `Enqueued` record and entry
    /// are: it runs in any case, and its start is in the same commit as the end, in one
    /// no later than its first completion (see `Core::queue_finished`). A crash before
    /// that commit leaves the ended workflow pending and this one enqueued, as if neither
    /// had happened. Only on lanes whose limits this worker keeps alone and where no rate
    /// limit applies (a rate window must be durable before a body runs); the slot passes
    /// only once the ended body has returned, so no more run at once than the limit.
    pub(crate) fn hand_over(&self, core: &Core, id: &str, now_ms: u64) -> Option<HandedOver> {
        // `shared_limits` is false once the store said it keeps no limits across workers.
        if self.shared_limits.get() || self.members.borrow().is_empty() {
            return None;
        }
        let mut members = self.members.borrow_mut();
        let member = members.get(id).filter(|m| m.state == State::Running)?;
        let options = self.options.get(&member.lane.0)?;
        if options.rate.is_some() {
            return None;
        }
        let mut lanes = self.lanes.borrow_mut();
        let lane = lanes.get_mut(&member.lane)?;
        // The slot passes on only if the lane is within its limits without the ended one.
        let others = lane.running.saturating_sub(1);
        if options.concurrency.is_some_and(|n| others >= n)
            || options.worker_concurrency.is_some_and(|n| others >= n)
        {
            return None;
        }
        // The first in order that may start now, as a dispatch pass would pick it.
        // (One with a deadline is left to the commit's dispatch pass: its deadline's timer
        // must find its start durable.)
        let (place, staged) = lane
            .waiting
            .iter()
            .filter(|(_, staged)| staged.entry.not_before_ms <= now_ms)
            .find(|(_, staged)| core.registry.get(&staged.record.name).is_some())
            .filter(|(_, staged)| staged.record.deadline_ms.is_none())?;
        let registration = core.registry.get(&staged.record.name)?.clone();
        // Usually the first waiting: taken without a second search.
        let first = lane.waiting.first_key_value().map(|(first, _)| first) == Some(place);
        let Staged {
            mut record,
            dispatched,
            ..
        } = if first {
            lane.waiting.pop_first()?.1
        } else {
            let place = place.clone();
            lane.waiting.remove(&place)?
        };
        if record.status == Status::Delayed {
            lane.delayed = lane.delayed.saturating_sub(1);
        }
        drop(lanes);
        record.status = Status::Pending;
        record.updated_ms = now_ms;
        if let Some(ended) = members.get_mut(id) {
            ended.state = State::HandedOver;
        }
        if let Some(next) = members.get_mut(&record.id) {
            next.state = State::Running;
        }
        Some(HandedOver {
            record,
            registration,
            dispatched,
        })
    }

    /// The queue part of a group commit: writes the enqueues from outside, then, if
    /// anything changed, starts what the limits allow (`Enqueued` to `Pending` in this
    /// same commit; `launch` gets them, to launch once it is durable), flips delayed
    /// entries whose time has come to `Enqueued`, and arms the timer for the next time
    /// a delay or a rate limit lets work through.
    pub(crate) fn stage(
        &self,
        core: &Rc<Core>,
        now_ms: u64,
        batch: &mut Batch,
        launch: &mut Vec<PendingStart>,
        wake: &mut Vec<WatchKey>,
    ) {
        // At most as many as a commit takes completions, for the same reason (sled's
        // garbage of one batch, see `MAX_COMMIT_COMPLETIONS`): ten thousand enqueues
        // made at once are ten thousand records and entries. The rest stay staged, in
        // order, for the next commit (`needs_commit` says so). They join their lane when
        // written: a dispatch in between sees them as one before their enqueue would,
        // and in a lane of one priority none passes one enqueued ahead of it.
        let ready = split_front(&mut self.ready.borrow_mut(), MAX_COMMIT_COMPLETIONS);
        for staged in ready {
            self.write(staged, batch, now_ms);
        }
        for (key, value) in self.records.borrow_mut().drain(..) {
            batch.put_queue_record(key, value);
        }
        if !self.dirty.replace(false) {
            return;
        }
        let mut next_wake: Option<u64> = None;
        let mut wake_at = |at: u64| next_wake = Some(next_wake.map_or(at, |n| n.min(at)));
        self.stage_debounced(core, now_ms, batch, launch, wake, &mut wake_at);
        if self.closing.get() {
            return;
        }
        let mut lanes = self.lanes.borrow_mut();
        for ((queue, partition), lane) in lanes.iter_mut() {
            let Some(options) = self.options.get(queue) else {
                continue;
            };
            if let Some((_, period)) = options.rate {
                let period = millis(period);
                while lane
                    .window
                    .front()
                    .is_some_and(|&t| t.saturating_add(period) <= now_ms)
                {
                    lane.window.pop_front();
                }
            }
            let mut picked = Vec::new();
            for (place, staged) in &lane.waiting {
                let started = lane.running + picked.len();
                if options.concurrency.is_some_and(|n| started >= n)
                    || options.worker_concurrency.is_some_and(|n| started >= n)
                {
                    break;
                }
                if let Some((limit, _)) = options.rate {
                    if lane.window.len() + picked.len() >= limit {
                        break;
                    }
                }
                if staged.entry.not_before_ms > now_ms {
                    wake_at(staged.entry.not_before_ms);
                    continue;
                }
                if core.registry.get(&staged.record.name).is_none() {
                    // Enqueued under a name this build does not register: it waits.
                    continue;
                }
                picked.push(place.clone());
            }
            self.admit_shared(
                core,
                queue,
                partition,
                options,
                lane,
                now_ms,
                &mut picked,
                &mut wake_at,
            );
            let started_any = !picked.is_empty();
            for place in picked {
                let Some(staged) = lane.waiting.remove(&place) else {
                    continue;
                };
                let Staged {
                    mut record,
                    dispatched,
                    ..
                } = staged;
                let previous = record.status;
                if previous == Status::Delayed {
                    lane.delayed = lane.delayed.saturating_sub(1);
                }
                let Some(registration) = core.registry.get(&record.name).cloned() else {
                    continue;
                };
                record.status = Status::Pending;
                record.updated_ms = now_ms;
                batch.start_queued(record.clone());
                if let Some(member) = self.members.borrow_mut().get_mut(&record.id) {
                    member.state = State::Running;
                }
                lane.running += 1;
                if options.rate.is_some() {
                    lane.window.push_back(now_ms);
                }
                wake.push(WatchKey::Workflow(record.id.clone()));
                let start = core.fresh_start(record, registration, false);
                // Set once: a staged entry is dispatched once.
                let _ = dispatched.set(Rc::clone(&start.wf));
                launch.push(start);
            }
            if let Some((limit, period)) = options.rate {
                while lane.window.len() > limit {
                    lane.window.pop_front();
                }
                if started_any {
                    batch.put_queue_record(
                        records::key(WINDOW, &[queue, partition]),
                        records::encode(&Vec::from(lane.window.clone())),
                    );
                }
                // Full while work waits: the next start may come when the oldest start
                // leaves the window.
                if lane.window.len() >= limit && !lane.waiting.is_empty() {
                    if let Some(&oldest) = lane.window.front() {
                        wake_at(oldest.saturating_add(millis(period)));
                    }
                }
            }
            // Delayed entries whose time has come, still waiting for a slot: `Enqueued`.
            if lane.delayed > 0 {
                for staged in lane.waiting.values_mut() {
                    if staged.record.status == Status::Delayed
                        && staged.entry.not_before_ms <= now_ms
                    {
                        staged.record.status = Status::Enqueued;
                        staged.record.updated_ms = now_ms;
                        batch.update_workflow(staged.record.clone(), Status::Delayed);
                        lane.delayed -= 1;
                    } else if staged.entry.not_before_ms > now_ms {
                        wake_at(staged.entry.not_before_ms);
                    }
                }
            }
        }
        drop(lanes);
        if let Some(at) = next_wake {
            self.arm(core, at);
        }
    }

    /// On a journal whose limits hold for every worker together ([`Store::admit`]):
    /// reports what this worker runs of the lane and keeps of `picked` only what the
    /// journal grants. Unchanged on a journal of one writer.
    #[allow(clippy::too_many_arguments)]
    fn admit_shared(
        &self,
        core: &Core,
        queue: &str,
        partition: &str,
        options: &QueueOptions,
        lane: &mut Lane,
        now_ms: u64,
        picked: &mut Vec<Place>,
        wake_at: &mut impl FnMut(u64),
    ) {
        if !self.shared_limits.get() || (options.concurrency.is_none() && options.rate.is_none()) {
            return;
        }
        let running = lane.running as u64;
        if picked.is_empty() && lane.reported == Some(running) {
            return;
        }
        let admission = ordo_journal::queue::Admission {
            lane: format!("{}:{queue}{partition}", queue.len()),
            concurrency: options.concurrency.map(|n| n as u64),
            rate: options
                .rate
                .map(|(limit, period)| (limit as u64, millis(period).max(1))),
            now_ms,
            running,
            want: picked.len() as u64,
        };
        match core.store.admit(&admission) {
            Ok(None) => self.shared_limits.set(false),
            Ok(Some(admitted)) => {
                lane.reported = Some(running + admitted.granted);
                picked.truncate(usize::try_from(admitted.granted).unwrap_or(usize::MAX));
                if let Some(at) = admitted.retry_at_ms {
                    wake_at(at);
                }
            }
            // The journal could not be reached (for longer than the store retries):
            // nothing starts; try again in a second.
            Err(_) => {
                lane.reported = None;
                picked.clear();
                wake_at(now_ms.saturating_add(1_000));
            }
        }
    }

    /// Writes the debounced calls made since the last commit, and starts those whose
    /// quiet period (or maximum wait) is over, removing their pending call in the same
    /// commit. On a shared journal a due call is first swapped out of its key for a
    /// fired record (unless a call of another worker changed it), and the commit that
    /// starts it deletes the fired record (see `debounce`).
    fn stage_debounced(
        &self,
        core: &Rc<Core>,
        now_ms: u64,
        batch: &mut Batch,
        launch: &mut Vec<PendingStart>,
        wake: &mut Vec<WatchKey>,
        wake_at: &mut impl FnMut(u64),
    ) {
        let mut debounced = self.debounced.borrow_mut();
        let fired = std::mem::take(&mut *self.fired.borrow_mut());
        if debounced.is_empty() && fired.is_empty() {
            return;
        }
        let written: std::collections::BTreeSet<Vec<u8>> =
            self.debounce_writes.borrow_mut().drain(..).collect();
        // Rounds of workflows this worker does not register are left to a worker that
        // does (on a shared journal): never fired, nor their fired records deleted, here.
        let registered = |key: &[u8]| core.registry.get(&round_workflow(key)).is_some();
        let due: Vec<Vec<u8>> = debounced
            .iter()
            .filter(|(key, d)| d.fires_at() <= now_ms && registered(key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &written {
            if let Some(pending) = debounced.get(key) {
                batch.put_queue_record(key.clone(), records::encode(pending));
            }
        }
        // (workflow name, fired record to delete, the call) of each start.
        let mut starts: Vec<(String, Option<Vec<u8>>, Debounced)> = Vec::new();
        for (fired_key, pending) in fired {
            if registered(&fired_key) {
                starts.push((round_workflow(&fired_key), Some(fired_key), pending));
            }
        }
        for key in due {
            let Some(pending) = debounced.remove(&key) else {
                continue;
            };
            let name = round_workflow(&key);
            let held = records::encode(&pending);
            let fired_key = records::key(FIRED, &[&name, &pending.id]);
            let writes = [(key.clone(), None), (fired_key.clone(), Some(held.clone()))];
            match core.store.swap_queue_record(&key, Some(&held), &writes) {
                // One writer: the pending call goes in the commit that starts it.
                Ok(None) => {
                    batch.delete_queue_record(key);
                    starts.push((name, None, pending));
                }
                Ok(Some(Swap::Done)) => starts.push((name, Some(fired_key), pending)),
                // Another worker's call changed it (or fired it): what it holds now.
                Ok(Some(Swap::Changed(now_held))) => {
                    if let Some(Ok(round)) =
                        now_held.map(|bytes| records::decode::<Debounced>(&key, &bytes))
                    {
                        debounced.insert(key, round);
                    }
                }
                // The journal could not be reached: try again in a second.
                Err(_) => {
                    debounced.insert(key, pending);
                    wake_at(now_ms.saturating_add(1_000));
                }
            }
        }
        // Not borrowed while ids are looked up (the rounds are among the holders).
        drop(debounced);
        for (name, fired_key, pending) in starts {
            let Some(registration) = core.registry.get(&name).cloned() else {
                continue;
            };
            // Its id taken by a workflow started otherwise (an explicit start of that id
            // on a worker that did not know of the round): that one is never written
            // over. Unknown (the journal unreadable): its fired record stays, for the
            // next worker to load it.
            match core.holder_name(&pending.id) {
                Ok(None) => {}
                Ok(Some(_)) => {
                    if let Some(fired_key) = fired_key {
                        batch.delete_queue_record(fired_key);
                    }
                    continue;
                }
                Err(_) => continue,
            }
            if let Some(fired_key) = fired_key {
                batch.delete_queue_record(fired_key);
            }
            let mut record = WorkflowRecord::new(&pending.id, &name, pending.input, now_ms);
            record.app_version.clone_from(&core.app_version);
            batch.insert_workflow(record.clone());
            wake.push(WatchKey::Workflow(record.id.clone()));
            launch.push(core.fresh_start(record, registration, true));
        }
        for (key, pending) in self.debounced.borrow().iter() {
            if registered(key) {
                wake_at(pending.fires_at());
            }
        }
    }

    /// Makes sure a timer wakes the queues at wall time `at_ms` (a task sleeping on the
    /// executor; an earlier one armed already covers it).
    fn arm(&self, core: &Rc<Core>, at_ms: u64) {
        if self.armed.get().is_some_and(|armed| armed <= at_ms) {
            return;
        }
        self.armed.set(Some(at_ms));
        let now = ordo_executor::now();
        let at = core.clock.instant_at(at_ms, now, Duration::MAX);
        let weak: Weak<Core> = Rc::downgrade(core);
        drop(ordo_executor::spawn(async move {
            ordo_executor::sleep_until(at).await;
            if let Some(core) = weak.upgrade() {
                let queues = &core.queues;
                if queues.armed.get() == Some(at_ms) {
                    queues.armed.set(None);
                }
                queues.dirty.set(true);
            }
        }));
    }
}
