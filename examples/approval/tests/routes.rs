//! The three ways an expense ends, driven over HTTP against the real binary: approved
//! and paid, rejected, expired after the (sped-up) 48-hour timeout; and what the
//! routes answer to requests that make no sense.

mod common;

use std::time::{Duration, Instant};

use common::{data_dir, journal, ledger, ledger_count, Server, ONE_SECOND};
use ordo::journal::Status;

#[test]
fn an_approved_expense_is_paid_once() {
    let (_dir, data) = data_dir();
    let server = Server::start(&data, &[]);
    let id = server.create("ada", 120);
    assert_eq!(id, "exp-1");

    let waiting = server.show(&id);
    assert_eq!(waiting["status"], "awaiting_approval", "{waiting}");
    assert!(waiting["result"].is_null(), "{waiting}");

    let (code, approved) = server.request(
        "POST",
        &format!("/expenses/{id}/approve"),
        r#"{"by": "bob"}"#,
    );
    assert_eq!(code, 200, "{approved}");
    assert_eq!(approved["status"], "paid", "{approved}");
    assert_eq!(approved["result"]["outcome"], "paid", "{approved}");
    assert_eq!(approved["result"]["by"], "bob", "{approved}");
    assert_eq!(server.show(&id), approved, "GET says what approve answered");

    // A second decision is refused: the expense is no longer waiting.
    let (code, again) = server.request("POST", &format!("/expenses/{id}/approve"), "");
    assert_eq!(code, 409, "{again}");

    assert_eq!(
        ledger(&data),
        vec![
            ("reserve".into(), id.clone(), 120),
            ("pay".into(), id.clone(), 120)
        ]
    );
    let (status, steps) = journal(&data, &id);
    assert_eq!(status, Status::Succeeded);
    assert_eq!(steps.iter().filter(|s| *s == "pay").count(), 1, "{steps:?}");
}

#[test]
fn a_rejected_expense_gives_its_budget_back() {
    let (_dir, data) = data_dir();
    let server = Server::start(&data, &["--budget", "100"]);
    let id = server.create("ada", 100);
    // The whole budget is reserved: a second expense is refused.
    let refused = server.create("cy", 1);
    assert_eq!(server.show(&refused)["status"], "refused");
    assert_eq!(
        server.show(&refused)["result"]["reason"],
        "over budget: 1 asked, 0 left"
    );

    let (code, rejected) = server.request(
        "POST",
        &format!("/expenses/{id}/reject"),
        r#"{"reason": "no receipt"}"#,
    );
    assert_eq!(code, 200, "{rejected}");
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert_eq!(rejected["result"]["outcome"], "rejected", "{rejected}");
    assert_eq!(rejected["result"]["reason"], "no receipt", "{rejected}");
    let (code, late) = server.request("POST", &format!("/expenses/{id}/approve"), "");
    assert_eq!(code, 409, "an approval after the rejection: {late}");

    // The release gave the 100 back: a new expense of 100 is accepted.
    let next = server.create("dee", 100);
    assert_eq!(server.show(&next)["status"], "awaiting_approval");
    assert_eq!(ledger_count(&data, "release", &id), 1);
    assert_eq!(ledger_count(&data, "pay", &id), 0);
}

#[test]
fn an_expense_nobody_decides_on_expires_at_its_deadline() {
    let (_dir, data) = data_dir();
    let speed = ONE_SECOND.to_string();
    let server = Server::start(&data, &["--speed", &speed]);
    let started = Instant::now();
    let id = server.create("ada", 30);
    assert_eq!(server.show(&id)["status"], "awaiting_approval");
    let expired = server.wait_for_status(&id, "expired", Duration::from_secs(20));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "expired after {waited:?}, before its 1 s deadline"
    );
    assert_eq!(expired["result"]["outcome"], "expired", "{expired}");
    assert_eq!(expired["result"]["waited_ms"], 1000, "{expired}");
    assert_eq!(ledger_count(&data, "release", &id), 1);
    assert_eq!(ledger_count(&data, "pay", &id), 0);
}

#[test]
fn nonsense_is_answered_with_an_error() {
    let (_dir, data) = data_dir();
    let server = Server::start(&data, &[]);
    let (code, body) = server.request("GET", "/expenses/exp-404", "");
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("no expense \"exp-404\""))
    );
    let (code, _) = server.request("POST", "/expenses/exp-404/approve", "");
    assert_eq!(code, 404);
    let (code, body) = server.request("POST", "/expenses", r#"{"who": "ada"}"#);
    assert_eq!(code, 400, "an expense without an amount: {body}");
    let (code, body) = server.request("POST", "/expenses", "{not json");
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid JSON")),
        "{body}"
    );
}
