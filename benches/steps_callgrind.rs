//! One runtime workload on the in-memory store, for counting the runtime's own
//! instructions per step under valgrind's callgrind.
//!
//! `scripts/callgrind-steps` builds this target and runs each workload:
//!
//! ```text
//! steps_callgrind WORKLOAD [ITERATIONS]
//! ```
//!
//! The store is the test kit's `MemoryJournal`, so what is counted is the runtime's work
//! per step (creating the step, running its body as a task, encoding its outcome, the
//! group commit's bookkeeping, delivering the outcome in journal order) plus the little
//! the in-memory store does, not a disk's or a database's. Callgrind collects only
//! inside [`callgrind_measured`]: the runtime is built and warmed up first.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::process::ExitCode;

use ordo::{Ctx, Runtime};

mod common;

use common::GATHER;

/// Rounds of [`GATHER`] steps gathered at once in the `join_all` workload (the shape of
/// `cargo bench --bench postgres`'s 64-row workload).
const ROUNDS: u64 = 8;
/// Sequential steps of each of the [`GATHER`] workflows of the `many` workload.
const MANY_STEPS: u64 = 50;
/// Steps of the one workflow of the `sequential` workload.
const SEQUENTIAL_STEPS: u64 = 500;
/// Workflows that do nothing, started together, in the `starts` workload.
const STARTS: u64 = 1000;

const USAGE: &str = "usage: steps_callgrind WORKLOAD [ITERATIONS]\n  \
    WORKLOAD: join_all | many | sequential | starts\n\
    (scripts/callgrind-steps runs each under valgrind and prints a table)";

/// A workflow that does nothing: a start and a finish.
async fn nothing(_ctx: Ctx, input: u64) -> Result<u64, ()> {
    Ok(input)
}

/// The only code callgrind counts (`--toggle-collect=*callgrind_measured*`): never
/// inlined, so it exists as a function for callgrind to match.
#[inline(never)]
fn callgrind_measured(iterations: u32, work: &mut dyn FnMut(u32)) {
    for iteration in 0..black_box(iterations) {
        work(iteration + 1);
    }
}

/// `(workflow, input, copies started together, steps per iteration)` of `workload`;
/// for `starts`, the "steps" are the workflows started (a start and its finish each).
fn shape(workload: &str) -> Option<(&'static str, u64, u64, u64)> {
    match workload {
        "starts" => Some(("nothing", 0, STARTS, STARTS)),
        "join_all" => Some(("gathered", ROUNDS, 1, GATHER * ROUNDS)),
        "many" => Some(("sequential", MANY_STEPS, GATHER, GATHER * MANY_STEPS)),
        "sequential" => Some(("sequential", SEQUENTIAL_STEPS, 1, SEQUENTIAL_STEPS)),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--bench") {
        // `cargo bench` runs every bench target; this one is meant for the script.
        println!(
            "steps_callgrind: nothing to time here; run scripts/callgrind-steps for \
             instruction counts"
        );
        return ExitCode::SUCCESS;
    }
    let (Some(workload), Some((workflow, input, copies, steps))) =
        (args.first(), args.first().and_then(|w| shape(w)))
    else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let iterations = match args.get(1).map(|arg| arg.parse::<u32>()) {
        None => 5,
        Some(Ok(iterations)) if iterations > 0 => iterations,
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = Runtime::builder()
        .store(Box::new(ordo_testkit::MemoryJournal::default()))
        .register("sequential", common::sequential)
        .register("gathered", common::gathered)
        .register("nothing", nothing)
        .build()
        .unwrap();
    let mut run = |iteration: u32| {
        let handles: Vec<_> = (0..copies)
            .map(|copy| {
                let id = format!("{workload}-{iteration}-{copy}");
                rt.start::<_, u64, ()>(workflow, &id, input).unwrap()
            })
            .collect();
        for handle in &handles {
            rt.block_on(handle.result()).unwrap().unwrap();
        }
    };
    // Warm-up: the names, the types' fingerprints, the executor's buffers.
    run(0);
    callgrind_measured(iterations, &mut run);
    println!("{workload}: {iterations} iterations of {steps} steps");
    ExitCode::SUCCESS
}
