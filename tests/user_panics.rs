//! A panic in user code never corrupts the runtime: a panicking observer, a panicking
//! step body followed by other workflows, and a waker that re-enters the runtime. And
//! it loses nothing that ran: a step whose body returned before its workflow panicked
//! (in another step's body, or in the workflow's own code) is recorded, so the fixed
//! binary's resumed run replays it instead of running it (a payment, say) again.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{builder, journal_dir};
use ordo::{Ctx, Error, Event, Status, Step};

/// Runs `test` on its own thread and fails if it has not finished in 60 s: the bugs
/// these tests guard against show up as hangs.
fn within_a_minute(test: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        test();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => thread.join().expect("test thread"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(thread.join().expect_err("the test panicked"))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: the runtime did not go on"),
    }
}

async fn two_steps(ctx: Ctx, n: u32) -> Result<u32, String> {
    let a = ctx
        .step("a", move || async move { Ok::<_, String>(n) })
        .await?;
    let b = ctx
        .step("b", move || async move { Ok::<_, String>(n) })
        .await?;
    Ok(a + b)
}

#[test]
fn a_panicking_observer_reaches_the_caller_and_the_runtime_goes_on() {
    within_a_minute(|| {
        let dir = journal_dir();
        let panicked = std::rc::Rc::new(std::cell::Cell::new(false));
        let once = std::rc::Rc::clone(&panicked);
        let rt = builder(dir.path())
            .register("two", two_steps)
            .observer(move |event| {
                if matches!(event, Event::Committed { .. }) && !once.replace(true) {
                    panic!("the observer's bug");
                }
            })
            .build()
            .expect("build");
        let first = rt
            .start::<_, u32, String>("two", "t-1", 1u32)
            .expect("start");
        let caught =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(first.result())));
        assert!(
            caught.is_err(),
            "the observer's panic reaches block_on's caller"
        );
        assert!(panicked.get());
        // The same workflow and a new one both finish.
        assert_eq!(rt.block_on(first.result()).expect("first"), Ok(2));
        let second = rt
            .start::<_, u32, String>("two", "t-2", 5u32)
            .expect("start");
        assert_eq!(rt.block_on(second.result()).expect("second"), Ok(10));
    });
}

#[test]
fn after_a_step_body_panics_no_other_code_sees_its_step() {
    within_a_minute(|| {
        let dir = journal_dir();
        let rt = builder(dir.path())
            .register("boom", |ctx: Ctx, (): ()| async move {
                ctx.step("charge", || async {
                    panic!("the payment client crashed");
                    #[allow(unreachable_code)]
                    Ok::<u32, String>(0)
                })
                .await
            })
            .register("next", |ctx: Ctx, (): ()| async move {
                // Workflow code, outside any step body: no step is current.
                let outside = ordo::current_step().map(|s| s.idempotency_key());
                let inside = ctx
                    .step("refund", || async {
                        Ok::<_, String>(ordo::current_step().map(|s| s.idempotency_key()))
                    })
                    .await?;
                Ok::<_, String>((outside, inside))
            })
            .build()
            .expect("build");
        let boom = rt
            .start::<_, u32, String>("boom", "w-1", ())
            .expect("start");
        assert!(matches!(
            rt.block_on(boom.result()),
            Err(Error::Panicked { .. })
        ));
        assert_eq!(ordo::current_step(), None);
        let next = rt
            .start::<_, (Option<String>, Option<String>), String>("next", "w-2", ())
            .expect("start");
        assert_eq!(
            rt.block_on(next.result()).expect("finishes"),
            Ok((None, Some("w-2:0".to_string())))
        );
    });
}

/// A step pinned on the heap, held where a waker can reach it.
type HeldStep = Option<Pin<Box<Step<u32, String>>>>;

thread_local! {
    /// The step the re-entrant waker polls, and what that poll returned.
    static HELD: RefCell<HeldStep> = const { RefCell::new(None) };
    static SEEN: RefCell<Option<Result<u32, String>>> = const { RefCell::new(None) };
}

/// A waker that, when woken, polls the held step right away (as some combinators and
/// foreign executors do), then wakes the task that waits for it.
struct Reenter(Waker);

impl Wake for Reenter {
    fn wake(self: Arc<Self>) {
        let polled = HELD.with(|held| {
            let mut held = held.borrow_mut();
            let step = held.as_mut()?;
            let noop = futures::task::noop_waker();
            match step.as_mut().poll(&mut Context::from_waker(&noop)) {
                Poll::Ready(result) => Some(result),
                Poll::Pending => None,
            }
        });
        if let Some(result) = polled {
            SEEN.with(|seen| *seen.borrow_mut() = Some(result));
        }
        self.0.wake_by_ref();
    }
}

