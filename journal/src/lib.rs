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
//!   stored as one *run* per workflow per commit (sled costs microseconds per entry);
//!   an optional record per workflow keeps the W3C `traceparent` it was started with.
//! - `codec`: values on disk — a format-version byte, then bincode 2 (serde); decoding
//!   that never panics, never allocates what garbage claims, and rejects trailing bytes.
//! - `durability`: [`Durability`] and the `fdatasync` of sled's files that makes `Sync`
//!   survive power loss.
//! - `store`: the [`Store`] trait the runtime journals through.
//! - `retention`: which finished workflows are past a given age ([`finished_before`]),
//!   deleted with [`Batch::delete_workflow`] at most [`GC_BATCH`] per commit.
//! - `sled`: [`SledJournal`], the store on sled 0.34.7: open, lock, schema check, group
//!   commit, the append-only check on completion seqs.
//! - `start_group`: the records of a commit's direct starts, many to one sled entry
//!   (sled costs microseconds per key), and which group lists each id.
//! - `last_seq`: each workflow's last recorded seq as the process's own commits tell,
//!   which spares both stores a read per commit in that check.
//! - `seal`: the checksummed high-water mark of acknowledged commits that makes damage
//!   detectable; `copy`: the private copies opened to check a journal, or to read one
//!   without writing to it.
//! - `token_key`: [`TokenKey`], the journal's secret that awakeable tokens are tagged
//!   with, and its file in a sled journal's folder.
//! - `postgres` (feature `postgres`): `PgJournal`, the same records in PostgreSQL
//!   tables shared by many worker processes: one pipelined transaction per commit,
//!   leases, fencing and takeover (see its docs).
//! - `error`: the one [`Error`] enum, whose messages name the path or key involved.
//!
//! # Durability
//!
//! sled 0.34.7's `flush()` only calls `sync_file_range` on Linux, which writes data
//! towards the disk but neither flushes the disk's cache nor syncs metadata. So
//! [`Durability::Sync`] follows every flush with `fdatasync` of sled's data file (and of
//! any new blob file sled wrote for a large message, which it never syncs itself, and of
//! the folders naming new files). `Sync` and `Flush` journals run sled without its
//! background flusher, so sled writes only inside a commit, never between a commit's
//! blob sync and its `fdatasync`. `tests/crash_states.rs` rebuilds the files a power cut
//! could leave at every acknowledgement and inside every commit, from an strace of a
//! committing process, and finds every acknowledged `Sync` commit in each.
//!
//! # Damage
//!
//! A journal that lost acknowledged commits is refused, never silently replayed: every
//! commit counts itself inside sled (`meta/commits`) and, once durable, in a small
//! checksummed file outside sled's log, the *seal* (`ordo.seal`, written without an extra
//! fsync). [`SledJournal::open`] first opens a private copy and checks that it holds at
//! least as many commits as the seal says were acknowledged; a journal that does not, or
//! that sled cannot read, is [`Error::Damaged`], and its files are left exactly as they
//! were. Detected: a flipped, zeroed or truncated byte anywhere in sled's log (sled drops
//! everything after a bad message), a replaced, emptied or missing file, garbage in
//! sled's `conf` or snapshot files, a missing or unreadable seal. Not detected: a whole
//! folder rolled back together with its seal (an old backup is consistent with itself),
//! damage that sled's checksums miss. With [`Durability::None`] commits are not sealed.
//! A journal whose creation was cut short (its process killed while it was created)
//! opens as a new one: its seal is written, whole or not at all, before sled writes
//! anything, and a folder holding that seal at zero commits and nothing in sled's log has
//! nothing to lose. The folder's other file of ordo's, `ordo.token_key` (the secret
//! awakeable tokens are tagged with, see [`TokenKey`]), is checksummed too and checked
//! before sled opens anything: one that is not whole is [`Error::Damaged`] as well.
//!
//! # Completions are append-only
//!
//! A commit may only add, per workflow, seqs after the last one recorded
//! ([`Error::SeqOutOfOrder`] otherwise): a recorded completion is never rewritten, which
//! is what replay relies on.

mod codec;
mod copy;
mod durability;
mod error;
mod key;
mod last_seq;
mod mail;
#[cfg(feature = "postgres")]
mod postgres;
pub mod queue;
mod record;
mod retention;
mod seal;
mod sled;
mod start_group;
mod store;
mod token_key;

#[doc(hidden)]
pub mod fuzzing;

pub use crate::codec::{FORMAT_VERSION, SCHEMA_VERSION};
pub use crate::durability::Durability;
pub use crate::error::Error;
pub use crate::key::{check_id, check_text, MAX_ID_LEN};
pub use crate::mail::Message;
#[cfg(feature = "postgres")]
#[doc(hidden)]
pub use crate::postgres::steps_commit_statement;
#[cfg(feature = "postgres")]
pub use crate::postgres::{ask_workers, PgJournal, PgOptions, Relay, PG_SCHEMA_VERSION};
pub use crate::record::{Batch, Completion, Outcome, ParseStatusError, Status, WorkflowRecord};
pub use crate::retention::{finished_before, FINISHED, GC_BATCH};
pub use crate::sled::SledJournal;
pub use crate::store::{Elsewhere, Store};
pub use crate::token_key::TokenKey;
