//! The body of the `journal_decode` fuzz target, and key builders for tests that plant
//! bad records. Hidden: not part of the stable API.

use std::cell::RefCell;

use crate::codec;
use crate::key::{self, Key};
use crate::record::{Completion, Outcome, Status};
use crate::sled::SledJournal;
use crate::store::Store;
use crate::Error;

thread_local! {
    /// One temporary journal per thread, cleared for every input: opening sled per input
    /// would dominate the fuzzer's time.
    static JOURNAL: RefCell<Option<SledJournal>> = const { RefCell::new(None) };
}

/// What the decoders did with one input, so seeded tests can check the inputs reach them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeReport {
    /// Values (the input, or the input after its tag byte) that decoded as a record and
    /// re-encoded to the same bytes.
    pub decoded: usize,
    /// Values with the right format byte that the decoder itself rejected as corrupt.
    pub corrupt: usize,
    /// Values refused for their format byte, before decoding.
    pub wrong_version: usize,
}

/// Feeds `data` to every decoder, then writes it under journal keys of a temporary
/// journal and reads it back through [`Store`]. Every path must return a value or a typed
/// error naming the key; a panic is a bug. A value that decodes must re-encode to the
/// very bytes it was decoded from.
pub fn journal_decode(data: &[u8]) {
    journal_decode_report(data);
}

/// [`journal_decode`], reporting what the decoders did.
pub fn journal_decode_report(data: &[u8]) -> DecodeReport {
    let mut report = DecodeReport::default();
    decode_everything(data, &mut report);
    // The first byte picks where the rest is planted: decode the rest on its own too, so
    // a valid value after a tag reaches the decoders.
    if let Some((_, rest)) = data.split_first() {
        decode_everything(rest, &mut report);
    }
    JOURNAL.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = SledJournal::temporary().ok();
        }
        if let Some(journal) = cell.as_ref() {
            plant_and_read(journal, data);
        }
    });
    report
}

/// Asserts that `err` is what a bad stored value must give: `Corrupt` or
/// `UnsupportedVersion`, naming `key`; counts it.
fn check_rejection(err: &Error, key: &[u8], report: &mut DecodeReport) {
    let named = key::describe(key);
    match err {
        Error::Corrupt { key: k, .. } => {
            assert_eq!(*k, named, "a corrupt value names its key");
            report.corrupt += 1;
        }
        Error::UnsupportedVersion { what, .. } => {
            assert!(what.contains(&named), "{what:?} names {named}");
            report.wrong_version += 1;
        }
        other => panic!("a bad value under {named} gave {other:?}"),
    }
}

/// Decodes `data` as each stored value and key.
fn decode_everything(data: &[u8], report: &mut DecodeReport) {
    let workflow_key = b"wfuzz";
    match codec::decode_workflow(workflow_key, "fuzz", data) {
        // bincode accepts a varint written longer than needed ([251, 0, 0] is 0), so a
        // decoded value need not re-encode to the same bytes; it must re-encode to bytes
        // that decode to the same value.
        Ok(rec) => {
            let mut again = Vec::new();
            assert!(codec::encode_workflow(&rec, &mut again).is_ok());
            let back = codec::decode_workflow(workflow_key, "fuzz", &again);
            assert_eq!(
                back.ok().as_ref(),
                Some(&rec),
                "a decoded workflow round-trips"
            );
            report.decoded += 1;
        }
        Err(err) => check_rejection(&err, workflow_key, report),
    }
    let run_key = b"cfuzz";
    match codec::decode_completions(run_key, data) {
        Ok(run) => {
            let mut again = Vec::new();
            assert!(codec::encode_run(run.iter(), &mut again).is_ok());
            let back = codec::decode_completions(run_key, &again);
            assert_eq!(back.ok().as_ref(), Some(&run), "a decoded run round-trips");
            report.decoded += 1;
        }
        Err(err) => check_rejection(&err, run_key, report),
    }
    // Not counted in `report`, which tells what reached the record decoders.
    let uncounted = &mut DecodeReport::default();
    let group_key = crate::start_group::key(0);
    match crate::start_group::members(&group_key, data) {
        // A group that parses is rebuilt from its members byte for byte.
        Ok(members) => {
            let mut again = Vec::new();
            for (id, record) in &members {
                crate::start_group::push_member(id, record, &mut again);
            }
            assert_eq!(again, data, "a parsed start group round-trips");
            for (id, _) in members {
                if let Err(err) = crate::start_group::find(&group_key, data, id) {
                    check_rejection(&err, &group_key, uncounted);
                }
            }
        }
        Err(err) => check_rejection(&err, &group_key, uncounted),
    }
    if let Err(err) = codec::decode_schema(data) {
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    }
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
    // Tag 4's status-index entry: a queued record reads its start mark from a `Pending`
    // entry, so a bad entry there is what a read of the record names.
    let mut index_key = Vec::new();
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
            key::status(status, "w", &mut index_key);
            let _ = journal.raw_insert(&index_key, &[]);
            key::workflow("w", &mut k);
            journal.raw_insert(&k, rest)
        }
    };
    if planted.is_err() {
        return;
    }
    // Reads of planted garbage give a value or a typed error, never another kind.
    let typed = |err: Error| {
        assert!(
            matches!(
                err,
                Error::Corrupt { .. } | Error::UnsupportedVersion { .. }
            ),
            "{err:?}"
        );
    };
    let mut ignored = DecodeReport::default();
    match journal.workflow("w") {
        // Tag 0 planted `rest` as the record of "w": what reads back is what `rest`
        // decodes to (bytes may differ: bincode accepts over-long varints).
        Ok(Some(rec)) if tag % 5 == 0 || tag % 5 == 4 => {
            let decoded = codec::decode_workflow(&k, "w", rest);
            assert_eq!(decoded.ok().as_ref(), Some(&rec));
        }
        Ok(_) => {}
        Err(err) if tag % 5 == 0 => check_rejection(&err, &k, &mut ignored),
        Err(err) if tag % 5 == 4 => match &err {
            Error::Corrupt { key: named, .. } if *named == key::describe(&index_key) => {}
            _ => check_rejection(&err, &k, &mut ignored),
        },
        Err(err) => typed(err),
    }
    if let Err(err) = journal.completions("w") {
        typed(err);
    }
    if let Err(err) = journal.workflows(None) {
        typed(err);
    }
    for status in Status::ALL {
        if let Err(err) = journal.workflows(Some(status)) {
            typed(err);
        }
    }
    match key::parse(rest) {
        Ok(Key::Workflow(id) | Key::Completions { id, .. } | Key::Status { id, .. }) => {
            if let Err(err) = journal.workflow(id) {
                typed(err);
            }
            if let Err(err) = journal.completions(id) {
                typed(err);
            }
        }
        Ok(Key::Type(fingerprint)) => {
            let _ = journal.type_name(fingerprint);
        }
        Ok(Key::TraceContext(id)) => {
            if let Err(err) = journal.trace_context(id) {
                typed(err);
            }
        }
        Ok(Key::Schema | Key::Commits | Key::Group(_)) | Err(_) => {}
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

/// The raw key of start group `number` (see the journal's `start_group` module).
pub fn start_group_key(number: u64) -> Vec<u8> {
    crate::start_group::key(number).to_vec()
}
