//! How user values (inputs, outputs, step outcomes) become journal bytes and back.
//!
//! bincode 2 through serde, with its standard (varint) configuration. Decoding
//! demands that every byte is consumed: trailing bytes mean the recorded value was
//! written as another type, and a silently wrong value is worse than an error.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The one bincode configuration every value in the journal uses. The limit keeps a
/// garbled length prefix from asking for gigabytes.
const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 1 << 30 }>,
> = bincode::config::standard().with_limit::<{ 1 << 30 }>();

/// Encodes `value`, or says why it could not be.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, CONFIG).map_err(|e| e.to_string())
}

/// Decodes `bytes` as a `T`, consuming all of them.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used) =
        bincode::serde::decode_from_slice::<T, _>(bytes, CONFIG).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the value ({} of {} bytes used)",
            bytes.len() - used,
            used,
            bytes.len()
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes_are_refused() {
        let bytes = encode(&(7u32, "seven".to_string())).expect("encodes");
        let back: (u32, String) = decode(&bytes).expect("decodes");
        assert_eq!(back, (7, "seven".to_string()));
        // A u8 decodes from the first byte but leaves the rest: refused, not truncated.
        assert!(decode::<u8>(&bytes).is_err());
    }
}
