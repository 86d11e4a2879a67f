//! The body of the `executor_schedule` fuzz target, here so `cargo test` runs it too.
//!
//! The fuzzer's bytes become a small program — tasks made of yields, self-wakes, wakes
//! of other tasks, waits, cross-thread wakes, sleeps and spawns — which runs under
//! `Scheduler::Scripted` (the remaining bytes) and again under `Scheduler::Fifo`.
//! Violations panic:
//!
//! - every task completes exactly once (a second completion would also trip
//!   `MaybeDone`'s "polled after completion" panic);
//! - no wake is lost: the stall hook, which only runs when no task is ready, finds no
//!   task that was notified but not re-polled, and the program terminates;
//! - under `Fifo`, tasks are first polled in spawn order;
//! - without cross-thread wakes (the one source of timing), the same bytes give the
//!   same poll trace twice.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::{
    current_task_id, sleep, spawn, yield_now, Clock, Executor, JoinHandle, Scheduler, TaskId,
};

/// At most this many top-level tasks and ops per task: small programs explore faster.
const MAX_TASKS: usize = 6;
const MAX_OPS: usize = 8;
/// Cross-thread wakes start an OS thread each; a few per program are enough.
const MAX_CROSS_THREAD: usize = 2;

#[derive(Clone, Copy, Debug)]
enum Op {
    Yield,
    /// Wake itself several times in one poll: the task must be queued (and polled) once.
    WakeSelfTwice,
    /// Set another task's flag and wake it if it waits.
    Notify(usize),
    /// Wait until its own flag is set (by `Notify`, or by the stall hook).
    Wait,
    /// Another thread sets a flag and wakes the task.
    CrossThread,
    /// A virtual-clock sleep of this many milliseconds.
    Sleep(u8),
    /// Spawn a child that yields once; await it or detach it.
    Spawn {
        await_child: bool,
    },
}

struct Program {
    tasks: Vec<Vec<Op>>,
    script: Vec<u8>,
    cross_thread: bool,
}

impl Program {
    fn parse(data: &[u8]) -> Program {
        let mut bytes = data.iter().copied();
        let mut next = || bytes.next().unwrap_or(0);
        let task_count = 1 + usize::from(next()) % MAX_TASKS;
        let mut cross_threads = 0;
        let mut tasks = Vec::with_capacity(task_count);
        for _ in 0..task_count {
            let op_count = usize::from(next()) % (MAX_OPS + 1);
            let ops: Vec<Op> = (0..op_count)
                .map(|_| match next() % 7 {
                    0 => Op::Yield,
                    1 => Op::WakeSelfTwice,
                    2 => Op::Notify(usize::from(next())),
                    3 => Op::Wait,
                    4 if cross_threads < MAX_CROSS_THREAD => {
                        cross_threads += 1;
                        Op::CrossThread
                    }
                    4 => Op::Yield,
                    5 => Op::Sleep(next() % 50),
                    _ => Op::Spawn {
                        await_child: next() % 2 == 0,
                    },
                })
                .collect();
            tasks.push(ops);
        }
        let consumed = data.len().min(
            1 + tasks
                .iter()
                .map(|ops| 1 + ops.iter().map(op_len).sum::<usize>())
                .sum::<usize>(),
        );
        Program {
            tasks,
            script: data[consumed..].to_vec(),
            cross_thread: cross_threads > 0,
        }
    }
}

/// Bytes an op took from the input (its selector plus any parameter).
fn op_len(op: &Op) -> usize {
    match op {
        Op::Notify(_) | Op::Sleep(_) | Op::Spawn { .. } => 2,
        _ => 1,
    }
}

