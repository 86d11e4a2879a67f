//! ordo's main demo: an order checkout that survives being killed.
//!
//! ```sh
//! cargo run --release -p ordo-quickstart                    # runs to the end
//! rm -rf ordo-data                                          # a finished order is not re-run
//! cargo run --release -p ordo-quickstart -- --crash-after 3 # dies after 3 committed steps
//! cargo run --release -p ordo-quickstart                    # resumes: replays 3, runs the rest
//! ```
//!
//! The workflow reserves every item concurrently (`join_all`), waits out a durable
//! cooling-off period, charges the card, then races shipping against a durable
//! timeout (`select!`). Each step is printed as it is executed or replayed; the last
//! line says how many steps were replayed from the journal and how many executed now.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use futures::FutureExt;
use ordo::{Ctx, Event, Runtime};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    items: Vec<String>,
    total_cents: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Receipt {
    holds: Vec<String>,
    payment: String,
    shipping: String,
}

/// Stands in for a call to another service.
async fn remote_call(latency_ms: u64) {
    ordo::executor::sleep(Duration::from_millis(latency_ms)).await;
}

async fn checkout(ctx: Ctx, order: Order) -> Result<Receipt, String> {
    // Concurrent steps: their ids follow the call order, whatever order they finish in.
    let holds = futures::future::join_all(order.items.iter().enumerate().map(|(i, item)| {
        let item = item.clone();
        ctx.step("reserve", move || async move {
            remote_call(40 + 30 * (3 - i as u64 % 3)).await;
            Ok::<_, String>(format!("hold:{item}"))
        })
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;

    // A durable sleep: after a crash only the remainder is slept.
    ctx.sleep(Duration::from_millis(300)).await;

    let total = order.total_cents;
    let payment = ctx
        .step("charge", move || async move {
            // The idempotency key is the same if this body runs again after a crash.
            let key = ordo::current_step()
                .map(|s| s.idempotency_key())
                .unwrap_or_default();
            remote_call(60).await;
            Ok::<_, String>(format!("paid {total} cents (idempotency key {key})"))
        })
        .await?;

    // Shipping races a durable timeout; the journal records which one won.
    let ship = ctx
        .step("ship", || async {
            remote_call(80).await;
            Ok::<_, String>("shipped by courier".to_string())
        })
        .fuse();
    let timeout = ctx.sleep(Duration::from_secs(2)).fuse();
    futures::pin_mut!(ship, timeout);
    let shipping = futures::select! {
        shipped = ship => shipped?,
        () = timeout => "queued for manual shipping".to_string(),
    };

    Ok(Receipt {
        holds,
        payment,
        shipping,
    })
}

struct Args {
    data: PathBuf,
    crash_after: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        data: PathBuf::from(ordo::DEFAULT_DATA_DIR),
        crash_after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--data" => args.data = it.next().ok_or("--data needs a folder")?.into(),
            "--crash-after" => {
                let n = it.next().ok_or("--crash-after needs a number")?;
                args.crash_after = Some(n.parse().map_err(|_| format!("not a number: {n}"))?);
            }
            "-h" | "--help" => {
                println!("usage: quickstart [--data DIR] [--crash-after N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn main() {
    if let Err(err) = run() {
        eprintln!("quickstart: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let committed = Rc::new(Cell::new(0u64));
    let crash_after = args.crash_after;
    let counter = Rc::clone(&committed);
    let rt = Runtime::builder()
        .path(&args.data)
        .register("checkout", checkout)
        .observer(move |event| match event {
            Event::Step {
                step_id,
                name,
                ok,
                replayed,
                ..
            } => {
                let how = if *replayed { "replayed" } else { "executed" };
                let outcome = if *ok { "ok" } else { "err" };
                println!("  {how:>8}  step {step_id:>2}  {name:<18} {outcome}");
            }
            Event::Committed { completions, .. } => {
                counter.set(counter.get() + *completions as u64);
                if crash_after.is_some_and(|n| counter.get() >= n) {
                    println!(
                        "  -- crashing after {} committed steps (--crash-after)",
                        counter.get()
                    );
                    std::process::abort();
                }
            }
            _ => {}
        })
        .build()?;

    let report = rt.recover()?;
    if !report.resumed.is_empty() {
        println!(
            "resuming {} interrupted workflow(s): {}",
            report.resumed.len(),
            report.resumed.join(", ")
        );
    }
    let order = Order {
        items: vec!["keyboard".into(), "mouse".into(), "monitor".into()],
        total_cents: 42_00,
    };
    println!("checkout order-42 (journal in {})", args.data.display());
    let handle = rt.start::<_, Receipt, String>("checkout", "order-42", order)?;
    match rt.block_on(handle.result())? {
        Ok(receipt) => {
            println!("receipt: {}", receipt.holds.join(", "));
            println!("         {}", receipt.payment);
            println!("         {}", receipt.shipping);
        }
        Err(reason) => println!("checkout failed: {reason}"),
    }
    let metrics = rt.metrics();
    println!(
        "replayed {} steps, executed {} steps",
        metrics.steps_replayed, metrics.steps_executed
    );
    if let Some(n) = args.crash_after {
        // The crash never came: say why rather than leave a silent success.
        let why = if metrics.steps_replayed + metrics.steps_executed == 0 {
            format!(
                "order-42 had already finished in {dir}, and a finished workflow is not \
                 run again; remove the folder (rm -rf {dir}) to start over",
                dir = args.data.display()
            )
        } else {
            format!(
                "the checkout finished after {} committed steps",
                committed.get()
            )
        };
        eprintln!("quickstart: --crash-after {n} did not crash: {why}");
    }
    Ok(())
}
