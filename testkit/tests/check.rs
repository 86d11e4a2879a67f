//! `Check` on users' workflows: each kind of non-determinism is caught with a report
//! that says what and where; correct workflows pass.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use ordo::Ctx;
use ordo_testkit::{Check, DivergenceKind, Order, RunPoint};

/// Branches on the wall clock, as `if SystemTime::now() > deadline` does across a
/// restart: on one bit of a hash of the whole time, so that any later reading takes
/// either branch with even odds, whatever the clock's resolution (the parity of the
/// nanoseconds alone is always even on a clock that counts microseconds). 24 readings:
/// a replay whose readings all took the recorded branches (no step name differs, so the
/// check sees another result, not non-determinism) has odds of 2^-24; with 8 it was
/// 1 in 256, and the test failed about that often.
async fn reads_the_clock(ctx: Ctx, _: ()) -> Result<u32, String> {
    let mut odd = 0;
    for _ in 0..24 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let bit = u32::from(FIXED_KEY.hash_one(now) % 2 == 1);
        let name = if bit == 0 { "even" } else { "odd" };
        odd += ctx
            .step(name, move || async move { Ok::<_, String>(bit) })
            .await?;
    }
    Ok(odd)
}

/// A hasher with a fixed key, so the bit depends on the time alone.
const FIXED_KEY: BuildHasherDefault<DefaultHasher> = BuildHasherDefault::new();

#[test]
fn a_workflow_that_branches_on_the_wall_clock_is_caught() {
    let divergence = Check::workflow("clock", reads_the_clock, ())
        .seed(3)
        .run()
        .expect_err("reading the clock is not deterministic");
    let report = divergence.to_string();
    eprintln!("{report}");
    assert!(
        matches!(*divergence.kind, DivergenceKind::NonDeterminism(_)),
        "{report}"
    );
    // The report names the workflow, both step names, the run and the seed.
    assert!(report.contains("\"clock-checked\""), "{report}");
    assert!(
        report.contains("\"even\"") && report.contains("\"odd\""),
        "{report}"
    );
    assert_ne!(divergence.at, RunPoint::Uninterrupted, "{report}");
    assert!(report.contains(".seed(3)"), "{report}");
    assert_eq!(divergence.seed, Some(3));
}

/// Creates one step per entry of a `HashMap`, in its iteration order, which is random
/// per map (std's `RandomState`).
async fn iterates_a_hash_map(ctx: Ctx, _: ()) -> Result<Vec<u64>, String> {
    let prices: HashMap<String, u64> = (0..6).map(|i| (format!("price-{i}"), i * 10)).collect();
    let mut quoted = Vec::new();
    for (name, price) in prices {
        quoted.push(
            ctx.step(&name, move || async move { Ok::<_, String>(price) })
                .await?,
        );
    }
    Ok(quoted)
}

#[test]
fn a_workflow_that_iterates_a_hash_map_is_caught() {
    let divergence = Check::workflow("quotes", iterates_a_hash_map, ())
        .run()
        .expect_err("HashMap order differs between runs");
    eprintln!("{divergence}");
    match &*divergence.kind {
        DivergenceKind::NonDeterminism(ordo::Error::NonDeterminism {
            recorded, found, ..
        }) => {
            assert!(recorded.starts_with("price-"), "{divergence}");
            assert!(found.starts_with("price-"), "{divergence}");
            assert_ne!(recorded, found);
        }
        // A full replay stops at the first step created in another order; a recovery
        // may instead return the prices in another order.
        DivergenceKind::DifferentResult { .. } => {}
        other => panic!("unexpected divergence {other:?}: {divergence}"),
    }
}

/// Polls a step until a thread it spawned says it is done: how many steps that takes
/// follows the thread's timing, not the journal.
async fn waits_on_a_thread(ctx: Ctx, _: ()) -> Result<u32, String> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2));
        flag.store(true, Ordering::SeqCst);
    });
    let mut polls = 0;
    while !done.load(Ordering::SeqCst) {
        ctx.step("poll", || async { Ok::<_, String>(()) }).await?;
        polls += 1;
    }
    ctx.step("report", move || async move { Ok::<_, String>(polls) })
        .await
}

#[test]
fn a_workflow_that_depends_on_a_thread_is_caught() {
    let divergence = Check::workflow("threaded", waits_on_a_thread, ())
        .schedules(2)
        .run()
        .expect_err("a thread's timing is not deterministic");
    let report = divergence.to_string();
    eprintln!("{report}");
    match &*divergence.kind {
        DivergenceKind::NonDeterminism(ordo::Error::NonDeterminism {
            recorded, found, ..
        }) => {
            let names = [recorded.as_str(), found.as_str()];
            assert!(
                names.contains(&"poll") || names.contains(&"report"),
                "{report}"
            );
        }
        // A recovery that polled another number of times returns another count.
        DivergenceKind::DifferentResult { .. } | DivergenceKind::Property(_) => {}
        other => panic!("unexpected divergence {other:?}: {report}"),
    }
}

