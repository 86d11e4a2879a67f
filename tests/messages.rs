//! Messages between workflows and from clients: `send`, `recv`, exactly-once delivery
//! across crashes at every commit, call-site order, `select!` arms, idempotency keys.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::FutureExt;
use ordo::{Ctx, Error, RuntimeBuilder};
use ordo_testkit::{Check, Order};

use common::{builder, journal_dir};

const HOUR: Duration = Duration::from_secs(3600);

/// Receives three numbers on "n" (with a step between each), then sums them.
async fn collector(ctx: Ctx, _: ()) -> Result<Vec<u32>, String> {
    let mut got = Vec::new();
    for round in 0..3u32 {
        ctx.step("work", move || async move { Ok::<_, String>(round) })
            .await?;
        match ctx.recv::<u32>("n", HOUR).await {
            Some(n) => got.push(n),
            None => return Err(format!("round {round} timed out")),
        }
    }
    Ok(got)
}

/// Sends 10, 20, 30 to the workflow whose id it is given.
async fn sender(ctx: Ctx, to: String) -> Result<(), String> {
    for n in [10u32, 20, 30] {
        ctx.send(&to, "n", n).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn both(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("collector", collector)
        .register("sender", sender)
}

#[test]
fn messages_between_workflows_arrive_once_in_order_across_a_crash_at_every_commit() {
    // The uninterrupted run.
    let dir = journal_dir();
    let rt = both(builder(dir.path())).build().expect("build");
    let c = rt
        .start::<_, Vec<u32>, String>("collector", "c", ())
        .expect("start");
    rt.start::<_, (), String>("sender", "s", "c".to_string())
        .expect("start");
    assert_eq!(rt.block_on(c.result()).expect("runs"), Ok(vec![10, 20, 30]));
    let commits = rt.metrics().commits;
    drop((c, rt));
    assert!(commits >= 4, "{commits} commits");

    // Crash after every commit, then recover: the same numbers, each once.
    for crash_after in 1..commits {
        let dir = journal_dir();
        {
            let rt = both(builder(dir.path()))
                .halt_after_commits(crash_after)
                .build()
                .expect("build");
            let c = rt
                .start::<_, Vec<u32>, String>("collector", "c", ())
                .expect("start");
            rt.start::<_, (), String>("sender", "s", "c".to_string())
                .expect("start");
            let _ = rt.block_on(c.result());
        }
        let rt = both(builder(dir.path())).build().expect("reopen");
        rt.recover().expect("recover");
        let c = rt.handle::<Vec<u32>, String>("c").expect("recorded");
        assert_eq!(
            rt.block_on(c.result()).expect("finishes"),
            Ok(vec![10, 20, 30]),
            "after a crash at commit {crash_after}"
        );
        // Every message was consumed: none left over, none received twice.
        assert!(rt.journal().messages("c").expect("read").is_empty());
        let receipts = rt
            .journal()
            .completions("c")
            .expect("read")
            .iter()
            .filter(|c| c.name == "ordo.recv")
            .count();
        assert_eq!(receipts, 3, "after a crash at commit {crash_after}");
    }
}

#[test]
fn the_checker_finds_the_exchange_deterministic_under_every_crash_and_latency() {
    // The collector sends to itself before each receive: each send and each receive
    // is a step the checker crashes around.
    async fn echo(ctx: Ctx, n: u32) -> Result<u32, String> {
        let me = ctx.workflow_id().to_string();
        let mut total = 0;
        for i in 0..n {
            let sent = ctx.send(&me, "self", i);
            let got = ctx.recv::<u32>("self", HOUR);
            let (sent, got) = futures::join!(sent, got);
            sent.map_err(|e| e.to_string())?;
            total += got.ok_or("timed out")?;
        }
        Ok(total)
    }
    assert_eq!(Check::workflow("echo", echo, 4u32).assert(), Ok(6));
}

#[test]
fn messages_reach_a_workflow_before_during_and_after_its_recv_and_while_it_is_not_running() {
    let dir = journal_dir();
    // A first process starts the collector and dies after its start is committed.
    {
        let rt = both(builder(dir.path()))
            .halt_after_commits(1)
            .build()
            .expect("build");
        let c = rt
            .start::<_, Vec<u32>, String>("collector", "c", ())
            .expect("start");
        let _ = rt.block_on(c.result());
    }
    let rt = both(builder(dir.path())).build().expect("reopen");
    let client = rt.client();
    // Not running here yet (pending in the journal): the message waits in the journal.
    rt.block_on(client.send("c", "n", 1u32)).expect("send");
    assert_eq!(rt.journal().messages("c").expect("read").len(), 1);
    rt.recover().expect("recover");
    // Before its second recv is reached, and while it waits in the third.
    rt.block_on(client.send("c", "n", 2u32)).expect("send");
    let c = rt.handle::<Vec<u32>, String>("c").expect("recorded");
    let third = async {
        // Let the collector reach its third recv first.
        ordo::executor::sleep(Duration::from_secs(60)).await;
        client.send("c", "n", 3u32).await
    };
    let (result, sent) = rt.block_on(futures::future::join(c.result(), third));
    sent.expect("send");
    assert_eq!(result.expect("runs"), Ok(vec![1, 2, 3]));
}

#[test]
fn two_pending_recvs_on_one_topic_get_messages_in_call_site_order() {
    async fn pair(ctx: Ctx, _: ()) -> Result<(Option<u8>, Option<u8>), String> {
        let first = ctx.recv::<u8>("t", HOUR);
        let second = ctx.recv::<u8>("t", HOUR);
        // Awaited in the other order, and polled in the other order.
        let (second, first) = futures::join!(second, first);
        Ok((first, second))
    }
    async fn feed(ctx: Ctx, to: String) -> Result<(), String> {
        ctx.send(&to, "t", 1u8).await.map_err(|e| e.to_string())?;
        ctx.send(&to, "t", 2u8).await.map_err(|e| e.to_string())
    }
    let dir = journal_dir();
    let register = |b: RuntimeBuilder| b.register("pair", pair).register("feed", feed);
    {
        let rt = register(builder(dir.path())).build().expect("build");
        let p = rt
            .start::<_, (Option<u8>, Option<u8>), String>("pair", "p", ())
            .expect("start");
        rt.start::<_, (), String>("feed", "f", "p".to_string())
            .expect("start");
        assert_eq!(
            rt.block_on(p.result()).expect("runs"),
            Ok((Some(1), Some(2)))
        );
    }
    // Replayed from the journal (as if every step were pending again): identical.
    let report = ordo_testkit::store::replay(dir.path(), register).expect("replays");
    report.assert_clean();
}

/// A `select!` of a `recv` against a step and a durable sleep; the arm that won is
/// returned. Which one wins depends on `who` (which source is fast).
async fn race(ctx: Ctx, who: String) -> Result<String, String> {
    let fast_step = who == "step";
    // Three hours: longer than the others, so a timeout never wins here.
    let mut message = ctx.recv::<String>("go", 3 * HOUR).boxed_local().fuse();
    let mut step = ctx
        .step("lookup", move || async move {
            let wait = if fast_step { 1 } else { 7_200 };
            ordo::executor::sleep(Duration::from_secs(wait)).await;
            Ok::<_, String>("step".to_string())
        })
        .fuse();
    let mut timer = ctx.sleep(Duration::from_secs(5_400)).boxed_local().fuse();
    let winner = futures::select! {
        m = message => m.unwrap_or_else(|| "recv timed out".into()),
        s = step => s?,
        () = timer => "sleep".to_string(),
    };
    drop((message, step, timer));
    // A later receive: a message given back by a losing recv is still there.
    let later = ctx.recv::<String>("go", Duration::from_secs(1)).await;
    Ok(format!("{winner}, then {later:?}"))
}

/// Sends "message" to `to` after `delay_s` seconds (or never, for "").
async fn poke(ctx: Ctx, (to, delay_s): (String, u64)) -> Result<(), String> {
    ctx.sleep(Duration::from_secs(delay_s)).await;
    ctx.send(&to, "go", "message".to_string())
        .await
        .map_err(|e| e.to_string())
}

fn racing(b: RuntimeBuilder) -> RuntimeBuilder {
    b.register("race", race).register("poke", poke)
}

#[test]
fn a_select_of_recv_step_and_sleep_takes_each_arm_and_replays_the_same_arm() {
    for (who, poke_after, expected) in [
        // The message comes first (at 60 s).
        ("message", Some(60), "message, then None"),
        // The step finishes first (1 s); the message (60 s) stays for the later recv.
        ("step", Some(60), "step, then None"),
        // Nothing before the 90 minute sleep; the message comes after it.
        ("sleep", Some(6_000), "sleep, then None"),
        // Neither message nor fast step: the sleep (90 min) beats the step (2 h).
        ("sleep", None, "sleep, then None"),
    ] {
        let dir = journal_dir();
        let rt = racing(builder(dir.path())).build().expect("build");
        let r = rt
            .start::<_, String, String>("race", "r", who.to_string())
            .expect("start");
        let poked = poke_after.map(|after| {
            rt.start::<_, (), String>("poke", "p", ("r".to_string(), after as u64))
                .expect("start")
        });
        let got = rt.block_on(r.result()).expect("runs").expect("ok");
        if let Some(poked) = poked {
            rt.block_on(poked.result()).expect("runs").expect("sent");
        }
        drop((r, rt));
        if who == "step" {
            // The message came after the race and after the later recv's 1 s: still
            // in the mailbox, never consumed by the loser.
            assert_eq!(got, expected);
            let journal = ordo_testkit::store::open(dir.path());
            assert_eq!(journal.messages("r").expect("read").len(), 1, "{who}");
        } else {
            assert_eq!(got, expected, "{who} after {poke_after:?}");
        }
        let report = ordo_testkit::store::replay(dir.path(), racing).expect("replays");
        report.assert_clean();
    }
}

#[test]
fn the_checker_replays_select_races_of_recv_under_other_latencies() {
    // The race against a message the workflow sent itself: under every latency the
    // checker tries, a crash recovers to the same winner as the journal says.
    async fn self_race(ctx: Ctx, _: ()) -> Result<String, String> {
        let me = ctx.workflow_id().to_string();
        ctx.send(&me, "go", "message".to_string())
            .await
            .map_err(|e| e.to_string())?;
        let mut message = ctx.recv::<String>("go", HOUR).boxed_local().fuse();
        let mut step = ctx
            .step("lookup", || async { Ok::<_, String>("step".to_string()) })
            .fuse();
        let winner = futures::select! {
            m = message => m.unwrap_or_default(),
            s = step => s?,
        };
        // The loser goes now: a `recv` that still exists when its message is recorded
        // keeps it (see `Ctx::recv`).
        drop((message, step));
        let rest = ctx.recv::<String>("go", Duration::from_secs(1)).await;
        Ok(format!("{winner} {rest:?}"))
    }
    // `Random`: the two bodies may finish in one commit, and `select!` polls its arms
    // in random order, so even two live runs under the same latencies may differ.
    let check = Check::workflow("self_race", self_race, ()).order(Order::Random);
    let result = check.assert().expect("ok");
    // Whichever won, the message was received exactly once overall, or left unread
    // (by the loser) and taken by the later recv.
    assert!(
        result == "message None" || result == "step Some(\"message\")",
        "{result}"
    );
}

#[test]
fn an_outside_send_with_the_same_idempotency_key_is_delivered_once() {
    async fn count(ctx: Ctx, _: ()) -> Result<Vec<u32>, String> {
        let mut got = Vec::new();
        while let Some(n) = ctx.recv::<u32>("hook", Duration::from_secs(600)).await {
            got.push(n);
        }
        Ok(got)
    }
    let dir = journal_dir();
    {
        let rt = builder(dir.path())
            .register("count", count)
            .build()
            .expect("build");
        rt.start::<_, Vec<u32>, String>("count", "c", ())
            .expect("start");
        let client = rt.client();
        rt.block_on(client.send_idempotent("c", "hook", 1u32, "delivery-1"))
            .expect("send");
        rt.block_on(client.send_idempotent("c", "hook", 1u32, "delivery-1"))
            .expect("again");
        // Two at once, the second while the first's commit is still to come.
        let (a, b) = rt.block_on(futures::future::join(
            client.send_idempotent("c", "hook", 2u32, "delivery-2"),
            client.send_idempotent("c", "hook", 2u32, "delivery-2"),
        ));
        a.expect("send");
        b.expect("send");
    }
    // Across a restart the key is still known.
    let rt = builder(dir.path())
        .register("count", count)
        .build()
        .expect("reopen");
    rt.recover().expect("recover");
    let client = rt.client();
    rt.block_on(client.send_idempotent("c", "hook", 1u32, "delivery-1"))
        .expect("send");
    rt.block_on(client.send_idempotent("c", "hook", 3u32, "delivery-3"))
        .expect("send");
    let c = rt.handle::<Vec<u32>, String>("c").expect("recorded");
    assert_eq!(rt.block_on(c.result()).expect("runs"), Ok(vec![1, 2, 3]));
}

#[test]
fn sending_to_a_workflow_that_does_not_exist_is_a_typed_error() {
    async fn lost(ctx: Ctx, _: ()) -> Result<String, String> {
        match ctx.send("nobody", "t", 1u8).await {
            Err(Error::UnknownDestination { workflow_id }) => Ok(workflow_id),
            other => Err(format!("{other:?}")),
        }
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("lost", lost)
        .build()
        .expect("build");
    let h = rt
        .start::<_, String, String>("lost", "l", ())
        .expect("start");
    assert_eq!(
        rt.block_on(h.result()).expect("runs"),
        Ok("nobody".to_string())
    );
    let err = rt
        .block_on(rt.client().send("nobody", "t", 1u8))
        .expect_err("no such workflow");
    assert!(
        matches!(err, Error::UnknownDestination { ref workflow_id } if workflow_id == "nobody"),
        "{err}"
    );
}

#[test]
fn a_message_of_another_type_stops_the_receiver_with_a_type_mismatch() {
    async fn wants_number(ctx: Ctx, _: ()) -> Result<Option<u64>, String> {
        Ok(ctx.recv::<u64>("t", HOUR).await)
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("w", wants_number)
        .build()
        .expect("build");
    let h = rt
        .start::<_, Option<u64>, String>("w", "w", ())
        .expect("start");
    rt.block_on(rt.client().send("w", "t", "not a number".to_string()))
        .expect("send");
    let err = rt.block_on(h.result()).expect_err("the type differs");
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("String"), "{err}");
}

#[test]
fn many_messages_into_one_workflow_are_all_received_in_send_order() {
    async fn drain(ctx: Ctx, n: u32) -> Result<u64, String> {
        let mut sum = 0u64;
        let mut last = None;
        for _ in 0..n {
            let got = ctx.recv::<u32>("m", HOUR).await.ok_or("timed out")?;
            if last.is_some_and(|l| got <= l) {
                return Err(format!("{got} after {last:?}"));
            }
            last = Some(got);
            sum += u64::from(got);
        }
        Ok(sum)
    }
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("drain", drain)
        .build()
        .expect("build");
    let h = rt
        .start::<_, u64, String>("drain", "d", 2_000u32)
        .expect("start");
    let client = rt.client();
    let sends = futures::future::join_all((0..2_000u32).map(|i| client.send("d", "m", i)));
    let (result, sent) = rt.block_on(futures::future::join(h.result(), sends));
    assert!(sent.iter().all(Result::is_ok));
    assert_eq!(result.expect("runs"), Ok((0..2_000u64).sum()));
}

#[test]
fn a_recv_dropped_before_it_was_recorded_leaves_its_message_for_the_next() {
    // The first recv is created and dropped unpolled; the message goes to the second.
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = Rc::clone(&seen);
    let dir = journal_dir();
    let rt = builder(dir.path())
        .register("fickle", move |ctx: Ctx, _: ()| {
            let log = Rc::clone(&log);
            async move {
                drop(ctx.recv::<u8>("t", HOUR));
                let got = ctx.recv::<u8>("t", HOUR).await;
                log.borrow_mut().push(got);
                Ok::<_, String>(got)
            }
        })
        .build()
        .expect("build");
    let h = rt
        .start::<_, Option<u8>, String>("fickle", "f", ())
        .expect("start");
    rt.block_on(rt.client().send("f", "t", 9u8)).expect("send");
    assert_eq!(rt.block_on(h.result()).expect("runs"), Ok(Some(9)));
    assert_eq!(*seen.borrow(), vec![Some(9)]);
}

#[test]
fn recv_many_takes_what_is_there_in_order_and_replays_it_under_every_crash() {
    async fn batches(ctx: Ctx, n: u32) -> Result<Vec<u32>, String> {
        let me = ctx.workflow_id().to_string();
        let sends: Vec<_> = (0..n).map(|i| ctx.send(&me, "b", i)).collect();
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|e| e.to_string())?;
        }
        let mut got = Vec::new();
        while got.len() < n as usize {
            let batch = ctx.recv_many::<u32>("b", 3, HOUR).await;
            if batch.is_empty() || batch.len() > 3 {
                return Err(format!("a batch of {}", batch.len()));
            }
            got.extend(batch);
        }
        // Nothing left: the deadline passes with an empty batch.
        let rest = ctx.recv_many::<u32>("b", 3, Duration::from_secs(1)).await;
        if !rest.is_empty() {
            return Err(format!("left over: {rest:?}"));
        }
        Ok(got)
    }
    assert_eq!(
        Check::workflow("batches", batches, 7u32).assert(),
        Ok((0..7).collect::<Vec<u32>>())
    );
}

/// A step, a short sleep and a step: a workflow that shares the runtime with callers
/// that pass ids and topics too long for the journal.
async fn bystander(ctx: Ctx, _: ()) -> Result<u32, String> {
    let one = ctx.step("one", || async { Ok::<_, String>(1u32) }).await?;
    ctx.sleep(Duration::from_millis(20)).await;
    let two = ctx.step("two", || async { Ok::<_, String>(2u32) }).await?;
    Ok(one + two)
}

/// Sends to the workflow it is given, on a topic too long for the journal.
async fn long_sender(ctx: Ctx, to: String) -> Result<(), String> {
    let topic = "t".repeat(ordo::journal::MAX_ID_LEN + 1);
    ctx.send(&to, &topic, 1u32).await.map_err(|e| e.to_string())
}

/// Starts a child under an id too long for the journal.
async fn long_parent(ctx: Ctx, _: ()) -> Result<u32, String> {
    let id = "c".repeat(ordo::journal::MAX_ID_LEN + 1);
    let child = ctx.start_child_with::<_, u32, String>(
        "bystander",
        (),
        ordo::ChildOptions::default().id(id),
    );
    child.result().await.map_err(|e| e.to_string())?
}

fn too_long(result: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::Journal(err)) if matches!(**err, ordo::journal::Error::IdTooLong { .. }))
}

