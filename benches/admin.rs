//! The admin channel's speed (issue 11), against a runtime running on a thread of its
//! own and serving its admin socket, the way `ordo` reaches a running application.
//!
//! - `admin/list_first_screen_100k`: a `list` request for the first 50 of 100,000
//!   workflows (what a screen shows): time to first screen.
//! - `admin/list_total_100k`: a `list` request for all 100,000 (what `ordo list` asks),
//!   reply received and parsed.
//! - `admin/gc_100k_while_1k_step`: a `gc` request deleting 100,000 finished workflows
//!   while 1,000 others keep making steps; throughput is workflows deleted per second.
//!   Each iteration also measures the step rate of the 1,000 workflows (which start
//!   over every 100 steps, so their rate does not drift as their journals grow) in two
//!   seconds before the request and two after it, and during it, and prints both and
//!   their ratio (the target: the rate during gc stays within 80% of the rate without).
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
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use ordo::admin::{call, Request};
use ordo::{Ctx, Durability, Runtime};

/// Workflows in the journal listed and collected.
const WORKFLOWS: u64 = 100_000;

/// Workflows making steps during the gc.
const STEPPERS: usize = 1_000;

/// Gc runs measured (criterion's minimum: each is tens of seconds on a loaded machine).
const GC_SAMPLES: usize = 10;

/// A runtime on its own thread, serving its admin socket, with `steppers` workflows
/// that make steps until it stops.
struct App {
    socket: PathBuf,
    steps: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Steps for ever, starting over every 100 steps (`continue_as_new`), so its journal,
/// and the cost of its commits, stay the same however long the bench runs.
async fn stepper(ctx: Ctx, steps: Arc<AtomicU64>) -> Result<(), String> {
    for _ in 0..100 {
        let steps = Arc::clone(&steps);
        ctx.step("tick", move || async move {
            steps.fetch_add(1, Ordering::Relaxed);
            Ok::<_, String>(())
        })
        .await?;
    }
    ctx.continue_as_new(()).await
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
                    .register("stepper", move |ctx: Ctx, _: ()| {
                        stepper(ctx, Arc::clone(&counter))
                    })
                    .build()
                    .unwrap();
                for n in 0..steppers {
                    rt.start::<_, (), String>("stepper", &format!("stepper-{n:04}"), ())
                        .unwrap();
                }
                ready
                    .send(rt.admin_socket().unwrap().to_path_buf())
                    .unwrap();
                rt.block_on(async {
                    while !stop.load(Ordering::Acquire) {
                        ordo::executor::sleep(Duration::from_millis(5)).await;
                    }
                });
            })
        };
        App {
            socket: socket.recv().unwrap(),
            steps,
            stop,
            thread: Some(thread),
        }
    }

    /// Steps made during `window`.
    fn steps_during(&self, window: Duration) -> u64 {
        let before = self.steps.load(Ordering::Relaxed);
        std::thread::sleep(window);
        self.steps.load(Ordering::Relaxed) - before
    }
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

fn gc(c: &mut Criterion) {
    let base = common::bench_dir();
    let template_dir = base.path().join("template");
    common::finished_journal(&template_dir, WORKFLOWS);

    let mut group = c.benchmark_group("admin");
    // One gc per sample: each takes seconds and needs a fresh journal.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(GC_SAMPLES);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(WORKFLOWS));
    group.bench_function("gc_100k_while_1k_step", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = common::bench_dir();
                common::copy_dir(&template_dir, dir.path());
                let app = App::start(dir.path(), STEPPERS);
                app.steps_during(Duration::from_millis(500)); // warm up
                                                              // The rate without gc: a window before the request and one after it.
                let window = Duration::from_secs(2);
                let mut without = app.steps_during(window);
                let before = app.steps.load(Ordering::Relaxed);
                let began = Instant::now();
                let reply = call(&app.socket, &Request::Gc { older_than_ms: 0 }).unwrap();
                let took = began.elapsed();
                let during =
                    (app.steps.load(Ordering::Relaxed) - before) as f64 / took.as_secs_f64();
                without += app.steps_during(window);
                let without = without as f64 / (2.0 * window.as_secs_f64());
                assert_eq!(reply["deleted"], WORKFLOWS);
                println!(
                    "gc of {WORKFLOWS} in {took:.2?} ({:.0} workflows/s); steps/s of \
                     {STEPPERS} workflows: {without:.0} without gc, {during:.0} during \
                     ({:.0}%)",
                    WORKFLOWS as f64 / took.as_secs_f64(),
                    100.0 * during / without
                );
                total += took;
            }
            total
        });
    });
    group.finish();
}

mod group {
    // criterion_group! makes an undocumented `pub fn`.
    #![allow(missing_docs)]
    use super::*;

    criterion_group!(benches, list, gc);
}
criterion_main!(group::benches);
