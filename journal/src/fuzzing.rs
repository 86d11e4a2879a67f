//! The body of the `journal_decode` fuzz target, and key builders for tests that plant
//! bad records. Hidden: not part of the stable API.

use std::cell::RefCell;

use crate::codec;
use crate::key::{self, Key};
use crate::record::{Completion, Outcome, Status};
use crate::sled::SledJournal;
use crate::store::Store;

thread_local! {
    /// One temporary journal per thread, cleared for every input: opening sled per input
    /// would dominate the fuzzer's time.
    static JOURNAL: RefCell<Option<SledJournal>> = const { RefCell::new(None) };
}

/// Feeds `data` to every decoder, then writes it under journal keys of a temporary
/// journal and reads it back through [`Store`]. Every path must return a value or a typed
/// error; a panic is a bug. A value that decodes must also survive re-encoding unchanged.
pub fn journal_decode(data: &[u8]) {
    decode_everything(data);
    JOURNAL.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = SledJournal::temporary().ok();
        }
        if let Some(journal) = cell.as_ref() {
            plant_and_read(journal, data);
        }
    });
}

/// Decodes `data` as each stored value and key.
fn decode_everything(data: &[u8]) {
    if let Ok(rec) = codec::decode_workflow(b"wfuzz", "fuzz", data) {
        let mut again = Vec::new();
        assert!(codec::encode_workflow(&rec, &mut again).is_ok());
        assert_eq!(
            codec::decode_workflow(b"wfuzz", "fuzz", &again).ok(),
            Some(rec)
        );
    }
    if let Ok(run) = codec::decode_completions(b"cfuzz", data) {
        let mut again = Vec::new();
        assert!(codec::encode_run(run.iter(), &mut again).is_ok());
        assert_eq!(codec::decode_completions(b"cfuzz", &again).ok(), Some(run));
    }
    let _ = codec::decode_schema(data);
    let _ = key::parse(data);
    let _ = key::describe(data);
}

/// Writes `data` into the journal as chosen by its first byte, then reads everything.
fn plant_and_read(journal: &SledJournal, data: &[u8]) {
    if journal.raw_clear().is_err() {
        return;
    }
    let Some((&tag, rest)) = data.split_first() else {
        return;
    };
    let mut k = Vec::new();
    let planted = match tag % 5 {
        0 => {
            key::workflow("w", &mut k);
            journal.raw_insert(&k, rest)
        }
        1 => {
            key::completion_run("w", u64::from(tag), u64::from(tag), &mut k);
            journal.raw_insert(&k, rest)
        }
        2 => {
            // An arbitrary key (maybe one of the journal's) with an arbitrary value.
            journal.raw_insert(rest, rest)
        }
        3 => {
            // A good completion value under a key with an arbitrary tail.
            key::completion_prefix("w", &mut k);
            k.extend_from_slice(rest);
            let mut value = Vec::new();
            let good = Completion {
                seq: 0,
                step_id: 1,
                name: "s".into(),
                outcome: Outcome::Ok(rest.to_vec()),
                attempts: 1,
                started_ms: 0,
                ended_ms: 0,
            };
            let _ = codec::encode_run([good].iter(), &mut value);
            journal.raw_insert(&k, &value)
        }
        _ => {
            // A status-index entry for "w" (possibly without a record) next to a record.
            let status = Status::ALL[usize::from(tag / 5) % 4];
            key::status(status, "w", &mut k);
            let _ = journal.raw_insert(&k, &[]);
            key::workflow("w", &mut k);
            journal.raw_insert(&k, rest)
        }
    };
    if planted.is_err() {
        return;
    }
    let _ = journal.workflow("w");
    let _ = journal.completions("w");
    let _ = journal.workflows(None);
    for status in Status::ALL {
        let _ = journal.workflows(Some(status));
    }
    match key::parse(rest) {
        Ok(Key::Workflow(id) | Key::Completions { id, .. } | Key::Status { id, .. }) => {
            let _ = journal.workflow(id);
            let _ = journal.completions(id);
        }
        Ok(Key::Type(fingerprint)) => {
            let _ = journal.type_name(fingerprint);
        }
        Ok(Key::Schema | Key::Commits) | Err(_) => {}
    }
}

/// The raw key of workflow `id`'s record.
pub fn workflow_key(id: &str) -> Vec<u8> {
    let mut k = Vec::new();
    key::workflow(id, &mut k);
    k
}

/// The raw key of a run holding only completion `seq` of workflow `id`.
pub fn completion_key(id: &str, seq: u64) -> Vec<u8> {
    run_key(id, seq, seq)
}

/// The raw key of the run of completions `first..=last` of workflow `id`.
pub fn run_key(id: &str, first: u64, last: u64) -> Vec<u8> {
    let mut k = Vec::new();
    key::completion_run(id, first, last, &mut k);
    k
}

/// The raw key of workflow `id`'s status-index entry for `status`.
pub fn status_key(status: Status, id: &str) -> Vec<u8> {
    let mut k = Vec::new();
    key::status(status, id, &mut k);
    k
}

/// The raw key of the schema version.
pub fn schema_key() -> &'static [u8] {
    key::SCHEMA
}

/// The stored bytes of a run of one completion (version byte included).
pub fn encode_completion(c: &Completion) -> Vec<u8> {
    encode_run(std::slice::from_ref(c))
}

/// The stored bytes of a run of completions (version byte included).
pub fn encode_run(run: &[Completion]) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = codec::encode_run(run.iter(), &mut v);
    v
}

/// The stored bytes of a workflow record (version byte included).
pub fn encode_workflow(rec: &crate::WorkflowRecord) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = codec::encode_workflow(rec, &mut v);
    v
}
