//! Scheduled workflows on the virtual clock: a day of ticks, restarts that skip or
//! backfill the ticks missed while down, explicit backfills, bad expressions.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ordo::{Clock, Ctx, Error, MissedTicks, Runtime, Status};

/// 2026-01-01T00:00:00Z.
const NEW_YEAR: u64 = 1_767_225_600;
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Returns the tick time it was given, in seconds since the epoch.
async fn report(ctx: Ctx, tick: SystemTime) -> Result<u64, String> {
    let secs = tick
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    ctx.step("write", move || async move { Ok::<_, String>(secs) })
        .await
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn runtime(dir: &Path, start: SystemTime, missed: MissedTicks) -> Runtime {
    ordo_testkit::store::runtime(dir)
        .clock(Clock::Virtual)
        .start_time(start)
        .register("report", report)
        .schedule_with("five", "*/5 * * * *", "report", missed)
        .build()
        .expect("build")
}

/// The tick times (seconds) of the schedule's workflows in the journal, sorted.
fn ticks(rt: &Runtime) -> Vec<u64> {
    let mut ticks: Vec<u64> = rt
        .journal()
        .workflows(None)
        .expect("list")
        .iter()
        .map(|r| {
            let handle = rt.handle::<u64, String>(&r.id).expect("handle");
            rt.block_on(handle.result()).expect("runs").expect("ok")
        })
        .collect();
    ticks.sort_unstable();
    ticks
}

fn every_five_minutes(from: u64, to: u64) -> Vec<u64> {
    (from..=to).step_by(300).collect()
}

#[test]
fn a_day_of_a_five_minute_schedule_starts_288_workflows_once_each() {
    let dir = tempfile::tempdir().expect("temp dir");
    // One second before midnight: the day's ticks are 00:00 to 23:55.
    let rt = runtime(dir.path(), at(NEW_YEAR - 1), MissedTicks::Skip);
    rt.block_on(ordo::executor::sleep(24 * HOUR));
    let ticks = ticks(&rt);
    assert_eq!(ticks.len(), 288);
    assert_eq!(
        ticks,
        every_five_minutes(NEW_YEAR, NEW_YEAR + 24 * 3600 - 300)
    );
    let first = rt
        .journal()
        .workflow("five@2026-01-01T00:00:00Z")
        .expect("read");
    assert_eq!(first.map(|r| r.status), Some(Status::Succeeded));
}

#[test]
fn ticks_missed_while_down_are_skipped_or_backfilled_and_none_runs_twice() {
    for missed in [MissedTicks::Skip, MissedTicks::Backfill] {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            // Up for the first hour (00:00 to 00:55)...
            let rt = runtime(dir.path(), at(NEW_YEAR - 1), missed);
            rt.block_on(ordo::executor::sleep(HOUR - MINUTE));
        }
        // ... down until 03:02, then up for an hour again.
        let rt = runtime(dir.path(), at(NEW_YEAR + 3 * 3600 + 120), missed);
        rt.recover().expect("recover");
        rt.block_on(ordo::executor::sleep(HOUR));
        let got = ticks(&rt);
        let first_hour = every_five_minutes(NEW_YEAR, NEW_YEAR + 3300);
        let after_restart = every_five_minutes(NEW_YEAR + 3 * 3600 + 300, NEW_YEAR + 4 * 3600);
        let expected: Vec<u64> = match missed {
            MissedTicks::Skip => first_hour.into_iter().chain(after_restart).collect(),
            MissedTicks::Backfill => every_five_minutes(NEW_YEAR, NEW_YEAR + 4 * 3600),
        };
        assert_eq!(got, expected, "{missed:?}");
    }
}

#[test]
fn a_backfill_starts_the_ticks_of_a_range_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A second after a tick: none is due while the test runs.
    let rt = runtime(dir.path(), at(NEW_YEAR + 86_401), MissedTicks::Skip);
    let ids = rt
        .backfill("five", at(NEW_YEAR), at(NEW_YEAR + 1800))
        .expect("backfill");
    assert_eq!(ids.len(), 7);
    assert_eq!(ids[6], "five@2026-01-01T00:30:00Z");
    // Again, overlapping: the recorded ticks are not started twice.
    let again = rt
        .backfill("five", at(NEW_YEAR + 1500), at(NEW_YEAR + 2400))
        .expect("backfill");
    assert_eq!(again.len(), 4);
    // Durable with the next commit.
    rt.block_on(ordo::executor::sleep(Duration::from_millis(1)));
    assert_eq!(ticks(&rt), every_five_minutes(NEW_YEAR, NEW_YEAR + 2400));
    // A range reaching past now: only the ticks that have come; the later ones are the
    // schedule's own.
    let day = NEW_YEAR + 86_400;
    let up_to_now = rt
        .backfill("five", at(day - 600), at(day + 3600))
        .expect("backfill");
    assert_eq!(
        up_to_now,
        ["23:50:00", "23:55:00"]
            .iter()
            .map(|t| format!("five@2026-01-01T{t}Z"))
            .chain(["five@2026-01-02T00:00:00Z".to_string()])
            .collect::<Vec<_>>()
    );
    let unknown = rt.backfill("nope", at(NEW_YEAR), at(NEW_YEAR + 60));
    assert!(
        matches!(unknown, Err(Error::InvalidSchedule { .. })),
        "{unknown:?}"
    );
}

#[test]
fn a_malformed_expression_or_a_wrong_input_type_fails_the_build() {
    async fn wrong(_: Ctx, _: u32) -> Result<(), String> {
        Ok(())
    }
    let bad = ordo_testkit::store::temporary()
        .register("report", report)
        .schedule("bad", "every tuesday", "report")
        .build();
    assert!(matches!(bad, Err(Error::InvalidSchedule { .. })));
    let missing = ordo_testkit::store::temporary()
        .schedule("s", "* * * * *", "nobody")
        .build();
    assert!(matches!(missing, Err(Error::UnknownWorkflow { .. })));
    let typed = ordo_testkit::store::temporary()
        .register("wrong", wrong)
        .schedule("s", "* * * * *", "wrong")
        .build();
    assert!(matches!(typed, Err(Error::TypeMismatch { .. })));
    // Two schedules of one name would share their ticks' ids: one would never run.
    let twice = ordo_testkit::store::temporary()
        .register("report", report)
        .schedule("s", "0 * * * *", "report")
        .schedule("s", "30 * * * *", "report")
        .build();
    assert!(matches!(twice, Err(Error::InvalidSchedule { .. })));
}
