//! ordo on PostgreSQL, side by side with what the same server does without ordo, in one
//! run (a throwaway cluster from `ordo_testkit::postgres`, fsync on, over TCP on
//! 127.0.0.1):
//!
//! - `pgbench` reference: one client inserting rows shaped like `ordo.completions` rows
//!   into a plain table with the same primary key, 1 row per transaction and 64 rows per
//!   transaction (one `INSERT ... SELECT ... FROM generate_series`), prepared
//!   statements, 4 s right before and 4 s right after the ordo workload it is compared
//!   with (a disk's sync latency drifts; the summary shows both runs and uses their
//!   mean). Rows/s = tps x rows per transaction.
//! - `pgbench` behind a per-commit fence: the same inserts, conditioned in one statement
//!   on the update of a worker row that still has its epoch, as ordo's commits other
//!   than completions of known workflows are (those run on a connection fenced as a
//!   whole: see the journal's `session::LOCK_CLASS`); 4 s after the reference's second
//!   run. What an epoch checked in every commit would cost the server with nothing of
//!   ordo around it.
//! - `postgres/sequential_100`: one workflow of 100 sequential steps per iteration (one
//!   completion per commit, plus the start and the finish); `postgres/join_all_64x8`:
//!   one workflow running 8 rounds of 64 steps in a `join_all` (64 completions per
//!   commit). Default durability. Throughput is steps; the summary also gives ordo's
//!   group commits per second next to pgbench's transactions per second.
//! - `postgres/many_64x50`: 64 workflows of 50 sequential steps started together per
//!   iteration (one `Runtime::start_many`, so one read of the journal for the 64): the
//!   group commit gathers one step of each, 64 completions per commit, and the 64
//!   starts and the 64 finishes share a commit each (where `join_all_64x8` spends two
//!   of its ten commits on one workflow's start and finish).
//! - PgJournal alone: right after each runtime workload, the store without the runtime
//!   commits batches of 1 and 64 completions for 4 s, so the gap to pgbench splits
//!   into the store's share and the runtime's; then, for 4 s each, the very batches of
//!   each workload's workflows, one iteration after the other (the starts, the rounds
//!   of completions, the ends): the most ordo could reach on that workload with a
//!   runtime that cost nothing.
//! - The statement alone: a loop of tokio-postgres (the client the journal uses) on
//!   one connection, running for 4 s pgbench's insert of one row, then the journal's
//!   own commit of one completion (`steps_commit_statement`), each prepared once: what
//!   the client library costs next to pgbench, and what ordo's statement costs the
//!   server, without any of ordo's own work.
//! - `sled_sync/...`: the same two workloads on sled with `Durability::Sync`.
//! - Worker processes: 1, 2 and 4 copies of this binary (re-executed with
//!   `ORDO_PG_BENCH_WORKER` set) sharing one database, each starting its share of 1,000
//!   workflows of 10 sequential steps and driving them to the end; total steps/s from
//!   "go" (all runtimes built) to all done, and from spawn to all done.
//! - Takeover: worker `a` (1 s lease) starts 4 workflows that park in a step whose body
//!   never finishes there; worker `b` (1 s lease, already running, past `recover()`)
//!   waits; `a` is SIGKILLed; the time from the kill to the moment `b` runs each
//!   workflow's parked step (after claiming it and replaying its first step).
//!
//! A plain summary table is printed at the end. Without PostgreSQL on the machine the
//! bench prints a "skipped" line and exits 0.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use common::{gathered, sequential, GATHER};

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, SamplingMode, Throughput};
use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::StreamExt;
use ordo::journal::PgOptions;
use ordo::{Ctx, Durability, Runtime, RuntimeBuilder};
use ordo_testkit::postgres::TestPostgres;

/// Set in a child process: `<url>,<index>,<count>,<workflows>` (a throughput worker).
const WORKER_VAR: &str = "ORDO_PG_BENCH_WORKER";
/// Set in a child process: `<a|b>,<url>,<lease ms>,<workflows>` (the takeover workers).
const TAKEOVER_VAR: &str = "ORDO_PG_BENCH_TAKEOVER";

/// Steps of one `sequential` iteration.
const SEQUENTIAL_STEPS: u64 = 100;
/// Rounds of one `gathered` iteration.
const ROUNDS: u64 = 8;
/// Sequential steps of each of the [`GATHER`] workflows of workload [`MANY`].
const MANY_STEPS: u64 = 50;
/// The workload slot of [`GATHER`] workflows of [`MANY_STEPS`] steps started together.
const MANY: usize = 2;
/// Workflows of the multi-worker runs, and steps of each.
const MULTI_WORKFLOWS: u64 = 1_000;
const MULTI_STEPS: u64 = 10;
/// The takeover runs' lease, and how many workflows worker `a` parks.
const TAKEOVER_LEASE: Duration = Duration::from_secs(1);
const TAKEOVER_WORKFLOWS: u64 = 4;
/// How long pgbench runs per batch size.
const PGBENCH_SECONDS: u32 = 4;
/// How long the parent waits for a line from a child before giving up.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

