//! Events, child workflows and awakeables, through the public API on real journals;
//! the client from other threads and from tokio's multi-thread runtime.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ordo::{ChildOptions, Ctx, Error, ParentEnd, RuntimeBuilder, Status};
use ordo_testkit::Check;

use common::{builder, journal_dir};

const HOUR: Duration = Duration::from_secs(3600);

// ---- events ----

async fn progress(ctx: Ctx, steps: u32) -> Result<u32, String> {
    for i in 1..=steps {
        ctx.step("work", move || async move { Ok::<_, String>(i) })
            .await?;
        ctx.set_event("done", i).await;
    }
    Ok(steps)
}

async fn watcher(ctx: Ctx, (of, timeout_s): (String, u64)) -> Result<Option<u32>, String> {
    Ok(ctx
        .get_event::<u32>(&of, "done", Duration::from_secs(timeout_s))
        .await)
}

fn eventful(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("progress", progress)
        .register("watcher", watcher)
}

#[test]
fn get_event_sees_the_latest_value_waits_for_one_and_times_out() {
    let dir = journal_dir();
    let rt = eventful(builder(dir.path())).build().expect("build");
    // Waiting before anything is set: sees the first value set.
    let early = rt
        .start::<_, Option<u32>, String>("watcher", "early", ("p".to_string(), 3_600u64))
        .expect("start");
    // On a workflow that never sets it: `None` at the deadline.
    let never = rt
        .start::<_, Option<u32>, String>("watcher", "never", ("nobody".to_string(), 60u64))
        .expect("start");
    let p = rt
        .start::<_, u32, String>("progress", "p", 3u32)
        .expect("start");
    assert_eq!(rt.block_on(p.result()).expect("runs"), Ok(3));
    assert_eq!(rt.block_on(early.result()).expect("runs"), Ok(Some(1)));
    assert_eq!(rt.block_on(never.result()).expect("runs"), Ok(None));
    // After it finished: the latest value.
    let late = rt
        .start::<_, Option<u32>, String>("watcher", "late", ("p".to_string(), 0u64))
        .expect("start");
    assert_eq!(rt.block_on(late.result()).expect("runs"), Ok(Some(3)));
    // The history: one recorded step per value set.
    let set: Vec<_> = rt
        .journal()
        .completions("p")
        .expect("read")
        .into_iter()
        .filter(|c| c.name == "ordo.event.set")
        .collect();
    assert_eq!(set.len(), 3);
    // A replay returns what was seen, not the value now.
    drop((p, early, never, late, rt));
    ordo_testkit::store::replay(dir.path(), eventful)
        .expect("replays")
        .assert_clean();
}

#[test]
fn the_checker_finds_events_deterministic_under_every_crash() {
    async fn self_watch(ctx: Ctx, _: ()) -> Result<Option<String>, String> {
        let me = ctx.workflow_id().to_string();
        let seen = ctx.get_event::<String>(&me, "phase", HOUR);
        let set = ctx.set_event("phase", "started".to_string());
        let (seen, ()) = futures::join!(seen, set);
        Ok(seen)
    }
    assert_eq!(
        Check::workflow("self_watch", self_watch, ()).assert(),
        Ok(Some("started".to_string()))
    );
}

#[test]
fn a_client_on_tokio_multi_thread_reads_events_with_timeouts() {
    let dir = journal_dir();
    let rt = eventful(ordo_testkit::store::runtime(dir.path()))
        .build()
        .expect("build");
    let client = rt.client();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let asked = tokio_rt.spawn(async move {
        let missing = client
            .get_event::<u32>("p", "done", Duration::from_millis(20))
            .await;
        let handle = client
            .start::<u32, u32, String>("progress", "p", 2)
            .await
            .expect("start");
        let result = handle.result().await;
        let done = client.get_event::<u32>("p", "done", HOUR).await;
        let wrong_type = client.get_event::<String>("p", "done", HOUR).await;
        (missing, result, done, wrong_type)
    });
    // The runtime's thread serves until the tokio task dropped its client.
    futures::executor::block_on(rt.run());
    let (missing, result, done, wrong_type) = tokio_rt.block_on(asked).expect("joined");
    // "p" does not exist yet: nothing, at the deadline.
    assert_eq!(missing.expect("answered"), None);
    assert_eq!(result.expect("runs"), Ok(2));
    assert_eq!(done.expect("answered"), Some(2));
    assert!(
        matches!(wrong_type, Err(Error::TypeMismatch { .. })),
        "{wrong_type:?}"
    );
}

