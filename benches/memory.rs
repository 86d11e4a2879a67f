//! Memory per parked workflow: what a service pays for each workflow waiting in a
//! durable sleep or a `recv`.
//!
//! N workflows each run three steps and then park in a one-hour `ctx.sleep` (system
//! clock: a virtual clock would jump to the deadline), or, in the `-recv` rows, in a
//! `ctx.recv` with a one-hour timeout that no message ends. Each (journal, N) is measured in
//! a fresh child process (this binary re-executed with `child` arguments), so one
//! measurement's freed-but-kept memory cannot hide another's. The child reads
//! `/proc/self/status` and the counting allocator before starting the workflows and
//! once all of them are parked, and prints one line; the parent prints the table:
//!
//! - `RSS delta`: VmRSS parked minus VmRSS before the first start; `peak delta`: VmHWM
//!   minus the same starting VmRSS (the high-water mark of the whole run).
//! - `heap delta`: bytes allocated and not freed (every thread, sled's included), from
//!   the counting global allocator; `heap peak`: the most seen live at once (sampled
//!   between starts and at every event the runtime reports: each step, each commit).
//! - `marginal`: what each workflow past the previous count of the same journal added,
//!   `(RSS delta - previous RSS delta) / (N - previous N)`: the cost of one more parked
//!   workflow, without what a run pays once whatever its count (sled's log buffers and
//!   first pages, the allocator's first arenas), which `RSS B/wf` spreads over N.
//! - Journals: `sled` (a real sled journal in a temporary folder under cargo's target
//!   dir, `Durability::None`, the runtime's default sled cache), `sled-sync` (the same
//!   with `Durability::Sync`), `sled-recv` (`sled`, parked in a `recv`), and `memory`
//!   (the replay fuzzer's in-memory store: the runtime's own memory plus the records,
//!   no sled at all).
//!
//! After the table, two more sections, each in a fresh child too:
//!
//! - A workflow that lives for months (a `select!` of a step and a timeout in a loop,
//!   continuing as new): its heap must stay flat.
//! - A burst of ends: 10,000 and 100,000 workflows of one step started together with
//!   `start_many` on sled (`Durability::None`) and driven to their results: the peak
//!   resident memory of the run over the resident memory before it (`VmHWM` minus
//!   `VmRSS`), and the most ends one commit wrote (at most `MAX_COMMIT_WORKFLOWS` since
//!   ends are bounded per commit; a commit after the burst's last step took them all
//!   before).
//!
//! Run: `cargo bench --bench memory` (all rows), or
//! `cargo bench --bench memory -- 1000 10000` for some counts only.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::alloc::System;
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::process::Command;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use ordo::{Ctx, Durability, Event, Runtime, RuntimeBuilder};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

