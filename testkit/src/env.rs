//! [`Env`]: the outside world one run's step bodies see: how long each takes, which
//! fail, which steps the test answers itself, and a log of which bodies ran.
//!
//! The kit reaches the bodies of a user's steps through ordo's hidden
//! `RuntimeBuilder::before_step_body` seam: every live body waits for a latency drawn
//! from the run's seed before it starts (or is answered by a mock), and its step id is
//! logged, which is how the checker sees a recorded step run again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures::FutureExt;
use ordo::journal::Outcome;
use ordo::{BeforeStepBody, StepInfo};

/// How long an outside call takes.
///
/// ```
/// use ordo_testkit::{Env, Latency};
/// let env = Env::listed(&[Latency::Delay(5), Latency::Yields(2)], &[]);
/// assert_eq!(env.latency(3), Latency::Yields(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// Milliseconds of virtual time: completions at different instants, so in
    /// different commits.
    Delay(u8),
    /// Polls returning `Pending` (`yield_now`), no time: completions in the same
    /// commit, in an order the scheduler decides.
    Yields(u8),
}

impl Latency {
    /// Takes this long, on the executor's (virtual) clock.
    async fn wait(self) {
        match self {
            Latency::Delay(ms) => ordo_executor::sleep(Duration::from_millis(ms.into())).await,
            Latency::Yields(n) => {
                for _ in 0..n {
                    ordo_executor::yield_now().await;
                }
            }
        }
    }
}

/// Where step bodies' latencies come from.
#[derive(Clone, Debug)]
enum Latencies {
    /// 0..40 ms from a seed and the step's salt (the project's hand-written tests).
    Seeded(u64),
    /// Mostly 0..40 ms, one in five a few yields (same commit, scheduler's order), from
    /// a seed and the step id ([`Check`](crate::Check)).
    Mixed(u64),
    /// `list[salt % len]` (the fuzzers).
    Listed(Rc<[Latency]>),
}

/// A step's answer chosen by the test: the encoded outcome, or why it did not encode.
pub(crate) type Mock = Rc<dyn Fn() -> Result<Outcome, String>>;

/// What a run's step bodies see: their latencies, which of them fail, which steps are
/// mocked, and a log of which step ids ran their body.
///
/// Cheap to clone; clones share the log.
///
/// ```
/// use ordo_testkit::{Env, Latency};
/// let env = Env::with_seed(7);
/// assert!(matches!(env.latency(1), Latency::Delay(ms) if ms < 40));
/// assert!(env.bodies_run().is_empty());
/// ```
#[derive(Clone)]
pub struct Env {
    latencies: Latencies,
    /// `failures[salt % len]`: the body returns `Err`. The same in every run of a
    /// case: the outside world answers the same, only its timing changes.
    failures: Rc<[bool]>,
    /// Whether the kit delays every body itself (a user's workflow), rather than the
    /// body calling [`Env::body`] (the catalogue's shapes).
    delay_bodies: bool,
    /// Steps answered by the test, by name.
    mocks: Rc<HashMap<String, Mock>>,
    /// `(workflow id, step id)` of each body that ran, in start order.
    bodies: Rc<RefCell<Vec<(String, u64)>>>,
    /// What the workflow returned in this run, even when a halt kept it from being
    /// recorded: what a full replay of this run's journal must return.
    returned: Rc<RefCell<Option<Result<String, String>>>>,
}

impl Default for Env {
    fn default() -> Self {
        Env::with_seed(0)
    }
}

/// splitmix64: a well-mixed u64 from a seed and a salt.
pub(crate) fn mix(seed: u64, salt: u64) -> u64 {
    let mut x = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    x
}

impl Env {
    fn new(latencies: Latencies, failures: Rc<[bool]>) -> Self {
        Env {
            latencies,
            failures,
            delay_bodies: false,
            mocks: Rc::default(),
            bodies: Rc::default(),
            returned: Rc::default(),
        }
    }

    /// Seeded 0..40 ms latencies; every body succeeds.
    ///
    /// ```
    /// let env = ordo_testkit::Env::with_seed(1);
    /// assert_eq!(env.latency(5), ordo_testkit::Env::with_seed(1).latency(5));
    /// ```
    pub fn with_seed(seed: u64) -> Self {
        Env::new(Latencies::Seeded(seed), Rc::from(Vec::new()))
    }

    /// Listed latencies and failures, indexed by salt modulo their length.
    ///
    /// ```
    /// use ordo_testkit::{Env, Latency};
    /// let env = Env::listed(&[Latency::Delay(1)], &[false, true]);
    /// assert!(env.fails(1) && !env.fails(2));
    /// ```
    pub fn listed(latencies: &[Latency], failures: &[bool]) -> Self {
        let latencies: Rc<[Latency]> = if latencies.is_empty() {
            Rc::from(vec![Latency::Delay(0)])
        } else {
            Rc::from(latencies)
        };
        Env::new(Latencies::Listed(latencies), Rc::from(failures))
    }

