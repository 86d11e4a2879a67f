//! How fast a check is: one full check of a 10-step workflow with concurrent steps
//! (every crash point, each recovered under 10 schedules) on the in-memory journal, the
//! default. Target: under a second. (On sled, `Check::on_sled`, each of the ~280 runs
//! opens a database: about ten seconds a check; not measured here.)
//!
//! `cargo bench -p ordo-testkit --bench check`; the time per iteration is the time of
//! one full check (checks per second = 1 / that).

use criterion::{criterion_group, criterion_main, Criterion};
use ordo::Ctx;
use ordo_testkit::Check;

/// Ten steps: four concurrent, then three sequential, then three concurrent.
async fn ten_steps(ctx: Ctx, n: u64) -> Result<u64, String> {
    let first = futures::future::join_all(
        (0..4).map(|i| ctx.step("fan-out", move || async move { Ok::<_, String>(n + i) })),
    )
    .await;
    let mut total: u64 = first
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .sum();
    for i in 0..3 {
        total = ctx
            .step(
                "fold",
                move || async move { Ok::<_, String>(total * 2 + i) },
            )
            .await?;
    }
    let last = futures::future::join_all(
        (0..3).map(|i| ctx.step("fan-in", move || async move { Ok::<_, String>(total + i) })),
    )
    .await;
    Ok(last
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .sum())
}

/// One full check per iteration.
fn full_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("check a 10-step workflow");
    group.sample_size(10);
    let check = Check::workflow("ten", ten_steps, 1u64).schedules(10);
    let passed = check
        .run()
        .unwrap_or_else(|divergence| panic!("{divergence}"));
    eprintln!(
        "one check: {} commits, {} runs (crash points x 10 schedules)",
        passed.commits, passed.runs
    );
    group.bench_function("memory journal, every crash point, 10 schedules", |b| {
        b.iter(|| check.run().map(|passed| passed.runs))
    });
    group.finish();
}

mod group {
    // criterion_group! makes an undocumented `pub fn`.
    #![allow(missing_docs)]
    use super::*;

    criterion_group!(benches, full_check);
}
criterion_main!(group::benches);
