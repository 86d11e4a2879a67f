//! Values on disk: a format-version byte, then bincode 2 (serde, standard config).
//!
//! Decoding goes through borrowed "wire" structs whose strings and byte fields point
//! into the stored value. That is faster (one copy into the owned record, no
//! element-by-element byte decoding) and, more importantly, safe on garbage: a borrowed
//! field's length is checked against the bytes actually present before anything is
//! allocated, whereas decoding an owned `String` would first allocate whatever length a
//! corrupt prefix claims. Trailing bytes after a complete value are an error too: a value
//! that decodes but does not end where it should is not trusted.

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::key;
use crate::record::{Completion, Outcome, Status, WorkflowRecord};
use crate::Error;

/// The format of every value this build writes; the first byte of each value.
///
/// ```
/// // Every stored value starts with this byte; a record with another one is refused
/// // with `Error::UnsupportedVersion` naming its key.
/// assert_eq!(ordo_journal::FORMAT_VERSION, 1);
/// ```
pub const FORMAT_VERSION: u8 = 1;

/// The journal schema (key layout) this build reads and writes, stored under
/// `meta/schema` and checked at open.
///
/// ```
/// // Checked when a journal is opened: a journal written with a newer schema is refused.
/// assert_eq!(ordo_journal::SCHEMA_VERSION, 10);
/// ```
///
/// Version 10 keeps the records of a commit's direct starts in *start groups*, up to
/// 4 KiB of records to one sled entry, rather than each in a `Pending` index entry of
/// its own (see the journal's `start_group` module): sled costs about five microseconds
/// per new key, more than the rest of a start. A group member moves out to a record or
/// an index entry of its own with the first commit that writes anything else for it (its
/// end, say), and a group goes with its last member. Journals of versions 2 to 9 still
/// open as they are (they have no groups); opening one for writing marks it version 10,
/// so an older build, which would miss every grouped workflow, refuses it instead.
///
/// Version 9 added two fields after the deadline: the id of the first step of the
/// workflow's current run ([`WorkflowRecord::first_step`]: a run that continues as new
/// hands its step numbering on, so the next run's steps, and the children and awakeable
/// tokens named after them, never reuse an earlier run's ids), and whether its awakeable
/// tokens are tagged with the journal's [`TokenKey`](crate::TokenKey)
/// ([`WorkflowRecord::keyed_tokens`]), which the journal keeps from then on. Journals of
/// versions 2 to 8 still open: their records end before both, number their steps from 0
/// and keep plain tokens, as those versions did; opening one for writing marks it
/// version 9 and draws its token key (no record is rewritten), so an older build, which
/// would take the new fields for trailing garbage, refuses it instead.
///
/// Version 8 keeps the record of a workflow enqueued into a queue in its `Pending`
/// status-index entry, next to its queue entry and (once it started) its start mark,
/// until a record of its own is written (its end, say): an enqueue is one sled write,
/// where it was two, so a workflow's life through a queue costs the five writes a
/// direct start costs (record and entry at the start, a run per step, record and
/// entry's removal at the end) and not six. A read of a workflow without a record of
/// its own reads the one its entry holds. Journals of versions 2 to 7 still open as they
/// are (their queued workflows have records of their own, which are read first); an older
/// build refuses a version 8 journal rather than missing its queued workflows.
///
/// Version 7 dropped the status-index entries of `Succeeded` workflows: a workflow's end
/// writes its record and removes its `Pending` entry, and no longer writes an entry for
/// the status nearly every workflow ends with (one sled write in six of a one-step
/// workflow's life); the sled store lists `Succeeded` by reading the workflow records.
/// `Pending`, `Failed` and `Cancelled` keep their entries: they are looked for among
/// many others. Journals of versions 2 to 6 still open; opening one for writing removes
/// their `Succeeded` entries after the version write, 10,000 per sled batch (there may be
/// millions; a crash in between leaves the rest to the next writable open), and a
/// read-only open ignores them.
///
/// Version 6 keeps a queued workflow's queue entry (the queue record under
/// [`queue::ENTRY`](crate::queue::ENTRY) and its id) in its `Pending` status-index entry,
/// next to its start mark, instead of as a record of its own: one sled entry written at
/// the enqueue, rewritten by the start and removed by the end, where there were two
/// (the entry's removal at the end was a sled write more than a direct start costs).
/// Journals of versions 2 to 5 still open; opening one for writing moves the entries of
/// workflows still queued or running there, with the version write (those of ended
/// workflows stay records, which the runtime removes when it loads its queues). A read-only
/// open reads the entries where they are.
///
/// Version 5 dropped the status-index entries of `Enqueued` and `Delayed` workflows
/// (a queued workflow's record changes status on its way to `Pending`; the index
/// entries cost two sled writes per queued workflow): the sled store lists those two
/// statuses by reading the workflow records. And a queued workflow's start no longer
/// rewrites its record: its `Pending` index entry holds the start time and marks the
/// record started ([`Batch::start_queued`](crate::Batch::start_queued)), which reads as
/// `Pending` from then on. Journals of versions 2 to 4 still open;
/// opening one for writing removes their entries of those two statuses together with
/// the version write (a read-only open ignores them).
///
/// Version 4 added the workflow's deadline after the application version
/// ([`WorkflowRecord::deadline_ms`]). Journals of versions 2 and 3 still open: their
/// records end before it and read as having no deadline; opening one for writing marks
/// it version 4 (no record is rewritten), for the reason given for version 3 below.
///
/// Version 3 added the application version at the end of workflow records
/// ([`WorkflowRecord::app_version`]). A version 2 journal still opens: its records end
/// before that field and read as `None`; opening it for writing marked it version 3 (no
/// record is rewritten), so an older build, which would take the new field for trailing
/// garbage, refuses it instead of misreading it.
///
/// Version 2 added the seal and its commit counter, and the type fingerprints the runtime
/// puts before every value; a version 1 journal is refused with
/// [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion) saying it was written by
/// an older ordo.
pub const SCHEMA_VERSION: u32 = 10;

