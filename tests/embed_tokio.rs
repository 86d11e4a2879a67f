//! The runtime embedded in tokio (issue 4 test 12): `Runtime::run()` driven inside a
//! `LocalSet`, on a current-thread and on a multi-thread tokio runtime, with step bodies
//! that await tokio timers, a oneshot and an mpsc channel fed from tokio tasks, and a
//! loopback TCP echo served by a tokio task. Uses the system clock: tokio's timers and
//! sockets are real.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use ordo::{Ctx, Error, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::LocalSet;

const WORKFLOW: &str = "net";
const WORKFLOW_ID: &str = "net-1";
const ECHOES: u64 = 3;

/// What the step bodies reach: the echo server, the channel a tokio task feeds, and a
/// count of body runs (to see that a replay runs none).
#[derive(Clone)]
struct Env {
    echo: SocketAddr,
    feed: Rc<RefCell<Option<mpsc::Receiver<u64>>>>,
    bodies: Rc<Cell<u32>>,
}

/// A loopback echo server on a tokio task; returns its address.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// A tokio task sending 1, 2, 3 with tokio sleeps in between, then closing.
fn feeder() -> mpsc::Receiver<u64> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        for n in 1..=3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if tx.send(n).await.is_err() {
                break;
            }
        }
    });
    rx
}

async fn echo(addr: SocketAddr, message: String) -> Result<String, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream
        .write_all(message.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.shutdown().await.map_err(|e| e.to_string())?;
    let mut back = String::new();
    stream
        .read_to_string(&mut back)
        .await
        .map_err(|e| e.to_string())?;
    Ok(back)
}

