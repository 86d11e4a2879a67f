//! The admin channel's speed (issue 11), against a runtime running on a thread of its
//! own and serving its admin socket, the way `ordo` reaches a running application.
//!
//! - `admin/list_first_screen_100k`: a `list` request for the first 50 of 100,000
//!   workflows (what a screen shows): time to first screen.
//! - `admin/list_total_100k`: a `list` request for all 100,000 (what `ordo list` asks),
//!   reply received and parsed.
//! - `admin/gc_100k_while_1k_step` (printed, not a criterion entry: one gc of 100,000
//!   takes minutes): `gc` requests deleting 100,000 finished workflows while 1,000
//!   others keep making steps. It prints the gc's workflows deleted per second and the
//!   steps/s of the 1,000 workflows during the gc against their steps/s without it (the
//!   target: within 80%). The gc is split into [`GC_PARTS`] requests of a quarter of
//!   the workflows each (they were written in four age tiers), and before each part
//!   come two windows without gc of [`WINDOW`] each, so without and with alternate
//!   through the run and a slow or busy spell of the machine falls on both. The two
//!   windows of a round are labelled A and B in turns (A first in even rounds, B first
//!   in odd ones); the steps/s of B against A is the control, the ratio the bench
//!   would print if the gc cost nothing: its distance from 100% is the noise floor.
//!   The same two ratios are printed in steps per second of the runtime thread's CPU
//!   time (read from `/proc`, Linux only): what the gc costs the thread, which other
//!   load on a shared machine moves less than the wall-clock rate.
//!
//! The 1,000 workflows start over (`continue_as_new`) every 100 steps, so their journals
//! and the cost of their commits stay the same however long the bench runs; their first
//! runs are 1 to 100 steps long, so they start over at different times, as independent
//! workflows would, rather than all in the same group commit (which stalled them all for
//! up to a second every few seconds and made the rate over a window depend on how many
//! of those stalls it caught).
//!
//! `Durability::None`: the comparison is of the runtime thread's time, which is what a
//! gc takes from the workflows (with `Sync`, the commits' `fdatasync` dominate both).
//! Journals live under cargo's target tmpdir: the repository's disk, not tmpfs.
#![allow(missing_docs, clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ordo::admin::{call, Request};
use ordo::{Ctx, Durability, Runtime};

/// Workflows in the journal listed and collected.
const WORKFLOWS: u64 = 100_000;

/// Workflows making steps during the gc.
const STEPPERS: usize = 1_000;

/// Gc requests the 100,000 deletions are split into, each after two windows without gc.
const GC_PARTS: u64 = 4;

/// One window without gc: long enough to hold many of the steppers' restarts (each
/// restarts every 100 steps, a few seconds).
const WINDOW: Duration = Duration::from_secs(10);

/// Steps made before anything is measured: every stepper has started over at least once.
const WARM_UP: Duration = Duration::from_secs(10);

