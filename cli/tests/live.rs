//! The `ordo` CLI against a running application: a child process (this test binary,
//! running the ignored `live_app`) holds the journal and serves its admin socket; the
//! CLI's `list`, `show`, `stats`, `cancel`, `resume`, `fork` and `gc` go through it, and
//! what they did is checked in the journal once the application is killed. Bad bytes on
//! the socket get typed errors and the application keeps running its workflows; the
//! socket is private (0600), and one left by a SIGKILLed process does not stop the next.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ordo, text};
use ordo::journal::{SledJournal, Store};
use ordo::{Ctx, Durability, Runtime, Status};
use serde_json::Value;

/// The environment variable that hands the worker its folder.
const ENV: &str = "ORDO_LIVE_TEST_DIR";

// ----- the application ----------------------------------------------------------------

/// Appends `line` to `<root>/runs.log`: which step bodies really ran.
fn note(line: &str) {
    let Ok(root) = std::env::var(ENV) else { return };
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&root).join("runs.log"))
        .expect("open the runs log");
    writeln!(log, "{line}").expect("note a run");
}

async fn count(ctx: Ctx, n: u32) -> Result<u32, String> {
    let mut total = 0;
    for i in 0..n {
        total += ctx
            .step("add", move || async move { Ok::<_, String>(i) })
            .await?;
    }
    Ok(total)
}

async fn nap(ctx: Ctx, _: ()) -> Result<(), String> {
    ctx.step("first", || async {
        note("first");
        Ok::<_, String>(())
    })
    .await?;
    ctx.sleep(Duration::from_secs(8)).await;
    ctx.step("second", || async {
        note("second");
        Ok::<_, String>(())
    })
    .await
}

async fn hold(ctx: Ctx, _: ()) -> Result<(), String> {
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(())
}

async fn tree(ctx: Ctx, _: ()) -> Result<(), String> {
    let child = ctx.start_child::<_, (), String>("hold", ());
    child.result().await.map_err(|e| e.to_string())?
}

/// The application: starts its workflows (the same ids on every start, so a restart
/// finds them recorded), says "ready" once the quick ones finished, and runs until it
/// is killed.
#[test]
#[ignore = "the application the live tests run in a child process"]
fn live_app() {
    let Ok(root) = std::env::var(ENV) else {
        return;
    };
    let rt = Runtime::builder()
        .path(Path::new(&root).join("data"))
        .durability(Durability::Flush)
        .register("count", count)
        .register("nap", nap)
        .register("hold", hold)
        .register("tree", tree)
        .build()
        .expect("the application starts");
    rt.recover().expect("recover");
    let done_1 = rt
        .start::<_, u32, String>("count", "done-1", 3u32)
        .expect("start");
    let done_2 = rt
        .start::<_, u32, String>("count", "done-2", 2u32)
        .expect("start");
    for (name, id) in [
        ("nap", "nap-1"),
        ("hold", "hold-1"),
        ("hold", "hold-2"),
        ("tree", "tree-1"),
    ] {
        rt.start::<_, (), String>(name, id, ()).expect("start");
    }
    rt.block_on(done_1.result()).expect("done-1").expect("ok");
    rt.block_on(done_2.result()).expect("done-2").expect("ok");
    // Lets the tree launch its child.
    rt.block_on(ordo::executor::sleep(Duration::from_millis(100)));
    println!("ready");
    std::io::stdout().flush().expect("flush");
    rt.block_on(futures::future::pending::<()>());
}

// ----- helpers ------------------------------------------------------------------------

/// Starts the application on `root` and returns once it said "ready".
fn start_app(root: &Path) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["--exact", "live_app", "--nocapture", "--ignored"])
        .env(ENV, root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the application spawns");
    let stdout = child.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("ready"));
    assert!(ready, "the application ended before it was ready");
    child
}