#[test]
fn a_waker_that_reenters_the_runtime_does_not_find_it_borrowed() {
    within_a_minute(|| {
        let dir = journal_dir();
        let rt = builder(dir.path())
            .register("reenter", |ctx: Ctx, (): ()| async move {
                let step = ctx.step("quote", || async { Ok::<_, String>(42u32) });
                HELD.with(|held| *held.borrow_mut() = Some(Box::pin(step)));
                futures::future::poll_fn(|cx| {
                    if let Some(result) = SEEN.with(|seen| seen.borrow_mut().take()) {
                        return Poll::Ready(result);
                    }
                    let waker = Waker::from(Arc::new(Reenter(cx.waker().clone())));
                    HELD.with(|held| {
                        let mut held = held.borrow_mut();
                        let step = held.as_mut().expect("held");
                        match step.as_mut().poll(&mut Context::from_waker(&waker)) {
                            Poll::Ready(result) => Poll::Ready(result),
                            Poll::Pending => Poll::Pending,
                        }
                    })
                })
                .await
            })
            .build()
            .expect("build");
        let h = rt
            .start::<_, u32, String>("reenter", "r", ())
            .expect("start");
        assert_eq!(rt.block_on(h.result()).expect("finishes"), Ok(42));
    });
}

thread_local! {
    /// How many times a `pay` body ran to its end.
    static PAYMENTS: Cell<u32> = const { Cell::new(0) };
    /// Whether the code still has its bug: `checkout` panics while it is set.
    static BUGGY: Cell<bool> = const { Cell::new(true) };
}

/// Pays, and alongside it checks the cart, which panics (in a step body when `in_body`,
/// else in the workflow's own code) while the code is [`BUGGY`], a few executor turns
/// after the payment's body returned: before its outcome was committed.
async fn checkout(ctx: Ctx, in_body: bool) -> Result<u32, String> {
    let pay = ctx.step("pay", || async {
        PAYMENTS.with(|p| p.set(p.get() + 1));
        Ok::<_, String>(1_250u32)
    });
    let check = async {
        if in_body {
            ctx.step("check", || async {
                for _ in 0..3 {
                    ordo::executor::yield_now().await;
                }
                assert!(!BUGGY.with(Cell::get), "the cart check crashed");
                Ok::<_, String>(())
            })
            .await
        } else {
            for _ in 0..3 {
                ordo::executor::yield_now().await;
            }
            assert!(!BUGGY.with(Cell::get), "the checkout crashed");
            Ok(())
        }
    };
    let (paid, checked) = futures::join!(pay, check);
    checked?;
    paid
}

/// `checkout` panics with a payment made; the fixed code resumes it without paying again.
fn a_payment_made_before_a_panic_is_kept(in_body: bool) {
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("checkout", checkout)
        .build()
        .expect("build");
    let h = rt
        .start::<_, u32, String>("checkout", "c-1", in_body)
        .expect("start");
    assert!(matches!(
        rt.block_on(h.result()),
        Err(Error::Panicked { .. })
    ));
    assert_eq!(PAYMENTS.with(Cell::get), 1);
    let record = rt
        .journal()
        .workflow("c-1")
        .expect("read")
        .expect("recorded");
    assert_eq!(
        record.status,
        Status::Pending,
        "a panicked workflow stays pending"
    );
    let recorded = rt.journal().completions("c-1").expect("read");
    assert!(
        recorded.iter().any(|c| c.name == "pay"),
        "the payment's outcome is recorded: {recorded:?}"
    );
    // The bug is fixed; the workflow is resumed.
    BUGGY.with(|b| b.set(false));
    let resumed = rt.resume::<u32, String>("c-1").expect("resume");
    assert_eq!(rt.block_on(resumed.result()).expect("runs"), Ok(1_250));
    assert_eq!(PAYMENTS.with(Cell::get), 1, "the payment ran again");
}

#[test]
fn a_step_that_returned_before_a_sibling_step_panicked_is_not_run_again() {
    within_a_minute(|| a_payment_made_before_a_panic_is_kept(true));
}

#[test]
fn a_step_that_returned_before_its_workflow_panicked_is_not_run_again() {
    within_a_minute(|| a_payment_made_before_a_panic_is_kept(false));
}
