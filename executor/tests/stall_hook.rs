//! The stall hook: called only when every task is idle, before parking or moving time.

// Tests report failure by panicking, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use ordo_executor::{now, sleep, spawn, yield_now, Clock, Executor};

#[test]
fn the_hook_feeds_items_only_when_every_task_is_idle() {
    let ex = Executor::new();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let (tx, mut rx) = mpsc::unbounded::<u32>();

    let mut items: VecDeque<u32> = (1..=3).collect();
    let hook_log = log.clone();
    ex.set_stall_hook(move || {
        hook_log.borrow_mut().push("stall".into());
        match items.pop_front() {
            Some(item) => tx.unbounded_send(item).is_ok(),
            None => false,
        }
    });

    // Two busy workers; each item may only arrive once both are idle (done or waiting).
    for name in ["w1", "w2"] {
        let log = log.clone();
        drop(ex.spawn(async move {
            for step in 0..3 {
                log.borrow_mut().push(format!("{name}.{step}"));
                yield_now().await;
            }
        }));
    }
    let consumer_log = log.clone();
    let consumer = ex.spawn(async move {
        for _ in 0..3 {
            let item = rx.next().await.unwrap();
            consumer_log.borrow_mut().push(format!("got {item}"));
        }
    });
    ex.block_on(consumer).unwrap();
    assert_eq!(
        *log.borrow(),
        [
            "w1.0", "w2.0", "w1.1", "w2.1", "w1.2", "w2.2", "stall", "got 1", "stall", "got 2",
            "stall", "got 3",
        ]
    );
}

#[test]
fn the_hook_may_spawn_and_use_the_free_functions() {
    let ex = Executor::builder().clock(Clock::Virtual).build();
    let spawned = Rc::new(Cell::new(false));
    let flag = spawned.clone();
    let start = ex.now();
    let seen_time = Rc::new(Cell::new(None));
    let seen = seen_time.clone();
    let mut done = false;
    ex.set_stall_hook(move || {
        if done {
            return false;
        }
        done = true;
        seen.set(Some(now()));
        let _nap = sleep(Duration::from_secs(1)); // creating a sleep works here
        let flag = flag.clone();
        drop(spawn(async move { flag.set(true) }));
        true
    });
    assert_eq!(ex.run_until_stalled(), 1);
    assert!(spawned.get());
    assert_eq!(seen_time.get(), Some(start));
}

#[test]
fn with_a_virtual_clock_the_hook_runs_before_time_jumps() {
    let ex = Executor::builder().clock(Clock::Virtual).build();
    let start = ex.now();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let record = calls.clone();
    ex.set_stall_hook(move || {
        record.borrow_mut().push(now());
        false
    });
    ex.block_on(async {
        sleep(Duration::from_secs(10)).await;
        sleep(Duration::from_secs(5)).await;
    });
    let offsets: Vec<Duration> = calls.borrow().iter().map(|t| *t - start).collect();
    assert_eq!(offsets, [Duration::ZERO, Duration::from_secs(10)]);
}

#[test]
fn a_hook_returning_true_can_unblock_a_task_that_would_otherwise_hang() {
    // Without the hook, block_on would park forever: nothing else sends.
    let ex = Executor::new();
    let (tx, mut rx) = mpsc::unbounded::<&'static str>();
    let mut tx = Some(tx);
    ex.set_stall_hook(move || match tx.take() {
        Some(tx) => tx.unbounded_send("from the hook").is_ok(),
        None => false,
    });
    let got = ex.block_on(async move { rx.next().await });
    assert_eq!(got, Some("from the hook"));
}

#[test]
fn run_until_stalled_calls_the_hook_before_returning() {
    let ex = Executor::new();
    let calls = Rc::new(Cell::new(0));
    let counter = calls.clone();
    ex.set_stall_hook(move || {
        counter.set(counter.get() + 1);
        false
    });
    drop(ex.spawn(async { yield_now().await }));
    assert_eq!(ex.run_until_stalled(), 2);
    assert_eq!(calls.get(), 1);
}

#[test]
fn replacing_the_hook_from_inside_itself_keeps_the_new_one() {
    let ex = Rc::new(Executor::new());
    let calls = Rc::new(RefCell::new(Vec::new()));
    let (log, inner_log) = (calls.clone(), calls.clone());
    let exec = ex.clone();
    ex.set_stall_hook(move || {
        log.borrow_mut().push("first");
        let inner_log = inner_log.clone();
        exec.set_stall_hook(move || {
            inner_log.borrow_mut().push("second");
            false
        });
        false
    });
    ex.run_until_stalled();
    ex.run_until_stalled();
    assert_eq!(*calls.borrow(), ["first", "second"]);
}

#[test]
fn run_calls_the_hook_when_idle_and_completes_once_it_declines_with_no_task_left() {
    let ex = Executor::new();
    let (tx, mut rx) = mpsc::unbounded::<u32>();
    let mut tx = Some(tx);
    let mut fed = 0;
    let stalls = Rc::new(Cell::new(0));
    let counter = stalls.clone();
    ex.set_stall_hook(move || {
        counter.set(counter.get() + 1);
        if fed < 2 {
            fed += 1;
            tx.as_ref().map(|tx| tx.unbounded_send(fed)).is_some()
        } else {
            // Closing the channel lets the consumer finish; after that, nothing to do.
            tx.take().is_some()
        }
    });
    let total = Rc::new(Cell::new(0));
    let sum = total.clone();
    drop(ex.spawn(async move {
        while let Some(n) = rx.next().await {
            sum.set(sum.get() + n);
        }
    }));
    futures::executor::block_on(ex.run());
    assert_eq!(total.get(), 3);
    // Two feeds, the close, then the call that declines with no task left.
    assert_eq!(stalls.get(), 4);
}

#[test]
fn a_hook_that_panics_once_is_still_installed_for_the_next_stall() {
    let ex = Executor::new();
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    ex.set_stall_hook(move || {
        seen.set(seen.get() + 1);
        if seen.get() == 1 {
            panic!("the hook's first call panics");
        }
        false
    });
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ex.run_until_stalled();
    }));
    assert!(first.is_err(), "the hook's panic reaches the caller");
    assert_eq!(calls.get(), 1);
    ex.run_until_stalled();
    assert_eq!(calls.get(), 2, "the hook was lost after its panic");
}
