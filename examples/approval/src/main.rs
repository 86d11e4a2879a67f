//! ordo's talking-workflows demo: an expense-approval HTTP service that survives being
//! killed at any moment.
//!
//! ```sh
//! cargo run -p ordo-approval                          # http://127.0.0.1:3000, data in ./approval-data
//! cargo run -p ordo-approval -- --speed 86400         # 48 hours of waiting pass in 2 seconds
//! curl -s -XPOST localhost:3000/expenses -d '{"who": "ada", "amount": 120}'
//! curl -s localhost:3000/expenses/exp-1
//! curl -s -XPOST localhost:3000/expenses/exp-1/approve -d '{"by": "bob"}'
//! ```
//!
//! Each `POST /expenses` starts an `expense` workflow (`workflow.rs`): it reserves budget
//! (a step that writes to `ledger.txt`), publishes its `status` event, then waits in a
//! `select!` for an `approve` or `reject` message or a durable 48-hour timeout, and pays
//! or gives the budget back (steps again).
//!
//! # Threads
//!
//! An ordo `Runtime` is `!Send`: it lives on a thread of its own (`ordo`), built there,
//! recovered there (`recover()` resumes every expense a killed server left waiting) and
//! driven there by `block_on` until Ctrl-C. The HTTP server runs on tokio's
//! multi-thread runtime; its handlers (`http.rs`) hold a [`Client`] clone, the
//! `Send + Sync` way into the runtime's thread.

mod http;
mod ledger;
mod workflow;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use ordo::{Client, Runtime};

use crate::ledger::Ledger;

/// How long an expense waits for a decision, at `--speed 1`.
const DECISION_TIMEOUT: Duration = Duration::from_secs(48 * 3600);

struct Args {
    data: PathBuf,
    addr: SocketAddr,
    speed: u64,
    budget: u64,
}

const USAGE: &str = "usage: approval [--data DIR] [--addr HOST:PORT] [--speed N] [--budget AMOUNT]

  --data DIR        journal and ledger folder (default ./approval-data)
  --addr HOST:PORT  where to listen (default 127.0.0.1:3000; port 0 picks a free one)
  --speed N         new expenses wait 48 hours / N for a decision (default 1)
  --budget AMOUNT   the total the ledger can reserve (default 10000)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        data: PathBuf::from("approval-data"),
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        speed: 1,
        budget: 10_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |what: &str| it.next().ok_or(format!("{arg} needs {what}"));
        match arg.as_str() {
            "--data" => args.data = value("a folder")?.into(),
            "--addr" => {
                let addr = value("an address")?;
                args.addr = addr
                    .parse()
                    .map_err(|_| format!("not an address: {addr:?} (e.g. 127.0.0.1:3000)"))?;
            }
            "--speed" => {
                let n = value("a number")?;
                args.speed = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--speed needs a positive whole number, not {n:?}"))?;
            }
            "--budget" => {
                let n = value("an amount")?;
                args.budget = n.parse().map_err(|_| format!("not an amount: {n:?}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn main() {
    if let Err(err) = run() {
        eprintln!("approval: {err}");
        std::process::exit(1);
    }
}

/// What the runtime's thread hands the server once it is ready.
struct Ready {
    client: Client,
    /// The highest `exp-<n>` in the journal.
    last_number: u64,
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("creating {}: {e}", args.data.display()))?;

    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Ready, String>>();
    let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
    let (data, budget) = (args.data.clone(), args.budget);
    let ordo_thread = std::thread::Builder::new()
        .name("ordo".into())
        .spawn(move || {
            let rt = match open_runtime(&data, budget) {
                Ok((rt, ready)) => {
                    let _ = ready_tx.send(Ok(ready));
                    rt
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err.to_string()));
                    return;
                }
            };
            // Drives every workflow and serves every client until told to stop.
            let _ = rt.block_on(stop_rx);
            // Dropping the runtime is the graceful shutdown: an expense parked in its
            // 48-hour wait gets its recovery attempt back.
            drop(rt);
        })?;
    let ready = ready_rx
        .recv()
        .map_err(|_| "the ordo thread died while opening the journal")??;

    let app = http::App {
        client: ready.client,
        next_id: Arc::new(AtomicU64::new(ready.last_number + 1)),
        timeout: DECISION_TIMEOUT / u32::try_from(args.speed).unwrap_or(u32::MAX),
    };
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    server.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
        // Tests (and people) find the port here, which matters with --addr ...:0.
        println!("listening on http://{}", listener.local_addr()?);
        println!(
            "journal and ledger in {}; new expenses wait {} for a decision",
            args.data.display(),
            human(app.timeout)
        );
        axum::serve(listener, http::router(app))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    let _ = stop_tx.send(());
    ordo_thread.join().map_err(|_| "the ordo thread panicked")?;
    println!("stopped");
    Ok(())
}

/// `48 h`, `2 s`, `1.5 s`, `250 ms`.
fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if d.as_secs() >= 3600 && d.as_secs() % 3600 == 0 {
        format!("{} h", d.as_secs() / 3600)
    } else if secs >= 1.0 {
        format!("{secs} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Opens the journal, registers the workflow, resumes what a previous process left
/// pending; on the runtime's own thread, since a `Runtime` never leaves it.
fn open_runtime(data: &std::path::Path, budget: u64) -> Result<(Runtime, Ready), ordo::Error> {
    let ledger = Rc::new(Ledger::new(data.join("ledger.txt"), budget));
    let rt = Runtime::builder()
        .path(data.join("journal"))
        .register(workflow::NAME, move |ctx, expense| {
            workflow::expense(ctx, expense, Rc::clone(&ledger))
        })
        .build()?;
    let report = rt.recover()?;
    if !report.resumed.is_empty() {
        println!(
            "resuming {} expense(s) a previous run left waiting: {}",
            report.resumed.len(),
            report.resumed.join(", ")
        );
    }
    for (id, err) in &report.failed {
        eprintln!("approval: could not resume {id}: {err}");
    }
    let last_number = rt
        .journal()
        .workflows(None)?
        .iter()
        .filter_map(|record| record.id.strip_prefix("exp-")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let client = rt.client();
    Ok((
        rt,
        Ready {
            client,
            last_number,
        },
    ))
}