/// A runtime on its own thread, serving its admin socket, with `steppers` workflows
/// that make steps until it stops.
struct App {
    socket: PathBuf,
    steps: Arc<AtomicU64>,
    /// The runtime thread's `/proc/<pid>/task/<tid>/stat` (Linux), for its CPU time.
    thread_stat: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Makes `run` steps, then starts over with 100 (`continue_as_new`), for ever: its
/// journal, and the cost of its commits, stay the same however long the bench runs.
async fn stepper(ctx: Ctx, run: u64, steps: Arc<AtomicU64>) -> Result<(), String> {
    for _ in 0..run {
        let steps = Arc::clone(&steps);
        ctx.step("tick", move || async move {
            steps.fetch_add(1, Ordering::Relaxed);
            Ok::<_, String>(())
        })
        .await?;
    }
    ctx.continue_as_new(100u64).await
}

impl App {
    fn start(dir: &Path, steppers: usize) -> App {
        let steps = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, socket) = std::sync::mpsc::channel();
        let thread = {
            let (dir, steps, stop) = (dir.to_path_buf(), Arc::clone(&steps), Arc::clone(&stop));
            std::thread::spawn(move || {
                let counter = Arc::clone(&steps);
                let rt = Runtime::builder()
                    .path(dir)
                    .durability(Durability::None)
                    .register("stepper", move |ctx: Ctx, run: u64| {
                        stepper(ctx, run, Arc::clone(&counter))
                    })
                    .build()
                    .unwrap();
                // First runs of 1 to 100 steps: the steppers start over at different times.
                for n in 0..steppers {
                    let run = 1 + n as u64 % 100;
                    rt.start::<_, (), String>("stepper", &format!("stepper-{n:04}"), run)
                        .unwrap();
                }
                let thread_stat = std::fs::read_link("/proc/thread-self")
                    .ok()
                    .map(|task| Path::new("/proc").join(task).join("stat"));
                let socket = rt.admin_socket().unwrap().to_path_buf();
                ready.send((socket, thread_stat)).unwrap();
                rt.block_on(async {
                    while !stop.load(Ordering::Acquire) {
                        ordo::executor::sleep(Duration::from_millis(5)).await;
                    }
                });
            })
        };
        let (socket, thread_stat) = socket.recv().unwrap();
        App {
            socket,
            steps,
            thread_stat,
            stop,
            thread: Some(thread),
        }
    }

    /// The steps made so far, the time, and the runtime thread's CPU time so far.
    fn sample(&self) -> Sample {
        Sample {
            steps: self.steps.load(Ordering::Relaxed),
            at: Instant::now(),
            cpu_ticks: self.thread_stat.as_ref().and_then(|stat| {
                // Fields 14 and 15, user and system time in clock ticks, follow the
                // command name, which is in parentheses and may hold spaces.
                let stat = std::fs::read_to_string(stat).ok()?;
                let mut fields = stat[stat.rfind(')')? + 2..].split(' ').skip(11);
                let user: u64 = fields.next()?.parse().ok()?;
                let system: u64 = fields.next()?.parse().ok()?;
                Some(user + system)
            }),
        }
    }
}

/// What [`App::sample`] reads.
#[derive(Clone, Copy)]
struct Sample {
    steps: u64,
    at: Instant,
    cpu_ticks: Option<u64>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

fn list(c: &mut Criterion) {
    let base = common::bench_dir();
    let dir = base.path().join("journal");
    common::finished_journal(&dir, WORKFLOWS);
    let app = App::start(&dir, 0);

    let mut group = c.benchmark_group("admin");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("list_first_screen_100k", |b| {
        b.iter(|| {
            let rows = call(
                &app.socket,
                &Request::List {
                    status: None,
                    limit: Some(50),
                },
            )
            .unwrap();
            assert_eq!(rows.as_array().unwrap().len(), 50);
        });
    });
    group.throughput(Throughput::Elements(WORKFLOWS));
    group.bench_function("list_total_100k", |b| {
        b.iter(|| {
            let rows = call(
                &app.socket,
                &Request::List {
                    status: None,
                    limit: None,
                },
            )
            .unwrap();
            assert_eq!(rows.as_array().unwrap().len() as u64, WORKFLOWS);
        });
    });
    group.finish();
}

/// Steps counted over some time, and the runtime thread's CPU time meanwhile (`None`
/// where it cannot be read).
#[derive(Clone, Copy)]
struct Tally {
    steps: u64,
    time: Duration,
    cpu_ticks: Option<u64>,
}

impl Tally {
    const EMPTY: Tally = Tally {
        steps: 0,
        time: Duration::ZERO,
        cpu_ticks: Some(0),
    };

    /// What happened from `from` to `to`.
    fn between(from: Sample, to: Sample) -> Tally {
        let mut tally = Tally::EMPTY;
        tally.add(from, to);
        tally
    }

    /// Adds what happened from `from` to `to`.
    fn add(&mut self, from: Sample, to: Sample) {
        self.steps += to.steps - from.steps;
        self.time += to.at - from.at;
        self.cpu_ticks = (self.cpu_ticks.zip(to.cpu_ticks).zip(from.cpu_ticks))
            .map(|((ticks, to), from)| ticks + to - from);
    }

