//! Strings the journal cannot store are refused where they come in, the same way on
//! both stores, and stop nothing else:
//!
//! - a NUL character (`\0`) in a workflow id, a step name, a topic, an event or
//!   idempotency key, a workflow name: PostgreSQL's `text` cannot hold one. Before, a
//!   step named with one failed the group commit that carried it, which stopped the
//!   runtime and every workflow in it, and, as the workflow was recovered, every worker
//!   that claimed it;
//! - an id, topic or key over 1 KiB (`ordo::MAX_KEY_LEN`): PostgreSQL indexes them, and
//!   an index entry holds at most 2,704 bytes. Before, a start under an id of 2,700
//!   bytes failed its commit the same way.
//!
//! sled could store both, so the same code passed its tests on sled and took a
//! PostgreSQL service down.

mod common;

use std::cell::Cell;
use std::time::Duration;

use ordo::journal::{Error as JournalError, Status};
use ordo::{
    ChildOptions, Ctx, DebounceOptions, EnqueueOptions, Error, QueueOptions, Runtime, MAX_KEY_LEN,
};

use common::{builder, journal_dir};

const NUL: &str = "a\0b";

thread_local! {
    /// How many times the body of the step with a NUL in its name ran.
    static BAD_BODY_RUNS: Cell<u32> = const { Cell::new(0) };
}

async fn plain(ctx: Ctx, _: ()) -> Result<u32, String> {
    ctx.step("seven", || async { Ok::<_, String>(7) }).await
}

/// Does one thing with a NUL in a string it hands to ordo, then returns what it saw.
async fn with_nul(ctx: Ctx, what: String) -> Result<String, String> {
    let seen = match what.as_str() {
        "step" => {
            ctx.step(NUL, || async {
                BAD_BODY_RUNS.with(|runs| runs.set(runs.get() + 1));
                Ok::<_, String>(1u32)
            })
            .await?;
            "ran".to_string()
        }
        "set_event" => {
            ctx.set_event(NUL, 1u32).await;
            "set".to_string()
        }
        "send" => format!("{:?}", ctx.send("good", NUL, 1u32).await),
        "child" => {
            let options = ChildOptions::default().id(NUL);
            let child = ctx.start_child_with::<_, u32, String>("plain", (), options);
            format!("{:?}", child.result().await)
        }
        "get_event" => format!(
            "{:?}",
            ctx.get_event::<u32>("good", NUL, Duration::ZERO).await
        ),
        _ => "nothing".to_string(),
    };
    Ok(seen)
}

fn open(dir: &std::path::Path) -> Runtime {
    builder(dir)
        .register("plain", plain)
        .register("with_nul", with_nul)
        .queue("q", QueueOptions::new())
        .build()
        .expect("build")
}

/// Runs `what` in a `with_nul` workflow started in the same commit as a `plain` one;
/// the `plain` one must finish, and so must one started after: its result.
fn beside_a_plain_workflow(rt: &Runtime, what: &str) -> Result<Result<String, String>, Error> {
    let good = rt
        .start::<_, u32, String>("plain", "good", ())
        .expect("start");
    let bad = rt
        .start::<_, String, String>("with_nul", "with-nul", what.to_string())
        .expect("start");
    let result = rt.block_on(bad.result());
    assert_eq!(rt.block_on(good.result()).expect("runs"), Ok(7), "{what}");
    let after = rt
        .start::<_, u32, String>("plain", "after", ())
        .expect("start");
    assert_eq!(rt.block_on(after.result()).expect("runs"), Ok(7), "{what}");
    result
}

/// The error of a call expected to be refused.
fn refusal<T>(result: Result<T, Error>) -> Error {
    match result {
        Ok(_) => panic!("expected the call to be refused"),
        Err(err) => err,
    }
}

fn is_nul_refusal(err: &Error) -> bool {
    matches!(err, Error::Journal(e) if matches!(**e, JournalError::NulCharacter { .. }))
}

/// Checks that the `with_nul` workflow stopped as on a value that cannot be encoded,
/// naming the NUL.
fn stopped_for_a_nul(result: Result<Result<String, String>, Error>) {
    match result {
        Err(Error::Encode {
            workflow_id,
            detail,
            ..
        }) => {
            assert_eq!(workflow_id, "with-nul");
            assert!(detail.contains("NUL"), "{detail}");
        }
        other => panic!("expected the workflow to stop with Encode, got {other:?}"),
    }
}

#[test]
fn a_step_named_with_a_nul_stops_its_workflow_alone_before_its_body_runs() {
    let dir = journal_dir();
    let rt = open(dir.path());
    stopped_for_a_nul(beside_a_plain_workflow(&rt, "step"));
    assert_eq!(BAD_BODY_RUNS.with(Cell::get), 0, "the body must not run");
    drop(rt);
    // Left pending for a fixed binary, like a workflow whose outcome cannot be encoded;
    // the plain workflows are recorded as finished.
    let rt = open(dir.path());
    let record = |id: &str| {
        rt.journal()
            .workflow(id)
            .expect("read")
            .expect("recorded")
            .status
    };
    assert_eq!(record("with-nul"), Status::Pending);
    assert_eq!(record("good"), Status::Succeeded);
    assert_eq!(record("after"), Status::Succeeded);
}

#[test]
fn an_event_key_with_a_nul_stops_its_workflow_alone() {
    let dir = journal_dir();
    let rt = open(dir.path());
    stopped_for_a_nul(beside_a_plain_workflow(&rt, "set_event"));
}

