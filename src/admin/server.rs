//! The admin socket: a `UnixListener` in the journal's folder, served by threads of its
//! own that forward every request through a [`Client`] to the runtime's thread.
//!
//! Why std threads and not tokio: the server needs blocking accepts and reads, a
//! handful of connections at most, and must keep tokio out of the workflow executor;
//! a thread per connection is the simplest thing that does it.

use std::cell::RefCell;
use std::fs::{self, DirBuilder, Permissions};
use std::io::{BufRead, BufReader, ErrorKind as IoErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::admin::protocol::{self, ErrorKind, Reply, Request, MAX_FRAME, SOCKET_FILE};
use crate::admin::view::ShownWorkflow;
use crate::core::Core;
use crate::error::Error;
use crate::talk::client::{self, Request as ClientRequest};
use crate::talk::Client;

/// Most connections served at once; one more gets [`ErrorKind::Busy`]. The CLI makes
/// one at a time; the cap keeps a misbehaving local process from spawning threads
/// without end.
const MAX_CONNECTIONS: usize = 16;

/// How long a connection may sit without sending a whole request before it is closed,
/// so a client that connects and goes quiet does not hold a thread for ever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The serving side of the socket; dropping it stops the accepting thread and removes
/// the socket file.
pub(crate) struct AdminServer {
    /// The socket file, `<data>/admin.sock`.
    path: PathBuf,
    /// Tells the accepting thread to end at its next wake-up (a connection made by
    /// `drop` itself).
    stop: Arc<AtomicBool>,
    accepting: Option<JoinHandle<()>>,
}

/// The runtime's end of the admin client's channel, drained by the executor's stall
/// hook rather than by a task: a task waiting on it would keep `Runtime::run` from ever
/// completing, and the stall hook runs on the runtime's thread between deliveries,
/// where every operation belongs.
pub(crate) struct Inbox {
    /// A `RefCell` because the hook is `FnMut` only through its closure; never borrowed
    /// while a request is served.
    pub(crate) requests: RefCell<UnboundedReceiver<ClientRequest>>,
    /// The executor's stall waker, registered on the channel, so that a request rouses
    /// a parked runtime and its stall hook runs.
    pub(crate) waker: Waker,
}

impl Inbox {
    /// Serves every request that has arrived; `true` if there was one (it may have made
    /// tasks ready or staged writes for the next commit).
    pub(crate) fn serve(&self, core: &Rc<Core>) -> bool {
        let mut cx = Context::from_waker(&self.waker);
        let mut served = false;
        loop {
            let next = self.requests.borrow_mut().poll_next_unpin(&mut cx);
            match next {
                Poll::Ready(Some(request)) => {
                    core.serve(request);
                    served = true;
                }
                Poll::Ready(None) | Poll::Pending => return served,
            }
        }
    }
}

/// Creates the socket in `dir` and starts serving it; `waker` is the executor's stall
/// waker.
pub(crate) fn start(dir: &Path, waker: Waker) -> Result<(AdminServer, Inbox), Error> {
    let path = dir.join(SOCKET_FILE);
    let fail = |detail: String| Error::AdminSocket {
        path: path.clone(),
        detail,
    };
    let listener = bind(dir, &path).map_err(|err| fail(err.to_string()))?;
    let (shared, requests) = client::channel();
    let client = Client::new(shared);
    let stop = Arc::new(AtomicBool::new(false));
    let accepting = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("ordo-admin".into())
            .spawn(move || accept(&listener, &client, &stop))
            .map_err(|err| fail(format!("cannot start its thread: {err}")))?
    };
    let server = AdminServer {
        path,
        stop,
        accepting: Some(accepting),
    };
    let inbox = Inbox {
        requests: RefCell::new(requests),
        waker,
    };
    Ok((server, inbox))
}

impl AdminServer {
    /// The socket file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accepting thread, which sees `stop` and ends.
        let woken = super::protocol::connect(&self.path).is_ok();
        if let Some(accepting) = self.accepting.take() {
            if woken {
                drop(accepting.join());
            }
        }
        // The runtime still holds the journal's lock here (see `Runtime`'s field
        // order), so the file is still this runtime's, not a successor's.
        drop(fs::remove_file(&self.path));
    }
}

