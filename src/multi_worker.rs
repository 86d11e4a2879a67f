//! Many worker processes on one journal: PostgreSQL, leases, takeover.
//!
//! The embedded sled journal is one process's. To run a service on several machines,
//! give every process the same PostgreSQL database
//! ([`RuntimeBuilder::postgres`](crate::RuntimeBuilder::postgres), or the environment
//! variable `ORDO_DATABASE_URL`); each process is then a *worker*:
//!
//! - A workflow is driven by one worker at a time: the one that started it, or the one
//!   that claimed it. [`Runtime::recover`](crate::Runtime::recover) claims the pending
//!   workflows no live worker drives (with `FOR UPDATE SKIP LOCKED`: two workers never
//!   claim the same one), and from then on the runtime claims again every half lease,
//!   so the workflows of a worker that died (stopped renewing its lease) run on the
//!   others within about one and a half leases, replayed from the journal like after a
//!   crash.
//! - A worker whose lease ran out and whose workflows were taken over is *fenced*: its
//!   commits are refused ([`journal::Error::Fenced`](crate::journal::Error::Fenced)),
//!   so a paused or cut-off process that wakes up cannot record anything after the
//!   takeover; its runtime stops with that error, as after any failed commit. Only the
//!   step bodies it had in flight may have run twice, as after a crash.
//! - Two workers that start the same id at once (a webhook delivered twice, to two
//!   machines) run it once: the journal writes the first start record and refuses the
//!   other, and the worker refused waits for the other's outcome, which its handles
//!   get, as idempotent starts do in one process.
//! - [`Runtime::start`](crate::Runtime::start) of a pending workflow that another live
//!   worker drives leaves it to that worker: the handle it returns waits for the end
//!   that worker records; once that worker is gone, the start resumes it here.
//!   [`Runtime::cancel`](crate::Runtime::cancel) (and the client's and admin channel's
//!   cancel) of one is refused with
//!   [`journal::Error::DrivenElsewhere`](crate::journal::Error::DrivenElsewhere), since
//!   only the worker that drives it can stop its running code: cancel it there (the
//!   `ordo` CLI's `cancel` reaches it). One that no live worker drives is claimed, then
//!   cancelled.
//! - A process that starts again under its old worker name
//!   ([`PgOptions::worker_name`](crate::journal::PgOptions::worker_name)) gets its
//!   workflows back at once, without waiting for its old lease to run out.
//! - On a shared store, [`Runtime::run`](crate::Runtime::run) keeps serving once
//!   recovery started: it keeps looking for workflows to take over.
//! - The `ordo` CLI (`--postgres URL`) reads the journal directly, and leaves `cancel`,
//!   `resume`, `fork` and `gc` in it as requests
//!   ([`journal::ask_workers`](crate::journal::ask_workers)) that every runtime on the
//!   database serves on a thread of its own, through the same operations as the admin
//!   socket: a cancel on the worker that drives the workflow (only it can stop the
//!   running code), anything else on the first worker to take it.
//!
//! The runtime does not know which store it has: every record kind (workflows, step
//! completions, messages, events, awakeables, queue records, trace contexts) lives in
//! both. Workers tell each other what they commit that others may wait for (PostgreSQL
//! `LISTEN`/`NOTIFY`, no polling): a message to a workflow another worker drives reaches
//! its `recv` at once, as do an event for a `get_event`, an awakeable's resolution, and
//! a workflow's end for a parent waiting on its child or a
//! [`WorkflowHandle`](crate::WorkflowHandle) held on another worker. What does not
//! Queues: each worker dispatches the workflows it enqueued, under a `concurrency` and
//! a rate limit that hold for all workers together (slots taken from the journal in the
//! commit that starts them, [`journal::Store::admit`](crate::journal::Store::admit);
//! [`QueueOptions::worker_concurrency`](crate::QueueOptions::worker_concurrency) caps
//! one worker's share), and the queued workflows of a dead worker are dispatched by a
//! worker that takes them over and declares their queue (one that does not leaves them
//! to one that does).
//! A schedule declared on several workers starts each tick once (its id is the tick's,
//! and the journal writes one start per id); a deduplication id is looked up among
//! the workflows of all workers, and taken in the journal when the enqueue is made (of
//! two enqueues under one deduplication id on two workers in the same instant, one is
//! refused or given the other's id). A debounce key is the journal's, not a worker's:
//! calls for it on any worker join one round, which starts once with the last call's
//! input, on whichever worker sees it due first, also when the worker that opened it
//! is gone (see [`Runtime::debounce`](crate::Runtime::debounce)).
//!
//! ```no_run
//! use ordo::{Ctx, Runtime};
//! use ordo::journal::PgOptions;
//!
//! async fn charge(ctx: Ctx, cents: u64) -> Result<u64, String> {
//!     ctx.step("charge", move || async move { Ok::<_, String>(cents) }).await
//! }
//!
//! let rt = Runtime::builder()
//!     .postgres_with(PgOptions::new("postgres://ordo@db.internal/shop").worker_name("shop-1"))
//!     .register("charge", charge)
//!     .build()?;
//! rt.recover()?; // claims what no live worker drives; takes over dead workers' work from now on
//! let receipt = rt.start::<_, u64, String>("charge", "order-42", 1_999)?;
//! assert_eq!(rt.block_on(receipt.result())?, Ok(1_999));
//! # Ok::<(), ordo::Error>(())
//! ```

