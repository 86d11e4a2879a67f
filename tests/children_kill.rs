//! A parent killed (SIGKILL) after its child's launch is durable, before the child's
//! first step finished, adopts that child after a restart: one child, not two.

mod common;

use std::time::Duration;

use ordo::{Ctx, Event, RuntimeBuilder, Status};

const CHILD_ENV: &str = "ORDO_CHILDREN_KILL_CHILD";
const CHILD_TEST: &str = "children_kill_child";
const TAG: &str = "@@children-kill@@ ";

/// The child: one step, which hangs in the process that gets killed.
async fn invoice(ctx: Ctx, amount: u64) -> Result<String, String> {
    ctx.step("issue", move || async move {
        if std::env::var(CHILD_ENV).is_ok() {
            ordo::executor::sleep(Duration::from_secs(3600)).await;
        }
        Ok::<_, String>(format!("invoice for {amount}"))
    })
    .await
}

async fn order(ctx: Ctx, amount: u64) -> Result<String, String> {
    let child = ctx.start_child::<_, String, String>("invoice", amount);
    child.result().await.map_err(|e| e.to_string())?
}

fn register(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("invoice", invoice).register("order", order)
}

#[test]
#[ignore = "the child process of the kill test; does nothing when run directly"]
fn children_kill_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = register(ordo_testkit::store::runtime(&dir))
        .observer(|event| {
            if let Event::Committed { completions, .. } = event {
                if *completions > 0 {
                    println!("{TAG}launch recorded");
                }
            }
        })
        .build()
        .expect("child runtime");
    let handle = rt
        .start::<_, String, String>("order", "o", 120u64)
        .expect("start");
    let _ = rt.block_on(handle.result());
}

#[test]
fn a_parent_killed_after_launching_adopts_its_child_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = common::worker::spawn_until(
        CHILD_TEST,
        CHILD_ENV,
        dir.path(),
        &format!("{TAG}launch recorded"),
    );
    common::worker::kill(child);

    let rt = register(ordo_testkit::store::runtime(dir.path()))
        .build()
        .expect("reopen");
    // Both are pending: the parent, and the child its launch started.
    let pending = rt.journal().workflows(Some(Status::Pending)).expect("read");
    assert_eq!(pending.len(), 2, "{pending:?}");
    rt.recover().expect("recover");
    let handle = rt.handle::<String, String>("o").expect("recorded");
    assert_eq!(
        rt.block_on(handle.result()).expect("runs"),
        Ok("invoice for 120".to_string())
    );
    let all = rt.journal().workflows(None).expect("read");
    assert_eq!(all.len(), 2, "one parent and one child: {all:?}");
    assert!(all.iter().all(|w| w.status == Status::Succeeded), "{all:?}");
}
