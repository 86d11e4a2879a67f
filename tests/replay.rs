//! Deterministic replay of concurrent workflow shapes, crashed at every commit.
//!
//! Each shape is run uninterrupted, then halted after every possible number of
//! commits (as if killed right there) and recovered: see
//! `ordo_testkit::checker` for what is checked. The `replay` fuzz target and
//! `tests/replay_property.rs` run the same checker over generated shapes.
//!
//! Not part of the PostgreSQL pass (`ORDO_TEST_STORE=postgres`): the checker keeps
//! journals of its own kind (`ordo_testkit::JournalKind`), whatever the variable says;
//! `tests/replay_postgres.rs` checks the catalogue's shapes on PostgreSQL against sled.

mod common;

use std::time::Duration;

use common::{check_crash_replay, step, Env, Order};
use futures::stream::{FuturesUnordered, StreamExt};
use ordo::{Ctx, RuntimeBuilder};

fn join_all_100(b: RuntimeBuilder, env: Env) -> RuntimeBuilder {
    b.register("shape", move |ctx: Ctx, (): ()| {
        let env = env.clone();
        async move {
            let steps: Vec<_> = (0..100)
                .map(|i| step(&ctx, &env, "item", i, i * i))
                .collect();
            let ids: Vec<u64> = steps.iter().map(ordo::Step::id).collect();
            // Rule 1: ids are taken at the call, in program order.
            assert_eq!(ids, (0..100).collect::<Vec<_>>());
            let values = futures::future::join_all(steps).await;
            let values: Vec<u64> = values.into_iter().collect::<Result<_, _>>()?;
            Ok::<_, String>(format!("{values:?}"))
        }
    })
}

#[test]
fn join_all_of_100_steps_replays_without_running_bodies() {
    let result = check_crash_replay(&join_all_100, Order::Insensitive, 1, 2);
    let expected: Vec<u64> = (0..100).map(|i| i * i).collect();
    assert_eq!(result, format!("{expected:?}"));
}

#[test]
fn join_all_journal_is_in_completion_order_not_id_order() {
    // Proof that the shape above really is concurrent: the journal's delivery order
    // follows the latencies, and the ids still name the call order.
    let dir = common::journal_dir();
    let run = common::run_once(
        dir.path(),
        &join_all_100,
        &Env::with_seed(1),
        common::Halt::Never,
    );
    assert!(run.result.is_ok());
    // `run_once` journals in a sled folder: read it there.
    let steps = ordo_testkit::recorded_steps(dir.path(), "wf");
    let ids: Vec<u64> = steps.iter().map(|s| s.0).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_ne!(ids, sorted, "completions should arrive out of call order");
}

/// Two multi-step sequences side by side in one `join!` (what DBOS forbids).
fn two_sequences(b: RuntimeBuilder, env: Env) -> RuntimeBuilder {
    b.register("shape", move |ctx: Ctx, (): ()| {
        let env = env.clone();
        async move {
            let a = async {
                let mut acc = Vec::new();
                for i in 0..4 {
                    acc.push(step(&ctx, &env, &format!("a{i}"), 10 + i, i).await?);
                }
                Ok::<_, String>(acc)
            };
            let b = async {
                let mut acc = Vec::new();
                for i in 0..4 {
                    acc.push(step(&ctx, &env, &format!("b{i}"), 20 + i, 100 + i).await?);
                }
                Ok::<_, String>(acc)
            };
            let (a, b) = futures::join!(a, b);
            Ok::<_, String>(format!("{:?} {:?}", a?, b?))
        }
    })
}

#[test]
fn two_multi_step_sequences_in_one_join_replay_under_other_latencies() {
    let result = check_crash_replay(&two_sequences, Order::Insensitive, 3, 4);
    assert_eq!(result, "[0, 1, 2, 3] [100, 101, 102, 103]");
}

