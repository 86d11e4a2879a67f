//! Upgrading a workflow's code under running workflows with `ctx.patched`, and retiring
//! the patch with `ctx.deprecate_patch`.
//!
//! Version 1 of "order" reserves, charges, ships and notifies. Version 2 adds a fraud
//! check after the reservation, under `ctx.patched("fraud-check")`. Version 3 retires
//! the patch (`deprecate_patch`, the check unconditional); version 4 drops the call.
//!
//! - Workflows that version 1 left past the patch point keep the old path when
//!   version 2 recovers them; those it left before the point, and new ones, take the new
//!   path; a crash under version 2 and another restart change nothing; the finished
//!   journal replays under version 2 without a divergence.
//! - Version 3 recovers version-2 workflows that never reached the point (they run the
//!   check) and ones that recorded the marker (it is taken back); version 4 recovers the
//!   former too, and cannot replay the latter (why `deprecate_patch` exists).

mod common;

use std::path::Path;

use common::{builder, journal_dir, BodyLog};
use ordo::{Ctx, Error, RuntimeBuilder};

/// What the workflow returns: the amount charged, and whether the fraud check ran on
/// its path.
type Receipt = (u32, bool);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    /// No patch.
    V1,
    /// `if ctx.patched("fraud-check") { check }`.
    V2,
    /// `ctx.deprecate_patch("fraud-check"); check`.
    V3,
    /// `check`, the patch call gone.
    V4,
}

/// A step that logs `"<workflow id>:<step name>"` when its body runs, then returns
/// `value`.
fn logged(ctx: &Ctx, log: &BodyLog, name: &str, value: u32) -> ordo::Step<u32, String> {
    let log = log.clone();
    let label = format!("{}:{name}", ctx.workflow_id());
    ctx.step(name, move || async move {
        log.record(label);
        Ok::<_, String>(value)
    })
}

fn register(b: RuntimeBuilder, version: Version, log: &BodyLog) -> RuntimeBuilder {
    let log = log.clone();
    b.register("order", move |ctx: Ctx, amount: u32| {
        let log = log.clone();
        async move {
            let reserved = logged(&ctx, &log, "reserve", amount).await?;
            let check = match version {
                Version::V1 => false,
                Version::V2 => ctx.patched("fraud-check"),
                Version::V3 => {
                    ctx.deprecate_patch("fraud-check");
                    true
                }
                Version::V4 => true,
            };
            if check {
                logged(&ctx, &log, "fraud-check", 0).await?;
            }
            let charged = logged(&ctx, &log, "charge", reserved * 10).await?;
            logged(&ctx, &log, "ship", 0).await?;
            logged(&ctx, &log, "notify", 0).await?;
            Ok::<Receipt, String>((charged, check))
        }
    })
}

/// Runs `version` on `dir`: recovers (with `halt_after` `None`), starts `starts` (id,
/// amount), and stops after `halt_after` progress commits (as if the process died
/// there, and without recovering the others first, so the commits are the starts') or
/// runs everything to the end. Returns each started or recovered workflow's result.
fn process(
    dir: &Path,
    version: Version,
    log: &BodyLog,
    starts: &[(&str, u32)],
    halt_after: Option<u64>,
) -> Vec<(String, Result<Receipt, Error>)> {
    let mut b = register(builder(dir), version, log);
    if let Some(n) = halt_after {
        b = b.halt_after_commits(n);
    }
    let rt = b.build().expect("build");
    let mut ids = Vec::new();
    if halt_after.is_none() {
        let report = rt.recover().expect("recover");
        assert!(report.is_clean(), "{report:?}");
        ids = report.resumed;
    }
    for (id, amount) in starts {
        rt.start::<_, Receipt, String>("order", id, *amount)
            .expect("start");
        ids.push((*id).to_string());
    }
    ids.into_iter()
        .map(|id| {
            let handle = rt.handle::<Receipt, String>(&id).expect("handle");
            let result = rt
                .block_on(handle.result())
                .map(|r| r.expect("the workflow succeeds"));
            (id, result)
        })
        .collect()
}

fn result_of(results: &[(String, Result<Receipt, Error>)], id: &str) -> Receipt {
    match results.iter().find(|(i, _)| i == id) {
        Some((_, Ok(receipt))) => *receipt,
        other => panic!("{id}: {other:?}"),
    }
}

fn runs(log: &BodyLog, id: &str, step: &str) -> usize {
    let label = format!("{id}:{step}");
    log.entries().iter().filter(|e| **e == label).count()
}

/// The recorded step names of `id`, in delivery order.
fn names(dir: &Path, id: &str) -> Vec<String> {
    common::recorded_steps(dir, id)
        .into_iter()
        .map(|(_, name, _)| name)
        .collect()
}

const MARKER: &str = "ordo.patch.fraud-check";

