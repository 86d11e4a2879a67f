//! What workflows and the outside world say to each other: messages, events and
//! awakeable resolutions, stored beside the workflow records and committed in the same
//! batches (so a message and the step that sent it, or a consumed message and the `recv`
//! that took it, are durable together or not at all).
//!
//! | kind | key | value |
//! |---|---|---|
//! | message | `q` dest-len dest topic-len topic number (`u64` BE) | payload, sent time, idempotency key |
//! | idempotency key of a message | `k` dest-len dest key | empty |
//! | event | `e` id-len id key | encoded value |
//! | awakeable resolution | `a` id-len id step id (`u64` BE) | outcome |
//! | message counter | `m` `messages` | `u64` BE: the highest number ever given |
//!
//! Lengths are `u16` big-endian, so no destination's or topic's prefix is another's.
//! A consumed message's entry is removed: what the receiver got is in its `recv` step's
//! completion.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::key;
use crate::record::{Batch, Outcome};
use crate::Error;

/// A message waiting in a workflow's mailbox, under a topic.
///
/// ```
/// use ordo_journal::Message;
/// let m = Message {
///     destination: "order-42".into(), topic: "approval".into(), number: 1,
///     payload: b"yes".to_vec(), sent_ms: 0, idempotency_key: None,
/// };
/// assert_eq!(m.topic, "approval");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The workflow it is for.
    pub destination: String,
    /// The topic a `recv` takes it from.
    pub topic: String,
    /// Its place in the journal's one message order: the oldest message of a topic is
    /// the one with the lowest number. Given by the writer, strictly increasing.
    pub number: u64,
    /// The encoded message.
    pub payload: Vec<u8>,
    /// When it was sent, in milliseconds since the UNIX epoch.
    pub sent_ms: u64,
    /// The sender's idempotency key: a second message to the same destination with the
    /// same key is not stored (see [`Store::message_key_used`](crate::Store::message_key_used)).
    pub idempotency_key: Option<String>,
}

/// The mail part of a [`Batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mail {
    pub(crate) messages: Vec<Message>,
    /// `(destination, topic, number)` of messages taken by a receiver.
    pub(crate) consumed: Vec<(String, String, u64)>,
    /// `(workflow id, key, value)`.
    pub(crate) events: Vec<(String, String, Vec<u8>)>,
    /// `(workflow id, step id, outcome)`.
    pub(crate) resolutions: Vec<(String, u64, Outcome)>,
}

impl Mail {
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.consumed.is_empty()
            && self.events.is_empty()
            && self.resolutions.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.messages.clear();
        self.consumed.clear();
        self.events.clear();
        self.resolutions.clear();
    }
}