/// Concurrent steps, a `select!` between a step and a durable timeout, durable sleeps
/// and a recorded clock read: deterministic, so every crash point replays.
async fn fulfil(ctx: Ctx, order: Vec<u32>) -> Result<String, String> {
    let reserved = futures::future::join_all(
        order
            .iter()
            .map(|&item| ctx.step("reserve", move || async move { Ok::<_, String>(item * 2) })),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let paid = {
        let total: u32 = reserved.iter().sum();
        let charge = ctx
            .step("charge", move || async move { Ok::<_, String>(total) })
            .fuse();
        // Step latencies are at most 40 ms: the hour-long timeout never wins.
        let timeout = ctx.sleep(Duration::from_secs(3600)).fuse();
        futures::pin_mut!(charge, timeout);
        futures::select! {
            paid = charge => paid?,
            () = timeout => return Err("payment timed out".into()),
        }
    };
    let shipped_at = ctx.now().await;
    ctx.sleep(Duration::from_secs(2 * 24 * 3600)).await; // two days, in virtual time
    let (survey, invoice) = futures::join!(
        ctx.step("survey", || async { Ok::<_, String>("sent".to_string()) }),
        ctx.step("invoice", move || async move { Ok::<_, String>(paid) })
    );
    let days = ctx
        .now()
        .await
        .duration_since(shipped_at)
        .map_or(0, |d| d.as_secs() / 86_400);
    Ok(format!(
        "reserved {reserved:?}, paid {}, survey {}, {days} days",
        invoice?, survey?
    ))
}

#[test]
fn a_correct_workflow_with_concurrent_steps_select_and_sleeps_passes() {
    let passed = Check::workflow("fulfil", fulfil, vec![1, 2, 3, 4])
        .run()
        .unwrap_or_else(|divergence| panic!("{divergence}"));
    assert_eq!(
        passed.result,
        Ok("reserved [2, 4, 6, 8], paid 20, survey sent, 2 days".to_string())
    );
    // Crashed after every commit but the last, each recovered under 10 schedules.
    assert!(passed.commits >= 5, "{} commits", passed.commits);
    assert!(passed.runs > passed.commits * 10);
}

#[test]
fn the_same_passes_with_other_poll_orders_and_on_sled() {
    for seed in 0..3 {
        Check::workflow("fulfil", fulfil, vec![5, 6])
            .seed(seed)
            .reorder_polls()
            .assert()
            .expect("fulfilled");
    }
    Check::workflow("fulfil", fulfil, vec![5, 6])
        .on_sled()
        .schedules(1)
        .assert()
        .expect("fulfilled");
}

/// Charges a card: no network in tests.
async fn pay(ctx: Ctx, cents: u64) -> Result<String, String> {
    let receipt = ctx
        .step("charge", move || async move {
            Err::<String, String>(format!("no network to charge {cents}"))
        })
        .await?;
    ctx.step("email", move || async move {
        Ok::<_, String>(format!("sent {receipt}"))
    })
    .await
}

#[test]
fn a_mocked_step_is_answered_by_the_test_and_checked_like_a_body() {
    let calls = Rc::new(Cell::new(0));
    let counted = Rc::clone(&calls);
    let check = Check::workflow("pay", pay, 500u64).mock("charge", move || {
        counted.set(counted.get() + 1);
        Ok::<_, String>("receipt-7".to_string())
    });
    assert_eq!(check.assert(), Ok("sent receipt-7".to_string()));
    assert!(calls.get() > 1, "the mock answers every live run");
    // Without the mock, the body runs (and fails, deterministically).
    assert_eq!(
        Check::workflow("pay", pay, 500u64).assert(),
        Err("no network to charge 500".to_string())
    );
}

#[test]
fn a_mock_of_another_type_is_a_type_mismatch() {
    let divergence = Check::workflow("pay", pay, 500u64)
        .mock("charge", || Ok::<u64, String>(7))
        .run()
        .expect_err("the workflow reads a String");
    assert_eq!(divergence.at, RunPoint::Uninterrupted);
    assert!(
        matches!(*divergence.kind, DivergenceKind::TypeMismatch(_)),
        "{divergence}"
    );
}

/// The result follows which of two steps finishes first.
async fn race(ctx: Ctx, _: ()) -> Result<String, String> {
    let a = ctx
        .step("a", || async { Ok::<_, String>("a".to_string()) })
        .fuse();
    let b = ctx
        .step("b", || async { Ok::<_, String>("b".to_string()) })
        .fuse();
    futures::pin_mut!(a, b);
    let winner = futures::select_biased! {
        a = a => a?,
        b = b => b?,
    };
    ctx.step("after", move || async move { Ok::<_, String>(winner) })
        .await
}

#[test]
fn an_order_sensitive_workflow_passes_when_declared_so() {
    let mut found_other_result = false;
    for seed in 0..8 {
        match Check::workflow("race", race, ()).seed(seed).run() {
            Ok(_) => {}
            Err(divergence) => {
                // Another winner: another result, other recorded steps.
                assert!(
                    matches!(
                        *divergence.kind,
                        DivergenceKind::DifferentResult { .. } | DivergenceKind::Property(_)
                    ),
                    "{divergence}"
                );
                found_other_result = true;
            }
        }
        Check::workflow("race", race, ())
            .seed(seed)
            .order(Order::Sensitive)
            .assert()
            .expect("a winner");
    }
    assert!(
        found_other_result,
        "a crash mid-race should change the winner for some seed"
    );
}

#[test]
fn the_fuzz_body_checks_any_bytes_and_panics_with_the_report() {
    let check = Check::workflow("fulfil", fulfil, vec![1, 2]);
    for data in [
        &[][..],
        &[0, 1, 2, 3],
        &[200, 7, 130, 5, 40, 1, 9, 9, 9],
        b"anything",
    ] {
        check.fuzz(data);
    }
    let quotes = Check::workflow("quotes", iterates_a_hash_map, ());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for i in 0..=255u8 {
            quotes.fuzz(&[i, i.wrapping_mul(7), 3]);
        }
    }));
    let message = panicked.expect_err("a HashMap workflow diverges under some input");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("\"quotes-checked\""), "{message}");
    assert!(message.contains("fuzz input"), "{message}");
}
