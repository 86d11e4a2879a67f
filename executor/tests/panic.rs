//! Panics: isolated in tasks, propagated from block_on, clear messages for misuse.

// Tests report failure by panicking, so unwrapping is the point.
#![allow(clippy::unwrap_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use ordo_executor::{now, spawn, yield_now, Executor};

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

#[test]
fn a_panicking_task_is_reported_and_others_go_on() {
    let ex = Executor::new();
    let before = ex.spawn(async {
        yield_now().await;
        1
    });
    let bad = ex.spawn(async {
        yield_now().await;
        panic!("task exploded: {}", 42);
    });
    let after = ex.spawn(async {
        yield_now().await;
        yield_now().await;
        3
    });
    let bad_id = bad.id();
    let err = ex.block_on(bad).unwrap_err();
    assert!(err.is_panic());
    assert!(!err.is_aborted());
    assert_eq!(err.panic_message(), Some("task exploded: 42"));
    assert_eq!(
        err.to_string(),
        format!("{bad_id} panicked: task exploded: 42")
    );
    let as_error: &dyn std::error::Error = &err;
    assert!(as_error.to_string().contains("exploded"));
    assert_eq!(ex.block_on(before).unwrap(), 1);
    assert_eq!(ex.block_on(after).unwrap(), 3);
}

#[test]
fn a_panic_in_block_on_own_future_propagates_and_the_executor_still_works() {
    let ex = Executor::new();
    let survivor = ex.spawn(async { "alive" });
    let result = catch_unwind(AssertUnwindSafe(|| {
        ex.block_on(async {
            yield_now().await;
            panic!("main future failed")
        })
    }));
    assert_eq!(panic_text(result.unwrap_err()), "main future failed");
    assert_eq!(ex.block_on(survivor).unwrap(), "alive");
}

#[test]
fn nested_block_on_is_refused_with_a_message_saying_so() {
    let outer = Executor::new();
    let inner = Executor::new();
    let message = outer.block_on(async {
        let result = catch_unwind(AssertUnwindSafe(|| inner.block_on(async {})));
        panic_text(result.unwrap_err())
    });
    assert!(message.contains("already inside block_on"), "{message}");
    // And the outer executor is still usable afterwards.
    assert_eq!(outer.block_on(async { 5 }), 5);
}

#[test]
fn driving_an_executor_from_its_own_task_is_refused() {
    let ex = std::rc::Rc::new(Executor::new());
    let inner = ex.clone();
    let handle = ex.spawn(async move {
        inner.run_until_stalled();
    });
    let err = ex.block_on(handle).unwrap_err();
    assert!(
        err.panic_message()
            .unwrap()
            .contains("already being driven"),
        "{err}"
    );
}

#[test]
fn spawn_outside_an_executor_panics_clearly() {
    let message = panic_text(catch_unwind(|| drop(spawn(async {}))).unwrap_err());
    assert!(
        message.contains("spawn() called outside an executor"),
        "{message}"
    );
}

#[test]
fn now_outside_an_executor_panics_clearly() {
    let message = panic_text(catch_unwind(now).unwrap_err());
    assert!(
        message.contains("now() called outside an executor"),
        "{message}"
    );
}

#[test]
fn a_panic_payload_that_is_not_a_string_is_still_reported() {
    let ex = Executor::new();
    let handle = ex.spawn(async { std::panic::panic_any(17_u32) });
    let err = ex.block_on(handle).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("<non-string panic payload>"));
}
