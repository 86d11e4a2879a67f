//! What the runtime tells an observer: deliveries, commits, finished workflows.

/// One thing the runtime did, passed to the observer set with
/// [`RuntimeBuilder::observer`](crate::RuntimeBuilder::observer).
///
/// Events are emitted on the runtime's thread, in the order things happen: a step's
/// [`Event::Step`] when its outcome is *delivered* to the workflow (live or replayed),
/// [`Event::Committed`] after a group commit is durable.
///
/// ```
/// use ordo::Event;
///
/// let event = Event::Committed { completions: 3, workflows: 1, commit: 7 };
/// assert!(matches!(event, Event::Committed { completions: 3, .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A step's outcome was delivered to its workflow.
    Step {
        /// The workflow.
        workflow_id: String,
        /// The step's call-site number.
        step_id: u64,
        /// The step's name.
        name: String,
        /// Whether the recorded outcome is `Ok`.
        ok: bool,
        /// `true` when the outcome came from the journal (the body did not run now).
        replayed: bool,
    },
    /// A group commit became durable.
    Committed {
        /// Step completions in this commit.
        completions: usize,
        /// Workflow records (finished workflows) in this commit.
        workflows: usize,
        /// How many group commits this runtime has made, this one included.
        commit: u64,
    },
    /// A retention commit deleted finished workflows ([`Runtime::gc`](crate::Runtime::gc),
    /// or the sweep of [`RuntimeBuilder::retention`](crate::RuntimeBuilder::retention)).
    Collected {
        /// Workflows this commit deleted.
        workflows: usize,
    },
    /// A workflow finished and its final status is durable.
    Finished {
        /// The workflow.
        workflow_id: String,
        /// `true` for `Succeeded`, `false` for `Failed`.
        ok: bool,
    },
    /// A schedule's tick could not be started (its workflow is not registered, or its
    /// input type is not `SystemTime`); the schedule goes on with the next tick.
    ScheduleFailed {
        /// The schedule.
        schedule: String,
        /// Why.
        error: String,
    },
}
