//! Journal values as the dashboard shows them.
//!
//! A recorded value is bincode bytes behind its type's fingerprint, and bincode does not
//! describe itself: without the Rust type nothing can be decoded for sure. So a value
//! is decoded when its fingerprint is that of a common type (strings, numbers, `bool`,
//! `()`, and vectors and options of these), which the fingerprint makes certain, not a
//! guess; any other value is shown as its type's name (from the journal's type table)
//! with its length and its first bytes in hex.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::codec;
use crate::fingerprint;

/// Bytes of a value shown in hex when it cannot be decoded.
const HEX_PREVIEW: usize = 48;

/// Characters of a decoded value shown before it is cut.
const TEXT_PREVIEW: usize = 2_000;

/// How a value is shown: its type's name, and the value or a preview of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shown {
    /// The type's name, or its fingerprint in hex when the journal does not name it.
    pub(crate) type_name: String,
    /// The decoded value (`Debug`), or `None` when it could not be decoded.
    pub(crate) value: Option<String>,
    /// Length and first bytes in hex (after the fingerprint).
    pub(crate) bytes: String,
}

/// Tries `bytes` as a `T`: `Some` only when its fingerprint is `T`'s and all of it
/// decodes.
fn try_as<T: DeserializeOwned + std::fmt::Debug + 'static>(bytes: &[u8]) -> Option<String> {
    codec::decode::<T>(fingerprint::of::<T>(), bytes)
        .ok()
        .map(|value| format!("{value:?}"))
}

/// The value of `bytes` if its type is one of the common ones.
fn decode_common(bytes: &[u8]) -> Option<String> {
    macro_rules! first_of {
        ($($t:ty),* $(,)?) => { None $(.or_else(|| try_as::<$t>(bytes)))* };
    }
    first_of!(
        String,
        bool,
        u8,
        u16,
        u32,
        u64,
        u128,
        i8,
        i16,
        i32,
        i64,
        i128,
        f32,
        f64,
        char,
        (),
        Vec<String>,
        Vec<u64>,
        Vec<u32>,
        Vec<i64>,
        Vec<u8>,
        Option<String>,
        Option<u64>,
        Option<u32>,
        Option<i64>,
        Option<bool>,
        (String, u64),
        BTreeMap<String, String>,
        BTreeMap<String, u64>,
    )
}

/// How to show `bytes`, naming its type from `type_names` (fingerprint to name).
pub(crate) fn show(bytes: &[u8], type_names: &BTreeMap<u64, String>) -> Shown {
    let Some(fp) = codec::fingerprint_of(bytes) else {
        return Shown {
            type_name: "(no type fingerprint)".into(),
            value: None,
            bytes: hex_preview(bytes),
        };
    };
    let type_name = type_names
        .get(&fp)
        .cloned()
        .unwrap_or_else(|| format!("unnamed type {fp:016x}"));
    let value = decode_common(bytes).map(|mut text| {
        if text.len() > TEXT_PREVIEW {
            let mut cut = TEXT_PREVIEW;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    });
    Shown {
        type_name,
        value,
        bytes: hex_preview(bytes.get(8..).unwrap_or_default()),
    }
}

/// `N bytes: 0a 1b ..` with at most [`HEX_PREVIEW`] bytes.
fn hex_preview(bytes: &[u8]) -> String {
    let mut out = format!("{} bytes", bytes.len());
    if !bytes.is_empty() {
        out.push(':');
    }
    for byte in bytes.iter().take(HEX_PREVIEW) {
        out.push_str(&format!(" {byte:02x}"));
    }
    if bytes.len() > HEX_PREVIEW {
        out.push_str(" …");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_types_decode_and_others_show_bytes() {
        let names = BTreeMap::new();
        let text = codec::encode(fingerprint::of::<String>(), "a<b").expect("encodes");
        let shown = show(&text, &names);
        assert_eq!(shown.value.as_deref(), Some("\"a<b\""));

        let number = codec::encode(fingerprint::of::<u64>(), &700u64).expect("encodes");
        assert_eq!(show(&number, &names).value.as_deref(), Some("700"));

        #[derive(serde::Serialize, serde::Deserialize)]
        struct Order {
            items: Vec<String>,
            total: u64,
        }
        let key = fingerprint::of::<Order>();
        let order = Order {
            items: vec!["pen".into()],
            total: 3,
        };
        let bytes = codec::encode(key, &order).expect("encodes");
        let names = BTreeMap::from([(key.fingerprint, "shop::Order".to_string())]);
        let shown = show(&bytes, &names);
        assert_eq!(shown.value, None, "an Order is not one of the common types");
        assert_eq!(shown.type_name, "shop::Order");
        assert!(
            shown
                .bytes
                .starts_with(&format!("{} bytes: ", bytes.len() - 8)),
            "{}",
            shown.bytes
        );
        assert_eq!(show(&[1, 2], &names).value, None);
    }
}