/// SIGKILL, and reap.
fn kill(mut child: Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

/// Runs `ordo <args> --data <root>/data`.
fn ordo_at(root: &Path, args: &[&str]) -> Output {
    let data = root.join("data");
    let data = data.to_str().expect("temp paths are UTF-8");
    let mut all = args.to_vec();
    all.extend(["--data", data]);
    ordo(&all)
}

/// `ordo <args>`, which must succeed; its stdout.
fn ok(root: &Path, args: &[&str]) -> String {
    let out = ordo_at(root, args);
    assert!(
        out.status.success(),
        "ordo {args:?} failed ({:?}): {}",
        out.status.code(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `ordo <args> --json`, which must succeed; its JSON.
fn ok_json(root: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(root, &all);
    serde_json::from_str(&out).unwrap_or_else(|err| panic!("not JSON ({err}): {out}"))
}

/// `ordo <args>`, which must fail with `code` and one line on stderr; that line.
fn fails(root: &Path, args: &[&str], code: i32) -> String {
    let out = ordo_at(root, args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "ordo {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("ordo: "), "{stderr:?}");
    stderr
}

/// Waits (up to a minute) for `ordo show ID` to report `status`.
fn wait_for_status(root: &Path, id: &str, status: &str) -> Value {
    let began = Instant::now();
    loop {
        let shown = ok_json(root, &["show", id]);
        if shown["record"]["status"] == status {
            return shown;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "{id} is still {} after a minute",
            shown["record"]["status"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every workflow's status in the journal (opened once the application is gone).
fn journal_statuses(root: &Path) -> BTreeMap<String, Status> {
    let journal = SledJournal::open_existing(root.join("data")).expect("open the journal");
    journal
        .workflows(None)
        .expect("read workflows")
        .into_iter()
        .map(|w| (w.id, w.status))
        .collect()
}

/// The `list --json` rows by id.
fn rows(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|row| (row["id"].as_str().expect("an id").to_string(), row.clone()))
        .collect()
}

fn runs(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

// ----- the tests ----------------------------------------------------------------------

#[test]
fn the_cli_lists_shows_counts_cancels_resumes_forks_and_collects_through_a_running_app() {
    let root = tempfile::tempdir().expect("temp dir");
    let root = root.path();
    let app = start_app(root);

    // Reads: the live state, as the application has it.
    let listed = rows(&ok_json(root, &["list"]));
    let ids: Vec<&str> = listed.keys().map(String::as_str).collect();
    assert_eq!(
        ids,
        ["done-1", "done-2", "hold-1", "hold-2", "nap-1", "tree-1", "tree-1/0"]
    );
    assert_eq!(listed["done-1"]["status"], "succeeded");
    assert_eq!(listed["done-1"]["steps"], 3);
    assert_eq!(listed["hold-1"]["status"], "pending");
    let pending = rows(&ok_json(root, &["list", "--status", "pending"]));
    assert!(pending.contains_key("hold-1") && !pending.contains_key("done-1"));
    let text_list = ok(root, &["list"]);
    assert!(text_list.starts_with("ID"), "{text_list}");
    assert!(text_list.contains("tree-1/0"), "{text_list}");

    let shown = ok_json(root, &["show", "done-1"]);
    assert_eq!(shown["record"]["status"], "succeeded");
    let seqs: Vec<u64> = shown["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["seq"].as_u64().expect("a seq"))
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert!(ok(root, &["show", "done-1"]).contains("add"));
    fails(root, &["show", "nobody"], 3);

    let stats = ok_json(root, &["stats"]);
    let by_status = |status: &str| listed.values().filter(|r| r["status"] == status).count();
    assert_eq!(stats["workflows"], listed.len());
    assert_eq!(stats["succeeded"], by_status("succeeded"));
    assert_eq!(stats["pending"], by_status("pending"));
    let steps: u64 = listed
        .values()
        .map(|r| r["steps"].as_u64().expect("steps"))
        .sum();
    assert_eq!(stats["completions"], steps);
    assert!(stats["size_on_disk_bytes"].as_u64().expect("a size") > 0);

    // Cancel: one, and a tree.
    assert_eq!(ok(root, &["cancel", "hold-1"]), "cancelled hold-1\n");
    let tree = ok_json(root, &["cancel", "tree-1", "--children"]);
    assert_eq!(tree["cancelled"], serde_json::json!(["tree-1", "tree-1/0"]));
    let again = ok_json(root, &["cancel", "done-1"]);
    assert_eq!(again["cancelled"], serde_json::json!([]));
    fails(root, &["cancel", "nobody"], 3);
    let live = rows(&ok_json(root, &["list"]));
    assert_eq!(live["hold-1"]["status"], "cancelled");
    assert_eq!(live["tree-1/0"]["status"], "cancelled");

    // Resume: the cancelled nap runs again, its recorded first step is not re-run.
    assert_eq!(ok(root, &["cancel", "nap-1"]), "cancelled nap-1\n");
    assert_eq!(ok(root, &["resume", "nap-1"]), "resumed nap-1\n");
    let napped = wait_for_status(root, "nap-1", "succeeded");
    let names: Vec<&str> = napped["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| ["first", "second"].contains(n))
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(runs(root), ["first", "second"]);
    let refused = fails(root, &["resume", "done-1"], 1);
    assert!(refused.contains("done-1"), "{refused}");

    // Fork: keeps the first step of done-1, runs the rest live.
    let forked = ok_json(root, &["fork", "done-1", "--at", "1", "--id", "copy-1"]);
    assert_eq!(forked["forked"], "copy-1");
    let copy = wait_for_status(root, "copy-1", "succeeded");
    let original = ok_json(root, &["show", "done-1"]);
    assert_eq!(copy["steps"][0], original["steps"][0]); // copied, times and all
    assert_eq!(copy["steps"].as_array().map(Vec::len), Some(3));
    let default_id = ok(root, &["fork", "done-2", "--at", "0"]);
    assert_eq!(
        default_id,
        "forked done-2 at seq 0 as done-2.fork-0 (now running)\n"
    );
    let out_of_range = fails(root, &["fork", "done-1", "--at", "9"], 1);
    assert!(out_of_range.contains("done-1"), "{out_of_range}");
    wait_for_status(root, "done-2.fork-0", "succeeded");

    kill(app);
    // What the application did is in the journal.
    let statuses = journal_statuses(root);
    assert_eq!(statuses["hold-1"], Status::Cancelled);
    assert_eq!(statuses["tree-1"], Status::Cancelled);
    assert_eq!(statuses["tree-1/0"], Status::Cancelled);
    assert_eq!(statuses["hold-2"], Status::Pending);
    assert_eq!(statuses["nap-1"], Status::Succeeded);
    assert_eq!(statuses["copy-1"], Status::Succeeded);
    let journal = SledJournal::open_existing(root.join("data")).expect("open");
    assert_eq!(
        journal.completions("copy-1").expect("read")[0],
        journal.completions("done-1").expect("read")[0]
    );
    drop(journal);

    // Gc through the restarted application: every finished workflow goes, the pending
    // one stays.
    let app = start_app(root);
    let finished = statuses.values().filter(|s| **s != Status::Pending).count();
    let collected = ok_json(root, &["gc", "--older-than", "0s"]);
    assert_eq!(collected["deleted"], finished);
    let left = rows(&ok_json(root, &["list"]));
    assert_eq!(left.keys().collect::<Vec<_>>(), ["hold-2"]);
    kill(app);
    let statuses = journal_statuses(root);
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        [("hold-2".to_string(), Status::Pending)]
    );
}

/// Sends `bytes` on a new connection and reads one reply line.
fn exchange(stream: &mut UnixStream, bytes: &[u8]) -> Value {
    stream.write_all(bytes).expect("send");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        let n = stream.read(&mut byte).expect("read the reply");
        assert_eq!(n, 1, "the socket closed before replying");
        line.push(byte[0]);
    }
    serde_json::from_slice(&line).expect("a JSON reply")
}

fn error_kind(reply: &Value) -> &str {
    reply["error"]["kind"].as_str().unwrap_or("<no error>")
}

#[test]
fn bad_requests_get_typed_errors_and_the_app_keeps_running_its_workflows() {
    let root = tempfile::tempdir().expect("temp dir");
    let root = root.path();
    let app = start_app(root);
    let socket: PathBuf = root.join("data").join(ordo::admin::SOCKET_FILE);

    let mut conn = UnixStream::connect(&socket).expect("connect");
    let garbage = exchange(&mut conn, b"\xff\xfe\x00 not json at all\n");
    assert_eq!(error_kind(&garbage), "bad_frame", "{garbage}");
    let no_verb = exchange(&mut conn, b"[1, 2, 3]\n");
    assert_eq!(error_kind(&no_verb), "bad_frame", "{no_verb}");
    let unknown = exchange(&mut conn, b"{\"verb\":\"explode\"}\n");
    assert_eq!(error_kind(&unknown), "unknown_verb", "{unknown}");
    assert!(unknown["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("explode")));
    let missing = exchange(&mut conn, b"{\"verb\":\"show\"}\n");
    assert_eq!(error_kind(&missing), "bad_request", "{missing}");
    let not_found = exchange(&mut conn, b"{\"verb\":\"show\",\"id\":\"nobody\"}\n");
    assert_eq!(error_kind(&not_found), "not_found", "{not_found}");
    // The same connection still serves good requests.
    let shown = exchange(&mut conn, b"{\"verb\":\"show\",\"id\":\"done-1\"}\n");
    assert_eq!(shown["ok"]["record"]["status"], "succeeded", "{shown}");
    drop(conn);

    // An oversize frame: an error, then the connection is closed.
    let mut conn = UnixStream::connect(&socket).expect("connect");
    let huge = vec![b'x'; ordo::admin::MAX_FRAME + 100];
    let too_large = exchange(&mut conn, &huge);
    assert_eq!(error_kind(&too_large), "frame_too_large", "{too_large}");
    let mut rest = Vec::new();
    drop(conn.read_to_end(&mut rest)); // closed (or reset: the tail was never read)
    assert!(rest.is_empty());

    // Clients that go away in the middle of a request, and before their reply.
    let mut half = UnixStream::connect(&socket).expect("connect");
    half.write_all(b"{\"verb\":\"li").expect("send half");
    drop(half);
    let mut hasty = UnixStream::connect(&socket).expect("connect");
    hasty.write_all(b"{\"verb\":\"stats\"}\n").expect("send");
    drop(hasty);
    let mut cut = UnixStream::connect(&socket).expect("connect");
    cut.write_all(b"{\"verb\":\"stats\"").expect("send half");
    cut.shutdown(std::net::Shutdown::Write).expect("half close");
    let mut reply = String::new();
    cut.read_to_string(&mut reply).expect("read");
    let reply: Value = serde_json::from_str(&reply).expect("a JSON reply");
    assert_eq!(error_kind(&reply), "bad_frame", "{reply}");

    // The application still runs workflows: a fork of done-1 runs to its end.
    ok(
        root,
        &["fork", "done-1", "--at", "0", "--id", "after-garbage"],
    );
    let after = wait_for_status(root, "after-garbage", "succeeded");
    assert_eq!(after["steps"].as_array().map(Vec::len), Some(3));
    kill(app);
    assert_eq!(journal_statuses(root)["after-garbage"], Status::Succeeded);
}

#[test]
fn the_socket_is_private_and_one_left_by_a_killed_app_does_not_stop_a_restart() {
    let root = tempfile::tempdir().expect("temp dir");
    let root = root.path();
    let socket = root.join("data").join(ordo::admin::SOCKET_FILE);
    let app = start_app(root);
    let meta = std::fs::symlink_metadata(&socket).expect("the socket exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    kill(app);
    assert!(
        std::fs::symlink_metadata(&socket).is_ok_and(|m| m.file_type().is_socket()),
        "a SIGKILLed application leaves its socket behind"
    );
    // Nobody serves it: the CLI reads the journal itself, and refuses what needs the
    // application.
    let listed = rows(&ok_json(root, &["list"]));
    assert_eq!(listed["done-1"]["status"], "succeeded");
    let refused = fails(root, &["cancel", "hold-2"], 4);
    assert!(
        refused.contains("needs the running application"),
        "{refused}"
    );
    fails(root, &["resume", "hold-2"], 4);
    fails(root, &["fork", "done-1", "--at", "0"], 4);
    assert_eq!(journal_statuses(root)["hold-2"], Status::Pending);

    // The next start replaces the stale socket and serves it.
    let app = start_app(root);
    let meta = std::fs::symlink_metadata(&socket).expect("the socket exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(ok(root, &["cancel", "hold-2"]), "cancelled hold-2\n");
    kill(app);
    assert_eq!(journal_statuses(root)["hold-2"], Status::Cancelled);
}

/// An application whose runtime is not being driven (its thread busy elsewhere) answers
/// its socket only once it is: a read does not wait for it for long, it reads the
/// journal itself (within the CLI's read patience, 10 s, not the 600 s a change waits).
#[test]
fn a_read_of_an_application_that_does_not_drive_its_runtime_reads_the_journal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = Runtime::builder()
        .path(dir.path())
        .register("count", count)
        .build()
        .expect("build");
    let h = rt
        .start::<_, u32, String>("count", "c-1", 3u32)
        .expect("start");
    assert_eq!(rt.block_on(h.result()).expect("runs"), Ok(3));
    assert!(dir.path().join(ordo::admin::SOCKET_FILE).exists());
    // This thread runs the CLI and does not drive the runtime meanwhile.
    let began = Instant::now();
    let out = ordo(&["list", "--data", dir.path().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("c-1"), "{}", text(&out.stdout));
    assert!(
        began.elapsed() < Duration::from_secs(120),
        "the read waited {:?}",
        began.elapsed()
    );
    drop(rt);
}