/// The first schema version without status-index entries for `Enqueued` and `Delayed`.
pub(crate) const UNINDEXED_QUEUE_SCHEMA: u32 = 5;

/// The first schema version whose journals keep a token key (see `crate::token_key`).
pub(crate) const KEYED_TOKENS_SCHEMA: u32 = 9;

/// The first schema version keeping queue entries in `Pending` index entries.
pub(crate) const MARKED_ENTRY_SCHEMA: u32 = 6;

/// The oldest schema version this build opens (see [`SCHEMA_VERSION`]).
pub(crate) const OLDEST_SCHEMA_VERSION: u32 = 2;

/// bincode's standard configuration: little-endian varints.
const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// A byte field borrowed from the stored value, serialized as one length-prefixed run
/// (serde would otherwise write a slice element by element).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Borrowed;
        impl<'de> Visitor<'de> for Borrowed {
            type Value = &'de [u8];
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes borrowed from the stored value")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(v)
            }
        }
        deserializer.deserialize_bytes(Borrowed).map(Bytes)
    }
}

/// [`Outcome`] on the wire.
#[derive(Serialize, Deserialize)]
enum OutcomeWire<'a> {
    Ok(#[serde(borrow)] Bytes<'a>),
    Err(#[serde(borrow)] Bytes<'a>),
}

impl<'a> OutcomeWire<'a> {
    fn of(outcome: &'a Outcome) -> Self {
        match outcome {
            Outcome::Ok(bytes) => OutcomeWire::Ok(Bytes(bytes)),
            Outcome::Err(bytes) => OutcomeWire::Err(Bytes(bytes)),
        }
    }

    fn to_owned(&self) -> Outcome {
        match self {
            OutcomeWire::Ok(bytes) => Outcome::Ok(bytes.0.to_vec()),
            OutcomeWire::Err(bytes) => Outcome::Err(bytes.0.to_vec()),
        }
    }
}

/// [`WorkflowRecord`] on the wire, without the id (it is the key): the fields of schema
/// version 2, then [`AppVersionWire`], which version 2 records do not have, then
/// [`DeadlineWire`], which version 3 records do not have, then [`FirstStepWire`], which
/// records before version 9 do not have. bincode writes a struct as its fields one after
/// the other, so a record is decoded as this struct and then, while bytes are left, as
/// the app version, the deadline, the first step and whether its tokens are keyed.
#[derive(Serialize, Deserialize)]
struct WorkflowWire<'a> {
    name: &'a str,
    #[serde(borrow)]
    input: Bytes<'a>,
    status: Status,
    #[serde(borrow)]
    output: Option<OutcomeWire<'a>>,
    created_ms: u64,
    updated_ms: u64,
    recovery_attempts: u32,
}

/// The field schema version 3 appended to workflow records (always written, `None`
/// included, by this build).
type AppVersionWire<'a> = Option<&'a str>;

