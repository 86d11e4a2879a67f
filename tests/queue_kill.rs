//! Queues and schedules across real SIGKILLs: a rate limiter's window is honoured by
//! the restarted process, a schedule that backfills starts every tick exactly once
//! however often its process is killed, and a crowd of workflows, queued or started
//! directly, killed at random times all finish, with no step re-run but those in flight
//! at a kill.

mod common;

use std::collections::BTreeMap;
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

const CROWD_ENV: &str = "ORDO_QUEUE_KILL_CROWD";
/// Workflows of the random-kill test, and its queue's concurrency.
const CROWD: u32 = 300;
const SLOTS: usize = 20;

/// Two steps, each saying that its body runs and taking a few milliseconds: the window
/// a kill lands in.
async fn crowd_job(ctx: Ctx, n: u32) -> Result<u32, String> {
    steps(ctx, n, 2).await
}

/// Steps of a workflow of the crowd started directly: all of them run at once, so each
/// is longer than a kill's delay, and every run is killed before the crowd is done.
const LONG_STEPS: u32 = 10;

/// [`crowd_job`] with [`LONG_STEPS`] steps.
async fn long_crowd_job(ctx: Ctx, n: u32) -> Result<u32, String> {
    steps(ctx, n, LONG_STEPS).await
}

/// `count` steps `s` returning `n + s`; their sum.
async fn steps(ctx: Ctx, n: u32, count: u32) -> Result<u32, String> {
    let mut sum = 0;
    for s in 0..count {
        sum += ctx
            .step("work", move || async move {
                println!("{TAG}body {n} {s}");
                ordo::executor::sleep(Duration::from_millis(20)).await;
                Ok::<_, String>(n + s)
            })
            .await?;
    }
    Ok(sum)
}

/// The crowd's queue and workflow on the journal in `dir`.
fn crowd_runtime(dir: &str) -> ordo::Runtime {
    ordo_testkit::store::runtime(dir)
        .queue("crowd", QueueOptions::new().concurrency(SLOTS))
        .register("crowd_job", crowd_job)
        .register("long_crowd_job", long_crowd_job)
        .build()
        .expect("crowd runtime")
}

#[test]
#[ignore = "the child process of the random-kill queue test; does nothing when run directly"]
fn crowd_child() {
    if let Ok(dir) = std::env::var(CROWD_ENV) {
        run_crowd(&dir, true);
    }
}

/// Started directly, each workflow holds its record in its `Pending` index entry until
/// its end (see `ordo_journal`'s key layout), as an enqueued one does.
const DIRECT_ENV: &str = "ORDO_START_KILL_CROWD";

#[test]
#[ignore = "the child process of the random-kill start test; does nothing when run directly"]
fn direct_crowd_child() {
    if let Ok(dir) = std::env::var(DIRECT_ENV) {
        run_crowd(&dir, false);
    }
}

/// Recovers, then enqueues (`queued`) or starts the crowd and waits for all of it. The
/// same ids on every run: a second run finds the first run's workflows.
fn run_crowd(dir: &str, queued: bool) {
    let rt = crowd_runtime(dir);
    rt.recover().expect("recover");
    let handles: Vec<_> = (0..CROWD)
        .map(|n| {
            let id = format!("crowd-{n}");
            if queued {
                let options = EnqueueOptions::new().id(id);
                rt.enqueue::<_, u32, String>("crowd", "crowd_job", n, options)
                    .expect("enqueue")
            } else {
                rt.start::<_, u32, String>("long_crowd_job", &id, n)
                    .expect("start")
            }
        })
        .collect();
    println!("{TAG}enqueued");
    for handle in &handles {
        let _ = rt.block_on(handle.result());
    }
    println!("{TAG}all done");
}

