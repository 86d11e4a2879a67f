//! # ordo: durable execution for Rust, embedded
//!
//! Write a long-running business process as an ordinary `async fn` made of *steps*.
//! ordo journals every step's outcome before the workflow sees it; after a crash, the
//! workflow is *replayed*: recorded steps return their recorded outcome without running
//! again, and execution continues live from the first step that never finished.
//!
//! ```
//! use ordo::{Ctx, Runtime};
//! use std::time::Duration;
//!
//! async fn checkout(ctx: Ctx, items: Vec<String>) -> Result<u64, String> {
//!     // Concurrent steps: ids are taken at the call, in program order.
//!     let holds = futures::future::join_all(items.into_iter().map(|item| {
//!         ctx.step("reserve", move || async move { Ok::<_, String>(item.len() as u64) })
//!     }))
//!     .await;
//!     ctx.sleep(Duration::from_millis(10)).await; // durable: survives a restart
//!     let total: u64 = holds.into_iter().collect::<Result<Vec<_>, _>>()?.iter().sum();
//!     ctx.step("charge", move || async move { Ok::<_, String>(total * 100) }).await
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let rt = Runtime::builder().path(dir.path()).register("checkout", checkout).build()?;
//! rt.recover()?; // resume what a crashed process left pending
//! let items = vec!["book".to_string(), "pen".to_string()];
//! let handle = rt.start::<_, u64, String>("checkout", "order-42", items)?;
//! assert_eq!(rt.block_on(handle.result())?, Ok(700));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Determinism
//!
//! Replay needs the workflow to make the same decisions in the same order. ordo gets
//! that from three rules, which the code quotes where it enforces them:
//!
//! 1. **Step ids at the call site.** `ctx.step(..)` takes the next step id when it is
//!    called, before anything is awaited: program order numbers steps, not poll order.
//! 2. **Outcomes are delivered, not grabbed.** A finished step body, a fired durable
//!    timer: each becomes a queued completion. When the executor stalls, every queued
//!    completion (of every workflow), with every start and result of that turn, is
//!    committed in one journal commit (one durability point; a turn with more than
//!    1,024 completions takes several, in order), then delivered one at a time per
//!    workflow, in journal order, the executor running until it stalls between two
//!    deliveries to the same workflow. A workflow runs only once its start is durable.
//! 3. **Replay delivers the same sequence.** After a restart the recorded completions
//!    are delivered the same way; no step body starts until they all have been.
//!
//! The same rule carries workflows that talk (`send`/`recv`, events, child workflows,
//! awakeables): each takes its step ids at the call, and whatever wakes workflow code,
//! a message, an event's value, a child's end, a resolution, is a completion, committed
//! together with its effect (a message stored or consumed, an event set, a child
//! started) and delivered in journal order; the `talk` module's docs go through each.
//!
//! Together with the single-threaded FIFO executor ([`ordo_executor`]), this makes
//! `join_all`, two multi-step sequences in one `join!`, `select!` races against a
//! durable timeout, `FuturesUnordered` and `ctx.spawn`ed sub-tasks replay exactly. A
//! replay that diverges from the journal stops with [`Error::NonDeterminism`] and
//! leaves the journal untouched (its recovery attempt is given back).
//!
//! Every value the journal stores (inputs, step outcomes, outputs) carries a fingerprint
//! of its Rust type's serde shape, checked on every read: a value read back as another
//! type is an [`Error::TypeMismatch`] naming both types, never a silently wrong value.
//!
//! ## Guarantees
//!
//! - A step body runs at least once; a step whose completion is recorded never runs
//!   again. Only bodies in flight at a crash run twice: give external services
//!   [`StepInfo::idempotency_key`] (via [`current_step`]) for exactly-once effects.
//! - A step's outcome is recorded exactly once, and delivered to the workflow only
//!   after it is durable ([`Durability`] says against what).
//! - A journal that lost acknowledged commits (a damaged byte anywhere in its files) is
//!   refused at open with a typed error and left as it is; nothing runs again because
//!   its record vanished (see [`journal`]'s "Damage").
//! - The first failed commit stops the runtime: every workflow gets the error, nothing
//!   more is committed, and a reopen continues from what is really on disk.
//! - Recovery attempts count resumptions that crashed or panicked without progress; a
//!   divergence, a graceful restart and progress do not use them up.
//!
//! # Layout
//!
//! - [`runtime`](Runtime): the builder, `start`, `recover`, `block_on`, `run`.
//! - `ctx`: [`Ctx`], what workflows call: `step`, `step_with`, `sleep`, `now`,
//!   `random`, `spawn`, `continue_as_new`.
//! - `talk`: workflows that talk: `send`/`recv` messages, `set_event`/`get_event`,
//!   child workflows, awakeables, and the thread-safe [`Client`]; its docs extend the
//!   determinism rule to each of them.
//! - `patch`: [`Ctx::patched`] and [`Ctx::deprecate_patch`], upgrading a workflow's
//!   code under running workflows (the path taken is recorded at a step id).
//! - `deadline`: workflow deadlines: [`StartOptions::timeout`] recorded as an absolute
//!   deadline with the start, expiry cancelling the workflow and its children
//!   ([`Error::DeadlineExceeded`]), children inheriting their parent's deadline.
//! - `operations`: steering workflows from outside: [`Runtime::resume`],
//!   [`Runtime::fork`], and retention ([`Runtime::gc`], the sweep of
//!   [`RuntimeBuilder::retention`]), each with a commit of its own.
//! - `queue`: queues with flow control ([`RuntimeBuilder::queue`], [`Runtime::enqueue`],
//!   [`Ctx::enqueue`]), dispatched inside the group commit that frees a slot;
//!   scheduled workflows ([`RuntimeBuilder::schedule`]) and debouncing
//!   ([`Runtime::debounce`]) on the same records and timers.
//! - [`admin`]: the live admin channel: a Unix socket in the journal's folder (mode
//!   0600) that a running application serves, through a [`Client`], for the `ordo`
//!   CLI's `list`, `show`, `stats`, `cancel`, `resume`, `fork` and `gc`; and the
//!   client's operations behind it ([`Client::cancel`], [`Client::resume`],
//!   [`Client::fork`], [`Client::gc`], [`Client::list`], [`Client::show`],
//!   [`Client::stats`]).
//! - [`multi_worker`] (feature `postgres`, on by default): many worker processes on
//!   one PostgreSQL journal ([`RuntimeBuilder::postgres`]): claims, leases, fencing,
//!   and the takeover of a dead worker's workflows.
//! - `step`: the [`Step`] future: waits for delivery, starts its body when live.
//! - `firing`: a durable sleep's firing, a step whose body (a timer) is polled in the
//!   sleep's own future rather than spawned as a task.
//! - `core`: the outbox, group commit and delivery (rule 2), installed as the
//!   executor's stall hook; the fatal first commit error; attempts given back.
//! - `launch`: spawning a workflow's root task once its start is durable.
//! - `workflow`: one running workflow's state: step slots, inbox, replay progress.
//! - `slots`: the slots of the steps a workflow still uses (a window over step ids);
//!   `names`: step names, interned once per thread.
//! - `handle`: [`WorkflowHandle`], a typed view of a workflow's result.
//! - `registry`: registered workflow functions with types erased to bytes.
//! - `codec`: bincode encoding of user values behind their type fingerprint;
//!   `fingerprint`: a type's serde shape, hashed; `clock`: wall time on executor time.
//! - `error`: the one [`Error`] enum; `event`: [`Event`]s for observers;
//!   `retry`: [`RetryPolicy`].
//! - [`telemetry`]: `tracing` spans of workflow runs and step bodies, the W3C trace
//!   context ([`TraceParent`]) a workflow was started with, and `ordo_*` metrics through
//!   the `metrics` facade.
//! - `dashboard`: [`RuntimeBuilder::dashboard`], a token-protected web page of the
//!   journal's workflows, each with its input, output, a timeline of its steps, and
//!   cancel and resume buttons; served from a thread of its own, reading the journal
//!   through the runtime's thread.
//!
//! Beside this crate, in the same workspace: `cli/` (package `ordo-cli`), the `ordo`
//! command, which reads a journal from the shell (`list`, `show`, `stats`);
//! `testkit/` (package `ordo-testkit`, a dev-dependency), which crashes a workflow after
//! every commit, replays it under other latencies, fuzzes it and replays saved journals
//! against new code; `examples/quickstart/` (package `ordo-quickstart`), the
//! README's demo; and `examples/approval/` (package `ordo-approval`), an HTTP service
//! whose workflows wait for messages from a [`Client`].

