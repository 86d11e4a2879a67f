//! Many worker processes on one PostgreSQL journal, with real SIGKILLs and SIGSTOPs:
//! every workflow finishes exactly once, a dead worker's workflows are taken over, a
//! paused worker that wakes up after a takeover is fenced, and a PostgreSQL restart
//! under a running worker loses nothing.
//!
//! Each test starts throwaway clusters through `ordo_testkit::postgres` and is skipped,
//! saying so, on a machine without PostgreSQL (`ORDO_REQUIRE_POSTGRES=1` makes that a
//! failure instead).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ordo::journal::PgOptions;
use ordo::{Ctx, Runtime};
use ordo_testkit::postgres::TestPostgres;

const TAG: &str = "@@pg-worker@@ ";
const URL_ENV: &str = "ORDO_PGW_URL";
const NAME_ENV: &str = "ORDO_PGW_NAME";
const SHARE_ENV: &str = "ORDO_PGW_SHARE";
const LEASE: Duration = Duration::from_millis(1_000);

/// Ten steps: three one after another, four at once, a message to itself and back,
/// two more. Every body says that it ran.
async fn order(ctx: Ctx, n: u64) -> Result<u64, String> {
    let id = ctx.workflow_id().to_string();
    let said = move |step: &str| println!("{TAG}ran {id} {step}");
    let mut total = 0;
    for i in 0..3 {
        let said = said.clone();
        total += ctx
            .step(&format!("seq-{i}"), move || async move {
                said(&format!("seq-{i}"));
                Ok::<_, String>(n + i)
            })
            .await?;
    }
    let parts = (0..4).map(|i| {
        let said = said.clone();
        ctx.step(&format!("par-{i}"), move || async move {
            said(&format!("par-{i}"));
            Ok::<_, String>(n * i)
        })
    });
    for part in futures::future::join_all(parts).await {
        total += part?;
    }
    let me = ctx.workflow_id().to_string();
    ctx.send(&me, "note", total)
        .await
        .map_err(|e| e.to_string())?;
    let echoed: Option<u64> = ctx.recv("note", Duration::from_secs(3600)).await;
    total += echoed.unwrap_or(0);
    for i in 0..2 {
        let said = said.clone();
        total += ctx
            .step(&format!("end-{i}"), move || async move {
                said(&format!("end-{i}"));
                Ok::<_, String>(i)
            })
            .await?;
    }
    Ok(total)
}

/// What `order(n)` returns, computed independently.
fn expected(n: u64) -> u64 {
    let first = (n) + (n + 1) + (n + 2) + 6 * n;
    2 * first + 1
}

/// A worker named `name` on `url` with the tests' short [`LEASE`].
fn short_lease(url: &str, name: &str) -> ordo::RuntimeBuilder {
    Runtime::builder().postgres_with(PgOptions::new(url).worker_name(name).lease(LEASE))
}

fn runtime(url: &str, name: &str) -> Runtime {
    short_lease(url, name)
        .register("order", order)
        .build()
        .expect("worker runtime")
}

#[test]
#[ignore = "a worker process of the PostgreSQL tests; does nothing when run directly"]
fn worker_child() {
    let (Ok(url), Ok(name), Ok(share)) = (
        std::env::var(URL_ENV),
        std::env::var(NAME_ENV),
        std::env::var(SHARE_ENV),
    ) else {
        return;
    };
    let rt = runtime(&url, &name);
    rt.recover().expect("recover");
    // Its share of the orders, unless they exist already (started by an earlier life
    // of this worker, and maybe driven by another worker now).
    let (first, count) = share.split_once(',').unwrap();
    let (first, count): (u64, u64) = (first.parse().unwrap(), count.parse().unwrap());
    for n in first..first + count {
        let id = format!("order-{n:05}");
        if rt.journal().workflow(&id).expect("read").is_none() {
            drop(rt.start::<_, u64, String>("order", &id, n).expect("start"));
        }
    }
    println!("{TAG}ready");
    // Serves until killed: drives its workflows and takes over dead workers' ones.
    rt.block_on(futures::future::pending::<()>());
    println!("{TAG}run ended");
}

struct Worker {
    child: Child,
    life: usize,
}

/// Everything the workers printed, with the life (process) that printed it.
type Lines = Arc<Mutex<Vec<(usize, String)>>>;

fn spawn_worker(url: &str, name: &str, share: (u64, u64), life: usize, lines: &Lines) -> Worker {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "worker_child", "--nocapture", "--ignored"])
        .env(URL_ENV, url)
        .env(NAME_ENV, name)
        .env(SHARE_ENV, format!("{},{}", share.0, share.1))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = Arc::clone(lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(TAG) {
                lines.lock().unwrap().push((life, rest.to_string()));
            }
        }
    });
    Worker { child, life }
}

fn psql(pg: &TestPostgres, url: &str, sql: &str) -> String {
    pg.query(url, sql)
}

