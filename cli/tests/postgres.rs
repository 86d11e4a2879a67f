//! The `ordo` CLI on a PostgreSQL journal (`--postgres URL`, `ORDO_DATABASE_URL`): a
//! worker (`PgJournal`) writes workflows into a throwaway database while the CLI binary
//! lists, shows and counts them; bad URLs, missing and newer schemas each get one line
//! on stderr and their exit code; `cancel`, `resume`, `fork` and `gc` are carried out
//! by the running workers (and are exit code 4 without one); and the
//! CLI's read-only open writes nothing (no worker row, no claim, no fence), checked
//! with `psql`, not through ordo.
//!
//! Every test skips (with a printed line) on a machine without PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{json, one_line_error, succeeded, text};
use ordo::journal::{
    Batch, Completion, Error, Outcome, PgJournal, PgOptions, Status, Store, WorkflowRecord,
    PG_SCHEMA_VERSION,
};
use ordo_testkit::postgres::TestPostgres;

/// The environment variable the CLI (and applications) read the database URL from.
const URL_VAR: &str = "ORDO_DATABASE_URL";

/// Runs `ordo <args>` with `ORDO_DATABASE_URL` unset, or set to `env_url`.
fn ordo_env(args: &[&str], env_url: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordo"));
    cmd.args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove(URL_VAR);
    if let Some(url) = env_url {
        cmd.env(URL_VAR, url);
    }
    cmd.output().expect("run the ordo binary")
}

/// Runs `ordo --postgres <url> <args>` and expects success; returns stdout.
fn ordo_pg(url: &str, args: &[&str]) -> String {
    let mut all = vec!["--postgres", url];
    all.extend(args);
    succeeded(&all, &ordo_env(&all, None))
}

/// Runs `sql` with `psql` (not through ordo) and returns its unaligned, tuples-only
/// output.
fn psql(pg: &TestPostgres, url: &str, sql: &str) -> String {
    pg.query(url, sql)
}

/// Everything a writer could have changed, read with `psql`: the workers (id, name,
/// epoch, liveness, commit count; not the lease, which the live worker's heartbeat
/// renews), each workflow's status, owner and update time, and the completions.
fn snapshot(pg: &TestPostgres, url: &str) -> String {
    psql(
        pg,
        url,
        "SELECT (SELECT count(*) FROM ordo.workers) || ' workers: ' ||
            (SELECT string_agg(id || ':' || name || ':' || epoch || ':' || alive || ':' || commits,
                ', ' ORDER BY id) FROM ordo.workers) || ' | workflows: ' ||
            (SELECT string_agg(id || ':' || status || ':' || coalesce(owner::text, '-') || ':'
                || updated_ms, ', ' ORDER BY id) FROM ordo.workflows) || ' | completions: ' ||
            (SELECT string_agg(workflow_id || '/' || seq || ':' || name, ', '
                ORDER BY workflow_id, seq) FROM ordo.completions)",
    )
}

fn step(seq: u64, name: &str, outcome: Outcome) -> Completion {
    Completion {
        seq,
        step_id: seq + 1,
        name: name.into(),
        outcome,
        attempts: 1 + seq as u32,
        started_ms: 1_700_000_000_000 + seq * 100,
        ended_ms: 1_700_000_000_000 + seq * 100 + 7,
    }
}

fn record(id: &str, status: Status, output: Option<Outcome>) -> WorkflowRecord {
    let mut record = WorkflowRecord::new(id, "checkout", vec![1, 2, 3], 1_700_000_000_000);
    record.status = status;
    record.output = output;
    record.updated_ms = 1_700_000_060_000;
    record.app_version = Some("v7".into());
    record
}