/// A child's lines, read on a thread of their own (which ends with them) into a channel.
fn in_background(
    lines: impl Iterator<Item = String> + Send + 'static,
) -> (
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in lines {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (rx, reader)
}

#[test]
fn queued_workflows_killed_at_random_times_all_finish_and_rerun_only_what_was_in_flight() {
    // At most one step body per running workflow, at most SLOTS running at once.
    kill_crowd_at_random(
        "crowd_child",
        CROWD_ENV,
        0x000c_203d,
        5..150,
        2,
        SLOTS as u32,
    );
}

#[test]
fn workflows_started_directly_and_killed_at_random_times_all_finish_once() {
    // All of them run at once, each step 20 ms: a run killed 5 to 60 ms in records a few
    // steps of each. At most one step body of each in flight at a kill.
    kill_crowd_at_random(
        "direct_crowd_child",
        DIRECT_ENV,
        0x5747_2d4b,
        5..60,
        LONG_STEPS,
        CROWD,
    );
}

/// Runs child `child` (its journal folder in `env`) and SIGKILLs it `after` ms (a random
/// number in the range) after its starts, again and again (up to 12 times) until a run
/// finishes the crowd, or a last run is given a minute; then every workflow (of `steps`
/// steps) has succeeded once with the uninterrupted result, every step body ran, and no
/// more bodies ran again than `in_flight` per kill.
fn kill_crowd_at_random(
    child: &str,
    env: &str,
    seed: u64,
    after: std::ops::Range<u64>,
    steps: u32,
    in_flight: u32,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = fastrand::Rng::with_seed(seed);
    // How often each (workflow, step) body ran, over every process.
    let mut runs: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    let parse = |line: &str| -> Option<(u32, u32)> {
        let rest = line.strip_prefix(TAG)?.strip_prefix("body ")?;
        let (n, s) = rest.split_once(' ')?;
        Some((n.parse().ok()?, s.parse().ok()?))
    };
    let mut kills = 0u32;
    let mut done = false;
    for _ in 0..12 {
        let (process, lines) = spawn(child, env, dir.path());
        // The child's lines, read while this thread waits to kill it.
        let (rx, reader) = in_background(lines);
        let mut seen = Vec::new();
        // Until it enqueued (the first run's enqueues, the later runs' lookups).
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
            let enqueued = line.contains("enqueued");
            seen.push(line);
            if enqueued {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.u64(after.clone())));
        kill(process);
        kills += 1;
        reader.join().expect("reader");
        seen.extend(rx.try_iter());
        for line in &seen {
            if let Some(key) = parse(line) {
                *runs.entry(key).or_default() += 1;
            }
            done |= line.contains("all done");
        }
        if done {
            kills -= 1;
            break;
        }
    }
    if !done {
        // The last run, given a minute (a lost or stuck workflow keeps it from ending).
        let (process, lines) = spawn(child, env, dir.path());
        let (rx, _reader) = in_background(lines);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while let Ok(line) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if let Some(key) = parse(&line) {
                *runs.entry(key).or_default() += 1;
            }
            if line.contains("all done") {
                done = true;
                break;
            }
        }
        kill(process);
    }
    assert!(done, "the last process finished the crowd");
    assert!(kills >= 3, "only {kills} processes were killed mid-run");

    // Every workflow finished once, with the uninterrupted result.
    let rt = crowd_runtime(&dir.path().to_string_lossy());
    for n in 0..CROWD {
        let handle = rt
            .handle::<u32, String>(&format!("crowd-{n}"))
            .expect("a workflow per enqueue");
        assert_eq!(handle.status().expect("status"), Status::Succeeded);
        let uninterrupted = steps * n + steps * (steps - 1) / 2;
        let result = rt.block_on(handle.result()).expect("result");
        assert_eq!(result, Ok(uninterrupted), "crowd-{n}");
    }
    // Every body ran; a second run only for one in flight at a kill.
    assert_eq!(
        runs.len(),
        (steps * CROWD) as usize,
        "bodies that ran: {}",
        runs.len()
    );
    let reruns: u32 = runs.values().map(|count| count - 1).sum();
    assert!(
        reruns <= kills * in_flight,
        "{reruns} bodies ran again after {kills} kills, {in_flight} in flight at most"
    );
    // And per workflow: its steps run one after the other, so a kill finds at most one
    // of its bodies in flight.
    let mut by_workflow: BTreeMap<u32, u32> = BTreeMap::new();
    for (&(n, _), &count) in &runs {
        *by_workflow.entry(n).or_default() += count - 1;
    }
    for (n, again) in by_workflow {
        assert!(
            again <= kills,
            "crowd-{n}: {again} bodies ran again after {kills} kills"
        );
    }
}
