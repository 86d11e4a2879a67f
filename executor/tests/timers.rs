//! Timers: deadline order, virtual time, system time.

// Tests report failure by panicking, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ordo_executor::{now, sleep, sleep_until, spawn, Clock, Executor};

fn virtual_executor() -> Executor {
    Executor::builder().clock(Clock::Virtual).build()
}

#[test]
fn timers_fire_in_deadline_then_creation_order() {
    let ex = virtual_executor();
    let log = Rc::new(RefCell::new(Vec::new()));
    ex.block_on(async {
        let mut handles = Vec::new();
        for (name, secs) in [("c", 30), ("a1", 10), ("b", 20), ("a2", 10), ("z", 0)] {
            let log = log.clone();
            handles.push(spawn(async move {
                sleep(Duration::from_secs(secs)).await;
                log.borrow_mut().push(name);
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    });
    assert_eq!(*log.borrow(), ["z", "a1", "a2", "b", "c"]);
}

#[test]
fn a_virtual_hour_passes_instantly_and_exactly() {
    let ex = virtual_executor();
    let start = ex.now();
    let real_start = Instant::now();
    let elapsed = ex.block_on(async {
        let t0 = now();
        sleep(Duration::from_secs(3600)).await;
        now() - t0
    });
    assert_eq!(elapsed, Duration::from_secs(3600));
    assert_eq!(ex.now() - start, Duration::from_secs(3600));
    // Not a timing assertion on speed: only that no real hour was slept.
    assert!(real_start.elapsed() < Duration::from_secs(3600));
}

#[test]
fn a_cancelled_sleep_does_not_move_virtual_time() {
    let ex = virtual_executor();
    let start = ex.now();
    ex.block_on(async {
        let mut long = sleep(Duration::from_secs(3600));
        // Register it, then drop it.
        std::future::poll_fn(|cx| {
            assert!(Pin::new(&mut long).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        drop(long);
        sleep(Duration::from_secs(1)).await;
    });
    assert_eq!(ex.now() - start, Duration::from_secs(1));
}

#[test]
fn run_until_stalled_fires_due_timers_but_never_moves_virtual_time() {
    let ex = virtual_executor();
    let start = ex.now();
    let due = ex.spawn(async { sleep(Duration::ZERO).await });
    let later = ex.spawn(async { sleep(Duration::from_secs(5)).await });
    ex.run_until_stalled();
    assert!(due.is_finished());
    assert!(!later.is_finished());
    assert_eq!(ex.now(), start);
    ex.block_on(later).unwrap();
    assert_eq!(ex.now() - start, Duration::from_secs(5));
}

#[test]
fn sleep_until_in_block_on_own_future() {
    let ex = virtual_executor();
    let deadline = ex.now() + Duration::from_millis(1500);
    ex.block_on(async move { sleep_until(deadline).await });
    assert_eq!(ex.now(), deadline);
}

#[test]
fn system_clock_sleeps_wait_at_least_their_duration_in_order() {
    let ex = Executor::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let start = Instant::now();
    ex.block_on(async {
        let mut handles = Vec::new();
        for (name, ms) in [("slow", 20), ("fast", 5)] {
            let log = log.clone();
            handles.push(spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                log.borrow_mut().push(name);
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    });
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(*log.borrow(), ["fast", "slow"]);
}

#[test]
fn a_sleep_woken_with_a_new_waker_still_fires() {
    // Poll the same Sleep from two different tasks' contexts (moving it between wakers).
    let ex = virtual_executor();
    let start = ex.now();
    ex.block_on(async {
        let mut nap = Box::pin(sleep(Duration::from_secs(2)));
        std::future::poll_fn(|cx: &mut Context<'_>| {
            assert!(nap.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        spawn(nap).await.unwrap();
    });
    assert_eq!(ex.now() - start, Duration::from_secs(2));
}

#[test]
fn a_sleep_created_outside_an_executor_binds_at_its_first_poll() {
    let ex = virtual_executor();
    let start = ex.now();
    let nap = sleep(Duration::from_secs(30));
    assert_eq!(nap.deadline(), None);
    ex.block_on(nap);
    assert_eq!(ex.now() - start, Duration::from_secs(30));
}

#[test]
fn polling_a_sleep_outside_an_executor_panics_clearly() {
    let result = std::panic::catch_unwind(|| {
        futures::executor::block_on(sleep(Duration::from_millis(1)));
    });
    let payload = result.unwrap_err();
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("sleep() called outside an executor"),
        "{message}"
    );
}
