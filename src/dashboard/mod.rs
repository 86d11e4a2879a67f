//! The dashboard: a token-protected web page served from the runtime's process, showing
//! the workflows of its journal and, for each, its input, output and a timeline of its
//! steps, with cancel and resume buttons.
//!
//! Turn it on with [`RuntimeBuilder::dashboard`]; open [`Runtime::dashboard_url`].
//!
//! # How it fits
//!
//! - `server`: an HTTP thread of its own (and a short-lived thread per connection,
//!   `http` reads requests with hard limits): no async runtime joins the workflow
//!   executor, and a slow or malformed client holds up neither the runtime nor other
//!   visitors.
//! - `query`: the HTTP thread never opens the journal. Each page is a request sent over
//!   a channel into a task on the runtime's executor, as a [`Client`](crate::Client)'s
//!   are, and answered between two turns of the workflows; so the dashboard answers
//!   while the runtime is driven ([`Runtime::block_on`], [`Runtime::run`]), and with
//!   it on, [`Runtime::run`] keeps serving until the runtime is dropped.
//! - `ops`: cancel and resume as the runtime's thread runs them.
//! - `pages`, `timeline`, `values`: the HTML, the SVG timeline, and how recorded values
//!   are shown (decoded for common types, else their type's name and bytes).
//!
//! # Security
//!
//! Only loopback addresses are accepted unless [`RuntimeBuilder::dashboard_allow_remote`]
//! is called. Every request must carry the token: `?token=` (which sets an `HttpOnly`,
//! `SameSite=Strict` cookie for the pages that follow), the cookie, or an
//! `Authorization: Bearer` header; anything else gets 401. Cancel and resume are `POST`s
//! that must carry the token in the form or the header, not only in the cookie, so
//! another site cannot make a visitor's browser post them. The token is random unless
//! [`RuntimeBuilder::dashboard_token`] gives one. Plain HTTP: across machines, put it
//! behind a TLS-terminating proxy.

mod http;
mod pages;
mod query;
mod server;
mod timeline;
mod values;

use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use ordo_executor::Executor;

use crate::core::Core;
use crate::error::Error;
use crate::runtime::{Runtime, RuntimeBuilder};

/// Shortest token accepted from [`RuntimeBuilder::dashboard_token`].
const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted.
const MAX_TOKEN_LEN: usize = 256;

/// What the builder was told.
pub(crate) struct Config {
    addr: String,
    token: Option<String>,
    allow_remote: bool,
}

/// A running dashboard, stopped when the runtime is dropped.
pub(crate) struct Dashboard {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    /// The accept loop, joined at drop.
    thread: Option<JoinHandle<()>>,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        // Joined only once woken: a dashboard that cannot be reached (a firewall) must
        // not hang the runtime's drop; its thread then ends at its next connection.
        if server::wake(self.addr) {
            if let Some(thread) = self.thread.take() {
                drop(thread.join());
            }
        }
    }
}

impl RuntimeBuilder {
    /// Serves the dashboard at `addr` (e.g. `"127.0.0.1:7878"`; port 0 picks a free
    /// one), from a thread of this process, once the runtime is built: the workflow
    /// list with status filters and search by id, and each workflow's input, output,
    /// step timeline, and cancel and resume buttons. Get the address with its token
    /// from [`Runtime::dashboard_url`].
    ///
    /// [`build`](RuntimeBuilder::build) fails with [`Error::Dashboard`] for an address
    /// it cannot resolve or bind, and for one that is not loopback unless
    /// [`dashboard_allow_remote`](RuntimeBuilder::dashboard_allow_remote) was called.
    ///
    /// Pages are read on the runtime's thread, between two turns of the workflows, so
    /// they are served while the runtime is driven ([`Runtime::block_on`],
    /// [`Runtime::run`]); a page waits up to 10 s for an answer, then says the runtime
    /// is not answering. Like a live [`Client`](crate::Client), the dashboard keeps
    /// [`Runtime::run`] serving (it does not complete when no workflow is left) until
    /// the runtime is dropped.
    ///
    /// ```
    /// let rt = ordo::Runtime::builder().temporary().dashboard("127.0.0.1:0").build()?;
    /// let url = rt.dashboard_url().expect("the dashboard is on");
    /// assert!(url.starts_with("http://127.0.0.1:") && url.contains("/?token="));
    ///
    /// let refused = ordo::Runtime::builder().temporary().dashboard("0.0.0.0:0").build();
    /// assert!(matches!(refused, Err(ordo::Error::Dashboard { .. })));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn dashboard(mut self, addr: impl Into<String>) -> Self {
        let config = self.dashboard.get_or_insert_with(|| Config {
            addr: String::new(),
            token: None,
            allow_remote: false,
        });
        config.addr = addr.into();
        self
    }

    /// The dashboard's token, instead of a random one: 16 to 256 characters of
    /// `A-Z a-z 0-9 - . _ ~` (anything else fails the build with [`Error::Dashboard`]).
    /// Only used with [`RuntimeBuilder::dashboard`].
    ///
    /// ```
    /// let rt = ordo::Runtime::builder()
    ///     .temporary()
    ///     .dashboard("127.0.0.1:0")
    ///     .dashboard_token("a-long-shared-secret")
    ///     .build()?;
    /// assert!(rt.dashboard_url().expect("on").ends_with("/?token=a-long-shared-secret"));
    /// let short = ordo::Runtime::builder().temporary().dashboard("127.0.0.1:0").dashboard_token("abc").build();
    /// assert!(matches!(short, Err(ordo::Error::Dashboard { .. })));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn dashboard_token(mut self, token: impl Into<String>) -> Self {
        if let Some(config) = &mut self.dashboard {
            config.token = Some(token.into());
        } else {
            self.dashboard = Some(Config {
                addr: String::new(),
                token: Some(token.into()),
                allow_remote: false,
            });
        }
        self
    }

    /// Lets [`RuntimeBuilder::dashboard`] listen on an address other machines can
    /// reach (`0.0.0.0:7878`). The token still guards it, but it is plain HTTP: the
    /// token crosses the network in clear unless a TLS proxy sits in front.
    ///
    /// ```
    /// let rt = ordo::Runtime::builder()
    ///     .temporary()
    ///     .dashboard("0.0.0.0:0")
    ///     .dashboard_allow_remote()
    ///     .build()?;
    /// assert!(rt.dashboard_url().is_some());
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn dashboard_allow_remote(mut self) -> Self {
        if let Some(config) = &mut self.dashboard {
            config.allow_remote = true;
        } else {
            self.dashboard = Some(Config {
                addr: String::new(),
                token: None,
                allow_remote: true,
            });
        }
        self
    }
}