use std::rc::Rc;
use std::time::Duration;

use ordo_executor::Executor;

use crate::core::Core;
use crate::error::Error;
use crate::workflow::WorkflowState;

/// Spawns the task that claims again every `every`, launching what it claims.
pub(crate) fn spawn_takeover(core: &Rc<Core>, executor: &Executor, every: Duration) {
    let core = Rc::downgrade(core);
    drop(executor.spawn(async move {
        loop {
            wall_clock_sleep(every).await;
            let Some(core) = core.upgrade() else { return };
            if core.broken().is_some() {
                return;
            }
            let claimed = crate::runtime::resume_claimed(&core, crate::launch::SpawnRoot::Here)
                .and_then(|report| {
                    core.queues.take_over(&*core.store, &report.resumed)?;
                    Ok(report)
                });
            match claimed {
                Ok(report) if !report.resumed.is_empty() => {
                    crate::telemetry::took_over(report.resumed.len());
                }
                Ok(_) => {}
                // Fenced: this worker's workflows are another's now; its commits fail
                // and stop the runtime. Any other error: the next turn tries again.
                Err(Error::Journal(err)) if matches!(*err, ordo_journal::Error::Fenced { .. }) => {
                    return
                }
                Err(_) => {}
            }
        }
    }));
}

/// Completes once `wait` of wall time has passed, without a timer of the executor.
///
/// Leases expire on the wall clock, so that is the clock takeover rounds keep. An
/// executor timer would also be one on a [`Clock::Virtual`](crate::Clock::Virtual)
/// executor, where time jumps only from one timer to the next: with a takeover timer
/// every half lease, a workflow's durable sleep of a year would be reached through
/// millions of takeover rounds (each a round trip to the journal), and never in
/// practice. The wait is a short-lived thread that wakes the task (the executor's
/// wakers are `Send`), at most one per runtime at a time.
async fn wall_clock_sleep(wait: Duration) {
    let (done, waited) = futures::channel::oneshot::channel::<()>();
    let timer = std::thread::Builder::new()
        .name("ordo-takeover-timer".into())
        .spawn(move || {
            std::thread::sleep(wait);
            let _ = done.send(());
        });
    match timer {
        Ok(_) => {
            let _ = waited.await;
        }
        // No thread to be had: the executor's clock, as the next best.
        Err(_) => ordo_executor::sleep(wait).await,
    }
}

/// A workflow this worker started (or enqueued) whose start record the journal refused
/// because another worker had started one under the same id first
/// ([`Store::refused_starts`](ordo_journal::Store::refused_starts)): it is not run here,
/// and its handles get the outcome the other worker records (or [`Error::Conflict`] if
/// that one is another workflow).
pub(crate) fn follow_elsewhere(core: &Rc<Core>, wf: &Rc<WorkflowState>) {
    core.forget(wf);
    let (core, wf) = (Rc::clone(core), Rc::clone(wf));
    drop(ordo_executor::spawn(async move {
        let id = wf.id.clone();
        // What a handle of a workflow driven elsewhere waits for.
        let outcome = match core.record(&id) {
            Ok(record) if record.name != wf.name => {
                Err(crate::core::conflict(&id, &record.name, &wf.name))
            }
            Ok(_) => crate::handle::final_outcome(Rc::clone(&core), id, None).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(outcome) => wf.set_result(Ok(outcome)),
            Err(err) => wf.fail(err),
        }
    }));
}
