//! The `ordo` CLI end to end: the quickstart (package `ordo-quickstart`) writes a real
//! journal, the CLI binary reads it; bad journals (missing, locked, corrupt, newer) each
//! get one line on stderr and their own exit code; nothing the CLI does changes the
//! journal.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{files, json, one_line_error, ordo, quickstart_exe, succeeded, text};

use ordo::journal::{
    Batch, Completion, Outcome, SledJournal, Store, WorkflowRecord, SCHEMA_VERSION,
};
use ordo::Durability;
use serde_json::Value;

/// Runs the quickstart on the journal in `data`; `crash_after` makes it abort.
fn quickstart(data: &Path, crash_after: Option<u64>) -> Output {
    let mut cmd = Command::new(quickstart_exe());
    cmd.arg("--data").arg(data);
    if let Some(n) = crash_after {
        cmd.arg("--crash-after").arg(n.to_string());
    }
    let out = cmd.output().expect("run the quickstart");
    match crash_after {
        None => assert!(
            out.status.success(),
            "quickstart failed: {}",
            text(&out.stderr)
        ),
        Some(_) => assert!(!out.status.success(), "quickstart should have crashed"),
    }
    out
}

/// Runs `ordo <args> --data <data>` and expects success; returns stdout.
fn ordo_ok(data: &Path, args: &[&str]) -> String {
    let data = data.to_str().expect("temp paths are UTF-8");
    let mut all = args.to_vec();
    all.extend(["--data", data]);
    succeeded(&all, &ordo(&all))
}

/// Everything the journal at `path` records: each workflow with its completions.
///
/// What "the CLI does not change the journal" means. Not the files' bytes: sled tidies
/// its own files when it opens a database (it extends the log segment and writes a
/// snapshot of its page table), which no reader can avoid with sled 0.34.
fn journal_state(path: &Path) -> Vec<(WorkflowRecord, Vec<Completion>)> {
    let journal = SledJournal::open_existing(path).expect("reopen the journal");
    let workflows = journal.workflows(None).expect("read workflows");
    workflows
        .into_iter()
        .map(|w| {
            let completions = journal.completions(&w.id).expect("read completions");
            (w, completions)
        })
        .collect()
}

/// The step rows of `ordo show` text output: (seq, step id, name, outcome, attempts).
fn timeline(show: &str) -> Vec<(u64, u64, String, String, u32)> {
    let header = show
        .lines()
        .position(|line| line.trim_start().starts_with("SEQ"))
        .expect("a step table");
    show.lines()
        .skip(header + 1)
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| cells[i].parse::<u64>().expect("a number cell");
            (
                num(0),
                num(1),
                cells[2].to_string(),
                cells[3].to_string(),
                num(4) as u32,
            )
        })
        .collect()
}