/// How many workflows succeeded (0 before a worker created the tables).
fn count_succeeded(pg: &TestPostgres, url: &str) -> usize {
    let out = Command::new(pg.bin_dir().join("psql"))
        .args([
            url,
            "-AtX",
            "-c",
            "SELECT count(*) FROM ordo.workflows WHERE status = 1",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// After the run: every order succeeded with the uninterrupted result, no step id is
/// recorded twice in a workflow, and every body that ran more than once ran, all but
/// the last time, in a process that was then killed (or fenced).
fn check_outcome(pg: &TestPostgres, url: &str, orders: u64, lines: &Lines, killed: &[usize]) {
    let duplicated = psql(
        pg,
        url,
        "SELECT count(*) FROM (SELECT workflow_id, step_id FROM ordo.completions
             GROUP BY 1, 2 HAVING count(*) > 1) d",
    );
    assert_eq!(duplicated, "0", "a step's completion was recorded twice");
    let rt = Runtime::builder()
        .postgres(url)
        .register("order", order)
        .build()
        .unwrap();
    for n in 0..orders {
        let id = format!("order-{n:05}");
        let handle = rt.handle::<u64, String>(&id).unwrap();
        let result = rt.block_on(handle.result()).unwrap();
        assert_eq!(result, Ok(expected(n)), "{id}");
    }
    let mut runs: HashMap<String, Vec<usize>> = HashMap::new();
    for (life, line) in lines.lock().unwrap().iter() {
        if let Some(step) = line.strip_prefix("ran ") {
            runs.entry(step.to_string()).or_default().push(*life);
        }
    }
    // 9 bodies per order (the tenth step is the message).
    assert_eq!(
        runs.len() as u64,
        orders * 9,
        "every body ran at least once"
    );
    let again = runs.values().filter(|lives| lives.len() > 1).count();
    let moved = runs
        .values()
        .filter(|lives| lives.windows(2).any(|w| w[0] != w[1]))
        .count();
    eprintln!(
        "{orders} workflows; {} processes killed; {again} bodies ran more than once; \
         {moved} bodies ran in more than one process",
        killed.len()
    );
    for (step, lives) in &runs {
        for life in &lives[..lives.len() - 1] {
            assert!(
                killed.contains(life),
                "{step} ran again after life {life}, which was never killed: {lives:?}"
            );
        }
    }
}

#[test]
fn three_workers_killed_at_random_finish_every_workflow_exactly_once() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("three_workers");
    const ORDERS: u64 = 3_000;
    let shares = [(0, 1_000), (1_000, 1_000), (2_000, 1_000)];
    let lines: Lines = Arc::default();
    let mut life = 0;
    let mut workers: Vec<Worker> = shares
        .iter()
        .enumerate()
        .map(|(i, share)| {
            life += 1;
            spawn_worker(&url, &format!("w{i}"), *share, life, &lines)
        })
        .collect();
    let mut killed = Vec::new();
    let mut rng = fastrand::Rng::with_seed(0x0dd0);
    let began = Instant::now();
    let mut kills = 0;
    while count_succeeded(pg, &url) < ORDERS as usize {
        assert!(
            began.elapsed() < Duration::from_secs(240),
            "the run did not finish"
        );
        std::thread::sleep(Duration::from_millis(rng.u64(200..900)));
        if kills >= 12 {
            continue;
        }
        let i = rng.usize(..workers.len());
        let w = &mut workers[i];
        w.child.kill().unwrap();
        w.child.wait().unwrap();
        killed.push(w.life);
        kills += 1;
        life += 1;
        // Half the time the worker comes back under its name at once (it takes its
        // workflows back); else later, as a new worker (the others take them over).
        let name = if rng.bool() {
            format!("w{i}")
        } else {
            std::thread::sleep(2 * LEASE);
            format!("w{i}-life{life}")
        };
        workers[i] = spawn_worker(&url, &name, shares[i], life, &lines);
    }
    for mut w in workers {
        w.child.kill().unwrap();
        w.child.wait().unwrap();
        killed.push(w.life);
    }
    check_outcome(pg, &url, ORDERS, &lines, &killed);
}

async fn sleeper(ctx: Ctx, n: u64) -> Result<u64, String> {
    let id = ctx.workflow_id().to_string();
    let first = ctx
        .step("before", move || async move { Ok::<_, String>(n) })
        .await?;
    ctx.sleep(Duration::from_secs(4)).await;
    ctx.step("after", move || async move {
        println!("{TAG}after {id} by {}", std::process::id());
        Ok::<_, String>(first + 1)
    })
    .await
}

#[test]
#[ignore = "a worker process of the fencing test; does nothing when run directly"]
fn sleeper_child() {
    let (Ok(url), Ok(name)) = (std::env::var(URL_ENV), std::env::var(NAME_ENV)) else {
        return;
    };
    let rt = Runtime::builder()
        .postgres_with(PgOptions::new(&url).worker_name(&name).lease(LEASE))
        .register("sleeper", sleeper)
        .build()
        .expect("worker runtime");
    rt.recover().expect("recover");
    let handles: Vec<_> = if std::env::var(SHARE_ENV).is_ok() {
        (0..10u64)
            .map(|n| {
                rt.start::<_, u64, String>("sleeper", &format!("sleeper-{n}"), n)
                    .expect("start")
            })
            .collect()
    } else {
        Vec::new()
    };
    if handles.is_empty() {
        println!("{TAG}ready");
        rt.block_on(futures::future::pending::<()>());
        return;
    }
    // The starts and first steps are committed once this returns.
    rt.block_on(ordo::executor::sleep(Duration::from_millis(300)));
    println!("{TAG}ready");
    for handle in handles {
        match rt.block_on(handle.result()) {
            Ok(_) => println!("{TAG}finished"),
            Err(err) => println!("{TAG}error {err}"),
        }
    }
}

fn spawn_sleeper(url: &str, name: &str, starts: bool) -> (Child, Arc<Mutex<Vec<String>>>) {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .args(["--exact", "sleeper_child", "--nocapture", "--ignored"])
        .env(URL_ENV, url)
        .env(NAME_ENV, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if starts {
        command.env(SHARE_ENV, "1");
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(TAG) {
                sink.lock().unwrap().push(rest.to_string());
            }
        }
    });
    (child, lines)
}