    /// Both tallies together.
    fn merged(mut self, other: Tally) -> Tally {
        self.steps += other.steps;
        self.time += other.time;
        self.cpu_ticks = self.cpu_ticks.zip(other.cpu_ticks).map(|(a, b)| a + b);
        self
    }

    /// Steps per second of wall time.
    fn rate(self) -> f64 {
        self.steps as f64 / self.time.as_secs_f64()
    }

    /// Steps per clock tick of the runtime thread's CPU time.
    fn per_cpu_tick(self) -> Option<f64> {
        self.cpu_ticks
            .filter(|&ticks| ticks > 0)
            .map(|ticks| self.steps as f64 / ticks as f64)
    }
}

/// `numerator / denominator` in percent, or `n/a`.
fn percent(numerator: Option<f64>, denominator: Option<f64>) -> String {
    match numerator.zip(denominator) {
        Some((n, d)) => format!("{:.0}%", 100.0 * n / d),
        None => "n/a".into(),
    }
}

/// Prints, does not feed criterion (see the module docs): one run takes minutes.
fn gc(_: &mut Criterion) {
    let base = common::bench_dir();
    let dir = base.path().join("journal");
    common::finished_journal_in_tiers(&dir, WORKFLOWS, GC_PARTS);
    let app = App::start(&dir, STEPPERS);
    std::thread::sleep(WARM_UP);
    let (mut a, mut b, mut during) = (Tally::EMPTY, Tally::EMPTY, Tally::EMPTY);
    for part in 0..GC_PARTS {
        let mut windows = Vec::new();
        let order = if part % 2 == 0 {
            ["A", "B"]
        } else {
            ["B", "A"]
        };
        for label in order {
            let from = app.sample();
            std::thread::sleep(WINDOW);
            let to = app.sample();
            if label == "A" { &mut a } else { &mut b }.add(from, to);
            windows.push(format!("{label} {:.0}", Tally::between(from, to).rate()));
        }
        // Deletes this part's tier: everything last updated before the next tier.
        let cutoff_ms = common::tier_updated_ms(part) + 500;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let older_than_ms = u64::try_from(now_ms).unwrap() - cutoff_ms;
        let from = app.sample();
        let reply = call(&app.socket, &Request::Gc { older_than_ms }).unwrap();
        let to = app.sample();
        let gc = Tally::between(from, to);
        during.add(from, to);
        assert_eq!(reply["deleted"], WORKFLOWS / GC_PARTS);
        println!(
            "admin/gc_100k_while_1k_step part {}/{GC_PARTS}: steps/s without gc {}; gc of \
             {} in {:.1?} ({:.0} workflows/s), steps/s during it {:.0}",
            part + 1,
            windows.join(", "),
            WORKFLOWS / GC_PARTS,
            gc.time,
            (WORKFLOWS / GC_PARTS) as f64 / gc.time.as_secs_f64(),
            gc.rate()
        );
    }
    let without = a.merged(b);
    println!(
        "admin/gc_100k_while_1k_step: gc of {WORKFLOWS} in {:.1?} ({:.0} workflows/s); \
         steps/s of {STEPPERS} workflows: {:.0} without gc ({:.0?}), {:.0} during it \
         ({:.0}%, target 80%+); control, windows B against A without gc: {:.0}%",
        during.time,
        WORKFLOWS as f64 / during.time.as_secs_f64(),
        without.rate(),
        without.time,
        during.rate(),
        100.0 * during.rate() / without.rate(),
        100.0 * b.rate() / a.rate()
    );
    println!(
        "admin/gc_100k_while_1k_step: steps per second of the runtime thread's CPU time \
         during gc against without it: {} (control, B against A: {})",
        percent(during.per_cpu_tick(), without.per_cpu_tick()),
        percent(b.per_cpu_tick(), a.per_cpu_tick())
    );
}

mod group {
    // criterion_group! makes an undocumented `pub fn`.
    #![allow(missing_docs)]
    use super::*;

    criterion_group!(benches, list, gc);
}
criterion_main!(group::benches);
