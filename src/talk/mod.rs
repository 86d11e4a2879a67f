//! Workflows that talk: messages, events, child workflows, awakeables, and the
//! thread-safe [`Client`] the outside world uses.
//!
//! # The determinism rule, extended
//!
//! Every durable call takes its step id(s) at the call site, and everything that wakes
//! workflow code is a completion, committed and then delivered in `seq` order like a
//! step outcome:
//!
//! | call | step ids taken at the call | what its completion records |
//! |---|---|---|
//! | `send` | 1 | that it was sent; the message commits with it |
//! | `recv` | 2 (deadline, receipt) | the message received, or `None` at the deadline; the message is consumed in the same commit |
//! | `set_event` | 1 | the value set; the event commits with it |
//! | `get_event` | 2 (deadline, read) | the value seen, or `None` at the deadline |
//! | `start_child` | 2 (launch, result) | the launch (the child's start commits with it), then the child's end |
//! | `awakeable` | 1 | the resolution |
//!
//! Replay delivers the same sequence and never touches the outside world again: a
//! replayed `recv` returns the recorded message without reading the mailbox, a replayed
//! `get_event` the recorded value, a replayed launch adopts the recorded child. So each
//! call works inside `join!`, `select!` and `FuturesUnordered`, and a `select!` between
//! a `recv`, a step and a durable sleep picks the same arm on replay whatever the
//! latencies: the winner is whichever completion was delivered first, and that order
//! is in the journal. No winner is recorded in a second commit that a crash could lose.
//!
//! Inputs from outside (a client's message, an awakeable's resolution) are durable
//! before the client's call returns, and reach workflows only as completions of the
//! steps waiting for them.
//!
//! # Layout
//!
//! - `mailbox`: `send`, `recv`, and the mailbox that hands messages out in call-site order.
//! - `events`: `set_event`, `get_event`.
//! - `children`: `start_child`, [`ChildHandle`], [`ChildOptions`], [`ParentEnd`].
//! - `awakeable`: `awakeable`, [`Awakeable`], tokens.
//! - `client`: [`Client`], [`ClientHandle`], and the runtime's side of their channel.
//! - `watch`: step bodies parked until a commit changes what they wait for.

pub(crate) mod awakeable;
pub(crate) mod children;
pub(crate) mod client;
pub(crate) mod events;
pub(crate) mod mailbox;
pub(crate) mod watch;

pub use awakeable::Awakeable;
pub use children::{collectable_before, ChildHandle, ChildOptions, ParentEnd};
pub use client::{Client, ClientHandle};
