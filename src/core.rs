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

use ordo_journal::{Batch, Completion, Message, Outcome, Status, Store, WorkflowRecord};

use crate::clock::WallClock;
use crate::codec;
use crate::error::Error;
use crate::event::Event;
use crate::fingerprint;
use crate::launch::{launch, SpawnRoot};
use crate::registry::{Registration, Registry};
use crate::talk::mailbox::Letter;
use crate::talk::watch::{WatchKey, Watchers};
use crate::workflow::{Delivery, Phase, Settling, WorkflowState};

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

impl PendingStart {
    /// The record, moved into the commit that writes it (a start is launched, not read,
    /// once committed): a start's record is not copied for its commit.
    fn take_record(&mut self) -> WorkflowRecord {
        std::mem::replace(
            &mut self.record,
            WorkflowRecord::new(String::new(), String::new(), Vec::new(), 0),
        )
    }
}

/// A queued workflow launched when the one whose slot it took returned
/// ([`Queues::hand_over`](crate::queue::Queues::hand_over)), before its start record is
/// durable: the record goes into the commit that records that end (which is never later
/// than the commit of its own first completion).
pub(crate) struct Handover {
    /// The workflow whose end freed the slot.
    freed_by: Rc<WorkflowState>,
    /// The one that took it, running already; its record is `Pending`.
    start: PendingStart,
}

/// What a completion writes besides itself, in the same commit: the durable side of a
/// `send`, `recv`, `set_event` or child launch. Committing both together is what makes
/// each of them exactly-once (see the `talk` module).
///
/// The large variants are boxed: every queued completion carries an `Effect`, most of
/// them `None`, and a burst of a hundred thousand completions waiting for their commits
/// would otherwise carry room for a whole workflow record each (about 380 bytes an
/// entry in the outbox instead of 152).
pub(crate) enum Effect {
    /// Nothing more (a plain step, a timer).
    None,
    /// A `recv` took these letters from its topic: the messages are consumed in the
    /// commit that records the `recv`'s completion, or handed back if that commit never
    /// takes it.
    Consume {
        topic: Rc<str>,
        letters: Vec<Letter>,
    },
    /// A `send`: the message goes into its destination's mailbox (its number is given at
    /// commit).
    Send(Box<Message>),
    /// A `set_event`.
    SetEvent { key: String, value: Vec<u8> },
    /// A child launch: the child's start record, launched once durable.
    StartChild(Box<PendingStart>),
    /// An enqueue (`Ctx::enqueue`): the `Enqueued` record and its queue entry.
    Enqueue(Box<crate::queue::Staged>),
}

impl Effect {
    /// The bytes of the values it writes besides its step's outcome (a message's
    /// payload, an event's value, a child's or an enqueued workflow's input), which
    /// count toward a commit's [`MAX_COMMIT_OUTCOME_BYTES`].
    fn bytes(&self) -> usize {
        match self {
            Effect::None | Effect::Consume { .. } => 0,
            Effect::Send(message) => message.payload.len(),
            Effect::SetEvent { value, .. } => value.len(),
            Effect::StartChild(start) => start.record.input.len(),
            Effect::Enqueue(staged) => staged.record.input.len(),
        }
    }
}

/// A write that comes from outside every workflow (a [`Client`](crate::Client)): made
/// durable by the next group commit like a completion.
pub(crate) enum Write {
    /// A message from a client (its number is given at commit).
    Send(Message),
    /// An awakeable resolution.
    Resolve {
        workflow_id: String,
        step_id: u64,
        outcome: Outcome,
    },
}

/// Called once the commit that holds a client's request is durable (`Ok`), or failed.
pub(crate) type Reply = Box<dyn FnOnce(Result<(), Error>)>;

/// What ran since the last commit and must be journaled before anyone sees it.
#[derive(Default)]
struct Outbox {
    /// Step completions without their `seq` yet, in the order they happened, with what
    /// each writes besides itself.
    completions: Vec<(Rc<WorkflowState>, Completion, Effect)>,
    /// Workflows that returned, with their encoded output.
    finished: Vec<(Rc<WorkflowState>, Outcome)>,
    /// Workflows started since the last commit: their records share it (issue: 10,000
    /// starts were 10,000 commits).
    starts: Vec<PendingStart>,
    /// Runs that continue as new: the old run, and the new one to launch once its record
    /// (new input, history reset) is durable.
    continued: Vec<(Rc<WorkflowState>, PendingStart)>,
    /// Queued workflows launched into slots that workflows in `finished` freed, in the
    /// order they were launched.
    handed: Vec<Handover>,
    /// Clients' messages and resolutions.
    writes: Vec<Write>,
    /// Clients waiting for the commit of what they asked.
    replies: Vec<Reply>,
    /// Clients waiting for the commit of a start in `starts` (of that workflow): answered
    /// with the commit that writes it, which is not the next one when more than
    /// [`MAX_COMMIT_STARTS`] starts wait.
    start_replies: Vec<(Rc<WorkflowState>, Reply)>,
    /// Clients waiting for the commit of an enqueue from outside (of that id), staged in
    /// the queues: answered with the commit that writes it, which is not the next one
    /// when more enqueues wait than a commit writes.
    enqueue_replies: Vec<(String, Reply)>,
}

/// What [`Core::start_workflow`] found or did.
pub(crate) enum Started {
    /// A new start or a resumption, committed by the next group commit.
    Staged(Rc<WorkflowState>),
    /// Already running here.
    Running(Rc<WorkflowState>),
    /// Finished (or cancelled) in the journal, driven by another worker, or waiting in
    /// a queue here: nothing to run now.
    Recorded,
}

/// One start's answer in [`Core::start_workflows`].
pub(crate) type StartAnswer = Result<Started, Error>;

impl Started {
    /// The workflow its handle follows here, if it runs here.
    pub(crate) fn running(self) -> Option<Rc<WorkflowState>> {
        match self {
            Started::Staged(wf) | Started::Running(wf) => Some(wf),
            Started::Recorded => None,
        }
    }
}

/// The longest id, topic or key a runtime takes in, in bytes (1 KiB), on every store:
/// a workflow id, a message's destination and topic, an idempotency key, an event key,
/// a queue's name, partition key or deduplication id, a debounce key, a schedule's
/// name, a registered workflow name.
///
/// PostgreSQL indexes these, alone or two together, and an index entry holds at most
/// 2,704 bytes: before this bound, a start under an id of 2,700 bytes failed the group
/// commit that carried it on PostgreSQL, which stopped the runtime and every workflow
/// in it (sled's own bound, [`journal::MAX_ID_LEN`](ordo_journal::MAX_ID_LEN), is 64
/// KiB). Two of 1 KiB together fit. Workflows a journal recorded under longer ids go
/// on running; a new id, and a message to such a workflow, are refused.
///
/// ```
/// # use ordo::{Ctx, Runtime};
/// # async fn noop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
/// let rt = Runtime::builder().temporary().register("noop", noop).build()?;
/// assert!(rt.start::<_, (), ()>("noop", &"x".repeat(ordo::MAX_KEY_LEN), ()).is_ok());
/// assert!(rt.start::<_, (), ()>("noop", &"y".repeat(ordo::MAX_KEY_LEN + 1), ()).is_err());
/// # Ok::<(), ordo::Error>(())
/// ```
pub const MAX_KEY_LEN: usize = 1024;

/// Refuses an id, topic or key longer than [`MAX_KEY_LEN`] bytes
/// ([`ordo_journal::Error::IdTooLong`]), or one with a NUL character
/// ([`ordo_journal::check_text`]), at the call that brings it in: the journal would
/// refuse the whole commit holding it, which stops the runtime and every workflow in
/// it.
pub(crate) fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY_LEN {
        return Err(ordo_journal::Error::IdTooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        }
        .into());
    }
    check_text(key)
}

/// Refuses a name or key with a NUL character ([`ordo_journal::check_text`]), on every
/// store: PostgreSQL's would refuse the whole commit holding it, which stops the runtime
/// and every workflow in it (and, as the workflow is recovered, every worker that
/// claims it).
pub(crate) fn check_text(text: &str) -> Result<(), Error> {
    ordo_journal::check_text(text).map_err(Error::from)
}

/// Sets `wf`'s recovery attempts back to 0 in `batch`, if it has any: it made progress,
/// or it was seen to wait only on ordo after its resumption (see `Settling`).
fn reset_attempts(wf: &WorkflowState, now_ms: u64, batch: &mut Batch) {
    if wf.recovery_attempts.get() > 0 {
        wf.recovery_attempts.set(0);
        wf.before_resume.borrow_mut().take();
        batch.update_workflow(wf.pending_record(0, now_ms), Status::Pending);
    }
}

/// The error of a start under an id another workflow holds.
pub(crate) fn conflict(id: &str, existing: &str, requested: &str) -> Error {
    Error::Conflict {
        workflow_id: id.to_string(),
        existing: existing.to_string(),
        requested: requested.to_string(),
    }
}

