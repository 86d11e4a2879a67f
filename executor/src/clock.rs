//! Where the executor's time comes from.

use std::cell::Cell;
use std::time::Instant;

/// The executor's source of time, chosen with [`ExecutorBuilder::clock`](crate::ExecutorBuilder::clock).
///
/// ```
/// use std::time::Duration;
/// use ordo_executor::{sleep, Clock, Executor};
///
/// // An hour of virtual time passes instantly.
/// let ex = Executor::builder().clock(Clock::Virtual).build();
/// let start = ex.now();
/// ex.block_on(sleep(Duration::from_secs(3600)));
/// assert_eq!(ex.now() - start, Duration::from_secs(3600));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// `Instant::now()`; when nothing is ready the executor waits for real.
    #[default]
    System,
    /// Time that only moves when the executor is stalled (no task ready, stall hook
    /// idle): it then jumps to the earliest timer's deadline instead of sleeping. It
    /// starts at the `Instant` the executor was built. `run_until_stalled` never moves
    /// it; `block_on` and `run()` do.
    Virtual,
}

/// The running clock: the kind plus, for a virtual one, the current time.
pub(crate) struct ClockState {
    kind: Clock,
    virtual_now: Cell<Instant>,
}

impl ClockState {
    pub(crate) fn new(kind: Clock) -> Self {
        ClockState {
            kind,
            virtual_now: Cell::new(Instant::now()),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        match self.kind {
            Clock::System => Instant::now(),
            Clock::Virtual => self.virtual_now.get(),
        }
    }

    pub(crate) fn is_virtual(&self) -> bool {
        self.kind == Clock::Virtual
    }

    /// Moves virtual time forward to `deadline` (never backwards).
    pub(crate) fn advance_to(&self, deadline: Instant) {
        if deadline > self.virtual_now.get() {
            self.virtual_now.set(deadline);
        }
    }
}