#[test]
fn list_show_and_stats_read_the_quickstart_journal_without_changing_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("ordo-data");
    quickstart(&data, None);
    let before = journal_state(&data);
    let first_show = ordo_ok(&data, &["show", "order-42", "--json"]);

    // list: one row, id first.
    let list = ordo_ok(&data, &["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with("ID ") && lines[0].contains("STEPS"),
        "{list}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[..4],
        ["order-42", "checkout", "succeeded", "8"],
        "{list}"
    );
    // created and updated as `YYYY-MM-DD HH:MM:SS`, the date being this century's,
    // then the app version (the quickstart gives none).
    assert_eq!(row.len(), 9, "{list}");
    assert_eq!(row[8], "-", "{list}");
    assert!(
        row[4].starts_with("20") && row[4].len() == 10 && row[5].len() == 8,
        "{list}"
    );
    assert!(ordo_ok(&data, &["list", "--status", "pending"]).starts_with("no pending workflows"));
    assert!(ordo_ok(&data, &["list", "--status", "succeeded"]).contains("order-42"));

    // show: the record, then the steps in delivery order.
    let show = ordo_ok(&data, &["show", "order-42"]);
    assert!(
        show.starts_with("workflow   order-42\nname       checkout\nstatus     succeeded\n"),
        "{show}"
    );
    assert!(show.contains("\noutput     Ok ("), "{show}");
    let steps = timeline(&show);
    let seqs: Vec<u64> = steps.iter().map(|s| s.0).collect();
    assert_eq!(seqs, (0..8).collect::<Vec<_>>(), "{show}");
    let names: Vec<&str> = steps.iter().map(|s| s.2.as_str()).collect();
    // The reserves finish in any order, but they are delivered first; the sleep's
    // wake-up time, its firing, the charge; then ship raced against a timeout.
    assert_eq!(
        names[..6],
        [
            "reserve",
            "reserve",
            "reserve",
            "ordo.sleep.until",
            "ordo.sleep",
            "charge"
        ],
        "{show}"
    );
    let mut last_two = names[6..].to_vec();
    last_two.sort_unstable();
    assert_eq!(last_two, ["ordo.sleep.until", "ship"], "{show}");
    let mut reserve_ids: Vec<u64> = steps[..3].iter().map(|s| s.1).collect();
    reserve_ids.sort_unstable();
    assert_eq!(
        reserve_ids,
        [0, 1, 2],
        "reserves are numbered at the call site: {show}"
    );
    assert!(steps.iter().all(|s| s.3 == "Ok" && s.4 == 1), "{show}");

    // --json, checked field by field against the journal itself.
    let journal = SledJournal::open_existing(&data).expect("reopen the journal");
    let record = journal
        .workflow("order-42")
        .expect("read")
        .expect("recorded");
    let completions = journal.completions("order-42").expect("read completions");
    drop(journal);

    let listed = json(&ordo_ok(&data, &["list", "--json"]));
    let listed = listed.as_array().expect("list --json is an array");
    assert_eq!(listed.len(), 1);
    let w = &listed[0];
    assert_eq!(w["id"], "order-42");
    assert_eq!(w["name"], "checkout");
    assert_eq!(w["status"], "succeeded");
    assert_eq!(w["steps"], 8);
    assert_eq!(w["created_ms"], record.created_ms);
    assert_eq!(w["updated_ms"], record.updated_ms);
    assert!(record.created_ms <= record.updated_ms);

    let shown = json(&ordo_ok(&data, &["show", "order-42", "--json"]));
    let r = &shown["record"];
    assert_eq!(r["id"], "order-42");
    assert_eq!(r["name"], "checkout");
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["created_ms"], record.created_ms);
    assert_eq!(r["updated_ms"], record.updated_ms);
    assert_eq!(r["recovery_attempts"], 0);
    assert_eq!(r["input_bytes"], record.input.len());
    let output = record
        .output
        .as_ref()
        .expect("a finished workflow has an output");
    assert_eq!(r["output"]["ok"], true);
    assert_eq!(r["output"]["bytes"], output.bytes().len());
    let json_steps = shown["steps"].as_array().expect("steps array");
    assert_eq!(json_steps.len(), completions.len());
    for (step, c) in json_steps.iter().zip(completions.iter()) {
        assert_eq!(step["seq"], c.seq);
        assert_eq!(step["step_id"], c.step_id);
        assert_eq!(step["name"], c.name.as_str());
        assert_eq!(step["ok"], c.outcome.is_ok());
        assert_eq!(step["attempts"], c.attempts);
        assert_eq!(step["started_ms"], c.started_ms);
        assert_eq!(step["ended_ms"], c.ended_ms);
        assert_eq!(step["output_bytes"], c.outcome.bytes().len());
    }
    // The text timeline is the same one.
    for (row, c) in steps.iter().zip(completions.iter()) {
        assert_eq!(
            (row.0, row.1, row.2.as_str()),
            (c.seq, c.step_id, c.name.as_str())
        );
    }

    // stats.
    let stats = ordo_ok(&data, &["stats"]);
    assert!(stats.contains("workflows    1\n"), "{stats}");
    assert!(stats.contains("  succeeded  1\n"), "{stats}");
    assert!(stats.contains("completions  8\n"), "{stats}");
    assert!(stats.contains("size on disk "), "{stats}");
    let stats = json(&ordo_ok(&data, &["stats", "--json"]));
    assert_eq!(stats["workflows"], 1);
    assert_eq!(stats["succeeded"], 1);
    assert_eq!(stats["pending"], 0);
    assert_eq!(stats["completions"], 8);
    assert!(stats["size_on_disk_bytes"].as_u64().is_some_and(|n| n > 0));

    // An unknown id: one line, exit 3, and the journal still reads the same.
    let err = one_line_error(
        &ordo(&["show", "order-43", "--data", data.to_str().expect("utf-8")]),
        3,
    );
    assert!(err.contains("\"order-43\""), "{err}");

    // Nothing was written: every record as before, the same JSON as the first time.
    assert_eq!(journal_state(&data), before, "the CLI changed the journal");
    assert_eq!(ordo_ok(&data, &["show", "order-42", "--json"]), first_show);
}

