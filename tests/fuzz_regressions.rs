//! Inputs the `replay` fuzz target or its proptest found, kept so stable `cargo test`
//! checks them forever (fuzz/README.md says how to add one). Each found a wrong
//! assumption; the comment says which. Not part of the PostgreSQL pass: each case names
//! its journal kinds (in-memory and sled, as the fuzz target runs them).

use ordo_testkit::catalogue::{check_case, replay, Case, Shape};
use ordo_testkit::{JournalKind, Latency};

/// A `select!` loser's body finished in the cycle the workflow returned in: its
/// completion is committed together with the finish, and a replay returns before
/// delivering it. A full replay delivers what the recording run delivered, not every
/// recorded completion.
#[test]
fn select_loser_committed_with_the_finish_is_not_delivered() {
    replay(&[
        27, 109, 62, 161, 73, 165, 200, 69, 200, 49, 30, 103, 228, 13, 105, 228, 128, 194, 248, 26,
        129, 125, 251, 222, 203, 162, 214, 74, 229, 245, 176, 107, 66, 254, 130, 115, 32, 35, 226,
        160, 135, 136, 189, 10,
    ]);
}

/// `select!` polls its branches in random order: a step of 0 ms raced against a 3 ms
/// timeout finished in the same commit as the timeout's deadline step or in the next,
/// so two live runs under the same latencies made 4 or 5 commits, and "halt after
/// commit 4" found a run that had already finished. (fuzz artifact crash-9e7ed56e)
#[test]
fn random_select_run_may_end_before_the_crash_point() {
    for _ in 0..20 {
        replay(&[59, 3, 3, 26, 6]);
    }
}

/// When the step and the timeout finish at the same instant (one commit), `select!`
/// may queue either first, and two live runs may pick different winners; replay still
/// picks the recorded one. `select_biased!` is deterministic.
#[test]
fn select_tie_between_step_and_timeout_replays_the_recorded_winner() {
    for journal in [JournalKind::Memory, JournalKind::Sled] {
        for (crash_selector, biased) in [(0, false), (1, true), (2, false), (3, true)] {
            check_case(&Case {
                shape: Shape::SelectTimeout {
                    timeout_ms: 10,
                    biased,
                },
                // Salt 2 is the raced step: 10 ms, like the timeout.
                latencies: vec![Latency::Delay(10)],
                recovery_latencies: vec![Latency::Yields(3), Latency::Delay(0), Latency::Delay(10)],
                failures: vec![false, true],
                crash_selector,
                script: vec![1, 2, 0, 1],
                journal,
            });
        }
    }
}

/// The twin of a crashed `select!` run recovered to a journal whose winner was the
/// timeout, while the recovery it was compared with had picked the step: two live runs
/// from one journal, each free to pick. A full replay must reproduce the run that
/// recorded the journal, so the checker now compares with what that run returned.
/// (fuzz artifact crash-3a1dc635)
#[test]
fn full_replay_reproduces_the_run_that_recorded_it_not_a_twin() {
    for _ in 0..20 {
        replay(&[123, 123, 137, 41, 48]);
    }
}