fn main() {
    // Child modes first: criterion must not see (or parse) anything in a child.
    if let Ok(spec) = std::env::var(WORKER_VAR) {
        throughput_worker(&spec);
        return;
    }
    if let Ok(spec) = std::env::var(TAKEOVER_VAR) {
        takeover_worker(&spec);
        return;
    }
    if std::env::args().any(|arg| arg == "--list") {
        let c = Criterion::default().configure_from_args();
        for name in ["postgres", "sled_sync"] {
            for slot in 0..3 {
                println!("{name}/{}: benchmark", workload(slot).0);
            }
        }
        c.final_summary();
        return;
    }
    let Some(pg) = TestPostgres::shared() else {
        println!("postgres bench skipped: no PostgreSQL server (see the line above)");
        return;
    };
    // The test cluster keeps a small WAL (many short-lived databases on a CI disk);
    // measure on PostgreSQL's defaults, as the figures before it were.
    for setting in ["max_wal_size = '1GB'", "min_wal_size = '80MB'"] {
        psql(pg, pg.url(), &format!("ALTER SYSTEM SET {setting}"));
    }
    psql(pg, pg.url(), "SELECT pg_reload_conf()");
    let mut summary = Summary::default();
    let pgbench = Pgbench::prepare(pg);
    let mut c = Criterion::default().configure_from_args();
    let postgres = with_workflows(Runtime::builder().postgres(pg.database("ordo_bench")))
        .build()
        .unwrap();
    // pgbench right before and right after each ordo workload: the disk's speed drifts
    // (other processes' syncs), and the reference should see the same disk.
    for slot in 0..2 {
        let mut reference = Vec::new();
        reference.extend(pgbench.as_ref().map(|p| p.run(slot)));
        summary.postgres[slot] = bench_workload(&mut c, "postgres", &postgres, slot);
        if slot == 1 {
            summary.postgres[MANY] = bench_workload(&mut c, "postgres", &postgres, MANY);
        }
        summary.journal[slot] = Some(journal_alone(pg, [1, GATHER][slot]));
        summary.whole[slot] = Some(workflows_alone(pg, slot));
        if slot == 1 {
            summary.whole[MANY] = Some(workflows_alone(pg, MANY));
        }
        if slot == 0 {
            summary.statement = Some(statement_alone(pg));
        }
        reference.extend(pgbench.as_ref().map(|p| p.run(slot)));
        summary.pgbench[slot] = reference;
        summary.fenced[slot] = pgbench.as_ref().map(|p| p.run_fenced(slot));
    }
    drop(postgres);
    let dir = common::bench_dir();
    let sled = with_workflows(Runtime::builder().path(dir.path()))
        .durability(Durability::Sync)
        .build()
        .unwrap();
    for slot in 0..3 {
        summary.sled[slot] = bench_workload(&mut c, "sled_sync", &sled, slot);
    }
    drop(sled);
    c.final_summary();

    for workers in [1, 2, 4] {
        summary.workers.push(multi_worker(pg, workers));
    }
    summary.takeover = Some(takeover(pg));
    summary.print();
}

// ---------------------------------------------------------------------------------
// Workflows

fn with_workflows(builder: RuntimeBuilder) -> RuntimeBuilder {
    builder
        .register("sequential", sequential)
        .register("gathered", gathered)
}

// ---------------------------------------------------------------------------------
// pgbench

/// `pgbench` on a table shaped like `ordo.completions`, at 1 and at [`GATHER`] rows per
/// transaction.
struct Pgbench {
    exe: PathBuf,
    url: String,
    /// The scripts, by slot (0: 1 row, 1: [`GATHER`] rows); in `_dir`.
    scripts: [PathBuf; 2],
    /// The same inserts behind a per-commit fence (see [`Pgbench::run_fenced`]), by slot.
    fenced: [PathBuf; 2],
    _dir: tempfile::TempDir,
}

