//! One executor, one workload, for counting instructions under valgrind's callgrind.
//!
//! `scripts/callgrind` builds this target and runs every (executor, workload) pair:
//!
//! ```text
//! callgrind EXECUTOR WORKLOAD [ITERATIONS]
//!   EXECUTOR: ordo | pool | async-executor | tokio
//!   WORKLOAD: spawn_complete | spawn_yield | ping_pong
//! ```
//!
//! It warms the executor up with one unmeasured iteration (allocator, queues, slabs
//! reach their steady size), then runs `ITERATIONS` (default 5) iterations of the
//! workload inside [`measured`], the one function callgrind collects in
//! (`--toggle-collect`): setup, warm-up and teardown are not counted. Each iteration is
//! `workloads::N` operations, so instructions per operation are the collected total
//! divided by `ITERATIONS * N`. Instruction counts do not depend on what else the
//! machine is doing, unlike the wall-clock `compare` bench.
//!
//! Run by `cargo bench` (which passes `--bench`), it says how to use it and exits.

mod workloads;

use std::hint::black_box;
use std::process::ExitCode;

use workloads::{trivial, yield_once, AsyncExecutor, Ordo, Pool, Subject, Tokio, N};

const USAGE: &str = "usage: callgrind EXECUTOR WORKLOAD [ITERATIONS]\n  \
    EXECUTOR: ordo | pool | async-executor | tokio\n  \
    WORKLOAD: spawn_complete | spawn_yield | ping_pong\n\
    (scripts/callgrind runs every pair under valgrind and prints a table)";

/// Iterations measured when none is given.
const DEFAULT_ITERATIONS: u32 = 5;

/// The only code callgrind counts (`--toggle-collect=*callgrind_measured*`): never
/// inlined, so it exists as a function for callgrind to match.
#[inline(never)]
fn callgrind_measured(iterations: u32, work: &mut dyn FnMut()) {
    for _ in 0..black_box(iterations) {
        work();
    }
}

/// Builds the executor, warms it up, then runs the measured iterations.
fn run<S: Subject>(workload: &str, iterations: u32) -> Result<(), String> {
    let work: fn(&mut S) = match workload {
        "spawn_complete" => |s| s.spawn_n(trivial),
        "spawn_yield" => |s| s.spawn_n(yield_once),
        "ping_pong" => |s| s.ping_pong_n(),
        other => return Err(format!("unknown workload {other:?}")),
    };
    let mut subject = S::new();
    work(&mut subject);
    callgrind_measured(iterations, &mut || work(&mut subject));
    drop(subject);
    println!(
        "{} {workload}: {iterations} iterations of {N} operations",
        S::NAME
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--bench") {
        // `cargo bench` runs every bench target; this one is meant for scripts/callgrind.
        println!("callgrind: nothing to time here; run scripts/callgrind for instruction counts");
        return ExitCode::SUCCESS;
    }
    let (executor, workload) = match args.as_slice() {
        [executor, workload] | [executor, workload, _] => (executor.as_str(), workload.as_str()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let iterations = match args.get(2).map(|arg| arg.parse::<u32>()) {
        None => DEFAULT_ITERATIONS,
        Some(Ok(iterations)) => iterations,
        Some(Err(error)) => {
            eprintln!("ITERATIONS must be a whole number ({error})\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = match executor {
        "ordo" => run::<Ordo>(workload, iterations),
        "pool" => run::<Pool>(workload, iterations),
        "async-executor" => run::<AsyncExecutor>(workload, iterations),
        "tokio" => run::<Tokio>(workload, iterations),
        other => Err(format!("unknown executor {other:?}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