/// What the program's tasks share.
#[derive(Default)]
struct World {
    /// Per top-level task: notified and not yet consumed.
    flags: Vec<bool>,
    /// Per top-level task: the waker while it waits in `Op::Wait`.
    waiters: Vec<Option<Waker>>,
    /// Completions per task id.
    completions: Vec<(TaskId, u32)>,
    /// Task ids in the order of their first poll.
    first_polls: Vec<TaskId>,
    /// Handles of detached children, awaited at the end.
    children: Vec<JoinHandle<()>>,
    /// Tasks inside a sleep or waiting for a cross-thread wake: legitimately idle when
    /// the executor stalls (virtual time will jump, the other thread will wake them).
    excused: usize,
    /// Tasks spawned so far.
    spawned: usize,
}

type Shared = Rc<RefCell<World>>;

fn record_first_poll(world: &Shared) {
    let id = current_task_id().expect("inside a task");
    world.borrow_mut().first_polls.push(id);
}

fn record_completion(world: &Shared) {
    let id = current_task_id().expect("inside a task");
    world.borrow_mut().completions.push((id, 1));
}

async fn child(world: Shared) {
    record_first_poll(&world);
    yield_now().await;
    record_completion(&world);
}

async fn run_task(index: usize, ops: Vec<Op>, world: Shared, task_count: usize) {
    record_first_poll(&world);
    for op in ops {
        match op {
            Op::Yield => yield_now().await,
            Op::WakeSelfTwice => {
                let mut woken = false;
                poll_fn(|cx| {
                    if woken {
                        return Poll::Ready(());
                    }
                    woken = true;
                    cx.waker().wake_by_ref();
                    cx.waker().wake_by_ref();
                    Poll::Pending
                })
                .await;
            }
            Op::Notify(target) => {
                let target = target % task_count;
                let waker = {
                    let mut world = world.borrow_mut();
                    world.flags[target] = true;
                    world.waiters[target].take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Op::Wait => {
                poll_fn(|cx| {
                    let mut world = world.borrow_mut();
                    if std::mem::take(&mut world.flags[index]) {
                        world.waiters[index] = None;
                        Poll::Ready(())
                    } else {
                        world.waiters[index] = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
            }
            Op::CrossThread => {
                let done = Arc::new(AtomicBool::new(false));
                let mut thread = None;
                world.borrow_mut().excused += 1;
                poll_fn(|cx| {
                    if done.load(Ordering::Acquire) {
                        return Poll::Ready(());
                    }
                    if thread.is_none() {
                        let (done, waker) = (done.clone(), cx.waker().clone());
                        thread = Some(std::thread::spawn(move || {
                            done.store(true, Ordering::Release);
                            waker.wake();
                        }));
                    }
                    Poll::Pending
                })
                .await;
                world.borrow_mut().excused -= 1;
                if let Some(thread) = thread {
                    thread.join().expect("the waking thread does not panic");
                }
            }
            Op::Sleep(ms) => {
                world.borrow_mut().excused += 1;
                sleep(Duration::from_millis(u64::from(ms))).await;
                world.borrow_mut().excused -= 1;
            }
            Op::Spawn { await_child } => {
                world.borrow_mut().spawned += 1;
                let handle = spawn(child(world.clone()));
                if await_child {
                    handle.await.expect("a child task does not fail");
                } else {
                    world.borrow_mut().children.push(handle);
                }
            }
        }
    }
    record_completion(&world);
}

/// What one run of a program produced.
struct Outcome {
    trace: Vec<TaskId>,
    first_polls: Vec<TaskId>,
}

fn run(program: &Program, scheduler: Scheduler) -> Outcome {
    let ex = Executor::builder()
        .scheduler(scheduler)
        .clock(Clock::Virtual)
        .trace(true)
        .build();
    let task_count = program.tasks.len();
    let world: Shared = Rc::new(RefCell::new(World {
        flags: vec![false; task_count],
        waiters: vec![None; task_count],
        spawned: task_count,
        ..World::default()
    }));

    // The hook runs only when no task is ready. A task that was notified while waiting
    // has been woken, so finding one still waiting with its flag set is a lost wake.
    // Otherwise it releases one waiting task per stall, so every program terminates.
    let hook_world = world.clone();
    ex.set_stall_hook(move || {
        let waker = {
            let mut world = hook_world.borrow_mut();
            let world = &mut *world;
            for (index, waiter) in world.waiters.iter().enumerate() {
                assert!(
                    !(waiter.is_some() && world.flags[index]),
                    "lost wake: task {index} was notified but not polled again"
                );
            }
            match world.waiters.iter().position(Option::is_some) {
                Some(index) => {
                    world.flags[index] = true;
                    world.waiters[index].take()
                }
                None => {
                    // Nothing to release: unless a task sleeps or awaits another
                    // thread, every unfinished task (or block_on's future awaiting
                    // them) lost its wake.
                    assert!(
                        world.excused > 0,
                        "lost wake: the executor stalled with {} of {} tasks unfinished \
                         and none of them sleeping or waiting",
                        world.spawned - world.completions.len(),
                        world.spawned
                    );
                    None
                }
            }
        };
        match waker {
            Some(waker) => {
                waker.wake();
                true
            }
            None => false,
        }
    });

    let handles: Vec<JoinHandle<()>> = program
        .tasks
        .iter()
        .enumerate()
        .map(|(index, ops)| ex.spawn(run_task(index, ops.clone(), world.clone(), task_count)))
        .collect();
    let main_world = world.clone();
    ex.block_on(async move {
        for handle in handles {
            handle.await.expect("a program task does not fail");
        }
        loop {
            let next = main_world.borrow_mut().children.pop();
            match next {
                Some(handle) => handle.await.expect("a child task does not fail"),
                None => break,
            }
        }
    });

    let trace = ex.take_trace();
    drop(ex);
    let world = Rc::try_unwrap(world)
        .ok()
        .expect("the executor released every task")
        .into_inner();
    let mut completed: Vec<TaskId> = world.completions.iter().map(|(id, _)| *id).collect();
    completed.sort();
    let mut polled = world.first_polls.clone();
    polled.sort();
    assert_eq!(
        completed, polled,
        "every task that started completed exactly once"
    );
    let expected: Vec<TaskId> = (0..completed.len() as u64).map(TaskId).collect();
    assert_eq!(
        completed, expected,
        "every spawned task ran and completed once"
    );
    Outcome {
        trace,
        first_polls: world.first_polls,
    }
}

/// Runs the program encoded by `data` and panics if an executor invariant breaks.
///
/// ```
/// ordo_executor::fuzzing::executor_schedule(&[3, 2, 0, 3, 1, 2, 1, 7, 4, 9]);
/// ```
pub fn executor_schedule(data: &[u8]) {
    let program = Program::parse(data);
    let scripted = run(&program, Scheduler::Scripted(program.script.clone()));
    if !program.cross_thread {
        let again = run(&program, Scheduler::Scripted(program.script.clone()));
        assert_eq!(
            scripted.trace, again.trace,
            "same bytes, different schedule"
        );
    }
    let fifo = run(&program, Scheduler::Fifo);
    let mut sorted = fifo.first_polls.clone();
    sorted.sort();
    assert_eq!(
        fifo.first_polls, sorted,
        "under Fifo, first polls follow spawn order"
    );
}

#[cfg(test)]
mod tests {
    /// splitmix64, to make reproducible pseudo-random inputs without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn executor_schedule_holds_on_seeded_inputs() {
        let mut state = 0x0bd0_5eed;
        for _ in 0..3000 {
            let len = (next(&mut state) % 80) as usize;
            let data: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
            super::executor_schedule(&data);
        }
    }

    #[test]
    fn executor_schedule_handles_empty_and_extreme_inputs() {
        super::executor_schedule(&[]);
        super::executor_schedule(&[255; 200]);
        super::executor_schedule(&[3; 200]);
        super::executor_schedule(&[4; 64]);
    }
}
