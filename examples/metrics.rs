//! ordo's `ordo_*` metrics exported for Prometheus, with `metrics-exporter-prometheus`.
//!
//! ```sh
//! cargo run --example metrics
//! ```
//!
//! ordo reports through the `metrics` facade and installs no exporter; a program picks
//! one. Here the Prometheus recorder is installed, a few workflows run (concurrent steps,
//! a retried step, a failure), and the scrape text is printed: what a `/metrics`
//! endpoint would serve (`PrometheusBuilder::with_http_listener`, behind the exporter's
//! `http-listener` feature, serves it itself).

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use ordo::{Ctx, RetryPolicy, Runtime};

async fn order(ctx: Ctx, items: Vec<String>) -> Result<u64, String> {
    let holds = futures::future::join_all(items.into_iter().map(|item| {
        ctx.step("reserve", move || async move {
            ordo::executor::sleep(Duration::from_millis(5)).await;
            Ok::<_, String>(item.len() as u64)
        })
    }))
    .await;
    let total: u64 = holds
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .sum();
    // Fails its first attempt, succeeds on the second.
    let policy = RetryPolicy::new(3).backoff(Duration::from_millis(5), 2.0);
    let tries = std::rc::Rc::new(std::cell::Cell::new(0u32));
    ctx.step_with("charge", policy, move || {
        let tries = std::rc::Rc::clone(&tries);
        async move {
            tries.set(tries.get() + 1);
            if tries.get() == 1 {
                Err("card reader busy".to_string())
            } else {
                Ok(total * 100)
            }
        }
    })
    .await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Install before the runtime is built, so every `ordo_*` metric is described.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    let rt = Runtime::builder()
        .temporary()
        .register("order", order)
        .build()?;
    rt.recover()?;
    let mut handles = Vec::new();
    for n in 0..3 {
        let items = vec!["book".to_string(), "pen".to_string()];
        handles.push(rt.start::<_, u64, String>("order", &format!("order-{n}"), items)?);
    }
    for handle in handles {
        println!("{} -> {:?}", handle.id(), rt.block_on(handle.result())?);
    }

    // The scrape text, ordo's lines only.
    let scrape = prometheus.render();
    for line in scrape.lines().filter(|l| l.contains("ordo_")) {
        println!("{line}");
    }
    Ok(())
}
