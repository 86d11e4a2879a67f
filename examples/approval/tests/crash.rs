//! Killing the server (SIGKILL: no cleanup) at different moments of an expense's life
//! and starting it again on the same data folder: the expense reaches the end it would
//! have reached, and it is paid exactly once: one `pay` line in the ledger, one `pay`
//! completion in the journal.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{data_dir, journal, ledger_count, send_only, Server, ONE_SECOND};
use ordo::journal::Status;

/// What every approved expense must look like at the end, in ledger and journal.
fn paid_exactly_once(data: &Path, id: &str, what: &str) {
    assert_eq!(ledger_count(data, "reserve", id), 1, "{what}: reserves");
    assert_eq!(ledger_count(data, "pay", id), 1, "{what}: payments");
    assert_eq!(ledger_count(data, "release", id), 0, "{what}: releases");
    let (status, steps) = journal(data, id);
    assert_eq!(status, Status::Succeeded, "{what}");
    let pays = steps.iter().filter(|s| *s == "pay").count();
    assert_eq!(pays, 1, "{what}: `pay` completions in {steps:?}");
}

/// Approves `id` on `server` if it is still waiting (a client retrying a decision
/// that a killed server may or may not have stored), and waits for it to be paid.
fn approve_until_paid(server: &Server, id: &str, what: &str) {
    let now = server.show(id);
    if now["status"] == "awaiting_approval" {
        let (code, body) = server.request("POST", &format!("/expenses/{id}/approve"), "");
        assert!(
            code == 200 || code == 409,
            "{what}: approve answered {code} {body}"
        );
    }
    let paid = server.wait_for_status(id, "paid", Duration::from_secs(20));
    assert_eq!(paid["result"]["outcome"], "paid", "{what}: {paid}");
}

#[test]
fn killed_after_create_then_approved_after_restart() {
    let (_dir, data) = data_dir();
    let server = Server::start(&data, &[]);
    let id = server.create("ada", 120);
    server.kill();

    let server = Server::start(&data, &[]);
    assert!(
        server
            .stdout()
            .iter()
            .any(|l| l.contains("resuming 1 expense(s)") && l.contains(&id)),
        "{:?}",
        server.stdout()
    );
    assert_eq!(server.show(&id)["status"], "awaiting_approval");
    // The next id follows the journal's: a restarted server does not hand out exp-1 again.
    assert_eq!(server.create("cy", 5), "exp-2");
    approve_until_paid(&server, &id, "killed after create");
    server.kill();
    paid_exactly_once(&data, &id, "killed after create");
}

#[test]
fn killed_while_creating_or_approving_at_many_moments() {
    // Delays after the request is written, in ms: before it is read, while its commit
    // is under way, after it, while the payment runs.
    for delay in [0u64, 1, 2, 4, 8, 15, 30, 60] {
        let (_dir, data) = data_dir();

        // Killed while the create is in flight: the expense may or may not exist.
        let server = Server::start(&data, &[]);
        let pending = send_only(
            &server.addr,
            "POST",
            "/expenses",
            r#"{"who": "ada", "amount": 120}"#,
        );
        std::thread::sleep(Duration::from_millis(delay));
        server.kill();
        drop(pending);
        let server = Server::start(&data, &[]);
        let (code, _) = server.request("GET", "/expenses/exp-1", "");
        let id = if code == 404 {
            server.create("ada", 120)
        } else {
            "exp-1".to_string()
        };
        assert_eq!(id, "exp-1", "kill {delay} ms into create");
        assert_eq!(server.show(&id)["status"], "awaiting_approval");

        // Killed while the approval is in flight: stored or not, never paid twice.
        let pending = send_only(
            &server.addr,
            "POST",
            &format!("/expenses/{id}/approve"),
            r#"{"by": "bob"}"#,
        );
        std::thread::sleep(Duration::from_millis(delay));
        server.kill();
        drop(pending);
        let what = format!("kill {delay} ms into approve");
        let server = Server::start(&data, &[]);
        let found = server.show(&id)["status"].clone();
        let resumed = server.stdout().iter().any(|l| l.contains("resuming"));
        eprintln!("{what}: after the restart {found} (resumed: {resumed}); create {code}");
        approve_until_paid(&server, &id, &what);

        // And once more after the end: a finished expense stays as it is.
        let before = server.show(&id);
        server.kill();
        let server = Server::start(&data, &[]);
        assert_eq!(server.show(&id), before, "{what}: after a restart");
        assert!(
            !server.stdout().iter().any(|l| l.contains("resuming")),
            "{what}: nothing left to resume: {:?}",
            server.stdout()
        );
        server.kill();
        paid_exactly_once(&data, &id, &what);
    }
}

#[test]
fn the_deadline_survives_a_kill_and_a_restart_at_another_speed() {
    let (_dir, data) = data_dir();
    // A 3-second deadline, recorded with the expense.
    let speed = (ONE_SECOND / 3).to_string();
    let server = Server::start(&data, &["--speed", &speed]);
    let created = Instant::now();
    let id = server.create("ada", 10);
    server.kill();

    // Restarted at normal speed: the recorded deadline holds, not a new 48 hours, and
    // only what remains of it is waited.
    let server = Server::start(&data, &[]);
    let expired = server.wait_for_status(&id, "expired", Duration::from_secs(30));
    let waited = created.elapsed();
    assert!(
        waited >= Duration::from_millis(2900),
        "expired {waited:?} after creation, before its 3 s deadline"
    );
    assert_eq!(expired["result"]["waited_ms"], 3000, "{expired}");
    server.kill();
    assert_eq!(ledger_count(&data, "release", &id), 1);
    assert_eq!(ledger_count(&data, "pay", &id), 0);
}
