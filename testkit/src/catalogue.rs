//! The project's own catalogue of workflow shapes, and the `replay` fuzz target's body.
//!
//! ordo's tests check every shape here (`join_all`, nested joins, two sequences in one
//! `join!`, `select!` against a durable timeout, `FuturesUnordered`, `ctx.spawn`ed
//! tasks, retries, durable sleeps) with [`check_crash_replay`] (hand-written, on sled),
//! [`check_case`] (proptest and regressions) and [`replay`] (cargo-fuzz). A [`Case`] is
//! a shape, each step body's latency in two runs (a crashed one and its recovery) and
//! outcome, a crash point and a scheduler script; see [`checker`](crate::checker) for
//! what is checked.
//!
//! ```
//! // Any bytes are a case; a divergence panics with its report.
//! ordo_testkit::catalogue::replay(&[0, 3, 1, 2, 7, 130, 5]);
//! ```

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use futures::future::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use ordo::{Ctx, RetryPolicy, Runtime, RuntimeBuilder, Step};
use ordo_executor::Scheduler;

use crate::checker::{check_scenario, Crashes, Order, Scenario};
use crate::env::{Env, Latency};
use crate::run::{builder, run_on, Halt, JournalKind, RunResult, Started, Subject};

/// The workflow every catalogue run starts: registered as "shape", input `()`.
pub const WORKFLOW: &str = "shape";
/// The id it runs under.
pub const WORKFLOW_ID: &str = "wf";

/// Registers the workflow under test ([`WORKFLOW`], input `()`, output and error
/// `String`) on a builder, its bodies seeing `Env`.
pub type Register<'a> = &'a dyn Fn(RuntimeBuilder, Env) -> RuntimeBuilder;

/// A step whose body takes its latency and returns `value` (or an error naming it,
/// when `env` says this salt fails).
///
/// ```
/// use ordo::{Ctx, Runtime};
/// use ordo_testkit::{catalogue::step, Env};
/// let env = Env::with_seed(1);
/// let rt = Runtime::builder()
///     .temporary()
///     .clock(ordo::Clock::Virtual)
///     .register("one", move |ctx: Ctx, (): ()| {
///         let env = env.clone();
///         async move { step(&ctx, &env, "item", 0, 42).await }
///     })
///     .build()?;
/// let handle = rt.start::<_, u64, String>("one", "o-1", ())?;
/// assert_eq!(rt.block_on(handle.result())?, Ok(42));
/// # Ok::<(), ordo::Error>(())
/// ```
pub fn step(ctx: &Ctx, env: &Env, name: &str, salt: u64, value: u64) -> Step<u64, String> {
    let env = env.clone();
    let label = format!("{name}#{salt}");
    ctx.step(name, move || async move {
        env.body(salt).await;
        if env.fails(salt) {
            Err(format!("{label} failed"))
        } else {
            Ok(value)
        }
    })
}

fn start_shape(rt: &Runtime) -> Started<Result<String, String>> {
    let handle = rt.start::<_, String, String>(WORKFLOW, WORKFLOW_ID, ())?;
    Ok(handle.result().boxed_local())
}

fn subject<'a>(register: Register<'a>) -> Subject<'a, Result<String, String>> {
    Subject {
        register,
        start: &start_shape,
        workflow_id: WORKFLOW_ID,
    }
}

/// One process lifetime: open the journal at `dir`, recover, start (or re-attach to)
/// workflow [`WORKFLOW_ID`], drive it until it ends or `halt` stops it.
///
/// ```
/// use ordo_testkit::{catalogue::{run_once, Shape}, Env, Halt};
/// let dir = ordo_testkit::journal_dir();
/// let register = |b, env| Shape::JoinAll { n: 3 }.register(b, env);
/// let run = run_once(dir.path(), &register, &Env::with_seed(1), Halt::Never);
/// assert_eq!(run.result?, Ok("[Ok(0), Ok(1), Ok(4)]".to_string()));
/// assert_eq!(run.journal.len(), 3);
/// # Ok::<(), ordo::Error>(())
/// ```
pub fn run_once(dir: &Path, register: Register<'_>, env: &Env, halt: Halt) -> RunResult {
    run_on(builder(dir), &subject(register), env, halt, Scheduler::Fifo)
}