/// Binds the socket at `path` (in `dir`), mode 0600.
///
/// Whoever runs this holds the journal's lock, so no live process serves `dir`: a
/// socket file already there is a dead process's (killed before it could remove it)
/// and is replaced. A file of another kind is left alone, and an error. The socket is
/// bound inside a fresh folder of mode 0700 and moved into place once it is 0600, so
/// at no moment can another user connect to it.
fn bind(dir: &Path, path: &Path) -> std::io::Result<UnixListener> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                IoErrorKind::AlreadyExists,
                "a file that is not a socket is in its place (move it away)",
            ))
        }
        Err(err) if err.kind() == IoErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let private = dir.join(format!(".admin-{}.tmp", std::process::id()));
    // Left by a killed process that had this pid: nobody serves it.
    drop(fs::remove_dir_all(&private));
    DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let temporary = private.join(SOCKET_FILE);
        // A data folder deep in a tree gives a path too long for a socket address:
        // bound through the private folder opened (`/proc/self/fd/N/admin.sock`).
        let (address, _private) = super::protocol::addressable(&temporary)?;
        let listener = UnixListener::bind(&address)?;
        fs::set_permissions(&temporary, Permissions::from_mode(0o600))?;
        fs::rename(&temporary, path)?;
        Ok(listener)
    })();
    drop(fs::remove_dir_all(&private));
    bound
}

/// The accepting thread: one thread per connection, at most [`MAX_CONNECTIONS`].
fn accept(listener: &UnixListener, client: &Client, stop: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut stream) = stream else {
            // Out of file descriptors, say: let it pass rather than spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            let busy = Reply::error(ErrorKind::Busy, "too many admin connections; try again");
            drop(stream.write_all(&busy.to_line()));
            continue;
        }
        let (client, active) = (client.clone(), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("ordo-admin-conn".into())
            .spawn(move || {
                converse(stream, &client);
                active.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            tracing::warn!("ordo admin socket: cannot start a connection thread");
        }
    }
}

/// Serves one connection: a reply per request line, until the client closes it, goes
/// quiet for [`IDLE_TIMEOUT`], or sends a frame over [`MAX_FRAME`].
fn converse(stream: UnixStream, client: &Client) {
    if stream.set_read_timeout(Some(IDLE_TIMEOUT)).is_err() {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_FRAME).unwrap_or(u64::MAX) + 1;
        match (&mut reader).take(limit).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return, // closed, reset, or idle too long
            Ok(_) => {}
        }
        let whole = line.last() == Some(&b'\n');
        if whole {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (reply, go_on) = if line.len() > MAX_FRAME {
            let reply = Reply::error(
                ErrorKind::FrameTooLarge,
                format!("a request line is at most {MAX_FRAME} bytes"),
            );
            (reply, false)
        } else if !whole {
            // The client closed its side in the middle of a request: answer if it still
            // listens, and stop.
            let reply = Reply::error(
                ErrorKind::BadFrame,
                "the connection ended in the middle of a request line",
            );
            (reply, false)
        } else if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        } else {
            let reply = match protocol::parse(&line) {
                Ok(request) => execute(client, request),
                Err(reply) => reply,
            };
            (reply, true)
        };
        if writer.write_all(&reply.to_line()).is_err() || !go_on {
            return;
        }
    }
}

/// Runs `request` through the client (on the runtime's thread) and waits for its answer.
pub(crate) fn execute(client: &Client, request: Request) -> Reply {
    futures::executor::block_on(async {
        let answer: Result<Value, Error> = match request {
            Request::List { status, limit } => to_json(client.list_first(status, limit).await),
            Request::Show { id } => client.show(&id).await.and_then(|(record, completions)| {
                to_json(Ok(ShownWorkflow::new(record, completions)))
            }),
            Request::Stats => to_json(client.stats().await),
            Request::Cancel { id, children } => client
                .cancel(&id, children)
                .await
                .map(|cancelled| json!({ "cancelled": cancelled })),
            Request::Resume { id } => client.resume(&id).await.map(|()| json!({ "resumed": id })),
            Request::Fork { id, at_seq, new_id } => client
                .fork(&id, at_seq, new_id)
                .await
                .map(|forked| json!({ "forked": forked })),
            Request::Gc { older_than_ms } => client
                .gc(Duration::from_millis(older_than_ms))
                .await
                .map(|report| json!({ "deleted": report.deleted, "commits": report.commits })),
        };
        match answer {
            Ok(value) => Reply::Ok(value),
            Err(err) => Reply::error(ErrorKind::of(&err), err.to_string()),
        }
    })
}

/// `value` as JSON.
fn to_json<T: Serialize>(value: Result<T, Error>) -> Result<Value, Error> {
    let value = value?;
    serde_json::to_value(value).map_err(|err| Error::Encode {
        workflow_id: String::new(),
        what: "an admin reply".into(),
        detail: err.to_string(),
    })
}
