//! Embedding: `Executor::run()` inside tokio (current-thread and multi-thread) and
//! inside another ordo executor.

// Tests report failure by panicking, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use ordo_executor::{sleep, spawn, yield_now, Clock, Executor};

/// How long a test may run before it counts as hung. Not a timing assertion: each test
/// takes milliseconds, and the bound only turns a hang (a broken embedding never waking
/// the outer runtime, or never yielding to it) into a failure.
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// Runs `body` on its own thread and fails if it has not finished within `HANG_LIMIT`;
/// a panic in `body` fails the test with that panic.
fn within_hang_limit(body: impl FnOnce() + Send + 'static) {
    let (finished_tx, finished_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        body();
        let _ = finished_tx.send(());
    });
    match finished_rx.recv_timeout(HANG_LIMIT) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
            // Finished, or panicked (the sender was dropped while unwinding).
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("the test has not finished after {HANG_LIMIT:?}: the embedded executor hangs")
        }
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn inside_tokio_current_thread_with_tokio_timers_channels_and_ordo_timers() {
    within_hang_limit(|| {
        let rt = current_thread();
        let local = tokio::task::LocalSet::new();
        let ex = Executor::new();
        let log = Rc::new(RefCell::new(Vec::new()));

        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(4);
        let l = log.clone();
        drop(ex.spawn(async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            l.borrow_mut().push("tokio timer".to_string());
        }));
        let l = log.clone();
        drop(ex.spawn(async move {
            sleep(Duration::from_millis(1)).await;
            l.borrow_mut().push("ordo timer".to_string());
        }));
        let l = log.clone();
        drop(ex.spawn(async move {
            while let Some(n) = rx.recv().await {
                l.borrow_mut().push(format!("got {n}"));
            }
        }));

        local.block_on(&rt, async {
            // A tokio task on the same thread feeds the channel.
            tokio::task::spawn_local(async move {
                for n in 0..3 {
                    tx.send(n).await.unwrap();
                    tokio::task::yield_now().await;
                }
            });
            ex.run().await;
        });
        let log = log.borrow();
        for entry in ["tokio timer", "ordo timer", "got 0", "got 1", "got 2"] {
            assert!(log.iter().any(|e| e == entry), "missing {entry}: {log:?}");
        }
        let got: Vec<&String> = log.iter().filter(|e| e.starts_with("got")).collect();
        assert_eq!(got, ["got 0", "got 1", "got 2"]);
    });
}

#[test]
fn inside_tokio_multi_thread_with_cross_thread_wakes() {
    within_hang_limit(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let ex = Executor::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        // A Send task on tokio's workers sends from other threads, waking ordo's task.
        rt.spawn(async move {
            for n in 0..5 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                tx.send(n).unwrap();
            }
        });
        let sum = ex.spawn(async move {
            let mut sum = 0;
            while let Some(n) = rx.recv().await {
                sum += n;
            }
            sleep(Duration::from_millis(2)).await; // an ordo timer while embedded
            tokio::time::sleep(Duration::from_millis(1)).await;
            sum
        });
        rt.block_on(ex.run());
        assert!(sum.is_finished());
        assert_eq!(futures::executor::block_on(sum).unwrap(), 10);
    });
}

#[test]
fn run_yields_to_the_outer_runtime_after_its_poll_budget() {
    within_hang_limit(|| {
        // An ordo task spins until a tokio task on the same thread sets a flag: if run()
        // never returned Pending, the tokio task would never run and this would hang.
        let rt = current_thread();
        let local = tokio::task::LocalSet::new();
        let ex = Executor::builder().poll_budget(8).build();
        let flag = Rc::new(Cell::new(false));
        let spins = Rc::new(Cell::new(0u32));
        let (f, s) = (flag.clone(), spins.clone());
        drop(ex.spawn(async move {
            while !f.get() {
                s.set(s.get() + 1);
                yield_now().await;
            }
        }));
        local.block_on(&rt, async {
            let f = flag.clone();
            tokio::task::spawn_local(async move { f.set(true) });
            ex.run().await;
        });
        assert!(flag.get());
        assert_eq!(
            spins.get(),
            8,
            "the outer task ran right after one budget of polls"
        );
    });
}

#[test]
fn run_completes_when_no_task_is_left_and_jumps_virtual_time() {
    within_hang_limit(|| {
        let ex = Executor::builder().clock(Clock::Virtual).build();
        let start = ex.now();
        let handle = ex.spawn(async { sleep(Duration::from_secs(600)).await });
        futures::executor::block_on(ex.run());
        assert!(handle.is_finished());
        assert_eq!(ex.now() - start, Duration::from_secs(600));
        // With nothing spawned, run() is ready at once.
        futures::executor::block_on(ex.run());
    });
}

#[test]
fn run_inside_another_ordo_executors_task() {
    within_hang_limit(|| {
        let outer = Executor::new();
        let inner = Rc::new(Executor::new());
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        drop(inner.spawn(async move {
            let l2 = l.clone();
            spawn(async move { l2.borrow_mut().push("inner child") })
                .await
                .unwrap();
            l.borrow_mut().push("inner");
        }));
        let inner_ref = inner.clone();
        let l = log.clone();
        let driver = outer.spawn(async move {
            inner_ref.run().await;
            l.borrow_mut().push("outer");
        });
        outer.block_on(driver).unwrap();
        assert_eq!(*log.borrow(), ["inner child", "inner", "outer"]);
    });
}

#[test]
fn run_with_a_system_timer_wakes_the_outer_runtime_at_the_deadline() {
    within_hang_limit(|| {
        // futures' block_on has no timers of its own: only ordo's helper thread can wake it.
        let ex = Executor::new();
        let handle = ex.spawn(async { sleep(Duration::from_millis(5)).await });
        futures::executor::block_on(ex.run());
        assert!(handle.is_finished());
    });
}