/// The hand-written tests' check: seeded latencies, every crash point, FIFO, and a
/// shape that must return `Ok`; panics with the divergence's report.
///
/// # Panics
///
/// On a divergence, or when the shape returns `Err`.
///
/// ```
/// use ordo_testkit::{catalogue::{check_crash_replay, Shape}, Order};
/// let register = |b, env| Shape::TwoSequences { a: 2, b: 2 }.register(b, env);
/// assert_eq!(check_crash_replay(&register, Order::Insensitive, 1, 2), "Ok([100, 101]) Ok([200, 201])");
/// ```
pub fn check_crash_replay(
    register: Register<'_>,
    order: Order,
    seed: u64,
    other_seed: u64,
) -> String {
    check_crash_replay_on(register, order, seed, other_seed, JournalKind::Sled)
}

/// [`check_crash_replay`] on a journal of `kind` (the same checks on PostgreSQL, say).
///
/// # Panics
///
/// On a divergence, or when the shape returns `Err`.
///
/// ```
/// use ordo_testkit::{catalogue::{check_crash_replay_on, Shape}, JournalKind, Order};
/// let register = |b, env| Shape::JoinAll { n: 2 }.register(b, env);
/// assert_eq!(check_crash_replay_on(&register, Order::Insensitive, 1, 2, JournalKind::Memory), "[Ok(0), Ok(1)]");
/// ```
pub fn check_crash_replay_on(
    register: Register<'_>,
    order: Order,
    seed: u64,
    other_seed: u64,
    journal: JournalKind,
) -> String {
    let first = || Env::with_seed(seed);
    let recovery = |_| (Env::with_seed(other_seed), Scheduler::Fifo);
    let scenario = Scenario {
        subject: subject(register),
        order,
        first: &first,
        recovery: &recovery,
        schedules: 1,
        returned: &Env::returned,
        journal,
    };
    match check_scenario(&scenario, Crashes::Every) {
        Ok(passed) => match passed.result {
            Ok(result) => result,
            Err(err) => panic!("the shape returned Err({err:?})"),
        },
        Err(divergence) => panic!("{divergence}"),
    }
}

/// The fuzzer's catalogue of workflow shapes; sizes are small and bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `join_all` of `n` steps.
    JoinAll {
        /// 1..=8 steps.
        n: u8,
    },
    /// `join_all` of `outer` `join_all`s of `inner` steps each.
    NestedJoins {
        /// 1..=3 groups.
        outer: u8,
        /// 1..=3 steps per group.
        inner: u8,
    },
    /// Two sequences of steps side by side in one `join!`, each stopping at its first
    /// `Err`.
    TwoSequences {
        /// 1..=4 steps in the first.
        a: u8,
        /// 1..=4 steps in the second.
        b: u8,
    },
    /// A step, then a step raced against a durable `ctx.sleep`, then a step.
    /// Order-sensitive: the winner follows the latencies.
    SelectTimeout {
        /// 0..=40 ms.
        timeout_ms: u8,
        /// `select_biased!` (the step's branch polled first) rather than `select!`,
        /// which polls in random order: then even two live runs under the same
        /// latencies may differ when both finish at once ([`Order::Random`]).
        biased: bool,
    },
    /// `n` steps in a `FuturesUnordered`, a follow-up step started per completion.
    /// Order-sensitive: the follow-ups are numbered in completion order.
    Unordered {
        /// 1..=5 first steps.
        n: u8,
    },
    /// `tasks` `ctx.spawn`ed tasks, each a step then two joined steps, beside a step
    /// of the main task.
    Spawned {
        /// 1..=3 tasks.
        tasks: u8,
    },
    /// A `step_with` whose body fails `fails` times before succeeding, under a
    /// `RetryPolicy` of `max_attempts`, beside a plain step.
    Retry {
        /// 0..=4 failures.
        fails: u8,
        /// 1..=4 attempts.
        max_attempts: u8,
    },
    /// A step joined with a durable sleep followed by a step.
    Sleep {
        /// 0..=60 ms.
        ms: u8,
    },
    /// `n` messages the workflow sends itself, joined with `n` `recv`s and a step.
    Mailbox {
        /// 1..=4 messages.
        n: u8,
    },
    /// An event set and read back (`set_event` joined with `get_event` on itself),
    /// beside a step.
    Events {
        /// 0..=40 ms: how long the read may wait.
        wait_ms: u8,
    },
    /// `n` child workflows of one step each, joined, beside a step.
    Children {
        /// 1..=4 children.
        n: u8,
    },
    /// `n` workflows of one step each put in a queue of concurrency 2 (`Ctx::enqueue`,
    /// the last one with a deduplication id), beside a step, then the first one's id
    /// enqueued again (which finds it).
    Enqueue {
        /// 1..=4 enqueues.
        n: u8,
    },
}

