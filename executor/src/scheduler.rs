//! Which ready task runs next.

use std::collections::VecDeque;

use crate::task::TaskRef;

/// The policy choosing which ready task is polled next, set with
/// [`ExecutorBuilder::scheduler`](crate::ExecutorBuilder::scheduler).
///
/// Under every policy each wake leads to a poll, a task completes at most once and no
/// wake is lost; only the order among ready tasks differs. A choice is made (and a byte
/// or random number used) only when two or more tasks are ready.
///
/// ```
/// use ordo_executor::{Executor, Scheduler};
///
/// let ex = Executor::builder().scheduler(Scheduler::Scripted(vec![1])).trace(true).build();
/// let a = ex.spawn(async {});
/// let b = ex.spawn(async {});
/// ex.run_until_stalled();
/// // The byte 1 picked the second of two ready tasks first.
/// assert_eq!(ex.take_trace(), vec![b.id(), a.id()]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scheduler {
    /// First in, first out: tasks are first polled in spawn order and re-polled in wake
    /// order. The order ordo's durable runtime relies on.
    #[default]
    Fifo,
    /// Each byte picks among the ready tasks (index `byte % ready`), in queue order;
    /// FIFO once the bytes run out. Meant for fuzzers exploring interleavings.
    Scripted(Vec<u8>),
    /// A pseudo-random pick from this seed: different interleavings, reproducible run
    /// after run.
    Seeded(u64),
}

/// A scheduler with its progress (script position or generator state).
pub(crate) enum Picker {
    Fifo,
    Scripted { bytes: Vec<u8>, next: usize },
    Seeded { state: u64 },
}

impl Picker {
    pub(crate) fn new(scheduler: Scheduler) -> Self {
        match scheduler {
            Scheduler::Fifo => Picker::Fifo,
            Scheduler::Scripted(bytes) => Picker::Scripted { bytes, next: 0 },
            Scheduler::Seeded(seed) => Picker::Seeded { state: seed },
        }
    }

    /// Removes and returns the next task to poll.
    #[inline]
    pub(crate) fn pick(&mut self, ready: &mut VecDeque<TaskRef>) -> Option<TaskRef> {
        let len = ready.len();
        let index = match self {
            Picker::Fifo => return ready.pop_front(),
            _ if len <= 1 => return ready.pop_front(),
            Picker::Scripted { bytes, next } => match bytes.get(*next) {
                Some(&byte) => {
                    *next += 1;
                    usize::from(byte) % len
                }
                None => return ready.pop_front(),
            },
            Picker::Seeded { state } => {
                // Multiply-shift reduction of a splitmix64 output to 0..len.
                let bounded = (u128::from(splitmix64(state)) * len as u128) >> 64;
                usize::try_from(bounded).unwrap_or(0)
            }
        };
        ready.remove(index)
    }
}

/// splitmix64: tiny, fast, and good enough to shuffle schedules; no dependency needed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