    /// The world of a user's workflow: every live body is delayed by the kit (mostly
    /// 0..40 virtual ms, sometimes a few yields), drawn from `seed` and the step id;
    /// `mocks` answer steps by name.
    pub(crate) fn for_user(seed: u64, mocks: Rc<HashMap<String, Mock>>) -> Self {
        Env {
            delay_bodies: true,
            mocks,
            ..Env::new(Latencies::Mixed(seed), Rc::from(Vec::new()))
        }
    }

    /// The same world with latencies from `list` (a fuzzer's).
    pub(crate) fn with_listed(mut self, list: &[Latency]) -> Self {
        if !list.is_empty() {
            self.latencies = Latencies::Listed(Rc::from(list));
        }
        self
    }

    /// The latency of the body with this salt.
    ///
    /// ```
    /// use ordo_testkit::{Env, Latency};
    /// assert_eq!(Env::listed(&[Latency::Yields(3)], &[]).latency(9), Latency::Yields(3));
    /// ```
    pub fn latency(&self, salt: u64) -> Latency {
        match &self.latencies {
            Latencies::Seeded(seed) => Latency::Delay((mix(*seed, salt) % 40) as u8),
            Latencies::Mixed(seed) => {
                let x = mix(*seed, salt);
                if x % 5 == 0 {
                    Latency::Yields((x / 5 % 4) as u8)
                } else {
                    Latency::Delay((x % 40) as u8)
                }
            }
            Latencies::Listed(list) => list[(salt % list.len() as u64) as usize],
        }
    }

    /// Whether the body with this salt returns `Err`.
    ///
    /// ```
    /// assert!(!ordo_testkit::Env::with_seed(0).fails(3));
    /// ```
    pub fn fails(&self, salt: u64) -> bool {
        !self.failures.is_empty() && self.failures[(salt % self.failures.len() as u64) as usize]
    }

    /// What a catalogue step body does: take its time.
    ///
    /// ```
    /// let env = ordo_testkit::Env::with_seed(3);
    /// ordo::executor::Executor::new().block_on(env.body(1));
    /// ```
    pub async fn body(&self, salt: u64) {
        self.latency(salt).wait().await;
    }

    /// Notes what the workflow is returning (shapes call it last).
    ///
    /// ```
    /// let env = ordo_testkit::Env::default();
    /// env.note_return(&Ok("done".into()));
    /// assert_eq!(env.returned(), Some(Ok("done".to_string())));
    /// ```
    pub fn note_return(&self, result: &Result<String, String>) {
        *self.returned.borrow_mut() = Some(result.clone());
    }

    /// What the workflow returned in this run, if it noted it.
    ///
    /// ```
    /// assert_eq!(ordo_testkit::Env::default().returned(), None);
    /// ```
    pub fn returned(&self) -> Option<Result<String, String>> {
        self.returned.borrow().clone()
    }

    /// The step ids whose body ran, in the order they started (internal steps such
    /// as a durable sleep's included).
    ///
    /// ```
    /// assert!(ordo_testkit::Env::default().bodies_run().is_empty());
    /// ```
    pub fn bodies_run(&self) -> Vec<u64> {
        self.bodies.borrow().iter().map(|(_, step)| *step).collect()
    }

    /// The step ids whose body ran in workflow `workflow_id` (not in its children or
    /// the workflows it talked to), in the order they started.
    ///
    /// ```
    /// assert!(ordo_testkit::Env::default().bodies_run_in("order-42").is_empty());
    /// ```
    pub fn bodies_run_in(&self, workflow_id: &str) -> Vec<u64> {
        self.bodies
            .borrow()
            .iter()
            .filter(|(id, _)| id == workflow_id)
            .map(|(_, step)| *step)
            .collect()
    }

    /// The hook the runtime calls before each live step body: log it, delay it (a
    /// user's step; not ordo's own `ordo.*` steps, whose timing is the point), or
    /// answer it with its mock.
    pub(crate) fn hook(&self) -> BeforeStepBody {
        let env = self.clone();
        Rc::new(move |step: &StepInfo| {
            env.bodies
                .borrow_mut()
                .push((step.workflow_id.clone(), step.step_id));
            let internal = step.name.starts_with("ordo.");
            let latency = (env.delay_bodies && !internal).then(|| env.latency(step.step_id));
            let mock = env.mocks.get(&step.name).cloned();
            let name = step.name.clone();
            async move {
                if let Some(latency) = latency {
                    latency.wait().await;
                }
                let mock = mock?;
                match mock() {
                    Ok(outcome) => Some(outcome),
                    // Reported as the step's panic, naming it.
                    Err(detail) => panic!("the mock of step {name:?} does not encode: {detail}"),
                }
            }
            .boxed_local()
        })
    }
}
