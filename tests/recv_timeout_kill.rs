//! A `recv`'s timeout is a durable deadline: a process killed (SIGKILL) while the
//! `recv` waits leaves the deadline in the journal, and after a restart only the
//! remainder is waited.

mod common;

use common::worker::now_ms;

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use ordo::{Clock, Ctx, Event};

const CHILD_ENV: &str = "ORDO_RECV_TIMEOUT_CHILD";
const CHILD_TEST: &str = "recv_timeout_child";
const TAG: &str = "@@recv-timeout@@ ";
const TIMEOUT: Duration = Duration::from_secs(3600);

/// Waits an hour for a message, then reports what it got and the (recorded) time it
/// woke, in milliseconds since the epoch.
async fn waiter(ctx: Ctx, _: ()) -> Result<(Option<u32>, u64), String> {
    let got = ctx.recv::<u32>("never", TIMEOUT).await;
    let woke = ctx.now().await;
    let ms = woke
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    Ok((got, u64::try_from(ms).unwrap_or(u64::MAX)))
}

/// The child: starts the waiter on the real clock and says when the deadline is durable.
#[test]
#[ignore = "the child process of the kill test; does nothing when run directly"]
fn recv_timeout_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = ordo_testkit::store::runtime(&dir)
        .register("waiter", waiter)
        .observer(|event| {
            if let Event::Committed { completions, .. } = event {
                if *completions > 0 {
                    println!("{TAG}deadline recorded");
                }
            }
        })
        .build()
        .expect("child runtime");
    let handle = rt
        .start::<_, (Option<u32>, u64), String>("waiter", "w", ())
        .expect("start");
    let _ = rt.block_on(handle.result());
}

fn kill_while_waiting(dir: &Path) {
    let child = common::worker::spawn_until(
        CHILD_TEST,
        CHILD_ENV,
        dir,
        &format!("{TAG}deadline recorded"),
    );
    // Time passes while it waits; then it dies without a chance to clean up.
    std::thread::sleep(Duration::from_millis(1_500));
    common::worker::kill(child);
}

#[test]
fn a_recv_timeout_across_a_sigkill_waits_only_the_remainder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let before_start = now_ms();
    kill_while_waiting(dir.path());
    let restarted = now_ms();
    // The restart runs on a virtual clock that starts now: waiting takes no time, and
    // the time it wakes is exact.
    let rt = ordo_testkit::store::runtime(dir.path())
        .clock(Clock::Virtual)
        .start_time(UNIX_EPOCH + Duration::from_millis(restarted))
        .register("waiter", waiter)
        .build()
        .expect("reopen");
    rt.recover().expect("recover");
    let handle = rt
        .handle::<(Option<u32>, u64), String>("w")
        .expect("recorded");
    let (got, woke) = rt.block_on(handle.result()).expect("runs").expect("ok");
    assert_eq!(got, None, "nobody sent anything");
    let hour = TIMEOUT.as_millis() as u64;
    // It woke at the deadline set by the first process (an hour after its start)...
    assert!(
        woke >= before_start + hour,
        "woke {woke}, started {before_start}"
    );
    // ...not an hour after the restart, which is at least 1.5 s later.
    assert!(
        woke + 1_000 < restarted + hour,
        "woke {woke}: the full hour was waited again after the restart at {restarted}"
    );
}