/// What a commit does once durable, gathered while it is built.
#[derive(Default)]
struct AfterCommit {
    /// Watched things the commit changed.
    wake: Vec<WatchKey>,
    /// Children whose start it records, to launch.
    children: Vec<PendingStart>,
    /// Children it cancels with their parent.
    cancelled: Vec<String>,
    /// Indices of the batch's messages that workflows sent.
    mail: Vec<usize>,
}

/// Most completions one group commit writes; the rest wait for the next stall, in
/// order. Enqueues from outside (see `Queues::stage`) are capped the same way; starts by
/// [`MAX_COMMIT_STARTS`]. sled applies a batch under one epoch guard, and every tree node an insert
/// replaces stays allocated until the batch ends: one batch of a hundred thousand
/// completions (a hundred thousand workflows started together) peaks at hundreds of
/// megabytes, which the allocator keeps as resident memory afterwards. Capped, the peak
/// is bounded however many workflows run, and a commit still serves hundreds of them
/// (see also [`MAX_COMMIT_WORKFLOWS`]).
///
/// The trade-off is the number of commits in a burst. `benches/memory.rs` measured
/// 10,000 workflows started together at 17.7 KiB of resident memory each with a cap of
/// 16,384 (one commit took the whole burst, and its garbage was still allocated when
/// they parked), 12.9 KiB at 4,096 and 7.5 KiB at 1,024; 100,000 at 6.5, 4.7 and
/// 4.4 KiB (before the journal freed sled's retired nodes after each commit, see
/// `ordo_journal`'s sled store). At 1,024 the burst's run time did not change
/// measurably. Smaller caps gave back little more memory (7.0 instead of 9.0 MiB for
/// 1,000 workflows at 256, nothing measurable at 10,000 and 100,000) and cost time: a
/// commit's fixed cost, a flush or an fsync, over fewer completions (100,000 with
/// `Sync` took 12.7 s at 256, 7.6 s at 1,024).
pub(crate) const MAX_COMMIT_COMPLETIONS: usize = 1024;

/// Most workflows whose completions one group commit writes, and most workflows whose
/// ends it writes (see [`Outbox::take_ends`]), unless the store has a bound of its own
/// ([`Store::max_commit_workflows`]: PostgreSQL takes 1,024). The sled journal writes a
/// workflow's completions in a commit as one entry, and the tree node each entry goes
/// into is copied whole and kept until the commit ends (see [`MAX_COMMIT_COMPLETIONS`]):
/// a commit's transient memory grows with the workflows it serves, not with their
/// completions (a thousand gathered steps of one workflow are one entry). That transient
/// is what a burst leaves resident. Measured with `benches/memory.rs`, 10,000 workflows
/// started together that run three steps each and park: 4,057 to 4,163 bytes of
/// resident memory each (six runs) with commits of up to 1,024 workflows, 3,689 and
/// 3,783 (two runs) with 512, the live heap the same. The cost is a commit's fixed cost
/// (a flush or an fsync) per 512 workflows instead of 1,024 in such a burst, and smaller
/// commits: in one sitting's `cargo bench --bench runtime -- starts/`, 10,000
/// workflows of 10 steps (`Sync`) ran 79,600 steps/s before and 78,700 after (noise on
/// this machine), and 10,000 starts until the last one ran went from 181,000 to
/// 225,000 per second (their commits also carry the first steps of the workflows
/// started before). A workflow's own concurrent steps are not held back by it.
pub(crate) const MAX_COMMIT_WORKFLOWS: usize = 512;

/// Most bytes of step outcomes (with the values they write: a `send`'s message, a
/// `set_event`'s value, a child's input) and workflow outputs one group commit writes,
/// beyond its first completion or end (which it always takes, whatever its size).
/// PostgreSQL refuses a message of 1 GiB or more, and a commit is one: before this
/// bound, a round of concurrent steps whose outcomes added up to more (three of 400 MB,
/// say), three sends of such messages, or workflows ending together with such outputs,
/// failed their commit, which stopped the runtime and every workflow in it, and again
/// on every worker that recovered them, while each value alone fit. A commit of 64 MiB
/// takes far longer to write than its fixed cost (a sync), so splitting there costs
/// nothing measurable, and it bounds what a commit holds in memory on either store.
pub(crate) const MAX_COMMIT_OUTCOME_BYTES: usize = 64 << 20;

/// How many of the oldest `completions` the next commit takes: at most
/// [`MAX_COMMIT_COMPLETIONS`], of at most `workflows` workflows (the store's bound, or
/// [`MAX_COMMIT_WORKFLOWS`]), with at most [`MAX_COMMIT_OUTCOME_BYTES`] of outcomes
/// beyond the first; and the bytes of the outcomes it takes.
fn commit_prefix(
    completions: &[(Rc<WorkflowState>, Completion, Effect)],
    workflows: usize,
) -> (usize, usize) {
    let most = completions.len().min(MAX_COMMIT_COMPLETIONS);
    // Fewer completions than the cap on workflows: no need to count the workflows.
    let mut seen: Option<HashSet<*const WorkflowState>> =
        (most > workflows).then(|| HashSet::with_capacity(workflows));
    let mut bytes = 0usize;
    for (taken, (wf, completion, effect)) in completions[..most].iter().enumerate() {
        let with = bytes
            .saturating_add(completion.outcome.bytes().len())
            .saturating_add(effect.bytes());
        if taken > 0 && with > MAX_COMMIT_OUTCOME_BYTES {
            return (taken, bytes);
        }
        if let Some(seen) = &mut seen {
            if seen.insert(Rc::as_ptr(wf)) && seen.len() > workflows {
                return (taken, bytes);
            }
        }
        bytes = with;
    }
    (most, bytes)
}

/// How many of the oldest `starts` the next commit takes: at most
/// [`MAX_COMMIT_STARTS`], with at most [`MAX_COMMIT_OUTCOME_BYTES`] of inputs beyond the
/// first (`start_many` of three inputs of 400 MB failed its commit on PostgreSQL).
fn start_prefix(starts: &[PendingStart]) -> usize {
    let mut bytes = 0usize;
    for (taken, start) in starts.iter().take(MAX_COMMIT_STARTS).enumerate() {
        bytes = bytes.saturating_add(start.record.input.len());
        if taken > 0 && bytes > MAX_COMMIT_OUTCOME_BYTES {
            return taken;
        }
    }
    starts.len().min(MAX_COMMIT_STARTS)
}

/// Most direct starts one group commit writes. More than completions: the sled journal
/// writes a commit's starts into start groups (journal schema 10), about fifty records
/// to one sled entry, so starts leave sled little of the per-insert garbage the cap on
/// completions bounds. The trade-off is between a burst's speed and the memory it leaves
/// behind: a burst's workflows run once their starts' commit is durable, and each commit
/// of starts also carries the first steps (a sled entry each) of the workflows the one
/// before launched; the more workflows in flight at once, the more of their transient
/// memory the allocator keeps. Measured on 10,000 workflows started together
/// (`benches/runtime.rs` next to about 315,000 gathered steps/s, `benches/memory.rs`,
/// one sitting): capped at 1,024, the last one ran after 111 ms (90,000 starts/s) and
/// parked workflows took 3,715 to 3,867 bytes of resident memory each; at 4,096, after
/// 53 ms (189,000/s) and 4,066 to 4,155 bytes; at 16,384 (one commit), after 32 ms
/// (309,000/s) and 4,118 to 4,367 bytes. Live heap was the same in all three (2.7 to
/// 2.8 KiB per workflow).
pub(crate) const MAX_COMMIT_STARTS: usize = 4_096;

/// The most commits [`Core::flush`] makes as the runtime is dropped: far more than
/// any outbox needs (a commit takes up to [`MAX_COMMIT_STARTS`] starts and 512
/// workflows' completions and ends).
const MAX_FLUSH_COMMITS: usize = 10_000;

/// The most completions, ends and handovers the outbox makes room for after a commit
/// (see [`Outbox::take_commit`]): a queue's concurrency, say; a burst beyond grows as
/// usual.
const RESERVED_ROOM: usize = 1024;

/// Where a run that continues as new after `old` numbers its steps from: on from
/// `old`'s. A workflow recorded before journal schema 9 (plain tokens) numbered every run
/// from 0, so its earlier runs may have used ids past `old`'s last (children, tokens):
/// its next run starts at [`LEGACY_RUNS_END`] at least, beyond any id a run took.
fn next_run_first_step(old: &WorkflowState) -> u64 {
    let created = old.steps_created();
    if old.keyed_tokens {
        created
    } else {
        created.max(LEGACY_RUNS_END)
    }
}

/// The first step id of a run continued from one recorded before schema 9 (see
/// [`next_run_first_step`]): 2^32, more steps than one run takes.
pub(crate) const LEGACY_RUNS_END: u64 = 1 << 32;