/// The queue of [`Shape::Enqueue`].
pub const QUEUE: &str = "shape-queue";

/// The child workflow of [`Shape::Children`].
pub const CHILD_WORKFLOW: &str = "shape-child";

impl Shape {
    /// Whether the result may follow completion order.
    pub fn order(self) -> Order {
        match self {
            Shape::SelectTimeout { biased: false, .. } => Order::Random,
            Shape::SelectTimeout { biased: true, .. } => Order::Sensitive,
            Shape::Unordered { .. } => Order::Sensitive,
            _ => Order::Insensitive,
        }
    }

    /// Whether its steps are all created by the workflow's one root task. Only then
    /// may a non-FIFO scheduler run it: the order in which `ctx.spawn`ed tasks are
    /// first polled numbers the steps they create (DESIGN.md §3: "with the FIFO
    /// executor").
    pub fn single_task(self) -> bool {
        !matches!(self, Shape::Spawned { .. })
    }

    /// Registers this shape as [`WORKFLOW`].
    pub fn register(self, b: RuntimeBuilder, env: Env) -> RuntimeBuilder {
        let child_env = env.clone();
        b.queue(QUEUE, ordo::QueueOptions::new().concurrency(2))
            .register(CHILD_WORKFLOW, move |ctx: Ctx, salt: u64| {
                let env = child_env.clone();
                async move { step(&ctx, &env, "child-work", salt, salt * 3).await }
            })
            .register(WORKFLOW, move |ctx: Ctx, (): ()| {
                let env = env.clone();
                async move {
                    let result = self.run(&ctx, &env).await;
                    env.note_return(&result);
                    result
                }
            })
    }