/// A step raced against a durable timeout.
fn select_timeout(b: RuntimeBuilder, env: Env) -> RuntimeBuilder {
    b.register("shape", move |ctx: Ctx, (): ()| {
        let env = env.clone();
        async move {
            use futures::FutureExt;
            let first = step(&ctx, &env, "before", 1, 1).await?;
            let work = step(&ctx, &env, "work", 2, 2).fuse();
            // The step's latency is 0..40 ms: a 20 ms timeout wins about half the time.
            let timeout = ctx.sleep(Duration::from_millis(20)).fuse();
            futures::pin_mut!(work, timeout);
            let winner = futures::select! {
                done = work => format!("work {}", done?),
                () = timeout => "timeout".to_string(),
            };
            let after = step(&ctx, &env, "after", 3, 3).await?;
            // Two live runs from one crash may see the step and the timer finish at the
            // same instant and pick either (select!'s branch order is random): note what
            // this run returned, so its replay is checked against it.
            let result = Ok::<_, String>(format!("{first} {winner} {after}"));
            env.note_return(&result);
            result
        }
    })
}

#[test]
fn select_between_step_and_timeout_replays_the_same_winner() {
    let mut winners = std::collections::BTreeSet::new();
    for seed in 0..12 {
        let result = check_crash_replay(&select_timeout, Order::Random, seed, seed + 1000);
        winners.insert(result.split(' ').nth(1).map(str::to_string));
    }
    // Both outcomes occurred, and each replayed with its own winner.
    assert_eq!(
        winners.len(),
        2,
        "expected both winners across seeds: {winners:?}"
    );
}

/// `FuturesUnordered` consumed in completion order, a new step per completion.
fn unordered(b: RuntimeBuilder, env: Env) -> RuntimeBuilder {
    b.register("shape", move |ctx: Ctx, (): ()| {
        let env = env.clone();
        async move {
            let mut pending: FuturesUnordered<_> =
                (0..5).map(|i| step(&ctx, &env, "first", i, i)).collect();
            let mut order = Vec::new();
            let mut follow_ups = FuturesUnordered::new();
            while let Some(done) = pending.next().await {
                let i = done?;
                order.push(i);
                follow_ups.push(step(&ctx, &env, &format!("then{i}"), 50 + i, 10 * i));
            }
            let mut second = Vec::new();
            while let Some(done) = follow_ups.next().await {
                second.push(done?);
            }
            Ok::<_, String>(format!("{order:?} {second:?}"))
        }
    })
}

#[test]
fn futures_unordered_in_completion_order_replays_identically() {
    for seed in [5, 6, 7] {
        check_crash_replay(&unordered, Order::Sensitive, seed, seed * 31 + 1);
    }
}

/// `ctx.spawn`ed sub-tasks running steps, and nested joins.
fn spawned_and_nested(b: RuntimeBuilder, env: Env) -> RuntimeBuilder {
    b.register("shape", move |ctx: Ctx, (): ()| {
        let env = env.clone();
        async move {
            let tasks: Vec<_> = (0..3)
                .map(|t| {
                    let (c, e) = (ctx.clone(), env.clone());
                    ctx.spawn(async move {
                        let x = step(&c, &e, "task-a", 100 + t, t).await?;
                        let (y, z) = futures::join!(
                            step(&c, &e, "task-b", 110 + t, x + 1),
                            step(&c, &e, "task-c", 120 + t, x + 2)
                        );
                        Ok::<_, String>(x + y? + z?)
                    })
                })
                .collect();
            let inner = futures::future::join_all((0..2).map(|i| {
                futures::future::join(
                    step(&ctx, &env, "outer", 200 + i, i),
                    step(&ctx, &env, "outer", 210 + i, i),
                )
            }))
            .await;
            let mut sum = 0;
            for task in tasks {
                sum += task.await?;
            }
            for (a, b) in inner {
                sum += a? + b?;
            }
            Ok::<_, String>(format!("{sum}"))
        }
    })
}

#[test]
fn spawned_subtasks_and_nested_joins_replay() {
    let result = check_crash_replay(&spawned_and_nested, Order::Insensitive, 8, 9);
    // tasks: t + (t+1) + (t+2) for t in 0..3 = 3t+3 -> 3+6+9 = 18; outer: 2*(0+1) = 2
    assert_eq!(result, "20");
}
