//! The crash-and-replay checker behind [`Check`](crate::Check), the catalogue's cases
//! and the `replay` fuzz target.
//!
//! With R, C and J the result, commit count and journal of an uninterrupted run:
//!
//! 1. a run halted right before its final commit (every step recorded), recovered with
//!    *other* latencies (and schedule), returns R without running a body and without
//!    writing a completion;
//! 2. a run halted after the k-th commit (every k < C) left a prefix of J (live runs
//!    are deterministic); recovering it under each schedule succeeds (no
//!    [`ordo::Error::NonDeterminism`]), keeps that prefix, runs no recorded step's body
//!    again and replays exactly the prefix; an order-insensitive workflow returns R and
//!    records the same (name, ok) pairs as J;
//! 3. what that recovery recorded replays, with the first latencies, to its result.
//!
//! Why an order-sensitive workflow (a race, completion-order consumption) may end
//! differently after a crash: the bodies in flight at the crash restart at recovery
//! time, so the live part of the recovered run sees other completion orders. What is
//! recorded is never re-decided.

use std::fmt::Debug;

use ordo::Error;
use ordo_executor::Scheduler;

use crate::env::Env;
use crate::report::{Divergence, DivergenceKind, RunPoint};
use crate::run::{run_on, Halt, Journal, JournalKind, RecordedStep, Subject};

/// Whether a workflow's result may depend on the order completions arrive in (a race,
/// completion-order consumption): then a crash mid-run may legitimately change it.
///
/// ```
/// use ordo_testkit::{Check, Order};
/// # use ordo::Ctx;
/// # async fn race(_: Ctx, _: ()) -> Result<(), String> { Ok(()) }
/// // A workflow whose result follows which of two steps finished first:
/// Check::workflow("race", race, ()).order(Order::Sensitive).assert();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// Same steps, same outcomes, same result whatever the timing (the default).
    #[default]
    Insensitive,
    /// The result may follow the completion order: after a crash, only that every run
    /// replays what was recorded is checked, not the result.
    Sensitive,
    /// Sensitive, and even two live runs under the same latencies may differ:
    /// `select!` polls its branches in random order, so two bodies finishing at the
    /// same instant (one commit) are queued, and delivered, in either order.
    Random,
}

/// Which crash points [`check_scenario`] tries.
#[derive(Clone, Copy, Debug)]
pub enum Crashes {
    /// After every commit but the last.
    Every,
    /// After commit `1 + selector % (commits - 1)` (the fuzzers).
    One(u64),
}

/// One crash-and-replay experiment: a workflow and the conditions of its runs.
pub struct Scenario<'a, R> {
    /// The workflow under test.
    pub subject: Subject<'a, R>,
    /// Whether its result may follow completion order.
    pub order: Order,
    /// The bodies' world in the uninterrupted and the crashed runs.
    pub first: &'a dyn Fn() -> Env,
    /// Recovery schedule `s`: the bodies' world (other latencies, same outcomes) and
    /// the executor's scheduler.
    pub recovery: &'a dyn Fn(u32) -> (Env, Scheduler),
    /// How many recovery schedules each crash point is recovered under (at least 1).
    pub schedules: u32,
    /// What a run's [`Env`] says the workflow returned, when the workflow notes it
    /// (the catalogue's shapes do): the reference for a full replay of that run.
    pub returned: &'a dyn Fn(&Env) -> Option<R>,
    /// Where the journal lives.
    pub journal: JournalKind,
}

/// What a passing check saw.
#[derive(Clone, Debug)]
pub struct Passed<R> {
    /// What the uninterrupted run returned.
    pub result: R,
    /// Group commits of steps and results in the uninterrupted run: the crash points
    /// are after each but the last.
    pub commits: u64,
    /// Runtime lifetimes the check ran.
    pub runs: u64,
}

fn diverged(kind: DivergenceKind, at: &RunPoint) -> Divergence {
    Divergence::new(kind, at.clone())
}

fn error_at(error: Error, at: &RunPoint) -> Divergence {
    diverged(DivergenceKind::of_error(error), at)
}

fn property(what: String, at: &RunPoint) -> Divergence {
    diverged(DivergenceKind::Property(what), at)
}

