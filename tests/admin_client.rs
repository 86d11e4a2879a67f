//! The client's operations from another thread: cancel (one, and a tree), resume, fork,
//! gc, list, show and stats, each served on the runtime's thread while it is driven;
//! and the admin socket's channel, which keeps nothing alive.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::Duration;

use ordo::admin::{call, Request};
use ordo::{Client, Ctx, Error, Runtime, Status};

async fn count(ctx: Ctx, n: u32) -> Result<u32, String> {
    let mut total = 0;
    for i in 0..n {
        total += ctx
            .step("add", move || async move { Ok::<_, String>(i) })
            .await?;
    }
    Ok(total)
}

async fn hold(ctx: Ctx, _: ()) -> Result<(), String> {
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(())
}

async fn tree(ctx: Ctx, depth: u32) -> Result<(), String> {
    if depth == 0 {
        return hold(ctx, ()).await;
    }
    let child = ctx.start_child::<_, (), String>("tree", depth - 1);
    child.result().await.map_err(|e| e.to_string())?
}

/// Drives `rt` until `thread` ends, and returns what it returned.
fn drive<T>(rt: &Runtime, thread: JoinHandle<T>) -> T {
    rt.block_on(async {
        while !thread.is_finished() {
            ordo::executor::sleep(Duration::from_millis(2)).await;
        }
    });
    thread.join().expect("the client thread does not panic")
}

fn statuses(rt: &Runtime) -> BTreeMap<String, Status> {
    rt.journal()
        .workflows(None)
        .expect("read")
        .into_iter()
        .map(|w| (w.id, w.status))
        .collect()
}

#[test]
fn another_thread_cancels_resumes_forks_and_reads_through_a_client() {
    let bodies = Rc::new(RefCell::new(Vec::<u32>::new()));
    let seen = Rc::clone(&bodies);
    let rt = ordo_testkit::store::temporary()
        .register("hold", hold)
        .register("tree", tree)
        .register("count", move |ctx: Ctx, n: u32| {
            let seen = Rc::clone(&seen);
            async move {
                let mut total = 0;
                for i in 0..n {
                    let seen = Rc::clone(&seen);
                    total += ctx
                        .step("add", move || async move {
                            seen.borrow_mut().push(i);
                            Ok::<_, String>(i)
                        })
                        .await?;
                }
                Ok::<u32, String>(total)
            }
        })
        .build()
        .expect("build");
    let done = rt
        .start::<_, u32, String>("count", "done", 3u32)
        .expect("start");
    assert_eq!(rt.block_on(done.result()).expect("runs"), Ok(3));
    rt.start::<_, (), String>("hold", "held", ())
        .expect("start");
    rt.start::<_, (), String>("tree", "t", 2u32).expect("start");
    rt.block_on(ordo::executor::sleep(Duration::from_millis(50))); // the tree grows
    bodies.borrow_mut().clear();

    let client = rt.client();
    let asked = std::thread::spawn(move || {
        futures::executor::block_on(async move {
            let one = client.cancel("held", false).await?;
            let none = client.cancel("done", false).await?;
            let tree = client.cancel("t", true).await?;
            let missing = client.cancel("nobody", false).await;
            let pending_after_cancel = client.list(Some(Status::Pending)).await?;
            client.resume("held").await?;
            let not_resumable = client.resume("done").await;
            let forked = client.fork("done", 2, Some("copy".into())).await?;
            let default_id = client.fork("done", 0, None).await?;
            let taken = client.fork("done", 0, Some("copy".into())).await;
            let out_of_range = client.fork("done", 4, None).await;
            let (record, completions) = client.show("done").await?;
            Ok::<_, Error>((
                (one, none, tree, missing),
                pending_after_cancel,
                not_resumable,
                (forked, default_id, taken, out_of_range),
                (record, completions),
            ))
        })
    });
    let (cancels, pending_after_cancel, not_resumable, forks, shown) =
        drive(&rt, asked).expect("the client's requests");

    let (one, none, tree, missing) = cancels;
    assert_eq!(one, ["held"]);
    assert!(none.is_empty());
    assert_eq!(tree, ["t", "t/0", "t/0/0"]);
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
    assert!(pending_after_cancel.is_empty(), "{pending_after_cancel:?}");
    assert!(matches!(not_resumable, Err(Error::NotResumable { .. })));

    let (forked, default_id, taken, out_of_range) = forks;
    assert_eq!(forked, "copy");
    assert_eq!(default_id, "done.fork-0");
    assert!(
        matches!(taken, Err(Error::AlreadyExists { .. })),
        "{taken:?}"
    );
    assert!(matches!(
        out_of_range,
        Err(Error::ForkPointOutOfRange { .. })
    ));
    let (record, completions) = shown;
    assert_eq!(record.status, Status::Succeeded);
    assert_eq!(
        completions.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [0, 1, 2]
    );

    // The forks run: the copy kept two recorded steps and ran only the third; the
    // default-id fork ran all three.
    let copy = rt.handle::<u32, String>("copy").expect("handle");
    assert_eq!(rt.block_on(copy.result()).expect("runs"), Ok(3));
    let fresh = rt.handle::<u32, String>("done.fork-0").expect("handle");
    assert_eq!(rt.block_on(fresh.result()).expect("runs"), Ok(3));
    let mut ran = bodies.borrow().clone();
    ran.sort_unstable();
    assert_eq!(ran, [0, 1, 2, 2]);
    assert_eq!(
        rt.journal().completions("copy").expect("read")[..2],
        rt.journal().completions("done").expect("read")[..2]
    );

    let on_disk = statuses(&rt);
    assert_eq!(on_disk["held"], Status::Pending); // resumed
    for id in ["t", "t/0", "t/0/0"] {
        assert_eq!(on_disk[id], Status::Cancelled, "{id}");
    }

    // `gc(Duration::ZERO)` deletes what was last written before now, to the millisecond:
    // a fast run ends the forks in the millisecond the gc reads the clock and keeps them.
    std::thread::sleep(Duration::from_millis(5));
    // Reads and gc from the other thread.
    let client = rt.client();
    let asked = std::thread::spawn(move || {
        futures::executor::block_on(async move {
            let before = client.stats().await?;
            let listed = client.list(None).await?;
            let report = client.gc(Duration::ZERO).await?;
            let after = client.list(None).await?;
            Ok::<_, Error>((before, listed, report, after))
        })
    });
    let (before, listed, report, after) = drive(&rt, asked).expect("reads and gc");
    assert_eq!(before.workflows, on_disk.len() as u64);
    assert_eq!(before.cancelled, 3);
    assert_eq!(
        listed
            .iter()
            .map(|r| (r.id.clone(), r.status))
            .collect::<BTreeMap<_, _>>(),
        on_disk
    );
    let finished = on_disk.values().filter(|s| **s != Status::Pending).count();
    assert_eq!(report.deleted, finished as u64);
    assert_eq!(
        after.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["held"]
    );
    assert_eq!(statuses(&rt).into_keys().collect::<Vec<_>>(), ["held"]);
}

