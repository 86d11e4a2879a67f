//! A workflow's step slots: one per step still in use, so a workflow parked after a
//! thousand steps holds one slot, not a thousand.
//!
//! Step ids are dense (determinism rule 1 numbers them in program order), so the slots
//! form a window: from the oldest step still in use to the newest one created. A step
//! is *released* once its future took its outcome or was dropped; released slots at the
//! front of the window are freed, and the window's buffer shrinks when it is mostly
//! empty once the workflow waits with no outcome left to deliver
//! ([`StepSlots::compact`]).

use std::collections::VecDeque;
use std::rc::Rc;
use std::task::Waker;

use ordo_journal::Outcome;

/// A step the workflow created (called `ctx.step` for) and still uses.
#[derive(Debug)]
pub(crate) struct StepSlot {
    /// Interned (see `crate::names`).
    pub(crate) name: Rc<str>,
    /// Whether the journal has this step's completion: its body must never run.
    pub(crate) recorded: bool,
    /// The delivered outcome, until the step future takes it.
    pub(crate) outcome: Option<Outcome>,
    /// The step future's waker, woken on delivery.
    pub(crate) waker: Option<Waker>,
}

/// The smallest window buffer [`StepSlots::compact`] leaves: room for the one step a
/// sequential workflow has in use, and the next one it creates as soon as the last is
/// released, so it does not reallocate its window in every step; a workflow parked in a
/// sleep (one slot) keeps one slot more than it uses, not the three more a first
/// allocation's four would be.
const MIN_CAPACITY: usize = 2;

/// The slots of the steps in use, by step id.
#[derive(Debug, Default)]
pub(crate) struct StepSlots {
    /// The id of `window[0]`; every id below it is released.
    first: u64,
    /// Slots from `first` on; `None` for a step released out of order (a `join!`
    /// whose second step finished first), freed once every step before it is released.
    window: VecDeque<Option<StepSlot>>,
}

impl StepSlots {
    /// No slot yet; the first step created gets id `first` (a run continued as new goes
    /// on from the steps of the runs before it).
    pub(crate) fn starting_at(first: u64) -> Self {
        StepSlots {
            first,
            window: VecDeque::new(),
        }
    }

    /// How many steps were created: the next step's id.
    pub(crate) fn created(&self) -> u64 {
        self.first + self.window.len() as u64
    }

    /// Adds the slot of the next step and returns its id.
    pub(crate) fn push(&mut self, slot: StepSlot) -> u64 {
        let id = self.created();
        self.window.push_back(Some(slot));
        id
    }

    /// The slot of step `id`, unless it was released or never created.
    pub(crate) fn get(&self, id: u64) -> Option<&StepSlot> {
        let index = usize::try_from(id.checked_sub(self.first)?).ok()?;
        self.window.get(index)?.as_ref()
    }

    /// The slot of step `id`, unless it was released or never created.
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut StepSlot> {
        let index = usize::try_from(id.checked_sub(self.first)?).ok()?;
        self.window.get_mut(index)?.as_mut()
    }

    /// Frees step `id`'s slot: nothing more will be asked of it. Returns what the slot
    /// held (its waker, say), to be dropped after the caller's borrow ends.
    pub(crate) fn release(&mut self, id: u64) -> Option<StepSlot> {
        let index = usize::try_from(id.checked_sub(self.first)?).ok()?;
        let released = self.window.get_mut(index)?.take();
        while let Some(None) = self.window.front() {
            self.window.pop_front();
            self.first += 1;
        }
        released
    }

    /// Gives back a buffer that a burst of concurrent steps grew, once the burst is
    /// over: a parked workflow keeps one or two slots, not the 64 a `join_all` of 64
    /// needed. Called when the workflow's root task has been polled and waits, with
    /// `deliveries_pending` when committed outcomes still wait in its inbox. Not on
    /// every release, and not while outcomes are being delivered: a workflow that
    /// gathers 64 steps round after round takes their outcomes one poll at a time (one
    /// delivery per stall, in journal order) and creates the next 64 in the poll that
    /// takes the last, and would otherwise shrink its window as a round drains and grow
    /// it again for the next, every round.
    pub(crate) fn compact(&mut self, deliveries_pending: bool) {
        if deliveries_pending {
            return;
        }
        let capacity = self.window.capacity();
        if capacity > MIN_CAPACITY && self.window.len() * 2 < capacity {
            self.window.shrink_to(self.window.len().max(MIN_CAPACITY));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str) -> StepSlot {
        StepSlot {
            name: Rc::from(name),
            recorded: false,
            outcome: None,
            waker: None,
        }
    }

    #[test]
    fn ids_stay_dense_while_released_slots_are_freed() {
        let mut slots = StepSlots::default();
        assert_eq!(slots.push(slot("a")), 0);
        assert_eq!(slots.push(slot("b")), 1);
        assert_eq!(slots.push(slot("c")), 2);
        // Out of order: `b` is released first and freed only with `a`.
        assert!(slots.release(1).is_some());
        assert!(slots.get(1).is_none());
        assert_eq!(slots.window.len(), 3);
        assert!(slots.release(0).is_some());
        assert_eq!((slots.first, slots.window.len()), (2, 1));
        assert_eq!(slots.get(2).map(|s| &*s.name), Some("c"));
        assert_eq!(slots.push(slot("d")), 3);
        assert_eq!(slots.created(), 4);
        // Released, never created, and released twice: nothing there.
        assert!(slots.get_mut(0).is_none());
        assert!(slots.get(4).is_none());
        assert!(slots.release(0).is_none());
        assert!(slots.release(1).is_none());
    }

    #[test]
    fn the_buffer_shrinks_when_a_burst_is_over() {
        let mut slots = StepSlots::default();
        for _ in 0..1000 {
            slots.push(slot("burst"));
        }
        for id in 0..999 {
            slots.release(id);
        }
        assert!(
            slots.window.capacity() >= 1000,
            "not shrunk before the poll ends"
        );
        slots.compact(true);
        assert!(
            slots.window.capacity() >= 1000,
            "not shrunk while outcomes wait"
        );
        slots.compact(false);
        assert_eq!(slots.window.len(), 1);
        assert_eq!(slots.window.capacity(), MIN_CAPACITY);
        slots.release(999);
        slots.compact(false);
        assert_eq!(slots.window.capacity(), MIN_CAPACITY);
        assert_eq!(slots.created(), 1000);
    }

    /// What compacting only once a round's outcomes are delivered is for: a workflow
    /// that gathers 64 steps round after round (taking their outcomes one poll at a
    /// time, and creating the next round's in the poll that takes the last), or runs
    /// one step at a time, keeps its window's buffer.
    #[test]
    fn rounds_of_the_same_size_keep_the_buffer() {
        for burst in [1u64, 64] {
            let mut slots = StepSlots::default();
            for id in 0..burst {
                assert_eq!(slots.push(slot("s")), id);
            }
            slots.compact(false);
            let capacity = slots.window.capacity();
            for round in 1..10 {
                // One poll per delivered outcome, in order.
                for id in (round - 1) * burst..round * burst {
                    slots.release(id);
                    let last = id == round * burst - 1;
                    if last {
                        for _ in 0..burst {
                            slots.push(slot("s"));
                        }
                    }
                    slots.compact(!last);
                    assert_eq!(slots.window.capacity(), capacity, "burst of {burst}");
                }
            }
        }
    }
}