/// Full replay: a run that stops right before recording the finish, then a recovery
/// under `replay`, must give the result the halted run would have (`expected`, or what
/// it noted in its `Env`) without running any body or recording a new step.
#[allow(clippy::too_many_arguments)]
fn check_full_replay<R: PartialEq + Debug>(
    journal: &Journal,
    s: &Scenario<'_, R>,
    (record_env, record_scheduler): (&Env, Scheduler),
    (replay_env, replay_scheduler): (&Env, Scheduler),
    expected: &R,
    at_record: &RunPoint,
    at_replay: &RunPoint,
    runs: &mut u64,
) -> Result<(), Divergence> {
    *runs += 2;
    let halted = run_on(
        journal.builder(),
        &s.subject,
        record_env,
        Halt::BeforeFinish,
        record_scheduler,
    );
    match halted.result {
        Err(Error::Stopped { .. }) => {}
        Err(err) => return Err(error_at(err, at_record)),
        Ok(result) => {
            return Err(property(
                format!("the run halted before finishing returned {result:?}"),
                at_record,
            ))
        }
    }
    // What the recording run returned, when the workflow noted it; else what an
    // identical run returned (`expected`), which a `select!` run may not match.
    let noted = (s.returned)(record_env);
    let expected = match &noted {
        Some(returned) => {
            if s.order != Order::Random && returned != expected {
                return Err(diverged(
                    DivergenceKind::DifferentResult {
                        expected: format!("{expected:?}"),
                        found: format!("{returned:?}"),
                    },
                    at_record,
                ));
            }
            Some(returned)
        }
        None if s.order == Order::Random => None,
        None => Some(expected),
    };
    let replayed = run_on(
        journal.builder(),
        &s.subject,
        replay_env,
        Halt::Never,
        replay_scheduler,
    );
    let result = replayed.result.map_err(|err| error_at(err, at_replay))?;
    if let Some(expected) = expected.filter(|expected| **expected != result) {
        return Err(diverged(
            DivergenceKind::DifferentResult {
                expected: format!("{expected:?}"),
                found: format!("{result:?}"),
            },
            at_replay,
        ));
    }
    if let Some(&step_id) = replay_env.bodies_run_in(s.subject.workflow_id).first() {
        return Err(if halted.journal.iter().any(|step| step.0 == step_id) {
            diverged(DivergenceKind::StepRanAgain { step_id }, at_replay)
        } else {
            property(
                format!("a full replay ran the body of step {step_id}, which was not recorded"),
                at_replay,
            )
        });
    }
    if replayed.journal != halted.journal {
        return Err(property(
            format!(
                "a full replay recorded steps: {:?} became {:?}",
                halted.journal, replayed.journal
            ),
            at_replay,
        ));
    }
    // The replay delivers what the recording run delivered. (Not every recorded step:
    // a completion queued in the cycle the workflow returned in, say a `select!`
    // loser's, is committed with the finish but never delivered.)
    let delivered = halted.metrics.steps_executed + halted.metrics.steps_replayed;
    let seen = (
        replayed.metrics.steps_replayed,
        replayed.metrics.steps_executed,
    );
    // The runtime's counters add up every workflow's steps. With other workflows
    // (children, enqueued ones) those that finished before the halt are not replayed,
    // and those that had not (a workflow it enqueued may end after it) replay theirs
    // and go on live: the counters say nothing about the subject then, whose own
    // bodies and journal are checked above.
    let as_expected = halted.workflows > 1 || seen == (delivered, 0);
    if !as_expected {
        return Err(property(
            format!(
                "a full replay delivered (replayed, executed) = {seen:?} steps, not ({delivered}, 0)"
            ),
            at_replay,
        ));
    }
    Ok(())
}

/// The (name, ok) pairs of recorded steps, sorted: what an order-insensitive workflow
/// records whatever the timing. (Not the ids: a sequence numbers its next step when
/// the previous one completes, so ids follow completion order.)
fn outcomes(steps: &[RecordedStep]) -> Vec<(&str, bool)> {
    let mut outcomes: Vec<_> = steps
        .iter()
        .map(|(_, name, ok)| (name.as_str(), *ok))
        .collect();
    outcomes.sort_unstable();
    outcomes
}

/// The crash-and-replay check (see the module docs for what is checked): the
/// uninterrupted run's result, or the first divergence found.
pub fn check_scenario<R: PartialEq + Debug>(
    s: &Scenario<'_, R>,
    crashes: Crashes,
) -> Result<Passed<R>, Divergence> {
    check_all(s, crashes).map_err(|mut divergence| {
        divergence.workflow_id = s.subject.workflow_id.to_string();
        divergence
    })
}