impl Batch {
    /// Puts `message` in its destination's mailbox (and, with an idempotency key, marks
    /// the key used for that destination).
    ///
    /// ```
    /// use ordo_journal::{Batch, Message, SledJournal, Store};
    /// let journal = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.send_message(Message {
    ///     destination: "order-42".into(), topic: "approval".into(), number: 7,
    ///     payload: b"yes".to_vec(), sent_ms: 0, idempotency_key: Some("hook-1".into()),
    /// });
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.messages("order-42")?[0].payload, b"yes");
    /// assert!(journal.message_key_used("order-42", "hook-1")?);
    /// assert_eq!(journal.last_message_number()?, 7);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn send_message(&mut self, message: Message) {
        self.mail.messages.push(message);
    }

    /// Removes message `number` of `topic` from `destination`'s mailbox: a receiver took
    /// it (its `recv` completion, in the same batch, holds what it got).
    ///
    /// ```
    /// use ordo_journal::{Batch, Message, SledJournal, Store};
    /// let journal = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.send_message(Message {
    ///     destination: "w".into(), topic: "t".into(), number: 1,
    ///     payload: vec![], sent_ms: 0, idempotency_key: None,
    /// });
    /// journal.commit(&batch)?;
    /// let mut batch = Batch::new();
    /// batch.consume_message("w", "t", 1);
    /// journal.commit(&batch)?;
    /// assert!(journal.messages("w")?.is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn consume_message(&mut self, destination: &str, topic: &str, number: u64) {
        self.mail
            .consumed
            .push((destination.to_owned(), topic.to_owned(), number));
    }

    /// Sets event `key` of workflow `workflow_id` to `value` (the latest value wins).
    ///
    /// ```
    /// use ordo_journal::{Batch, SledJournal, Store};
    /// let journal = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.set_event("order-42", "status", b"reserved".to_vec());
    /// batch.set_event("order-42", "status", b"paid".to_vec());
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.event("order-42", "status")?.as_deref(), Some(&b"paid"[..]));
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn set_event(&mut self, workflow_id: &str, key: &str, value: Vec<u8>) {
        self.mail
            .events
            .push((workflow_id.to_owned(), key.to_owned(), value));
    }

    /// Records the resolution of the awakeable created by step `step_id` of workflow
    /// `workflow_id`.
    ///
    /// ```
    /// use ordo_journal::{Batch, Outcome, SledJournal, Store};
    /// let journal = SledJournal::temporary()?;
    /// let mut batch = Batch::new();
    /// batch.resolve_awakeable("order-42", 3, Outcome::Ok(b"paid".to_vec()));
    /// journal.commit(&batch)?;
    /// assert_eq!(journal.awakeable("order-42", 3)?, Some(Outcome::Ok(b"paid".to_vec())));
    /// assert_eq!(journal.awakeable("order-42", 4)?, None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn resolve_awakeable(&mut self, workflow_id: &str, step_id: u64, outcome: Outcome) {
        self.mail
            .resolutions
            .push((workflow_id.to_owned(), step_id, outcome));
    }

    /// The messages the batch sends, in put order.
    ///
    /// ```
    /// let batch = ordo_journal::Batch::new();
    /// assert!(batch.messages().is_empty());
    /// ```
    pub fn messages(&self) -> &[Message] {
        &self.mail.messages
    }

    /// The `(destination, topic, number)` of the messages the batch consumes.
    ///
    /// ```
    /// let mut batch = ordo_journal::Batch::new();
    /// batch.consume_message("w", "t", 4);
    /// assert_eq!(batch.consumed(), &[("w".to_string(), "t".to_string(), 4)]);
    /// ```
    pub fn consumed(&self) -> &[(String, String, u64)] {
        &self.mail.consumed
    }

    /// The `(workflow id, key, value)` of the events the batch sets, in put order.
    ///
    /// ```
    /// let mut batch = ordo_journal::Batch::new();
    /// batch.set_event("w", "status", vec![1]);
    /// assert_eq!(batch.events()[0].1, "status");
    /// ```
    pub fn events(&self) -> &[(String, String, Vec<u8>)] {
        &self.mail.events
    }

    /// The `(workflow id, step id, outcome)` of the awakeables the batch resolves.
    ///
    /// ```
    /// use ordo_journal::{Batch, Outcome};
    /// let mut batch = Batch::new();
    /// batch.resolve_awakeable("w", 2, Outcome::Err(vec![]));
    /// assert_eq!(batch.resolutions()[0].1, 2);
    /// ```
    pub fn resolutions(&self) -> &[(String, u64, Outcome)] {
        &self.mail.resolutions
    }
}

/// Leading bytes of the mail kinds.
pub(crate) const MESSAGE: u8 = b'q';
pub(crate) const MESSAGE_KEY: u8 = b'k';
pub(crate) const EVENT: u8 = b'e';
pub(crate) const AWAKEABLE: u8 = b'a';

/// The key of the message counter.
pub(crate) const MESSAGE_COUNTER: &[u8] = b"mmessages";

/// Appends `u16` length and bytes of `part`; parts are checked not to be too long.
fn push_part(part: &str, out: &mut Vec<u8>) {
    let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part.as_bytes());
}

/// Writes `kind` then the length-prefixed `id` into `out` (cleared first).
pub(crate) fn prefix(kind: u8, id: &str, out: &mut Vec<u8>) {
    out.clear();
    out.push(kind);
    push_part(id, out);
}

fn message_key(destination: &str, topic: &str, number: u64, out: &mut Vec<u8>) {
    prefix(MESSAGE, destination, out);
    push_part(topic, out);
    out.extend_from_slice(&number.to_be_bytes());
}

fn awakeable_key(id: &str, step_id: u64, out: &mut Vec<u8>) {
    prefix(AWAKEABLE, id, out);
    out.extend_from_slice(&step_id.to_be_bytes());
}

/// A message's value on the wire.
#[derive(Serialize, Deserialize)]
struct MessageWire<'a> {
    #[serde(with = "serde_bytes_borrowed")]
    payload: &'a [u8],
    sent_ms: u64,
    idempotency_key: Option<&'a str>,
}

/// Serializes a byte slice as one length-prefixed run, borrowed back on decode.
mod serde_bytes_borrowed {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&[u8]>::deserialize(d)
    }
}

