//! Cancel reaches running work: a step body's future is dropped at once, the status is
//! durable, recovery leaves it alone, and `cancel_tree` takes a whole tree of children.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ordo::{Ctx, RuntimeBuilder, Status};

use common::{builder, journal_dir};

const HOUR: Duration = Duration::from_secs(3600);

/// Sets its flag when dropped.
struct DropGuard(Rc<Cell<bool>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn cancel_drops_a_running_step_body_at_once_and_recovery_leaves_it() {
    let dropped = Rc::new(Cell::new(false));
    let started = Rc::new(Cell::new(false));
    let dir = journal_dir();
    let register = |b: RuntimeBuilder, dropped: Rc<Cell<bool>>, started: Rc<Cell<bool>>| {
        b.register("slow", move |ctx: Ctx, _: ()| {
            let (dropped, started) = (Rc::clone(&dropped), Rc::clone(&started));
            async move {
                ctx.step("call", move || async move {
                    let _guard = DropGuard(dropped);
                    started.set(true);
                    ordo::executor::sleep(HOUR).await;
                    Ok::<_, String>(())
                })
                .await
            }
        })
    };
    {
        let rt = register(
            builder(dir.path()),
            Rc::clone(&dropped),
            Rc::clone(&started),
        )
        .build()
        .expect("build");
        rt.start::<_, (), String>("slow", "s", ()).expect("start");
        rt.block_on(ordo::executor::sleep(Duration::from_millis(10)));
        assert!(started.get(), "the body is running");
        assert!(!dropped.get());
        assert!(rt.cancel("s").expect("cancel"));
        // The body's future goes as soon as the executor runs, not an hour later.
        rt.block_on(ordo::executor::yield_now());
        assert!(dropped.get(), "the running body was dropped");
        assert_eq!(
            rt.journal().workflow("s").expect("read").map(|w| w.status),
            Some(Status::Cancelled)
        );
    }
    started.set(false);
    let rt = register(builder(dir.path()), dropped, Rc::clone(&started))
        .build()
        .expect("reopen");
    let report = rt.recover().expect("recover");
    assert!(report.resumed.is_empty(), "{report:?}");
    rt.block_on(ordo::executor::sleep(Duration::from_millis(10)));
    assert!(!started.get(), "a cancelled workflow does not run again");
}

/// Sleeps an hour.
async fn leaf(ctx: Ctx, _: ()) -> Result<(), String> {
    ctx.sleep(HOUR).await;
    Ok(())
}

/// Launches a leaf, and after a step another one, then waits for both.
async fn middle(ctx: Ctx, _: ()) -> Result<(), String> {
    let first = ctx.start_child::<_, (), String>("leaf", ());
    ctx.step("think", || async {
        ordo::executor::sleep(Duration::from_millis(30)).await;
        Ok::<_, String>(())
    })
    .await?;
    let second = ctx.start_child::<_, (), String>("leaf", ());
    first.result().await.map_err(|e| e.to_string())??;
    second.result().await.map_err(|e| e.to_string())?
}

/// Two middles.
async fn root(ctx: Ctx, _: ()) -> Result<(), String> {
    let a = ctx.start_child::<_, (), String>("middle", ());
    let b = ctx.start_child::<_, (), String>("middle", ());
    a.result().await.map_err(|e| e.to_string())??;
    b.result().await.map_err(|e| e.to_string())?
}

fn tree(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("leaf", leaf)
        .register("middle", middle)
        .register("root", root)
}

#[test]
fn cancel_tree_cancels_three_levels_and_nothing_launched_meanwhile_survives() {
    // Cancel at several moments: before the middles' second leaves exist, while they
    // are being launched, and after.
    for wait_ms in [5, 20, 30, 31, 35, 60] {
        let dir = journal_dir();
        let rt = tree(builder(dir.path())).build().expect("build");
        let h = rt.start::<_, (), String>("root", "r", ()).expect("start");
        rt.block_on(ordo::executor::sleep(Duration::from_millis(wait_ms)));
        let cancelled = rt.cancel_tree("r").expect("cancel");
        assert_eq!(cancelled.first().map(String::as_str), Some("r"));
        // Whatever was queued at the moment of the cancel gets its chance to commit.
        rt.block_on(ordo::executor::sleep(Duration::from_secs(60)));
        let all = rt.journal().workflows(None).expect("read");
        assert!(
            all.iter().all(|w| w.status == Status::Cancelled),
            "after {wait_ms} ms: {:?}",
            all.iter().map(|w| (&w.id, w.status)).collect::<Vec<_>>()
        );
        let mut ids: Vec<_> = all.iter().map(|w| w.id.clone()).collect();
        ids.sort();
        let mut reported = cancelled.clone();
        reported.sort();
        assert_eq!(ids, reported, "after {wait_ms} ms");
        assert!(matches!(
            rt.block_on(h.result()),
            Err(ordo::Error::Cancelled { .. })
        ));
        if wait_ms >= 60 {
            // The whole tree existed: root, two middles, four leaves.
            assert_eq!(ids.len(), 7, "{ids:?}");
        }
    }
}

/// A step dropped before its outcome (a `select` loser) cancels its running body at
/// once: the body's future is dropped in the same executor run, not an hour later, and
/// the workflow goes on without its outcome ever being recorded.
#[test]
fn a_select_losers_running_body_is_dropped_with_its_step() {
    let dropped = Rc::new(Cell::new(false));
    let flag = Rc::clone(&dropped);
    let rt = builder(journal_dir().path())
        .register("race", move |ctx: Ctx, _: ()| {
            let flag = Rc::clone(&flag);
            async move {
                let fast = ctx.step("fast", || async { Ok::<u32, String>(1) });
                let slow = ctx.step("slow", move || async move {
                    let _guard = DropGuard(flag);
                    ordo::executor::sleep(HOUR).await;
                    Ok::<u32, String>(2)
                });
                let won = match futures::future::select(fast, slow).await {
                    futures::future::Either::Left((won, loser)) => {
                        drop(loser);
                        won?
                    }
                    futures::future::Either::Right((won, _)) => won? + 100,
                };
                let after = ctx
                    .step("after", || async { Ok::<u32, String>(10) })
                    .await?;
                Ok::<u32, String>(won + after)
            }
        })
        .build()
        .expect("build");
    let handle = rt.start::<_, u32, String>("race", "r", ()).expect("start");
    let result = rt.block_on(handle.result()).expect("runs");
    assert_eq!(result, Ok(11), "the fast step won");
    assert!(dropped.get(), "the loser's running body was dropped");
    let names: Vec<String> = rt
        .journal()
        .completions("r")
        .expect("read")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        ["fast", "after"],
        "the loser's outcome is never recorded"
    );
}