fn wait_for(lines: &Arc<Mutex<Vec<String>>>, what: &str, within: Duration) -> bool {
    let began = Instant::now();
    while began.elapsed() < within {
        if lines.lock().unwrap().iter().any(|l| l.contains(what)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_paused_worker_is_fenced_and_its_workflows_finish_on_another() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("fencing");
    let (mut paused, paused_lines) = spawn_sleeper(&url, "paused", true);
    assert!(wait_for(&paused_lines, "ready", Duration::from_secs(30)));
    signal(&paused, "-STOP");
    let (mut other, other_lines) = spawn_sleeper(&url, "other", false);
    assert!(wait_for(&other_lines, "ready", Duration::from_secs(30)));
    // The other worker takes the ten workflows over once the lease ran out, and
    // finishes them after their recorded sleep.
    let began = Instant::now();
    while count_succeeded(pg, &url) < 10 {
        assert!(began.elapsed() < Duration::from_secs(60), "no takeover");
        std::thread::sleep(Duration::from_millis(100));
    }
    let other_pid = other.id().to_string();
    let finished_by_other = other_lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("after") && l.ends_with(&other_pid))
        .count();
    assert_eq!(finished_by_other, 10);
    // Woken up, the paused worker may run its step bodies, but records nothing.
    signal(&paused, "-CONT");
    assert!(
        wait_for(&paused_lines, "error", Duration::from_secs(30)),
        "the paused worker was not refused: {:?}",
        paused_lines.lock().unwrap()
    );
    assert!(paused_lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("fenced")));
    assert!(!paused_lines.lock().unwrap().iter().any(|l| l == "finished"));
    // Per workflow: its two steps and the sleep's two records (its deadline, its
    // end), each once: what an uninterrupted run records.
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT string_agg(name || ' ' || n, ',' ORDER BY name) FROM
                 (SELECT name, count(*) AS n FROM ordo.completions GROUP BY name) c"
        ),
        "after 10,before 10,ordo.sleep 10,ordo.sleep.until 10",
    );
    for child in [&mut paused, &mut other] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn a_worker_waits_for_a_restarted_postgres_and_loses_nothing() {
    let Some(pg) = TestPostgres::start() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    if pg.is_external() {
        eprintln!("skipped: an external server cannot be restarted by the test");
        return;
    }
    let url = pg.database("restart");
    const ORDERS: u64 = 60;
    let lines: Lines = Arc::default();
    let mut worker = spawn_worker(&url, "solo", (0, ORDERS), 1, &lines);
    let began = Instant::now();
    while !lines.lock().unwrap().iter().any(|(_, l)| l == "ready") {
        assert!(began.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    pg.stop();
    std::thread::sleep(Duration::from_secs(2));
    pg.start_again();
    while count_succeeded(&pg, &url) < ORDERS as usize {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "the worker did not finish after the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    worker.child.kill().unwrap();
    worker.child.wait().unwrap();
    // The worker was never killed: no body may have run twice.
    check_outcome(&pg, &url, ORDERS, &lines, &[]);
}

async fn waits(ctx: Ctx, _: ()) -> Result<u32, String> {
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(1)
}

#[test]
fn a_start_of_a_workflow_another_live_worker_drives_leaves_it_there_until_it_is_gone() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("driven_elsewhere");
    let build = |name: &str| {
        short_lease(&url, name)
            .register("waits", waits)
            .build()
            .unwrap()
    };
    let a = build("a");
    let handle = a.start::<_, u32, String>("waits", "long", ()).unwrap();
    a.block_on(ordo::executor::sleep(Duration::from_millis(200)));
    drop(handle);
    let b = build("b");
    // Left to a: b's handle waits for its end, and nothing changes hands.
    let following = b.start::<_, u32, String>("waits", "long", ()).unwrap();
    let owner = || {
        psql(
            pg,
            &url,
            "SELECT w.name FROM ordo.workflows f JOIN ordo.workers w ON w.id = f.owner
                 WHERE f.id = 'long'",
        )
    };
    b.block_on(ordo::executor::sleep(Duration::from_millis(200)));
    assert_eq!(owner(), "a");
    drop(following);
    // Worker `a` goes away (its workflows are released): `b` may resume it now.
    drop(a);
    assert!(b.start::<_, u32, String>("waits", "long", ()).is_ok());
    b.block_on(ordo::executor::sleep(Duration::from_millis(200)));
    assert_eq!(owner(), "b");
}

async fn plus_one(ctx: Ctx, n: u32) -> Result<u32, String> {
    ctx.step("add", move || async move { Ok::<_, String>(n + 1) })
        .await
}

/// A worker shut down gracefully right after it acknowledged a start, before it ever
/// drove it: the start is committed on its way out and released with its other
/// workflows (no owner: its lease, a minute, need not run out first), and another
/// worker runs it.
#[test]
fn a_start_acknowledged_by_a_worker_that_shuts_down_runs_on_another() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("graceful_start");
    let b = (short_lease(&url, "b").register("plus_one", plus_one))
        .build()
        .unwrap();
    b.recover().unwrap();
    let a = (long_lease(&url, "a").register("plus_one", plus_one))
        .build()
        .unwrap();
    a.start::<_, u32, String>("plus_one", "g-1", 41u32).unwrap();
    drop(a);
    let owner = "SELECT coalesce(owner::text, 'none') FROM ordo.workflows WHERE id = 'g-1'";
    assert_eq!(psql(pg, &url, owner), "none", "released as a shut down");
    let handle = b
        .handle::<u32, String>("g-1")
        .expect("the start a acknowledged is recorded");
    assert_eq!(b.block_on(handle.result()).unwrap(), Ok(42));
}

/// A worker whose lease outlasts the test.
fn long_lease(url: &str, name: &str) -> ordo::RuntimeBuilder {
    Runtime::builder().postgres_with(
        PgOptions::new(url)
            .worker_name(name)
            .lease(Duration::from_secs(60)),
    )
}

async fn inbox(ctx: Ctx, _: ()) -> Result<Option<u32>, String> {
    Ok(ctx.recv::<u32>("go", Duration::from_secs(20)).await)
}

async fn sender(ctx: Ctx, to: String) -> Result<(), String> {
    ctx.send(&to, "go", 7u32).await.map_err(|e| e.to_string())
}

#[test]
fn a_message_to_a_workflow_another_worker_drives_wakes_it_at_once() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("mail_across");
    // A long lease: only notifications, never a takeover, can reach the waiters.
    let build = move |url: &str, name: &str| {
        long_lease(url, name)
            .register("inbox", inbox)
            .register("sender", sender)
            .build()
            .unwrap()
    };
    let receiver = {
        let url = url.clone();
        std::thread::spawn(move || {
            let a = build(&url, "a");
            let waiting = a.start::<_, Option<u32>, String>("inbox", "x", ()).unwrap();
            let began = Instant::now();
            let got = a.block_on(waiting.result()).unwrap();
            (got, began.elapsed())
        })
    };
    // Once `x` waits on worker a, worker b sends to it.
    let b = build(&url, "b");
    let began = Instant::now();
    while psql(
        pg,
        &url,
        "SELECT count(*) FROM ordo.completions WHERE workflow_id = 'x'",
    ) == "0"
    {
        assert!(began.elapsed() < Duration::from_secs(30), "x never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = b
        .start::<_, (), String>("sender", "s", "x".to_string())
        .unwrap();
    assert_eq!(b.block_on(sent.result()).unwrap(), Ok(()));
    let (got, waited) = receiver.join().unwrap();
    assert_eq!(got, Ok(Some(7)));
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    assert_eq!(
        psql(pg, &url, "SELECT count(*) FROM ordo.messages"),
        "0",
        "consumed"
    );
}

async fn announcer(ctx: Ctx, _: ()) -> Result<u32, String> {
    ctx.sleep(Duration::from_millis(1_500)).await;
    ctx.set_event("ready", 9u32).await;
    ctx.sleep(Duration::from_millis(500)).await;
    Ok(5)
}

async fn watcher(ctx: Ctx, of: String) -> Result<Option<u32>, String> {
    Ok(ctx
        .get_event::<u32>(&of, "ready", Duration::from_secs(20))
        .await)
}

#[test]
fn events_and_ends_on_one_worker_reach_waiters_on_another_at_once() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("changes_across");
    // A long lease: only notifications, never a takeover, can reach the waiters.
    let build = move |url: &str, name: &str| {
        long_lease(url, name)
            .register("announcer", announcer)
            .register("watcher", watcher)
            .build()
            .unwrap()
    };
    let driver = {
        let url = url.clone();
        std::thread::spawn(move || {
            let a = build(&url, "a");
            let handle = a.start::<_, u32, String>("announcer", "p", ()).unwrap();
            a.block_on(handle.result()).unwrap()
        })
    };
    let b = build(&url, "b");
    let began = Instant::now();
    while psql(
        pg,
        &url,
        "SELECT count(*) FROM ordo.workflows WHERE id = 'p'",
    ) == "0"
    {
        assert!(began.elapsed() < Duration::from_secs(30), "p never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let watching = b
        .start::<_, Option<u32>, String>("watcher", "w", "p".to_string())
        .unwrap();
    let ended = b.handle::<u32, String>("p").unwrap();
    let (seen, result) = b.block_on(async {
        let seen = watching.result().await;
        let bounded = futures::future::select(
            Box::pin(ended.result()),
            Box::pin(ordo::executor::sleep(Duration::from_secs(20))),
        );
        let result = match bounded.await {
            futures::future::Either::Left((result, _)) => Some(result),
            futures::future::Either::Right(_) => None,
        };
        (seen, result)
    });
    assert_eq!(seen.unwrap(), Ok(Some(9)), "the event set on worker a");
    assert_eq!(
        result.map(|r| r.unwrap()),
        Some(Ok(5)),
        "the end on worker a"
    );
    assert_eq!(driver.join().unwrap(), Ok(5));
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
}

#[test]
fn a_cancel_of_a_workflow_another_live_worker_drives_is_refused_and_changes_nothing() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("cancel_elsewhere");
    let build = |name: &str| {
        long_lease(&url, name)
            .register("waits", waits)
            .build()
            .unwrap()
    };
    let a = build("a");
    drop(a.start::<_, u32, String>("waits", "held", ()).unwrap());
    a.block_on(ordo::executor::sleep(Duration::from_millis(200)));
    let b = build("b");
    let refused = b.cancel("held").unwrap_err();
    assert!(
        matches!(&refused, ordo::Error::Journal(err)
            if matches!(**err, ordo::journal::Error::DrivenElsewhere { .. })),
        "{refused:?}"
    );
    assert_eq!(
        b.journal().workflow("held").unwrap().map(|w| w.status),
        Some(ordo::Status::Pending)
    );
    // The worker that drives it cancels it.
    assert!(a.cancel("held").unwrap());
    assert_eq!(
        b.journal().workflow("held").unwrap().map(|w| w.status),
        Some(ordo::Status::Cancelled)
    );
}

/// `(job id, thread)` of every run of a job's body, across the runtimes of this test.
static JOB_RUNS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

async fn job(ctx: Ctx, n: u32) -> Result<u32, String> {
    let id = ctx.workflow_id().to_string();
    ctx.step("work", move || async move {
        ordo::executor::sleep(Duration::from_millis(150)).await;
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        JOB_RUNS.lock().unwrap().push((id, thread));
        Ok::<_, String>(n)
    })
    .await
}

#[test]
fn a_worker_never_dispatches_what_another_live_worker_enqueued() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("queues_apart");
    // Worker b would have room for every job; a runs one at a time.
    let build = move |url: &str, name: &str, concurrency: usize| {
        long_lease(url, name)
            .queue("q", ordo::QueueOptions::new().concurrency(concurrency))
            .register("job", job)
            .build()
            .unwrap()
    };
    let (enqueued_tx, enqueued_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let a = {
        let url = url.clone();
        std::thread::Builder::new()
            .name("a".into())
            .spawn(move || {
                let a = build(&url, "a", 1);
                let handles: Vec<_> = (0..6u32)
                    .map(|n| {
                        a.enqueue::<_, u32, String>(
                            "q",
                            "job",
                            n,
                            ordo::EnqueueOptions::new().id(format!("job-{n}")),
                        )
                        .unwrap()
                    })
                    .collect();
                a.block_on(ordo::executor::sleep(Duration::from_millis(50)));
                enqueued_tx.send(()).unwrap();
                let results: Vec<_> = handles
                    .iter()
                    .map(|h| a.block_on(h.result()).unwrap())
                    .collect();
                // Serve until worker b is done looking.
                let _ = done_rx.recv();
                results
            })
            .unwrap()
    };
    enqueued_rx.recv().unwrap();
    // Worker b declares the same queue while a's jobs wait in it.
    let b = build(&url, "b", 10);
    b.recover().unwrap();
    b.block_on(ordo::executor::sleep(Duration::from_millis(1_000)));
    done_tx.send(()).unwrap();
    let results = a.join().unwrap();
    assert_eq!(results, [Ok(0), Ok(1), Ok(2), Ok(3), Ok(4), Ok(5)]);
    drop(b);
    let runs = JOB_RUNS.lock().unwrap().clone();
    assert_eq!(runs.len(), 6, "each job ran once: {runs:?}");
    assert!(runs.iter().all(|(_, thread)| thread == "a"), "{runs:?}");
}

/// One thread per worker in `names` (the thread named after it), each with queue `q`
/// of `options` and the workflows `register` adds: enqueues `count` jobs of `workflow`
/// (`<worker>-<n>`, input `n`) and waits for them. Their results, per worker.
fn queue_on_workers(
    url: &str,
    names: &[&'static str],
    options: &ordo::QueueOptions,
    (workflow, count): (&'static str, u32),
    register: fn(ordo::RuntimeBuilder) -> ordo::RuntimeBuilder,
) -> Vec<Vec<Result<u32, String>>> {
    let workers: Vec<_> = names
        .iter()
        .map(|&name| {
            let (url, options) = (url.to_string(), options.clone());
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let rt = register(long_lease(&url, name).queue("q", options))
                        .build()
                        .unwrap();
                    rt.recover().unwrap();
                    let handles: Vec<_> = (0..count)
                        .map(|n| {
                            rt.enqueue::<_, u32, String>(
                                "q",
                                workflow,
                                n,
                                ordo::EnqueueOptions::new().id(format!("{name}-{n}")),
                            )
                            .unwrap()
                        })
                        .collect();
                    handles
                        .iter()
                        .map(|h| rt.block_on(h.result()).unwrap())
                        .collect()
                })
                .unwrap()
        })
        .collect();
    workers.into_iter().map(|w| w.join().unwrap()).collect()
}

/// Per worker thread: its name, its `limited` bodies running now, the most at once.
type PerWorker = Vec<(String, usize, usize)>;

/// Bodies of `limited` jobs running now, the most seen at once, and per worker.
static LIMITED_NOW: Mutex<(usize, usize, PerWorker)> = Mutex::new((0, 0, Vec::new()));

async fn limited(ctx: Ctx, n: u32) -> Result<u32, String> {
    ctx.step("work", move || async move {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        {
            let mut now = LIMITED_NOW.lock().unwrap();
            now.0 += 1;
            now.1 = now.1.max(now.0);
            match now.2.iter_mut().find(|(t, _, _)| *t == thread) {
                Some(mine) => {
                    mine.1 += 1;
                    mine.2 = mine.2.max(mine.1);
                }
                None => now.2.push((thread.clone(), 1, 1)),
            }
        }
        ordo::executor::sleep(Duration::from_millis(300)).await;
        let mut now = LIMITED_NOW.lock().unwrap();
        now.0 -= 1;
        if let Some(mine) = now.2.iter_mut().find(|(t, _, _)| *t == thread) {
            mine.1 -= 1;
        }
        Ok::<_, String>(n)
    })
    .await
}

#[test]
fn a_queues_concurrency_holds_across_three_workers_and_caps_each_one() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("queues_shared_concurrency");
    // Five at once across the service, at most two on any worker; each worker enqueues
    // eight, so alone it would run two at a time, and the three together could run six.
    let options = ordo::QueueOptions::new()
        .concurrency(5)
        .worker_concurrency(2);
    let results = queue_on_workers(&url, &["w1", "w2", "w3"], &options, ("limited", 8), |b| {
        b.register("limited", limited)
    });
    for worker in results {
        assert_eq!(worker, (0..8).map(Ok).collect::<Vec<Result<u32, String>>>());
    }
    let (running, most, per_worker) = LIMITED_NOW.lock().unwrap().clone();
    assert_eq!(running, 0);
    assert_eq!(most, 5, "the most jobs running at once on all workers");
    assert_eq!(per_worker.len(), 3, "{per_worker:?}");
    assert!(
        per_worker.iter().all(|(_, _, most)| *most <= 2),
        "{per_worker:?}"
    );
    // Every worker gave its slots back at its end.
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT coalesce(sum(held), 0) FROM ordo.queue_slots"
        ),
        "0"
    );
}

