//! # ordo-testkit: crash, replay, fuzz and check ordo workflows
//!
//! A durable workflow is only as good as its replay: after a crash, ordo runs the
//! workflow's code again and hands every recorded step its recorded outcome, and that
//! works only if the code makes the same decisions. Code that reads the wall clock,
//! iterates a `HashMap`, waits on a thread, or a step renamed in a later release, breaks
//! it. This crate finds those bugs in tests, before a crash in production does. Add it
//! as a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! ordo-testkit = "0.1"
//! ```
//!
//! ## Check a workflow: every commit a crash point
//!
//! [`Check`] runs the workflow uninterrupted, replays that run in full, then crashes it
//! after every group commit and recovers each crash under other step latencies
//! (completion orders), and reports the first divergence as a typed [`Divergence`]:
//! which run, after which commit, with which seed.
//!
//! ```
//! use std::time::Duration;
//! use ordo::Ctx;
//! use ordo_testkit::Check;
//!
//! async fn onboarding(ctx: Ctx, user: String) -> Result<String, String> {
//!     let u = user.clone();
//!     let account = ctx.step("create-account", move || async move { Ok::<_, String>(format!("acct-{u}")) });
//!     let mail = ctx.step("send-welcome", move || async move { Ok::<_, String>(true) });
//!     let (account, _) = futures::join!(account, mail);
//!     ctx.sleep(Duration::from_secs(7 * 24 * 3600)).await; // a week, virtual
//!     ctx.step("send-tips", || async { Ok::<_, String>(()) }).await?;
//!     account
//! }
//!
//! // In a #[test]: panics with the report on a divergence.
//! assert_eq!(Check::workflow("onboarding", onboarding, "ada".to_string()).assert(), Ok("acct-ada".into()));
//! ```
//!
//! A workflow that is not deterministic is caught, with where and how to see it again:
//!
//! ```
//! use ordo::Ctx;
//! use ordo_testkit::{Check, DivergenceKind};
//!
//! async fn fan_out(ctx: Ctx, _: ()) -> Result<u64, String> {
//!     // A HashMap iterates in another order in every map: the steps are created in
//!     // another order on replay.
//!     let items: std::collections::HashMap<String, u64> =
//!         (0..8).map(|i| (format!("item-{i}"), i)).collect();
//!     let mut total = 0;
//!     for (name, n) in items {
//!         total += ctx.step(&name, move || async move { Ok::<_, String>(n) }).await?;
//!     }
//!     Ok(total)
//! }
//!
//! let divergence = Check::workflow("fan_out", fan_out, ()).run().unwrap_err();
//! assert!(matches!(*divergence.kind, DivergenceKind::NonDeterminism(_)));
//! println!("{divergence}"); // workflow "fan_out-checked" diverged in ...: non-deterministic replay ...
//! ```
//!
//! [`Check::mock`] answers a step by name instead of running its body;
//! [`Check::order`] relaxes the "same result after a crash" rule for workflows whose
//! result follows completion order (races); [`Check::reorder_polls`] also varies the
//! executor's poll order.
//!
//! ## Fuzz it
//!
//! [`Check::fuzz`] is the body of a cargo-fuzz target: the fuzzer's bytes choose the
//! latencies, the crash point and the schedule.
//!
//! ```ignore
//! #![no_main]
//! libfuzzer_sys::fuzz_target!(|data: &[u8]| my_app::tests::onboarding_check().fuzz(data));
//! ```
//!
//! ## Replay saved journals against new code
//!
//! [`replay_journal`] replays every pending and finished workflow of a journal folder
//! (a private copy; no step body runs) against the current registrations, and reports
//! each divergence: keep a journal from the last release in the repository and CI
//! catches a renamed step or a changed type before deploy.
//!
//! ```no_run
//! # use ordo::Ctx;
//! # async fn onboarding(_: Ctx, _: String) -> Result<String, String> { Ok(String::new()) }
//! let report = ordo_testkit::replay_journal("tests/journals/v1.4", |b| {
//!     b.register("onboarding", onboarding)
//! })?;
//! report.assert_clean();
//! # Ok::<(), ordo::Error>(())
//! ```
//!
//! # Layout
//!
//! - `check`: [`Check`], the user-facing check and fuzz body.
//! - `checker`: the crash-and-replay experiment ([`check_scenario`]) every check runs,
//!   and [`Order`].
//! - `run`: one run (a process lifetime) and its journal: [`Journal`], [`Halt`],
//!   [`builder`], [`journal_dir`], [`recorded_steps`].
//! - `env`: [`Env`], the outside world a run's step bodies see: latencies, failures,
//!   mocks, and the log of which bodies ran.
//! - `report`: [`Divergence`], [`DivergenceKind`], [`RunPoint`].
//! - `journal_replay`: [`replay_journal`].
//! - `memory`: [`MemoryJournal`], the in-memory journal checks run on.
//! - [`catalogue`]: ordo's own workflow shapes and the `replay` fuzz target's body.
//! - [`store`]: one test suite on both stores: a test's journal "place" is a sled
//!   folder, or with `ORDO_TEST_STORE=postgres` a database named after it.
//! - [`postgres`]: [`TestPostgres`](postgres::TestPostgres), a real, throwaway
//!   PostgreSQL server for tests (found binaries, or `ORDO_TEST_POSTGRES_URL`).
//!
//! The kit reaches step bodies through hidden seams of ordo's `RuntimeBuilder`
//! (`before_step_body`, `halt_after_commits`, `halt_before_finish`, `scheduler`);
//! nothing of it ships inside `ordo`.

pub mod catalogue;
mod check;
pub mod checker;
mod env;
mod journal_replay;
mod memory;
pub mod postgres;
mod report;
mod run;
pub mod store;

pub use crate::check::{Check, DEFAULT_SCHEDULES};
pub use crate::checker::{check_scenario, Crashes, Order, Passed, Scenario};
pub use crate::env::{Env, Latency};
pub use crate::journal_replay::{replay_journal, JournalReport};
pub use crate::memory::MemoryJournal;
pub use crate::report::{Divergence, DivergenceKind, RunPoint};
pub use crate::run::{
    builder, copy_dir, journal_dir, recorded_steps, run_on, Halt, Journal, JournalKind,
    RecordedStep, RunResult, Started, Subject,
};
