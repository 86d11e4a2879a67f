//! The first failed commit is fatal for the runtime (after a failed flush or fsync,
//! nothing written since the last good commit can be trusted): every running workflow
//! gets a typed error, nothing more is committed or delivered, and only a reopen, which
//! replays what is really in the journal, continues. Whatever the commit that fails, no
//! acknowledged completion is lost and no recorded step runs twice; and no client's start
//! or enqueue is acknowledged before the commit that writes it.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use common::faulty::{Fault, FaultyStore, Log};
use ordo::journal::Durability;
use ordo::{Clock, Ctx, EnqueueOptions, Error, Event, QueueOptions, Runtime, RuntimeBuilder};

/// Body runs per step name, across both processes' runtimes.
type Runs = Rc<RefCell<BTreeMap<String, u32>>>;

fn register(b: RuntimeBuilder, runs: &Runs) -> RuntimeBuilder {
    let runs = Rc::clone(runs);
    b.clock(Clock::Virtual)
        .start_time(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .register("pay", move |ctx: Ctx, (): ()| {
            let runs = Rc::clone(&runs);
            async move {
                let mut total = 0;
                for name in ["reserve", "charge", "ship", "email"] {
                    let runs = Rc::clone(&runs);
                    total += ctx
                        .step(name, move || async move {
                            *runs.borrow_mut().entry(name.to_string()).or_default() += 1;
                            Ok::<_, String>(name.len() as u32)
                        })
                        .await?;
                }
                Ok::<_, String>(total)
            }
        })
}

#[test]
fn whichever_commit_fails_nothing_acknowledged_is_lost_and_nothing_recorded_runs_twice() {
    // Commits: 1 start, 2-5 one step each, 6 the result.
    for fault in [Fault::BeforeApply, Fault::AfterApply] {
        for k in 1..=6u64 {
            let case = format!("{fault:?} at commit {k}");
            let dir = tempfile::tempdir().expect("temp dir");
            let runs: Runs = Rc::default();
            let acknowledged = Rc::new(RefCell::new(Vec::<u64>::new()));
            let seen = Rc::clone(&acknowledged);
            let journal = ordo_testkit::store::open(dir.path());
            let log = Log::default();
            let store = FaultyStore::new(journal, log.clone(), Some((k, fault)));
            let rt = register(Runtime::builder().store(Box::new(store)), &runs)
                .observer(move |event| {
                    if let Event::Step { step_id, .. } = event {
                        seen.borrow_mut().push(*step_id);
                    }
                })
                .build()
                .expect("build");
            let h = rt.start::<_, u32, String>("pay", "p", ()).expect("start");
            let err = rt.block_on(h.result()).expect_err(&case);
            assert!(matches!(err, Error::Journal(_)), "{case}: {err}");
            assert!(err.to_string().contains("injected"), "{case}: {err}");
            // Broken for good: no later start, no later commit.
            assert!(matches!(
                rt.start::<_, u32, String>("pay", "q", ()),
                Err(Error::Journal(_))
            ));
            assert!(matches!(rt.recover(), Err(Error::Journal(_))));
            assert_eq!(
                log.lines().len() as u64,
                k,
                "{case}: committed after the failure"
            );
            drop((h, rt));

            // What the disk really holds.
            let journal = ordo_testkit::store::open(dir.path());
            let on_disk: Vec<u64> = journal
                .completions("p")
                .expect("read")
                .iter()
                .map(|c| c.step_id)
                .collect();
            drop(journal);
            for step_id in acknowledged.borrow().iter() {
                assert!(
                    on_disk.contains(step_id),
                    "{case}: step {step_id} was delivered but is not on disk {on_disk:?}"
                );
            }
            let runs_before: BTreeMap<String, u32> = runs.borrow().clone();

            // A reopen replays what is on disk and finishes.
            let rt = register(
                ordo_testkit::store::runtime(dir.path()).durability(Durability::Flush),
                &runs,
            )
            .build()
            .expect("rebuild");
            let report = rt.recover().expect("recover");
            let expected = 7 + 6 + 4 + 5;
            let result = match report.resumed.as_slice() {
                [id] if id == "p" => {
                    let h = rt.handle::<u32, String>("p").expect("handle");
                    rt.block_on(h.result()).expect("finishes")
                }
                // Already finished on disk (the failed commit was applied), or never
                // started (the start's commit was not): `start` gives the recorded result
                // or runs it.
                [] => {
                    let h = rt.start::<_, u32, String>("pay", "p", ()).expect("start");
                    rt.block_on(h.result()).expect("finishes")
                }
                other => panic!("{case}: resumed {other:?}"),
            };
            assert_eq!(result, Ok(expected), "{case}");
            let names = ["reserve", "charge", "ship", "email"];
            for (step_id, name) in names.iter().enumerate() {
                let total = runs.borrow().get(*name).copied().unwrap_or(0);
                let before = runs_before.get(*name).copied().unwrap_or(0);
                assert!((1..=2).contains(&total), "{case}: {name} ran {total} times");
                if on_disk.contains(&(step_id as u64)) {
                    assert_eq!(total, before, "{case}: recorded {name} ran again");
                }
            }
        }
    }
}

/// Runs `asks` (each a client's request naming an id, answered once durable) on a
/// runtime whose second commit fails, and checks that every id acknowledged is recorded:
/// how many were acknowledged, and the first commit's line of the store's log.
fn acknowledged_are_recorded<F>(asks: impl FnOnce(&ordo::Client) -> Vec<F>) -> (usize, String)
where
    F: std::future::Future<Output = (String, bool)>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Log::default();
    let journal = ordo_testkit::store::open(dir.path());
    // The second commit, which writes what the first one left, fails.
    let store = FaultyStore::new(journal, log.clone(), Some((2, Fault::BeforeApply)));
    let runs: Runs = Rc::default();
    let rt = register(Runtime::builder().store(Box::new(store)), &runs)
        .queue("q", QueueOptions::new().concurrency(1))
        .build()
        .expect("build");
    let answers = rt.block_on(futures::future::join_all(asks(&rt.client())));
    drop(rt);
    let acknowledged: Vec<String> = answers
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(id, _)| id)
        .collect();
    let journal = ordo_testkit::store::open(dir.path());
    for id in &acknowledged {
        let record = journal.workflow(id).expect("read");
        assert!(
            record.is_some(),
            "{id} was acknowledged but is not recorded"
        );
    }
    (acknowledged.len(), log.lines()[0].clone())
}