/// A worker on the database at `url` that wrote four workflows in three commits:
/// `order-1` succeeded after `reserve`, `charge`, `ship`; `order-2` pending after
/// `reserve`; `order-3` failed at `charge`; `order-4` cancelled with no step. Keep it
/// alive: the CLI reads while it runs, as while an application runs.
fn worker_with_workflows(url: &str) -> PgJournal {
    let journal = PgOptions::new(url)
        .worker_name("app-1")
        .connect()
        .expect("connect a worker");
    let mut started = Batch::new();
    for id in ["order-1", "order-2", "order-3", "order-4"] {
        started.insert_workflow(WorkflowRecord::new(
            id,
            "checkout",
            vec![1, 2, 3],
            1_700_000_000_000,
        ));
    }
    journal.commit(&started).expect("commit the starts");

    let mut steps = Batch::new();
    steps.push_completion("order-1", step(0, "reserve", Outcome::Ok(vec![1])));
    steps.push_completion("order-1", step(1, "charge", Outcome::Ok(vec![2; 10])));
    steps.push_completion("order-2", step(0, "reserve", Outcome::Ok(vec![1])));
    steps.push_completion("order-3", step(0, "reserve", Outcome::Ok(vec![1])));
    steps.push_completion(
        "order-3",
        step(1, "charge", Outcome::Err(b"declined".to_vec())),
    );
    journal.commit(&steps).expect("commit the steps");

    let mut finished = Batch::new();
    finished.push_completion("order-1", step(2, "ship", Outcome::Ok(vec![3])));
    finished.update_workflow(
        record("order-1", Status::Succeeded, Some(Outcome::Ok(vec![9; 4]))),
        Status::Pending,
    );
    finished.update_workflow(
        record(
            "order-3",
            Status::Failed,
            Some(Outcome::Err(b"declined".to_vec())),
        ),
        Status::Pending,
    );
    finished.update_workflow(record("order-4", Status::Cancelled, None), Status::Pending);
    journal.commit(&finished).expect("commit the outcomes");
    journal
}

/// The rows of `ordo list` text output: (id, status, steps).
fn list_rows(list: &str) -> Vec<(String, String, u64)> {
    let mut lines = list.lines();
    let header = lines.next().expect("a header line");
    assert!(header.starts_with("ID"), "{list}");
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let steps = cells[3].parse().expect("a STEPS number");
            (cells[0].to_string(), cells[2].to_string(), steps)
        })
        .collect()
}

/// The step rows of `ordo show` text output: (seq, step id, name, outcome, attempts).
fn timeline(show: &str) -> Vec<(u64, u64, String, String, u64)> {
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
                num(4),
            )
        })
        .collect()
}

