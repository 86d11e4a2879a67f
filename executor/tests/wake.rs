//! Wakers: cross-thread wakes, stale wakers, re-entrancy.

// Tests report failure by panicking, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Poll, Waker};

use ordo_executor::{spawn, yield_now, Executor};

fn assert_send_sync<T: Send + Sync>(_: &T) {}

/// A task that finishes only after being woken `wakes` times, sending its waker out.
fn wait_for_wake(waker_out: mpsc::Sender<Waker>) -> impl std::future::Future<Output = u32> {
    let mut polls = 0;
    poll_fn(move |cx| {
        polls += 1;
        if polls == 1 {
            waker_out.send(cx.waker().clone()).unwrap();
            Poll::Pending
        } else {
            Poll::Ready(polls)
        }
    })
}

#[test]
fn a_wake_from_another_thread_unparks_block_on() {
    let ex = Executor::new();
    let (tx, rx) = mpsc::channel();
    let handle = ex.spawn(wait_for_wake(tx));
    let waker_thread = std::thread::spawn(move || {
        let waker: Waker = rx.recv().unwrap();
        assert_send_sync(&waker);
        waker.wake();
    });
    assert_eq!(ex.block_on(handle).unwrap(), 2);
    waker_thread.join().unwrap();
}

#[test]
fn cross_thread_wakes_join_the_queue_in_arrival_order() {
    let ex = Executor::builder().trace(true).build();
    let mut handles = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = mpsc::channel();
        handles.push(ex.spawn(wait_for_wake(tx)));
        receivers.push(rx);
    }
    ex.run_until_stalled();
    ex.take_trace();
    let wakers: Vec<Waker> = receivers.iter().map(|rx| rx.recv().unwrap()).collect();
    std::thread::spawn(move || {
        for index in [2, 0, 1] {
            wakers[index].wake_by_ref();
        }
    })
    .join()
    .unwrap();
    ex.run_until_stalled();
    let ids: Vec<_> = [2, 0, 1].iter().map(|&i| handles[i].id()).collect();
    assert_eq!(ex.take_trace(), ids);
}

#[test]
fn a_stale_waker_does_not_poll_the_task_that_reused_its_slot() {
    let ex = Executor::new();
    let old_waker: Rc<RefCell<Option<Waker>>> = Rc::default();
    let slot = old_waker.clone();
    let first = ex.spawn(poll_fn(move |cx| {
        *slot.borrow_mut() = Some(cx.waker().clone());
        Poll::Ready(())
    }));
    ex.block_on(first).unwrap();

    // The next task reuses the freed slab slot.
    let polls = Rc::new(Cell::new(0));
    let counter = polls.clone();
    let second = ex.spawn(poll_fn(move |_| {
        counter.set(counter.get() + 1);
        Poll::<()>::Pending
    }));
    ex.run_until_stalled();
    assert_eq!(polls.get(), 1);

    let stale = old_waker.borrow_mut().take().unwrap();
    stale.wake_by_ref(); // outside the executor: the cross-thread path
    ex.run_until_stalled();
    drop(ex.spawn(async move { stale.wake() })); // inside: the same-thread path
    ex.run_until_stalled();
    assert_eq!(polls.get(), 1, "a stale wake reached the slot's new task");
    assert!(!second.is_finished());
}

#[test]
fn a_wake_while_the_executor_is_idle_is_kept_until_it_runs() {
    let ex = Executor::new();
    let (tx, rx) = mpsc::channel();
    let handle = ex.spawn(wait_for_wake(tx));
    ex.run_until_stalled();
    rx.recv().unwrap().wake(); // same thread, executor not running
    assert_eq!(ex.run_until_stalled(), 1);
    assert!(handle.is_finished());
}

#[test]
fn spawning_waking_aborting_and_dropping_handles_inside_a_poll() {
    let ex = Executor::new();
    let victim_dropped = Rc::new(Cell::new(false));
    let flag = victim_dropped.clone();
    let out = ex.block_on(async move {
        struct SetOnDrop(Rc<Cell<bool>>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let guard = SetOnDrop(flag);
        let victim = spawn(async move {
            let _guard = guard;
            loop {
                yield_now().await;
            }
        });
        let detached = spawn(async { 1 });
        drop(detached);
        let helper = spawn(async move {
            victim.abort();
            victim.await.unwrap_err().is_aborted()
        });
        helper.await.unwrap()
    });
    assert!(out);
    assert!(victim_dropped.get());
}

#[test]
fn a_task_can_abort_itself_and_its_future_is_dropped_after_the_poll() {
    let ex = Executor::new();
    let own_handle: Rc<RefCell<Option<ordo_executor::JoinHandle<()>>>> = Rc::default();
    let slot = own_handle.clone();
    let after_abort = Rc::new(Cell::new(false));
    let flag = after_abort.clone();
    let handle = ex.spawn(async move {
        yield_now().await;
        slot.borrow().as_ref().unwrap().abort();
        flag.set(true); // the poll goes on until it returns
        yield_now().await;
        unreachable!("an aborted task is not polled again");
    });
    let id = handle.id();
    *own_handle.borrow_mut() = Some(handle);
    ex.run_until_stalled();
    assert!(after_abort.get());
    let handle = own_handle.borrow_mut().take().unwrap();
    let err = ex.block_on(handle).unwrap_err();
    assert!(err.is_aborted());
    assert_eq!(err.id(), id);
}

#[test]
fn wakers_survive_the_task_and_recycling_does_not_confuse_them() {
    // Many short tasks whose wakers are kept alive: each must stay bound to its own task.
    let ex = Executor::new();
    let kept: Rc<RefCell<Vec<Waker>>> = Rc::default();
    for _ in 0..50 {
        let kept = kept.clone();
        let h = ex.spawn(poll_fn(move |cx| {
            kept.borrow_mut().push(cx.waker().clone());
            Poll::Ready(())
        }));
        ex.block_on(h).unwrap();
    }
    let polls = Rc::new(Cell::new(0));
    let counter = polls.clone();
    let _pending = ex.spawn(poll_fn(move |_| {
        counter.set(counter.get() + 1);
        Poll::<()>::Pending
    }));
    ex.run_until_stalled();
    for waker in kept.borrow().iter() {
        waker.wake_by_ref();
    }
    ex.run_until_stalled();
    assert_eq!(polls.get(), 1);
}
