//! The queue records the runtime keeps in the journal (its `u` kind), and their keys.
//!
//! | record | key | value |
//! |---|---|---|
//! | a workflow's place in its queue | `e` workflow id ([`ordo_journal::queue::ENTRY`]) | [`Entry`] |
//! | a rate limiter's window | `r` queue `\0` partition | start times (ms), oldest first |
//! | a deduplication id in use | `d` queue `\0` dedup id | workflow id |
//! | a schedule's last tick | `s` schedule name | tick time (ms) |
//! | a debounced call | `b` workflow name `\0` key | [`Debounced`] |
//! | a debounced call fired, its start not yet committed (shared journals) | `f` workflow name `\0` workflow id | [`Debounced`] |
//!
//! Values are bincode (serde). A record that does not decode is a typed
//! [`Journal`](crate::Error::Journal) corruption error naming its key.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The journal's own kind of queue record: a store may keep it with its workflow.
pub(crate) const ENTRY: u8 = ordo_journal::queue::ENTRY;
pub(crate) const WINDOW: u8 = b'r';
pub(crate) const DEDUP: u8 = b'd';
pub(crate) const TICK: u8 = b's';
pub(crate) const DEBOUNCE: u8 = b'b';
pub(crate) const FIRED: u8 = b'f';

/// A workflow's place in its queue, kept from its enqueue to its end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) queue: String,
    /// `""` in a queue without partitions.
    pub(crate) partition: String,
    pub(crate) priority: u32,
    /// Enqueue order within the journal (ties between equal priorities).
    pub(crate) order: u64,
    /// Wall time (ms) before which it may not start.
    pub(crate) not_before_ms: u64,
    pub(crate) dedup: Option<String>,
}

/// A debounced call waiting for quiet: the last input, and when the first and last calls
/// came.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Debounced {
    /// The workflow id it will start under.
    pub(crate) id: String,
    pub(crate) input: Vec<u8>,
    pub(crate) first_ms: u64,
    pub(crate) last_ms: u64,
    pub(crate) quiet_ms: u64,
    pub(crate) max_wait_ms: u64,
}

impl Debounced {
    /// When it fires: after `quiet` without calls, at most `max_wait` after the first.
    pub(crate) fn fires_at(&self) -> u64 {
        self.last_ms
            .saturating_add(self.quiet_ms)
            .min(self.first_ms.saturating_add(self.max_wait_ms))
    }
}

/// The key of kind `kind` made of `parts`, `\0`-separated.
pub(crate) fn key(kind: u8, parts: &[&str]) -> Vec<u8> {
    let mut out = vec![kind];
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Room for a typical entry at once, rather than a vector grown byte by byte and
    // copied once more at the end (what `encode_to_vec` does).
    let mut out = Vec::with_capacity(64);
    // Plain structs of strings and integers into a vector: encoding cannot fail.
    match bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard()) {
        Ok(_) => out,
        Err(_) => Vec::new(),
    }
}

pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, Error> {
    match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
        Ok((value, read)) if read == bytes.len() => Ok(value),
        Ok(_) => Err(corrupt(key, "trailing bytes".into())),
        Err(err) => Err(corrupt(key, err.to_string())),
    }
}

/// The string parts of a key (after its kind byte).
pub(crate) fn parts(key: &[u8]) -> Result<Vec<String>, Error> {
    key.get(1..)
        .unwrap_or_default()
        .split(|&b| b == 0)
        .map(|part| {
            String::from_utf8(part.to_vec()).map_err(|_| corrupt(key, "key is not UTF-8".into()))
        })
        .collect()
}

pub(crate) fn corrupt(key: &[u8], reason: String) -> Error {
    ordo_journal::Error::Corrupt {
        key: format!("queue/{}", String::from_utf8_lossy(key).escape_debug()),
        reason,
    }
    .into()
}