#[test]
fn list_show_and_stats_read_the_postgres_journal_and_write_nothing() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let url = pg.database("cli_reads");
    let worker = worker_with_workflows(&url);
    let before = snapshot(pg, &url);
    assert!(before.starts_with("1 workers: "), "{before}");

    // list: every workflow in id order, with its status and step count.
    let all = list_rows(&ordo_pg(&url, &["list"]));
    let expected = [
        ("order-1", "succeeded", 3),
        ("order-2", "pending", 1),
        ("order-3", "failed", 2),
        ("order-4", "cancelled", 0),
    ];
    assert_eq!(
        all,
        expected
            .iter()
            .map(|(id, status, steps)| (id.to_string(), status.to_string(), *steps))
            .collect::<Vec<_>>()
    );
    let list = ordo_pg(&url, &["list"]);
    assert!(list.contains("2023-11-14 22:13:20"), "created time: {list}");
    assert!(list.contains("v7"), "app version: {list}");

    // list --status: only those.
    assert_eq!(
        list_rows(&ordo_pg(&url, &["list", "--status", "succeeded"])),
        vec![("order-1".to_string(), "succeeded".to_string(), 3)]
    );
    assert_eq!(
        list_rows(&ordo_pg(&url, &["list", "--status", "pending"])),
        vec![("order-2".to_string(), "pending".to_string(), 1)]
    );
    assert_eq!(
        ordo_pg(&url, &["list", "--status", "delayed"]),
        "no delayed workflows\n"
    );

    // list --json: the stable field names; --postgres after the subcommand works too.
    let out = ordo_env(&["list", "--json", "--postgres", &url], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = json(&text(&out.stdout));
    let rows = rows.as_array().expect("a JSON array");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2]["id"], "order-3");
    assert_eq!(rows[2]["status"], "failed");
    assert_eq!(rows[2]["steps"], 2);
    assert_eq!(rows[2]["app_version"], "v7");
    let failed = json(&ordo_pg(&url, &["list", "--status", "failed", "--json"]));
    assert_eq!(failed.as_array().map(Vec::len), Some(1));

    // show: the record and the step timeline in seq order.
    let show = ordo_pg(&url, &["show", "order-1"]);
    assert!(show.starts_with("workflow   order-1\n"), "{show}");
    assert!(show.contains("status     succeeded\n"), "{show}");
    assert!(show.contains("output     Ok (4 B)\n"), "{show}");
    assert_eq!(
        timeline(&show),
        vec![
            (0, 1, "reserve".to_string(), "Ok".to_string(), 1),
            (1, 2, "charge".to_string(), "Ok".to_string(), 2),
            (2, 3, "ship".to_string(), "Ok".to_string(), 3),
        ]
    );
    let failed = ordo_pg(&url, &["show", "order-3"]);
    assert_eq!(timeline(&failed)[1].3, "Err", "{failed}");
    assert!(ordo_pg(&url, &["show", "order-4"]).contains("no steps recorded\n"));

    // show --json.
    let shown = json(&ordo_pg(&url, &["show", "order-3", "--json"]));
    assert_eq!(shown["record"]["id"], "order-3");
    assert_eq!(shown["record"]["status"], "failed");
    assert_eq!(shown["record"]["output"]["ok"], false);
    let steps = shown["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[1]["seq"].clone(), steps[1]["name"].clone()),
        (1.into(), "charge".into())
    );
    assert_eq!(steps[1]["ok"], false);

    // show of an unknown id: exit code 3, as on a folder.
    let err = one_line_error(
        &ordo_env(&["--postgres", &url, "show", "order-99"], None),
        3,
    );
    assert!(err.contains("no workflow with id \"order-99\""), "{err}");

    // stats and stats --json: counts by status, completions, the tables' size.
    let stats = ordo_pg(&url, &["stats"]);
    for line in [
        "workflows    4\n",
        "  pending    1\n",
        "  succeeded  1\n",
        "  failed     1\n",
        "  cancelled  1\n",
        "completions  6\n",
    ] {
        assert!(stats.contains(line), "{line:?} in {stats}");
    }
    assert!(stats.contains("size on disk "), "{stats}");
    let stats = json(&ordo_pg(&url, &["stats", "--json"]));
    assert_eq!(stats["workflows"], 4);
    assert_eq!(stats["succeeded"], 1);
    assert_eq!(stats["pending"], 1);
    assert_eq!(stats["completions"], 6);
    assert!(
        stats["size_on_disk_bytes"].as_u64().is_some_and(|n| n > 0),
        "{stats}"
    );

    // Nothing was written: no worker row, no claim of order-2, no fence, no commit.
    assert_eq!(snapshot(pg, &url), before);
    // The worker was not disturbed: it still commits.
    assert!(!worker.is_fenced());
    let mut more = Batch::new();
    more.push_completion("order-2", step(1, "charge", Outcome::Ok(vec![2])));
    worker.commit(&more).expect("the worker still commits");
    assert_eq!(
        list_rows(&ordo_pg(&url, &["list", "--status", "pending"])),
        vec![("order-2".to_string(), "pending".to_string(), 2)]
    );
}

