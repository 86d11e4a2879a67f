//! `ordo gc --older-than AGE` on a journal no application holds, checked against the
//! journal afterwards; and the app version in `ordo list` and `ordo show`.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{ordo, text};
use ordo::journal::{Completion, SledJournal, Store, WorkflowRecord};
use ordo::{Clock, Ctx, Durability, Runtime, Status};
use serde_json::Value;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// "job": two steps, then `Ok`, `Err`, or a thousand days' sleep, by `kind`.
async fn job(ctx: Ctx, kind: String) -> Result<u32, String> {
    let a = ctx.step("one", || async { Ok::<_, String>(1u32) }).await?;
    let b = ctx
        .step("two", move || async move { Ok::<_, String>(a + 1) })
        .await?;
    match kind.as_str() {
        "fail" => Err("declined".into()),
        "sleepy" => {
            ctx.sleep(1000 * DAY).await;
            Ok(b)
        }
        _ => Ok(b),
    }
}

/// Runs `jobs` in a process whose (virtual) clock reads `days_ago` days before now,
/// with `version` as the app version.
fn run_jobs(data: &Path, days_ago: u32, version: Option<&str>, jobs: &[(&str, &str)]) {
    let mut b = Runtime::builder()
        .path(data)
        .durability(Durability::None)
        .clock(Clock::Virtual)
        .start_time(SystemTime::now() - DAY * days_ago)
        .register("job", job);
    if let Some(version) = version {
        b = b.app_version(version);
    }
    let rt = b.build().expect("build");
    for (id, kind) in jobs {
        rt.start::<_, u32, String>("job", id, (*kind).to_string())
            .expect("start");
    }
    rt.block_on(ordo::executor::sleep(Duration::from_secs(60)));
}

fn state(data: &Path) -> Vec<(WorkflowRecord, Vec<Completion>)> {
    let journal = SledJournal::open_existing(data).expect("open");
    journal
        .workflows(None)
        .expect("read")
        .into_iter()
        .map(|r| {
            let c = journal.completions(&r.id).expect("read");
            (r, c)
        })
        .collect()
}

fn ordo_in(data: &Path, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--data", data.to_str().expect("UTF-8 temp path")]);
    ordo(&all)
}

fn ok_stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed ({:?}): {}",
        out.status.code(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn gc_deletes_the_old_finished_workflows_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    run_jobs(
        &data,
        40,
        Some("1.0"),
        &[
            ("old-ok", "ok"),
            ("old-fail", "fail"),
            ("old-pending", "sleepy"),
        ],
    );
    run_jobs(&data, 1, Some("1.1"), &[("recent-ok", "ok")]);
    let before = state(&data);
    assert_eq!(before.len(), 4);

    let out = ok_stdout(&ordo_in(&data, &["gc", "--older-than", "30d"]));
    assert!(
        out.starts_with("deleted 2 finished workflow(s) last written before "),
        "{out}"
    );
    assert!(out.ends_with(" UTC (1 commit(s))\n"), "{out}");

    let after = state(&data);
    let ids: Vec<&str> = after.iter().map(|(r, _)| r.id.as_str()).collect();
    assert_eq!(ids, ["old-pending", "recent-ok"]);
    for kept in &after {
        assert!(before.contains(kept), "{} changed", kept.0.id);
    }
    let journal = SledJournal::open_existing(&data).expect("open");
    for gone in ["old-ok", "old-fail"] {
        assert!(journal.workflow(gone).expect("read").is_none());
        assert!(
            journal.completions(gone).expect("read").is_empty(),
            "{gone}"
        );
    }
    for status in Status::ALL {
        journal
            .workflows(Some(status))
            .expect("the status index agrees");
    }
    drop(journal);

    // Again, as JSON: nothing left that old; a shorter age takes the recent one.
    let out = ok_stdout(&ordo_in(&data, &["gc", "--older-than", "30d", "--json"]));
    let json: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (json["deleted"].as_u64(), json["commits"].as_u64()),
        (Some(0), Some(0))
    );
    let out = ok_stdout(&ordo_in(&data, &["gc", "--older-than", "12h", "--json"]));
    let json: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["deleted"], 1);
    let cutoff = json["cutoff_ms"].as_u64().expect("cutoff");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    assert!(now - cutoff >= 12 * 3600 * 1000 && now - cutoff < 13 * 3600 * 1000);
    let ids: Vec<String> = state(&data).into_iter().map(|(r, _)| r.id).collect();
    assert_eq!(ids, ["old-pending"], "pending workflows are never deleted");
}

#[test]
fn gc_refuses_a_held_journal_a_missing_one_and_a_bad_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    run_jobs(&data, 40, None, &[("old-ok", "ok")]);

    let held = SledJournal::open(&data, Durability::None).expect("hold it");
    let out = ordo_in(&data, &["gc", "--older-than", "30d"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is held by another process"),
        "{}",
        text(&out.stderr)
    );
    drop(held);
    assert_eq!(state(&data).len(), 1, "nothing deleted");

    let missing = dir.path().join("missing");
    let out = ordo_in(&missing, &["gc", "--older-than", "30d"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!missing.exists(), "gc must not create a journal");

    for bad in ["30", "thirty", "30y"] {
        let out = ordo_in(&data, &["gc", "--older-than", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: usage error");
    }
    assert_eq!(state(&data).len(), 1);
}

#[test]
fn list_and_show_show_the_app_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    run_jobs(&data, 0, Some("2.4.1"), &[("versioned", "ok")]);
    run_jobs(&data, 0, None, &[("unversioned", "ok")]);

    let list = ok_stdout(&ordo_in(&data, &["list"]));
    let header = list.lines().next().expect("a header");
    assert!(header.contains("VERSION"), "{list}");
    let column = header.find("VERSION").expect("column");
    let cell = |id: &str| {
        let line = list
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}: {list}"));
        line[column..]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(cell("versioned"), "2.4.1");
    assert_eq!(cell("unversioned"), "-");

    let json: Value =
        serde_json::from_str(&ok_stdout(&ordo_in(&data, &["list", "--json"]))).expect("JSON");
    let rows = json.as_array().expect("array");
    assert_eq!(rows[0]["id"], "unversioned");
    assert_eq!(rows[0]["app_version"], Value::Null);
    assert_eq!(rows[1]["app_version"], "2.4.1");

    let show = ok_stdout(&ordo_in(&data, &["show", "versioned"]));
    assert!(show.lines().any(|l| l == "version    2.4.1"), "{show}");
    let show = ok_stdout(&ordo_in(&data, &["show", "unversioned"]));
    assert!(show.lines().any(|l| l == "version    unknown"), "{show}");
    let json: Value = serde_json::from_str(&ok_stdout(&ordo_in(
        &data,
        &["show", "versioned", "--json"],
    )))
    .expect("JSON");
    assert_eq!(json["record"]["app_version"], "2.4.1");
}