/// Start times of `paced` jobs' bodies.
static PACED_STARTS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

async fn paced(ctx: Ctx, n: u32) -> Result<u32, String> {
    ctx.step("work", move || async move {
        PACED_STARTS.lock().unwrap().push(Instant::now());
        Ok::<_, String>(n)
    })
    .await
}

#[test]
fn a_queues_rate_limit_holds_across_three_workers() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("queues_shared_rate");
    let period = Duration::from_millis(1_000);
    let options = ordo::QueueOptions::new().rate_limit(4, period);
    for worker in queue_on_workers(&url, &["r1", "r2", "r3"], &options, ("paced", 4), |b| {
        b.register("paced", paced)
    }) {
        assert!(worker.iter().all(Result::is_ok), "{worker:?}");
    }
    let mut starts = PACED_STARTS.lock().unwrap().clone();
    starts.sort();
    assert_eq!(starts.len(), 12);
    // Any five consecutive starts span at least the period, less what passes between
    // a job's admission (which the limit counts) and its body's first line (which the
    // test sees): a commit and a poll, but on a loaded 2-core machine running the rest
    // of the suite a worker's thread can wait its turn for over 100 ms (CI saw 114).
    // A limit that let a fifth job in would start it with the other four, within
    // milliseconds, far inside this slack.
    let slack = Duration::from_millis(250);
    for five in starts.windows(5) {
        let span = five[4] - five[0];
        assert!(span >= period - slack, "five starts within {span:?}");
    }
}

