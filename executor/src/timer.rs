//! Timers: the executor's deadline heap and the `sleep` futures that use it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::context;
use crate::local::Local;

/// Names one registered timer: its slot plus the creation number that slot had, so a
/// reused slot is not mistaken for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct TimerKey {
    slot: usize,
    seq: u64,
}

struct TimerSlot {
    seq: u64,
    waker: Waker,
}

/// The executor's timers.
///
/// A min-heap on (deadline, creation number) gives the firing order the design asks for:
/// earliest deadline first, ties in creation order. Cancelled timers leave their heap
/// entry behind (removing from the middle of a heap is costly); it is skipped when it
/// reaches the top because its slot no longer holds the same creation number, and the
/// heap is swept once stale entries outnumber live ones: a workflow that races a step
/// against an hour-long timeout 200,000 times must not keep 200,000 dead timers.
#[derive(Default)]
pub(crate) struct Timers {
    slots: Slab<TimerSlot>,
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    next_seq: u64,
}

impl Timers {
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = self.slots.insert(TimerSlot { seq, waker });
        self.heap.push(Reverse((deadline, seq, slot)));
        TimerKey { slot, seq }
    }

    /// Points a still-pending timer at a new waker; false if the timer is gone (fired).
    /// Returns the replaced waker so it is dropped outside the executor's borrow.
    pub(crate) fn update(&mut self, key: TimerKey, waker: &Waker) -> Result<Option<Waker>, ()> {
        match self.slots.get_mut(key.slot) {
            Some(slot) if slot.seq == key.seq => {
                if slot.waker.will_wake(waker) {
                    Ok(None)
                } else {
                    Ok(Some(std::mem::replace(&mut slot.waker, waker.clone())))
                }
            }
            _ => Err(()),
        }
    }

    /// Forgets a timer; returns its waker (if it had not fired) for dropping outside.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<Waker> {
        let waker = match self.slots.get(key.slot) {
            Some(slot) if slot.seq == key.seq => Some(self.slots.remove(key.slot).waker),
            _ => None,
        };
        // Amortized: a sweep after at least as many cancellations as live timers.
        if self.heap.len() > 2 * self.slots.len() + 64 {
            let slots = &self.slots;
            self.heap
                .retain(|Reverse((_, seq, slot))| slots.get(*slot).is_some_and(|s| s.seq == *seq));
        }
        waker
    }

    /// The earliest pending deadline, discarding cancelled entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, seq, slot))) = self.heap.peek() {
            if self.slots.get(slot).is_some_and(|s| s.seq == seq) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes every timer due at `now`, appending their wakers in firing order.
    pub(crate) fn take_due(&mut self, now: Instant, due: &mut Vec<Waker>) {
        while let Some(&Reverse((deadline, seq, slot))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if self.slots.get(slot).is_some_and(|s| s.seq == seq) {
                due.push(self.slots.remove(slot).waker);
            }
        }
    }

    /// Empties the timers (at shutdown), handing back the wakers to drop outside.
    pub(crate) fn clear(&mut self) -> Vec<Waker> {
        self.heap.clear();
        self.slots.drain().map(|slot| slot.waker).collect()
    }
}

/// A future that completes at a deadline on its executor's clock; see [`sleep`].
///
/// A sleep created inside an executor is bound to it (and its deadline fixed) at
/// creation. One created outside any executor — typically the argument of
/// `ex.block_on(sleep(..))`, evaluated before `block_on` starts — is bound to the
/// executor that first polls it, and a relative duration counts from that first poll.
///
/// ```
/// use std::time::Duration;
/// use ordo_executor::{sleep, Clock, Executor};
///
/// let ex = Executor::builder().clock(Clock::Virtual).build();
/// let start = ex.now();
/// ex.block_on(async {
///     let nap = sleep(Duration::from_secs(90));
///     assert_eq!(nap.deadline(), Some(start + Duration::from_secs(90)));
///     nap.await;
/// });
/// assert_eq!(ex.now() - start, Duration::from_secs(90));
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Sleep {
    /// `None` until bound (see above).
    local: Option<Rc<Local>>,
    deadline: Deadline,
    /// The registered timer, once polled while not yet due.
    timer: Option<TimerKey>,
}

