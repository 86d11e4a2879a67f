//! Queues: workflows started under flow control, with no polling.
//!
//! A queue is declared on the builder ([`RuntimeBuilder::queue`](crate::RuntimeBuilder::queue))
//! with its limits ([`QueueOptions`]): how many of its workflows run at once, how many
//! may start per period, whether priorities apply, whether limits apply per partition
//! key. Workflows are put in it with [`Runtime::enqueue`](crate::Runtime::enqueue) or,
//! from a workflow, [`Ctx::enqueue`](crate::Ctx::enqueue) (a recorded step, so a replay
//! enqueues nothing twice).
//!
//! # How it stays durable and fast
//!
//! - An enqueued workflow is a workflow record with status `Enqueued` (or `Delayed`,
//!   until its delay has passed) and a queue entry (its queue, partition, priority and
//!   place), written by the group commit that follows the call. Recovery does not run
//!   it; the queue does.
//! - The queue runs on the runtime's thread, inside the group commit: a commit that
//!   records the end of a queued workflow (a slot freed) also records the start of the
//!   next one (`Enqueued` to `Pending`), and that one is launched as soon as the commit
//!   is durable. Nothing polls: dispatch is part of the commit that frees the slot, and
//!   the only timers are those of a delay or a rate limit that holds work back.
//! - Faster still, on a lane without a rate limit whose limits this worker keeps alone
//!   (one writer): when a queued workflow returns, its slot goes at once to the next
//!   one, which is launched without waiting for its start record. Its first steps run
//!   before the next commit, and that one commit records the end, the start and those
//!   steps (one durability point per wave of a busy queue, not two). Safe because the
//!   `Enqueued` record and entry are durable already: the workflow runs in any case, its
//!   start is committed with (never after) its first completion, and a crash before
//!   that commit leaves the ended workflow pending and the next one enqueued, to run
//!   again like any step in flight at a crash. The slot passes only once the ended
//!   body has returned, so no more bodies run at once than the limit.
//! - A workflow leaves its queue in the commit that records its end (or cancellation):
//!   its entry and its deduplication id go with it.
//! - Order: lowest priority number first, then enqueue order. After a restart the
//!   entries are read back with their places, pending (started) ones count against the
//!   limits, and the rate limiter's window (the start times of its last `limit` starts,
//!   recorded with each start) is honoured.
//!
//! # Many workers
//!
//! On a journal shared by many worker processes (PostgreSQL, see
//! [`multi_worker`](crate::multi_worker)), each worker dispatches the workflows it
//! enqueued, and a queue's `concurrency` and rate limit hold for all workers together:
//! before it starts queued workflows, a worker takes slots for them from the journal
//! ([`Store::admit`](crate::journal::Store::admit), one round trip per lane in that
//! commit), saying how many of the lane it runs, so slots freed by ends go back in the
//! same step. A worker that frees slots tells the others (`NOTIFY`), and one with work
//! held back dispatches at once: still no polling. A dead worker's slots stop counting
//! when its lease is declared expired; the workflows it ran take slots on the worker
//! that takes them over, and those it had enqueued are dispatched there.
//! [`QueueOptions::worker_concurrency`] caps one worker's share.
//!
//! # Determinism
//!
//! `ctx.enqueue` takes one step id at the call; its completion records the id of the
//! workflow it enqueued (or the one its deduplication id found), and is committed
//! together with the enqueued record: exactly once. The queue's own decisions (when a
//! workflow starts) are not part of any workflow's history, so they need no replay.
//!
//! Schedules ([`schedule`]) and debouncing ([`debounce`]) are built on the same
//! records and timers.

pub(crate) mod debounce;
mod dispatch;
mod enqueue;
pub(crate) mod records;
pub(crate) mod schedule;

use std::time::Duration;

/// Whole milliseconds of `d`, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub use debounce::DebounceOptions;
pub(crate) use dispatch::{Dispatched, HandedOver, Queues, Staged};
pub(crate) use enqueue::{duplicate, generated_id};
pub use schedule::MissedTicks;
pub(crate) use schedule::Schedule;

/// The limits of a queue, given to [`RuntimeBuilder::queue`](crate::RuntimeBuilder::queue).
///
/// With no limit set, a queue starts everything at once (it still records order and
/// deduplicates).
///
/// ```
/// use std::time::Duration;
/// let payments = ordo::QueueOptions::new()
///     .concurrency(3)
///     .rate_limit(10, Duration::from_secs(1))
///     .priority()
///     .partitioned();
/// # let _ = payments;
/// ```
#[derive(Debug, Clone, Default)]
pub struct QueueOptions {
    pub(crate) concurrency: Option<usize>,
    pub(crate) rate: Option<(usize, Duration)>,
    pub(crate) priority: bool,
    pub(crate) partitioned: bool,
    pub(crate) worker_concurrency: Option<usize>,
}