    async fn run(self, ctx: &Ctx, env: &Env) -> Result<String, String> {
        match self {
            Shape::JoinAll { n } => {
                let steps: Vec<_> = (0..u64::from(n))
                    .map(|i| step(ctx, env, "item", i, i * i))
                    .collect();
                Ok(format!("{:?}", futures::future::join_all(steps).await))
            }
            Shape::NestedJoins { outer, inner } => {
                let groups = (0..u64::from(outer)).map(|g| {
                    let steps: Vec<_> = (0..u64::from(inner))
                        .map(|i| step(ctx, env, &format!("g{g}"), g * 10 + i, g * 100 + i))
                        .collect();
                    futures::future::join_all(steps)
                });
                Ok(format!("{:?}", futures::future::join_all(groups).await))
            }
            Shape::TwoSequences { a, b } => {
                let sequence = |prefix: &'static str, len: u8, salt: u64| async move {
                    let mut values = Vec::new();
                    for i in 0..u64::from(len) {
                        values.push(
                            step(ctx, env, &format!("{prefix}{i}"), salt + i, salt * 10 + i)
                                .await?,
                        );
                    }
                    Ok::<_, String>(values)
                };
                let (a, b) = futures::join!(sequence("a", a, 10), sequence("b", b, 20));
                Ok(format!("{a:?} {b:?}"))
            }
            Shape::SelectTimeout { timeout_ms, biased } => {
                let first = step(ctx, env, "before", 1, 1).await;
                let work = step(ctx, env, "work", 2, 2).fuse();
                let timeout = ctx.sleep(Duration::from_millis(timeout_ms.into())).fuse();
                futures::pin_mut!(work, timeout);
                let winner = if biased {
                    futures::select_biased! {
                        done = work => format!("work {done:?}"),
                        () = timeout => "timeout".to_string(),
                    }
                } else {
                    futures::select! {
                        done = work => format!("work {done:?}"),
                        () = timeout => "timeout".to_string(),
                    }
                };
                let after = step(ctx, env, "after", 3, 3).await;
                Ok(format!("{first:?} {winner} {after:?}"))
            }
            Shape::Unordered { n } => {
                let mut pending: FuturesUnordered<_> = (0..u64::from(n))
                    .map(|i| step(ctx, env, "first", i, i).map(move |r| (i, r)))
                    .collect();
                let mut order = Vec::new();
                let mut follow_ups = FuturesUnordered::new();
                while let Some((i, done)) = pending.next().await {
                    order.push((i, done));
                    follow_ups.push(step(ctx, env, &format!("then{i}"), 50 + i, 10 * i));
                }
                let mut second = Vec::new();
                while let Some(done) = follow_ups.next().await {
                    second.push(done);
                }
                Ok(format!("{order:?} {second:?}"))
            }
            Shape::Spawned { tasks } => {
                let handles: Vec<_> = (0..u64::from(tasks))
                    .map(|t| {
                        let (c, e) = (ctx.clone(), env.clone());
                        ctx.spawn(async move {
                            let x = step(&c, &e, &format!("task{t}-a"), 100 + t, t).await?;
                            let (y, z) = futures::join!(
                                step(&c, &e, &format!("task{t}-b"), 110 + t, x + 1),
                                step(&c, &e, &format!("task{t}-c"), 120 + t, x + 2)
                            );
                            Ok::<_, String>((x, y?, z?))
                        })
                    })
                    .collect();
                let main = step(ctx, env, "main", 200, 7).await;
                let mut results = Vec::new();
                for handle in handles {
                    results.push(handle.await);
                }
                Ok(format!("{main:?} {results:?}"))
            }
            Shape::Retry {
                fails,
                max_attempts,
            } => {
                let attempts = Rc::new(Cell::new(0u8));
                let policy =
                    RetryPolicy::new(max_attempts.into()).backoff(Duration::from_millis(5), 2.0);
                let retried = {
                    let env = env.clone();
                    ctx.step_with("retried", policy, move || {
                        let (env, attempts) = (env.clone(), Rc::clone(&attempts));
                        async move {
                            env.body(300).await;
                            attempts.set(attempts.get() + 1);
                            if attempts.get() <= fails {
                                Err(format!("attempt {} failed", attempts.get()))
                            } else {
                                Ok(u64::from(attempts.get()))
                            }
                        }
                    })
                };
                let (retried, plain) = futures::join!(retried, step(ctx, env, "plain", 301, 1));
                Ok(format!("{retried:?} {plain:?}"))
            }
            Shape::Sleep { ms } => {
                let slept = async {
                    ctx.sleep(Duration::from_millis(ms.into())).await;
                    step(ctx, env, "after-sleep", 2, 2).await
                };
                let (before, after) = futures::join!(step(ctx, env, "beside", 1, 1), slept);
                Ok(format!("{before:?} {after:?}"))
            }
            Shape::Mailbox { n } => {
                let me = ctx.workflow_id().to_string();
                let sends: Vec<_> = (0..u64::from(n))
                    .map(|i| ctx.send(&me, "inbox", i * 7))
                    .collect();
                let recvs: Vec<_> = (0..n)
                    .map(|_| ctx.recv::<u64>("inbox", Duration::from_secs(3600)))
                    .collect();
                let (sent, got, beside) = futures::join!(
                    futures::future::join_all(sends),
                    futures::future::join_all(recvs),
                    step(ctx, env, "beside", 1, 1)
                );
                let sent = sent.iter().filter(|s| s.is_ok()).count();
                // Which recv got which message follows the send order: only the set is
                // the same whatever the timing.
                let mut got: Vec<_> = got.into_iter().collect();
                got.sort();
                Ok(format!("{sent} {got:?} {beside:?}"))
            }
            Shape::Events { wait_ms } => {
                let me = ctx.workflow_id().to_string();
                let read = ctx.get_event::<u64>(&me, "phase", Duration::from_secs(3600));
                let set = async {
                    let v = step(ctx, env, "compute", 1, 41).await;
                    ctx.set_event("phase", v.clone().unwrap_or(0)).await;
                    v
                };
                let (read, set) = futures::join!(read, set);
                let later = ctx
                    .get_event::<u64>(&me, "phase", Duration::from_millis(wait_ms.into()))
                    .await;
                Ok(format!("{read:?} {set:?} {later:?}"))
            }
            Shape::Children { n } => {
                let children: Vec<_> = (0..u64::from(n))
                    .map(|i| ctx.start_child::<_, u64, String>(CHILD_WORKFLOW, 400 + i))
                    .collect();
                let results = futures::future::join_all(children.into_iter().map(|c| async {
                    c.result().await.map_err(|e| e.to_string()).and_then(|r| r)
                }));
                let (results, beside) = futures::join!(results, step(ctx, env, "beside", 1, 1));
                Ok(format!("{results:?} {beside:?}"))
            }
            Shape::Enqueue { n } => {
                let enqueues: Vec<_> = (0..u64::from(n))
                    .map(|i| {
                        let mut options = ordo::EnqueueOptions::new();
                        if i + 1 == u64::from(n) {
                            options = options.dedup("last", ordo::OnDuplicate::Reject);
                        }
                        ctx.enqueue(QUEUE, CHILD_WORKFLOW, 500 + i, options)
                    })
                    .collect();
                let enqueued = futures::future::join_all(enqueues);
                let (enqueued, beside) = futures::join!(enqueued, step(ctx, env, "beside", 1, 1));
                let ids: Vec<String> = enqueued
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|e| e.to_string()))
                    .collect();
                // Under an id already recorded: that workflow, not a second one.
                let again = ctx
                    .enqueue(
                        QUEUE,
                        CHILD_WORKFLOW,
                        599u64,
                        ordo::EnqueueOptions::new().id(ids[0].clone()),
                    )
                    .await;
                Ok(format!("{ids:?} {beside:?} {again:?}"))
            }
        }
    }
}