#[test]
fn a_crashed_run_shows_as_pending_and_the_resumed_run_as_recovered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("ordo-data");
    quickstart(&data, Some(3));

    let listed = json(&ordo_ok(&data, &["list", "--json"]));
    assert_eq!(listed[0]["status"], "pending");
    let recorded = listed[0]["steps"].as_u64().expect("steps");
    assert!(
        (3..8).contains(&recorded),
        "crashed after 3 committed steps: {listed}"
    );
    let show = ordo_ok(&data, &["show", "order-42"]);
    assert!(show.contains("\noutput     none yet\n"), "{show}");
    assert_eq!(timeline(&show).len() as u64, recorded);
    assert!(ordo_ok(&data, &["list", "--status", "pending"]).contains("order-42"));

    let resumed = text(&quickstart(&data, None).stdout);
    assert!(
        resumed.contains(&format!("replayed {recorded} steps")),
        "{resumed}"
    );

    let shown = json(&ordo_ok(&data, &["show", "order-42", "--json"]));
    assert_eq!(shown["record"]["status"], "succeeded");
    // The resumed run made progress, so its attempt does not count against it.
    assert_eq!(shown["record"]["recovery_attempts"], 0);
    assert_eq!(shown["steps"].as_array().map(Vec::len), Some(8));
}

#[test]
fn a_missing_journal_is_one_line_naming_the_path_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-journal");
    let path = missing.to_str().expect("utf-8");
    for args in [vec!["list"], vec!["show", "order-42"], vec!["stats"]] {
        let mut args = args.clone();
        args.extend(["--data", path]);
        let err = one_line_error(&ordo(&args), 3);
        assert!(err.contains(&format!("no ordo journal at {path}")), "{err}");
    }
    assert!(!missing.exists(), "the CLI must not create a journal");

    // An existing but empty folder is no journal either.
    let err = one_line_error(
        &ordo(&["list", "--data", dir.path().to_str().expect("utf-8")]),
        3,
    );
    assert!(err.contains("no ordo journal at"), "{err}");
}

/// A journal holding workflow `order-7` with two completions, closed again.
fn small_journal(path: &Path) {
    let journal = SledJournal::open(path, Durability::None).expect("create journal");
    let mut batch = Batch::new();
    batch.put_workflow(WorkflowRecord::new(
        "order-7",
        "checkout",
        vec![1, 2, 3],
        1_000,
    ));
    for seq in 0..2 {
        batch.push_completion(
            "order-7",
            Completion {
                seq,
                step_id: seq,
                name: "reserve".into(),
                outcome: Outcome::Ok(vec![7]),
                attempts: 1,
                started_ms: 1_000,
                ended_ms: 1_010,
            },
        );
    }
    journal.commit(&batch).expect("commit");
}