/// An id or topic longer than the journal's keys take is refused to the caller that
/// brought it in (a start, a client's send, a workflow's send or child), and every other
/// workflow goes on: the journal would refuse the whole commit holding it, which stopped
/// the runtime and every workflow in it, again after each restart.
#[test]
fn an_id_or_topic_too_long_for_the_journal_is_refused_to_its_caller_alone() {
    let dir = journal_dir();
    let build = || {
        builder(dir.path())
            .register("bystander", bystander)
            .register("long_sender", long_sender)
            .register("long_parent", long_parent)
            .build()
            .expect("build")
    };
    let long = "x".repeat(ordo::journal::MAX_ID_LEN + 1);
    {
        let rt = build();
        let before = rt
            .start::<_, u32, String>("bystander", "before", ())
            .expect("start");
        assert!(too_long(&rt.start::<_, u32, String>(
            "bystander",
            &long,
            ()
        )));
        let client = rt.client();
        assert!(too_long(&rt.block_on(client.send("before", &long, 1u32))));
        let sender = rt
            .start::<_, (), String>("long_sender", "sender", "before".to_string())
            .expect("start");
        let parent = rt
            .start::<_, u32, String>("long_parent", "parent", ())
            .expect("start");
        let after = rt
            .start::<_, u32, String>("bystander", "after", ())
            .expect("start");
        assert!(too_long(&rt.block_on(sender.result())));
        let refused = rt.block_on(parent.result()).expect("the parent ends");
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("too long")),
            "{refused:?}"
        );
        assert_eq!(rt.block_on(before.result()).expect("before"), Ok(3));
        assert_eq!(rt.block_on(after.result()).expect("after"), Ok(3));
        // A fork under such an id is refused too, and the runtime goes on.
        assert!(too_long(&rt.fork::<u32, String>("before", 0, &long)));
    }
    // After a restart, the workflow stopped by its send stops again, alone.
    let rt = build();
    rt.recover().expect("recover");
    let again = rt
        .start::<_, u32, String>("bystander", "again", ())
        .expect("start");
    assert_eq!(rt.block_on(again.result()).expect("again"), Ok(3));
}
