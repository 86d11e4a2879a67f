//! Time at the edges: an endless sleep is a long sleep, not an `Instant` overflow, and a
//! wall clock that jumps between two runs cannot stretch a durable sleep past what was
//! asked (a jump forward ends it at once).

mod common;

use common::sleeper::{record_deadline_then_die, restart_and_wake, T0};

use std::time::Duration;

use common::{builder, journal_dir};
use futures::FutureExt;
use ordo::Ctx;

#[test]
fn an_endless_sleep_is_a_century_not_an_instant_overflow() {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("forever", |ctx: Ctx, (): ()| async move {
            // Inside a step body, on the executor's own timer...
            let raced = ctx
                .step("race", || async {
                    futures::select! {
                        () = ordo::executor::sleep(Duration::MAX).fuse() => Ok::<_, String>("forever".to_string()),
                        () = ordo::executor::sleep(Duration::from_secs(1)).fuse() => Ok("a second".to_string()),
                    }
                })
                .await?;
            // ...and as a durable sleep (virtual time jumps a century).
            ctx.sleep(Duration::MAX).await;
            Ok::<_, String>(raced)
        })
        .build()
        .expect("build");
    let h = rt
        .start::<_, String, String>("forever", "f", ())
        .expect("start");
    assert_eq!(
        rt.block_on(h.result()).expect("finishes"),
        Ok("a second".into())
    );
}

/// Records the sleep's deadline at `T0`, then wakes in a process whose wall clock reads
/// `T0 + shift` at start (negative: set back). Returns when it woke, in seconds.
fn wake_after_clock_shift(shift: i64) -> u64 {
    let dir = journal_dir();
    record_deadline_then_die(dir.path(), "s");
    let start = T0.checked_add_signed(shift).expect("in range");
    restart_and_wake(dir.path(), "s", start)
}

#[test]
fn a_wall_clock_set_back_a_day_does_not_stretch_an_hour_long_sleep() {
    let back = -86_400;
    let woke = wake_after_clock_shift(back);
    // It slept the hour it asked for, on the new clock, not 25 hours.
    assert_eq!(woke, T0 - 86_400 + 3600);
}

#[test]
fn a_wall_clock_moved_forward_past_the_deadline_wakes_at_once() {
    assert_eq!(wake_after_clock_shift(86_400), T0 + 86_400);
    // Half an hour later: only the remaining half hour is slept.
    assert_eq!(wake_after_clock_shift(1800), T0 + 3600);
}