/// One fuzz case: a shape and the world its runs see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The workflow.
    pub shape: Shape,
    /// Step body latencies in the uninterrupted and the crashed run (by salt).
    pub latencies: Vec<Latency>,
    /// Step body latencies in the recoveries (by salt).
    pub recovery_latencies: Vec<Latency>,
    /// Which bodies return `Err` (by salt), in every run.
    pub failures: Vec<bool>,
    /// Picks the crash point among the uninterrupted run's commits.
    pub crash_selector: u64,
    /// The recoveries' `Scheduler::Scripted` bytes (single-task shapes).
    pub script: Vec<u8>,
    /// Where the journal lives ([`Case::from_bytes`] picks memory, for speed).
    pub journal: JournalKind,
}

/// Reads bounded values from fuzzer bytes; zeros once they run out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// A value in `lo..=hi`.
    fn range(&mut self, lo: u8, hi: u8) -> u8 {
        lo + self.byte() % (hi - lo + 1)
    }

    fn latency(&mut self) -> Latency {
        let b = self.byte();
        if b & 0x80 == 0 {
            Latency::Delay(b % 41)
        } else {
            Latency::Yields(b & 0x07)
        }
    }
}

/// At most this many listed latencies/failures; salts index them modulo the length.
const MAX_PLANS: u8 = 8;
/// At most this many scheduler script bytes.
const MAX_SCRIPT: usize = 32;