/// An outcome's value on the wire.
#[derive(Serialize, Deserialize)]
enum OutcomeWire<'a> {
    Ok(#[serde(with = "serde_bytes_borrowed")] &'a [u8]),
    Err(#[serde(with = "serde_bytes_borrowed")] &'a [u8]),
}

/// Adds the mail part of `batch` to `writes`; `k` and `v` are scratch buffers. Returns
/// the highest message number the batch gives, if it sends any.
pub(crate) fn encode(
    batch: &Batch,
    k: &mut Vec<u8>,
    v: &mut Vec<u8>,
    writes: &mut ::sled::Batch,
) -> Result<Option<u64>, Error> {
    let mail = &batch.mail;
    let mut highest = None;
    // A message consumed in the batch that stores it (a client's message handed
    // straight to a waiting receiver) is written neither way: one entry less each.
    let consumed_here: std::collections::HashSet<(&str, &str, u64)> =
        if mail.consumed.is_empty() || mail.messages.is_empty() {
            std::collections::HashSet::new()
        } else {
            let stored: std::collections::HashSet<(&str, &str, u64)> = mail
                .messages
                .iter()
                .map(|m| (m.destination.as_str(), m.topic.as_str(), m.number))
                .collect();
            mail.consumed
                .iter()
                .map(|(d, t, n)| (d.as_str(), t.as_str(), *n))
                .filter(|key| stored.contains(key))
                .collect()
        };
    for m in &mail.messages {
        highest = highest.max(Some(m.number));
        if consumed_here.contains(&(m.destination.as_str(), m.topic.as_str(), m.number)) {
            if let Some(used) = &m.idempotency_key {
                prefix(MESSAGE_KEY, &m.destination, k);
                k.extend_from_slice(used.as_bytes());
                writes.insert(k.as_slice(), &[][..]);
            }
            continue;
        }
        key::check_id(&m.destination)?;
        key::check_id(&m.topic)?;
        message_key(&m.destination, &m.topic, m.number, k);
        codec::encode_value(
            &MessageWire {
                payload: &m.payload,
                sent_ms: m.sent_ms,
                idempotency_key: m.idempotency_key.as_deref(),
            },
            v,
        )?;
        writes.insert(k.as_slice(), v.as_slice());
        if let Some(used) = &m.idempotency_key {
            prefix(MESSAGE_KEY, &m.destination, k);
            k.extend_from_slice(used.as_bytes());
            writes.insert(k.as_slice(), &[][..]);
        }
    }
    for (destination, topic, number) in &mail.consumed {
        if consumed_here.contains(&(destination.as_str(), topic.as_str(), *number)) {
            continue;
        }
        key::check_id(destination)?;
        key::check_id(topic)?;
        message_key(destination, topic, *number, k);
        writes.remove(k.as_slice());
    }
    for (id, event, value) in &mail.events {
        key::check_id(id)?;
        prefix(EVENT, id, k);
        k.extend_from_slice(event.as_bytes());
        codec::encode_value(&OutcomeWire::Ok(value), v)?;
        writes.insert(k.as_slice(), v.as_slice());
    }
    for (id, step_id, outcome) in &mail.resolutions {
        key::check_id(id)?;
        awakeable_key(id, *step_id, k);
        let wire = match outcome {
            Outcome::Ok(bytes) => OutcomeWire::Ok(bytes),
            Outcome::Err(bytes) => OutcomeWire::Err(bytes),
        };
        codec::encode_value(&wire, v)?;
        writes.insert(k.as_slice(), v.as_slice());
    }
    Ok(highest)
}

/// The unconsumed messages of `destination`, oldest (lowest number) first.
pub(crate) fn messages(db: &::sled::Db, destination: &str) -> Result<Vec<Message>, Error> {
    if key::check_id(destination).is_err() {
        return Ok(Vec::new());
    }
    let mut p = Vec::new();
    prefix(MESSAGE, destination, &mut p);
    let mut out = Vec::new();
    for entry in db.scan_prefix(&p) {
        let (k, value) = entry?;
        let bad = || codec::corrupt(&k, "malformed message key".into());
        let rest = k.get(p.len()..).ok_or_else(bad)?;
        let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(bad)?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() != len + 8 {
            return Err(bad());
        }
        let topic = std::str::from_utf8(&rest[..len]).map_err(|_| bad())?;
        let number = u64::from_be_bytes(rest[len..].try_into().map_err(|_| bad())?);
        let wire: MessageWire<'_> = codec::decode_value(&k, &value)?;
        out.push(Message {
            destination: destination.to_owned(),
            topic: topic.to_owned(),
            number,
            payload: wire.payload.to_vec(),
            sent_ms: wire.sent_ms,
            idempotency_key: wire.idempotency_key.map(str::to_owned),
        });
    }
    out.sort_by_key(|m| m.number);
    Ok(out)
}

/// Whether a message with idempotency key `used` was stored for `destination`.
pub(crate) fn message_key_used(
    db: &::sled::Db,
    destination: &str,
    used: &str,
) -> Result<bool, Error> {
    if key::check_id(destination).is_err() {
        return Ok(false);
    }
    let mut k = Vec::new();
    prefix(MESSAGE_KEY, destination, &mut k);
    k.extend_from_slice(used.as_bytes());
    Ok(db.contains_key(k)?)
}

/// The value of event `event` of workflow `id`.
pub(crate) fn event(db: &::sled::Db, id: &str, event: &str) -> Result<Option<Vec<u8>>, Error> {
    if key::check_id(id).is_err() {
        return Ok(None);
    }
    let mut k = Vec::new();
    prefix(EVENT, id, &mut k);
    k.extend_from_slice(event.as_bytes());
    match db.get(&k)? {
        Some(value) => match codec::decode_value::<OutcomeWire<'_>>(&k, &value)? {
            OutcomeWire::Ok(bytes) => Ok(Some(bytes.to_vec())),
            OutcomeWire::Err(_) => Err(codec::corrupt(&k, "an event holds an error".into())),
        },
        None => Ok(None),
    }
}