#[test]
fn ordo_database_url_is_read_when_neither_postgres_nor_data_is_given() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let url = pg.database("cli_env");
    let _worker = worker_with_workflows(&url);

    let out = ordo_env(&["list", "--status", "cancelled"], Some(&url));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        list_rows(&text(&out.stdout)),
        vec![("order-4".to_string(), "cancelled".to_string(), 0)]
    );

    // An explicit --data wins over the environment: that folder, which holds nothing.
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("nothing-here");
    let empty = empty.to_str().expect("utf-8");
    let err = one_line_error(&ordo_env(&["list", "--data", empty], Some(&url)), 3);
    assert!(
        err.starts_with(&format!("ordo: no ordo journal at {empty}")),
        "{err}"
    );

    // --postgres and --data together: a usage error.
    let out = ordo_env(&["list", "--postgres", &url, "--data", empty], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_postgres_journal_that_cannot_be_opened_is_exit_code_3_on_one_line() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    // A port nobody listens on (taken, then given back), with a password that must
    // never be printed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let refused = format!("postgres://postgres:s3cret@127.0.0.1:{port}/orders");
    let err = one_line_error(&ordo_env(&["--postgres", &refused, "list"], None), 3);
    assert!(
        err.starts_with("ordo: cannot open the PostgreSQL journal given by --postgres: "),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
    assert!(err.contains("check that URL"), "{err}");
    assert!(!err.contains("s3cret"), "the password was printed: {err}");

    // The same URL from the environment says so.
    let err = one_line_error(&ordo_env(&["stats"], Some(&refused)), 3);
    assert!(err.contains("given by ORDO_DATABASE_URL"), "{err}");
    assert!(!err.contains("s3cret"), "the password was printed: {err}");

    // Not a URL at all.
    let err = one_line_error(
        &ordo_env(&["--postgres", "postgres://[::1", "list"], None),
        3,
    );
    assert!(err.contains("bad PostgreSQL URL"), "{err}");

    // A database that does not exist.
    let base = pg.database("cli_base");
    let missing = format!("{}_missing", base);
    let err = one_line_error(&ordo_env(&["--postgres", &missing, "show", "x"], None), 3);
    assert!(err.contains("does not exist"), "{err}");

    // A database without an ordo schema: refused, and none was created.
    let err = one_line_error(&ordo_env(&["--postgres", &base, "list"], None), 3);
    assert!(err.contains("no ordo schema in this database"), "{err}");
    assert_eq!(
        psql(pg, &base, "SELECT to_regnamespace('ordo') IS NULL"),
        "t"
    );
}

#[test]
fn a_postgres_journal_of_a_newer_ordo_is_exit_code_5() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let url = pg.database("cli_newer");
    drop(worker_with_workflows(&url));
    psql(
        pg,
        &url,
        "UPDATE ordo.schema_version SET version = version + 1",
    );
    let err = one_line_error(&ordo_env(&["--postgres", &url, "list"], None), 5);
    assert_eq!(
        err,
        format!(
            "ordo: cannot open the PostgreSQL journal given by --postgres: unsupported \
             PostgreSQL journal schema version {} (this build reads version {PG_SCHEMA_VERSION})",
            PG_SCHEMA_VERSION + 1
        )
    );
    // Not migrated back.
    assert_eq!(
        psql(pg, &url, "SELECT version FROM ordo.schema_version"),
        (PG_SCHEMA_VERSION + 1).to_string()
    );
}

#[test]
fn without_a_running_worker_cancel_resume_fork_and_gc_are_exit_code_4_and_change_nothing() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let url = pg.database("cli_no_worker");
    // A journal's worker row, but no application serving requests.
    let _worker = worker_with_workflows(&url);
    let before = snapshot(pg, &url);
    let asked: Vec<_> = [
        ("cancel", &["cancel", "order-2", "--children"][..]),
        ("resume", &["resume", "order-4"]),
        ("fork", &["fork", "order-1", "--at", "1"]),
        ("gc", &["gc", "--older-than", "1s"]),
    ]
    .into_iter()
    .map(|(verb, args)| {
        let mut all = vec!["--postgres".to_string(), url.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        std::thread::spawn(move || {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            (verb, ordo_env(&all, None))
        })
    })
    .collect();
    for asked in asked {
        let (verb, out) = asked.join().unwrap();
        let err = one_line_error(&out, 4);
        assert!(
            err.starts_with(&format!(
                "ordo: `ordo {verb}` on the PostgreSQL journal given by --postgres: no worker answered"
            )),
            "{err}"
        );
        assert!(err.contains("start one"), "{err}");
    }
    assert_eq!(snapshot(pg, &url), before);
    assert_eq!(psql(pg, &url, "SELECT count(*) FROM ordo.requests"), "0");
}

async fn sleepy(ctx: ordo::Ctx, _: ()) -> Result<u32, String> {
    let first = ctx
        .step("first", || async { Ok::<_, String>(1u32) })
        .await?;
    ctx.sleep(std::time::Duration::from_secs(3_600)).await;
    Ok(first)
}

async fn quick(ctx: ordo::Ctx, n: u32) -> Result<u32, String> {
    let a = ctx
        .step("a", move || async move { Ok::<_, String>(n) })
        .await?;
    let b = ctx
        .step("b", move || async move { Ok::<_, String>(a + 1) })
        .await?;
    Ok(a + b)
}