impl Pgbench {
    /// A fresh database with the table, and the two scripts; `None` without a
    /// `pgbench` next to the server.
    fn prepare(pg: &TestPostgres) -> Option<Pgbench> {
        let exe = pg.bin_dir().join("pgbench");
        if !exe.exists() {
            eprintln!("pgbench reference skipped: no {}", exe.display());
            return None;
        }
        let url = pg.database("pgbench");
        psql(
            pg,
            &url,
            "CREATE TABLE completions (workflow_id text, seq int8, step_id int8, name text, \
             ok bool, value bytea, attempts int4, started_ms int8, ended_ms int8, \
             PRIMARY KEY (workflow_id, seq))",
        );
        let dir = tempfile::tempdir().unwrap();
        // A random key per transaction (2^50 of them: a repeat within a run has a
        // chance of about 1e-8), rows `key * 64 + g`: keys never collide in practice.
        // The value is a few bytes, like a bincode-encoded u64.
        let set = "\\set s random(0, 1125899906842623)\n";
        let one_row = "'pgbench-' || :client_id, :s, :s, 's', true, '\\x2a'::bytea, 1, \
             1700000000000, 1700000000001";
        let many_rows = format!(
            "'pgbench-' || :client_id, CAST(:s AS int8) * {GATHER} + g, g, 's', true, \
             '\\x2a'::bytea, 1, 1700000000000, 1700000000001 FROM generate_series(0, {}) AS g",
            GATHER - 1
        );
        // The per-commit fence (`FENCE` in the journal's session) in front of the same rows: the
        // worker's row counted, the rows inserted only if it still has its epoch.
        psql(
            pg,
            &url,
            "CREATE TABLE workers (id int8 PRIMARY KEY, epoch int8 NOT NULL, \
             alive bool NOT NULL, commits int8 NOT NULL); \
             INSERT INTO workers VALUES (1, 1, true, 0)",
        );
        let fenced = |rows: &str| {
            format!(
                "{set}WITH counted AS (UPDATE workers SET commits = commits + 1 \
                 WHERE id = 1 AND epoch = 1 AND alive RETURNING commits), \
                 appended AS (INSERT INTO completions SELECT {rows} \
                 WHERE EXISTS (SELECT FROM counted)) SELECT commits FROM counted;\n"
            )
        };
        let write = |name: &str, script: String| {
            let file = dir.path().join(name);
            std::fs::write(&file, script).unwrap();
            file
        };
        let scripts = [
            write(
                "rows_1.sql",
                format!("{set}INSERT INTO completions VALUES ({one_row});\n"),
            ),
            write(
                "rows_64.sql",
                format!("{set}INSERT INTO completions SELECT {many_rows};\n"),
            ),
        ];
        let fenced = [
            write("fenced_1.sql", fenced(one_row)),
            write("fenced_64.sql", fenced(&many_rows)),
        ];
        Some(Pgbench {
            exe,
            url,
            scripts,
            fenced,
            _dir: dir,
        })
    }

    /// Runs script `slot` for [`PGBENCH_SECONDS`] on one client: rows/s and tps.
    fn run(&self, slot: usize) -> Rate {
        self.run_script(slot, &self.scripts[slot], "pgbench")
    }

    /// Script `slot` behind the per-commit fence (the worker's row updated, the insert
    /// conditioned on it, in one statement as ordo sends its commits other than
    /// completions of known workflows), run the same way: what an epoch checked in every
    /// commit costs pgbench itself.
    fn run_fenced(&self, slot: usize) -> Rate {
        self.run_script(
            slot,
            &self.fenced[slot],
            "pgbench behind a per-commit fence",
        )
    }

    fn run_script(&self, slot: usize, script: &Path, label: &str) -> Rate {
        let rows = [1, GATHER][slot];
        let tps = run_pgbench(&self.exe, script, &self.url);
        eprintln!(
            "{label}, {rows} row(s)/transaction: {tps:.0} tps, {:.0} rows/s",
            tps * rows as f64
        );
        Rate {
            items_per_s: tps * rows as f64,
            commits_per_s: tps,
        }
    }
}

/// Runs `pgbench -f file` for [`PGBENCH_SECONDS`] on one client; its tps.
fn run_pgbench(pgbench: &Path, file: &Path, url: &str) -> f64 {
    let mut cmd = Command::new(pgbench);
    cmd.args(["-n", "-M", "prepared", "-c", "1", "-j", "1", "-T"])
        .arg(PGBENCH_SECONDS.to_string())
        .arg("-f")
        .arg(file)
        .arg(url);
    without_pg_env(&mut cmd);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .unwrap_or_else(|| panic!("no \"tps = N\" line in pgbench's output:\n{stdout}"))
}

fn psql(pg: &TestPostgres, url: &str, sql: &str) {
    let mut cmd = Command::new(pg.bin_dir().join("psql"));
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]);
    without_pg_env(&mut cmd);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The URL says everything: the caller's libpq variables must not.
fn without_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}

// ---------------------------------------------------------------------------------
// ordo, one process, criterion

/// Criterion's samples per benchmark (flat sampling: one routine call per sample).
const SAMPLES: usize = 10;

/// One call of criterion's routine: steps run, group commits made, time taken.
#[derive(Clone, Copy)]
struct Call {
    steps: u64,
    commits: u64,
    elapsed: Duration,
}

/// The rate over the last [`SAMPLES`] calls: criterion's measurement, without its
/// warm-up (which calls the routine before, with doubling iteration counts).
fn measured_rate(calls: &[Call]) -> Option<Rate> {
    let measured = &calls[calls.len().saturating_sub(SAMPLES)..];
    let seconds: f64 = measured.iter().map(|c| c.elapsed.as_secs_f64()).sum();
    (seconds > 0.0).then(|| Rate {
        items_per_s: measured.iter().map(|c| c.steps).sum::<u64>() as f64 / seconds,
        commits_per_s: measured.iter().map(|c| c.commits).sum::<u64>() as f64 / seconds,
    })
}

