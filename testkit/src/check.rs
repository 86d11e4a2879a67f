//! [`Check`]: crash a user's workflow after every commit, recover it under other
//! latencies and schedules, and report the first divergence.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::rc::Rc;

use futures::future::{FutureExt, LocalBoxFuture};
use ordo::{Ctx, Runtime, RuntimeBuilder};
use ordo_executor::Scheduler;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::checker::{check_scenario, Crashes, Order, Passed, Scenario};
use crate::env::{mix, Env, Latency, Mock};
use crate::report::Divergence;
use crate::run::{JournalKind, Subject};

/// Recovery schedules per crash point unless [`Check::schedules`] says otherwise.
pub const DEFAULT_SCHEDULES: u32 = 10;

/// A crash-and-replay check of one workflow run: the workflow, its input, and the
/// conditions of the check.
///
/// [`Check::run`] runs the workflow uninterrupted, replays that run in full, then
/// crashes it after every commit and recovers each crash under
/// [`schedules`](Check::schedules) other step latencies (and, opted in, executor
/// schedules), and reports the first divergence as a [`Divergence`]: a replay that
/// stopped with [`ordo::Error::NonDeterminism`] or [`ordo::Error::TypeMismatch`], a
/// different result, a recorded step whose body ran again. Time is virtual, so
/// workflows that sleep for days check in milliseconds; the journal lives in memory
/// ([`Check::on_sled`] for the real thing).
///
/// Every live step body waits for a latency drawn from the seed before it runs (mostly
/// 0..40 virtual milliseconds, sometimes a few polls, so that completions share a
/// commit); the same seed makes the same runs.
///
/// ```
/// use std::time::Duration;
/// use ordo::Ctx;
/// use ordo_testkit::Check;
///
/// async fn checkout(ctx: Ctx, items: Vec<String>) -> Result<u64, String> {
///     let holds = futures::future::join_all(items.into_iter().map(|item| {
///         ctx.step("reserve", move || async move { Ok::<_, String>(item.len() as u64) })
///     }))
///     .await;
///     ctx.sleep(Duration::from_secs(24 * 3600)).await; // a day, in virtual time
///     let total: u64 = holds.into_iter().collect::<Result<Vec<_>, _>>()?.iter().sum();
///     ctx.step("charge", move || async move { Ok::<_, String>(total * 100) }).await
/// }
///
/// let items = vec!["book".to_string(), "pen".to_string()];
/// let passed = Check::workflow("checkout", checkout, items).run()?;
/// assert_eq!(passed.result, Ok(700));
/// assert!(passed.commits >= 3); // crashed after each commit but the last
/// # Ok::<(), ordo_testkit::Divergence>(())
/// ```
pub struct Check<I, O, E> {
    /// The registered name it is started under.
    name: String,
    workflow_id: String,
    input: I,
    /// Registers the workflow (and whatever else it needs) on each run's builder.
    register: Rc<dyn Fn(RuntimeBuilder) -> RuntimeBuilder>,
    seed: u64,
    schedules: u32,
    /// Whether recoveries also run under a seeded executor scheduler.
    reorder_polls: bool,
    order: Order,
    journal: JournalKind,
    mocks: HashMap<String, Mock>,
    _types: PhantomData<fn() -> (O, E)>,
}