impl QueueOptions {
    /// A queue with no limits.
    ///
    /// ```
    /// let options = ordo::QueueOptions::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Self {
        QueueOptions::default()
    }

    /// At most `n` workflows of the queue run at once (per partition key, if
    /// partitioned), on all the workers of a shared journal together. `0` is taken as
    /// 1.
    ///
    /// ```
    /// let options = ordo::QueueOptions::new().concurrency(3);
    /// # let _ = options;
    /// ```
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }

    /// At most `limit` workflows start in any window of `period` (per partition key, if
    /// partitioned). The window survives restarts. `0` is taken as 1.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = ordo::QueueOptions::new().rate_limit(50, Duration::from_secs(60));
    /// # let _ = options;
    /// ```
    pub fn rate_limit(mut self, limit: usize, period: Duration) -> Self {
        self.rate = Some((limit.max(1), period));
        self
    }

    /// At most `n` workflows of the queue run at once on this worker (per partition
    /// key, if partitioned), under [`concurrency`](Self::concurrency) for all workers
    /// together: what one process can take on. With one process (sled) it is one more
    /// cap like `concurrency`. `0` is taken as 1.
    ///
    /// ```
    /// // Ten at once across the service, at most four on any one machine.
    /// let options = ordo::QueueOptions::new().concurrency(10).worker_concurrency(4);
    /// # let _ = options;
    /// ```
    pub fn worker_concurrency(mut self, n: usize) -> Self {
        self.worker_concurrency = Some(n.max(1));
        self
    }

    /// Enables priorities: [`EnqueueOptions::priority`] orders the queue (lower number
    /// first, enqueue order within a priority). Without it, a priority is refused.
    ///
    /// ```
    /// let options = ordo::QueueOptions::new().priority();
    /// # let _ = options;
    /// ```
    pub fn priority(mut self) -> Self {
        self.priority = true;
        self
    }

    /// The limits apply per partition key (say, per customer): every enqueue must give
    /// one ([`EnqueueOptions::partition`]).
    ///
    /// ```
    /// let options = ordo::QueueOptions::new().concurrency(1).partitioned();
    /// # let _ = options;
    /// ```
    pub fn partitioned(mut self) -> Self {
        self.partitioned = true;
        self
    }
}

/// What a second enqueue with a deduplication id in use gets.
///
/// ```
/// assert_eq!(ordo::OnDuplicate::default(), ordo::OnDuplicate::Reject);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnDuplicate {
    /// [`Error::Duplicate`](crate::Error::Duplicate), naming the workflow that holds it.
    #[default]
    Reject,
    /// The workflow that holds it (its handle, or its id from a workflow).
    ReturnExisting,
}

/// Options of one enqueue.
///
/// ```
/// use std::time::Duration;
/// let options = ordo::EnqueueOptions::new()
///     .id("invoice-42")
///     .priority(1)
///     .delay(Duration::from_secs(30))
///     .partition("customer-7")
///     .dedup("invoice-42", ordo::OnDuplicate::ReturnExisting);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    pub(crate) id: Option<String>,
    pub(crate) priority: u32,
    pub(crate) delay: Duration,
    pub(crate) partition: Option<String>,
    pub(crate) dedup: Option<(String, OnDuplicate)>,
}

impl EnqueueOptions {
    /// Default options: a generated id, priority 0, no delay, no partition, no
    /// deduplication.
    ///
    /// ```
    /// let options = ordo::EnqueueOptions::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Self {
        EnqueueOptions::default()
    }

    /// The workflow's id. An enqueue under an id already recorded (with the same
    /// workflow name) is that workflow, as a start is.
    ///
    /// ```
    /// let options = ordo::EnqueueOptions::new().id("report-2026-12");
    /// # let _ = options;
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Its priority in a queue with priorities: lower starts first. Default 0.
    ///
    /// ```
    /// let urgent = ordo::EnqueueOptions::new().priority(0);
    /// let later = ordo::EnqueueOptions::new().priority(10);
    /// # let _ = (urgent, later);
    /// ```
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// It may not start before `delay` has passed (status `Delayed` until then). The
    /// time it may start is recorded, so a restart does not reset the delay.
    ///
    /// ```
    /// let options = ordo::EnqueueOptions::new().delay(std::time::Duration::from_secs(60));
    /// # let _ = options;
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Its partition key, in a partitioned queue: the limits apply per key.
    ///
    /// ```
    /// let options = ordo::EnqueueOptions::new().partition("customer-7");
    /// # let _ = options;
    /// ```
    pub fn partition(mut self, key: impl Into<String>) -> Self {
        self.partition = Some(key.into());
        self
    }

    /// A deduplication id: one enqueued or running workflow per queue and id. A second
    /// enqueue with it, while the first has not finished, gets what `on_duplicate`
    /// says. Once the first finishes, the id is free again.
    ///
    /// ```
    /// let options = ordo::EnqueueOptions::new().dedup("user-9-welcome", ordo::OnDuplicate::Reject);
    /// # let _ = options;
    /// ```
    pub fn dedup(mut self, dedup_id: impl Into<String>, on_duplicate: OnDuplicate) -> Self {
        self.dedup = Some((dedup_id.into(), on_duplicate));
        self
    }
}