#[test]
fn a_resumed_workflow_replays_what_it_recorded_and_finishes() {
    let rt = ordo_testkit::store::temporary()
        .clock(ordo::Clock::Virtual)
        .register("count", count)
        .register("slow", |ctx: Ctx, _: ()| async move {
            let one = ctx.step("one", || async { Ok::<_, String>(1u32) }).await?;
            ctx.sleep(Duration::from_secs(60)).await;
            Ok::<u32, String>(one + 1)
        })
        .build()
        .expect("build");
    rt.start::<_, u32, String>("slow", "s", ()).expect("start");
    rt.block_on(ordo::executor::yield_now());
    let client = rt.client();
    let asked = std::thread::spawn(move || {
        futures::executor::block_on(async move {
            client.cancel("s", false).await?;
            let cancelled = client.status("s").await?;
            client.resume("s").await?;
            Ok::<_, Error>(cancelled)
        })
    });
    assert_eq!(drive(&rt, asked).expect("served"), Some(Status::Cancelled));
    let handle = rt.handle::<u32, String>("s").expect("handle");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(2));
}

/// The admin socket's channel is drained by the stall hook, not by a task: a runtime
/// that serves the socket still finishes `run()` once its workflows are done.
#[test]
fn serving_the_admin_socket_keeps_nothing_alive() {
    let dir = tempfile::tempdir().expect("temp dir");
    // sled only: the admin socket is served in the journal's folder, which only a
    // journal at a path has.
    let rt = Runtime::builder()
        .path(dir.path())
        .durability(ordo::Durability::None)
        .register("count", count)
        .build()
        .expect("build");
    let socket = rt.admin_socket().expect("a socket").to_path_buf();
    let handle = rt
        .start::<_, u32, String>("count", "c", 4u32)
        .expect("start");
    futures::executor::block_on(rt.run()); // returns: nothing is left to run
    assert_eq!(
        futures::executor::block_on(handle.result()).expect("ran"),
        Ok(6)
    );

    // While driven again, the socket answers; dropped, the socket file goes.
    let asker = std::thread::spawn(move || call(&socket, &Request::Stats));
    let stats = drive(&rt, asker).expect("stats over the socket");
    assert_eq!(stats["succeeded"], 1);
    let socket = rt.admin_socket().expect("a socket").to_path_buf();
    drop(rt);
    assert!(
        !socket.exists(),
        "the socket file is removed with the runtime"
    );
}

/// A client whose runtime is gone gets `RuntimeGone` for every operation.
#[test]
fn operations_of_a_dropped_runtime_fail_with_runtime_gone() {
    let rt = ordo_testkit::store::temporary().build().expect("build");
    let client: Client = rt.client();
    drop(rt);
    let cancelled = futures::executor::block_on(client.cancel("x", true));
    assert!(
        matches!(cancelled, Err(Error::RuntimeGone)),
        "{cancelled:?}"
    );
    let stats = futures::executor::block_on(client.stats());
    assert!(matches!(stats, Err(Error::RuntimeGone)), "{stats:?}");
}

/// A data folder deep in a tree, its path longer than a Unix socket's address takes:
/// the application starts, and its admin socket serves the CLI's calls (it was a build
/// error: "path must be shorter than SUN_LEN").
#[test]
fn a_data_folder_with_a_long_path_still_serves_its_admin_socket() {
    let base = tempfile::tempdir().expect("tempdir");
    let data = base.path().join("a-data-folder-deep-in-a-tree".repeat(5));
    assert!(data.join(ordo::admin::SOCKET_FILE).as_os_str().len() > 108);
    let rt = Runtime::builder()
        .path(&data)
        .register("count", count)
        .build()
        .expect("a long path builds");
    let handle = rt
        .start::<_, u32, String>("count", "c-1", 3u32)
        .expect("start");
    assert_eq!(rt.block_on(handle.result()).expect("result"), Ok(3));
    let socket = data.join(ordo::admin::SOCKET_FILE);
    let asker = std::thread::spawn(move || call(&socket, &Request::Stats));
    let stats = drive(&rt, asker).expect("the socket answers");
    assert_eq!(stats["succeeded"], 1);
}
