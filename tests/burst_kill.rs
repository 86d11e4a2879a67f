//! A burst of workflows finishing together, SIGKILLed in the middle of its ends.
//!
//! A child process (this test binary, re-invoked on the `burst_child` entry) starts
//! 3,000 workflows of one step at once. Their steps are committed 512 workflows at a
//! time (1,024 on PostgreSQL), and each workflow's end goes in the first commit after
//! its own step's, while the rest of the burst's steps are still queued (as many ends
//! at most per commit). The
//! child parks inside the commit that brings its ends past a chosen count, and the
//! parent SIGKILLs it there, then recovers the journal in-process and checks what a
//! user would notice:
//!
//! - every workflow the child reported finished is finished in the journal;
//! - after recovery, every workflow returns the result an uninterrupted run gives;
//! - a workflow whose step was recorded before the kill never ran its body again;
//!   the others ran it at most twice (once in flight at the kill, once after).
//!
//! Step bodies append `"<workflow id>\n"` to a log file, so runs are counted across
//! processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ordo::{Ctx, Durability, Event, RuntimeBuilder, Status};

mod common;

use common::worker;

/// Carries the child's parameters; its absence makes `burst_child` a no-op.
const CHILD_ENV: &str = "ORDO_BURST_CHILD";
/// The test entry the child runs.
const CHILD_TEST: &str = "burst_child";
/// Prefix of the child's protocol lines (the test harness prints around them).
const TAG: &str = "ORDO ";
/// Workflows of the burst.
const BURST: u64 = 3_000;
/// The child parks in the commit that brings its ends to at least this many: the
/// second commit with ends on sled, the first on PostgreSQL, in the middle of the
/// burst either way.
const HOLD_AT_ENDS: u64 = 600;

fn id(i: u64) -> String {
    format!("burst-{i}")
}

/// One step that logs its run and doubles `n`.
fn register(builder: RuntimeBuilder, log: &Path) -> RuntimeBuilder {
    let log = log.to_path_buf();
    builder.register("double", move |ctx: Ctx, n: u64| {
        let log = log.clone();
        async move {
            ctx.step("double", move || async move {
                let step = ordo::current_step().expect("called inside a step body");
                common::log_body_run(&log, &step.workflow_id);
                Ok::<u64, String>(n * 2)
            })
            .await
        }
    })
}

/// The journal and the body log of a test's `folder`.
fn journal_and_log(folder: &Path) -> (PathBuf, PathBuf) {
    (folder.join("journal"), folder.join("bodies.log"))
}

fn runtime(dir: &Path, log: &Path) -> RuntimeBuilder {
    register(
        ordo_testkit::store::runtime(dir).durability(Durability::Flush),
        log,
    )
}

/// The child process: starts the burst on the journal and body log in the folder named
/// by `ORDO_BURST_CHILD` ([`journal_and_log`]) and reports its ends after each commit;
/// parks inside the commit that brings them to [`HOLD_AT_ENDS`].
#[test]
#[ignore = "the child process of the burst kill test; does nothing when run directly"]
fn burst_child() {
    let Ok(folder) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, log) = journal_and_log(Path::new(&folder));
    let ends = std::cell::Cell::new(0u64);
    let rt = runtime(&dir, &log)
        .observer(move |event| {
            if let Event::Committed { workflows, .. } = event {
                ends.set(ends.get() + *workflows as u64);
                // Once this line is out, the commit it reports is durable.
                println!("{TAG}ends {}", ends.get());
                if ends.get() >= HOLD_AT_ENDS {
                    println!("{TAG}hold");
                    loop {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        })
        .build()
        .expect("child runtime");
    let handles = rt
        .start_many::<_, _, u64, String>("double", (0..BURST).map(|i| (id(i), i)))
        .expect("child start");
    for handle in handles {
        let handle = handle.expect("started");
        rt.block_on(handle.result())
            .expect("child run")
            .expect("workflow succeeds");
    }
    println!("{TAG}done");
}

/// Spawns the child on the journal and body log in `folder`, waits for it to park,
/// SIGKILLs it; the ends it reported.
fn run_child_and_kill(folder: &Path) -> u64 {
    let (child, lines) = worker::spawn(CHILD_TEST, CHILD_ENV, folder);
    let mut ends = None;
    let mut seen = Vec::new();
    for line in lines {
        let Some((_, ours)) = line.split_once(TAG) else {
            continue;
        };
        if ours == "hold" {
            ends = Some(seen.len());
            break;
        }
        seen.push(ours.to_string());
    }
    let Some(parked_after) = ends else {
        worker::kill(child);
        panic!("the child ended without parking; it said {seen:?}");
    };
    worker::kill(child);
    let last = seen[..parked_after]
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("ends "))
        .expect("the child reported its ends");
    last.parse().expect("ends count")
}

/// How many times each workflow's body ran, from a body log.
fn body_runs(log: &Path) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        *runs.entry(line.to_string()).or_insert(0) += 1;
    }
    runs
}

#[test]
fn sigkill_in_the_middle_of_a_burst_of_ends_loses_and_repeats_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, log) = journal_and_log(tmp.path());
    let acknowledged = run_child_and_kill(tmp.path());
    assert!(
        acknowledged >= HOLD_AT_ENDS,
        "parked at {acknowledged} ends"
    );

    // The journal as the child left it.
    let (finished, stepped) = {
        let journal = ordo_testkit::store::open(&dir);
        let finished = journal
            .workflows(Some(Status::Succeeded))
            .expect("workflows readable")
            .len() as u64;
        let mut stepped = Vec::new();
        for i in 0..BURST {
            if !journal
                .completions(&id(i))
                .expect("completions readable")
                .is_empty()
            {
                stepped.push(id(i));
            }
        }
        (finished, stepped)
    };
    // Parked inside the commit that reported them: exactly the acknowledged ends.
    assert_eq!(finished, acknowledged, "ends in the journal");
    assert!(
        (stepped.len() as u64) < BURST,
        "the kill came after every step was recorded ({} of {BURST})",
        stepped.len()
    );
    let before_recovery = body_runs(&log);

    let rt = runtime(&dir, &log).build().expect("journal reopens");
    let report = rt.recover().expect("recover");
    assert!(report.is_clean(), "recovery report: {report:?}");
    let handles = rt
        .start_many::<_, _, u64, String>("double", (0..BURST).map(|i| (id(i), i)))
        .expect("handles to the burst");
    for (i, handle) in (0..BURST).zip(handles) {
        let handle = handle.expect("known workflow");
        assert_eq!(
            rt.block_on(handle.result()).expect("runs to the end"),
            Ok(i * 2),
            "workflow {}",
            id(i)
        );
    }

    let runs = body_runs(&log);
    assert_eq!(runs.len() as u64, BURST, "every body ran");
    for recorded in &stepped {
        assert_eq!(
            runs.get(recorded),
            Some(&1),
            "{recorded}'s step was recorded before the kill; its body ran again"
        );
    }
    for (workflow, &n) in &runs {
        assert!(n <= 2, "{workflow}'s body ran {n} times");
        if n == 2 {
            assert_eq!(
                before_recovery.get(workflow),
                Some(&1),
                "{workflow} ran twice without having been in flight at the kill"
            );
        }
    }
}
