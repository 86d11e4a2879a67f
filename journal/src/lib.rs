//! ordo's journal: everything a workflow is allowed to know after a crash.
//!
//! The journal stores, per workflow, one [`WorkflowRecord`] and its step
//! [`Completion`]s in delivery (`seq`) order. The runtime writes through the [`Store`]
//! trait: it gathers the completions and status changes of many workflows into one
//! [`Batch`] and [commits](Store::commit) it, all or nothing, with one durability point
//! (one `fdatasync` for [`Durability::Sync`]). [`SledJournal`] is the embedded store;
//! a server-backed one can implement the same trait.
//!
//! ```
//! use ordo_journal::{Batch, Completion, Outcome, SledJournal, Status, Store, WorkflowRecord};
//!
//! # fn main() -> Result<(), ordo_journal::Error> {
//! let journal = SledJournal::temporary()?;
//!
//! let mut batch = Batch::new();
//! batch.put_workflow(WorkflowRecord::new("order-42", "checkout", b"input".to_vec(), 1_000));
//! for seq in 0..3 {
//!     batch.push_completion("order-42", Completion {
//!         seq,
//!         step_id: seq,
//!         name: "reserve".into(),
//!         outcome: Outcome::Ok(vec![seq as u8]),
//!         attempts: 1,
//!         started_ms: 1_000,
//!         ended_ms: 1_001,
//!     });
//! }
//! journal.commit(&batch)?;
//!
//! let steps = journal.completions("order-42")?;
//! assert_eq!(steps.iter().map(|c| c.seq).collect::<Vec<_>>(), [0, 1, 2]);
//! assert_eq!(journal.workflows(Some(Status::Pending))?[0].id, "order-42");
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `record`: the values stored — [`WorkflowRecord`], [`Completion`], [`Outcome`],
//!   [`Status`] — and the [`Batch`] that commits them together.
//! - `key`: the key space — one sled tree (so one `sled::Batch` is atomic), one leading
//!   byte per record kind, big-endian integers and length-prefixed ids so a prefix scan
//!   yields one workflow's completions in `seq` order, a status index, and completions
//!   stored as one *run* per workflow per commit (sled costs microseconds per entry).
//! - `codec`: values on disk — a format-version byte, then bincode 2 (serde); decoding
//!   that never panics, never allocates what garbage claims, and rejects trailing bytes.
//! - `durability`: [`Durability`] and the `fdatasync` of sled's files that makes `Sync`
//!   survive power loss.
//! - `store`: the [`Store`] trait the runtime journals through.
//! - `sled`: [`SledJournal`], the store on sled 0.34.7: open, lock, schema check, group
//!   commit, the append-only check on completion seqs.
//! - `error`: the one [`Error`] enum, whose messages name the path or key involved.
//!
//! # Durability
//!
//! sled 0.34.7's `flush()` only calls `sync_file_range` on Linux, which writes data
//! towards the disk but neither flushes the disk's cache nor syncs metadata. So
//! [`Durability::Sync`] follows every flush with `fdatasync` of sled's data file (and of
//! any new blob file sled wrote for a large message, which it never syncs itself).
//!
//! # Completions are append-only
//!
//! A commit may only add, per workflow, seqs after the last one recorded
//! ([`Error::SeqOutOfOrder`] otherwise): a recorded completion is never rewritten, which
//! is what replay relies on.

mod codec;
mod durability;
mod error;
mod key;
mod record;
mod sled;
mod store;

#[doc(hidden)]
pub mod fuzzing;

pub use crate::codec::{FORMAT_VERSION, SCHEMA_VERSION};
pub use crate::durability::Durability;
pub use crate::error::Error;
pub use crate::key::MAX_ID_LEN;
pub use crate::record::{Batch, Completion, Outcome, ParseStatusError, Status, WorkflowRecord};
pub use crate::sled::SledJournal;
pub use crate::store::Store;
