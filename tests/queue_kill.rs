//! Queues and schedules across real SIGKILLs: a rate limiter's window is honoured by
//! the restarted process, and a schedule that backfills starts every tick exactly once
//! however often its process is killed.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::worker::{kill, now_ms, spawn};

use ordo::{Ctx, EnqueueOptions, Event, MissedTicks, QueueOptions, Status};

const TAG: &str = "@@queue-kill@@ ";
const RATE_ENV: &str = "ORDO_QUEUE_KILL_RATE";
const CRON_ENV: &str = "ORDO_QUEUE_KILL_CRON";
/// At most 3 starts in any 4 seconds.
const LIMIT: usize = 3;
const PERIOD: Duration = Duration::from_secs(4);

/// Says when its body starts (on the real clock).
async fn limited(ctx: Ctx, n: u32) -> Result<u32, String> {
    ctx.step("call the api", move || async move {
        println!("{TAG}start {n} at {}", now_ms());
        Ok::<_, String>(n)
    })
    .await
}

#[test]
#[ignore = "the child process of the rate-limit kill test; does nothing when run directly"]
fn rate_child() {
    let Ok(dir) = std::env::var(RATE_ENV) else {
        return;
    };
    let rt = ordo_testkit::store::runtime(&dir)
        .queue("api", QueueOptions::new().rate_limit(LIMIT, PERIOD))
        .register("limited", limited)
        .build()
        .expect("child runtime");
    rt.recover().expect("recover");
    // The same ids on every run: a second run finds the first run's enqueues.
    let handles: Vec<_> = (0..2 * LIMIT as u32)
        .map(|n| {
            rt.enqueue::<_, u32, String>(
                "api",
                "limited",
                n,
                EnqueueOptions::new().id(format!("call-{n}")),
            )
            .expect("enqueue")
        })
        .collect();
    for handle in &handles {
        let _ = rt.block_on(handle.result());
    }
    println!("{TAG}all done");
}

#[test]
fn a_rate_limiters_window_is_honoured_after_a_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut starts: Vec<(u32, u64)> = Vec::new();
    let parse = |line: &str| -> Option<(u32, u64)> {
        let rest = line.strip_prefix(TAG)?.strip_prefix("start ")?;
        let (n, at) = rest.split_once(" at ")?;
        Some((n.parse().ok()?, at.parse().ok()?))
    };
    // The first process starts the first wave, and is killed right after.
    let (child, mut lines) = spawn("rate_child", RATE_ENV, dir.path());
    while starts.len() < LIMIT {
        let line = lines.next().expect("the child said its starts");
        starts.extend(parse(&line));
    }
    kill(child);
    // The second one must wait for the first wave to leave the window.
    let (child, lines) = spawn("rate_child", RATE_ENV, dir.path());
    let mut done = false;
    for line in lines {
        starts.extend(parse(&line));
        if line.contains("all done") {
            done = true;
            break;
        }
    }
    kill(child);
    assert!(done, "the second process finished the queue");
    // A body started twice (in flight at the kill) counts from its first start.
    let mut first: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    for (n, at) in starts {
        first
            .entry(n)
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }
    assert_eq!(first.len(), 2 * LIMIT, "{first:?}");
    let mut times: Vec<u64> = first.values().copied().collect();
    times.sort_unstable();
    // Any LIMIT + 1 consecutive starts span at least the period (less the time between
    // a dispatch and its body's first line, a few milliseconds).
    let period = u64::try_from(PERIOD.as_millis()).unwrap_or(u64::MAX);
    for window in times.windows(LIMIT + 1) {
        let span = window[LIMIT] - window[0];
        assert!(
            span + 100 >= period,
            "{} starts within {span} ms: {times:?}",
            LIMIT + 1
        );
    }
    let journal = ordo_testkit::store::read(dir.path());
    let succeeded = journal.workflows(Some(Status::Succeeded)).expect("list");
    assert_eq!(succeeded.len(), 2 * LIMIT);
}

/// A tick's workflow: one step.
async fn tick(ctx: Ctx, at: SystemTime) -> Result<u64, String> {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis();
    ctx.step("note", move || async move {
        Ok::<_, String>(u64::try_from(ms).unwrap_or(0))
    })
    .await
}

#[test]
#[ignore = "the child process of the schedule kill test; does nothing when run directly"]
fn cron_child() {
    let Ok(dir) = std::env::var(CRON_ENV) else {
        return;
    };
    let rt = ordo_testkit::store::runtime(&dir)
        .register("tick", tick)
        .schedule_with("each-second", "* * * * * *", "tick", MissedTicks::Backfill)
        .observer(|event| {
            if let Event::Finished { workflow_id, .. } = event {
                println!("{TAG}finished {workflow_id}");
            }
        })
        .build()
        .expect("child runtime");
    rt.recover().expect("recover");
    futures::executor::block_on(rt.run());
}

#[test]
fn a_backfilling_schedule_starts_every_tick_once_across_sigkills() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for _ in 0..4 {
        let (child, mut lines) = spawn("cron_child", CRON_ENV, dir.path());
        // Until its first tick is done, then a random while longer.
        assert!(
            lines.any(|l| l.contains("finished")),
            "the child ran a tick"
        );
        std::thread::sleep(Duration::from_millis(rng.u64(200..1_800)));
        kill(child);
        // Down for a while: those ticks are backfilled by the next process.
        std::thread::sleep(Duration::from_millis(rng.u64(0..1_500)));
    }
    // A last run long enough to catch up, then read the journal.
    let (child, mut lines) = spawn("cron_child", CRON_ENV, dir.path());
    assert!(lines.any(|l| l.contains("finished")));
    std::thread::sleep(Duration::from_millis(1_500));
    kill(child);
    let journal = ordo_testkit::store::read(dir.path());
    let records = journal.workflows(None).expect("list");
    let mut ticks: Vec<i64> = records
        .iter()
        .map(|r| {
            let at = r.id.strip_prefix("each-second@").expect("a tick id");
            chrono::DateTime::parse_from_rfc3339(at)
                .expect("an RFC 3339 time")
                .timestamp()
        })
        .collect();
    ticks.sort_unstable();
    assert!(ticks.len() >= 5, "{ticks:?}");
    // Every second from the first tick to the last, none twice, none missing.
    let expected: Vec<i64> = (ticks[0]..=ticks[ticks.len() - 1]).collect();
    assert_eq!(ticks, expected);
    // All but the ticks in flight at the last kill have finished.
    let pending = records
        .iter()
        .filter(|r| r.status == Status::Pending)
        .count();
    assert!(pending <= 2, "{pending} pending");
}