/// `(job id, thread)` of every run of a `handed` job's body.
static HANDED_RUNS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static HANDED_NOW: Mutex<(usize, usize)> = Mutex::new((0, 0));

async fn handed(ctx: Ctx, n: u32) -> Result<u32, String> {
    let id = ctx.workflow_id().to_string();
    ctx.step("work", move || async move {
        {
            let mut now = HANDED_NOW.lock().unwrap();
            now.0 += 1;
            now.1 = now.1.max(now.0);
        }
        // Counted out also when the body is dropped (its worker went away).
        struct Running;
        impl Drop for Running {
            fn drop(&mut self) {
                HANDED_NOW.lock().unwrap().0 -= 1;
            }
        }
        let _running = Running;
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        HANDED_RUNS.lock().unwrap().push((id, thread));
        ordo::executor::sleep(Duration::from_millis(200)).await;
        Ok::<_, String>(n)
    })
    .await
}

#[test]
fn the_queued_workflows_of_a_worker_that_went_away_run_on_another() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("queues_taken_over");
    let build = |url: &str, name: &str| {
        short_lease(url, name)
            .queue("q", ordo::QueueOptions::new().concurrency(1))
            .register("handed", handed)
            .build()
            .unwrap()
    };
    let b = std::thread::Builder::new()
        .name("b".into())
        .spawn({
            let url = url.clone();
            move || {
                let b = build(&url, "b");
                b.recover().unwrap();
                // Serve (taking over) until every job is done.
                let handles: Vec<_> = (0..5u32)
                    .map(|n| loop {
                        if let Ok(h) = b.handle::<u32, String>(&format!("job-{n}")) {
                            break h;
                        }
                        b.block_on(ordo::executor::sleep(Duration::from_millis(20)));
                    })
                    .collect();
                // Bounded: a job nobody dispatches fails the test instead of hanging.
                handles
                    .iter()
                    .map(|h| {
                        let waited = b.block_on(futures::future::select(
                            Box::pin(h.result()),
                            Box::pin(ordo::executor::sleep(Duration::from_secs(60))),
                        ));
                        match waited {
                            futures::future::Either::Left((result, _)) => result.unwrap(),
                            futures::future::Either::Right(_) => Err("never ran".into()),
                        }
                    })
                    .collect::<Vec<_>>()
            }
        })
        .unwrap();
    std::thread::Builder::new()
        .name("a".into())
        .spawn({
            let url = url.clone();
            move || {
                let a = build(&url, "a");
                a.recover().unwrap();
                for n in 0..5u32 {
                    a.enqueue::<_, u32, String>(
                        "q",
                        "handed",
                        n,
                        ordo::EnqueueOptions::new().id(format!("job-{n}")),
                    )
                    .unwrap();
                }
                // The first job runs; then this worker goes away (its runtime dropped
                // mid-step), with four jobs still in the queue.
                a.block_on(ordo::executor::sleep(Duration::from_millis(100)));
            }
        })
        .unwrap()
        .join()
        .unwrap();
    let results = b.join().unwrap();
    assert_eq!(
        results,
        (0..5).map(Ok).collect::<Vec<Result<u32, String>>>()
    );
    let runs = HANDED_RUNS.lock().unwrap().clone();
    // job-0 ran on a (cut off) and again on b; the others only on b.
    assert_eq!(
        runs.iter().filter(|(id, _)| id == "job-0").count(),
        2,
        "{runs:?}"
    );
    for n in 1..5 {
        let id = format!("job-{n}");
        let on: Vec<_> = runs.iter().filter(|(job, _)| *job == id).collect();
        assert_eq!(on.len(), 1, "{id}: {runs:?}");
        assert_eq!(on[0].1, "b", "{id}: {runs:?}");
    }
    assert_eq!(HANDED_NOW.lock().unwrap().1, 1, "concurrency 1 held");
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT count(*) FROM ordo.queue_records WHERE substr(key, 1, 1) = 'e'::bytea"
        ),
        "0",
        "every job left its queue"
    );
}

/// Ids of every run of a `raced` body.
static RACED_RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

async fn raced(ctx: Ctx, n: u32) -> Result<u32, String> {
    let id = ctx.workflow_id().to_string();
    ctx.step("charge", move || async move {
        RACED_RUNS.lock().unwrap().push(id);
        ordo::executor::sleep(Duration::from_millis(50)).await;
        Ok::<_, String>(n * 2)
    })
    .await
}