/// Every event of workflow `id`: `(key, value)` in key byte order.
pub(crate) fn events(db: &::sled::Db, id: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
    if key::check_id(id).is_err() {
        return Ok(Vec::new());
    }
    let mut p = Vec::new();
    prefix(EVENT, id, &mut p);
    let mut out = Vec::new();
    for entry in db.scan_prefix(&p) {
        let (k, value) = entry?;
        let name = std::str::from_utf8(&k[p.len()..])
            .map_err(|_| codec::corrupt(&k, "event key is not UTF-8".into()))?;
        match codec::decode_value::<OutcomeWire<'_>>(&k, &value)? {
            OutcomeWire::Ok(bytes) => out.push((name.to_owned(), bytes.to_vec())),
            OutcomeWire::Err(_) => {
                return Err(codec::corrupt(&k, "an event holds an error".into()))
            }
        }
    }
    Ok(out)
}

/// The recorded resolution of awakeable `step_id` of workflow `id`.
pub(crate) fn awakeable(db: &::sled::Db, id: &str, step_id: u64) -> Result<Option<Outcome>, Error> {
    if key::check_id(id).is_err() {
        return Ok(None);
    }
    let mut k = Vec::new();
    awakeable_key(id, step_id, &mut k);
    match db.get(&k)? {
        Some(value) => Ok(Some(
            match codec::decode_value::<OutcomeWire<'_>>(&k, &value)? {
                OutcomeWire::Ok(bytes) => Outcome::Ok(bytes.to_vec()),
                OutcomeWire::Err(bytes) => Outcome::Err(bytes.to_vec()),
            },
        )),
        None => Ok(None),
    }
}

/// The highest message number ever given (0 if none).
pub(crate) fn last_message_number(db: &::sled::Db) -> Result<u64, Error> {
    match db.get(MESSAGE_COUNTER)? {
        Some(value) => {
            let bytes: [u8; 8] = value.as_ref().try_into().map_err(|_| {
                codec::corrupt(MESSAGE_COUNTER, "message counter is not 8 bytes".into())
            })?;
            Ok(u64::from_be_bytes(bytes))
        }
        None => Ok(0),
    }
}

/// Adds to `writes` the removal of everything of workflows `ids` in the mail kinds
/// (their mailboxes, the idempotency keys of messages to them, their events, their
/// awakeables' resolutions): retention deletes a workflow whole. One walk per kind for
/// the whole batch (see [`remove_keyed`](crate::sled::remove_keyed)): a kind none of
/// them uses costs one tree descent, not one per workflow.
pub(crate) fn delete(
    db: &::sled::Db,
    ids: &[String],
    writes: &mut ::sled::Batch,
) -> Result<(), Error> {
    for kind in [MESSAGE, MESSAGE_KEY, EVENT, AWAKEABLE] {
        // Ids are length-prefixed: no workflow's prefix is a prefix of another's.
        crate::sled::remove_keyed(db, ids, |id, out| prefix(kind, id, out), false, writes)?;
    }
    Ok(())
}