#[test]
fn old_workflows_keep_the_old_path_new_and_not_yet_there_ones_take_the_new_one() {
    let dir = journal_dir();
    let log = BodyLog::default();

    // Version 1: "old" is past the patch point (charged), "early" only reserved.
    let halted = process(dir.path(), Version::V1, &log, &[("old", 1)], Some(2));
    assert!(matches!(halted[0].1, Err(Error::Stopped { .. })));
    assert_eq!(names(dir.path(), "old"), ["reserve", "charge"]);
    process(dir.path(), Version::V1, &log, &[("early", 2)], Some(1));
    assert_eq!(names(dir.path(), "early"), ["reserve"]);

    // Version 2 recovers both, starts "new", and dies after two commits.
    {
        let rt = register(builder(dir.path()).halt_after_commits(2), Version::V2, &log)
            .build()
            .expect("build");
        assert_eq!(rt.recover().expect("recover").resumed, ["early", "old"]);
        let new = rt
            .start::<_, Receipt, String>("order", "new", 3u32)
            .expect("start");
        assert!(matches!(
            rt.block_on(new.result()),
            Err(Error::Stopped { .. })
        ));
    }
    // Another restart of version 2 finishes them.
    let done = process(dir.path(), Version::V2, &log, &[], None);
    assert_eq!(result_of(&done, "old"), (10, false), "old path");
    assert_eq!(
        result_of(&done, "early"),
        (20, true),
        "not yet there: new path"
    );
    assert_eq!(result_of(&done, "new"), (30, true), "new path");

    assert_eq!(runs(&log, "old", "fraud-check"), 0);
    assert_eq!(
        (runs(&log, "old", "reserve"), runs(&log, "old", "charge")),
        (1, 1),
        "recorded steps replayed, not re-run"
    );
    assert_eq!(runs(&log, "early", "reserve"), 1);
    assert!(runs(&log, "early", "fraud-check") >= 1);
    assert!(runs(&log, "new", "fraud-check") >= 1);

    // The journals: the old path has no marker; the new path has it at step id 1, the
    // patch point, before the check.
    assert_eq!(
        names(dir.path(), "old"),
        ["reserve", "charge", "ship", "notify"]
    );
    for id in ["early", "new"] {
        let steps = common::recorded_steps(dir.path(), id);
        let mut by_id: Vec<_> = steps.iter().map(|(s, n, _)| (*s, n.as_str())).collect();
        by_id.sort_unstable();
        assert_eq!(
            by_id,
            [
                (0, "reserve"),
                (1, MARKER),
                (2, "fraud-check"),
                (3, "charge"),
                (4, "ship"),
                (5, "notify")
            ],
            "{id}"
        );
    }

    // Every finished workflow replays under version 2, each on its own path.
    ordo_testkit::store::replay(dir.path(), |b| {
        register(b, Version::V2, &BodyLog::default())
    })
    .expect("replay")
    .assert_clean();
    // Version 1 cannot replay the new path (the marker is where it has "charge").
    let v1 = ordo_testkit::store::replay(dir.path(), |b| {
        register(b, Version::V1, &BodyLog::default())
    })
    .expect("replay");
    let mut diverged: Vec<_> = v1
        .divergences
        .iter()
        .map(|d| d.workflow_id.clone())
        .collect();
    diverged.sort();
    assert_eq!(diverged, ["early", "new"]);
}

#[test]
fn a_retired_patch_still_replays_workflows_that_never_reached_it() {
    let dir = journal_dir();
    let log = BodyLog::default();

    // Version 2: "before-1" and "before-2" die before the patch point (only "reserve"
    // recorded), "passed" dies after recording the marker and the check.
    process(dir.path(), Version::V2, &log, &[("before-1", 1)], Some(1));
    process(dir.path(), Version::V2, &log, &[("before-2", 2)], Some(1));
    for id in ["before-1", "before-2"] {
        assert_eq!(names(dir.path(), id), ["reserve"]);
    }
    let mut passed = Vec::new();
    for halt in 2.. {
        let dir2 = journal_dir();
        process(
            dir2.path(),
            Version::V2,
            &BodyLog::default(),
            &[("p", 4)],
            Some(halt),
        );
        passed = names(dir2.path(), "p");
        if passed.contains(&"fraud-check".to_string()) {
            process(dir.path(), Version::V2, &log, &[("passed", 4)], Some(halt));
            break;
        }
        assert!(halt < 10, "the check never got recorded: {passed:?}");
    }
    let recorded = names(dir.path(), "passed");
    assert_eq!(recorded, passed);
    assert!(recorded.contains(&MARKER.to_string()));
    assert!(!recorded.contains(&"charge".to_string()), "{recorded:?}");

    // Version 4 (the call removed) could not replay "passed": its marker is where the
    // code now has the check.
    let v4 = ordo_testkit::store::replay(dir.path(), |b| {
        register(b, Version::V4, &BodyLog::default())
    })
    .expect("replay");
    let diverged: Vec<_> = v4
        .divergences
        .iter()
        .map(|d| d.workflow_id.as_str())
        .collect();
    assert_eq!(diverged, ["passed"]);

    // Version 3 (retired) recovers both kinds, and a new one.
    let checks_before = runs(&log, "passed", "fraud-check");
    let done = process(dir.path(), Version::V3, &log, &[("fresh", 5)], None);
    assert_eq!(result_of(&done, "before-1"), (10, true));
    assert_eq!(result_of(&done, "before-2"), (20, true));
    assert_eq!(result_of(&done, "passed"), (40, true));
    assert_eq!(result_of(&done, "fresh"), (50, true));
    assert_eq!(
        runs(&log, "passed", "fraud-check"),
        checks_before,
        "the recorded check replayed"
    );
    for id in ["before-1", "before-2", "fresh"] {
        assert_eq!(runs(&log, id, "fraud-check"), 1, "{id}");
        assert!(!names(dir.path(), id).contains(&MARKER.to_string()), "{id}");
    }
    // The retired patch's journal replays under version 3.
    ordo_testkit::store::replay(dir.path(), |b| {
        register(b, Version::V3, &BodyLog::default())
    })
    .expect("replay")
    .assert_clean();

    // Once "passed" is gone (deleted by retention, say), version 4 runs what is left.
    let dir4 = journal_dir();
    process(dir4.path(), Version::V2, &log, &[("late", 6)], Some(1));
    let done = process(dir4.path(), Version::V4, &log, &[], None);
    assert_eq!(result_of(&done, "late"), (60, true));
}
