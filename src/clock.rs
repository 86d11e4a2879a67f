//! The workflow's wall clock: milliseconds since the UNIX epoch, on the executor's time.
//!
//! Journal records carry wall-clock times (a durable sleep's deadline must mean the same
//! instant after a restart), while the executor sleeps on `Instant`s. With the system
//! clock the two are read directly; with the virtual clock, wall time is a fixed start
//! plus the virtual time elapsed, so an hour-long durable sleep is an hour of *virtual*
//! wall time too.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    /// `Some((start_ms, start))` with the virtual clock: wall time at `start`.
    virtual_origin: Option<(u64, Instant)>,
}

pub(crate) fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl WallClock {
    pub(crate) fn system() -> Self {
        WallClock {
            virtual_origin: None,
        }
    }

    pub(crate) fn virtual_from(start_ms: u64, start: Instant) -> Self {
        WallClock {
            virtual_origin: Some((start_ms, start)),
        }
    }

    /// Wall time in ms now, reading the executor's clock only when it is virtual (the
    /// system clock's wall time is read directly: one clock read per call, not two).
    /// Called inside the executor (a step's start and end, every commit).
    pub(crate) fn now_ms_here(&self) -> u64 {
        match self.virtual_origin {
            None => system_now_ms(),
            Some(_) => self.now_ms(ordo_executor::now()),
        }
    }

    /// Wall time in ms, given the executor's current `Instant`.
    pub(crate) fn now_ms(&self, now: Instant) -> u64 {
        match self.virtual_origin {
            None => system_now_ms(),
            Some((start_ms, start)) => {
                let elapsed = now.saturating_duration_since(start).as_millis();
                start_ms.saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
            }
        }
    }

    /// The executor `Instant` at which wall time reaches `deadline_ms` (now if past), but
    /// never more than `at_most` from now: a durable sleep of `at_most` recorded its
    /// deadline as wall time, and a wall clock set back between two runs must not make
    /// it sleep longer than asked. Far deadlines are clamped, never an overflow.
    pub(crate) fn instant_at(&self, deadline_ms: u64, now: Instant, at_most: Duration) -> Instant {
        let remaining = Duration::from_millis(deadline_ms.saturating_sub(self.now_ms(now)));
        ordo_executor::saturating_deadline(now, remaining.min(at_most))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_wall_time_follows_the_executor_instant() {
        let start = Instant::now();
        let clock = WallClock::virtual_from(1_000_000, start);
        assert_eq!(clock.now_ms(start + Duration::from_secs(2)), 1_002_000);
        let later = start + Duration::from_secs(2);
        let at = clock.instant_at(1_005_000, later, Duration::MAX);
        assert_eq!(at, start + Duration::from_secs(5));
        // A clock set back: the deadline is further than the sleep asked for.
        let at = clock.instant_at(1_005_000, later, Duration::from_secs(1));
        assert_eq!(at, start + Duration::from_secs(3));
        // The far future does not overflow.
        assert!(clock.instant_at(u64::MAX, later, Duration::MAX) > later);
    }
}
