//! The dashboard's HTTP thread: accepts connections, checks the token, asks the
//! runtime's thread for what a page shows, and renders it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use ordo_journal::Status;

use super::http::{self, percent_encode, ReadError, Request, Response};
use super::pages;
use super::query::Query;
use crate::error::Error;

/// The cookie that carries the token after a first visit with `?token=`.
pub(crate) const COOKIE: &str = "ordo_dashboard_token";

/// How long a page waits for the runtime's thread to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection's thread shares.
pub(crate) struct Shared {
    pub(crate) token: String,
    pub(crate) queries: UnboundedSender<Query>,
    /// When this process's runtime started (wall ms): completions recorded before it
    /// came from an earlier process.
    pub(crate) since_ms: u64,
    /// Set when the runtime is dropped; the accept loop ends at its next wake-up.
    pub(crate) stopping: AtomicBool,
    /// Connections being served now (at most `http::MAX_CONNECTIONS`).
    pub(crate) active: AtomicUsize,
}

/// The accept loop, until `shared.stopping`.
pub(crate) fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let Ok(stream) = stream else {
            // A connection that failed before it was accepted (reset, out of files):
            // nothing to answer; pause briefly so a persistent failure does not spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if shared.active.fetch_add(1, Ordering::AcqRel) >= http::MAX_CONNECTIONS {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let serving = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("ordo-dashboard-conn".into())
            .spawn(move || {
                serve_connection(stream, &serving);
                serving.active.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            shared.active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    // Without timeouts a silent client would hold its thread forever.
    if stream.set_read_timeout(Some(http::IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(http::IO_TIMEOUT)).is_err()
    {
        return;
    }
    let response = match http::read_request(&stream) {
        Ok(request) => respond(&request, shared),
        Err(ReadError::Refused(status, reason)) => Response::text(status, reason),
        Err(ReadError::Gone) => return,
    };
    // A client that left before its answer: nothing more to do.
    drop(http::write_response(&mut stream, &response));
    drop(stream.shutdown(std::net::Shutdown::Both));
}

/// The token of an `Authorization: Bearer` header (the scheme in any case).
fn bearer(request: &Request) -> Option<&str> {
    let (scheme, token) = request.header("authorization")?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn respond(request: &Request, shared: &Shared) -> Response {
    let token = &shared.token;
    match request.method.as_str() {
        "GET" | "HEAD" => {
            let from_query = request.param("token");
            let given = bearer(request)
                .or(from_query)
                .or_else(|| request.cookie(COOKIE));
            if !given.is_some_and(|g| crate::same_secret(g, token)) {
                return unauthorized();
            }
            let mut response = page(request, shared);
            if from_query.is_some() {
                // The first visit's `?token=` becomes a cookie for the links that follow.
                response.headers.push((
                    "Set-Cookie",
                    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
                ));
            }
            if request.method == "HEAD" {
                response.body.clear();
            }
            response
        }
        "POST" => {
            // A cookie alone does not do: another site could make the browser post a
            // form with it. The token must be in the form (the page puts it there) or in
            // an `Authorization` header.
            let form = request.form();
            let field = |name: &str| {
                form.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            let given = bearer(request).or_else(|| field("token"));
            if !given.is_some_and(|g| crate::same_secret(g, token)) {
                return unauthorized();
            }
            let Some(id) = field("id") else {
                return Response::html(400, pages::message("Bad request", "no workflow id given"));
            };
            action(request.path.as_str(), id, shared)
        }
        _ => Response::text(405, "method not allowed"),
    }
}

fn unauthorized() -> Response {
    let mut response = Response::html(
        401,
        pages::message(
            "Token required",
            "Open the address Runtime::dashboard_url() gives, which carries the token, \
             or send an Authorization: Bearer header.",
        ),
    );
    response
        .headers
        .push(("WWW-Authenticate", "Bearer realm=\"ordo\"".into()));
    response
}

/// Sends a query made with a reply sender and waits for the answer.
fn ask<T>(
    shared: &Shared,
    make: impl FnOnce(SyncSender<Result<T, Error>>) -> Query,
) -> Result<T, Response> {
    let (reply, answer) = sync_channel(1);
    if shared.queries.unbounded_send(make(reply)).is_err() {
        return Err(gone());
    }
    match answer.recv_timeout(ANSWER_TIMEOUT) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(Error::NotFound { workflow_id })) => Err(Response::html(
            404,
            pages::message(
                "Not found",
                &format!("no workflow with id {workflow_id:?} exists"),
            ),
        )),
        Ok(Err(err)) => Err(Response::html(
            500,
            pages::message("Error", &err.to_string()),
        )),
        Err(RecvTimeoutError::Timeout) => Err(Response::html(
            503,
            pages::message(
                "The runtime is not answering",
                "It serves the dashboard while it is driven (Runtime::block_on or \
                 Runtime::run); it may be busy or not driven now.",
            ),
        )),
        Err(RecvTimeoutError::Disconnected) => Err(gone()),
    }
}

fn gone() -> Response {
    Response::html(
        503,
        pages::message("The runtime is gone", "the runtime was dropped"),
    )
}

fn page(request: &Request, shared: &Shared) -> Response {
    let answer = match request.path.as_str() {
        "/" => {
            let status = match request.param("status").filter(|s| !s.is_empty()) {
                None => None,
                Some(text) => match text.parse::<Status>() {
                    Ok(status) => Some(status),
                    Err(err) => {
                        return Response::html(400, pages::message("Bad request", &err.to_string()))
                    }
                },
            };
            let search = request.param("q").unwrap_or("").to_string();
            ask(shared, |reply| Query::List {
                status,
                search: search.clone(),
                reply,
            })
            .map(|listing| pages::list(&listing, status, &search))
        }
        "/workflow" => {
            let Some(id) = request.param("id") else {
                return Response::html(400, pages::message("Bad request", "no workflow id given"));
            };
            let id = id.to_string();
            ask(shared, |reply| Query::Workflow { id, reply })
                .map(|view| pages::workflow(&view, shared.since_ms, &shared.token))
        }
        _ => {
            return Response::html(404, pages::message("Not found", "no such page"));
        }
    };
    match answer {
        Ok(html) => Response::html(200, html),
        Err(response) => response,
    }
}

fn action(path: &str, id: &str, shared: &Shared) -> Response {
    let owned = id.to_string();
    let done = match path {
        "/cancel" => ask(shared, |reply| Query::Cancel { id: owned, reply }).map(drop),
        "/resume" => ask(shared, |reply| Query::Resume { id: owned, reply }),
        _ => return Response::html(404, pages::message("Not found", "no such action")),
    };
    match done {
        Ok(()) => Response::see_other(format!("/workflow?id={}", percent_encode(id))),
        Err(response) => response,
    }
}

/// Where this process reaches a listener bound to `addr`: the loopback address of its
/// family in place of an unspecified one (`0.0.0.0`, `::`).
pub(crate) fn reachable(addr: SocketAddr) -> SocketAddr {
    let mut target = addr;
    if target.ip().is_unspecified() {
        match target {
            SocketAddr::V4(_) => target.set_ip(std::net::Ipv4Addr::LOCALHOST.into()),
            SocketAddr::V6(_) => target.set_ip(std::net::Ipv6Addr::LOCALHOST.into()),
        }
    }
    target
}

/// Wakes the accept loop of a listener at `addr` so it sees `stopping`; `false` if it
/// could not be reached (the loop then ends at its next connection).
pub(crate) fn wake(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&reachable(addr), Duration::from_secs(1)).is_ok()
}