/// Workload `slot` (0: sequential, 1: gathered, [`MANY`]: [`GATHER`] sequential
/// workflows at once) as `(label, workflow, input, steps)`; `steps` counts every
/// workflow of an iteration.
fn workload(slot: usize) -> (String, &'static str, u64, u64) {
    match slot {
        MANY => (
            format!("many_{GATHER}x{MANY_STEPS}"),
            "sequential",
            MANY_STEPS,
            GATHER * MANY_STEPS,
        ),
        0 => (
            format!("sequential_{SEQUENTIAL_STEPS}"),
            "sequential",
            SEQUENTIAL_STEPS,
            SEQUENTIAL_STEPS,
        ),
        _ => (
            format!("join_all_{GATHER}x{ROUNDS}"),
            "gathered",
            ROUNDS,
            GATHER * ROUNDS,
        ),
    }
}

/// Benchmarks workload `slot` on `rt` as `group_name/<label>`; its measured rate
/// (`None` when a filter left it out).
fn bench_workload(c: &mut Criterion, group_name: &str, rt: &Runtime, slot: usize) -> Option<Rate> {
    let (label, workflow, input, steps) = workload(slot);
    let mut group = c.benchmark_group(group_name);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(SAMPLES);
    group.throughput(Throughput::Elements(steps));
    let calls = std::cell::RefCell::new(Vec::new());
    let runs = Cell::new(0u64);
    group.bench_function(&label, |b| {
        b.iter_custom(|iters| {
            let commits = rt.metrics().commits;
            let start = Instant::now();
            let copies = if slot == MANY { GATHER } else { 1 };
            for _ in 0..iters {
                runs.set(runs.get() + 1);
                // Started together: one `start_many`, one read of the journal for all.
                let starts =
                    (0..copies).map(|copy| (format!("{label}-{}-{copy}", runs.get()), input));
                let handles = rt.start_many::<_, _, u64, ()>(workflow, starts).unwrap();
                for handle in &handles {
                    let handle = handle.as_ref().unwrap();
                    rt.block_on(handle.result()).unwrap().unwrap();
                }
            }
            let elapsed = start.elapsed();
            calls.borrow_mut().push(Call {
                steps: iters * steps,
                commits: rt.metrics().commits - commits,
                elapsed,
            });
            elapsed
        });
    });
    group.finish();
    let calls = calls.into_inner();
    measured_rate(&calls)
}

/// A completion as the benches' workflows record it: a few bytes, like a
/// bincode-encoded `u64`.
fn completion(seq: u64) -> ordo::journal::Completion {
    ordo::journal::Completion {
        seq,
        step_id: seq,
        name: "work".into(),
        outcome: ordo::journal::Outcome::Ok(vec![0x2a]),
        attempts: 1,
        started_ms: 1_700_000_000_000,
        ended_ms: 1_700_000_000_001,
    }
}

/// The store alone, without the runtime: a `PgJournal` committing batches of `rows`
/// completions (the rows pgbench inserts) to one workflow, one after the other, for
/// [`PGBENCH_SECONDS`]. What it lacks against pgbench is the journal's own cost (its
/// statement, the hop to its thread); what the runtime lacks against it is
/// the runtime's.
fn journal_alone(pg: &TestPostgres, rows: u64) -> Rate {
    use ordo::journal::{Batch, Store, WorkflowRecord};
    let journal = PgOptions::new(pg.database(&format!("journal_{rows}")))
        .connect()
        .unwrap();
    let mut start = Batch::new();
    start.insert_workflow(WorkflowRecord::new("w", "gathered", vec![0], 0));
    journal.commit(&start).unwrap();
    let (mut seq, mut commits) = (0u64, 0u64);
    let began = Instant::now();
    let until = began + Duration::from_secs(u64::from(PGBENCH_SECONDS));
    while Instant::now() < until {
        let mut batch = Batch::new();
        for _ in 0..rows {
            batch.push_completion("w", completion(seq));
            seq += 1;
        }
        journal.commit(&batch).unwrap();
        commits += 1;
    }
    let seconds = began.elapsed().as_secs_f64();
    eprintln!(
        "PgJournal alone, {rows} row(s)/commit: {:.0} commits/s",
        commits as f64 / seconds
    );
    Rate {
        items_per_s: seq as f64 / seconds,
        commits_per_s: commits as f64 / seconds,
    }
}

