//! Type fingerprints: every value the journal stores carries a 64-bit fingerprint of its
//! Rust type, checked on every read.
//!
//! bincode is not self-describing: a recorded `0u32` decodes as `String` `""`, a
//! recorded `Ok(0u32)` as `false`. So a value written by one version of the code and
//! read by another, with another type, would be silently wrong. With a fingerprint, it
//! is [`Error::TypeMismatch`](crate::Error::TypeMismatch) naming both types.
//!
//! # What a fingerprint is
//!
//! The *serde shape* of the type, as the type's own `Deserialize` describes it (traced
//! once per type and thread with `serde-reflection`), hashed with FNV-1a: primitives,
//! options, sequences, maps, tuples, and for structs and enums their field and variant
//! names and shapes, in order. Container names are left out, so renaming a type or
//! moving it to another module keeps its fingerprint (its bytes are the same), while a
//! changed field type, a new field, a renamed or reordered field or variant changes it.
//! It does not depend on the compiler version, unlike `std::any::type_name` (whose text
//! is neither unique nor stable).
//!
//! A type that cannot be traced (a `Deserialize` that needs particular input, such as
//! validated newtypes, or one that uses `deserialize_any`) falls back to a hash of its
//! `type_name`, and so does the shape of an enum variant that tracing did not reach (an
//! enum nested inside another type is traced up to its first variant).

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::de::DeserializeOwned;
use serde_reflection::{
    ContainerFormat, Format, FormatHolder, Named, Registry, Samples, Tracer, TracerConfig,
    VariantFormat,
};

/// A type's fingerprint and its name (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TypeKey {
    pub(crate) fingerprint: u64,
    pub(crate) name: &'static str,
}

thread_local! {
    /// Fingerprints by type, so each type is traced once per thread. Looked up for
    /// every value encoded or decoded (a step's outcome twice), so keyed without SipHash
    /// (see [`TypeIdHasher`]).
    static BY_TYPE: RefCell<HashMap<TypeId, TypeKey, BuildHasherDefault<TypeIdHasher>>> =
        RefCell::new(HashMap::default());
    /// Names by fingerprint, for naming a recorded type this process knows.
    static NAMES: RefCell<HashMap<u64, &'static str>> = RefCell::new(HashMap::new());
}

/// A hasher for [`TypeId`] keys alone: a `TypeId` is already a hash of its type (it
/// feeds the hasher one `u64` of it), so that number is used as it is rather than hashed
/// again with SipHash, whose resistance to chosen keys is of no use here (keys are the
/// program's own types, not input). Anything else written is folded in with FNV-1a.
#[derive(Default)]
pub(crate) struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        fnv(&mut self.0, bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The fingerprint of `T`.
pub(crate) fn of<T: DeserializeOwned + 'static>() -> TypeKey {
    let id = TypeId::of::<T>();
    if let Some(key) = BY_TYPE.with(|m| m.borrow().get(&id).copied()) {
        return key;
    }
    let name = std::any::type_name::<T>();
    let key = TypeKey {
        fingerprint: shape_of::<T>().unwrap_or_else(|| fallback(name)),
        name,
    };
    BY_TYPE.with(|m| m.borrow_mut().insert(id, key));
    NAMES.with(|m| {
        m.borrow_mut().entry(key.fingerprint).or_insert(name);
    });
    key
}

/// The name of the type with `fingerprint`, if this thread has fingerprinted it.
pub(crate) fn known_name(fingerprint: u64) -> Option<&'static str> {
    NAMES.with(|m| m.borrow().get(&fingerprint).copied())
}

/// The hash of `T`'s traced serde shape, or `None` if it cannot be traced.
fn shape_of<T: DeserializeOwned>() -> Option<u64> {
    // Tracing runs `T`'s `Deserialize` on synthetic input; a panic in it means only that
    // this type is fingerprinted by name.
    std::panic::catch_unwind(|| {
        let mut tracer = Tracer::new(TracerConfig::default());
        let samples = Samples::new();
        let (mut format, _) = tracer.trace_type::<T>(&samples).ok()?;
        format.normalize().ok()?;
        let registry = tracer.registry_unchecked();
        let mut hasher = Shape {
            hash: FNV_OFFSET,
            registry: &registry,
            seen: BTreeMap::new(),
        };
        hasher.format(&format);
        Some(hasher.hash)
    })
    .ok()
    .flatten()
}

/// The fingerprint of a type known only by name.
fn fallback(name: &str) -> u64 {
    let mut hash = FNV_OFFSET;
    fnv(&mut hash, b"type_name:");
    fnv(&mut hash, name.as_bytes());
    hash
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a: tiny and fixed forever, unlike `std`'s hashers, whose output may change.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &byte in bytes {
        *hash ^= u64::from(byte);
        *hash = hash.wrapping_mul(FNV_PRIME);
    }
}

/// Hashes a traced shape, leaving out container names.
struct Shape<'a> {
    hash: u64,
    registry: &'a Registry,
    /// Containers already entered, by name, with their visit number: a recursive type
    /// refers back by number, so the walk ends and the hash ignores the name.
    seen: BTreeMap<&'a str, u64>,
}

impl<'a> Shape<'a> {
    fn tag(&mut self, tag: &str) {
        fnv(&mut self.hash, tag.as_bytes());
        fnv(&mut self.hash, b";");
    }