// ---- children ----

/// Body runs of `counted_square`, which only the adoption test uses (tests run in
/// parallel).
static CHILD_BODIES: AtomicU32 = AtomicU32::new(0);

async fn square(ctx: Ctx, n: u64) -> Result<u64, String> {
    ctx.step("square", move || async move { Ok::<_, String>(n * n) })
        .await
}

async fn counted_square(ctx: Ctx, n: u64) -> Result<u64, String> {
    ctx.step("square", move || async move {
        CHILD_BODIES.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(n * n)
    })
    .await
}

async fn fan_out(ctx: Ctx, n: u64) -> Result<u64, String> {
    let children: Vec<_> = (0..n)
        .map(|i| ctx.start_child::<_, u64, String>("square", i))
        .collect();
    let results = futures::future::join_all(children.into_iter().map(|c| c.result())).await;
    let mut total = 0;
    for result in results {
        total += result.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

fn family(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("square", square).register("fan_out", fan_out)
}

#[test]
fn a_hundred_children_fan_out_and_join() {
    let dir = journal_dir();
    let rt = family(builder(dir.path())).build().expect("build");
    let h = rt
        .start::<_, u64, String>("fan_out", "f", 100u64)
        .expect("start");
    assert_eq!(
        rt.block_on(h.result()).expect("runs"),
        Ok((0..100u64).map(|i| i * i).sum())
    );
    let children = rt
        .journal()
        .workflows(Some(Status::Succeeded))
        .expect("read");
    // The parent and its 100 children, with derived ids.
    assert_eq!(children.len(), 101);
    assert!(children.iter().any(|w| w.id == "f/0") && children.iter().any(|w| w.id == "f/198"));
}

#[test]
fn a_parent_killed_after_the_launch_adopts_its_child_instead_of_starting_another() {
    async fn one_child(ctx: Ctx, _: ()) -> Result<u64, String> {
        let child = ctx.start_child::<_, u64, String>("square", 7u64);
        child.result().await.map_err(|e| e.to_string())?
    }
    let register = |b: RuntimeBuilder| {
        b.register("square", counted_square)
            .register("one", one_child)
    };
    // Crash right after each commit; the child runs once in total, whatever the point.
    for crash_after in 1..4 {
        let dir = journal_dir();
        CHILD_BODIES.store(0, Ordering::SeqCst);
        {
            let rt = register(builder(dir.path()))
                .halt_after_commits(crash_after)
                .build()
                .expect("build");
            let h = rt.start::<_, u64, String>("one", "p", ()).expect("start");
            let _ = rt.block_on(h.result());
        }
        let rt = register(builder(dir.path())).build().expect("reopen");
        rt.recover().expect("recover");
        let h = rt.handle::<u64, String>("p").expect("recorded");
        assert_eq!(
            rt.block_on(h.result()).expect("runs"),
            Ok(49),
            "crash after {crash_after}"
        );
        let workflows = rt.journal().workflows(None).expect("read");
        assert_eq!(workflows.len(), 2, "one parent, one child: {workflows:?}");
        assert_eq!(
            CHILD_BODIES.load(Ordering::SeqCst),
            1,
            "crash after {crash_after}"
        );
    }
}

#[test]
fn a_fan_out_replays_from_its_journal() {
    let dir = journal_dir();
    {
        let rt = family(builder(dir.path())).build().expect("build");
        let h = rt
            .start::<_, u64, String>("fan_out", "f", 3u64)
            .expect("start");
        assert_eq!(rt.block_on(h.result()).expect("runs"), Ok(5));
    }
    ordo_testkit::store::replay(dir.path(), family)
        .expect("replays")
        .assert_clean();
}

#[test]
fn the_checker_finds_children_deterministic_under_every_crash() {
    let check = Check::<_, u64, String>::new("fan_out", 5u64, family);
    assert_eq!(check.assert(), Ok(30));
}

#[test]
fn a_childs_error_reaches_the_parent_as_a_recorded_outcome() {
    async fn failing(_: Ctx, _: ()) -> Result<u8, String> {
        Err("out of stock".into())
    }
    async fn parent(ctx: Ctx, _: ()) -> Result<String, String> {
        let child = ctx.start_child::<_, u8, String>("failing", ());
        match child.result().await {
            Ok(Err(e)) => Ok(format!("child said: {e}")),
            other => Err(format!("{other:?}")),
        }
    }
    let dir = journal_dir();
    let register = |b: RuntimeBuilder| b.register("failing", failing).register("parent", parent);
    let rt = register(builder(dir.path())).build().expect("build");
    let h = rt
        .start::<_, String, String>("parent", "p", ())
        .expect("start");
    assert_eq!(
        rt.block_on(h.result()).expect("runs"),
        Ok("child said: out of stock".to_string())
    );
    drop((h, rt));
    ordo_testkit::store::replay(dir.path(), register)
        .expect("replays")
        .assert_clean();
}

/// Sleeps an hour: a child that is still running when its parent ends.
async fn sleepy(ctx: Ctx, _: ()) -> Result<(), String> {
    ctx.sleep(HOUR).await;
    Ok(())
}

#[test]
fn children_with_the_cancel_policy_are_cancelled_when_the_parent_ends() {
    async fn parent(ctx: Ctx, _: ()) -> Result<(), String> {
        let cancelled = ctx.start_child_with::<_, (), String>(
            "sleepy",
            (),
            ChildOptions::default()
                .id("doomed")
                .on_parent_end(ParentEnd::Cancel),
        );
        let abandoned = ctx.start_child_with::<_, (), String>(
            "sleepy",
            (),
            ChildOptions::default().id("orphan"),
        );
        // Both launched (their ids are recorded), neither awaited.
        ctx.sleep(Duration::from_secs(1)).await;
        drop((cancelled, abandoned));
        Ok(())
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("sleepy", sleepy)
        .register("parent", parent)
        .build()
        .expect("build");
    let h = rt.start::<_, (), String>("parent", "p", ()).expect("start");
    assert_eq!(rt.block_on(h.result()).expect("runs"), Ok(()));
    let status = |id: &str| rt.journal().workflow(id).expect("read").map(|w| w.status);
    assert_eq!(status("doomed"), Some(Status::Cancelled));
    assert_eq!(status("orphan"), Some(Status::Pending));
    let orphan = rt.handle::<(), String>("orphan").expect("recorded");
    assert_eq!(rt.block_on(orphan.result()).expect("runs"), Ok(()));
}

/// A cancel of the parent (`Runtime::cancel`) ends its children started with
/// `ParentEnd::Cancel` in the same commit, as its return does; the others go on.
#[test]
fn children_with_the_cancel_policy_are_cancelled_with_a_cancelled_parent() {
    async fn parent(ctx: Ctx, _: ()) -> Result<(), String> {
        let cancelled = ctx.start_child_with::<_, (), String>(
            "sleepy",
            (),
            ChildOptions::default()
                .id("doomed")
                .on_parent_end(ParentEnd::Cancel),
        );
        let abandoned = ctx.start_child_with::<_, (), String>(
            "sleepy",
            (),
            ChildOptions::default().id("orphan"),
        );
        let _ = futures::join!(cancelled.result(), abandoned.result());
        Ok(())
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("sleepy", sleepy)
        .register("parent", parent)
        .build()
        .expect("build");
    let h = rt.start::<_, (), String>("parent", "p", ()).expect("start");
    let status = |id: &str| rt.journal().workflow(id).expect("read").map(|w| w.status);
    rt.block_on(async {
        while status("doomed").is_none() || status("orphan").is_none() {
            ordo::executor::sleep(Duration::from_millis(2)).await;
        }
    });
    assert!(rt.cancel("p").expect("cancel"));
    assert!(matches!(
        rt.block_on(h.result()),
        Err(Error::Cancelled { .. })
    ));
    assert_eq!(status("p"), Some(Status::Cancelled));
    assert_eq!(status("doomed"), Some(Status::Cancelled));
    assert_eq!(status("orphan"), Some(Status::Pending));
    let doomed = rt.handle::<(), String>("doomed").expect("recorded");
    assert!(matches!(
        rt.block_on(doomed.result()),
        Err(Error::Cancelled { .. })
    ));
}

// ---- awakeables ----

async fn payment(ctx: Ctx, _: ()) -> Result<String, String> {
    let (token, paid) = ctx.awakeable::<u64>();
    ctx.set_event("token", token).await;
    let cents = paid.await?;
    ctx.step("receipt", move || async move {
        Ok::<_, String>(format!("paid {cents}"))
    })
    .await
}

#[test]
fn an_awakeable_resolved_from_another_thread_while_embedded_in_tokio() {
    let dir = journal_dir();
    let rt = ordo_testkit::store::runtime(dir.path())
        .register("payment", payment)
        .build()
        .expect("build");
    let h = rt
        .start::<_, String, String>("payment", "pay", ())
        .expect("start");
    let client = rt.client();
    let resolver = std::thread::spawn(move || {
        futures::executor::block_on(async {
            let token: String = client
                .get_event("pay", "token", HOUR)
                .await?
                .expect("set before the deadline");
            client.resolve_awakeable(&token, 1_250u64).await?;
            let twice = client.resolve_awakeable(&token, 1u64).await;
            let forged = client
                .resolve_awakeable("ordo-awk1-6e6f626f6479-0", 1u64)
                .await;
            let garbage = client.resolve_awakeable("not a token", 1u64).await;
            Ok::<_, Error>((twice, forged, garbage))
        })
    });
    // The runtime embedded in a tokio current-thread runtime.
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let result = tokio_rt.block_on(async {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let driver = rt.run();
                let (result, ()) = futures::future::join(h.result(), driver).await;
                result
            })
            .await
    });
    assert_eq!(result.expect("runs"), Ok("paid 1250".to_string()));
    let (twice, forged, garbage) = resolver.join().expect("no panic").expect("answered");
    assert!(
        matches!(twice, Err(Error::AwakeableResolved { .. })),
        "{twice:?}"
    );
    assert!(
        matches!(forged, Err(Error::UnknownAwakeable { .. })),
        "{forged:?}"
    );
    assert!(
        matches!(garbage, Err(Error::UnknownAwakeable { .. })),
        "{garbage:?}"
    );
}

async fn gate(ctx: Ctx, _: ()) -> Result<u64, String> {
    let (token, paid) = ctx.awakeable::<u64>();
    ctx.set_event("token", token).await;
    let slow = ctx.step("slow", || async {
        ordo::executor::sleep(Duration::from_millis(50)).await;
        Ok::<_, String>(1u64)
    });
    let (paid, slow) = futures::join!(paid, slow);
    Ok(paid? + slow?)
}

/// A runtime on the journal at `dir`, with what `register` adds, that recovered what is
/// pending there.
fn recovered(
    dir: &std::path::Path,
    register: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder,
) -> ordo::Runtime {
    let rt = register(builder(dir)).build().expect("build");
    rt.recover().expect("recover");
    rt
}

/// Asserts `result` is `UnknownAwakeable` saying `why`.
fn refused(result: Result<(), Error>, why: &str) {
    assert!(
        matches!(&result, Err(Error::UnknownAwakeable { reason, .. }) if reason.contains(why)),
        "{result:?}"
    );
}

/// The token of step `n` of the workflow that gave out `token`, made up from it: the
/// workflow's id and a step number, with the tag (if any) left as it was.
fn made_up(token: &str, n: u64) -> String {
    let plain = token.starts_with("ordo-awk1-");
    let (stem, tag) = match plain {
        true => (token, ""),
        false => token
            .rsplit_once('-')
            .expect("a keyed token ends in its tag"),
    };
    let (stem, _) = stem.rsplit_once('-').expect("a token names its step");
    match plain {
        true => format!("{stem}-{n}"),
        false => format!("{stem}-{n}-{tag}"),
    }
}

/// A token cannot be made up: one that names a workflow and a step but is not the one
/// that workflow gave out (its tag is the journal's key's over the workflow and the
/// step) is refused (`UnknownAwakeable`), whatever the step is, and so is the plain
/// form of the real token. The token the workflow gave out resolves it.
#[test]
fn a_token_made_up_from_a_workflow_id_and_a_step_is_refused() {
    let rt = ordo_testkit::store::temporary()
        .register("gate", gate)
        .build()
        .expect("build");
    let h = rt.start::<_, u64, String>("gate", "g", ()).expect("start");
    let client = rt.client();
    let token: String = rt
        .block_on(client.get_event("g", "token", HOUR))
        .expect("read")
        .expect("a token");
    assert!(token.starts_with("ordo-awk2-"), "{token}");
    let hex: String = "g".bytes().map(|b| format!("{b:02x}")).collect();
    let step = token.split('-').nth(3).expect("a step").to_string();
    for forged in [
        made_up(&token, 9),
        made_up(&token, 2),
        format!("ordo-awk1-{hex}-{step}"),
        format!("ordo-awk2-{hex}-{step}-{}", "0".repeat(32)),
    ] {
        refused(
            rt.block_on(client.resolve_awakeable(&forged, 5u64)),
            "gave out no such token",
        );
    }
    // A token is a string from outside: none stops the runtime (one whose id's hex
    // digits were not ASCII made it panic, and every later call was `RuntimeGone`).
    for garbled in [
        "ordo-awk1-0\u{e9}0-0",
        "ordo-awk2-0\u{e9}0-0-00000000000000000000000000000000",
    ] {
        refused(
            rt.block_on(client.resolve_awakeable(garbled, 5u64)),
            "garbled",
        );
    }
    rt.block_on(client.resolve_awakeable(&token, 41u64))
        .expect("the real token");
    assert_eq!(rt.block_on(h.result()).expect("runs"), Ok(42));
}

/// A workflow recorded before the journal kept a token key (schema 8 and older) may have
/// handed out plain tokens: it goes on giving out plain ones, which resolve it, also
/// after a restart. A plain token for a step it has not created, for a step that is not
/// an awakeable, or once it has ended is refused (`UnknownAwakeable`): stored, it would
/// complete whatever awakeable that step later turned out to be.
#[test]
fn a_workflow_recorded_before_token_keys_keeps_plain_tokens_and_refuses_made_up_ones() {
    let dir = journal_dir();
    common::started_before_schema_9(dir.path(), "gate", "g", ());
    let rt = recovered(dir.path(), |b| b.register("gate", gate));
    let h = rt.handle::<u64, String>("g").expect("handle");
    let client = rt.client();
    let token: String = rt
        .block_on(client.get_event("g", "token", HOUR))
        .expect("read")
        .expect("a token");
    assert!(token.starts_with("ordo-awk1-"), "{token}");
    refused(
        rt.block_on(client.resolve_awakeable(&made_up(&token, 9), 5u64)),
        "no step 9",
    );
    refused(
        rt.block_on(client.resolve_awakeable(&made_up(&token, 2), 5u64)),
        "not an awakeable",
    );
    rt.block_on(client.resolve_awakeable(&token, 41u64))
        .expect("the real token");
    assert_eq!(rt.block_on(h.result()).expect("runs"), Ok(42));
    // Ended without an awakeable at step 9: still refused.
    refused(
        rt.block_on(client.resolve_awakeable(&made_up(&token, 9), 5u64)),
        "has ended",
    );
}

#[test]
fn an_awakeables_resolution_survives_a_crash_before_the_workflow_saw_it() {
    let dir = journal_dir();
    {
        let rt = builder(dir.path())
            .register("payment", payment)
            .build()
            .expect("build");
        let h = rt
            .start::<_, String, String>("payment", "pay", ())
            .expect("start");
        let client = rt.client();
        let token: String = rt
            .block_on(client.get_event("pay", "token", HOUR))
            .expect("answered")
            .expect("set");
        // Resolved, then the process dies before the workflow's next commit.
        let resolved = rt.block_on(client.resolve_awakeable(&token, 99u64));
        resolved.expect("durable");
        drop((h, client, rt));
    }
    let rt = recovered(dir.path(), |b| b.register("payment", payment));
    let h = rt.handle::<String, String>("pay").expect("recorded");
    assert_eq!(
        rt.block_on(h.result()).expect("runs"),
        Ok("paid 99".to_string())
    );
}

#[test]
fn a_client_whose_runtime_is_gone_gets_a_typed_error() {
    let rt = builder(journal_dir().path())
        .register("payment", payment)
        .build()
        .expect("build");
    let client = rt.client();
    drop(rt);
    let err =
        futures::executor::block_on(client.send("pay", "t", 1u8)).expect_err("the runtime is gone");
    assert!(matches!(err, Error::RuntimeGone), "{err}");
}

/// A token handed out before a restart still resolves its awakeable after it: the key
/// that tags it is the journal's, kept with it, not the process's.
#[test]
fn a_token_given_out_before_a_restart_resolves_the_awakeable_after_it() {
    let dir = journal_dir();
    let token: String = {
        let rt = builder(dir.path())
            .register("gate", gate)
            .build()
            .expect("build");
        let _h = rt.start::<_, u64, String>("gate", "g", ()).expect("start");
        let client = rt.client();
        rt.block_on(client.get_event("g", "token", HOUR))
            .expect("read")
            .expect("a token")
    };
    let rt = recovered(dir.path(), |b| b.register("gate", gate));
    let h = rt.handle::<u64, String>("g").expect("handle");
    rt.block_on(rt.client().resolve_awakeable(&token, 41u64))
        .expect("the token given out before the restart");
    assert_eq!(rt.block_on(h.result()).expect("runs"), Ok(42));
}