/// Sequential steps on a tokio timer, a oneshot and an mpsc channel; three concurrent
/// TCP echoes; a durable sleep (the executor's timer, woken through `run()`).
async fn net_workflow(ctx: Ctx, env: Env) -> Result<String, String> {
    let bodies = env.bodies.clone();
    let slept_ms = ctx
        .step("tokio-sleep", move || async move {
            bodies.set(bodies.get() + 1);
            let start = tokio::time::Instant::now();
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, String>(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX))
        })
        .await?;

    let bodies = env.bodies.clone();
    let answer = ctx
        .step("oneshot", move || async move {
            bodies.set(bodies.get() + 1);
            let (tx, rx) = oneshot::channel();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let _ = tx.send(41u64);
            });
            rx.await.map(|n| n + 1).map_err(|e| e.to_string())
        })
        .await?;

    let (bodies, feed) = (env.bodies.clone(), env.feed.clone());
    let fed = ctx
        .step("mpsc", move || async move {
            bodies.set(bodies.get() + 1);
            let mut rx = feed
                .borrow_mut()
                .take()
                .ok_or("the feed was taken already")?;
            let mut sum = 0;
            while let Some(n) = rx.recv().await {
                sum += n;
            }
            Ok::<_, String>(sum)
        })
        .await?;

    let echoes = futures::future::join_all((0..ECHOES).map(|i| {
        let (bodies, addr) = (env.bodies.clone(), env.echo);
        ctx.step("echo", move || async move {
            bodies.set(bodies.get() + 1);
            echo(addr, format!("ping-{i}")).await
        })
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<String>, String>>()?;

    ctx.sleep(Duration::from_millis(20)).await;
    Ok(format!(
        "slept>=20:{} answer:{answer} fed:{fed} echoes:{}",
        slept_ms >= 20,
        echoes.join(",")
    ))
}

const EXPECTED: &str = "slept>=20:true answer:42 fed:6 echoes:ping-0,ping-1,ping-2";

/// One runtime lifetime inside the current tokio context: open, recover, start, and
/// drive with `run()` while awaiting the handle. `halt` stops it right before the
/// finish would be recorded (as if killed there).
async fn drive(
    dir: &Path,
    env: &Env,
    halt: bool,
) -> (Result<Result<String, String>, Error>, Metrics) {
    let env = env.clone();
    let mut builder = ordo_testkit::store::runtime(dir)
        .register(WORKFLOW, move |ctx: Ctx, (): ()| {
            net_workflow(ctx, env.clone())
        });
    if halt {
        builder = builder.halt_before_finish();
    }
    let rt = builder.build().expect("runtime builds");
    let report = rt.recover().expect("recover");
    assert!(report.is_clean(), "{report:?}");
    let handle = rt
        .start::<_, String, String>(WORKFLOW, WORKFLOW_ID, ())
        .expect("start");
    // The handle resolves once the result is durable. Both are driven by tokio here.
    let result = if ordo_testkit::store::is_sled() {
        // run() ends when no workflow task is left.
        let ((), result) = tokio::join!(rt.run(), handle.result());
        result
    } else {
        // On a journal shared by many workers, run() does not end once recover() ran:
        // it keeps taking over dead workers' workflows. Driven until the handle says.
        tokio::select! {
            result = handle.result() => result,
            () = rt.run() => panic!("run() ended on a shared journal after recover()"),
        }
    };
    (result, rt.metrics())
}

async fn env() -> Env {
    Env {
        echo: echo_server().await,
        feed: Rc::new(RefCell::new(Some(feeder()))),
        bodies: Rc::new(Cell::new(0)),
    }
}

/// The journal holds every step, the sequential ones in call order.
fn check_journal(dir: &Path) {
    let journal = ordo_testkit::store::open(dir);
    let names: Vec<(u64, String)> = journal
        .completions(WORKFLOW_ID)
        .expect("completions")
        .into_iter()
        .map(|c| (c.step_id, c.name))
        .collect();
    assert_eq!(
        &names[..3],
        &[
            (0, "tokio-sleep".to_string()),
            (1, "oneshot".to_string()),
            (2, "mpsc".to_string())
        ]
    );
    let mut echo_ids: Vec<u64> = names[3..6]
        .iter()
        .map(|(id, name)| {
            assert_eq!(name, "echo");
            *id
        })
        .collect();
    echo_ids.sort_unstable();
    assert_eq!(echo_ids, [3, 4, 5]);
    assert_eq!(
        &names[6..],
        &[
            (6, "ordo.sleep.until".to_string()),
            (7, "ordo.sleep".to_string())
        ]
    );
    let record = journal
        .workflow(WORKFLOW_ID)
        .expect("record")
        .expect("recorded");
    assert_eq!(record.status, ordo::Status::Succeeded);
}

async fn run_and_check(dir: &Path) {
    let env = env().await;
    let (result, metrics) = drive(dir, &env, false).await;
    assert_eq!(result.expect("runs to the end"), Ok(EXPECTED.to_string()));
    assert_eq!(env.bodies.get(), 3 + ECHOES as u32);
    assert_eq!(metrics.steps_executed, 8, "{metrics:?}");
    // Started again: the recorded result, no body runs.
    let again = env.clone();
    let (result, _) = drive(dir, &again, false).await;
    assert_eq!(result.expect("recorded"), Ok(EXPECTED.to_string()));
    assert_eq!(env.bodies.get(), 3 + ECHOES as u32);
}

#[test]
fn runs_in_a_local_set_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    LocalSet::new().block_on(&tokio_rt, run_and_check(dir.path()));
    check_journal(dir.path());
}

/// A two-worker tokio runtime: the echo server and feeders run on its workers.
fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn runs_in_a_local_set_on_a_multi_thread_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokio_rt = multi_thread();
    // The echo server and feeders run on tokio's workers; their wake-ups reach the
    // ordo runtime from other threads.
    tokio_rt.block_on(LocalSet::new().run_until(run_and_check(dir.path())));
    check_journal(dir.path());
}

#[test]
fn a_halted_run_replays_under_tokio_without_running_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokio_rt = multi_thread();
    tokio_rt.block_on(LocalSet::new().run_until(async {
        let env = env().await;
        let (halted, _) = drive(dir.path(), &env, true).await;
        assert!(matches!(halted, Err(Error::Stopped { .. })), "{halted:?}");
        assert_eq!(env.bodies.get(), 3 + ECHOES as u32);

        // A new runtime on the same journal: everything replays, no body runs (the
        // feed is gone and the echo server could be, too).
        let replay = Env {
            echo: env.echo,
            feed: Rc::new(RefCell::new(None)),
            bodies: Rc::new(Cell::new(0)),
        };
        let (result, metrics) = drive(dir.path(), &replay, false).await;
        assert_eq!(
            result.expect("replays to the end"),
            Ok(EXPECTED.to_string())
        );
        assert_eq!(replay.bodies.get(), 0, "a recorded step ran its body again");
        assert_eq!((metrics.steps_replayed, metrics.steps_executed), (8, 0));
    }));
    check_journal(dir.path());
}