#[test]
fn the_same_id_started_on_two_workers_at_once_runs_once() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("start_race");
    const IDS: u32 = 40;
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let workers: Vec<_> = ["s1", "s2"]
        .into_iter()
        .map(|name| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let rt = long_lease(&url, name)
                    .register("raced", raced)
                    .build()
                    .unwrap();
                rt.recover().unwrap();
                (0..IDS)
                    .map(|n| {
                        // Both workers start charge-n in the same instant.
                        barrier.wait();
                        match rt.start::<_, u32, String>("raced", &format!("charge-{n}"), n) {
                            Ok(handle) => rt.block_on(handle.result()).map_err(|e| e.to_string()),
                            Err(err) => Err(err.to_string()),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for worker in workers {
        let results = worker.join().unwrap();
        for (n, result) in results.into_iter().enumerate() {
            // Either this worker ran it, or it waited for the other's result.
            assert_eq!(result, Ok(Ok(n as u32 * 2)), "charge-{n}");
        }
    }
    let runs = RACED_RUNS.lock().unwrap().clone();
    let mut twice: Vec<_> = runs
        .iter()
        .filter(|id| runs.iter().filter(|other| other == id).count() > 1)
        .collect();
    twice.dedup();
    assert!(twice.is_empty(), "ran more than once: {twice:?}");
    assert_eq!(runs.len(), IDS as usize);
}

/// Ids of every run of a `fanned` body.
static FANNED_RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

async fn fanned(ctx: Ctx, n: u32) -> Result<u32, String> {
    let id = ctx.workflow_id().to_string();
    ctx.step("charge", move || async move {
        FANNED_RUNS.lock().unwrap().push(id);
        ordo::executor::sleep(Duration::from_millis(20)).await;
        Ok::<_, String>(n * 3)
    })
    .await
}

#[test]
fn one_fan_out_started_with_start_many_on_two_workers_at_once_runs_each_id_once() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("fan_out_race");
    const IDS: u32 = 64;
    // Before workflow rows were sent in id order, about one round in twenty ended in a
    // deadlock between the two workers' commits.
    const ROUNDS: u32 = 20;
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let workers: Vec<_> = ["f1", "f2"]
        .into_iter()
        .enumerate()
        .map(|(w, name)| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let rt = long_lease(&url, name)
                    .register("fanned", fanned)
                    .build()
                    .unwrap();
                rt.recover().unwrap();
                let mut results = Vec::new();
                for round in 0..ROUNDS {
                    // Both workers start the same ids at the same instant, each in its
                    // own order (the second from the end), so each commit of either
                    // holds ids the other is starting too.
                    let mut ids: Vec<u32> = (0..IDS).collect();
                    if w == 1 {
                        ids.reverse();
                    }
                    let starts = ids.iter().map(|&n| (format!("fan-{round}-{n}"), n));
                    barrier.wait();
                    // No panic here: the other worker would wait at the barrier for good.
                    let handles: Vec<Result<_, String>> =
                        match rt.start_many::<_, _, u32, String>("fanned", starts) {
                            Ok(handles) => (handles.into_iter())
                                .map(|h| h.map_err(|e| e.to_string()))
                                .collect(),
                            Err(err) => vec![Err(err.to_string()); ids.len()],
                        };
                    for (&n, handle) in ids.iter().zip(&handles) {
                        let result = match handle {
                            Ok(handle) => rt.block_on(handle.result()).map_err(|e| e.to_string()),
                            Err(err) => Err(err.clone()),
                        };
                        results.push((format!("fan-{round}-{n}"), n, result));
                    }
                }
                results
            })
        })
        .collect();
    for worker in workers {
        for (id, n, result) in worker.join().unwrap() {
            // Either this worker ran it, or it waited for the other's result.
            assert_eq!(result, Ok(Ok(n * 3)), "{id}");
        }
    }
    let mut runs = FANNED_RUNS.lock().unwrap().clone();
    runs.sort();
    let total = runs.len();
    runs.dedup();
    assert_eq!(total, runs.len(), "some ran more than once");
    assert_eq!(runs.len(), (IDS * ROUNDS) as usize, "every id ran");
}

/// `(workflow id, thread)` of every run of a `ticked` body.
static TICK_RUNS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

async fn ticked(ctx: Ctx, _tick: std::time::SystemTime) -> Result<(), String> {
    let id = ctx.workflow_id().to_string();
    ctx.step("run", move || async move {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        TICK_RUNS.lock().unwrap().push((id, thread));
        Ok::<_, String>(())
    })
    .await
}

#[test]
fn a_schedule_declared_on_two_workers_starts_each_tick_once() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("schedule_shared");
    let workers: Vec<_> = ["t1", "t2"]
        .into_iter()
        .map(|name| {
            let url = url.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let rt = long_lease(&url, name)
                        .register("ticked", ticked)
                        .schedule("every-second", "* * * * * *", "ticked")
                        .build()
                        .unwrap();
                    rt.recover().unwrap();
                    rt.block_on(ordo::executor::sleep(Duration::from_millis(3_500)));
                })
                .unwrap()
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let runs = TICK_RUNS.lock().unwrap().clone();
    let mut ids: Vec<&String> = runs.iter().map(|(id, _)| id).collect();
    ids.sort();
    let all = ids.len();
    ids.dedup();
    assert!(ids.len() >= 2, "ticks: {runs:?}");
    assert_eq!(all, ids.len(), "a tick ran twice: {runs:?}");
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT count(*) FROM ordo.workflows WHERE id LIKE 'every-second@%'"
        ),
        ids.len().to_string()
    );
}

#[test]
fn a_deduplication_id_held_on_one_worker_is_seen_by_another() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("dedup_shared");
    let build = |name: &str| {
        long_lease(&url, name)
            .queue("q", ordo::QueueOptions::new())
            .register("job", job)
            .build()
            .unwrap()
    };
    let a = build("da");
    let b = build("db");
    let later = || ordo::EnqueueOptions::new().delay(Duration::from_secs(3_600));
    let held = a
        .enqueue::<_, u32, String>(
            "q",
            "job",
            1u32,
            later()
                .id("first")
                .dedup("order-7", ordo::OnDuplicate::Reject),
        )
        .unwrap();
    a.block_on(ordo::executor::sleep(Duration::from_millis(100)));
    assert_eq!(held.id(), "first");
    let refused = b
        .enqueue::<_, u32, String>(
            "q",
            "job",
            2u32,
            later()
                .id("second")
                .dedup("order-7", ordo::OnDuplicate::Reject),
        )
        .unwrap_err();
    assert!(
        matches!(&refused, ordo::Error::Duplicate { workflow_id, .. } if workflow_id == "first"),
        "{refused:?}"
    );
    let existing = b
        .enqueue::<_, u32, String>(
            "q",
            "job",
            3u32,
            later()
                .id("third")
                .dedup("order-7", ordo::OnDuplicate::ReturnExisting),
        )
        .unwrap();
    assert_eq!(existing.id(), "first");
    b.block_on(ordo::executor::sleep(Duration::from_millis(100)));
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT string_agg(id, ',' ORDER BY id) FROM ordo.workflows"
        ),
        "first"
    );
}