thread_local! {
    /// The most heap seen live at one of the runtime's events (each step, commit, end):
    /// the transient peak of a burst, which the samples taken between starts miss.
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

/// Steps each workflow runs before it parks.
const STEPS: u64 = 3;

/// Three steps, then a durable sleep of an hour: parked.
async fn parked(ctx: Ctx, steps: u64) -> Result<u64, String> {
    let sum = work(&ctx, steps).await?;
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(sum)
}

/// Three steps, then waiting up to an hour for a message: parked in a `recv`.
async fn parked_in_recv(ctx: Ctx, steps: u64) -> Result<u64, String> {
    let sum = work(&ctx, steps).await?;
    let got = ctx.recv::<u64>("go", Duration::from_secs(3600)).await;
    Ok(sum + got.unwrap_or(0))
}

/// `steps` sequential steps: the sum of `0..steps`.
async fn work(ctx: &Ctx, steps: u64) -> Result<u64, String> {
    let mut sum = 0;
    for i in 0..steps {
        sum += ctx
            .step("work", move || async move { Ok::<u64, String>(i) })
            .await?;
    }
    Ok(sum)
}

/// Bytes live on the heap right now, every thread included (`stats_alloc` already
/// counts a realloc's growth as allocated and its shrinking as deallocated).
fn heap_live() -> i64 {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

/// `VmRSS` and `VmHWM` of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One measurement, as the child prints it and the parent parses it.
struct Row {
    journal: String,
    n: u64,
    rss_delta: i64,
    peak_delta: i64,
    heap_delta: i64,
    heap_peak: i64,
    secs: f64,
}

impl Row {
    fn to_line(&self) -> String {
        format!(
            "ROW {} {} {} {} {} {} {:.3}",
            self.journal,
            self.n,
            self.rss_delta,
            self.peak_delta,
            self.heap_delta,
            self.heap_peak,
            self.secs
        )
    }

    fn parse(line: &str) -> Option<Row> {
        let mut parts = line.strip_prefix("ROW ")?.split_whitespace();
        Some(Row {
            journal: parts.next()?.to_string(),
            n: parts.next()?.parse().ok()?,
            rss_delta: parts.next()?.parse().ok()?,
            peak_delta: parts.next()?.parse().ok()?,
            heap_delta: parts.next()?.parse().ok()?,
            heap_peak: parts.next()?.parse().ok()?,
            secs: parts.next()?.parse().ok()?,
        })
    }
}

/// In the child: start `n` workflows, drive them until all are parked, measure.
fn measure(journal: &str, n: u64) -> Row {
    let dir = common::bench_dir();

    // Counts the workflows whose wait has started: its deadline step was delivered.
    let sleeping = Rc::new(Cell::new(0u64));
    let waiter: Rc<RefCell<Option<Waker>>> = Rc::default();
    let (count, wake) = (Rc::clone(&sleeping), Rc::clone(&waiter));
    let builder: RuntimeBuilder = Runtime::builder()
        .register("parked", parked)
        .register("parked_in_recv", parked_in_recv)
        .observer(move |event| {
            PEAK.with(|p| p.set(p.get().max(heap_live())));
            if let Event::Step { name, .. } = event {
                if name == "ordo.sleep.until" || name == "ordo.recv.until" {
                    count.set(count.get() + 1);
                    if let Some(waker) = wake.borrow_mut().take() {
                        waker.wake();
                    }
                }
            }
        });
    let workflow = if journal.ends_with("-recv") {
        "parked_in_recv"
    } else {
        "parked"
    };
    let builder = match journal.trim_end_matches("-recv") {
        "sled" => builder.path(dir.path()).durability(Durability::None),
        "sled-sync" => builder.path(dir.path()).durability(Durability::Sync),
        "memory" => builder.store(Box::new(ordo_testkit::MemoryJournal::default())),
        other => panic!("unknown journal {other}"),
    };
    let rt = builder.build().unwrap();

    let (rss_before, _) = rss();
    let heap_before = heap_live();
    let mut heap_peak = heap_before;
    let start = Instant::now();
    for i in 0..n {
        drop(
            rt.start::<_, u64, String>(workflow, &format!("wf-{i:08}"), STEPS)
                .unwrap(),
        );
        if i % 1024 == 0 {
            heap_peak = heap_peak.max(heap_live());
        }
    }
    rt.block_on(async {
        poll_fn(|cx| {
            if sleeping.get() >= n {
                Poll::Ready(())
            } else {
                *waiter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        // The executor parks only once nothing is ready: by the time this fires, every
        // sleep's firing step has started its timer.
        ordo::executor::sleep(Duration::from_millis(200)).await;
    });
    let secs = start.elapsed().as_secs_f64();
    let heap_after = heap_live();
    heap_peak = heap_peak.max(heap_after).max(PEAK.with(|p| p.get()));
    let (rss_after, hwm) = rss();
    assert_eq!(rt.metrics().steps_executed, n * (STEPS + 1));
    let row = Row {
        journal: journal.to_string(),
        n,
        rss_delta: rss_after as i64 - rss_before as i64,
        peak_delta: hwm as i64 - rss_before as i64,
        heap_delta: heap_after - heap_before,
        heap_peak: heap_peak - heap_before,
        secs,
    };
    // Tearing 100,000 parked workflows down is not what is measured.
    std::mem::forget(rt);
    drop(dir);
    row
}

/// Iterations per run of the looping workflow before it continues as new.
const LOOP_RUN: u64 = 1_000;

/// Races a step against an hour-long durable timeout, `remaining` times, continuing as
/// new every [`LOOP_RUN`] iterations: a poller that lives for months.
async fn looper(ctx: Ctx, remaining: u64) -> Result<u64, String> {
    use futures::FutureExt;
    for _ in 0..remaining.min(LOOP_RUN) {
        let tick = ctx.step("tick", || async { Ok::<u64, String>(1) }).fuse();
        let timeout = ctx.sleep(Duration::from_secs(3600)).fuse();
        futures::pin_mut!(tick, timeout);
        futures::select_biased! {
            done = tick => { done?; }
            () = timeout => {}
        }
    }
    if remaining > LOOP_RUN {
        return ctx.continue_as_new(remaining - LOOP_RUN).await;
    }
    Ok(0)
}

/// In the child: one workflow loops `n` times; the heap is read after a warm-up of
/// 10,000 iterations and at the end. Prints `LOOP n heap_warm heap_end`.
fn measure_loop(n: u64) -> String {
    const WARM: u64 = 10_000;
    let ticks = Rc::new(Cell::new(0u64));
    let warm_heap = Rc::new(Cell::new(0i64));
    let (count, warm) = (Rc::clone(&ticks), Rc::clone(&warm_heap));
    let rt = Runtime::builder()
        .store(Box::new(ordo_testkit::MemoryJournal::default()))
        .clock(ordo::Clock::Virtual)
        .register("looper", looper)
        .observer(move |event| {
            if let Event::Step { name, .. } = event {
                if name == "tick" {
                    count.set(count.get() + 1);
                    if count.get() == WARM {
                        warm.set(heap_live());
                    }
                }
            }
        })
        .build()
        .unwrap();
    let handle = rt.start::<_, u64, String>("looper", "loop", n).unwrap();
    assert_eq!(rt.block_on(handle.result()).unwrap(), Ok(0));
    assert_eq!(ticks.get(), n);
    format!("LOOP {n} {} {}", warm_heap.get(), heap_live())
}

/// One step that doubles `n`: a workflow that ends right after its step.
async fn one_step(ctx: Ctx, n: u64) -> Result<u64, String> {
    ctx.step("double", move || async move { Ok::<u64, String>(n * 2) })
        .await
}

/// In the child: `n` one-step workflows started together on sled and driven to their
/// results. Prints `ENDS n peak_delta largest_ends_per_commit secs`.
fn measure_ends(n: u64) -> String {
    let dir = common::bench_dir();
    let largest = Rc::new(Cell::new(0usize));
    let seen = Rc::clone(&largest);
    let rt = Runtime::builder()
        .path(dir.path())
        .durability(Durability::None)
        .register("one_step", one_step)
        .observer(move |event| {
            if let Event::Committed { workflows, .. } = event {
                seen.set(seen.get().max(*workflows));
            }
        })
        .build()
        .unwrap();
    let (rss_before, _) = rss();
    let start = Instant::now();
    let handles = rt
        .start_many::<_, _, u64, String>("one_step", (0..n).map(|i| (format!("e-{i:08}"), i)))
        .unwrap();
    for (i, handle) in (0..n).zip(handles) {
        assert_eq!(rt.block_on(handle.unwrap().result()).unwrap(), Ok(i * 2));
    }
    let secs = start.elapsed().as_secs_f64();
    let (_, hwm) = rss();
    std::mem::forget(rt);
    drop(dir);
    format!(
        "ENDS {n} {} {} {secs:.2}",
        hwm as i64 - rss_before as i64,
        largest.get()
    )
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("loop") {
        let n: u64 = args[1].parse().unwrap();
        println!("{}", measure_loop(n));
        return;
    }
    if args.first().map(String::as_str) == Some("ends") {
        let n: u64 = args[1].parse().unwrap();
        println!("{}", measure_ends(n));
        return;
    }
    if args.first().map(String::as_str) == Some("child") {
        let journal = &args[1];
        let n: u64 = args[2].parse().unwrap();
        println!("{}", measure(journal, n).to_line());
        return;
    }
    // `cargo bench` passes `--bench`; plain numbers choose the counts.
    let mut counts: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if counts.is_empty() {
        counts = vec![1_000, 10_000, 100_000];
    }
    let mut runs: Vec<(&str, u64)> = Vec::new();
    for &n in &counts {
        runs.push(("sled", n));
    }
    runs.push(("sled-sync", counts[0]));
    for &n in &counts {
        runs.push(("sled-recv", n));
    }
    for &n in &counts {
        runs.push(("memory", n));
    }

    let exe = std::env::current_exe().unwrap();
    println!(
        "parked workflows ({STEPS} steps, then a one-hour durable sleep); each row a fresh process"
    );
    println!(
        "{:<10} {:>8} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9} {:>7}",
        "journal",
        "N",
        "RSS delta",
        "peak delta",
        "heap delta",
        "heap peak",
        "RSS B/wf",
        "marginal",
        "heap B/wf",
        "secs"
    );
    // The previous row's journal, N and RSS delta, for `marginal`.
    let mut previous: Option<(String, u64, i64)> = None;
    for (journal, n) in runs {
        let out = Command::new(&exe)
            .args(["child", journal, &n.to_string()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(row) = stdout.lines().find_map(Row::parse) else {
            eprintln!(
                "{journal} N={n}: the child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        };
        let marginal = match &previous {
            Some((journal, n, rss_delta)) if *journal == row.journal && *n < row.n => {
                ((row.rss_delta - rss_delta) / (row.n - n) as i64).to_string()
            }
            _ => "-".to_string(),
        };
        previous = Some((row.journal.clone(), row.n, row.rss_delta));
        println!(
            "{:<10} {:>8} {:>11} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9} {:>7.2}",
            row.journal,
            row.n,
            mib(row.rss_delta),
            mib(row.peak_delta),
            mib(row.heap_delta),
            mib(row.heap_peak),
            row.rss_delta / row.n as i64,
            marginal,
            row.heap_delta / row.n as i64,
            row.secs
        );
    }

    // A workflow that lives for months: select!(step, 1-hour timeout) in a loop,
    // continuing as new every 1,000 iterations; its memory must stay flat.
    let out = Command::new(&exe)
        .args(["loop", "200000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().find_map(|l| l.strip_prefix("LOOP ")) {
        Some(line) => {
            let v: Vec<i64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let (n, warm, end) = (v[0], v[1], v[2]);
            println!(
                "\nselect!(step, 1-hour timeout) x {n} in one workflow (memory journal, continue-as-new every {LOOP_RUN}):\n  heap after 10,000 iterations {}, after {n} {}: {:.2} bytes per iteration after warm-up",
                mib(warm),
                mib(end),
                (end - warm) as f64 / (n - 10_000) as f64
            );
        }
        None => eprintln!(
            "loop: the child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }

    // A burst of workflows ending together: the peak of the run, and the largest
    // commit of ends.
    println!("\na burst of ends: N one-step workflows started together (sled, Durability::None)");
    println!(
        "{:>8} {:>11} {:>22} {:>7}",
        "N", "peak delta", "most ends in a commit", "secs"
    );
    for n in [10_000u64, 100_000] {
        let out = Command::new(&exe)
            .args(["ends", &n.to_string()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().find_map(|l| l.strip_prefix("ENDS ")) {
            Some(line) => {
                let v: Vec<&str> = line.split_whitespace().collect();
                let peak: i64 = v[1].parse().unwrap_or(0);
                println!("{:>8} {:>11} {:>22} {:>7}", v[0], mib(peak), v[2], v[3]);
            }
            None => eprintln!(
                "ends N={n}: the child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}