#[test]
fn a_send_named_with_a_nul_stops_its_workflow_alone() {
    let dir = journal_dir();
    let rt = open(dir.path());
    // As a destination too long for the journal does, before anything of it is
    // committed.
    let stopped = beside_a_plain_workflow(&rt, "send").expect_err("refused");
    assert!(is_nul_refusal(&stopped), "{stopped:?}");
}

#[test]
fn a_child_id_with_a_nul_is_refused_to_its_parent() {
    let dir = journal_dir();
    let rt = open(dir.path());
    // The parent sees the refusal as the child's result, and goes on.
    let seen = beside_a_plain_workflow(&rt, "child")
        .expect("runs")
        .expect("returns");
    assert!(seen.contains("NulCharacter"), "{seen}");
}

#[test]
fn ids_and_keys_with_a_nul_are_refused_at_the_call() {
    let dir = journal_dir();
    let rt = open(dir.path());
    let good = rt
        .start::<_, u32, String>("plain", "good", ())
        .expect("start");
    let start = refusal(rt.start::<_, u32, String>("plain", NUL, ()));
    assert!(is_nul_refusal(&start), "{start:?}");
    let options = EnqueueOptions::new().id(NUL);
    let enqueue = refusal(rt.enqueue::<_, u32, String>("q", "plain", (), options));
    assert!(is_nul_refusal(&enqueue), "{enqueue:?}");
    let client = rt.client();
    let topic = rt
        .block_on(client.send("good", NUL, 1u32))
        .expect_err("refused");
    assert!(is_nul_refusal(&topic), "{topic:?}");
    let key = rt
        .block_on(client.send_idempotent("good", "t", 1u32, NUL))
        .expect_err("refused");
    assert!(is_nul_refusal(&key), "{key:?}");
    assert_eq!(rt.block_on(good.result()).expect("runs"), Ok(7));
}

#[test]
fn reads_of_a_name_with_a_nul_find_nothing() {
    let dir = journal_dir();
    let rt = open(dir.path());
    // As for any id no workflow has: not an error from the store.
    assert!(matches!(rt.cancel(NUL), Err(Error::NotFound { .. })));
    assert!(matches!(
        rt.handle::<u32, String>(NUL),
        Err(Error::NotFound { .. })
    ));
    let seen = beside_a_plain_workflow(&rt, "get_event")
        .expect("runs")
        .expect("returns");
    assert_eq!(seen, "None");
}

#[test]
fn a_workflow_name_or_version_with_a_nul_is_refused_at_build() {
    let dir = journal_dir();
    let name = refusal(builder(dir.path()).register(NUL, plain).build());
    assert!(is_nul_refusal(&name), "{name:?}");
    let version = refusal(
        builder(dir.path())
            .register("plain", plain)
            .app_version(NUL)
            .build(),
    );
    assert!(is_nul_refusal(&version), "{version:?}");
}

/// `len` bytes that do not compress (PostgreSQL compresses a long index key, so a
/// repetitive one would fit where a real one does not).
fn long_key(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + u8::try_from(x % 26).expect("a letter"))
        })
        .collect()
}

fn is_too_long(err: &Error) -> bool {
    matches!(err, Error::Journal(e)
        if matches!(**e, JournalError::IdTooLong { max, .. } if max == MAX_KEY_LEN))
}

#[test]
fn ids_and_keys_over_a_kibibyte_are_refused_at_the_call() {
    let dir = journal_dir();
    let rt = open(dir.path());
    let good = rt
        .start::<_, u32, String>("plain", "good", ())
        .expect("start");
    let long = long_key(2_700);
    let start = refusal(rt.start::<_, u32, String>("plain", &long, ()));
    assert!(is_too_long(&start), "{start:?}");
    let options = EnqueueOptions::new().dedup(long.clone(), ordo::OnDuplicate::Reject);
    let dedup = refusal(rt.enqueue::<_, u32, String>("q", "plain", (), options));
    assert!(is_too_long(&dedup), "{dedup:?}");
    let options = DebounceOptions::new(std::time::Duration::from_secs(60));
    let debounce = refusal(rt.debounce("plain", &long, (), options));
    assert!(is_too_long(&debounce), "{debounce:?}");
    let client = rt.client();
    let topic = rt
        .block_on(client.send("good", &long, 1u32))
        .expect_err("refused");
    assert!(is_too_long(&topic), "{topic:?}");
    assert_eq!(rt.block_on(good.result()).expect("runs"), Ok(7));
    // The longest id taken is stored and runs, on both stores.
    let longest = long_key(MAX_KEY_LEN);
    let handle = rt
        .start::<_, u32, String>("plain", &longest, ())
        .expect("start");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(7));
    // Two keys of the longest length together in one index entry (a message's
    // destination and topic, an idempotency key beside its destination) are stored
    // too: the bound leaves room for both.
    let topic = long_key(MAX_KEY_LEN + 1)[1..].to_string();
    let key = long_key(MAX_KEY_LEN + 2)[2..].to_string();
    rt.block_on(client.send_idempotent(&longest, &topic, 1u32, &key))
        .expect("sent");
    let messages = rt.journal().messages(&longest).expect("read");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].topic, topic);
    let good = rt
        .start::<_, u32, String>("plain", "after", ())
        .expect("start");
    assert_eq!(rt.block_on(good.result()).expect("runs"), Ok(7));
}

#[test]
fn a_queue_name_over_a_kibibyte_is_refused_at_build() {
    let dir = journal_dir();
    let name = refusal(
        builder(dir.path())
            .register("plain", plain)
            .queue(&long_key(2_000), QueueOptions::new())
            .build(),
    );
    assert!(is_too_long(&name), "{name:?}");
}
