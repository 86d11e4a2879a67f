//! FIFO order: first polls in spawn order, re-polls in wake order, fairness.

// Tests report failure by panicking, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use ordo_executor::{spawn, yield_now, Executor};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

#[test]
fn first_polls_follow_spawn_order() {
    let ex = Executor::new();
    let log = log();
    for n in 0..8 {
        let log = log.clone();
        drop(ex.spawn(async move { log.borrow_mut().push(format!("t{n}")) }));
    }
    ex.run_until_stalled();
    let expected: Vec<String> = (0..8).map(|n| format!("t{n}")).collect();
    assert_eq!(*log.borrow(), expected);
}

#[test]
fn yielding_tasks_take_turns_round_robin() {
    let ex = Executor::new();
    let log = log();
    for name in ["a", "b", "c"] {
        let log = log.clone();
        drop(ex.spawn(async move {
            for round in 0..3 {
                log.borrow_mut().push(format!("{name}{round}"));
                yield_now().await;
            }
        }));
    }
    ex.run_until_stalled();
    assert_eq!(
        *log.borrow(),
        ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    );
}

/// A future that parks itself (stores its waker) until released, then logs.
async fn parked(
    name: &'static str,
    slots: Rc<RefCell<Vec<(&'static str, Waker)>>>,
    released: Rc<Cell<bool>>,
    log: Log,
) {
    poll_fn(|cx| {
        if released.get() {
            Poll::Ready(())
        } else {
            slots.borrow_mut().push((name, cx.waker().clone()));
            Poll::Pending
        }
    })
    .await;
    log.borrow_mut().push(name.to_string());
}

#[test]
fn repolls_follow_wake_order_not_spawn_order() {
    let ex = Executor::new();
    let log = log();
    let slots = Rc::new(RefCell::new(Vec::new()));
    let released = Rc::new(Cell::new(false));
    for name in ["a", "b", "c"] {
        drop(ex.spawn(parked(name, slots.clone(), released.clone(), log.clone())));
    }
    ex.run_until_stalled();
    assert!(log.borrow().is_empty());
    released.set(true);
    let wakers: Vec<_> = slots.borrow_mut().drain(..).collect();
    // Wake from inside a task (same-thread path), in the order c, a, b.
    drop(ex.spawn(async move {
        for wanted in ["c", "a", "b"] {
            let (_, waker) = wakers.iter().find(|(name, _)| *name == wanted).unwrap();
            waker.wake_by_ref();
        }
    }));
    ex.run_until_stalled();
    assert_eq!(*log.borrow(), ["c", "a", "b"]);
}

#[test]
fn a_self_wake_goes_behind_wakes_made_later_in_the_same_poll() {
    let ex = Executor::builder().trace(true).build();
    let other_waker: Rc<RefCell<Option<Waker>>> = Rc::default();
    let slot = other_waker.clone();
    let other_polls = Rc::new(Cell::new(0));
    let polls = other_polls.clone();
    let b = ex.spawn(poll_fn(move |cx| {
        polls.set(polls.get() + 1);
        if polls.get() == 2 {
            return Poll::Ready(());
        }
        *slot.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }));
    let mut first = true;
    let a = ex.spawn(poll_fn(move |cx| {
        if !first {
            return Poll::Ready(());
        }
        first = false;
        cx.waker().wake_by_ref(); // self-wake first...
        other_waker.borrow_mut().take().unwrap().wake(); // ...then wake b
        Poll::Pending
    }));
    ex.run_until_stalled();
    assert_eq!(ex.take_trace(), [b.id(), a.id(), b.id(), a.id()]);
    assert_eq!(other_polls.get(), 2);
}

#[test]
fn waking_a_queued_task_twice_polls_it_once() {
    let ex = Executor::new();
    let polls = Rc::new(Cell::new(0));
    let counter = polls.clone();
    let handle = ex.spawn(poll_fn(move |cx| {
        counter.set(counter.get() + 1);
        if counter.get() == 1 {
            cx.waker().wake_by_ref();
            cx.waker().wake_by_ref();
            // Waking an owned clone takes the by-value path.
            #[allow(clippy::waker_clone_wake)]
            cx.waker().clone().wake();
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }));
    assert_eq!(ex.run_until_stalled(), 2);
    assert_eq!(polls.get(), 2);
    assert!(handle.is_finished());
}

#[test]
fn a_spinner_does_not_starve_a_worker() {
    let ex = Executor::new();
    let spins = Rc::new(Cell::new(0u32));
    let counter = spins.clone();
    let spinner = ex.spawn(async move {
        loop {
            counter.set(counter.get() + 1);
            yield_now().await;
        }
    });
    let seen = spins.clone();
    let worker = ex.spawn(async move {
        for _ in 0..100 {
            yield_now().await;
        }
        seen.get()
    });
    // Round robin: the spinner ran exactly once per worker turn.
    assert_eq!(ex.block_on(worker).unwrap(), 101);
    spinner.abort();
    assert!(ex.block_on(spinner).unwrap_err().is_aborted());
}

#[test]
fn a_task_spawned_from_inside_runs_after_tasks_already_queued() {
    let ex = Executor::new();
    let log = log();
    let l = log.clone();
    drop(ex.spawn(async move {
        let l2 = l.clone();
        l.borrow_mut().push("parent".into());
        let child = spawn(async move { l2.borrow_mut().push("child".into()) });
        l.borrow_mut().push("parent spawned".into());
        child.await.unwrap();
        l.borrow_mut().push("parent joined".into());
    }));
    let l = log.clone();
    drop(ex.spawn(async move { l.borrow_mut().push("sibling".into()) }));
    ex.run_until_stalled();
    assert_eq!(
        *log.borrow(),
        [
            "parent",
            "parent spawned",
            "sibling",
            "child",
            "parent joined"
        ]
    );
}

#[test]
fn task_ids_are_spawn_numbers_and_never_reused() {
    let ex = Executor::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let handle = ex.spawn(async {});
        ids.push(handle.id());
        ex.block_on(handle).unwrap();
    }
    let ids: Vec<u64> = ids.into_iter().map(|id| id.as_u64()).collect();
    assert_eq!(ids, [0, 1, 2]);
}

#[test]
fn current_task_id_names_the_polled_task() {
    let ex = Executor::new();
    let handle = ex.spawn(async { ordo_executor::current_task_id() });
    let id = handle.id();
    assert_eq!(ex.block_on(async move { handle.await.unwrap() }), Some(id));
}

#[test]
fn trace_records_every_poll() {
    let ex = Executor::builder().trace(true).build();
    let a = ex.spawn(async {
        yield_now().await;
        yield_now().await;
    });
    let b = ex.spawn(async { yield_now().await });
    ex.run_until_stalled();
    assert_eq!(ex.take_trace(), [a.id(), b.id(), a.id(), b.id(), a.id()]);
    assert!(ex.take_trace().is_empty());
}

#[test]
fn join_handles_give_outputs_and_drop_detaches() {
    let ex = Executor::new();
    let ran = Rc::new(Cell::new(false));
    let flag = ran.clone();
    drop(ex.spawn(async move {
        yield_now().await;
        flag.set(true);
    }));
    let handle = ex.spawn(async { String::from("out") });
    assert_eq!(ex.block_on(handle).unwrap(), "out");
    ex.run_until_stalled();
    assert!(ran.get(), "a detached task still runs to completion");
}

#[test]
fn block_on_own_future_is_not_starved_by_a_task_that_never_stops() {
    let ex = Executor::builder().poll_budget(4).build();
    let spins = Rc::new(Cell::new(0u32));
    let counter = spins.clone();
    let spinner = ex.spawn(async move {
        loop {
            counter.set(counter.get() + 1);
            yield_now().await;
        }
    });
    let seen = spins.clone();
    // Each of the main future's turns comes after at most one budget of task polls.
    let turns: Vec<u32> = ex.block_on(async move {
        let mut turns = Vec::new();
        for _ in 0..3 {
            turns.push(seen.get());
            yield_now().await;
        }
        turns
    });
    assert_eq!(turns, [0, 4, 8]);
    spinner.abort();
}
