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
pub const FORMAT_VERSION: u8 = 1;

/// The journal schema (key layout) this build reads and writes, stored under
/// `meta/schema` and checked at open.
pub const SCHEMA_VERSION: u32 = 1;

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

/// [`WorkflowRecord`] on the wire, without the id (it is the key).
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

/// [`Completion`] on the wire, without workflow id and seq (they are the key).
#[derive(Serialize, Deserialize)]
struct CompletionWire<'a> {
    step_id: u64,
    name: &'a str,
    #[serde(borrow)]
    outcome: OutcomeWire<'a>,
    attempts: u32,
    started_ms: u64,
    ended_ms: u64,
}

/// Encodes `value` after the version byte into `out` (cleared first).
fn encode(value: &impl Serialize, out: &mut Vec<u8>) -> Result<(), Error> {
    out.clear();
    out.push(FORMAT_VERSION);
    bincode::serde::encode_into_std_write(value, out, CONFIG)
        .map(drop)
        .map_err(|e| Error::Storage(format!("encoding a journal record failed: {e}")))
}

/// Decodes a value stored under `key`: checks the version byte, decodes the rest and
/// requires it to be consumed exactly.
fn decode<'v, T: Deserialize<'v>>(key: &[u8], value: &'v [u8]) -> Result<T, Error> {
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
    if used != body.len() {
        return Err(corrupt(
            key,
            format!("{} trailing bytes after the value", body.len() - used),
        ));
    }
    Ok(decoded)
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
    encode(&wire, out)
}

/// Decodes the value stored under `key` as the record of workflow `id`.
pub(crate) fn decode_workflow(key: &[u8], id: &str, value: &[u8]) -> Result<WorkflowRecord, Error> {
    let wire: WorkflowWire<'_> = decode(key, value)?;
    Ok(WorkflowRecord {
        id: id.to_owned(),
        name: wire.name.to_owned(),
        input: wire.input.0.to_vec(),
        status: wire.status,
        output: wire.output.as_ref().map(OutcomeWire::to_owned),
        created_ms: wire.created_ms,
        updated_ms: wire.updated_ms,
        recovery_attempts: wire.recovery_attempts,
    })
}

/// Encodes a completion's value into `out`.
pub(crate) fn encode_completion(c: &Completion, out: &mut Vec<u8>) -> Result<(), Error> {
    let wire = CompletionWire {
        step_id: c.step_id,
        name: &c.name,
        outcome: OutcomeWire::of(&c.outcome),
        attempts: c.attempts,
        started_ms: c.started_ms,
        ended_ms: c.ended_ms,
    };
    encode(&wire, out)
}

/// Decodes the value stored under `key` as completion `seq`.
pub(crate) fn decode_completion(key: &[u8], seq: u64, value: &[u8]) -> Result<Completion, Error> {
    let wire: CompletionWire<'_> = decode(key, value)?;
    Ok(Completion {
        seq,
        step_id: wire.step_id,
        name: wire.name.to_owned(),
        outcome: wire.outcome.to_owned(),
        attempts: wire.attempts,
        started_ms: wire.started_ms,
        ended_ms: wire.ended_ms,
    })
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

    fn completion() -> Completion {
        Completion {
            seq: 9,
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
        // version, step_id 0, then a name whose varint length claims u64::MAX bytes.
        let mut value = vec![FORMAT_VERSION, 0, 253];
        value.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = decode_completion(b"k", 0, &value).err();
        assert!(matches!(err, Some(Error::Corrupt { .. })), "{err:?}");
    }

    #[test]
    fn every_proper_prefix_of_a_value_is_corrupt_and_trailing_bytes_too() {
        let mut value = Vec::new();
        encode_completion(&completion(), &mut value).expect("encode");
        assert_eq!(decode_completion(b"k", 9, &value).ok(), Some(completion()));
        for len in 0..value.len() {
            let err = decode_completion(b"k", 9, &value[..len]).err();
            assert!(
                matches!(err, Some(Error::Corrupt { .. })),
                "prefix {len}: {err:?}"
            );
        }
        value.push(0);
        let err = decode_completion(b"k", 9, &value)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("corrupt journal record at 0x6b: 1 trailing bytes after the value")
        );
    }
}