    fn number(&mut self, n: u64) {
        fnv(&mut self.hash, &n.to_le_bytes());
    }

    fn format(&mut self, format: &'a Format) {
        match format {
            Format::Variable(_) => self.tag("unknown"),
            Format::TypeName(name) => match self.seen.get(name.as_str()) {
                Some(&visit) => {
                    self.tag("back");
                    self.number(visit);
                }
                None => match self.registry.get(name) {
                    Some(container) => {
                        let visit = self.seen.len() as u64;
                        self.seen.insert(name, visit);
                        self.container(container);
                    }
                    None => self.tag("opaque"),
                },
            },
            Format::Unit => self.tag("unit"),
            Format::Bool => self.tag("bool"),
            Format::I8 => self.tag("i8"),
            Format::I16 => self.tag("i16"),
            Format::I32 => self.tag("i32"),
            Format::I64 => self.tag("i64"),
            Format::I128 => self.tag("i128"),
            Format::U8 => self.tag("u8"),
            Format::U16 => self.tag("u16"),
            Format::U32 => self.tag("u32"),
            Format::U64 => self.tag("u64"),
            Format::U128 => self.tag("u128"),
            Format::F32 => self.tag("f32"),
            Format::F64 => self.tag("f64"),
            Format::Char => self.tag("char"),
            Format::Str => self.tag("str"),
            Format::Bytes => self.tag("bytes"),
            Format::Option(inner) => {
                self.tag("option");
                self.format(inner);
            }
            Format::Seq(inner) => {
                self.tag("seq");
                self.format(inner);
            }
            Format::Map { key, value } => {
                self.tag("map");
                self.format(key);
                self.format(value);
            }
            Format::Tuple(items) => {
                self.tag("tuple");
                self.formats(items);
            }
            Format::TupleArray { content, size } => {
                self.tag("array");
                self.number(*size as u64);
                self.format(content);
            }
        }
    }

    fn formats(&mut self, items: &'a [Format]) {
        self.number(items.len() as u64);
        for item in items {
            self.format(item);
        }
    }

    fn fields(&mut self, fields: &'a [Named<Format>]) {
        self.number(fields.len() as u64);
        for field in fields {
            self.tag(&field.name);
            self.format(&field.value);
        }
    }

    fn container(&mut self, container: &'a ContainerFormat) {
        match container {
            ContainerFormat::UnitStruct => self.tag("unit struct"),
            ContainerFormat::NewTypeStruct(inner) => {
                self.tag("newtype");
                self.format(inner);
            }
            ContainerFormat::TupleStruct(items) => {
                self.tag("tuple struct");
                self.formats(items);
            }
            ContainerFormat::Struct(fields) => {
                self.tag("struct");
                self.fields(fields);
            }
            ContainerFormat::Enum(variants) => {
                self.tag("enum");
                self.number(variants.len() as u64);
                for (index, variant) in variants {
                    self.number(u64::from(*index));
                    self.tag(&variant.name);
                    match &variant.value {
                        VariantFormat::Variable(_) => self.tag("unknown"),
                        VariantFormat::Unit => self.tag("unit"),
                        VariantFormat::NewType(inner) => {
                            self.tag("newtype");
                            self.format(inner);
                        }
                        VariantFormat::Tuple(items) => {
                            self.tag("tuple");
                            self.formats(items);
                        }
                        VariantFormat::Struct(fields) => {
                            self.tag("struct");
                            self.fields(fields);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    mod v1 {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Receipt {
            pub paid: u64,
            pub note: String,
        }
    }

    #[derive(Serialize, Deserialize)]
    struct Invoice {
        paid: u64,
        note: String,
    }

    #[derive(Serialize, Deserialize)]
    struct Widened {
        paid: u64,
        note: String,
        extra: bool,
    }

    #[derive(Serialize, Deserialize)]
    enum Payment {
        Card { last4: u16 },
        Cash,
        Transfer(String),
    }

    #[derive(Serialize, Deserialize)]
    struct List {
        next: Option<Box<List>>,
        value: u32,
    }

    #[test]
    fn primitives_differ_and_shapes_not_names_count() {
        let fp = |key: TypeKey| key.fingerprint;
        assert_ne!(fp(of::<u32>()), fp(of::<String>()));
        assert_ne!(fp(of::<u32>()), fp(of::<bool>()));
        assert_ne!(fp(of::<u32>()), fp(of::<u64>()));
        assert_ne!(fp(of::<Option<u32>>()), fp(of::<Vec<u32>>()));
        // A renamed or moved type with the same fields keeps its fingerprint...
        assert_eq!(fp(of::<v1::Receipt>()), fp(of::<Invoice>()));
        // ...a new field changes it.
        assert_ne!(fp(of::<Invoice>()), fp(of::<Widened>()));
        // Enums are traced through every variant; recursive types end.
        assert_ne!(fp(of::<Payment>()), fp(of::<Invoice>()));
        assert_ne!(fp(of::<List>()), fp(of::<Invoice>()));
        assert_eq!(of::<List>(), of::<List>());
        assert_eq!(
            known_name(fp(of::<Payment>())),
            Some(std::any::type_name::<Payment>())
        );
    }
}