impl Outbox {
    /// Puts in `batch` copies of the queued completions of plain steps (steps that write
    /// nothing besides their outcome: [`Effect::None`]) of the workflows `of`, in
    /// order, each workflow's numbered on from its next seq; one pass over the queue,
    /// however many workflows. The outbox keeps the originals: the commit that cancels
    /// those workflows writes the copies (see [`Core::stage_finished_bodies`]), and the
    /// next commit drops the originals, their workflows stopped by then (see
    /// [`Core::admit_consumes`]). A cancellation whose commit fails has taken nothing
    /// from the outbox. (A panic's commit of its own takes the originals out once it is
    /// durable: [`Core::keep_finished_bodies`].)
    fn copy_plain_steps(&self, of: &[Rc<WorkflowState>], batch: &mut Batch) {
        if of.is_empty() || self.completions.is_empty() {
            return;
        }
        let mut next: HashMap<*const WorkflowState, u64> = of
            .iter()
            .map(|wf| (Rc::as_ptr(wf), wf.next_seq.get()))
            .collect();
        for (wf, completion, effect) in &self.completions {
            if !matches!(effect, Effect::None) {
                continue;
            }
            if let Some(seq) = next.get_mut(&Rc::as_ptr(wf)) {
                let mut completion = completion.clone();
                completion.seq = *seq;
                *seq += 1;
                batch.push_completion(&wf.id, completion);
            }
        }
    }

    /// What the next commit writes: the oldest completions, at most
    /// [`MAX_COMMIT_COMPLETIONS`] of at most `workflows` workflows, and the ends of at
    /// most `workflows` finished workflows that have no completion left behind (a final
    /// record is never written before a completion of its workflow queued ahead of it;
    /// see [`Outbox::take_ends`]), with at most [`MAX_COMMIT_OUTCOME_BYTES`] of their
    /// outcomes and outputs beyond the first completion and the first end.
    fn take_commit(&mut self, workflows: usize) -> Outbox {
        let (taken_completions, bytes) = commit_prefix(&self.completions, workflows);
        let taken_starts = start_prefix(&self.starts);
        if taken_completions == self.completions.len()
            && taken_starts == self.starts.len()
            && self.finished.len() <= workflows
            && (self.finished.iter())
                .map(|(_, output)| output.bytes().len())
                .try_fold(bytes, |sum, len| {
                    Some(sum.saturating_add(len)).filter(|&sum| sum <= MAX_COMMIT_OUTCOME_BYTES)
                })
                .is_some()
        {
            let taken = std::mem::take(self);
            // A busy queue ends and hands over about as many workflows per commit as
            // the last one: room for them now, rather than a chain of reallocations
            // from nothing every commit.
            self.finished
                .reserve(taken.finished.len().min(RESERVED_ROOM));
            self.handed.reserve(taken.handed.len().min(RESERVED_ROOM));
            self.completions
                .reserve(taken.completions.len().min(RESERVED_ROOM));
            return taken;
        }
        // Starts are capped the same way; a workflow's own completions can only follow
        // its start's commit, so no order is at stake between the two.
        let mut completions = split_front(&mut self.completions, taken_completions);
        let starts = split_front(&mut self.starts, taken_starts);
        // Only the clients of the starts this commit writes hear from it.
        let start_replies = if self.starts.is_empty() {
            std::mem::take(&mut self.start_replies)
        } else {
            let taken: HashSet<*const WorkflowState> =
                starts.iter().map(|start| Rc::as_ptr(&start.wf)).collect();
            let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.start_replies)
                .into_iter()
                .partition(|(wf, _)| taken.contains(&Rc::as_ptr(wf)));
            self.start_replies = later;
            now
        };
        let continued = if self.completions.is_empty() {
            std::mem::take(&mut self.continued)
        } else {
            Vec::new()
        };
        let (finished, handed) = self.take_ends(&mut completions, workflows, bytes);
        Outbox {
            completions,
            finished,
            starts,
            continued,
            handed,
            writes: std::mem::take(&mut self.writes),
            replies: std::mem::take(&mut self.replies),
            start_replies,
            enqueue_replies: std::mem::take(&mut self.enqueue_replies),
        }
    }

    /// The ends and handovers the next commit takes when it cannot take everything (see
    /// [`Outbox::take_commit`]); `completions` are those it takes.
    ///
    /// An end is held back while its workflow has completions left behind, beyond the
    /// first `workflows` ends, and, after the first end, beyond
    /// [`MAX_COMMIT_OUTCOME_BYTES`] of outputs and of the `bytes` of outcomes the
    /// commit takes: a burst of workflows finishing together
    /// (thousands of timers firing at once, each workflow's last step) would otherwise
    /// end them all in the one commit after the burst's last completion, a batch as
    /// large as the burst (each end is a journal entry; see [`MAX_COMMIT_WORKFLOWS`]).
    /// A handover stays in one commit with the end that freed its slot, so it is held
    /// back with that end; and its workflow, running already, may be recorded only
    /// once its start is: its end, and its completions (there are none in practice:
    /// they came after those held back), are held back with the handover.
    fn take_ends(
        &mut self,
        completions: &mut Vec<(Rc<WorkflowState>, Completion, Effect)>,
        workflows: usize,
        bytes: usize,
    ) -> (Vec<(Rc<WorkflowState>, Outcome)>, Vec<Handover>) {
        if self.finished.is_empty() && self.handed.is_empty() {
            return (Vec::new(), Vec::new());
        }
        // Workflows whose end waits: completions left behind, then ends over the cap.
        let mut held: HashSet<*const WorkflowState> = self
            .completions
            .iter()
            .map(|(wf, _, _)| Rc::as_ptr(wf))
            .collect();
        // Workflows whose start (a handover) waits; a handover's workflow frees slots
        // only for handovers after its own, so one pass in order finds them all.
        let mut later: HashSet<*const WorkflowState> = HashSet::new();
        // Twice at most: the ends held back over the cap hold back their handovers,
        // which may hold back ends that were counted; the ends left are fewer.
        loop {
            later.clear();
            for handover in &self.handed {
                let freer = Rc::as_ptr(&handover.freed_by);
                if held.contains(&freer) || later.contains(&freer) {
                    later.insert(Rc::as_ptr(&handover.start.wf));
                }
            }
            let mut room = workflows;
            let mut capped = false;
            // Outputs share the commit's bytes with its completions, beyond its first end,
            // which goes whatever its size (so that steps committed without end cannot
            // hold back a large output for ever).
            let mut sum = bytes;
            for (wf, output) in &self.finished {
                let wf = Rc::as_ptr(wf);
                if held.contains(&wf) || later.contains(&wf) {
                    continue;
                }
                let with = sum.saturating_add(output.bytes().len());
                if room > 0 && (room == workflows || with <= MAX_COMMIT_OUTCOME_BYTES) {
                    room -= 1;
                    sum = with;
                } else {
                    held.insert(wf);
                    capped = true;
                }
            }
            if !capped {
                break;
            }
        }
        let waits = |wf: &Rc<WorkflowState>| {
            let wf = Rc::as_ptr(wf);
            held.contains(&wf) || later.contains(&wf)
        };
        let (kept, finished): (Vec<_>, Vec<_>) = std::mem::take(&mut self.finished)
            .into_iter()
            .partition(|(wf, _)| waits(wf));
        self.finished = kept;
        let (kept, handed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.handed)
            .into_iter()
            .partition(|handover| waits(&handover.freed_by));
        self.handed = kept;
        if !later.is_empty()
            && completions
                .iter()
                .any(|(wf, _, _)| later.contains(&Rc::as_ptr(wf)))
        {
            let (held, now): (Vec<_>, Vec<_>) = std::mem::take(completions)
                .into_iter()
                .partition(|(wf, _, _)| later.contains(&Rc::as_ptr(wf)));
            *completions = now;
            self.completions.splice(0..0, held);
        }
        (finished, handed)
    }
}

/// Takes the first `n` items of `items` (all, if there are fewer). The rest stays in
/// `items`' buffer (moved to its front): a burst of a hundred thousand completions
/// taken 1,024 at a time must not copy the rest into a new buffer at every commit.
pub(crate) fn split_front<T>(items: &mut Vec<T>, n: usize) -> Vec<T> {
    if items.len() <= n {
        return std::mem::take(items);
    }
    let front = items.drain(..n).collect();
    // The buffer is taken whole only once at most `n` are left: until then (a burst of
    // 100,000 starts draining, or a stream that keeps it above `n`) it shrinks with
    // what it holds rather than staying at its peak.
    if items.capacity() > 2 * n && items.len() * 4 < items.capacity() {
        items.shrink_to(items.len() * 2);
    }
    front
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

/// The workflows running in this process, found by id. A set of the workflows keyed by
/// their own `id`, not a map from a copy of the id: a service with a million parked
/// workflows would keep a million second copies (an allocation each) and entries three
/// times the size.
#[derive(Default)]
pub(crate) struct Running(HashSet<ById>);

/// A running workflow as a set member: hashed and compared by its id.
struct ById(Rc<WorkflowState>);

impl std::borrow::Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.0.id
    }
}

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, which `Borrow<str>` requires.
        self.0.id.as_str().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl Running {
    /// The workflow running under `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&Rc<WorkflowState>> {
        self.0.get(id).map(|member| &member.0)
    }

    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.0.contains(id)
    }

    /// Adds `wf`, replacing a workflow running under the same id.
    pub(crate) fn insert(&mut self, wf: Rc<WorkflowState>) {
        self.0.replace(ById(wf));
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Rc<WorkflowState>> {
        self.0.take(id).map(|member| member.0)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Rc<WorkflowState>> {
        self.0.iter().map(|member| &member.0)
    }

    /// Empties the set, handing back every workflow.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Rc<WorkflowState>> + '_ {
        self.0.drain().map(|member| member.0)
    }
}

