//! Step bodies that wait for something the journal will hold: an event's value, an
//! awakeable's resolution, a workflow's end. They read the journal, and if it does not
//! hold the thing yet, park here until a commit that may have written it wakes them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::core::Core;
use crate::error::Error;

/// What a body waits for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum WatchKey {
    /// Event `key` of workflow `id`.
    Event(String, String),
    /// The awakeable of step `step_id` of workflow `id`.
    Awakeable(String, u64),
    /// The end (final record or cancellation) of workflow `id`.
    Workflow(String),
}

/// Parked wakers by what they wait for. Woken after the commit that changed it.
#[derive(Default)]
pub(crate) struct Watchers {
    parked: RefCell<HashMap<WatchKey, Vec<Waker>>>,
}

impl Watchers {
    fn park(&self, key: WatchKey, waker: &Waker) {
        let mut parked = self.parked.borrow_mut();
        let wakers = parked.entry(key).or_default();
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }

    /// Whether anyone is parked (a commit skips its wake-ups when nobody is).
    pub(crate) fn any(&self) -> bool {
        !self.parked.borrow().is_empty()
    }

    /// Wakes everyone parked on a key `matches` accepts (they look again): a change
    /// another worker committed.
    pub(crate) fn wake_where(&self, matches: impl Fn(&WatchKey) -> bool) {
        let wakers: Vec<Waker> = {
            let mut parked = self.parked.borrow_mut();
            let keys: Vec<WatchKey> = parked.keys().filter(|k| matches(k)).cloned().collect();
            keys.iter()
                .filter_map(|k| parked.remove(k))
                .flatten()
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// Wakes everyone parked on `key` (they look again).
    pub(crate) fn wake(&self, key: &WatchKey) {
        let wakers = self.parked.borrow_mut().remove(key);
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// Waits until `look` finds something (`Ok(Some)`), looking again after every commit
/// that wakes `key`, or until `deadline` passes (`Ok(None)`).
pub(crate) async fn wait_for<T>(
    core: Rc<Core>,
    key: WatchKey,
    deadline: Option<Instant>,
    mut look: impl FnMut(&Core) -> Result<Option<T>, Error>,
) -> Result<Option<T>, Error> {
    let mut timer = pin!(async move {
        match deadline {
            Some(at) => ordo_executor::sleep_until(at).await,
            None => std::future::pending().await,
        }
    });
    futures::future::poll_fn(move |cx| {
        if let Some(found) = look(&core)? {
            return Poll::Ready(Ok(Some(found)));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(None));
        }
        core.watchers.park(key.clone(), cx.waker());
        Poll::Pending
    })
    .await
}