/// The store alone on workload `slot`'s own batches, for [`PGBENCH_SECONDS`]: its
/// workflows one iteration after the other, each iteration's workflows started in one
/// commit, then each round's completions (one of each workflow in `many_64x50`, the
/// round's 64 in `join_all_64x8`) in a commit, then their ends (with the notification
/// other workers may wait for) in one, the batches the runtime commits. The most the
/// runtime could reach on that workload at no cost of its own.
fn workflows_alone(pg: &TestPostgres, slot: usize) -> Rate {
    use ordo::journal::{Batch, Outcome, Status, Store, WorkflowRecord};
    // Workflows per iteration, completions of each per commit, rounds.
    let (together, each, rounds) = match slot {
        0 => (1, 1, SEQUENTIAL_STEPS),
        MANY => (GATHER, 1, MANY_STEPS),
        _ => (1, GATHER, ROUNDS),
    };
    let journal = PgOptions::new(pg.database(&format!("workflows_alone_{slot}")))
        .connect()
        .unwrap();
    let record = |id: &str| WorkflowRecord::new(id, "work", vec![rounds as u8], 1_700_000_000_000);
    let (mut iterations, mut steps, mut commits) = (0u64, 0u64, 0u64);
    let began = Instant::now();
    let until = began + Duration::from_secs(u64::from(PGBENCH_SECONDS));
    while Instant::now() < until {
        iterations += 1;
        let ids: Vec<String> = (0..together)
            .map(|w| format!("w-{iterations}-{w}"))
            .collect();
        let mut starts = Batch::new();
        for id in &ids {
            starts.insert_workflow(record(id));
        }
        journal.commit(&starts).unwrap();
        for round in 0..rounds {
            let mut batch = Batch::new();
            for id in &ids {
                for i in 0..each {
                    batch.push_completion(id, completion(round * each + i));
                }
            }
            journal.commit(&batch).unwrap();
            steps += together * each;
        }
        let mut ends = Batch::new();
        for id in &ids {
            let mut end = record(id);
            end.status = Status::Succeeded;
            end.output = Some(Outcome::Ok(vec![0x2a]));
            end.updated_ms += 5;
            ends.update_workflow(end, Status::Pending);
        }
        journal.commit(&ends).unwrap();
        commits += rounds + 2;
    }
    let seconds = began.elapsed().as_secs_f64();
    eprintln!(
        "PgJournal alone on {}'s batches: {:.0} commits/s",
        workload(slot).0,
        commits as f64 / seconds
    );
    Rate {
        items_per_s: steps as f64 / seconds,
        commits_per_s: commits as f64 / seconds,
    }
}

/// pgbench's insert of one row, then the journal's commit statement of one completion,
/// each run alone for [`PGBENCH_SECONDS`] in a loop of tokio-postgres on one
/// connection (no ordo at all): `[insert, commit statement]`.
fn statement_alone(pg: &TestPostgres) -> [Rate; 2] {
    let url = pg.database("statement_alone");
    // The schema (the journal creates it when it connects).
    let journal = PgOptions::new(url.as_str())
        .worker_name("alone")
        .connect()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    });
    let rates = runtime.block_on(async {
        client
            .batch_execute(
                "CREATE TABLE plain (workflow_id text, seq int8, step_id int8, name text, \
                 ok bool, value bytea, attempts int4, started_ms int8, ended_ms int8, \
                 PRIMARY KEY (workflow_id, seq))",
            )
            .await
            .unwrap();
        let insert = client
            .prepare(
                "INSERT INTO plain VALUES ('pgbench-1', $1, $1, 's', true, '\\x2a'::bytea, 1, \
                 1700000000000, 1700000000001)",
            )
            .await
            .unwrap();
        let commit = client
            .prepare(&ordo::journal::steps_commit_statement())
            .await
            .unwrap();
        let mut rates = Vec::new();
        for use_commit in [false, true] {
            let began = Instant::now();
            let until = began + Duration::from_secs(u64::from(PGBENCH_SECONDS));
            let mut seq = 0i64;
            while Instant::now() < until {
                if use_commit {
                    client
                        .execute(
                            &commit,
                            &[
                                &"alone",
                                &seq,
                                &seq,
                                &"s",
                                &true,
                                &vec![0x2au8],
                                &1i32,
                                &1_700_000_000_000i64,
                                &1_700_000_000_001i64,
                            ],
                        )
                        .await
                        .unwrap();
                } else {
                    client.execute(&insert, &[&seq]).await.unwrap();
                }
                seq += 1;
            }
            let per_s = seq as f64 / began.elapsed().as_secs_f64();
            eprintln!(
                "tokio-postgres alone, {}: {per_s:.0}/s",
                ["pgbench's insert", "ordo's commit statement"][usize::from(use_commit)]
            );
            rates.push(Rate {
                items_per_s: per_s,
                commits_per_s: per_s,
            });
        }
        [rates[0], rates[1]]
    });
    drop(journal);
    rates
}

// ---------------------------------------------------------------------------------
// Child processes

/// Lines a child prints, read on a thread so the parent can wait with a timeout.
struct Lines {
    rx: mpsc::Receiver<String>,
    name: String,
}

impl Lines {
    fn of(child: &mut Child, name: impl Into<String>) -> Lines {
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines {
            rx,
            name: name.into(),
        }
    }

    /// The next line, panicking after [`CHILD_TIMEOUT`] or when the child is gone.
    fn next(&self) -> String {
        self.rx
            .recv_timeout(CHILD_TIMEOUT)
            .unwrap_or_else(|err| panic!("no line from {}: {err}", self.name))
    }