#[test]
fn show_gives_a_workflows_deadline_when_it_has_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    small_journal(dir.path());
    {
        let journal = SledJournal::open(dir.path(), Durability::None).expect("open");
        let mut timed = WorkflowRecord::new("timed", "checkout", vec![1], 1_000);
        timed.deadline_ms = Some(1_700_000_000_000); // 2023-11-14 22:13:20 UTC
        let mut batch = Batch::new();
        batch.put_workflow(timed);
        journal.commit(&batch).expect("commit");
    }
    let show = ordo_ok(dir.path(), &["show", "timed"]);
    assert!(
        show.lines()
            .any(|l| l == "deadline   2023-11-14 22:13:20 UTC"),
        "{show}"
    );
    let shown = json(&ordo_ok(dir.path(), &["show", "timed", "--json"]));
    assert_eq!(shown["record"]["deadline_ms"], 1_700_000_000_000u64);
    // A workflow without one has no such line, and `null` in JSON.
    let show = ordo_ok(dir.path(), &["show", "order-7"]);
    assert!(!show.contains("deadline"), "{show}");
    let shown = json(&ordo_ok(dir.path(), &["show", "order-7", "--json"]));
    assert_eq!(shown["record"]["deadline_ms"], Value::Null);
}

#[test]
fn list_and_stats_show_enqueued_and_delayed_workflows() {
    let dir = tempfile::tempdir().expect("temp dir");
    small_journal(dir.path());
    {
        let journal = SledJournal::open(dir.path(), Durability::None).expect("open");
        let mut batch = Batch::new();
        for (id, status) in [
            ("queued-1", ordo::Status::Enqueued),
            ("queued-2", ordo::Status::Enqueued),
            ("later", ordo::Status::Delayed),
        ] {
            let mut record = WorkflowRecord::new(id, "charge", vec![1], 1_000);
            record.status = status;
            batch.put_workflow(record);
        }
        journal.commit(&batch).expect("commit");
    }
    let stats = json(&ordo_ok(dir.path(), &["stats", "--json"]));
    assert_eq!(
        (
            &stats["workflows"],
            &stats["pending"],
            &stats["enqueued"],
            &stats["delayed"]
        ),
        (
            &Value::from(4),
            &Value::from(1),
            &Value::from(2),
            &Value::from(1)
        )
    );
    let listed = json(&ordo_ok(
        dir.path(),
        &["list", "--status", "enqueued", "--json"],
    ));
    let ids: Vec<&str> = listed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|row| row["id"].as_str())
        .collect();
    assert_eq!(ids, ["queued-1", "queued-2"]);
    let delayed = ordo_ok(dir.path(), &["list", "--status", "delayed"]);
    assert!(
        delayed.contains("later") && !delayed.contains("queued"),
        "{delayed}"
    );
}

#[test]
fn the_cli_reads_a_journal_that_a_running_program_holds_and_never_blocks_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    small_journal(dir.path());
    // A running program holds the journal (sled's exclusive lock) and keeps committing.
    let held = SledJournal::open(dir.path(), Durability::Flush).expect("open journal");
    let mut batch = ordo::journal::Batch::new();
    batch.put_workflow(WorkflowRecord::new("order-8", "checkout", vec![], 0));
    held.commit(&batch).expect("commit");
    let before = files(dir.path());
    for _ in 0..3 {
        let listed = ordo_ok(dir.path(), &["list"]);
        assert!(
            listed.contains("order-7") && listed.contains("order-8"),
            "{listed}"
        );
        assert!(ordo_ok(dir.path(), &["stats"]).contains("workflows    2"));
    }
    assert!(files(dir.path()) == before, "the CLI wrote to the journal");
    drop(held);
    // And the CLI never holds the lock: a program opens the journal right after.
    drop(SledJournal::open(dir.path(), Durability::Flush).expect("reopen while idle"));
}