/// The field schema version 4 appended to workflow records, after the app version
/// (always written, `None` included, by this build).
type DeadlineWire = Option<u64>;

/// The field schema version 9 appended to workflow records, after the deadline (always
/// written by this build).
type FirstStepWire = u64;

/// The second field schema version 9 appended, after the first step (always written by
/// this build).
type KeyedTokensWire = bool;

/// [`Completion`] on the wire, without the workflow id (it is in the key).
#[derive(Serialize, Deserialize)]
struct CompletionWire<'a> {
    seq: u64,
    step_id: u64,
    name: &'a str,
    #[serde(borrow)]
    outcome: OutcomeWire<'a>,
    attempts: u32,
    started_ms: u64,
    ended_ms: u64,
}

impl<'a> CompletionWire<'a> {
    fn of(c: &'a Completion) -> Self {
        CompletionWire {
            seq: c.seq,
            step_id: c.step_id,
            name: &c.name,
            outcome: OutcomeWire::of(&c.outcome),
            attempts: c.attempts,
            started_ms: c.started_ms,
            ended_ms: c.ended_ms,
        }
    }

    fn to_owned(&self) -> Completion {
        Completion {
            seq: self.seq,
            step_id: self.step_id,
            name: self.name.to_owned(),
            outcome: self.outcome.to_owned(),
            attempts: self.attempts,
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
        }
    }
}

/// A run of completions on the wire: a length-prefixed sequence of [`CompletionWire`],
/// serialized straight from the caller's iterator (no intermediate vector).
struct RunWire<I>(I);

impl<'a, I> Serialize for RunWire<I>
where
    I: ExactSizeIterator<Item = &'a Completion> + Clone,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.clone().map(CompletionWire::of))
    }
}

/// Encodes `value` after the version byte into `out` (cleared first).
fn encode(value: &impl Serialize, out: &mut Vec<u8>) -> Result<(), Error> {
    out.clear();
    out.push(FORMAT_VERSION);
    bincode::serde::encode_into_std_write(value, out, CONFIG)
        .map(drop)
        .map_err(|e| Error::Storage(format!("encoding a journal record failed: {e}")))
}

/// Encodes a value of another module's record kind (see [`encode`]).
pub(crate) fn encode_value(value: &impl Serialize, out: &mut Vec<u8>) -> Result<(), Error> {
    encode(value, out)
}

/// Decodes a value of another module's record kind (see [`decode`]).
pub(crate) fn decode_value<'v, T: Deserialize<'v>>(
    key: &[u8],
    value: &'v [u8],
) -> Result<T, Error> {
    decode(key, value)
}

/// Decodes a value stored under `key`: checks the version byte, decodes the rest and
/// requires it to be consumed exactly.
fn decode<'v, T: Deserialize<'v>>(key: &[u8], value: &'v [u8]) -> Result<T, Error> {
    let (decoded, rest) = decode_prefix(key, value)?;
    if !rest.is_empty() {
        return Err(corrupt(
            key,
            format!("{} trailing bytes after the value", rest.len()),
        ));
    }
    Ok(decoded)
}

/// Decodes the start of a value stored under `key` (after checking its version byte) as
/// a `T`, and returns it with the bytes left after it.
fn decode_prefix<'v, T: Deserialize<'v>>(
    key: &[u8],
    value: &'v [u8],
) -> Result<(T, &'v [u8]), Error> {
    let Some((&version, body)) = value.split_first() else {
        return Err(corrupt(key, "empty value".to_owned()));
    };
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            what: format!("record format at {}", key::describe(key)),
            found: u32::from(version),
            supported: u32::from(FORMAT_VERSION),
        });
    }
    let (decoded, used) = bincode::serde::borrow_decode_from_slice::<T, _>(body, CONFIG)
        .map_err(|e| corrupt(key, format!("undecodable value: {e}")))?;
    Ok((decoded, &body[used..]))
}

/// A [`Error::Corrupt`] naming `key`.
pub(crate) fn corrupt(key: &[u8], reason: String) -> Error {
    Error::Corrupt {
        key: key::describe(key),
        reason,
    }
}

