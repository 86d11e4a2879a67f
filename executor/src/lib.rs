//! A deterministic, single-threaded executor: the foundation ordo's durable runtime
//! builds on.
//!
//! Replaying a workflow only works if its futures are polled in the same order every
//! time. This executor makes that order explicit: one FIFO ready queue, tasks first
//! polled in spawn order and re-polled in wake order, the same polls run after run.
//!
//! # Walk-through
//!
//! [`Executor::spawn`] boxes the future (one allocation: the future and its output slot
//! share it), gives it the next [`TaskId`], stores it in a slab and appends it to the
//! ready queue. It returns a [`JoinHandle`] that awaits the output, can
//! [`abort`](JoinHandle::abort) the task, and detaches it when dropped.
//!
//! The executor is driven by [`Executor::block_on`] (park the thread while idle),
//! [`Executor::run_until_stalled`] (never wait), or [`Executor::run`] (a future for
//! another runtime). Each scheduling step takes in wakes from other threads, asks the
//! [`Scheduler`] for the next ready task, moves its future out of the slab and polls it
//! with no borrow held — so the task may spawn, wake, abort or drop handles — then puts
//! it back, or stores its output (a panic becomes a [`JoinError`]).
//!
//! A task's waker carries its slab key and id: a wake of a finished or replaced task is
//! ignored; a wake of a queued task does nothing; a wake during the task's own poll puts
//! it at the queue's tail after the poll. On the executor's thread the wake goes straight
//! into the queue; from elsewhere it goes through a lock-free queue and unparks
//! `block_on` or wakes the outer runtime.
//!
//! Timers ([`sleep`], [`sleep_until`]) live in a heap and fire in (deadline, creation)
//! order on the executor's [`Clock`]; with [`Clock::Virtual`] time jumps to the next
//! deadline whenever nothing else can run.
//!
//! ```
//! use std::time::Duration;
//! use ordo_executor::{sleep, spawn, yield_now, Clock, Executor};
//!
//! let ex = Executor::builder().clock(Clock::Virtual).build();
//! let start = ex.now();
//! let answer = ex.block_on(async {
//!     let slow = spawn(async {
//!         sleep(Duration::from_secs(3600)).await; // instant on a virtual clock
//!         40
//!     });
//!     let fast = spawn(async {
//!         yield_now().await;
//!         2
//!     });
//!     slow.await.unwrap() + fast.await.unwrap()
//! });
//! assert_eq!(answer, 42);
//! assert_eq!(ex.now() - start, Duration::from_secs(3600));
//! ```
//!
//! # Layout
//!
//! - `executor` — [`Executor`] and [`ExecutorBuilder`]: spawn, `block_on`,
//!   `run_until_stalled`, the stall hook, the poll trace, shutdown.
//! - `local` — the single-threaded state (task slab, ready queue, timers) and the
//!   scheduling step: pick, poll, settle.
//! - `task` — [`TaskId`], the type-erased task future and a task's slab entry.
//! - `join` — [`JoinHandle`] and [`JoinError`].
//! - `waker` — `Send + Sync` wakers, the cross-thread wake queue, waker recycling.
//! - `context` — the executor current on this thread and the free functions [`spawn`],
//!   [`now`], [`current_task_id`].
//! - `timer` — the deadline heap and [`Sleep`] ([`sleep`], [`sleep_until`]).
//! - `clock` — [`Clock`]: system or virtual time.
//! - `scheduler` — [`Scheduler`]: FIFO, scripted, seeded.
//! - `yield_now` — [`yield_now`].
//! - `embed` — [`Run`], the future from [`Executor::run`], and its timer thread.
//! - `fuzzing` — (hidden) the body of the `executor_schedule` fuzz target.
//!
//! Benchmarks (`benches/`): `executor` (criterion) and `compare` (interleaved rounds,
//! minimum ns/op, for busy machines) run ordo, `futures::executor::LocalPool`,
//! `async_executor::LocalExecutor` and tokio's `LocalSet` side by side on
//! spawn+complete, spawn+yield and an mpsc ping-pong; `callgrind` runs one executor on
//! one of those workloads for `scripts/callgrind`, which counts instructions per
//! operation under valgrind (the same count however busy the machine is). All three
//! share the workloads in `benches/workloads/`.
//!
//! # Why it is fast without `unsafe`
//!
//! One allocation per task (the future and its output share a `MaybeDone` box); slab
//! entries of one cache line; waker targets recycled once no clone is left; wakes on the
//! executor's own thread go straight into a `VecDeque`, skipping the cross-thread queue;
//! tasks are polled with a borrowed waker (no reference-count traffic unless a task
//! keeps its waker).

mod clock;
mod context;
mod embed;
mod executor;
#[doc(hidden)]
pub mod fuzzing;
mod join;
mod local;
mod scheduler;
mod task;
mod timer;
mod waker;
mod yield_now;

pub use clock::Clock;
pub use context::{current_task_id, now, spawn};
pub use embed::Run;
pub use executor::{Executor, ExecutorBuilder};
pub use join::{JoinError, JoinHandle};
pub use scheduler::Scheduler;
pub use task::TaskId;
pub use timer::{saturating_deadline, sleep, sleep_until, Sleep};
pub use yield_now::{yield_now, YieldNow};
