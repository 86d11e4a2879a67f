//! How user values (inputs, outputs, step outcomes) become journal bytes and back.
//!
//! Each value is its type's [fingerprint](crate::fingerprint) (8 bytes, little-endian)
//! followed by bincode 2 through serde, with its standard (varint) configuration.
//! Decoding checks the fingerprint first, then demands that every byte is consumed:
//! trailing bytes mean the recorded value was written as another type, and a silently
//! wrong value is worse than an error.

use ordo_journal::Store;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::fingerprint::{self, TypeKey};

/// The one bincode configuration every value in the journal uses. The limit keeps a
/// garbled length prefix from asking for gigabytes.
const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 1 << 30 }>,
> = bincode::config::standard().with_limit::<{ 1 << 30 }>();

/// Bytes of the fingerprint before each value.
const FINGERPRINT_LEN: usize = 8;

/// Why recorded bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The value was recorded with another type's fingerprint.
    Mismatch { recorded: u64 },
    /// The bytes are not a value of the type (truncated, garbled, trailing bytes).
    Garbled(String),
}

/// Encodes `value`, of the type `key` names, or says why it could not be.
pub(crate) fn encode<T: Serialize + ?Sized>(key: TypeKey, value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(FINGERPRINT_LEN + 8);
    out.extend_from_slice(&key.fingerprint.to_le_bytes());
    bincode::serde::encode_into_std_write(value, &mut out, CONFIG).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes `bytes` as a `T` (whose fingerprint is `key`), consuming all of them.
pub(crate) fn decode<T: DeserializeOwned>(key: TypeKey, bytes: &[u8]) -> Result<T, DecodeError> {
    let Some(recorded) = fingerprint_of(bytes) else {
        return Err(DecodeError::Garbled(format!(
            "{} bytes, too short for a type fingerprint",
            bytes.len()
        )));
    };
    if recorded != key.fingerprint {
        return Err(DecodeError::Mismatch { recorded });
    }
    let body = &bytes[FINGERPRINT_LEN..];
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(body, CONFIG)
        .map_err(|e| DecodeError::Garbled(e.to_string()))?;
    if used != body.len() {
        return Err(DecodeError::Garbled(format!(
            "{} trailing bytes after the value ({} of {} bytes used)",
            body.len() - used,
            used,
            body.len()
        )));
    }
    Ok(value)
}

/// Decodes a workflow's final outcome (or a step's) as `Result<O, E>`: the `Ok` bytes as
/// an `O`, the `Err` bytes as an `E`. On failure, the type it was read as, and why.
pub(crate) fn decode_result<O: DeserializeOwned + 'static, E: DeserializeOwned + 'static>(
    outcome: &ordo_journal::Outcome,
) -> Result<Result<O, E>, (TypeKey, DecodeError)> {
    match outcome {
        ordo_journal::Outcome::Ok(bytes) => {
            let key = fingerprint::of::<O>();
            decode::<O>(key, bytes).map(Ok).map_err(|err| (key, err))
        }
        ordo_journal::Outcome::Err(bytes) => {
            let key = fingerprint::of::<E>();
            decode::<E>(key, bytes).map(Err).map_err(|err| (key, err))
        }
    }
}

/// The fingerprint recorded before a value, if the bytes are long enough to hold one.
pub(crate) fn fingerprint_of(bytes: &[u8]) -> Option<u64> {
    let prefix: [u8; FINGERPRINT_LEN] = bytes.get(..FINGERPRINT_LEN)?.try_into().ok()?;
    Some(u64::from_le_bytes(prefix))
}

/// The [`Error::TypeMismatch`] for a value of workflow `workflow_id` (`what` says which)
/// that did not decode as the type `expected`, naming the recorded type: from this
/// process if it knows the fingerprint, else from the journal's type table.
pub(crate) fn type_error(
    store: &dyn Store,
    workflow_id: &str,
    what: String,
    expected: TypeKey,
    err: DecodeError,
) -> Error {
    mismatch(Some(store), workflow_id, what, expected, err)
}

/// [`type_error`] for a value read where no journal is at hand (a client's thread):
/// the recorded type is named if this thread knows its fingerprint.
pub(crate) fn type_error_here(
    workflow_id: &str,
    what: String,
    expected: TypeKey,
    err: DecodeError,
) -> Error {
    mismatch(None, workflow_id, what, expected, err)
}

fn mismatch(
    store: Option<&dyn Store>,
    workflow_id: &str,
    what: String,
    expected: TypeKey,
    err: DecodeError,
) -> Error {
    let (recorded, detail) = match err {
        DecodeError::Mismatch { recorded } => {
            let name = fingerprint::known_name(recorded)
                .map(str::to_owned)
                .or_else(|| store.and_then(|s| s.type_name(recorded).ok().flatten()))
                .unwrap_or_else(|| format!("an unknown type (fingerprint {recorded:016x})"));
            (name, "the type fingerprints differ".to_string())
        }
        DecodeError::Garbled(detail) => (expected.name.to_string(), detail),
    };
    Error::TypeMismatch {
        workflow_id: workflow_id.to_string(),
        what,
        expected: expected.name,
        recorded,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes_are_refused() {
        let key = fingerprint::of::<(u32, String)>();
        let bytes = encode(key, &(7u32, "seven".to_string())).expect("encodes");
        let back: (u32, String) = decode(key, &bytes).expect("decodes");
        assert_eq!(back, (7, "seven".to_string()));
        // A u8 decodes from the first byte but leaves the rest: refused, not truncated.
        let mut as_u8 = bytes.clone();
        as_u8[..8].copy_from_slice(&fingerprint::of::<u8>().fingerprint.to_le_bytes());
        assert!(matches!(
            decode::<u8>(fingerprint::of::<u8>(), &as_u8),
            Err(DecodeError::Garbled(_))
        ));
    }

    #[test]
    fn a_value_read_as_another_type_is_a_mismatch_not_a_wrong_value() {
        let bytes = encode(fingerprint::of::<u32>(), &0u32).expect("encodes");
        // Without fingerprints, bincode reads 0u32 as "" and as false.
        assert_eq!(
            decode::<String>(fingerprint::of::<String>(), &bytes),
            Err(DecodeError::Mismatch {
                recorded: fingerprint::of::<u32>().fingerprint
            })
        );
        assert!(decode::<bool>(fingerprint::of::<bool>(), &bytes).is_err());
        assert!(decode::<u32>(fingerprint::of::<u32>(), &bytes[..3]).is_err());
    }
}
