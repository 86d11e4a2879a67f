//! Seeded and Scripted schedulers: reproducible, and never lose a wake.

// Tests report failure by panicking, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::mpsc;
use futures::StreamExt;
use ordo_executor::{spawn, yield_now, Executor, Scheduler, TaskId};

/// A workload with yields, channel wakes and nested spawns; returns the poll trace
/// and the order in which tasks finished.
fn workload(scheduler: Scheduler) -> (Vec<TaskId>, Vec<u32>) {
    let ex = Executor::builder().scheduler(scheduler).trace(true).build();
    let finished = Rc::new(RefCell::new(Vec::new()));
    let (tx, rx) = mpsc::unbounded::<u32>();
    for n in 0..6u32 {
        let tx = tx.clone();
        let finished = finished.clone();
        drop(ex.spawn(async move {
            for _ in 0..n % 3 {
                yield_now().await;
            }
            if n % 2 == 0 {
                let f = finished.clone();
                spawn(async move {
                    yield_now().await;
                    f.borrow_mut().push(100 + n);
                })
                .await
                .unwrap();
            }
            tx.unbounded_send(n).unwrap();
            finished.borrow_mut().push(n);
        }));
    }
    drop(tx);
    let f = finished.clone();
    let consumer = ex.spawn(async move {
        let received: Vec<u32> = rx.collect().await;
        f.borrow_mut().push(1000 + received.len() as u32);
    });
    ex.block_on(consumer).unwrap();
    let trace = ex.take_trace();
    let finished = finished.borrow().clone();
    (trace, finished)
}

fn assert_everything_finished(finished: &[u32]) {
    let mut sorted = finished.to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2, 3, 4, 5, 100, 102, 104, 1006]);
}

#[test]
fn seeded_schedules_are_reproducible_and_lose_no_wake() {
    let fifo = workload(Scheduler::Fifo);
    let mut differs_from_fifo = false;
    for seed in 0..50 {
        let first = workload(Scheduler::Seeded(seed));
        let second = workload(Scheduler::Seeded(seed));
        assert_eq!(first, second, "seed {seed} is not reproducible");
        assert_everything_finished(&first.1);
        differs_from_fifo |= first.0 != fifo.0;
    }
    assert!(
        differs_from_fifo,
        "Seeded never changed the order: is it ignored?"
    );
}

#[test]
fn scripted_schedules_are_reproducible_and_lose_no_wake() {
    let fifo = workload(Scheduler::Fifo);
    assert_everything_finished(&fifo.1);
    let mut differs_from_fifo = false;
    for n in 0..50u8 {
        let script: Vec<u8> = (0..40)
            .map(|i: u8| i.wrapping_mul(n).wrapping_add(n / 3))
            .collect();
        let first = workload(Scheduler::Scripted(script.clone()));
        let second = workload(Scheduler::Scripted(script));
        assert_eq!(first, second);
        assert_everything_finished(&first.1);
        differs_from_fifo |= first.0 != fifo.0;
    }
    assert!(differs_from_fifo);
    // An exhausted (here: empty) script is plain FIFO.
    assert_eq!(workload(Scheduler::Scripted(Vec::new())), fifo);
}

#[test]
fn each_script_byte_picks_index_byte_mod_ready_len() {
    let ex = Executor::builder()
        .scheduler(Scheduler::Scripted(vec![2, 4, 0]))
        .trace(true)
        .build();
    let ids: Vec<TaskId> = (0..4).map(|_| ex.spawn(async {}).id()).collect();
    ex.run_until_stalled();
    // ready [0,1,2,3]: 2%4=2 -> t2; [0,1,3]: 4%3=1 -> t1; [0,3]: 0 -> t0; then t3.
    assert_eq!(ex.take_trace(), [ids[2], ids[1], ids[0], ids[3]]);
}

#[test]
fn fifo_first_polls_are_in_spawn_order_under_load() {
    let (trace, finished) = workload(Scheduler::Fifo);
    assert_everything_finished(&finished);
    let mut first_polls = Vec::new();
    for id in trace {
        if !first_polls.contains(&id) {
            first_polls.push(id);
        }
    }
    let mut sorted = first_polls.clone();
    sorted.sort();
    assert_eq!(first_polls, sorted);
}