/// `now + duration`, clamped to a century from now: [`sleep`]`(Duration::MAX)` means
/// "as good as forever", not an `Instant` overflow panic (tokio clamps the same way).
///
/// ```
/// use std::time::{Duration, Instant};
/// use ordo_executor::saturating_deadline;
///
/// let now = Instant::now();
/// assert_eq!(saturating_deadline(now, Duration::from_secs(5)), now + Duration::from_secs(5));
/// assert!(saturating_deadline(now, Duration::MAX) > now + Duration::from_secs(3_000_000_000));
/// ```
pub fn saturating_deadline(now: Instant, duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(duration.min(CENTURY))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

#[derive(Clone, Copy, Debug)]
enum Deadline {
    At(Instant),
    /// A `sleep(duration)` created outside an executor: resolved at first poll.
    After(Duration),
}

impl Sleep {
    fn new(deadline: Deadline) -> Self {
        let local = context::try_current();
        let deadline = match (&local, deadline) {
            (Some(local), Deadline::After(duration)) => {
                Deadline::At(saturating_deadline(local.now(), duration))
            }
            (_, deadline) => deadline,
        };
        Sleep {
            local,
            deadline,
            timer: None,
        }
    }

    /// When this sleep completes; `None` for a relative sleep created outside an
    /// executor and not polled yet (its deadline counts from its first poll).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ordo_executor::{now, sleep, Executor};
    ///
    /// assert_eq!(sleep(Duration::from_millis(5)).deadline(), None);
    /// Executor::new().block_on(async {
    ///     let nap = sleep(Duration::from_millis(5));
    ///     assert!(nap.deadline().unwrap() >= now());
    /// });
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        match self.deadline {
            Deadline::At(deadline) => Some(deadline),
            Deadline::After(_) => None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let local = this.local.get_or_insert_with(|| context::current("sleep"));
        let deadline = match this.deadline {
            Deadline::At(deadline) => deadline,
            Deadline::After(duration) => {
                let deadline = saturating_deadline(local.now(), duration);
                this.deadline = Deadline::At(deadline);
                deadline
            }
        };
        if local.now() >= deadline {
            if let Some(key) = this.timer.take() {
                local.cancel_timer(key);
            }
            return Poll::Ready(());
        }
        this.timer = Some(local.register_timer(deadline, this.timer, cx.waker()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let (Some(key), Some(local)) = (self.timer.take(), &self.local) {
            local.cancel_timer(key);
        }
    }
}

/// Waits for `duration` on the executor's clock (virtual or system).
///
/// Created inside an executor (a task, `block_on`, a stall hook) the duration counts
/// from this call; created outside one, from the sleep's first poll.
///
/// # Panics
///
/// When polled outside an executor (e.g. directly by tokio, not through
/// [`Executor::run`](crate::Executor::run)).
///
/// ```
/// use std::time::Duration;
/// use ordo_executor::{sleep, Executor};
///
/// Executor::new().block_on(sleep(Duration::from_millis(1)));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep::new(Deadline::After(duration))
}

/// Waits until `deadline` on the executor's clock.
///
/// # Panics
///
/// When polled outside an executor.
///
/// ```
/// use std::time::Duration;
/// use ordo_executor::{sleep_until, Clock, Executor};
///
/// let ex = Executor::builder().clock(Clock::Virtual).build();
/// let deadline = ex.now() + Duration::from_secs(5);
/// ex.block_on(sleep_until(deadline));
/// assert_eq!(ex.now(), deadline);
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(Deadline::At(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cancelled_timers_do_not_pile_up_in_the_heap() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let far = now + Duration::from_secs(3600);
        let keep = timers.insert(far, futures::task::noop_waker());
        for _ in 0..200_000 {
            let key = timers.insert(far, futures::task::noop_waker());
            assert!(timers.cancel(key).is_some());
        }
        assert!(
            timers.heap.len() <= 2 * timers.slots.len() + 65,
            "{}",
            timers.heap.len()
        );
        // The live timer still fires, and only it.
        let mut due = Vec::new();
        timers.take_due(far, &mut due);
        assert_eq!(due.len(), 1);
        assert!(timers.cancel(keep).is_none());
    }
}