/// A worker application on the database at `url`, serving until the test ends.
fn serve_worker(url: &str, name: &'static str, started: std::sync::mpsc::Sender<()>) {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = ordo::Runtime::builder()
            .postgres_with(PgOptions::new(&url).worker_name(name))
            .register("sleepy", sleepy)
            .register("quick", quick)
            .build()
            .unwrap();
        rt.recover().unwrap();
        if name == "a" {
            rt.start::<_, u32, String>("sleepy", "sleepy-1", ())
                .unwrap();
            let done = rt
                .start::<_, u32, String>("quick", "quick-1", 4u32)
                .unwrap();
            assert_eq!(rt.block_on(done.result()).unwrap(), Ok(9));
        }
        started.send(()).unwrap();
        rt.block_on(futures::future::pending::<()>());
    });
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let began = std::time::Instant::now();
    while !done() {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn cancel_resume_fork_and_gc_on_postgres_are_carried_out_by_the_workers() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let url = pg.database("cli_workers");
    let (started, ready) = std::sync::mpsc::channel();
    serve_worker(&url, "a", started.clone());
    serve_worker(&url, "b", started);
    for _ in 0..2 {
        ready
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("both workers started");
    }
    let status = |id: &str| {
        psql(
            pg,
            &url,
            &format!("SELECT status FROM ordo.workflows WHERE id = '{id}'"),
        )
    };
    // `sleepy-1` sleeps on worker a: the cancel is a's to serve, and stops it there.
    assert_eq!(status("sleepy-1"), "0");
    assert_eq!(
        ordo_pg(&url, &["cancel", "sleepy-1"]),
        "cancelled sleepy-1\n"
    );
    assert_eq!(status("sleepy-1"), "3", "cancelled");
    // Resumed: recorded steps replay, and it sleeps again.
    assert_eq!(ordo_pg(&url, &["resume", "sleepy-1"]), "resumed sleepy-1\n");
    assert_eq!(status("sleepy-1"), "0", "pending again");
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT count(*) FROM ordo.completions WHERE workflow_id = 'sleepy-1' AND name = 'first'"
        ),
        "1",
        "the recorded step did not run again"
    );
    // A fork of the finished `quick-1` after its first step runs the rest on a worker.
    let forked = json(&ordo_pg(
        &url,
        &["fork", "quick-1", "--at", "1", "--id", "quick-2", "--json"],
    ));
    assert_eq!(forked["forked"], "quick-2");
    wait_until("the fork to finish", || status("quick-2") == "1");
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT string_agg(name, ',' ORDER BY seq) FROM ordo.completions
                 WHERE workflow_id = 'quick-2'"
        ),
        "a,b"
    );
    // gc: both finished workflows go; the pending one stays.
    let collected = json(&ordo_pg(&url, &["gc", "--older-than", "0s", "--json"]));
    assert_eq!(collected["deleted"], 2, "{collected}");
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT string_agg(id, ',' ORDER BY id) FROM ordo.workflows"
        ),
        "sleepy-1"
    );
    // A request the worker refuses comes back as the socket's refusal would.
    let unknown = ordo_env(&["--postgres", &url, "resume", "nobody"], None);
    let err = one_line_error(&unknown, 3);
    assert!(err.contains("nobody"), "{err}");
    assert_eq!(psql(pg, &url, "SELECT count(*) FROM ordo.requests"), "0");
}

#[test]
fn a_read_only_pg_journal_refuses_to_write_and_registers_no_worker() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let url = pg.database("cli_read_only");
    let worker = worker_with_workflows(&url);
    let before = snapshot(pg, &url);

    let reader = PgOptions::new(url.as_str())
        .worker_name("app-1") // ignored: a reader is no worker, it takes no row over
        .read_only()
        .connect()
        .expect("open read-only");
    assert!(reader.is_read_only());
    assert_eq!(reader.worker_name(), "");
    assert_eq!(reader.takeover_interval(), None);
    assert_eq!(
        reader.workflows(Some(Status::Pending)).expect("read").len(),
        1
    );

    let mut batch = Batch::new();
    batch.insert_workflow(WorkflowRecord::new("sneaky", "checkout", vec![], 0));
    let err = reader.commit(&batch).expect_err("a read-only commit");
    let Error::ReadOnly { path } = &err else {
        panic!("not ReadOnly: {err:?}")
    };
    let path = path.to_str().expect("utf-8");
    assert!(path.starts_with("postgres://postgres@127.0.0.1:"), "{path}");
    assert!(err.to_string().ends_with("was opened read-only"), "{err}");
    assert!(matches!(
        reader.commit(&Batch::new()),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.claim_pending(),
        Err(Error::ReadOnly { .. })
    ));
    drop(reader);

    assert_eq!(snapshot(pg, &url), before);
    assert!(!worker.is_fenced());
    assert_eq!(worker.claim_pending().expect("claim").len(), 1);
}
