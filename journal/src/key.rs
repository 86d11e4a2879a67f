//! The key space: one sled tree, one leading byte per kind of record.
//!
//! Keeping every kind in one tree is what makes a commit atomic for free: a single
//! `sled::Batch` applied to a single tree is recovered all or nothing after a crash, with
//! none of the cost of a multi-tree transaction.
//!
//! | kind | key | value |
//! |---|---|---|
//! | schema version | `m` `schema` | `u32` big-endian |
//! | workflow record | `w` id | [`codec`](crate::codec) workflow value |
//! | step completion | `c` id-len (`u16` BE) id seq (`u64` BE) | [`codec`](crate::codec) completion value |
//! | status index | `s` status byte id | empty |
//!
//! Integers are big-endian so byte order is numeric order: a prefix scan of
//! `c` id-len id returns one workflow's completions in `seq` order. The id is
//! length-prefixed in completion keys so that no id's prefix is another id's prefix
//! (`"a"` and `"ab"` never share completions).

use crate::record::Status;

/// Leading byte of the meta records (the schema version).
const META: u8 = b'm';
/// Leading byte of workflow records.
const WORKFLOW: u8 = b'w';
/// Leading byte of step completions.
const COMPLETION: u8 = b'c';
/// Leading byte of status-index entries.
const STATUS: u8 = b's';

/// The key of the schema version.
pub(crate) const SCHEMA: &[u8] = b"mschema";

/// The longest workflow id a completion key can length-prefix.
pub const MAX_ID_LEN: usize = u16::MAX as usize;

/// The prefix of every workflow record, for listing all workflows.
pub(crate) const WORKFLOW_PREFIX: &[u8] = &[WORKFLOW];

/// Writes the key of workflow `id` into `out` (cleared first).
pub(crate) fn workflow(id: &str, out: &mut Vec<u8>) {
    out.clear();
    out.push(WORKFLOW);
    out.extend_from_slice(id.as_bytes());
}

/// Writes the prefix shared by all completions of workflow `id` into `out`.
///
/// The caller has checked `id.len() <= MAX_ID_LEN`; longer ids are clamped so this
/// function cannot panic, and [`check_id`] rejects them before anything is written.
pub(crate) fn completion_prefix(id: &str, out: &mut Vec<u8>) {
    let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    out.clear();
    out.push(COMPLETION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(id.as_bytes());
}

/// Writes the key of completion `seq` of workflow `id` into `out`.
pub(crate) fn completion(id: &str, seq: u64, out: &mut Vec<u8>) {
    completion_prefix(id, out);
    out.extend_from_slice(&seq.to_be_bytes());
}

/// Writes the status-index key of workflow `id` with `status` into `out`.
pub(crate) fn status(status: Status, id: &str, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&status_prefix(status));
    out.extend_from_slice(id.as_bytes());
}

/// The prefix of all status-index entries for `status`.
pub(crate) fn status_prefix(status: Status) -> [u8; 2] {
    [STATUS, status.index_byte()]
}

/// Rejects ids too long for a completion key.
pub(crate) fn check_id(id: &str) -> Result<(), crate::Error> {
    if id.len() > MAX_ID_LEN {
        return Err(crate::Error::IdTooLong {
            len: id.len(),
            max: MAX_ID_LEN,
        });
    }
    Ok(())
}

/// A key taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'a> {
    /// The schema version.
    Schema,
    /// A workflow record.
    Workflow(&'a str),
    /// A step completion.
    Completion {
        /// Its workflow.
        id: &'a str,
        /// Its delivery order.
        seq: u64,
    },
    /// A status-index entry.
    Status {
        /// The indexed status.
        status: Status,
        /// The workflow.
        id: &'a str,
    },
}

/// Parses a raw key, or says why it is not one of the journal's.
pub(crate) fn parse(key: &[u8]) -> Result<Key<'_>, &'static str> {
    let utf8 = |bytes| std::str::from_utf8(bytes).map_err(|_| "workflow id is not UTF-8");
    match key.split_first() {
        None => Err("empty key"),
        Some((&META, _)) if key == SCHEMA => Ok(Key::Schema),
        Some((&WORKFLOW, id)) => Ok(Key::Workflow(utf8(id)?)),
        Some((&COMPLETION, rest)) => {
            let (len, rest) = rest.split_first_chunk::<2>().ok_or("truncated id length")?;
            let len = usize::from(u16::from_be_bytes(*len));
            if rest.len() != len + 8 {
                return Err("completion key length does not match its id length");
            }
            let (id, seq) = rest.split_at(len);
            let seq: [u8; 8] = seq.try_into().map_err(|_| "truncated seq")?;
            Ok(Key::Completion {
                id: utf8(id)?,
                seq: u64::from_be_bytes(seq),
            })
        }
        Some((&STATUS, rest)) => {
            let (&byte, id) = rest.split_first().ok_or("truncated status byte")?;
            let status = Status::from_index_byte(byte).ok_or("unknown status byte")?;
            Ok(Key::Status {
                status,
                id: utf8(id)?,
            })
        }
        Some(_) => Err("unknown key kind"),
    }
}

/// A printable name for a raw key: `workflow/<id>`, `workflow/<id>/seq/<n>`,
/// `status/<status>/<id>`, `meta/schema`, or `0x<hex>` if it does not parse.
pub(crate) fn describe(key: &[u8]) -> String {
    match parse(key) {
        Ok(Key::Schema) => "meta/schema".to_owned(),
        Ok(Key::Workflow(id)) => format!("workflow/{}", id.escape_debug()),
        Ok(Key::Completion { id, seq }) => format!("workflow/{}/seq/{seq}", id.escape_debug()),
        Ok(Key::Status { status, id }) => format!("status/{status}/{}", id.escape_debug()),
        Err(_) => hex(key),
    }
}

/// `0x` followed by the bytes in lowercase hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_keys_sort_by_seq_and_never_share_a_prefix_across_ids() {
        let (mut a, mut b, mut ab) = (Vec::new(), Vec::new(), Vec::new());
        completion("a", 255, &mut a);
        completion("a", 256, &mut b);
        assert!(a < b, "big-endian seq must sort numerically");
        completion_prefix("ab", &mut ab);
        assert!(!a.starts_with(&ab) && !ab.starts_with(&a[..4]));
    }

    #[test]
    fn every_key_kind_parses_back_and_describes_itself() {
        let mut k = Vec::new();
        completion("order/42", 7, &mut k);
        assert_eq!(
            parse(&k),
            Ok(Key::Completion {
                id: "order/42",
                seq: 7
            })
        );
        assert_eq!(describe(&k), "workflow/order/42/seq/7");
        workflow("x", &mut k);
        assert_eq!(describe(&k), "workflow/x");
        status(Status::Failed, "x", &mut k);
        assert_eq!(describe(&k), "status/failed/x");
        assert_eq!(describe(SCHEMA), "meta/schema");
        assert_eq!(
            describe(&[b'c', 0, 9, b'x']),
            "0x630009 78".replace(' ', "")
        );
        assert_eq!(describe(&[]), "0x");
    }
}
