//! Shared helpers for the runtime's end-to-end tests. The crash-and-replay checker
//! lives in `ordo::fuzzing`, shared with the `replay` fuzz target.
#![allow(dead_code, unused_imports)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

pub use ordo::fuzzing::{
    builder, check_crash_replay, copy_dir, journal_dir, recorded_steps, run_once, step, Env, Halt,
    Order, RunResult,
};

/// Which step bodies ran, in the order they started: `(workflow id, step label)`.
#[derive(Clone, Default)]
pub struct BodyLog(Rc<RefCell<Vec<String>>>);

impl BodyLog {
    pub fn record(&self, label: impl Into<String>) {
        self.0.borrow_mut().push(label.into());
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    pub fn clear(&self) {
        self.0.borrow_mut().clear();
    }
}

/// Simulated latency of an outside call, on the executor's (virtual) clock.
pub async fn latency(ms: u64) {
    ordo::executor::sleep(Duration::from_millis(ms)).await;
}