impl<I, O, E> Check<I, O, E>
where
    I: Serialize + 'static,
    O: DeserializeOwned + PartialEq + Debug + 'static,
    E: DeserializeOwned + PartialEq + Debug + 'static,
{
    /// Checks the workflow `register` registers under `name`, started with `input`.
    /// Name the output and error types, which the registration hides:
    ///
    /// ```
    /// use ordo::Ctx;
    /// use ordo_testkit::Check;
    ///
    /// async fn double(ctx: Ctx, n: u32) -> Result<u32, String> {
    ///     ctx.step("double", move || async move { Ok::<_, String>(n * 2) }).await
    /// }
    /// let check = Check::<_, u32, String>::new("double", 21u32, |b| b.register("double", double));
    /// assert_eq!(check.assert(), Ok(42));
    /// ```
    pub fn new(
        name: &str,
        input: I,
        register: impl Fn(RuntimeBuilder) -> RuntimeBuilder + 'static,
    ) -> Self {
        Check {
            name: name.to_string(),
            workflow_id: format!("{name}-checked"),
            input,
            register: Rc::new(register),
            seed: 0,
            schedules: DEFAULT_SCHEDULES,
            reorder_polls: false,
            order: Order::Insensitive,
            journal: JournalKind::Memory,
            mocks: HashMap::new(),
            _types: PhantomData,
        }
    }

    /// Checks one workflow function, registered under `name`, started with `input`;
    /// the types come from the function.
    ///
    /// ```
    /// use ordo::Ctx;
    /// async fn hello(ctx: Ctx, name: String) -> Result<String, String> {
    ///     ctx.step("greet", move || async move { Ok::<_, String>(format!("hello {name}")) }).await
    /// }
    /// let passed = ordo_testkit::Check::workflow("hello", hello, "ada".to_string()).assert();
    /// assert_eq!(passed, Ok("hello ada".to_string()));
    /// ```
    pub fn workflow<F, Fut>(name: &str, workflow: F, input: I) -> Self
    where
        F: Fn(Ctx, I) -> Fut + 'static,
        Fut: Future<Output = Result<O, E>> + 'static,
        I: DeserializeOwned,
        O: Serialize,
        E: Serialize,
    {
        let workflow = Rc::new(workflow);
        let registered = name.to_string();
        Check::new(name, input, move |b: RuntimeBuilder| {
            let workflow = Rc::clone(&workflow);
            b.register(&registered, move |ctx: Ctx, input: I| workflow(ctx, input))
        })
    }

    /// The workflow id the runs use (default `"<name>-checked"`).
    ///
    /// ```
    /// # use ordo::Ctx;
    /// async fn who(ctx: Ctx, _: ()) -> Result<String, ()> { Ok(ctx.workflow_id().to_string()) }
    /// let check = ordo_testkit::Check::workflow("who", who, ()).id("order-42");
    /// assert_eq!(check.assert(), Ok("order-42".to_string()));
    /// ```
    pub fn id(mut self, workflow_id: &str) -> Self {
        self.workflow_id = workflow_id.to_string();
        self
    }

    /// The seed step latencies (and schedules) are drawn from (default 0). A
    /// [`Divergence`] names the seed that found it.
    ///
    /// ```
    /// # use ordo::Ctx;
    /// # async fn nop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// for seed in 0..3 {
    ///     ordo_testkit::Check::workflow("nop", nop, ()).seed(seed).assert();
    /// }
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How many recoveries, each under other latencies, every crash point gets
    /// (default [`DEFAULT_SCHEDULES`]; at least 1).
    ///
    /// ```
    /// # use ordo::Ctx;
    /// # async fn nop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// ordo_testkit::Check::workflow("nop", nop, ()).schedules(2).assert();
    /// ```
    pub fn schedules(mut self, schedules: u32) -> Self {
        self.schedules = schedules.max(1);
        self
    }

    /// Whether the result may follow completion order (default
    /// [`Order::Insensitive`]: the same result after any crash).
    ///
    /// ```
    /// # use ordo::Ctx;
    /// # async fn nop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// ordo_testkit::Check::workflow("nop", nop, ()).order(ordo_testkit::Order::Sensitive).assert();
    /// ```
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Recoveries also run under a seeded executor scheduler, which polls ready tasks
    /// in another order than FIFO. Only for workflows whose `ctx.spawn`ed tasks create
    /// no steps: the order those tasks are first polled in numbers their steps, which is
    /// why ordo always runs FIFO.
    ///
    /// ```
    /// # use ordo::Ctx;
    /// async fn two(ctx: Ctx, _: ()) -> Result<(u8, u8), String> {
    ///     let a = ctx.step("a", || async { Ok::<u8, String>(1) });
    ///     let b = ctx.step("b", || async { Ok::<u8, String>(2) });
    ///     let (a, b) = futures::join!(a, b);
    ///     Ok((a?, b?))
    /// }
    /// ordo_testkit::Check::workflow("two", two, ()).reorder_polls().assert();
    /// ```
    pub fn reorder_polls(mut self) -> Self {
        self.reorder_polls = true;
        self
    }

    /// Keeps the journal in sled in a temporary folder, as in production, rather than
    /// in memory (slower: tens of milliseconds a run).
    ///
    /// ```
    /// # use ordo::Ctx;
    /// # async fn nop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// ordo_testkit::Check::workflow("nop", nop, ()).on_sled().schedules(1).assert();
    /// ```
    pub fn on_sled(mut self) -> Self {
        self.journal = JournalKind::Sled;
        self
    }

    /// Answers every live run of step `step` (by name) with `answer()` instead of
    /// running its body, after the step's latency. Recorded, replayed and checked like
    /// a body's outcome; a type other than the one the workflow reads is a
    /// [`DivergenceKind::TypeMismatch`](crate::DivergenceKind::TypeMismatch).
    ///
    /// ```
    /// use ordo::Ctx;
    /// async fn pay(ctx: Ctx, cents: u64) -> Result<String, String> {
    ///     ctx.step("charge", move || async move {
    ///         Err::<String, String>(format!("no network in tests to charge {cents}"))
    ///     })
    ///     .await
    /// }
    /// let check = ordo_testkit::Check::workflow("pay", pay, 500u64)
    ///     .mock("charge", || Ok::<_, String>("receipt-1".to_string()));
    /// assert_eq!(check.assert(), Ok("receipt-1".to_string()));
    /// ```
    pub fn mock<T, Er>(mut self, step: &str, answer: impl Fn() -> Result<T, Er> + 'static) -> Self
    where
        T: Serialize + DeserializeOwned + 'static,
        Er: Serialize + DeserializeOwned + 'static,
    {
        let mock: Mock = Rc::new(move || ordo::encode_step_outcome(&answer()));
        self.mocks.insert(step.to_string(), mock);
        self
    }

    /// Runs the check: the uninterrupted run's result and what was checked, or the
    /// first divergence.
    ///
    /// # Errors
    ///
    /// The first [`Divergence`] found; its `Display` is the report (what, in which
    /// run, which seed).
    ///
    /// ```
    /// # use ordo::Ctx;
    /// # async fn nop(_: Ctx, _: ()) -> Result<u8, ()> { Ok(1) }
    /// let passed = ordo_testkit::Check::workflow("nop", nop, ()).run()?;
    /// assert_eq!((passed.result, passed.commits), (Ok(1), 1));
    /// # Ok::<(), ordo_testkit::Divergence>(())
    /// ```
    pub fn run(&self) -> Result<Passed<Result<O, E>>, Divergence> {
        let mocks = Rc::new(self.mocks.clone());
        let first = || Env::for_user(self.seed, Rc::clone(&mocks));
        let recovery = |schedule: u32| self.recovery(schedule, &mocks);
        self.scenario(&first, &recovery, Crashes::Every, self.schedules)
            .map_err(|mut divergence| {
                divergence.seed = Some(self.seed);
                divergence
            })
    }

    /// Runs the check and returns the workflow's result.
    ///
    /// # Panics
    ///
    /// On a divergence, with its report.
    ///
    /// ```
    /// # use ordo::Ctx;
    /// # async fn nop(_: Ctx, _: ()) -> Result<u8, ()> { Ok(1) }
    /// assert_eq!(ordo_testkit::Check::workflow("nop", nop, ()).assert(), Ok(1));
    /// ```
    pub fn assert(&self) -> Result<O, E> {
        match self.run() {
            Ok(passed) => passed.result,
            Err(divergence) => panic!("{divergence}"),
        }
    }

    /// The body of a cargo-fuzz target: `data` chooses the step latencies of the first
    /// run and of the recovery, the crash point and (with
    /// [`reorder_polls`](Check::reorder_polls)) the recovery's executor schedule; one
    /// crash point, one recovery, the same checks as [`Check::run`].
    ///
    /// In `fuzz/fuzz_targets/checkout.rs` of a cargo-fuzz crate:
    ///
    /// ```ignore
    /// #![no_main]
    /// libfuzzer_sys::fuzz_target!(|data: &[u8]| my_app::checkout_check().fuzz(data));
    /// ```
    ///
    /// where `checkout_check()` returns the [`Check`] your tests use. Any bytes are an
    /// input, so `cargo test` can run the same body over seeded or proptest inputs:
    ///
    /// ```
    /// # use ordo::Ctx;
    /// # async fn nop(_: Ctx, _: ()) -> Result<u8, ()> { Ok(1) }
    /// let check = ordo_testkit::Check::workflow("nop", nop, ());
    /// for data in [&b""[..], b"\x07\x80\x01\x02\x03", b"any bytes at all"] {
    ///     check.fuzz(data);
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// On a divergence, with its report and the input bytes.
    pub fn fuzz(&self, data: &[u8]) {
        let mut bytes = data.iter().copied();
        let mut next = || bytes.next().unwrap_or(0);
        let crash_selector = u64::from(next());
        let n = 1 + next() % 8;
        let mut first_latencies = Vec::new();
        let mut recovery_latencies = Vec::new();
        for _ in 0..n {
            first_latencies.push(latency_of(next()));
            recovery_latencies.push(latency_of(next()));
        }
        let script: Vec<u8> = data
            .iter()
            .skip(1 + 2 * usize::from(n))
            .take(32)
            .copied()
            .collect();
        let mocks = Rc::new(self.mocks.clone());
        let first = || Env::for_user(self.seed, Rc::clone(&mocks)).with_listed(&first_latencies);
        let recovery = |_| {
            let env = Env::for_user(self.seed, Rc::clone(&mocks)).with_listed(&recovery_latencies);
            let scheduler = if self.reorder_polls {
                Scheduler::Scripted(script.clone())
            } else {
                Scheduler::Fifo
            };
            (env, scheduler)
        };
        if let Err(divergence) = self.scenario(&first, &recovery, Crashes::One(crash_selector), 1) {
            panic!("{divergence}\n  fuzz input: {data:?}");
        }
    }

    fn recovery(&self, schedule: u32, mocks: &Rc<HashMap<String, Mock>>) -> (Env, Scheduler) {
        let salt = u64::from(schedule) + 1;
        let env = Env::for_user(mix(self.seed, salt), Rc::clone(mocks));
        let scheduler = if self.reorder_polls {
            Scheduler::Seeded(mix(self.seed ^ 0x5EED, salt))
        } else {
            Scheduler::Fifo
        };
        (env, scheduler)
    }

    fn scenario(
        &self,
        first: &dyn Fn() -> Env,
        recovery: &dyn Fn(u32) -> (Env, Scheduler),
        crashes: Crashes,
        schedules: u32,
    ) -> Result<Passed<Result<O, E>>, Divergence> {
        let register = |b: RuntimeBuilder, _: Env| (self.register)(b);
        let start = |rt: &Runtime| -> Result<LocalBoxFuture<'static, _>, ordo::Error> {
            let handle = rt.start::<&I, O, E>(&self.name, &self.workflow_id, &self.input)?;
            Ok(handle.result().boxed_local())
        };
        let scenario = Scenario {
            subject: Subject {
                register: &register,
                start: &start,
                workflow_id: &self.workflow_id,
            },
            order: self.order,
            first,
            recovery,
            schedules,
            returned: &|_| None,
            journal: self.journal,
        };
        check_scenario(&scenario, crashes)
    }
}

/// A fuzzer byte as a latency: mostly virtual milliseconds, else a few polls.
fn latency_of(byte: u8) -> Latency {
    if byte & 0x80 == 0 {
        Latency::Delay(byte % 41)
    } else {
        Latency::Yields(byte & 0x07)
    }
}
