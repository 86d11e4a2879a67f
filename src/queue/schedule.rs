//! Scheduled workflows: a cron expression starts a workflow at each tick, exactly once.
//!
//! Each tick starts the schedule's workflow under the id `"<schedule>@<tick time>"`
//! (RFC 3339, UTC), with the tick time as its input (a `SystemTime`). The id is what
//! makes a tick exactly-once: a tick started before a crash is found under its id after
//! the restart, never started again. The last tick started is recorded in the same
//! commit as its start, so a restart knows which ticks it missed while the process was
//! down: they are skipped ([`MissedTicks::Skip`], the default) or started late, oldest
//! first ([`MissedTicks::Backfill`]). While the process runs, no tick is missed: a tick
//! that comes while the runtime is busy is started late, not dropped.
//! [`Runtime::backfill`](crate::Runtime::backfill) starts the ticks of a past range.

use std::rc::{Rc, Weak};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use croner::Cron;

use super::records::{self, TICK};
use crate::core::Core;
use crate::error::Error;
use crate::runtime::Runtime;

/// What a schedule does with the ticks that passed while no process ran it.
///
/// ```
/// assert_eq!(ordo::MissedTicks::default(), ordo::MissedTicks::Skip);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissedTicks {
    /// Skip them: the schedule goes on from the next tick after the restart.
    #[default]
    Skip,
    /// Start each of them at the restart, oldest first (then go on as usual).
    Backfill,
}

/// A schedule as declared on the builder.
#[derive(Clone)]
pub(crate) struct Schedule {
    pub(crate) name: String,
    pub(crate) cron: Cron,
    pub(crate) workflow: String,
    pub(crate) missed: MissedTicks,
}

impl Schedule {
    /// Parses `cron` (five fields, `min hour day-of-month month day-of-week`, or six
    /// with seconds first; UTC).
    pub(crate) fn parse(
        name: &str,
        cron: &str,
        workflow: &str,
        missed: MissedTicks,
    ) -> Result<Schedule, Error> {
        let parsed = Cron::from_str(cron).map_err(|err| Error::InvalidSchedule {
            schedule: name.to_string(),
            reason: err.to_string(),
        })?;
        Ok(Schedule {
            name: name.to_string(),
            cron: parsed,
            workflow: workflow.to_string(),
            missed,
        })
    }

    /// The first tick strictly after `after_ms`, if any.
    fn next_after(&self, after_ms: u64) -> Option<u64> {
        let after = DateTime::<Utc>::from_timestamp_millis(i64::try_from(after_ms).ok()?)?;
        let next = self.cron.find_next_occurrence(&after, false).ok()?;
        u64::try_from(next.timestamp_millis()).ok()
    }

    /// The workflow id of the tick at `tick_ms`.
    pub(crate) fn tick_id(&self, tick_ms: u64) -> String {
        let at = i64::try_from(tick_ms)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map_or_else(
                || tick_ms.to_string(),
                |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            );
        format!("{}@{at}", self.name)
    }
}

fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl Core {
    /// Starts the tick at `tick_ms` of `schedule` (nothing if its id is recorded or
    /// running already), and records it as the schedule's last tick, in one commit.
    fn start_tick(&self, schedule: &Schedule, tick_ms: u64) -> Result<String, Error> {
        let id = schedule.tick_id(tick_ms);
        let registration = self.registry.lookup(&schedule.workflow)?.clone();
        let input = registration.encode_input(&id, &system_time(tick_ms))?;
        self.start_workflow(
            &schedule.workflow,
            &id,
            registration,
            input,
            self.now_ms(),
            crate::deadline::StartOptions::default(),
        )?;
        self.queues.put_record(
            records::key(TICK, &[&schedule.name]),
            records::encode(&tick_ms),
        );
        Ok(id)
    }
}

/// The task that runs `schedule`: from the last tick recorded (or now), sleeps until
/// each tick and starts it.
pub(crate) async fn run(core: Weak<Core>, schedule: Rc<Schedule>) {
    let Some(first) = core.upgrade() else {
        return;
    };
    let now_ms = first.now_ms();
    let last = first
        .store
        .queue_records(&records::key(TICK, &[&schedule.name]))
        .ok()
        .and_then(|found| found.into_iter().next())
        .and_then(|(key, value)| records::decode::<u64>(&key, &value).ok());
    // Ticks strictly after `after` are to be started.
    let mut after = match (last, schedule.missed) {
        (Some(last), MissedTicks::Backfill) => last,
        (Some(last), MissedTicks::Skip) => last.max(now_ms.saturating_sub(1)),
        (None, _) => now_ms.saturating_sub(1),
    };
    drop(first);
    while let Some(tick) = schedule.next_after(after) {
        {
            let Some(core) = core.upgrade() else {
                return;
            };
            let at = core
                .clock
                .instant_at(tick, ordo_executor::now(), Duration::MAX);
            drop(core);
            ordo_executor::sleep_until(at).await;
        }
        let Some(core) = core.upgrade() else {
            return;
        };
        if core.broken().is_some() {
            return;
        }
        if let Err(err) = core.start_tick(&schedule, tick) {
            core.emit(|| crate::event::Event::ScheduleFailed {
                schedule: schedule.name.clone(),
                error: err.to_string(),
            });
        }
        after = tick;
    }
}

impl Runtime {
    /// Starts every tick of schedule `name` from `from` to `to` (both included) that has
    /// not been started: missed ticks, on demand. Returns the ids of the ticks of the
    /// range (started now or before). Does not move the schedule's last tick. Ticks still
    /// to come (after the runtime's clock now) are left to the schedule.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// async fn report(_: Ctx, tick: SystemTime) -> Result<(), String> { Ok(()) }
    /// let rt = Runtime::builder().temporary()
    ///     .schedule("hourly", "0 * * * *", "report")
    ///     .register("report", report)
    ///     .build()?;
    /// let midnight = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01
    /// let ids = rt.backfill("hourly", midnight, midnight + Duration::from_secs(3 * 3600))?;
    /// assert_eq!(ids.len(), 4);
    /// assert_eq!(ids[0], "hourly@2026-01-01T00:00:00Z");
    /// # Ok::<(), ordo::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSchedule`] for a schedule the builder did not declare, and the
    /// errors of a start.
    pub fn backfill(
        &self,
        name: &str,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Vec<String>, Error> {
        let Some(schedule) = self.core.queues.schedule(name) else {
            return Err(Error::InvalidSchedule {
                schedule: name.to_string(),
                reason: "no schedule of this name was declared".into(),
            });
        };
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, super::millis);
        // Only ticks that have come: a future one started now would take the id its
        // own tick starts under, and that tick would then find it done.
        let (from, to) = (ms(from), ms(to).min(self.now_ms()));
        let mut ids = Vec::new();
        let mut after = from.saturating_sub(1);
        while let Some(tick) = schedule.next_after(after).filter(|&t| t <= to) {
            let id = schedule.tick_id(tick);
            let registration = self.core.registry.lookup(&schedule.workflow)?.clone();
            let input = registration.encode_input(&id, &system_time(tick))?;
            self.core.start_workflow(
                &schedule.workflow,
                &id,
                registration,
                input,
                self.now_ms(),
                crate::deadline::StartOptions::default(),
            )?;
            ids.push(id);
            after = tick;
        }
        Ok(ids)
    }
}
