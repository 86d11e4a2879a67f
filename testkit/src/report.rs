//! [`Divergence`]: what a check found, where, and how to see it again.

use std::fmt;

/// Which run of a check found a divergence.
///
/// ```
/// use ordo_testkit::RunPoint;
/// let at = RunPoint::Recovery { after_commit: 3, of: 9, schedule: 2 };
/// assert_eq!(at.to_string(), "the recovery (schedule 2) of a crash after commit 3 of 9");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunPoint {
    /// The first run, uninterrupted.
    Uninterrupted,
    /// The uninterrupted run, halted right before recording its end and replayed in
    /// full under other latencies (schedule 0).
    FullReplay,
    /// A run halted right after commit `after_commit` of `of`, as if the process died.
    Crashed {
        /// Commits made before the crash.
        after_commit: u64,
        /// Commits of the uninterrupted run.
        of: u64,
    },
    /// The recovery of such a crash under other latencies (and schedule).
    Recovery {
        /// Commits made before the crash.
        after_commit: u64,
        /// Commits of the uninterrupted run.
        of: u64,
        /// Which recovery schedule (0-based).
        schedule: u32,
    },
    /// What such a recovery recorded, replayed in full with the first latencies.
    ReplayOfRecovery {
        /// Commits made before the crash.
        after_commit: u64,
        /// Commits of the uninterrupted run.
        of: u64,
        /// Which recovery schedule (0-based).
        schedule: u32,
    },
    /// The replay of a workflow found in a saved journal
    /// ([`replay_journal`](crate::replay_journal)).
    SavedJournal,
}

impl fmt::Display for RunPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunPoint::Uninterrupted => write!(f, "the uninterrupted run"),
            RunPoint::FullReplay => write!(f, "the full replay of the uninterrupted run"),
            RunPoint::Crashed { after_commit, of } => {
                write!(f, "the run crashed after commit {after_commit} of {of}")
            }
            RunPoint::Recovery {
                after_commit,
                of,
                schedule,
            } => write!(
                f,
                "the recovery (schedule {schedule}) of a crash after commit {after_commit} of {of}"
            ),
            RunPoint::ReplayOfRecovery {
                after_commit,
                of,
                schedule,
            } => write!(
                f,
                "the full replay of the recovery (schedule {schedule}) of a crash after commit \
                 {after_commit} of {of}"
            ),
            RunPoint::SavedJournal => write!(f, "the replay of the saved journal"),
        }
    }
}

/// What diverged.
///
/// ```
/// use ordo_testkit::DivergenceKind;
/// let kind = DivergenceKind::StepRanAgain { step_id: 4 };
/// assert!(kind.to_string().contains("step 4"));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DivergenceKind {
    /// The code created other steps than the journal recorded
    /// ([`ordo::Error::NonDeterminism`]): it reads a clock, iterates a `HashMap`,
    /// depends on a thread, or a step was renamed.
    NonDeterminism(ordo::Error),
    /// A recorded value does not decode as the type the code reads it as
    /// ([`ordo::Error::TypeMismatch`]).
    TypeMismatch(ordo::Error),
    /// A run failed otherwise: a panic, a journal error, an unregistered workflow.
    Failed(ordo::Error),
    /// The workflow returned something else than the run it is compared with.
    DifferentResult {
        /// What the reference run returned (`Debug`).
        expected: String,
        /// What this run returned (`Debug`).
        found: String,
    },
    /// A step whose outcome was recorded ran its body again.
    StepRanAgain {
        /// Its step id.
        step_id: u64,
    },
    /// A replay of a finished workflow wanted a step the journal does not have: the
    /// code does more now than it did when the journal was written.
    NewStep {
        /// The step's id.
        step_id: u64,
        /// Its name.
        name: String,
    },
    /// Another crash-and-replay property broke: two live runs under the same latencies
    /// recorded different steps (the workflow is not deterministic), or history was
    /// rewritten, or a full replay ran a body or recorded a step (a bug in ordo).
    Property(String),
}

impl DivergenceKind {
    /// Sorts a run's error into the kind that names it best.
    pub(crate) fn of_error(error: ordo::Error) -> DivergenceKind {
        match error {
            ordo::Error::NonDeterminism { .. } => DivergenceKind::NonDeterminism(error),
            ordo::Error::TypeMismatch { .. } => DivergenceKind::TypeMismatch(error),
            _ => DivergenceKind::Failed(error),
        }
    }
}

impl fmt::Display for DivergenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DivergenceKind::NonDeterminism(error)
            | DivergenceKind::TypeMismatch(error)
            | DivergenceKind::Failed(error) => write!(f, "{error}"),
            DivergenceKind::DifferentResult { expected, found } => {
                write!(f, "returned {found}, not {expected}")
            }
            DivergenceKind::StepRanAgain { step_id } => {
                write!(f, "step {step_id} was recorded, and its body ran again")
            }
            DivergenceKind::NewStep { step_id, name } => write!(
                f,
                "the code now runs step {step_id} ({name:?}), which the finished workflow's \
                 journal does not have"
            ),
            DivergenceKind::Property(what) => write!(f, "{what}"),
        }
    }
}

/// A divergence a check found: what, in which run, and how to see it again.
///
/// Its `Display` is the report a failing test prints.
///
/// ```
/// use ordo::Ctx;
/// use ordo_testkit::{Check, DivergenceKind, RunPoint};
///
/// async fn panicky(_: Ctx, _: ()) -> Result<(), String> { panic!("boom") }
///
/// let found = Check::workflow("panicky", panicky, ()).seed(7).run().unwrap_err();
/// assert_eq!(found.workflow_id, "panicky-checked");
/// assert_eq!(found.at, RunPoint::Uninterrupted);
/// assert!(matches!(*found.kind, DivergenceKind::Failed(ordo::Error::Panicked { .. })));
/// let report = found.to_string();
/// assert!(report.contains("boom") && report.contains(".seed(7)"));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Divergence {
    /// The workflow's id.
    pub workflow_id: String,
    /// What diverged (boxed: a `Result<_, Divergence>` stays small).
    pub kind: Box<DivergenceKind>,
    /// In which run.
    pub at: RunPoint,
    /// The check's seed, when it has one: the same check with this seed makes the same
    /// runs (a deterministic workflow diverges the same way again).
    pub seed: Option<u64>,
}

impl Divergence {
    pub(crate) fn new(kind: DivergenceKind, at: RunPoint) -> Self {
        Divergence {
            workflow_id: String::new(),
            kind: Box::new(kind),
            at,
            seed: None,
        }
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "workflow {:?} diverged in {}: {}",
            self.workflow_id, self.at, self.kind
        )?;
        if let Some(seed) = self.seed {
            write!(f, "\n  reproduce: run the same check with `.seed({seed})`")?;
        }
        Ok(())
    }
}

impl std::error::Error for Divergence {}