#[test]
fn a_corrupt_workflow_record_is_one_line_naming_its_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    small_journal(dir.path());
    let journal = SledJournal::open(dir.path(), Durability::None).expect("open journal");
    // Key layout (journal/src/key.rs): `w` then the id. A valid format byte (1) then
    // bytes that are no record.
    journal
        .raw_insert(b"worder-7", &[1, 0xff, 0xff, 0xff])
        .expect("plant garbage");
    drop(journal);

    let path = dir.path().to_str().expect("utf-8");
    for args in [
        vec!["list"],
        vec!["show", "order-7"],
        vec!["stats"],
        vec!["list", "--json"],
    ] {
        let mut args = args.clone();
        args.extend(["--data", path]);
        let err = one_line_error(&ordo(&args), 5);
        assert!(
            err.starts_with("ordo: corrupt journal record at workflow/order-7: "),
            "{err}"
        );
    }
}

#[test]
fn a_corrupt_completion_run_is_one_line_naming_its_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    small_journal(dir.path());
    let journal = SledJournal::open(dir.path(), Durability::None).expect("open journal");
    // Key layout (journal/src/key.rs): `c`, the id's length (u16 BE), the id, then the
    // run's first and last seq (u64 BE). A run of seq 5 whose value is garbage.
    let mut key = vec![b'c'];
    key.extend_from_slice(&7u16.to_be_bytes());
    key.extend_from_slice(b"order-7");
    key.extend_from_slice(&5u64.to_be_bytes());
    key.extend_from_slice(&5u64.to_be_bytes());
    journal
        .raw_insert(&key, b"\x01garbage")
        .expect("plant garbage");
    drop(journal);

    let err = one_line_error(
        &ordo(&[
            "show",
            "order-7",
            "--data",
            dir.path().to_str().expect("utf-8"),
        ]),
        5,
    );
    assert!(
        err.starts_with("ordo: corrupt journal record at workflow/order-7/seq/5: "),
        "{err}"
    );
}

#[test]
fn a_journal_from_a_newer_ordo_is_an_unsupported_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    small_journal(dir.path());
    let journal = SledJournal::open(dir.path(), Durability::None).expect("open journal");
    // The schema version lives under `mschema` as a big-endian u32 (journal/src/codec.rs).
    journal
        .raw_insert(b"mschema", &(SCHEMA_VERSION + 1).to_be_bytes())
        .expect("write a newer schema version");
    drop(journal);

    let path = dir.path().to_str().expect("utf-8");
    let err = one_line_error(&ordo(&["list", "--data", path]), 5);
    assert_eq!(
        err,
        format!(
            "ordo: unsupported journal schema at {path} version {} (this build reads version {SCHEMA_VERSION})",
            SCHEMA_VERSION + 1
        )
    );
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &["list", "--status", "done"][..],
        &[],
        &["show"],
        &["frobnicate"],
    ] {
        let out = ordo(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "ordo {args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"));
    }
    let help = ordo(&["--help"]);
    assert!(help.status.success());
    assert!(text(&help.stdout).contains("Exit codes:"));
}

/// A reader that stops reading (`ordo list | head -1`) is not an error: the CLI exits
/// 0 without a word on stderr (it exited 101 with "internal error: failed printing to
/// stdout").
#[test]
fn a_closed_output_pipe_is_not_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    small_journal(dir.path());
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["--data", dir.path().to_str().expect("utf-8"), "list"])
        .stdout(writer)
        .output()
        .expect("run the ordo binary");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// `--data` naming a file, not a folder: no journal there (exit 3), not an I/O error.
#[test]
fn data_naming_a_file_is_no_journal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "not a journal").expect("write");
    let out = ordo(&["list", "--data", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&file).expect("read"), b"not a journal");
}
