//! A durable sleep's firing: a step whose body is a timer, polled inside the sleep's own
//! future instead of a task of its own.
//!
//! Its journal record is a step's like any other (`ordo.sleep`, outcome `()`), and it
//! is numbered, recorded, replayed, deferred during replay and delivered exactly as a
//! [`Step`](crate::Step) is; only where its body runs differs. A [`Step`](crate::Step)
//! boxes its body and spawns it as an executor task, so that a body runs on whether or
//! not the workflow polls the step. A timer does nothing until it is due, and its due
//! time wakes whoever waits on the sleep: polled in place, a parked workflow's sleep
//! keeps no boxed body, no task and no task slot. Measured with `benches/memory.rs`
//! (workflows parked in a sleep after three steps), that is about 130 bytes less live
//! heap per parked workflow, of about 2.8 KiB: 2,524 to 2,548 bytes each at 100,000
//! (four runs) against 2,664 to 2,677 with a task per sleep.
//!
//! The one difference a caller can see: a firing is recorded when the sleep future is
//! polled at or after its due time, not at the due time itself when nothing polls it. A
//! sleep is polled by what awaits it (`.await`, `select!`, `join!`), which the timer
//! wakes; a sleep held unpolled fires at its next poll. Its deadline was recorded when
//! it was first polled, in either case.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures::future::LocalBoxFuture;
use ordo_journal::Outcome;

use crate::core::Core;
use crate::ctx::{Ctx, Never};
use crate::step::{self, encode_result, BodyOutput, Found, Go};
use crate::telemetry::StepBody;

/// The firing of a durable sleep of `asked`: resolves once its completion, recorded
/// when the timer for the recorded deadline fired (or found in the journal), is
/// delivered. Created when the sleep is called (its step id taken then: rule 1), given
/// its deadline ([`Firing::at`]) once that step is delivered.
pub(crate) struct Firing {
    ctx: Ctx,
    id: u64,
    asked: Duration,
    deadline_ms: u64,
    live: Live,
    deferred: bool,
    done: bool,
}

/// Where a firing's body stands.
enum Live {
    /// Not started: not polled yet, replaying, or the journal holds its outcome.
    Idle,
    /// Running: the timer (after the test kit's hook, if one is installed), in its
    /// span. Boxed: a workflow's future is as large as its largest state, and one that
    /// sleeps would otherwise carry the timer's room in every other state too.
    Running(Box<Running>),
    /// Its completion is queued, or will be delivered from the journal: it waits for
    /// the delivery.
    Over,
}

impl Firing {
    /// The firing of a sleep of `asked` under step `id`.
    pub(crate) fn new(ctx: Ctx, id: u64, asked: Duration) -> Self {
        Firing {
            ctx,
            id,
            asked,
            deadline_ms: 0,
            live: Live::Idle,
            deferred: false,
            done: false,
        }
    }

    /// The firing for the recorded deadline `deadline_ms` (wall-clock ms).
    pub(crate) fn at(mut self, deadline_ms: u64) -> Self {
        self.deadline_ms = deadline_ms;
        self
    }

    /// Starts the body: the timer, behind the test kit's hook if one is installed.
    fn start(&self) -> Live {
        let (core, wf) = (&self.ctx.core, &self.ctx.wf);
        let started_ms = core.now_ms();
        let name = wf.step_name(self.id);
        let timer = Timer {
            core: Rc::clone(core),
            deadline_ms: self.deadline_ms,
            asked: self.asked,
            before: step::before_body(core, wf, self.id, &name),
            sleep: None,
        };
        Live::Running(Box::new(Running {
            body: crate::telemetry::step_body::<Never, _>(wf, self.id, &name, timer),
            started_ms,
        }))
    }
}

impl Future for Firing {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        assert!(!this.done, "a sleep was polled after it fired");
        match step::look(&this.ctx.wf, this.id, cx) {
            Found::Gone => {}
            Found::Delivered(outcome) => {
                this.done = true;
                this.live = Live::Over;
                if let Some(Ok(())) =
                    step::decode_delivered::<(), Never>(&this.ctx, this.id, outcome)
                {
                    return Poll::Ready(());
                }
            }
            Found::Waiting { recorded } => {
                if let Live::Idle = this.live {
                    match step::may_start(&this.ctx, this.id, recorded, &mut this.deferred, cx) {
                        Go::Recorded => this.live = Live::Over,
                        Go::Wait => {}
                        Go::Start => this.live = this.start(),
                    }
                }
                if let Live::Running(running) = &mut this.live {
                    if let Poll::Ready(output) = Pin::new(&mut running.body).poll(cx) {
                        let name = this.ctx.wf.step_name(this.id);
                        let wf = Rc::clone(&this.ctx.wf);
                        let started_ms = running.started_ms;
                        step::complete(&this.ctx.core, wf, this.id, &name, started_ms, Ok(output));
                        this.live = Live::Over;
                    }
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for Firing {
    fn drop(&mut self) {
        if !self.done {
            // Dropped unfinished (a `select!` loser): its timer goes with it, and its
            // outcome, if one is delivered yet, goes nowhere.
            self.ctx.wf.release_step(self.id);
        }
    }
}

/// A running firing's body, and when it started (wall-clock ms).
struct Running {
    body: StepBody<Timer>,
    started_ms: u64,
}

/// A firing's body: waits for the test kit's hook if one was installed (whose outcome,
/// if it gives one, stands for the body's), then for the recorded deadline.
struct Timer {
    core: Rc<Core>,
    deadline_ms: u64,
    asked: Duration,
    before: Option<LocalBoxFuture<'static, Option<Outcome>>>,
    /// Set when the body starts waiting: the deadline is turned into an instant then,
    /// so a restart waits only what is left of it.
    sleep: Option<ordo_executor::Sleep>,
}

impl Future for Timer {
    type Output = BodyOutput;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BodyOutput> {
        let this = &mut *self;
        if let Some(before) = &mut this.before {
            let answered = ready!(before.as_mut().poll(cx));
            this.before = None;
            if let Some(outcome) = answered {
                return Poll::Ready(BodyOutput::new(Ok(outcome)));
            }
        }
        let sleep = this.sleep.get_or_insert_with(|| {
            let now = ordo_executor::now();
            let at = this
                .core
                .clock
                .instant_at(this.deadline_ms, now, this.asked);
            ordo_executor::sleep_until(at)
        });
        ready!(Pin::new(sleep).poll(cx));
        Poll::Ready(BodyOutput::new(encode_result::<(), Never>(&Ok(()))))
    }
}
