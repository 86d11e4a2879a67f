//! Shutdown: unfinished futures dropped in spawn order, later wakes ignored.

// Tests report failure by panicking, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Poll, Waker};

use ordo_executor::{yield_now, Executor};

struct LogOnDrop(u32, Rc<RefCell<Vec<u32>>>);

/// Counts its drops.
struct CountDrops(Rc<Cell<u32>>);

impl Drop for CountDrops {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        self.1.borrow_mut().push(self.0);
    }
}

#[test]
fn dropping_the_executor_drops_unfinished_futures_in_spawn_order() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let ex = Executor::new();
    // Task 0 finishes, freeing slab slot 0; task 3 then reuses it, so slot order
    // (3, 1, 2, 4) differs from spawn order (1, 2, 3, 4).
    ex.block_on(ex.spawn(async {})).unwrap();
    let mut handles = Vec::new();
    for n in 1..=4 {
        let guard = LogOnDrop(n, log.clone());
        handles.push(ex.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        if n == 2 {
            ex.run_until_stalled(); // some polled, some never polled
        }
    }
    let never_run = LogOnDrop(0, log.clone());
    drop(ex.spawn(async move {
        let _guard = never_run;
    }));
    assert!(log.borrow().is_empty());
    drop(ex);
    assert_eq!(*log.borrow(), [1, 2, 3, 4, 0]);
    // Handles outlive the executor and report the tasks as aborted.
    for handle in handles {
        assert!(handle.is_finished());
        let err = futures::executor::block_on(handle).unwrap_err();
        assert!(err.is_aborted());
    }
}

#[test]
fn finished_outputs_survive_the_executor() {
    let ex = Executor::new();
    let handle = ex.spawn(async { 9 });
    ex.run_until_stalled();
    drop(ex);
    assert_eq!(futures::executor::block_on(handle).unwrap(), 9);
}

#[test]
fn wakes_after_the_executor_is_dropped_are_ignored() {
    let ex = Executor::new();
    let (tx, rx) = mpsc::channel::<Waker>();
    let polls = Rc::new(Cell::new(0u32));
    let drops = Rc::new(Cell::new(0u32));
    let counter = CountDrops(drops.clone());
    let counted_polls = polls.clone();
    let handle = ex.spawn(poll_fn(move |cx| {
        let _keep = &counter; // owned by the future: dropped when the future is
        counted_polls.set(counted_polls.get() + 1);
        tx.send(cx.waker().clone()).unwrap();
        Poll::<()>::Pending
    }));
    ex.run_until_stalled();
    let waker = rx.recv().unwrap();
    assert_eq!((polls.get(), drops.get()), (1, 0));
    drop(ex);
    // The executor dropped the unfinished future, although a waker of it is still alive.
    assert_eq!((polls.get(), drops.get()), (1, 1));
    waker.wake_by_ref();
    std::thread::spawn(move || waker.wake()).join().unwrap();
    // The wakes neither polled nor dropped the future again, and the task stays aborted.
    assert_eq!((polls.get(), drops.get()), (1, 1));
    assert!(futures::executor::block_on(handle)
        .unwrap_err()
        .is_aborted());
}

#[test]
fn a_future_that_spawns_while_being_dropped_gets_an_aborted_task() {
    type Slot = Rc<RefCell<Option<ordo_executor::JoinHandle<()>>>>;
    struct SpawnOnDrop(Slot);
    impl Drop for SpawnOnDrop {
        fn drop(&mut self) {
            *self.0.borrow_mut() = Some(ordo_executor::spawn(async {}));
        }
    }
    let spawned: Slot = Rc::default();
    let ex = Executor::new();
    let guard = SpawnOnDrop(spawned.clone());
    drop(ex.spawn(async move {
        let _guard = guard;
        loop {
            yield_now().await;
        }
    }));
    ex.block_on(async {
        for _ in 0..3 {
            yield_now().await;
        }
    });
    drop(ex);
    let handle = spawned
        .borrow_mut()
        .take()
        .expect("the destructor ran and spawned");
    assert!(futures::executor::block_on(handle)
        .unwrap_err()
        .is_aborted());
}
