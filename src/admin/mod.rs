//! The live admin channel: steering a running application from the shell.
//!
//! While a runtime holds a journal at a path ([`RuntimeBuilder::path`]), sled's lock keeps
//! every other process out of it, the `ordo` CLI included. So the runtime serves admin
//! requests itself, on a Unix domain socket in the journal's folder
//! ([`SOCKET_FILE`], mode 0600: only the owning user may connect; no TCP). The CLI
//! finds the journal locked, connects, and its `list`, `show`, `stats`, `cancel`,
//! `resume`, `fork` and `gc` show and change the live state.
//!
//! Nothing is done behind the runtime's back. A thread of the socket's own reads each
//! request and forwards it through a [`Client`](crate::Client) whose channel the
//! runtime's thread drains whenever its executor stalls (the stall hook of determinism
//! rule 2): each operation runs on the runtime's thread, between two deliveries, and
//! answers after the commit that holds it. The channel keeps nothing alive:
//! [`Runtime::run`](crate::Runtime::run) still completes when no workflow is left, and
//! requests are served while the runtime is driven.
//!
//! # Layout
//!
//! - `operation`: the operations a [`Client`](crate::Client) asks for from any thread
//!   (`cancel`, `resume`, `fork`, `gc`, `list`, `show`, `stats`) and how the runtime's
//!   thread serves them.
//! - `view`: what the read requests return: [`WorkflowSummary`], [`JournalStats`],
//!   and the JSON shapes of `show` ([`ShownWorkflow`]).
//! - `protocol`: the frames on the socket: one JSON [`Request`] a line (at most
//!   [`MAX_FRAME`] bytes), one reply a line, `{"ok": ..}` or
//!   `{"error": {"kind": .., "message": ..}}` ([`ErrorKind`]), and [`call`], the client
//!   side the CLI uses.
//! - `relay`: the same requests on a journal shared by many workers (PostgreSQL),
//!   which the CLI leaves in the journal for the worker that should serve them.
//! - `server`: the socket itself: created safely (mode 0600, a stale one from a killed
//!   process replaced), one thread accepting, one per connection, removed on drop; and
//!   the inbox the stall hook drains.
//!
//! [`RuntimeBuilder::path`]: crate::RuntimeBuilder::path

mod operation;
mod protocol;
#[cfg(feature = "postgres")]
pub(crate) mod relay;
pub(crate) mod server;
mod view;

pub(crate) use operation::Operation;
pub use protocol::{
    call, call_within, decode_reply, CallError, ErrorKind, Request, MAX_FRAME, SOCKET_FILE,
};
pub use view::{JournalStats, ShownOutput, ShownRecord, ShownStep, ShownWorkflow, WorkflowSummary};
