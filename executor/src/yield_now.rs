//! Cooperative yielding.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Returns `Pending` once after waking itself, so the task goes to the back of the
/// ready queue and every other ready task runs first.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use ordo_executor::{yield_now, Executor};
///
/// let ex = Executor::new();
/// let log = Rc::new(RefCell::new(Vec::new()));
/// for name in ["a", "b"] {
///     let log = log.clone();
///     drop(ex.spawn(async move {
///         log.borrow_mut().push(name);
///         yield_now().await;
///         log.borrow_mut().push(name);
///     }));
/// }
/// ex.run_until_stalled();
/// assert_eq!(*log.borrow(), ["a", "b", "a", "b"]);
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`]: pending once (its task goes to the back of
/// the ready queue), ready the next time.
///
/// ```
/// use ordo_executor::{yield_now, Executor, YieldNow};
///
/// let ex = Executor::new();
/// ex.block_on(async {
///     let once: YieldNow = yield_now();
///     once.await;
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