impl Case {
    /// Decodes fuzzer bytes into a case; every byte string is a valid case.
    ///
    /// ```
    /// let case = ordo_testkit::catalogue::Case::from_bytes(&[]);
    /// assert_eq!(case.shape, ordo_testkit::catalogue::Shape::JoinAll { n: 1 });
    /// ```
    pub fn from_bytes(data: &[u8]) -> Case {
        let mut r = Reader(data);
        let kind = r.byte();
        // The top bytes pick the shapes added after the first eleven, so the bytes of
        // saved fuzz inputs keep the shape they were found with.
        let shape = if kind >= 242 {
            Shape::Enqueue { n: r.range(1, 4) }
        } else {
            match kind % 11 {
                0 => Shape::JoinAll { n: r.range(1, 8) },
                1 => Shape::NestedJoins {
                    outer: r.range(1, 3),
                    inner: r.range(1, 3),
                },
                2 => Shape::TwoSequences {
                    a: r.range(1, 4),
                    b: r.range(1, 4),
                },
                3 => Shape::SelectTimeout {
                    timeout_ms: r.range(0, 40),
                    biased: (kind / 11) % 2 == 0,
                },
                4 => Shape::Unordered { n: r.range(1, 5) },
                5 => Shape::Spawned {
                    tasks: r.range(1, 3),
                },
                6 => Shape::Retry {
                    fails: r.range(0, 4),
                    max_attempts: r.range(1, 4),
                },
                7 => Shape::Sleep { ms: r.range(0, 60) },
                8 => Shape::Mailbox { n: r.range(1, 4) },
                9 => Shape::Events {
                    wait_ms: r.range(0, 40),
                },
                _ => Shape::Children { n: r.range(1, 4) },
            }
        };
        let crash_selector = r.byte().into();
        let plans = r.range(1, MAX_PLANS);
        let (mut latencies, mut recovery_latencies, mut failures) =
            (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..plans {
            latencies.push(r.latency());
            recovery_latencies.push(r.latency());
            // Mostly successes: a failure often ends a sequence early.
            failures.push(r.byte() % 4 == 0);
        }
        let script = r.0.iter().take(MAX_SCRIPT).copied().collect();
        Case {
            shape,
            latencies,
            recovery_latencies,
            failures,
            crash_selector,
            script,
            journal: JournalKind::Memory,
        }
    }
}

/// Runs one case through [`check_scenario`], at its one crash point.
///
/// # Panics
///
/// On a divergence, with its report and the case.
///
/// ```
/// use ordo_testkit::catalogue::{check_case, Case, Shape};
/// use ordo_testkit::Latency;
/// check_case(&Case {
///     shape: Shape::TwoSequences { a: 2, b: 3 },
///     latencies: vec![Latency::Delay(5), Latency::Yields(2)],
///     recovery_latencies: vec![Latency::Delay(30)],
///     failures: vec![false, false, true],
///     crash_selector: 2,
///     script: vec![1, 0, 1],
///     journal: ordo_testkit::JournalKind::Sled,
/// });
/// ```
pub fn check_case(case: &Case) {
    let shape = case.shape;
    let register = move |b: RuntimeBuilder, env: Env| shape.register(b, env);
    let first = || Env::listed(&case.latencies, &case.failures);
    let recovery_scheduler = if shape.single_task() {
        Scheduler::Scripted(case.script.clone())
    } else {
        Scheduler::Fifo
    };
    let recovery = |_| {
        (
            Env::listed(&case.recovery_latencies, &case.failures),
            recovery_scheduler.clone(),
        )
    };
    let scenario = Scenario {
        subject: subject(&register),
        order: shape.order(),
        first: &first,
        recovery: &recovery,
        schedules: 1,
        returned: &Env::returned,
        journal: case.journal,
    };
    // A shape's own `Err` results are results like any other: compared, not failures.
    if let Err(divergence) = check_scenario(&scenario, Crashes::One(case.crash_selector)) {
        panic!("{divergence}\n  case: {case:?}");
    }
}

/// The `replay` fuzz target: decode `data` into a [`Case`] and check it.
///
/// # Panics
///
/// On a divergence, with its report and the case.
///
/// ```
/// ordo_testkit::catalogue::replay(b"any bytes at all");
/// ```
pub fn replay(data: &[u8]) {
    check_case(&Case::from_bytes(data));
}