impl Runtime {
    /// The dashboard's address with its token (`http://127.0.0.1:7878/?token=…`), to
    /// open in a browser; `None` without [`RuntimeBuilder::dashboard`]. Pages are
    /// served while the runtime is driven ([`Runtime::block_on`], [`Runtime::run`]).
    ///
    /// ```
    /// let rt = ordo::Runtime::builder().temporary().build()?;
    /// assert_eq!(rt.dashboard_url(), None);
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn dashboard_url(&self) -> Option<String> {
        let dashboard = self.dashboard.as_ref()?;
        let addr = server::reachable(dashboard.addr);
        Some(format!(
            "http://{addr}/?token={}",
            http::percent_encode(&dashboard.shared.token)
        ))
    }

    /// The address the dashboard listens on; `None` without
    /// [`RuntimeBuilder::dashboard`].
    ///
    /// ```
    /// let rt = ordo::Runtime::builder().temporary().dashboard("127.0.0.1:0").build()?;
    /// assert!(rt.dashboard_addr().expect("on").ip().is_loopback());
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard.as_ref().map(|d| d.addr)
    }
}

/// A random token: 128 bits from two `std` hashers, each keyed from the operating
/// system's randomness (the keys of `RandomState`), so no other dependency is needed.
fn random_token() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let mut token = String::with_capacity(32);
    for part in 0u8..2 {
        let mut hasher = state.build_hasher();
        hasher.write_u8(part);
        // Two states of one thread differ only by a counter: mix in another state too.
        hasher.write_u64(std::collections::hash_map::RandomState::new().hash_one(part));
        token.push_str(&format!("{:016x}", hasher.finish()));
    }
    token
}

fn check_token(addr: &str, token: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
    if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len()) || !token.chars().all(allowed) {
        return Err(Error::Dashboard {
            addr: addr.to_string(),
            reason: format!(
                "a token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters of \
                 A-Z a-z 0-9 - . _ ~ (one of {} characters was given)",
                token.chars().count()
            ),
        });
    }
    Ok(())
}

/// Binds the dashboard and starts its threads and its task on `executor`.
pub(crate) fn start(
    config: Config,
    core: &Rc<Core>,
    executor: &Executor,
) -> Result<Dashboard, Error> {
    let Config {
        addr: asked,
        token,
        allow_remote,
    } = config;
    let fail = |reason: String| Error::Dashboard {
        addr: asked.clone(),
        reason,
    };
    if asked.is_empty() {
        return Err(fail(
            "a token or remote access was set without RuntimeBuilder::dashboard(addr)".into(),
        ));
    }
    let token = match token {
        Some(token) => {
            check_token(&asked, &token)?;
            token
        }
        None => random_token(),
    };
    let addrs: Vec<SocketAddr> = asked
        .to_socket_addrs()
        .map_err(|err| fail(format!("not an address: {err}")))?
        .collect();
    if addrs.is_empty() {
        return Err(fail("the address resolves to nothing".into()));
    }
    if !allow_remote {
        if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(fail(format!(
                "{remote} is not a loopback address; call \
                 RuntimeBuilder::dashboard_allow_remote() to serve other machines"
            )));
        }
    }
    let listener =
        TcpListener::bind(addrs.as_slice()).map_err(|err| fail(format!("cannot bind: {err}")))?;
    let addr = listener
        .local_addr()
        .map_err(|err| fail(format!("cannot read the bound address: {err}")))?;
    let (queries, serve) = query::open(core);
    let shared = Arc::new(server::Shared {
        token,
        queries,
        since_ms: core.now_ms_at(executor.now()),
        stopping: AtomicBool::new(false),
        active: AtomicUsize::new(0),
    });
    let accepting = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("ordo-dashboard".into())
        .spawn(move || server::accept_loop(&listener, &accepting))
        .map_err(|err| fail(format!("cannot start its thread: {err}")))?;
    drop(executor.spawn(serve));
    tracing::info!(%addr, "ordo dashboard listening");
    Ok(Dashboard {
        addr,
        shared,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_long_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(check_token("x", &a).is_ok());
        assert!(check_token("x", "has a space in it, see").is_err());
    }
}