#![warn(missing_docs)]

pub mod admin;
mod clock;
mod codec;
mod core;
mod ctx;
mod dashboard;
mod deadline;
mod error;
mod event;
mod fingerprint;
mod firing;
mod handle;
mod launch;
pub mod multi_worker;
mod names;
mod operations;
mod patch;
mod queue;
mod registry;
mod retry;
mod runtime;
mod slots;
mod step;
mod talk;
pub mod telemetry;
mod workflow;

pub use crate::admin::{JournalStats, WorkflowSummary};
pub use crate::core::{Metrics, MAX_KEY_LEN};
pub use crate::ctx::{ContinueAsNew, Ctx, TaskHandle};
pub use crate::deadline::StartOptions;
pub use crate::error::{Error, Result};
pub use crate::event::Event;
pub use crate::handle::WorkflowHandle;
pub use crate::operations::GcReport;
pub use crate::queue::{DebounceOptions, EnqueueOptions, MissedTicks, OnDuplicate, QueueOptions};
pub use crate::retry::RetryPolicy;
pub use crate::runtime::{
    RecoveryReport, Runtime, RuntimeBuilder, DEFAULT_DATA_DIR, DEFAULT_MAX_RECOVERY_ATTEMPTS,
};
pub use crate::step::{current_step, Step, StepInfo};
#[doc(hidden)]
pub use crate::step::{encode_result as encode_step_outcome, BeforeStepBody};
pub use crate::talk::{
    collectable_before, Awakeable, ChildHandle, ChildOptions, Client, ClientHandle, ParentEnd,
};
pub use crate::telemetry::TraceParent;
pub use ordo_executor::Clock;
pub use ordo_journal::{Durability, Status, GC_BATCH};

/// The journal crate, for reading records directly (the CLI does).
pub use ordo_journal as journal;

/// The executor crate, for `spawn`, `sleep` and friends outside workflows.
pub use ordo_executor as executor;

/// Whether two secrets (tokens) are equal, compared without stopping at the first
/// difference, so that response times do not tell how much of a guessed one was right.
pub(crate) fn same_secret(given: &str, secret: &str) -> bool {
    given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// The README's Rust examples, compiled as doc tests (and run, unless marked `no_run`),
/// so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
