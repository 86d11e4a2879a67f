//! Runs the `approval` binary that cargo builds for this package's tests
//! (`CARGO_BIN_EXE_approval`) and talks to it over plain HTTP/1.1 on a
//! `std::net::TcpStream`: no HTTP client crate.

#![allow(dead_code)] // each test file uses its own part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ordo::journal::{SledJournal, Status, Store};
use serde_json::Value;

/// 48 hours in seconds: `--speed` with this makes the decision timeout one second.
pub const ONE_SECOND: u64 = 48 * 3600;

/// A running server.
pub struct Server {
    child: Child,
    pub addr: String,
    /// Every line it printed so far.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the server on `data` with extra `args`, and waits until it listens.
    pub fn start(data: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_approval"))
            .arg("--data")
            .arg(data)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the approval binary starts");
        let out = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let seen = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = addr_tx.send(addr.to_string());
                }
                seen.lock().expect("not poisoned").push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "the server printed no `listening on` line; it printed {:?}",
                    lines.lock().expect("not poisoned")
                )
            });
        Server {
            child,
            addr,
            stdout: lines,
        }
    }

    /// What it printed so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("not poisoned").clone()
    }

    /// SIGKILL: no cleanup, no graceful shutdown.
    pub fn kill(mut self) {
        self.child.kill().expect("kill the server");
        self.child.wait().expect("reap the server");
    }

    /// A request; the status code and the JSON body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        request(&self.addr, method, path, body)
    }

    /// Creates an expense; its id.
    pub fn create(&self, who: &str, amount: u64) -> String {
        let (code, body) = self.request(
            "POST",
            "/expenses",
            &format!(r#"{{"who": "{who}", "amount": {amount}}}"#),
        );
        assert_eq!(code, 201, "create: {body}");
        body["id"].as_str().expect("an id").to_string()
    }

    /// `GET /expenses/{id}`'s body (status 200 expected).
    pub fn show(&self, id: &str) -> Value {
        let (code, body) = self.request("GET", &format!("/expenses/{id}"), "");
        assert_eq!(code, 200, "show {id}: {body}");
        body
    }

    /// Polls `GET /expenses/{id}` until its status is `status`; panics after `within`.
    pub fn wait_for_status(&self, id: &str, status: &str, within: Duration) -> Value {
        let start = Instant::now();
        loop {
            let body = self.show(id);
            if body["status"] == status && !body["result"].is_null() {
                return body;
            }
            assert!(
                start.elapsed() < within,
                "{id} still {body} after {within:?}, not {status}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn request(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let raw = raw_request(addr, method, path, body).expect("the server answers");
    parse_response(&raw)
}

pub fn raw_request(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    Ok(raw)
}

/// Sends a request and returns without reading the answer.
pub fn send_only(addr: &str, method: &str, path: &str, body: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    stream
}

fn parse_response(raw: &str) -> (u16, Value) {
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
    (code, json)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// The ledger's lines: `(op, expense, amount)`.
pub fn ledger(data: &Path) -> Vec<(String, String, u64)> {
    let text = std::fs::read_to_string(data.join("ledger.txt")).unwrap_or_default();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f.len(), 4, "a ledger line is `op id amount key`: {line:?}");
            (
                f[0].to_string(),
                f[1].to_string(),
                f[2].parse().expect("amount"),
            )
        })
        .collect()
}

/// How many ledger lines of `op` name `expense`.
pub fn ledger_count(data: &Path, op: &str, expense: &str) -> usize {
    ledger(data)
        .iter()
        .filter(|(o, e, _)| o == op && e == expense)
        .count()
}

/// From the journal (read on a private copy, so the server may still run): the
/// workflow's status and the names of its recorded completions, in delivery order.
pub fn journal(data: &Path, id: &str) -> (Status, Vec<String>) {
    let journal = SledJournal::open_existing(data.join("journal")).expect("a journal");
    let record = journal
        .workflow(id)
        .expect("readable")
        .unwrap_or_else(|| panic!("{id} is in the journal"));
    let names = journal
        .completions(id)
        .expect("readable")
        .into_iter()
        .map(|c| c.name)
        .collect();
    (record.status, names)
}

/// A data folder inside a fresh temporary directory.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    (dir, data)
}