    fn expect(&self, prefix: &str) -> String {
        let line = self.next();
        assert!(
            line.starts_with(prefix),
            "{} said {line:?}, not {prefix:?}",
            self.name
        );
        line
    }
}

fn spawn_self(var: &str, value: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(var, value)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Ends this child when the parent closes its stdin (the parent is done or gone).
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
}

// ---------------------------------------------------------------------------------
// Many worker processes on one database

struct WorkerRun {
    workers: usize,
    steps: u64,
    /// From "go" (every runtime built) to the last worker done.
    from_go: Duration,
    /// From the first spawn to the last worker done.
    from_spawn: Duration,
}

fn multi_worker(pg: &TestPostgres, workers: usize) -> WorkerRun {
    let url = pg.database(&format!("workers_{workers}"));
    let spawned = Instant::now();
    let mut children: Vec<(Child, ChildStdin, Lines)> = (0..workers)
        .map(|index| {
            let mut child = spawn_self(
                WORKER_VAR,
                &format!("{url},{index},{workers},{MULTI_WORKFLOWS}"),
            );
            let stdin = child.stdin.take().unwrap();
            let lines = Lines::of(&mut child, format!("worker {index}/{workers}"));
            (child, stdin, lines)
        })
        .collect();
    for (_, _, lines) in &children {
        lines.expect("ready");
    }
    let go = Instant::now();
    for (_, stdin, _) in &mut children {
        writeln!(stdin, "go").unwrap();
        stdin.flush().unwrap();
    }
    let mut steps = 0;
    for (_, _, lines) in &children {
        let line = lines.expect("done ");
        steps += line["done ".len()..].trim().parse::<u64>().unwrap();
    }
    let done = Instant::now();
    for (mut child, stdin, _) in children {
        drop(stdin);
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(steps, MULTI_WORKFLOWS * MULTI_STEPS);
    let run = WorkerRun {
        workers,
        steps,
        from_go: done - go,
        from_spawn: done - spawned,
    };
    eprintln!(
        "{workers} worker process(es): {steps} steps, {:.0} steps/s from go, {:.0} steps/s from spawn",
        steps as f64 / run.from_go.as_secs_f64(),
        steps as f64 / run.from_spawn.as_secs_f64()
    );
    run
}

/// A throughput worker: builds its runtime, says "ready", waits for "go", drives its
/// share of the workflows to the end, says "done <steps>".
fn throughput_worker(spec: &str) {
    let mut fields = spec.rsplitn(4, ',');
    let total: u64 = fields.next().unwrap().parse().unwrap();
    let count: u64 = fields.next().unwrap().parse().unwrap();
    let index: u64 = fields.next().unwrap().parse().unwrap();
    let url = fields.next().unwrap();
    let rt = Runtime::builder()
        .postgres_with(PgOptions::new(url).worker_name(format!("bench-{index}")))
        .register("sequential", sequential)
        .build()
        .unwrap();
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    if go.trim() != "go" {
        return; // the parent went away
    }
    let handles: Vec<_> = (index..total)
        .step_by(count as usize)
        .map(|n| {
            rt.start::<_, u64, ()>("sequential", &format!("m{n}"), MULTI_STEPS)
                .unwrap()
        })
        .collect();
    let results = rt.block_on(futures::future::join_all(
        handles.iter().map(|h| h.result()),
    ));
    for result in &results {
        assert!(
            matches!(result, Ok(Ok(sum)) if *sum == MULTI_STEPS * (MULTI_STEPS - 1) / 2),
            "{result:?}"
        );
    }
    println!("done {}", results.len() as u64 * MULTI_STEPS);
}

// ---------------------------------------------------------------------------------
// Takeover after a SIGKILL

/// Whether this process is worker `b`: the parked step finishes here.
static TAKING_OVER: AtomicBool = AtomicBool::new(false);
/// Where the parked step reports `(workflow index, unix ms)` when its body runs.
static PARKED: Mutex<Option<UnboundedSender<(u64, u64)>>> = Mutex::new(None);

/// One recorded step, then a step whose body never finishes on worker `a` and finishes
/// at once on worker `b`, reporting when it ran.
async fn parked(ctx: Ctx, index: u64) -> Result<u64, ()> {
    ctx.step("begin", move || async move { Ok::<u64, ()>(index) })
        .await?;
    ctx.step("park", move || async move {
        let now = unix_ms();
        if let Some(tx) = PARKED.lock().unwrap().as_ref() {
            let _ = tx.unbounded_send((index, now));
        }
        if !TAKING_OVER.load(Ordering::SeqCst) {
            futures::future::pending::<()>().await;
        }
        Ok::<u64, ()>(now)
    })
    .await
}

struct Takeover {
    lease: Duration,
    /// Kill to the parked step's body running on `b`, per workflow.
    delays: Vec<Duration>,
}

fn takeover(pg: &TestPostgres) -> Takeover {
    let url = pg.database("takeover");
    let lease_ms = TAKEOVER_LEASE.as_millis();
    let mut a = spawn_self(
        TAKEOVER_VAR,
        &format!("a,{url},{lease_ms},{TAKEOVER_WORKFLOWS}"),
    );
    let a_lines = Lines::of(&mut a, "takeover worker a");
    a_lines.expect("ready");
    let mut b = spawn_self(
        TAKEOVER_VAR,
        &format!("b,{url},{lease_ms},{TAKEOVER_WORKFLOWS}"),
    );
    let b_lines = Lines::of(&mut b, "takeover worker b");
    b_lines.expect("ready");
    // b is connected and past recover(): it claimed nothing (a is alive) and now claims
    // again every half lease. Let a renew its lease once more, then kill it.
    std::thread::sleep(TAKEOVER_LEASE / 2);
    let killed = unix_ms();
    a.kill().unwrap(); // SIGKILL
    let _ = a.wait();
    let mut delays = Vec::new();
    for _ in 0..TAKEOVER_WORKFLOWS {
        let line = b_lines.expect("ran ");
        let mut parts = line.split_whitespace().skip(1);
        let _index: u64 = parts.next().unwrap().parse().unwrap();
        let at: u64 = parts.next().unwrap().parse().unwrap();
        delays.push(Duration::from_millis(at.saturating_sub(killed)));
    }
    b_lines.expect("done");
    drop(b.stdin.take());
    assert!(b.wait().unwrap().success());
    delays.sort();
    eprintln!(
        "takeover with a {lease_ms} ms lease: kill to first live step on b: {:?}",
        delays
    );
    Takeover {
        lease: TAKEOVER_LEASE,
        delays,
    }
}

/// Worker `a`: parks its workflows, says "ready", lives until killed. Worker `b`:
/// recovers (nothing), says "ready", then reports every parked step it runs.
fn takeover_worker(spec: &str) {
    let (role, rest) = spec.split_once(',').unwrap();
    let mut fields = rest.rsplitn(3, ',');
    let workflows: u64 = fields.next().unwrap().parse().unwrap();
    let lease = Duration::from_millis(fields.next().unwrap().parse().unwrap());
    let url = fields.next().unwrap();
    let (tx, mut rx) = unbounded();
    *PARKED.lock().unwrap() = Some(tx);
    TAKING_OVER.store(role == "b", Ordering::SeqCst);
    let rt = Runtime::builder()
        .postgres_with(PgOptions::new(url).worker_name(role).lease(lease))
        .register("parked", parked)
        .build()
        .unwrap();
    exit_when_stdin_closes();
    if role == "a" {
        for n in 0..workflows {
            rt.start::<_, u64, ()>("parked", &format!("t{n}"), n)
                .unwrap();
        }
        rt.block_on(async {
            for _ in 0..workflows {
                rx.next().await.unwrap();
            }
        });
        // Every workflow is in its parked step, so its first step was committed.
        for n in 0..workflows {
            assert_eq!(rt.journal().completions(&format!("t{n}")).unwrap().len(), 1);
        }
        println!("ready");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let report = rt.recover().unwrap();
    assert!(report.resumed.is_empty(), "b claimed {:?}", report.resumed);
    println!("ready");
    rt.block_on(async {
        for _ in 0..workflows {
            let (index, at) = rx.next().await.unwrap();
            println!("ran {index} {at}");
        }
    });
    // Let the taken-over workflows finish (their handles read the journal).
    for n in 0..workflows {
        let handle = rt.handle::<u64, ()>(&format!("t{n}")).unwrap();
        rt.block_on(handle.result()).unwrap().unwrap();
    }
    assert_eq!(rt.metrics().steps_replayed, workflows);
    println!("done");
}

// ---------------------------------------------------------------------------------
// Summary

#[derive(Default, Clone, Copy)]
struct Rate {
    /// Rows/s (pgbench) or steps/s (ordo).
    items_per_s: f64,
    /// Transactions (pgbench) or group commits (ordo) per second.
    commits_per_s: f64,
}

#[derive(Default)]
struct Summary {
    /// pgbench runs by slot: before and after the ordo workload.
    pgbench: [Vec<Rate>; 2],
    /// pgbench behind a per-commit fence ([`Pgbench::run_fenced`]), by slot.
    fenced: [Option<Rate>; 2],
    /// By workload slot (see [`workload`]).
    postgres: [Option<Rate>; 3],
    /// The store alone ([`journal_alone`]), right after the runtime's workload.
    journal: [Option<Rate>; 2],
    /// The store alone on each workload's batches ([`workflows_alone`]), by slot.
    whole: [Option<Rate>; 3],
    /// pgbench's insert and the journal's commit statement on a plain client
    /// ([`statement_alone`]), 1 row each.
    statement: Option<[Rate; 2]>,
    sled: [Option<Rate>; 3],
    workers: Vec<WorkerRun>,
    takeover: Option<Takeover>,
}

impl Summary {
    fn print(&self) {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut out = String::new();
        out.push_str(&format!(
            "\n== ordo on PostgreSQL: summary ({cpus} CPUs; one throwaway cluster, fsync on, TCP on 127.0.0.1)\n"
        ));
        out.push_str(&format!(
            "{:<44} {:>12} {:>12} {:>14} {:>14}\n",
            "workload", "rows|steps/s", "commits/s", "vs pgbench", "commits vs pg"
        ));
        for (slot, per_commit) in [
            (0, format!("1 per commit (sequential_{SEQUENTIAL_STEPS})")),
            (
                1,
                format!("{GATHER} per commit (join_all_{GATHER}x{ROUNDS})"),
            ),
        ] {
            let runs = &self.pgbench[slot];
            let reference = (!runs.is_empty()).then(|| Rate {
                items_per_s: runs.iter().map(|r| r.items_per_s).sum::<f64>() / runs.len() as f64,
                commits_per_s: runs.iter().map(|r| r.commits_per_s).sum::<f64>()
                    / runs.len() as f64,
            });
            let each: Vec<String> = runs
                .iter()
                .map(|r| format!("{:.0}", r.items_per_s))
                .collect();
            let alone = |i: usize| self.statement.filter(|_| slot == 0).map(|s| s[i]);
            let rows = [
                (
                    format!("pgbench, {} row(s) per transaction", [1, GATHER][slot]),
                    reference,
                    format!("mean of {} (before, after)", each.join(", ")),
                ),
                (
                    "pgbench behind a per-commit fence".to_string(),
                    self.fenced[slot],
                    "what ordo's steps no longer pay".to_string(),
                ),
                (
                    "tokio-postgres alone, pgbench's insert".to_string(),
                    alone(0),
                    "the client library".to_string(),
                ),
                (
                    "tokio-postgres alone, ordo's statement".to_string(),
                    alone(1),
                    "the server's share".to_string(),
                ),
                (
                    format!("ordo postgres, {per_commit}"),
                    self.postgres[slot],
                    String::new(),
                ),
                (
                    format!("PgJournal alone, {} per commit", [1, GATHER][slot]),
                    self.journal[slot],
                    "no runtime: the store's own share".to_string(),
                ),
                (
                    format!("PgJournal alone, {per_commit}"),
                    self.whole[slot],
                    "no runtime: start, steps, end; ordo's ceiling".to_string(),
                ),
                (
                    format!("ordo sled Sync, {per_commit}"),
                    self.sled[slot],
                    String::new(),
                ),
                (
                    format!("ordo postgres, {GATHER} per commit ({GATHER} wfs x {MANY_STEPS})"),
                    self.postgres[MANY],
                    "one step of each workflow per commit".to_string(),
                ),
                (
                    format!("PgJournal alone, {GATHER} per commit ({GATHER} wfs x {MANY_STEPS})"),
                    self.whole[MANY],
                    "no runtime: starts, steps, ends; ordo's ceiling".to_string(),
                ),
                (
                    format!("ordo sled Sync, {GATHER} per commit ({GATHER} wfs x {MANY_STEPS})"),
                    self.sled[MANY],
                    String::new(),
                ),
            ];
            // The statement alone was measured at 1 row only, the workflows together at
            // 64 only.
            let rows = rows.into_iter().enumerate().filter(|(i, _)| match slot {
                0 => *i < 8,
                _ => !matches!(i, 2 | 3),
            });
            for (i, (name, rate, note)) in rows {
                let Some(rate) = rate else {
                    out.push_str(&format!("{name:<44} {:>12}\n", "-"));
                    continue;
                };
                let (versus, commits_versus) = match reference {
                    Some(r) if i > 0 => (
                        format!("{:.2}x", rate.items_per_s / r.items_per_s),
                        format!("{:.2}x", rate.commits_per_s / r.commits_per_s),
                    ),
                    _ => (String::new(), String::new()),
                };
                out.push_str(&format!(
                    "{name:<44} {:>12.0} {:>12.0} {versus:>14} {commits_versus:>14}  {note}\n",
                    rate.items_per_s, rate.commits_per_s
                ));
            }
        }
        if !self.workers.is_empty() {
            out.push_str(&format!(
                "\nworker processes on one database ({MULTI_WORKFLOWS} workflows x {MULTI_STEPS} steps)\n{:<10} {:>16} {:>18}\n",
                "workers", "steps/s from go", "steps/s from spawn"
            ));
            for run in &self.workers {
                out.push_str(&format!(
                    "{:<10} {:>16.0} {:>18.0}\n",
                    run.workers,
                    run.steps as f64 / run.from_go.as_secs_f64(),
                    run.steps as f64 / run.from_spawn.as_secs_f64()
                ));
            }
        }
        if let Some(t) = &self.takeover {
            let ms: Vec<String> = t
                .delays
                .iter()
                .map(|d| format!("{}", d.as_millis()))
                .collect();
            out.push_str(&format!(
                "\ntakeover after SIGKILL (lease {} ms, {} workflows): kill -> first live step on the other worker: {} ms\n",
                t.lease.as_millis(),
                t.delays.len(),
                ms.join(", ")
            ));
        }
        println!("{out}");
    }
}