#[test]
fn one_deduplication_id_enqueued_on_two_workers_at_once_is_taken_once() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("dedup_race");
    const ROUNDS: u32 = 30;
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let workers: Vec<_> = ["r1", "r2"]
        .into_iter()
        .map(|name| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let rt = long_lease(&url, name)
                    .queue("q", ordo::QueueOptions::new())
                    .register("job", job)
                    .build()
                    .unwrap();
                (0..ROUNDS)
                    .map(|n| {
                        let options = ordo::EnqueueOptions::new()
                            .id(format!("{name}-{n}"))
                            .delay(Duration::from_secs(3_600))
                            .dedup(format!("order-{n}"), ordo::OnDuplicate::Reject);
                        // Both workers enqueue under order-n in the same instant.
                        barrier.wait();
                        let outcome = rt
                            .enqueue::<_, u32, String>("q", "job", n, options)
                            .map(|handle| handle.id().to_string());
                        // Let the commit land before the next round.
                        rt.block_on(ordo::executor::sleep(Duration::from_millis(20)));
                        outcome
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<Vec<_>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    for (n, (a, b)) in outcomes[0].iter().zip(&outcomes[1]).enumerate() {
        let winner = match (a, b) {
            (Ok(id), Err(ordo::Error::Duplicate { workflow_id, .. }))
            | (Err(ordo::Error::Duplicate { workflow_id, .. }), Ok(id)) => {
                assert_eq!(workflow_id, id, "round {n}: the refusal names the holder");
                id.clone()
            }
            _ => panic!("round {n}: one enqueue must win and one be refused: {a:?} {b:?}"),
        };
        assert_eq!(
            psql(
                pg,
                &url,
                &format!("SELECT string_agg(id, ',') FROM ordo.workflows WHERE id LIKE '%-{n}'")
            ),
            winner,
            "round {n}: only the holder is enqueued"
        );
    }
}

#[test]
fn a_worker_that_declares_no_queue_leaves_a_dead_workers_queued_workflows_to_one_that_does() {
    queued_workflows_go_to_the_worker_that_declares_their_queue("queues_undeclared", None);
}

#[test]
fn a_worker_that_declares_other_queues_leaves_a_dead_workers_queued_workflows_to_one_that_does() {
    queued_workflows_go_to_the_worker_that_declares_their_queue("queues_other", Some("other"));
}

/// Worker `a` enqueues three workflows in queue `q` and goes away; worker `c`, which
/// declares `c_queue` (not `q`), runs takeover rounds meanwhile; then worker `b`, which
/// declares `q`, comes: the workflows are `b`'s, not `c`'s.
fn queued_workflows_go_to_the_worker_that_declares_their_queue(db: &str, c_queue: Option<&str>) {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database(db);
    let worker = |name: &str, queue: Option<&str>| {
        let builder =
            Runtime::builder().postgres_with(PgOptions::new(&url).worker_name(name).lease(LEASE));
        let builder = match queue {
            Some(queue) => builder.queue(queue, ordo::QueueOptions::new().concurrency(1)),
            None => builder,
        };
        builder.register("job", job).build().unwrap()
    };
    // c takes over work every half lease from now on.
    let c = worker("c", c_queue);
    c.recover().unwrap();
    {
        let a = worker("a", Some("q"));
        for n in 0..3u32 {
            a.enqueue::<_, u32, String>(
                "q",
                "job",
                n,
                ordo::EnqueueOptions::new()
                    .id(format!("undeclared-{n}"))
                    .delay(Duration::from_secs(3_600)),
            )
            .unwrap();
        }
        a.block_on(ordo::executor::sleep(Duration::from_millis(100)));
    }
    // a is gone; c's takeover passes run, then b, which declares the queue, comes.
    c.block_on(ordo::executor::sleep(Duration::from_millis(1_500)));
    let b = worker("b", Some("q"));
    b.recover().unwrap();
    b.block_on(ordo::executor::sleep(Duration::from_millis(1_500)));
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT string_agg(DISTINCT w.name, ',') FROM ordo.workflows f
                 JOIN ordo.workers w ON w.id = f.owner WHERE f.id LIKE 'undeclared-%'"
        ),
        "b",
        "the queued workflows went to the worker that declares their queue"
    );
}

/// Takeover rounds keep the wall clock, on which leases expire: under the virtual
/// clock a year-long durable sleep is reached at once, not through a takeover round
/// every half lease of virtual time (tens of millions here, each a round trip to the
/// journal: before the fix, it did not end; it fails after a minute now).
#[test]
fn a_long_virtual_sleep_is_not_held_back_by_takeover_rounds() {
    let Some(pg) = TestPostgres::shared() else {
        return;
    };
    let url = pg.database("virtual_sleep");
    let (done, ended) = std::sync::mpsc::channel();
    // The run on a thread of its own, so that a regression fails here instead of hanging.
    std::thread::spawn(move || {
        let rt = Runtime::builder()
            .postgres_with(PgOptions::new(url).worker_name("napper").lease(LEASE))
            .clock(ordo::Clock::Virtual)
            .register("nap", |ctx: Ctx, days: u64| async move {
                ctx.sleep(Duration::from_secs(days * 24 * 3600)).await;
                Ok::<_, String>(days)
            })
            .build()
            .expect("runtime");
        // Recovery starts the takeover rounds.
        assert!(rt.recover().expect("recover").is_clean());
        let handle = rt
            .start::<_, u64, String>("nap", "nap-1", 365u64)
            .expect("start");
        let _ = done.send(rt.block_on(handle.result()).expect("wakes"));
    });
    let result = ended
        .recv_timeout(Duration::from_secs(60))
        .expect("a year-long virtual sleep ends within a minute of wall time");
    assert_eq!(result, Ok(365));
}

/// `(workflow id, input)` of every run of a `reindex` body.
static REINDEX_RUNS: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

async fn reindex(ctx: Ctx, doc: u32) -> Result<u32, String> {
    let id = ctx.workflow_id().to_string();
    ctx.step("index", move || async move {
        REINDEX_RUNS.lock().unwrap().push((id, doc));
        Ok::<_, String>(doc)
    })
    .await
}

/// The runs of `reindex` whose id starts with `prefix`.
fn reindex_runs(prefix: &str) -> Vec<(String, u32)> {
    let runs = REINDEX_RUNS.lock().unwrap();
    runs.iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .cloned()
        .collect()
}

#[test]
fn calls_for_one_debounce_key_on_two_workers_start_one_workflow_with_the_last_input() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("debounce_shared");
    const CALLS: u32 = 20;
    let quiet = ordo::DebounceOptions::new(Duration::from_millis(700));
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let workers: Vec<_> = ["ba", "bb"]
        .into_iter()
        .enumerate()
        .map(|(me, name)| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let rt = long_lease(&url, name)
                    .register("reindex", reindex)
                    .build()
                    .unwrap();
                let mut ids = Vec::new();
                for n in 0..CALLS {
                    // The two workers take turns: call n goes to worker n % 2.
                    barrier.wait();
                    if n as usize % 2 == me {
                        ids.push(rt.debounce("reindex", "doc-1", n, quiet).unwrap());
                        rt.block_on(ordo::executor::sleep(Duration::from_millis(20)));
                    }
                    barrier.wait();
                }
                rt.block_on(ordo::executor::sleep(Duration::from_millis(2_000)));
                ids
            })
        })
        .collect();
    let ids: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(ids.len(), CALLS as usize);
    assert!(
        ids.iter().all(|id| id == &ids[0]),
        "every call of the round returns its id: {ids:?}"
    );
    assert_eq!(
        reindex_runs("reindex/doc-1@"),
        vec![(ids[0].clone(), CALLS - 1)],
        "one run, with the last call's input"
    );
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT string_agg(id || ' ' || status, ',') FROM ordo.workflows"
        ),
        format!("{} 1", ids[0])
    );
}

