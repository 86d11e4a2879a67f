//! How a user fuzzes their own workflow: `Check::fuzz` is the whole target body; the
//! fuzzer's bytes choose step latencies, the crash point and the recovery's latencies.
//! This one checks a small checkout workflow with concurrent steps and a durable sleep.
#![no_main]

use std::time::Duration;

use ordo::Ctx;
use ordo_testkit::Check;

async fn checkout(ctx: Ctx, items: Vec<u32>) -> Result<u32, String> {
    let held = futures::future::join_all(
        items
            .into_iter()
            .map(|item| ctx.step("reserve", move || async move { Ok::<_, String>(item) })),
    )
    .await;
    ctx.sleep(Duration::from_secs(3600)).await;
    let total: u32 = held
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .sum();
    ctx.step("charge", move || async move { Ok::<_, String>(total) })
        .await
}

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| Check::workflow("checkout", checkout, vec![1, 2, 3]).fuzz(data)
);
