//! Admin requests on a journal shared by many workers (PostgreSQL): the `ordo` CLI has
//! no socket to reach a worker on another machine, so it leaves its request in the
//! journal ([`ordo_journal::ask_workers`]), and every worker's runtime serves the ones
//! that are its to serve ([`ordo_journal::Relay`]): a cancel on the worker that drives
//! the workflow, anything else on the first worker to take it.
//!
//! A thread of the relay's own takes each request and forwards it through a
//! [`Client`] to the runtime's thread, exactly as the admin socket's connection threads
//! do: same protocol, same operations, same replies.

use std::cell::RefCell;
use std::task::Waker;

use crate::admin::protocol;
use crate::admin::server::{execute, Inbox};
use crate::error::Error;
use crate::talk::client;
use crate::talk::Client;

/// Starts the thread serving `relay`; the runtime's stall hook drains the returned
/// inbox. The thread ends when the journal is dropped.
pub(crate) fn start(mut relay: ordo_journal::Relay, waker: Waker) -> Result<Inbox, Error> {
    let (shared, requests) = client::channel();
    let client = Client::new(shared);
    std::thread::Builder::new()
        .name("ordo-relay".into())
        .spawn(move || {
            while let Some((id, body)) = relay.take() {
                let reply = match protocol::parse(body.as_bytes()) {
                    Ok(request) => execute(&client, request),
                    Err(reply) => reply,
                };
                let line = String::from_utf8_lossy(&reply.to_line())
                    .trim_end()
                    .to_string();
                if let Err(err) = relay.answer(id, &line) {
                    tracing::warn!("ordo: cannot answer admin request {id}: {err}");
                }
            }
        })
        .map_err(|err| Error::from(ordo_journal::Error::Io(err)))?;
    Ok(Inbox {
        requests: RefCell::new(requests),
        waker,
    })
}