fn check_all<R: PartialEq + Debug>(
    s: &Scenario<'_, R>,
    crashes: Crashes,
) -> Result<Passed<R>, Divergence> {
    let mut runs = 1;
    let first = run_on(
        Journal::new(s.journal).builder(),
        &s.subject,
        &(s.first)(),
        Halt::Never,
        Scheduler::Fifo,
    );
    let expected = first
        .result
        .map_err(|err| error_at(err, &RunPoint::Uninterrupted))?;
    // `halt_after_commits` counts commits of steps and results, not the first commit,
    // which holds the workflow's start record alone.
    let commits = first.metrics.commits.saturating_sub(1);
    let journal = first.journal;

    let (replay_env, replay_scheduler) = (s.recovery)(0);
    check_full_replay(
        &Journal::new(s.journal),
        s,
        (&(s.first)(), Scheduler::Fifo),
        (&replay_env, replay_scheduler),
        &expected,
        &RunPoint::FullReplay,
        &RunPoint::FullReplay,
        &mut runs,
    )?;

    let points: Vec<u64> = match crashes {
        // No commit to crash after but the last.
        _ if commits < 2 => Vec::new(),
        Crashes::Every => (1..commits).collect(),
        Crashes::One(selector) => vec![1 + selector % (commits - 1)],
    };
    for k in points {
        let crash_point = RunPoint::Crashed {
            after_commit: k,
            of: commits,
        };
        let crashed = Journal::new(s.journal);
        runs += 1;
        let halted = run_on(
            crashed.builder(),
            &s.subject,
            &(s.first)(),
            Halt::AfterCommits(k),
            Scheduler::Fifo,
        );
        match halted.result {
            Err(Error::Stopped { .. }) => {}
            // This run took another path, which ended before commit k.
            Ok(_) if s.order == Order::Random => continue,
            Ok(result) => {
                return Err(property(
                    format!(
                        "it returned {result:?} before commit {k}: two live runs under the same \
                         latencies made different commits, the workflow is not deterministic"
                    ),
                    &crash_point,
                ))
            }
            Err(err) => return Err(error_at(err, &crash_point)),
        }
        let before_crash = halted.journal;
        if s.order != Order::Random && !journal.starts_with(&before_crash) {
            return Err(property(
                format!(
                    "two live runs under the same latencies recorded different steps (the \
                     workflow is not deterministic): {before_crash:?} is not a prefix of the \
                     uninterrupted run's {journal:?}"
                ),
                &crash_point,
            ));
        }
        for schedule in 0..s.schedules.max(1) {
            let at = RunPoint::Recovery {
                after_commit: k,
                of: commits,
                schedule,
            };
            let last = schedule + 1 >= s.schedules;
            let twin = crashed.fork();
            let copy;
            let recovering = if last {
                &crashed
            } else {
                copy = crashed.fork();
                &copy
            };
            let (env, scheduler) = (s.recovery)(schedule);
            runs += 1;
            let resumed = run_on(
                recovering.builder(),
                &s.subject,
                &env,
                Halt::Never,
                scheduler.clone(),
            );
            let result = resumed.result.map_err(|err| error_at(err, &at))?;
            if !resumed.journal.starts_with(&before_crash) {
                return Err(property(
                    format!(
                        "history rewritten: {before_crash:?} became {:?}",
                        resumed.journal
                    ),
                    &at,
                ));
            }
            if let Some(step_id) = env
                .bodies_run_in(s.subject.workflow_id)
                .into_iter()
                .find(|id| before_crash.iter().any(|step| step.0 == *id))
            {
                return Err(diverged(DivergenceKind::StepRanAgain { step_id }, &at));
            }
            // Children recovered with it replay their own recorded steps too.
            let replayed = resumed.metrics.steps_replayed;
            let recorded = before_crash.len() as u64;
            let as_expected = if resumed.workflows > 1 {
                replayed >= recorded
            } else {
                replayed == recorded
            };
            if !as_expected {
                return Err(property(
                    format!(
                        "{} steps replayed, {} recorded before the crash",
                        resumed.metrics.steps_replayed,
                        before_crash.len()
                    ),
                    &at,
                ));
            }
            if s.order == Order::Insensitive {
                if result != expected {
                    return Err(diverged(
                        DivergenceKind::DifferentResult {
                            expected: format!("{expected:?}"),
                            found: format!("{result:?}"),
                        },
                        &at,
                    ));
                }
                if outcomes(&resumed.journal) != outcomes(&journal) {
                    return Err(property(
                        format!(
                            "recorded steps (name, ok) {:?}, not the uninterrupted run's {:?}",
                            outcomes(&resumed.journal),
                            outcomes(&journal)
                        ),
                        &at,
                    ));
                }
            }
            // The twin recovers the same way but stops before finishing; replaying
            // that with the first latencies must reach the same result.
            let replay_of = RunPoint::ReplayOfRecovery {
                after_commit: k,
                of: commits,
                schedule,
            };
            let (twin_env, twin_scheduler) = (s.recovery)(schedule);
            check_full_replay(
                &twin,
                s,
                (&twin_env, twin_scheduler.clone()),
                (&(s.first)(), twin_scheduler),
                &result,
                &at,
                &replay_of,
                &mut runs,
            )?;
        }
    }
    Ok(Passed {
        result: expected,
        commits,
        runs,
    })
}
