//! The three workloads and the four executors, shared by both bench targets.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::executor::LocalPool;
use futures::future::Either;
use futures::task::{LocalSpawnExt, SpawnError};
use futures::StreamExt;

/// Operations per iteration: tasks spawned, or messages bounced.
pub const N: usize = 10_000;

/// Returns `Pending` once after waking itself: the same yield for every executor, so
/// none gets an advantage from its own `yield_now` (tokio's consults its coop budget).
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A task that completes at its first poll.
pub async fn trivial() {
    black_box(());
}

/// A task that yields once.
pub async fn yield_once() {
    YieldOnce(false).await;
}

/// The two halves of a ping-pong of `n` messages over `futures::channel::mpsc`.
pub fn ping_pong(n: usize) -> (impl Future<Output = ()>, impl Future<Output = ()>) {
    let (to_pong, mut pong_rx) = mpsc::unbounded::<usize>();
    let (to_ping, mut ping_rx) = mpsc::unbounded::<usize>();
    let ping = async move {
        for i in 0..n {
            if to_pong.unbounded_send(i).is_err() {
                break;
            }
            black_box(ping_rx.next().await);
        }
    };
    let pong = async move {
        while let Some(i) = pong_rx.next().await {
            if to_ping.unbounded_send(i).is_err() {
                break;
            }
        }
    };
    (ping, pong)
}

/// One executor under test, kept across iterations as a long-running program would.
pub trait Subject {
    /// Its name in reports.
    const NAME: &'static str;
    /// A fresh instance.
    fn new() -> Self;
    /// Spawns every future from `futures` (without keeping handles), runs all to the end.
    fn run_all<Fut: Future<Output = ()> + 'static>(&mut self, futures: impl Iterator<Item = Fut>);

    /// `N` tasks made by `make`, run to completion.
    fn spawn_n<Fut: Future<Output = ()> + 'static>(&mut self, make: fn() -> Fut) {
        self.run_all((0..N).map(|_| make()));
    }

    /// `N` messages bounced between two tasks.
    fn ping_pong_n(&mut self) {
        let (ping, pong) = ping_pong(N);
        // `Either` gives both halves one type without boxing them.
        self.run_all([Either::Left(ping), Either::Right(pong)].into_iter());
    }
}

/// ordo's executor.
pub struct Ordo(ordo_executor::Executor);

impl Subject for Ordo {
    const NAME: &'static str = "ordo";
    fn new() -> Self {
        Ordo(ordo_executor::Executor::new())
    }
    fn run_all<Fut: Future<Output = ()> + 'static>(&mut self, futures: impl Iterator<Item = Fut>) {
        for future in futures {
            drop(self.0.spawn(future));
        }
        self.0.run_until_stalled();
    }
}

/// `futures::executor::LocalPool`.
pub struct Pool(LocalPool);

impl Subject for Pool {
    const NAME: &'static str = "futures_LocalPool";
    fn new() -> Self {
        Pool(LocalPool::new())
    }
    fn run_all<Fut: Future<Output = ()> + 'static>(&mut self, futures: impl Iterator<Item = Fut>) {
        let spawner = self.0.spawner();
        for future in futures {
            let spawned: Result<(), SpawnError> = spawner.spawn_local(future);
            spawned.expect("LocalPool accepts tasks");
        }
        self.0.run();
    }
}

/// `async_executor::LocalExecutor`.
pub struct AsyncExecutor(async_executor::LocalExecutor<'static>);

impl Subject for AsyncExecutor {
    const NAME: &'static str = "async_executor_LocalExecutor";
    fn new() -> Self {
        AsyncExecutor(async_executor::LocalExecutor::new())
    }
    fn run_all<Fut: Future<Output = ()> + 'static>(&mut self, futures: impl Iterator<Item = Fut>) {
        for future in futures {
            self.0.spawn(future).detach();
        }
        while self.0.try_tick() {}
    }
}

/// tokio's current-thread runtime with a `LocalSet` (`spawn_local`).
pub struct Tokio(tokio::runtime::Runtime);

impl Subject for Tokio {
    const NAME: &'static str = "tokio_LocalSet";
    fn new() -> Self {
        Tokio(
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a tokio current-thread runtime"),
        )
    }
    fn run_all<Fut: Future<Output = ()> + 'static>(&mut self, futures: impl Iterator<Item = Fut>) {
        let local = tokio::task::LocalSet::new();
        for future in futures {
            drop(local.spawn_local(future));
        }
        self.0.block_on(local);
    }
}