#[test]
fn a_debounced_call_outlives_the_worker_that_took_it() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("debounce_takeover");
    let c = worker_for_debounce(&url, "c");
    c.recover().unwrap();
    let id = {
        let a = worker_for_debounce(&url, "a");
        let quiet = ordo::DebounceOptions::new(Duration::from_millis(300));
        a.debounce("reindex", "doc-9", 41u32, quiet).unwrap();
        a.debounce("reindex", "doc-9", 42u32, quiet).unwrap()
        // a goes away before the round is due.
    };
    c.block_on(ordo::executor::sleep(Duration::from_millis(3_000)));
    assert_eq!(reindex_runs("reindex/doc-9@"), vec![(id.clone(), 42)]);
    assert_eq!(
        psql(
            pg,
            &url,
            "SELECT string_agg(f.id || ' ' || w.name, ',') FROM ordo.workflows f
                 JOIN ordo.workers w ON w.id = f.owner"
        ),
        format!("{id} c"),
        "the worker that took the round over ran it"
    );
}

/// A cancel on one worker of the id another worker's debounce call returned, made after
/// both started (the cancelling worker has not read the call), takes the round back:
/// nothing runs on either worker, and both see it cancelled.
#[test]
fn a_debounced_call_is_cancelled_from_another_worker() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("debounce_cancel");
    let a = worker_for_debounce(&url, "a");
    let b = worker_for_debounce(&url, "b");
    let quiet = ordo::DebounceOptions::new(Duration::from_millis(300));
    let id = a.debounce("reindex", "doc-c", 7u32, quiet).unwrap();
    assert!(
        b.cancel(&id).unwrap(),
        "the other worker's call is cancelled"
    );
    // Past the quiet period, both driven: the worker that took the call does not fire it.
    a.block_on(ordo::executor::sleep(Duration::from_millis(1_500)));
    b.block_on(ordo::executor::sleep(Duration::from_millis(300)));
    assert_eq!(reindex_runs("reindex/doc-c@"), vec![]);
    for rt in [&a, &b] {
        let handle = rt.handle::<u32, String>(&id).unwrap();
        assert!(matches!(
            rt.block_on(handle.result()),
            Err(ordo::Error::Cancelled { .. })
        ));
    }
}

/// Debounced rounds of a workflow a worker does not register are left to a worker that
/// does: a worker of other workflows that learns of them never fires them (it used to
/// delete them, and they never ran).
#[test]
fn a_worker_leaves_debounced_rounds_of_workflows_it_does_not_register() {
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let url = pg.database("debounce_unregistered");
    let quiet = ordo::DebounceOptions::new(Duration::from_millis(200));
    let ids: Vec<String> = {
        let a = worker_for_debounce(&url, "a");
        (0..3u32)
            .map(|n| {
                a.debounce("reindex", &format!("doc-u{n}"), 300 + n, quiet)
                    .unwrap()
            })
            .collect()
        // a goes away before the rounds are due.
    };
    let other = Runtime::builder()
        .postgres_with(PgOptions::new(&url).worker_name("d").lease(LEASE))
        .register("other", reindex)
        .build()
        .unwrap();
    other.recover().unwrap();
    other.block_on(ordo::executor::sleep(Duration::from_millis(1_500)));
    assert_eq!(reindex_runs("reindex/doc-u"), vec![]);
    let c = worker_for_debounce(&url, "c");
    c.recover().unwrap();
    for id in &ids {
        let handle = c.handle::<u32, String>(id).unwrap();
        assert!(c.block_on(handle.result()).unwrap().is_ok(), "{id}");
    }
    let mut ran: Vec<u32> = reindex_runs("reindex/doc-u")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    ran.sort_unstable();
    assert_eq!(ran, vec![300, 301, 302]);
}

/// A worker that fired a debounced round (swapped it out of its key) but whose commit
/// of the start failed leaves the fired record; the next worker to start starts it,
/// once, with the round's last input. The failing commit is the first, second or third
/// of the worker; at least one of them is the start's (a later one fails the workflow's
/// step, which the next worker takes over and runs again).
#[test]
fn a_fired_debounce_round_whose_start_was_not_committed_starts_on_the_next_worker() {
    use common::faulty::{Fault, FaultyStore, Log};
    let Some(pg) = TestPostgres::shared() else {
        eprintln!("skipped: no PostgreSQL server");
        return;
    };
    let mut left_fired = 0;
    for failing in 1..=3u64 {
        let url = pg.database(&format!("debounce_fired_{failing}"));
        let key = format!("doc-f{failing}");
        let id = {
            let journal = PgOptions::new(&url)
                .worker_name("a")
                .lease(LEASE)
                .connect()
                .unwrap();
            let store = FaultyStore::new(
                Box::new(journal),
                Log::default(),
                Some((failing, Fault::BeforeApply)),
            );
            let a = Runtime::builder()
                .store(Box::new(store))
                .register("reindex", reindex)
                .build()
                .unwrap();
            let quiet = ordo::DebounceOptions::new(Duration::from_millis(100));
            a.debounce("reindex", &key, 6u32, quiet).unwrap();
            let id = a.debounce("reindex", &key, 7u32, quiet).unwrap();
            a.block_on(ordo::executor::sleep(Duration::from_millis(500)));
            id
        };
        let fired: usize = psql(
            pg,
            &url,
            "SELECT count(*) FROM ordo.queue_records WHERE get_byte(key, 0) = 102",
        )
        .parse()
        .unwrap();
        left_fired += fired;
        // b takes over what a started, if a's failing commit came after the start.
        let b = worker_for_debounce(&url, "b");
        b.recover().unwrap();
        b.block_on(ordo::executor::sleep(Duration::from_millis(2_500)));
        let runs = reindex_runs(&format!("reindex/{key}@"));
        assert!(
            !runs.is_empty() && runs.iter().all(|run| run == &(id.clone(), 7)),
            "failing commit {failing}: the round ran, with the last input: {runs:?}"
        );
        assert_eq!(
            psql(
                pg,
                &url,
                "SELECT string_agg(id || ' ' || status, ',') FROM ordo.workflows"
            ),
            format!("{id} 1"),
            "failing commit {failing}: one workflow, succeeded"
        );
        assert_eq!(
            psql(pg, &url, "SELECT count(*) FROM ordo.queue_records"),
            "0",
            "failing commit {failing}: no debounce record is left"
        );
    }
    assert!(
        left_fired > 0,
        "no failing commit was the fired round's start"
    );
}

fn worker_for_debounce(url: &str, name: &str) -> Runtime {
    short_lease(url, name)
        .register("reindex", reindex)
        .build()
        .unwrap()
}