pub(crate) struct Core {
    pub(crate) store: Box<dyn Store>,
    pub(crate) registry: Registry,
    pub(crate) clock: WallClock,
    /// Workflows running in this process, by id.
    pub(crate) running: RefCell<Running>,
    outbox: RefCell<Outbox>,
    /// Workflows with a non-empty inbox, each at most once.
    delivering: RefCell<VecDeque<Rc<WorkflowState>>>,
    /// Workflows admitted with recorded completions whose root task has not run yet:
    /// they join `delivering` at the end of the next delivery round, so the executor
    /// runs their roots (which create the steps) before a recorded outcome is delivered.
    /// A resumption launched by a commit (a start of a workflow left pending by another
    /// process) was otherwise handed its first outcome in the round right after that
    /// commit, before it had created the step: a false `NonDeterminism`.
    admitted: RefCell<Vec<Rc<WorkflowState>>>,
    /// Resumed workflows whose recovery attempt is not settled yet (see `Settling`).
    unsettled: RefCell<Vec<Rc<WorkflowState>>>,
    /// Step bodies of resumed workflows waiting for the commit that settles them.
    settle_wakers: RefCell<Vec<std::task::Waker>>,
    /// Reused between delivery rounds, so a round allocates nothing.
    round: RefCell<Vec<Rc<WorkflowState>>>,
    observer: Option<Observer>,
    /// The first panic of the observer during the current stall, re-raised at its end.
    observer_panic: RefCell<Option<Box<dyn std::any::Any + Send>>>,
    metrics: Cell<Metrics>,
    /// Stop committing after this many commits, as if the process died there
    /// (tests and the replay fuzzer simulate crashes with it).
    halt_after_commits: Option<u64>,
    /// Halt at the commit that would record the end of the first workflow started (or
    /// resumed) here, committing only its completions: leaves a journal holding every
    /// step of it but not its end. The first one, not the last one running: a workflow
    /// may end before the workflows it enqueued (its children end before it anyway).
    pub(crate) halt_before_finish: bool,
    /// The id of that first workflow.
    halt_subject: RefCell<Option<String>>,
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
    /// The code version recorded with every workflow this runtime starts
    /// (`RuntimeBuilder::app_version`).
    pub(crate) app_version: Option<String>,
    /// The number the next message gets: one past the highest the journal holds.
    pub(crate) next_message: Cell<u64>,
    /// The end of the block of message numbers reserved for this process (0 before the
    /// first message: see `Core::message_number`).
    message_limit: Cell<u64>,
    /// Step bodies waiting for an event, an awakeable's resolution or a workflow's end.
    pub(crate) watchers: Watchers,
    /// The channel clients talk through, while any client is alive (see `talk::client`).
    pub(crate) client: RefCell<std::sync::Weak<crate::talk::client::Shared>>,
    /// The queues, schedules and debouncers (see `queue`); empty when none is declared.
    pub(crate) queues: crate::queue::Queues,
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
            running: RefCell::new(Running::default()),
            outbox: RefCell::new(Outbox::default()),
            delivering: RefCell::new(VecDeque::new()),
            admitted: RefCell::new(Vec::new()),
            unsettled: RefCell::new(Vec::new()),
            settle_wakers: RefCell::new(Vec::new()),
            round: RefCell::new(Vec::new()),
            observer,
            observer_panic: RefCell::new(None),
            metrics: Cell::new(Metrics::default()),
            halt_after_commits,
            halt_before_finish: false,
            halt_subject: RefCell::new(None),
            halted: Cell::new(false),
            progress_commits: Cell::new(0),
            types_named: RefCell::new(HashSet::new()),
            broken: RefCell::new(None),
            max_recovery_attempts,
            before_step_body: None,
            app_version: None,
            next_message: Cell::new(1),
            message_limit: Cell::new(0),
            watchers: Watchers::default(),
            client: RefCell::new(std::sync::Weak::new()),
            queues: crate::queue::Queues::default(),
        }
    }

    pub(crate) fn metrics(&self) -> Metrics {
        self.metrics.get()
    }

    fn update_metrics(&self, f: impl FnOnce(&mut Metrics)) {
        let before = self.metrics.get();
        let mut m = before;
        f(&mut m);
        self.metrics.set(m);
        crate::telemetry::metrics_changed(&before, &m);
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
        self.clock.now_ms_here()
    }

    pub(crate) fn now_ms_at(&self, now: Instant) -> u64 {
        self.clock.now_ms(now)
    }

    /// Registers a workflow as running here. Its recorded completions (if any) are
    /// already in its inbox, ready to be delivered at the next stall.
    pub(crate) fn admit(&self, wf: &Rc<WorkflowState>) {
        self.running.borrow_mut().insert(Rc::clone(wf));
        if !wf.inbox.borrow().is_empty() {
            self.admitted.borrow_mut().push(Rc::clone(wf));
        }
        // Resumed here with a recovery attempt counted (see `Settling`).
        if wf.recovery_attempts.get() > 0 && wf.before_resume.borrow().is_some() {
            wf.settling.set(Settling::Unsettled);
            self.unsettled.borrow_mut().push(Rc::clone(wf));
        }
    }

    /// A step body of a resumed workflow not settled yet waits for the commit that
    /// settles it (see `Settling`).
    pub(crate) fn wait_for_settling(&self, waker: &std::task::Waker) {
        self.settle_wakers.borrow_mut().push(waker.clone());
    }

    /// Settles the resumed workflows whose replay is over (see `Settling`): returns those
    /// that wait only on ordo, whose attempt the coming commit gives back.
    fn settle(&self) -> Vec<Rc<WorkflowState>> {
        let mut unsettled = self.unsettled.borrow_mut();
        if unsettled.is_empty() {
            return Vec::new();
        }
        let mut give_back = Vec::new();
        unsettled.retain(|wf| {
            if wf.is_running() && wf.is_replaying() {
                return true;
            }
            if wf.is_running()
                && wf.settling.get() == Settling::Unsettled
                && wf.recovery_attempts.get() > 0
            {
                give_back.push(Rc::clone(wf));
            }
            wf.settling.set(Settling::Settled);
            false
        });
        give_back
    }

    /// Lets the step bodies that waited for their workflows to settle start.
    fn wake_settled(&self) {
        let wakers = std::mem::take(&mut *self.settle_wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
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
        // What the journal keeps of a failed workflow depends on why it stopped.
        match wf.failure() {
            Some(Error::Panicked { .. } | Error::Encode { .. }) => self.keep_finished_bodies(wf),
            Some(Error::NonDeterminism { .. } | Error::TypeMismatch { .. }) => {
                self.undo_resume_after_divergence(wf);
            }
            _ => {}
        }
    }

    /// A workflow stopped by a bug in its own code (a panic in it or in a step body, an
    /// outcome that cannot be encoded) stays `Pending` for a fixed binary to resume; the
    /// outcomes of its plain steps whose bodies had returned, queued for the next group
    /// commit, are written now, in a commit of their own, as a cancellation writes them
    /// (see [`Core::stage_finished_bodies`]): those bodies ran (a payment was taken,
    /// say), so the resumed run replays what they returned rather than running them
    /// again. A commit of its own, not the next group commit: the workflow is forgotten
    /// here, so a `recover()` or `resume` before that commit would read the journal
    /// without them and number its steps' outcomes over theirs. Once it is durable the
    /// originals leave the outbox, so they are never written twice. [`Core::forget`]
    /// calls it for these stops only: a divergence from the journal leaves it as it was
    /// for a corrected binary, and a cancellation wrote them with its own record; a
    /// runtime halted or whose commits failed has no say in the journal any more.
    fn keep_finished_bodies(&self, wf: &Rc<WorkflowState>) {
        if self.halted.get() || self.broken.borrow().is_some() {
            return;
        }
        let mut batch = Batch::new();
        (self.outbox.borrow()).copy_plain_steps(std::slice::from_ref(wf), &mut batch);
        if batch.is_empty() {
            return;
        }
        match self.store.commit(&batch) {
            Ok(()) => (self.outbox.borrow_mut().completions)
                .retain(|(of, _, effect)| !(Rc::ptr_eq(of, wf) && matches!(effect, Effect::None))),
            Err(err) => self.break_down(err.into()),
        }
    }

    /// A resumption that stopped because the code diverged from the journal (not because
    /// the workflow crashed) gives back the recovery attempt it counted: the record is
    /// written back as it was, so a corrected binary finds the workflow untouched.
    fn undo_resume_after_divergence(&self, wf: &WorkflowState) {
        let Some(before) = wf.before_resume.borrow_mut().take() else {
            return;
        };
        if self.halted.get() || self.broken.borrow().is_some() {
            return;
        }
        let attempts = before.recovery_attempts;
        let mut batch = Batch::new();
        batch.update_workflow(*before, Status::Pending);
        match self.store.commit(&batch) {
            Ok(()) => wf.recovery_attempts.set(attempts),
            Err(err) => self.break_down(err.into()),
        }
    }

    /// On a graceful shutdown (the runtime dropped, not a crash), before
    /// [`Core::shut_down`]: commits what waits for the next group commit, as the next
    /// stall would have (starts and enqueues acknowledged to their callers, the outcomes
    /// of step bodies that returned, the final records of workflows that returned,
    /// clients' messages), so a process that ends normally leaves none of it to be lost
    /// or run again. Nothing runs: what these commits launch or deliver waits for an
    /// executor that will not be driven again, and the next process resumes it from the
    /// journal. No queued workflow is dispatched ([`Queues::close`]). Runs in the
    /// executor's context ([`ordo_executor::Executor::enter`]): a commit launches the
    /// workflows it starts.
    ///
    /// [`Queues::close`]: crate::queue::dispatch::Queues::close
    pub(crate) fn flush(self: &Rc<Self>) {
        self.queues.close();
        // Each commit takes at most its bound of starts and workflows; what a burst
        // left is a few more. The cap only guards against a commit that never runs dry.
        for _ in 0..MAX_FLUSH_COMMITS {
            if !self.commit() {
                return;
            }
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
                batch.update_workflow(*before, Status::Pending);
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

    /// The journal's record of workflow `id`, or [`Error::NotFound`].
    pub(crate) fn record(&self, id: &str) -> Result<WorkflowRecord, Error> {
        self.store.workflow(id)?.ok_or_else(|| Error::NotFound {
            workflow_id: id.to_string(),
        })
    }

    /// Whether a queued client write matches `matches`.
    pub(crate) fn outbox_has(&self, matches: impl Fn(&Write) -> bool) -> bool {
        self.outbox.borrow().writes.iter().any(matches)
    }

    /// Starts workflow `name` under `id` with `input` (encoded, its type checked by the
    /// caller), or finds the one recorded or running under `id`: a pending one that is
    /// not running here is resumed (unless another live worker of a shared journal drives
    /// it: it is left to that one), a finished one is left as it is, one of another name
    /// is a [`Error::Conflict`]. `options` apply to a new workflow only.
    /// [`Runtime::start`](crate::Runtime::start) and clients' starts both go through here.
    pub(crate) fn start_workflow(
        &self,
        name: &str,
        id: &str,
        registration: Registration,
        input: Vec<u8>,
        now_ms: u64,
        options: crate::deadline::StartOptions,
    ) -> Result<Started, Error> {
        check_key(id)?;
        self.note_halt_subject(id);
        if let Some(started) = self.started_here(name, id) {
            return started;
        }
        let recorded = self.store.workflow(id)?;
        self.start_recorded(name, id, registration, input, now_ms, options, recorded)
    }

    /// [`Core::start_workflow`] of many workflows of one registration, with one read of
    /// the journal for all of them ([`Store::workflows_by_id`]: one round trip on
    /// PostgreSQL, where each start alone costs one). Each start's id and answer, in
    /// order; `Err` only if that read fails. An id given twice is the same workflow: the
    /// second finds the first running.
    pub(crate) fn start_workflows(
        &self,
        name: &str,
        registration: &Registration,
        starts: Vec<(String, Vec<u8>)>,
        now_ms: u64,
    ) -> Result<Vec<(String, StartAnswer)>, Error> {
        // What is answered without the journal (running or queued here) stays so until
        // the loop below, which only adds starts to `running`.
        let here: Vec<Option<Result<Started, Error>>> = (starts.iter())
            .map(|(id, _)| {
                check_key(id)
                    .ok()
                    .and_then(|()| self.started_here(name, id))
            })
            .collect();
        let to_read: Vec<&str> = (starts.iter().zip(&here))
            .filter(|((id, _), here)| here.is_none() && check_key(id).is_ok())
            .map(|((id, _), _)| id.as_str())
            .collect();
        // One answer per id read, in order.
        let mut recorded = self.store.workflows_by_id(&to_read)?.into_iter();
        Ok(starts
            .into_iter()
            .zip(here)
            .map(|((id, input), here)| {
                let started = (|| {
                    check_key(&id)?;
                    self.note_halt_subject(&id);
                    if let Some(here) = here {
                        return here;
                    }
                    let record = recorded.next().flatten();
                    // Started earlier in this call.
                    if let Some(started) = self.started_here(name, &id) {
                        return started;
                    }
                    let options = crate::deadline::StartOptions::default();
                    self.start_recorded(
                        name,
                        &id,
                        registration.clone(),
                        input,
                        now_ms,
                        options,
                        record,
                    )
                })();
                (id, started)
            })
            .collect())
    }

    /// A start of `id` answered without the journal: it runs here, or waits in a queue
    /// here.
    fn started_here(&self, name: &str, id: &str) -> Option<Result<Started, Error>> {
        let running = self.running.borrow().get(id).cloned();
        if let Some(wf) = running {
            return Some(if wf.name == name {
                Ok(Started::Running(wf))
            } else {
                Err(conflict(id, &wf.name, name))
            });
        }
        // Enqueued here and not started yet, its enqueue perhaps not even committed (so
        // the journal does not know it): this start is that workflow, which starts when
        // its queue lets it. Started here as well, it would run twice.
        let queued = self.queues.waiting_name(id)?;
        Some(if queued == name {
            Ok(Started::Recorded)
        } else {
            Err(conflict(id, &queued, name))
        })
    }

    /// The rest of [`Core::start_workflow`], given what the journal holds for `id`.
    #[allow(clippy::too_many_arguments)]
    fn start_recorded(
        &self,
        name: &str,
        id: &str,
        registration: Registration,
        input: Vec<u8>,
        now_ms: u64,
        options: crate::deadline::StartOptions,
        recorded: Option<WorkflowRecord>,
    ) -> Result<Started, Error> {
        let (wf, record, is_new) = match recorded {
            Some(record) if record.name != name => return Err(conflict(id, &record.name, name)),
            Some(record) if record.status != Status::Pending => return Ok(Started::Recorded),
            Some(record) => {
                // On a journal shared by many workers, another may drive it: its
                // handle here waits for the end that worker records.
                if !self.store.claim(id)? {
                    return Ok(Started::Recorded);
                }
                let (wf, record) = self.prepare_resume(record)?;
                (wf, record, false)
            }
            None => {
                let (deadline_ms, traceparent) = options.into_parts(now_ms);
                let mut record = WorkflowRecord::new(id, name, input, now_ms);
                record.app_version.clone_from(&self.app_version);
                record.deadline_ms = deadline_ms;
                let wf = Rc::new(WorkflowState::new(&record, Vec::new()));
                wf.telemetry.set_traceparent(traceparent);
                (wf, record, true)
            }
        };
        self.stage_start(PendingStart {
            wf: Rc::clone(&wf),
            record,
            is_new,
            registration,
        });
        Ok(Started::Staged(wf))
    }

    /// With `halt_before_finish`, the first workflow started or resumed here is the one
    /// whose end is not committed.
    pub(crate) fn note_halt_subject(&self, id: &str) {
        if self.halt_before_finish && self.halt_subject.borrow().is_none() {
            *self.halt_subject.borrow_mut() = Some(id.to_string());
        }
    }

    /// Prepares the resumption of a pending workflow: counts one more recovery attempt
    /// (refusing past the limit), loads its recorded completions, and keeps the record
    /// as it was, to be written back if the resumption stops on a divergence. Returns the
    /// workflow and the record to commit before it may run.
    ///
    /// `recover()` and a start that resumes a pending workflow both go through it, so
    /// neither can replay a crashing workflow forever. Attempts count resumptions
    /// without progress: the first new completion resets them (see `Core::commit`).
    pub(crate) fn prepare_resume(
        &self,
        record: WorkflowRecord,
    ) -> Result<(Rc<WorkflowState>, WorkflowRecord), Error> {
        let limit = self.max_recovery_attempts;
        if record.recovery_attempts >= limit {
            // Not resumed: it no longer holds a queue slot (see `Queues::set_aside`).
            self.queues.set_aside(&record.id);
            return Err(Error::RecoveryExhausted {
                workflow_id: record.id.clone(),
                attempts: record.recovery_attempts,
                limit,
            });
        }
        let recorded = self.store.completions(&record.id)?;
        let mut counted = record.clone();
        counted.recovery_attempts += 1;
        let wf = Rc::new(WorkflowState::new(&counted, recorded));
        crate::telemetry::load_trace_context(&*self.store, &wf)?;
        *wf.before_resume.borrow_mut() = Some(Box::new(record));
        Ok((wf, counted))
    }

    /// Stages a started workflow: it is running here from now on (a second start of the
    /// same id finds it), its record goes into the next commit, and it is launched once
    /// that commit is durable.
    pub(crate) fn stage_start(&self, start: PendingStart) {
        self.running.borrow_mut().insert(Rc::clone(&start.wf));
        self.outbox.borrow_mut().starts.push(start);
    }

    /// A new run of `record` from no completions, running here from now on (a second
    /// start of its id finds it), to be launched once the commit that writes `record`
    /// is durable: a child's launch, a queued workflow's dispatch, a debounced start.
    pub(crate) fn fresh_start(
        &self,
        record: WorkflowRecord,
        registration: Registration,
        is_new: bool,
    ) -> PendingStart {
        let wf = Rc::new(WorkflowState::new(&record, Vec::new()));
        self.running.borrow_mut().insert(Rc::clone(&wf));
        PendingStart {
            wf,
            record,
            is_new,
            registration,
        }
    }

    /// Takes back a staged start that was never committed (a cancel before the commit).
    pub(crate) fn unstage_start(&self, id: &str) -> Option<PendingStart> {
        let mut outbox = self.outbox.borrow_mut();
        let index = outbox.starts.iter().position(|s| s.wf.id == id)?;
        Some(outbox.starts.remove(index))
    }

    /// Queues a step completion (a body finished, a timer fired), with what it writes
    /// besides itself.
    pub(crate) fn queue_completion(
        &self,
        wf: Rc<WorkflowState>,
        completion: Completion,
        effect: Effect,
    ) {
        if wf.phase.get() == Phase::Done {
            self.undo_effect(&wf, effect);
            return;
        }
        self.outbox
            .borrow_mut()
            .completions
            .push((wf, completion, effect));
    }

    /// Gives back what a completion that will never be committed took for its effect:
    /// a `recv`'s letters go back to their topic, a child whose launch is not recorded
    /// does not run here, an enqueue's reservation is released. The one place that
    /// knows what each effect holds before its commit.
    fn undo_effect(&self, wf: &WorkflowState, effect: Effect) {
        match effect {
            Effect::Consume { topic, letters } => wf.give_back(&topic, letters),
            Effect::StartChild(start) => self.forget(&start.wf),
            Effect::Enqueue(staged) => self.queues.release(&*self.store, &staged),
            Effect::None | Effect::Send(_) | Effect::SetEvent { .. } => {}
        }
    }

    /// Queues a client's write; `reply` hears whether the commit that holds it succeeded.
    pub(crate) fn queue_write(&self, write: Write, reply: Reply) {
        let mut outbox = self.outbox.borrow_mut();
        outbox.writes.push(write);
        outbox.replies.push(reply);
    }

    /// Queues `reply` for the commit that writes the enqueue of `id`, staged already.
    pub(crate) fn queue_enqueue_reply(&self, id: String, reply: Reply) {
        self.outbox.borrow_mut().enqueue_replies.push((id, reply));
    }

    /// Queues `reply` for the next commit (a client's message that duplicates one
    /// that waits for it).
    pub(crate) fn queue_reply(&self, reply: Reply) {
        self.outbox.borrow_mut().replies.push(reply);
    }

    /// Whether the start of `wf` waits in the outbox for a commit.
    pub(crate) fn start_is_staged(&self, wf: &Rc<WorkflowState>) -> bool {
        (self.outbox.borrow().starts.iter()).any(|start| Rc::ptr_eq(&start.wf, wf))
    }

    /// Queues `reply` for the commit that writes the start of `wf`, staged already.
    pub(crate) fn queue_start_reply(&self, wf: Rc<WorkflowState>, reply: Reply) {
        self.outbox.borrow_mut().start_replies.push((wf, reply));
    }

    /// Whether a message or event may be addressed to `id`: it runs here, its start is
    /// staged, or the journal has its record.
    /// The name of the workflow that holds id `id`, if one does: running here, waiting
    /// here (in a queue, its enqueue perhaps not committed yet; or a debounced call's
    /// round), or recorded.
    pub(crate) fn holder_name(&self, id: &str) -> Result<Option<String>, Error> {
        if let Some(wf) = self.running.borrow().get(id) {
            return Ok(Some(wf.name.clone()));
        }
        if let Some(name) = self.queues.waiting_name(id) {
            return Ok(Some(name));
        }
        Ok(self.store.workflow(id)?.map(|record| record.name))
    }

    pub(crate) fn workflow_exists(&self, id: &str) -> Result<bool, Error> {
        if self.running.borrow().contains_key(id) {
            return Ok(true);
        }
        Ok(self.store.workflow(id)?.is_some())
    }

    /// Queues a run that continues as new (`next`); it is committed like a result.
    pub(crate) fn queue_continue(&self, wf: Rc<WorkflowState>, next: PendingStart) {
        wf.phase.set(Phase::Finishing);
        self.outbox.borrow_mut().continued.push((wf, next));
    }

    /// Queues a workflow's final output; handles see it once it is durable. A queued
    /// workflow's slot goes at once to the next workflow of its lane, if one may start
    /// ([`Queues::hand_over`](crate::queue::Queues::hand_over)): launched now, so its
    /// first steps run before the next stall and share one commit with this end and its
    /// start, instead of a commit of their own after the start's.
    pub(crate) fn queue_finished(self: &Rc<Self>, wf: Rc<WorkflowState>, output: Outcome) {
        wf.phase.set(Phase::Finishing);
        let handed = self.queues.hand_over(self, &wf.id, self.now_ms());
        self.outbox
            .borrow_mut()
            .finished
            .push((Rc::clone(&wf), output));
        if let Some(crate::queue::HandedOver {
            record,
            registration,
            dispatched,
        }) = handed
        {
            let start = self.fresh_start(record, registration, false);
            // Set once: a staged entry is dispatched once.
            let _ = dispatched.set(Rc::clone(&start.wf));
            launch(self, &start.wf, &start.registration, SpawnRoot::Here);
            self.outbox.borrow_mut().handed.push(Handover {
                freed_by: wf,
                start,
            });
        }
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
        // Admitted before this round: delivered from the next one on (see `admitted`).
        let admitted = std::mem::take(&mut *self.admitted.borrow_mut());
        let mut round = self.round.borrow_mut();
        round.extend(self.delivering.borrow_mut().drain(..));
        if round.is_empty() {
            let progressed = !admitted.is_empty();
            self.delivering.borrow_mut().extend(admitted);
            return progressed;
        }
        for wf in round.drain(..) {
            if let Some(delivery) = wf.next_delivery() {
                self.deliver(&wf, delivery);
            }
            if !wf.inbox.borrow().is_empty() {
                self.delivering.borrow_mut().push_back(wf);
            }
        }
        self.delivering.borrow_mut().extend(admitted);
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
        crate::telemetry::step_delivered(wf, step_id, &name, ok, recorded);
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
        let give_back = self.settle();
        let committed = self.commit_with(give_back);
        // Settled workflows' bodies start now: after the commit that gave the others'
        // attempts back, or at once when there was none to give.
        self.wake_settled();
        committed
    }

    /// The most workflows a commit serves: the store's own bound
    /// ([`Store::max_commit_workflows`]), or [`MAX_COMMIT_WORKFLOWS`].
    fn commit_workflows(&self) -> usize {
        self.store
            .max_commit_workflows()
            .unwrap_or(MAX_COMMIT_WORKFLOWS)
            .max(1)
    }

    /// [`Core::commit`], also giving back the recovery attempts of `give_back` (see
    /// `Settling`).
    fn commit_with(self: &Rc<Self>, give_back: Vec<Rc<WorkflowState>>) -> bool {
        let Outbox {
            completions,
            mut finished,
            mut starts,
            mut continued,
            mut handed,
            writes,
            mut replies,
            start_replies,
            enqueue_replies,
        } = self
            .outbox
            .borrow_mut()
            .take_commit(self.commit_workflows());
        // A workflow stopped after it returned (cancelled, say) must not be recorded
        // as finished.
        finished.retain(|(wf, _)| wf.phase.get() == Phase::Finishing);
        starts.retain(|start| start.wf.is_running());
        // A handed-over workflow cancelled since left its queue with its cancellation
        // record; any other (still running, or stopped by a failure) is recorded as
        // started, as a dispatch pass would have recorded it.
        handed.retain(|h| self.queues.is_member(&h.start.wf.id));
        continued.retain(|(wf, _)| wf.phase.get() == Phase::Finishing);
        // The clients of the starts this commit writes are answered with it.
        replies.extend(start_replies.into_iter().map(|(_, reply)| reply));
        let mut completions = self.admit_consumes(completions, &continued);
        if completions.is_empty()
            && finished.is_empty()
            && starts.is_empty()
            && handed.is_empty()
            && continued.is_empty()
            && writes.is_empty()
            && replies.is_empty()
            && enqueue_replies.is_empty()
            && give_back.is_empty()
            && !self.queues.needs_commit()
        {
            return false;
        }
        if self.halted.get() || self.broken.borrow().is_some() {
            return false;
        }
        // Before the end of the first workflow started here.
        let halt_now = self.halt_before_finish
            && !finished.is_empty()
            && self
                .halt_subject
                .borrow()
                .as_ref()
                .is_some_and(|subject| finished.iter().any(|(wf, _)| wf.id == *subject));
        if halt_now {
            finished.clear();
            // The slots those ends handed over are not taken either: the starts of the
            // workflows that took them, and their steps, are not committed.
            if !handed.is_empty() {
                let took: HashSet<*const WorkflowState> =
                    handed.drain(..).map(|h| Rc::as_ptr(&h.start.wf)).collect();
                completions.retain(|(wf, _, _)| !took.contains(&Rc::as_ptr(wf)));
                continued.retain(|(wf, _)| !took.contains(&Rc::as_ptr(wf)));
            }
            if completions.is_empty() && starts.is_empty() {
                self.halt();
                return true;
            }
        }
        let now_ms = self.now_ms();
        let mut batch = Batch::with_completion_capacity(completions.len());
        // The batch owns what it commits; `staged` and `finished` remember whose each
        // entry is, and the entries are taken back after the commit (no copies).
        let mut staged = Vec::with_capacity(completions.len());
        // Starts first: a later put of the same id in this batch (its attempt reset, its
        // final record) overrides the start's.
        for start in &mut starts {
            if start.is_new {
                batch.insert_workflow(start.take_record());
                crate::telemetry::put_trace_context(&mut batch, &start.wf);
            } else {
                batch.update_workflow(start.take_record(), Status::Pending);
            }
        }
        // Slots handed over since the last commit: these starts too come before any
        // other put of their ids (a run that continues as new, an end).
        for handover in &handed {
            batch.start_queued(handover.start.record.clone());
        }
        for (old, next) in &mut continued {
            // The next run's steps go on from this run's, so none of its step ids, nor
            // the child ids and awakeable tokens named after them, is one an earlier
            // run used (a child of the same id would be found finished; an old token
            // would resolve a new awakeable). Taken now: this run creates no step after
            // this commit.
            let first = next_run_first_step(old);
            next.record.first_step = first;
            next.wf.start_steps_at(first);
            batch.update_workflow(next.record.clone(), Status::Pending);
            batch.reset_completions(&next.record.id);
        }
        // Resumed workflows that wait only on ordo: not what crashed a process.
        for wf in &give_back {
            reset_attempts(wf, now_ms, &mut batch);
        }
        let mut after = AfterCommit::default();
        after.wake.extend(
            handed
                .iter()
                .map(|h| WatchKey::Workflow(h.start.wf.id.clone())),
        );
        for (wf, mut completion, effect) in completions {
            completion.seq = wf.next_seq.get();
            wf.next_seq.set(completion.seq + 1);
            // A new completion is progress: the resumption that got here did not crash,
            // so its attempts start over (in this same commit).
            reset_attempts(&wf, now_ms, &mut batch);
            self.stage_effect(&wf, effect, now_ms, &mut batch, &mut after);
            batch.push_completion(&wf.id, completion);
            staged.push(wf);
        }
        for write in writes {
            match write {
                Write::Send(message) => self.stage_message(message, now_ms, &mut batch),
                Write::Resolve {
                    workflow_id,
                    step_id,
                    outcome,
                } => {
                    batch.resolve_awakeable(&workflow_id, step_id, outcome);
                    after.wake.push(WatchKey::Awakeable(workflow_id, step_id));
                }
            }
        }
        let finished: Vec<Rc<WorkflowState>> = finished
            .into_iter()
            .map(|(wf, output)| {
                self.stage_children_end(&wf, now_ms, &mut batch, &mut after.cancelled);
                batch.update_workflow(wf.final_record(output, now_ms), Status::Pending);
                self.queues.leave(&wf.id, &mut batch);
                after.wake.push(WatchKey::Workflow(wf.id.clone()));
                wf
            })
            .collect();
        // The children these ends cancel keep what their finished bodies returned.
        self.stage_finished_bodies(after.cancelled.iter().map(String::as_str), &mut batch);
        // Slots freed by these ends go to the next queued workflows in this same commit.
        self.queues.stage(
            self,
            now_ms,
            &mut batch,
            &mut after.children,
            &mut after.wake,
        );
        // Enqueues left staged for the next commit (more than one writes) are answered
        // with it.
        if !enqueue_replies.is_empty() {
            let left = self.queues.staged_ids();
            for (id, reply) in enqueue_replies {
                if left.contains(id.as_str()) {
                    self.outbox.borrow_mut().enqueue_replies.push((id, reply));
                } else {
                    replies.push(reply);
                }
            }
        }
        self.name_new_types(&mut batch);
        let timer = crate::telemetry::CommitTimer::start();
        if let Err(err) = self.store.commit(&batch) {
            // Nothing of this batch is known to be durable, and nothing written since the
            // last good commit can be trusted: nobody may see any of it, and this runtime
            // commits nothing more. Every workflow stops here and stays `Pending`; a
            // reopen replays what is really on disk.
            // Staged starts and continuing runs are in `running` too: `break_down` fails
            // them with everything else.
            let err = Error::from(err);
            for reply in replies {
                reply(Err(err.clone()));
            }
            self.break_down(err);
            return true;
        }
        timer.committed(
            &batch,
            &starts,
            after.children.iter().chain(handed.iter().map(|h| &h.start)),
        );
        // Starts another worker of a shared journal had made first: not run here.
        let refused = self.store.refused_starts();
        for id in &refused {
            self.queues.refused(id);
        }
        for start in starts.into_iter().chain(after.children.drain(..)) {
            if refused.contains(&start.wf.id) {
                crate::multi_worker::follow_elsewhere(self, &start.wf);
                continue;
            }
            if start.wf.is_running() {
                launch(self, &start.wf, &start.registration, SpawnRoot::Here);
            }
        }
        for (old, next) in continued {
            old.continue_as(Rc::clone(&next.wf));
            self.forget(&old);
            launch(self, &next.wf, &next.registration, SpawnRoot::Here);
        }
        self.post_mail(&batch, &after.mail);
        for id in after.cancelled.drain(..) {
            self.end_cancelled_child(&id);
            after.wake.push(WatchKey::Workflow(id));
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
                // The name the step's slot holds (its shared copy); interned again only
                // for a step already released (a `select!` loser's).
                let name = wf
                    .slot_name(completion.step_id)
                    .unwrap_or_else(|| wf.intern(&completion.name));
                inbox.push_back(Delivery {
                    step_id: completion.step_id,
                    name,
                    outcome: completion.outcome,
                    recorded: false,
                });
                was_empty
            };
            if was_empty {
                self.delivering.borrow_mut().push_back(wf);
            }
        }
        // The final records, in the order of `finished`: the other records of the batch
        // (starts, children, enqueues, queue dispatches, cancelled children) are never
        // succeeded or failed.
        let finals = records
            .into_iter()
            .filter(|r| matches!(r.status, Status::Succeeded | Status::Failed));
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
            crate::telemetry::workflow_returned(&wf.name, ok);
            self.emit(|| Event::Finished {
                workflow_id: wf.id.clone(),
                ok,
            });
        }
        if self.watchers.any() {
            for key in after.wake {
                self.watchers.wake(&key);
            }
        }
        for reply in replies {
            reply(Ok(()));
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

    /// Decides which completions this commit takes, for the sake of `recv`: a message
    /// is consumed in the commit that records the `recv` which took it, so that commit
    /// must be one whose completions the workflow will really see. A `recv` whose future
    /// is gone (a `select!` loser dropped before this commit) gives its message back to
    /// the head of its topic; a `recv` behind another completion of its workflow in this
    /// commit waits for the next one, when the workflow has seen that other completion
    /// and may have dropped it. So no message is consumed by a `recv` that the workflow
    /// never reads. Completions of a run that continues as new, or of a workflow stopped
    /// since they were queued, are dropped with it.
    fn admit_consumes(
        &self,
        completions: Vec<(Rc<WorkflowState>, Completion, Effect)>,
        continued: &[(Rc<WorkflowState>, PendingStart)],
    ) -> Vec<(Rc<WorkflowState>, Completion, Effect)> {
        // The common commit (plain steps of running workflows) passes as it is: one scan,
        // no allocation.
        let plain = continued.is_empty()
            && completions.iter().all(|(wf, _, effect)| {
                !matches!(effect, Effect::Consume { .. }) && wf.phase.get() != Phase::Done
            });
        if plain {
            return completions;
        }
        let mut kept = Vec::with_capacity(completions.len());
        let mut later = Vec::new();
        let mut seen: HashSet<*const WorkflowState> = HashSet::new();
        for (wf, completion, effect) in completions {
            // A workflow stopped since (cancelled, failed) records nothing more, and
            // launches no child: a cancel sweep must not miss a child started after it.
            if wf.phase.get() == Phase::Done
                || continued.iter().any(|(old, _)| Rc::ptr_eq(old, &wf))
            {
                self.undo_effect(&wf, effect);
                continue;
            }
            let first = seen.insert(Rc::as_ptr(&wf));
            if let Effect::Consume { topic, letters } = effect {
                if !wf.step_alive(completion.step_id) {
                    wf.give_back(&topic, letters);
                    continue;
                }
                let effect = Effect::Consume { topic, letters };
                if first {
                    kept.push((wf, completion, effect));
                } else {
                    later.push((wf, completion, effect));
                }
                continue;
            }
            kept.push((wf, completion, effect));
        }
        if !later.is_empty() {
            self.outbox.borrow_mut().completions.splice(0..0, later);
        }
        kept
    }

    /// Adds what a completion writes besides itself to `batch`.
    fn stage_effect(
        &self,
        wf: &Rc<WorkflowState>,
        effect: Effect,
        now_ms: u64,
        batch: &mut Batch,
        after: &mut AfterCommit,
    ) {
        match effect {
            Effect::None => {}
            Effect::Consume { topic, letters } => {
                for letter in &letters {
                    batch.consume_message(&wf.id, &topic, letter.number);
                }
            }
            Effect::Send(message) => {
                // Handed to its destination once durable (see `post_mail`).
                after.mail.push(batch.messages().len());
                self.stage_message(*message, now_ms, batch);
            }
            Effect::SetEvent { key, value } => {
                batch.set_event(&wf.id, &key, value);
                after.wake.push(WatchKey::Event(wf.id.clone(), key));
            }
            Effect::StartChild(mut start) => {
                if start.is_new {
                    batch.insert_workflow(start.take_record());
                } else {
                    batch.update_workflow(start.take_record(), Status::Pending);
                }
                after.children.push(*start);
            }
            Effect::Enqueue(staged) => self.queues.write(*staged, batch, now_ms),
        }
    }

    /// Numbers a message (unless it has its number already) and adds it to `batch`.
    fn stage_message(&self, mut message: Message, now_ms: u64, batch: &mut Batch) {
        if message.number == 0 {
            message.number = self.message_number();
        }
        message.sent_ms = now_ms;
        batch.send_message(message);
    }

    /// The next message number (numbers start at 1: 0 means "not numbered yet").
    ///
    /// On a journal shared by many workers the numbers come in blocks the store reserves
    /// for this process alone, so two workers never number two messages alike.
    pub(crate) fn message_number(&self) -> u64 {
        const BLOCK: u64 = 1024;
        if self.next_message.get() >= self.message_limit.get() {
            match self.store.reserve_message_numbers(BLOCK) {
                Ok(Some(first)) => {
                    self.next_message.set(first);
                    self.message_limit.set(first + BLOCK);
                }
                // One writer: numbers go on after the journal's highest. A failed
                // reservation is retried at the next message; this one's commit fails
                // with the store anyway.
                Ok(None) => self.message_limit.set(u64::MAX),
                Err(_) => {}
            }
        }
        let number = self.next_message.get();
        self.next_message.set(number + 1);
        number
    }

    /// What other workers committed that workflows running here may wait for (a
    /// journal shared by many workers): a mailbox reads the journal again, waiters on an
    /// end, an event or an awakeable look again. Called at every stall.
    pub(crate) fn take_changes_from_elsewhere(&self) {
        use crate::talk::watch::WatchKey;
        use ordo_journal::Elsewhere;
        for change in self.store.changed_elsewhere() {
            match change {
                Elsewhere::Mail(destination) => {
                    let wf = self.running.borrow().get(&destination).cloned();
                    if let Some(wf) = wf {
                        wf.mail_committed_elsewhere(self);
                    }
                }
                Elsewhere::Ended(id) => self.watchers.wake(&WatchKey::Workflow(id)),
                Elsewhere::Event(id) => self
                    .watchers
                    .wake_where(|k| matches!(k, WatchKey::Event(of, _) if *of == id)),
                Elsewhere::Resolved(id) => self
                    .watchers
                    .wake_where(|k| matches!(k, WatchKey::Awakeable(of, _) if *of == id)),
                Elsewhere::Queue(_) => self.queues.poke(),
                _ => {
                    self.queues.poke();
                    self.watchers.wake_where(|_| true);
                    let all: Vec<_> = self.running.borrow().values().cloned().collect();
                    for wf in all {
                        wf.mail_committed_elsewhere(self);
                    }
                }
            }
        }
    }

    /// Stages in `batch`, for the commit that cancels the workflows `cancelled` (those
    /// of them running here), the outcomes of their plain steps whose bodies returned
    /// but whose completions wait for a later commit: those bodies ran (a payment was
    /// taken, say), so the journal keeps what they returned, and a later
    /// [`Runtime::resume`](crate::Runtime::resume) replays it rather than running them
    /// again. Their seqs follow whatever `batch` already holds of each workflow. Steps
    /// that write more than their outcome (a `recv`'s consumption, a child's launch, a
    /// `send`) are left out, and undone as before: their bodies are the runtime's own,
    /// and a resumed run does them again.
    pub(crate) fn stage_finished_bodies<'a>(
        &self,
        cancelled: impl IntoIterator<Item = &'a str>,
        batch: &mut Batch,
    ) {
        let stopped: Vec<Rc<WorkflowState>> = {
            let running = self.running.borrow();
            cancelled
                .into_iter()
                .filter_map(|id| running.get(id).cloned())
                .collect()
        };
        self.outbox.borrow().copy_plain_steps(&stopped, batch);
    }

    /// When `wf` ends, its unfinished children launched with `cancel_with_parent` are
    /// cancelled in the same commit; their ids go to `cancelled`, whose finished
    /// bodies' outcomes the caller stages in that commit too
    /// ([`Core::stage_finished_bodies`]).
    pub(crate) fn stage_children_end(
        &self,
        wf: &WorkflowState,
        now_ms: u64,
        batch: &mut Batch,
        cancelled: &mut Vec<String>,
    ) {
        let children = wf.children.borrow();
        for child in children.iter().filter(|c| c.cancel_with_parent) {
            let running = self.running.borrow().get(&child.id).cloned();
            let record = match running {
                Some(child) if child.is_running() => Some(child.pending_record(0, now_ms)),
                Some(_) => None,
                None => self.store.workflow(&child.id).ok().flatten(),
            };
            let Some(mut record) = record.filter(|r| r.status == Status::Pending) else {
                continue;
            };
            record.status = Status::Cancelled;
            record.updated_ms = now_ms;
            batch.update_workflow(record, Status::Pending);
            cancelled.push(child.id.clone());
        }
    }

    /// Stops child `id`, if it runs here, once the commit that cancels it with its parent
    /// is durable (see [`Core::stage_children_end`]).
    pub(crate) fn end_cancelled_child(&self, id: &str) {
        let running = self.running.borrow().get(id).cloned();
        if let Some(child) = running {
            child.fail(Error::Cancelled {
                workflow_id: id.to_string(),
            });
            self.forget(&child);
        }
    }

    /// After a commit: the messages workflows sent in it (`sent`, indices into the
    /// batch's messages) reach their destinations' mailboxes (those running here with
    /// their mailbox loaded; the others read them from the journal). Clients' messages
    /// were handed over when staged (see `talk::client`).
    fn post_mail(&self, batch: &Batch, sent: &[usize]) {
        for message in sent.iter().filter_map(|&i| batch.messages().get(i)) {
            let destination = self.running.borrow().get(&message.destination).cloned();
            if let Some(wf) = destination {
                wf.letter_arrived(
                    &message.topic,
                    Letter {
                        number: message.number,
                        payload: message.payload.clone(),
                    },
                );
            }
        }
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
            .chain(batch.completions().iter().map(|(_, c)| c.outcome.bytes()))
            .chain(batch.messages().iter().map(|m| &m.payload[..]))
            .chain(batch.events().iter().map(|(_, _, value)| &value[..]));
        // Values come in runs of one type (a `join_all`'s 64 outcomes): one lookup a run.
        let mut last = None;
        for bytes in values {
            let Some(fingerprint) = codec::fingerprint_of(bytes) else {
                continue;
            };
            if last.replace(fingerprint) == Some(fingerprint) {
                continue;
            }
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
        let running: Vec<_> = self.running.borrow_mut().drain().collect();
        for wf in running {
            wf.fail(why(&wf));
        }
        self.delivering.borrow_mut().clear();
        self.admitted.borrow_mut().clear();
        *self.outbox.borrow_mut() = Outbox::default();
    }
}

#[cfg(test)]
mod tests {
    use super::split_front;

    #[test]
    fn a_drained_burst_does_not_keep_its_peak_buffer() {
        let mut queued: Vec<u64> = (0..100_000).collect();
        let peak = queued.capacity();
        let mut taken = Vec::new();
        while queued.len() > 1024 {
            taken.extend(split_front(&mut queued, 1024));
        }
        assert!(
            queued.capacity() < peak / 8,
            "{} of {peak} kept for {} items",
            queued.capacity(),
            queued.len()
        );
        taken.extend(split_front(&mut queued, 1024));
        // Nothing lost, nothing reordered.
        assert_eq!(taken, (0..100_000).collect::<Vec<_>>());
        assert!(queued.is_empty());
    }
}