/// Encodes a workflow record's value into `out`.
pub(crate) fn encode_workflow(rec: &WorkflowRecord, out: &mut Vec<u8>) -> Result<(), Error> {
    let wire = WorkflowWire {
        name: &rec.name,
        input: Bytes(&rec.input),
        status: rec.status,
        output: rec.output.as_ref().map(OutcomeWire::of),
        created_ms: rec.created_ms,
        updated_ms: rec.updated_ms,
        recovery_attempts: rec.recovery_attempts,
    };
    let app_version: AppVersionWire<'_> = rec.app_version.as_deref();
    let deadline: DeadlineWire = rec.deadline_ms;
    let first_step: FirstStepWire = rec.first_step;
    let keyed: KeyedTokensWire = rec.keyed_tokens;
    encode(&(wire, app_version, deadline, first_step, keyed), out)
}

/// Decodes the value stored under `key` as the record of workflow `id`. A record that
/// ends before the app version (written under schema version 2) has none; one that ends
/// before the deadline (schema version 3) has none; one that ends before the first step
/// (versions before 9) numbers its steps from 0 and has plain tokens.
pub(crate) fn decode_workflow(key: &[u8], id: &str, value: &[u8]) -> Result<WorkflowRecord, Error> {
    let (wire, rest): (WorkflowWire<'_>, _) = decode_prefix(key, value)?;
    let (app_version, rest) = decode_appended::<AppVersionWire<'_>>(key, rest, "app version")?;
    let (deadline_ms, rest) = decode_appended::<DeadlineWire>(key, rest, "deadline")?;
    let (first_step, rest) = decode_appended::<FirstStepWire>(key, rest, "first step")?;
    let (keyed_tokens, rest) = match first_step {
        // Both fields came with version 9: a record with the one has the other.
        Some(_) => match decode_appended::<KeyedTokensWire>(key, rest, "token kind")? {
            (Some(keyed), rest) => (keyed, rest),
            (None, _) => return Err(corrupt(key, "the record ends before its token kind".into())),
        },
        None => (false, rest),
    };
    if !rest.is_empty() {
        return Err(corrupt(
            key,
            format!("{} trailing bytes after the value", rest.len()),
        ));
    }
    let app_version = app_version.flatten().map(str::to_owned);
    let deadline_ms = deadline_ms.flatten();
    Ok(WorkflowRecord {
        id: id.to_owned(),
        name: wire.name.to_owned(),
        input: wire.input.0.to_vec(),
        status: wire.status,
        output: wire.output.as_ref().map(OutcomeWire::to_owned),
        created_ms: wire.created_ms,
        updated_ms: wire.updated_ms,
        recovery_attempts: wire.recovery_attempts,
        app_version,
        deadline_ms,
        first_step: first_step.unwrap_or(0),
        keyed_tokens,
    })
}

/// Decodes a field a later schema version appended to a record (`what` names it in
/// errors), from `rest`, the bytes left after the fields before it: `None` when the
/// record ends before it (an older schema's), else the field and the bytes after it.
fn decode_appended<'v, T: Deserialize<'v>>(
    key: &[u8],
    rest: &'v [u8],
    what: &str,
) -> Result<(Option<T>, &'v [u8]), Error> {
    if rest.is_empty() {
        return Ok((None, rest));
    }
    let (field, used) = bincode::serde::borrow_decode_from_slice::<T, _>(rest, CONFIG)
        .map_err(|e| corrupt(key, format!("undecodable {what}: {e}")))?;
    Ok((Some(field), &rest[used..]))
}

/// Encodes a run of completions (seqs strictly increasing, checked by the caller) into
/// `out`.
pub(crate) fn encode_run<'a, I>(completions: I, out: &mut Vec<u8>) -> Result<(), Error>
where
    I: ExactSizeIterator<Item = &'a Completion> + Clone,
{
    encode(&RunWire(completions), out)
}

/// Decodes the run of completions stored under `key`, whose seqs must strictly
/// increase.
pub(crate) fn decode_completions(key: &[u8], value: &[u8]) -> Result<Vec<Completion>, Error> {
    let run: Vec<CompletionWire<'_>> = decode(key, value)?;
    if let Some(pair) = run.windows(2).find(|pair| pair[0].seq >= pair[1].seq) {
        let reason = format!(
            "seq {} follows seq {} inside the run",
            pair[1].seq, pair[0].seq
        );
        return Err(corrupt(key, reason));
    }
    Ok(run.iter().map(CompletionWire::to_owned).collect())
}

/// Decodes the run stored under `key`, which says it holds seqs `first..=last`, and
/// appends its completions to `out` (nothing is appended on error).
///
/// The seqs inside must agree with the key and strictly increase; a run that decodes but
/// disagrees is corrupt, not trusted.
pub(crate) fn decode_run(
    key: &[u8],
    first: u64,
    last: u64,
    value: &[u8],
    out: &mut Vec<Completion>,
) -> Result<(), Error> {
    let run = decode_completions(key, value)?;
    let (Some(head), Some(tail)) = (run.first(), run.last()) else {
        return Err(corrupt(key, "empty completion run".to_owned()));
    };
    if head.seq != first || tail.seq != last {
        let reason = format!(
            "run holds seqs {}..={} but its key says {first}..={last}",
            head.seq, tail.seq
        );
        return Err(corrupt(key, reason));
    }
    out.extend(run);
    Ok(())
}

/// Encodes a type name's value into `out`.
pub(crate) fn encode_type_name(name: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    encode(&name, out)
}

/// Decodes the type name stored under `key`.
pub(crate) fn decode_type_name(key: &[u8], value: &[u8]) -> Result<String, Error> {
    decode::<&str>(key, value).map(str::to_owned)
}

/// Encodes a trace context's value (a `traceparent` string) into `out`.
pub(crate) fn encode_trace_context(traceparent: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    encode(&traceparent, out)
}

/// Decodes the trace context stored under `key`.
pub(crate) fn decode_trace_context(key: &[u8], value: &[u8]) -> Result<String, Error> {
    decode::<&str>(key, value).map(str::to_owned)
}

/// The stored form of the schema version.
pub(crate) fn encode_schema(version: u32) -> [u8; 4] {
    version.to_be_bytes()
}

/// Reads the schema version stored under `meta/schema`.
pub(crate) fn decode_schema(value: &[u8]) -> Result<u32, Error> {
    let bytes: [u8; 4] = value.try_into().map_err(|_| {
        corrupt(
            key::SCHEMA,
            format!("schema version is {} bytes, not 4", value.len()),
        )
    })?;
    Ok(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(seq: u64) -> Completion {
        Completion {
            seq,
            step_id: 3,
            name: "charge".into(),
            outcome: Outcome::Err(b"declined".to_vec()),
            attempts: 2,
            started_ms: 1_700_000_000_000,
            ended_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn a_huge_claimed_length_is_corrupt_not_an_allocation() {
        // version, a run of one, seq 0, step_id 0, then a name whose varint length
        // claims u64::MAX bytes.
        let mut value = vec![FORMAT_VERSION, 1, 0, 0, 253];
        value.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = decode_run(b"k", 0, 0, &value, &mut Vec::new()).err();
        assert!(matches!(err, Some(Error::Corrupt { .. })), "{err:?}");
        // A run claiming 2^64-1 completions, with the bytes of none.
        let mut value = vec![FORMAT_VERSION, 253];
        value.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = decode_run(b"k", 0, 0, &value, &mut Vec::new()).err();
        assert!(matches!(err, Some(Error::Corrupt { .. })), "{err:?}");
    }

    #[test]
    fn every_proper_prefix_of_a_value_is_corrupt_and_trailing_bytes_too() {
        let run = [completion(9), completion(10)];
        let mut value = Vec::new();
        encode_run(run.iter(), &mut value).expect("encode");
        let mut out = Vec::new();
        decode_run(b"k", 9, 10, &value, &mut out).expect("decode");
        assert_eq!(out, run);
        for len in 0..value.len() {
            let err = decode_run(b"k", 9, 10, &value[..len], &mut out).err();
            assert!(
                matches!(err, Some(Error::Corrupt { .. })),
                "prefix {len}: {err:?}"
            );
        }
        value.push(0);
        let err = decode_run(b"k", 9, 10, &value, &mut out)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("corrupt journal record at 0x6b: 1 trailing bytes after the value")
        );
        assert_eq!(out.len(), 2, "nothing appended on error");
    }

    #[test]
    fn a_run_that_disagrees_with_its_key_or_itself_is_corrupt() {
        let mut value = Vec::new();
        encode_run([completion(9), completion(9)].iter(), &mut value).expect("encode");
        let err = decode_run(b"k", 9, 9, &value, &mut Vec::new())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("corrupt journal record at 0x6b: seq 9 follows seq 9 inside the run")
        );
        encode_run([completion(9)].iter(), &mut value).expect("encode");
        let err = decode_run(b"k", 8, 9, &value, &mut Vec::new())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("corrupt journal record at 0x6b: run holds seqs 9..=9 but its key says 8..=9")
        );
    }
}