/// A client's start is acknowledged once its record is durable, also when more starts
/// wait than one commit writes (4,096): before, every client waiting when that commit
/// was made heard "started" from it, and the starts left for the next commit were lost
/// when it failed (or the process died before it), though their clients had been told
/// they were recorded.
#[test]
fn a_clients_start_is_acknowledged_only_by_the_commit_that_writes_it() {
    let (acknowledged, first) = acknowledged_are_recorded(|client| {
        (0..5_000)
            .map(|i| {
                let id = format!("c-{i}");
                let started = client.start::<_, u32, String>("pay", &id, ());
                async move { (id, started.await.is_ok()) }
            })
            .collect()
    });
    assert!(
        first.starts_with("commit 1: 4096 pending records"),
        "{first}"
    );
    assert_eq!(acknowledged, 4_096);
}

/// The same for a client's enqueue, when more wait than one commit writes (1,024).
#[test]
fn a_clients_enqueue_is_acknowledged_only_by_the_commit_that_writes_it() {
    let (acknowledged, first) = acknowledged_are_recorded(|client| {
        (0..1_500)
            .map(|i| {
                let id = format!("e-{i}");
                let options = EnqueueOptions::new().id(id.clone());
                let enqueued = client.enqueue::<_, u32, String>("q", "pay", (), options);
                async move { (id, enqueued.await.is_ok()) }
            })
            .collect()
    });
    assert!(first.contains("1024 queued records"), "{first}");
    assert_eq!(acknowledged, 1_024);
}

/// Two clients' requests for one id in the same turn (a retry, say): the second finds
/// the first's workflow, not durable yet, and is answered with the commit that writes
/// it, as the first is. Before, it was answered at once, and when that commit failed
/// (or the process died first) it had been told of a workflow never recorded.
#[test]
fn a_second_request_for_an_id_waits_for_the_commit_that_writes_the_first() {
    for (first, second) in [
        ("start", "start"),
        ("enqueue", "start"),
        ("enqueue", "enqueue"),
        ("start", "enqueue"),
    ] {
        let case = format!("{first} then {second}");
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = ordo_testkit::store::open(dir.path());
        // The first commit, which would write the workflow, fails.
        let store = FaultyStore::new(journal, Log::default(), Some((1, Fault::BeforeApply)));
        let runs: Runs = Rc::default();
        let rt = register(Runtime::builder().store(Box::new(store)), &runs)
            .queue("q", QueueOptions::new().concurrency(1))
            .build()
            .expect("build");
        let client = rt.client();
        let ask = |what: &str| {
            let client = client.clone();
            let what = what.to_string();
            async move {
                if what == "start" {
                    client.start::<_, u32, String>("pay", "x", ()).await.is_ok()
                } else {
                    let options = EnqueueOptions::new().id("x");
                    (client
                        .enqueue::<_, u32, String>("q", "pay", (), options)
                        .await)
                        .is_ok()
                }
            }
        };
        let answers = rt.block_on(async { futures::join!(ask(first), ask(second)) });
        drop(rt);
        let journal = ordo_testkit::store::open(dir.path());
        assert!(journal.workflow("x").expect("read").is_none(), "{case}");
        assert_eq!(
            answers,
            (false, false),
            "{case}: acknowledged, not recorded"
        );
    }
}
