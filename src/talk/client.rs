//! [`Client`]: how other threads (an HTTP handler on tokio's multi-thread runtime, a
//! webhook) talk to the runtime's thread: start workflows and await their results, send
//! messages, read events, resolve awakeables.
//!
//! A client is a channel into one task on the runtime's executor; the channel's waker
//! crosses threads, so a request wakes the runtime wherever it is parked. Nothing a
//! client does reads or writes workflow state behind the runtime's back: the runtime's
//! thread stages each request into its next group commit and answers once that commit
//! is durable. The task lives as long as some client does, so `Runtime::run` keeps
//! serving while clients exist.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::BoxFuture;
use futures::{Future, FutureExt, StreamExt};
use ordo_journal::{Message, Outcome, Status};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::core::{Core, Started, Write};
use crate::deadline::StartOptions;
use crate::error::Error;
use crate::fingerprint;
use crate::talk::awakeable::{parse_token, Tokens};
use crate::talk::watch::{wait_for, WatchKey};

/// A client's input for a workflow, encoded on the caller's thread, with the
/// fingerprints of its input, output and error types, checked against the registered
/// ones on the runtime's thread.
pub(crate) struct Typed {
    input: Vec<u8>,
    input_fingerprint: u64,
    input_name: &'static str,
    output: u64,
    error: u64,
}

impl Typed {
    /// Encodes `input` (`id` names the workflow in an encoding error).
    fn encode<I, O, E>(id: &str, input: &I) -> Result<Typed, Error>
    where
        I: Serialize + DeserializeOwned + 'static,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        let key = fingerprint::of::<I>();
        let input = codec::encode(key, input).map_err(|detail| Error::Encode {
            workflow_id: id.to_string(),
            what: "input".into(),
            detail,
        })?;
        Ok(Typed {
            input,
            input_fingerprint: key.fingerprint,
            input_name: key.name,
            output: fingerprint::of::<O>().fingerprint,
            error: fingerprint::of::<E>().fingerprint,
        })
    }
}

/// What a client asks the runtime's thread.
pub(crate) enum Request {
    Start {
        name: String,
        id: String,
        typed: Typed,
        /// A new workflow's timeout and trace context.
        options: StartOptions,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Result {
        id: String,
        reply: oneshot::Sender<Result<Outcome, Error>>,
    },
    Send {
        message: Message,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    GetEvent {
        workflow_id: String,
        key: String,
        timeout: Duration,
        reply: oneshot::Sender<Result<Option<Vec<u8>>, Error>>,
    },
    Resolve {
        token: String,
        outcome: Outcome,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Status {
        id: String,
        reply: oneshot::Sender<Result<Option<Status>, Error>>,
    },
    Enqueue {
        queue: String,
        name: String,
        typed: Typed,
        options: crate::queue::EnqueueOptions,
        reply: oneshot::Sender<Result<String, Error>>,
    },
    /// Cancel, resume, fork, gc and the admin reads (the `admin` module).
    Operate(crate::admin::Operation),
}

/// The sending end every clone of a client shares; the runtime keeps only a weak
/// reference, so the serving task ends when the last client is dropped.
pub(crate) struct Shared {
    requests: mpsc::UnboundedSender<Request>,
}

/// A `Send + Sync + Clone` handle on a runtime, usable from any thread and any
/// executor. Get one with [`Runtime::client`](crate::Runtime::client).
///
/// Every call is durable before its future resolves (the runtime answers after the
/// group commit that holds it), and none blocks the runtime's thread. The runtime must
/// be driven ([`Runtime::block_on`](crate::Runtime::block_on) or
/// [`Runtime::run`](crate::Runtime::run)) for requests to be served; once it is dropped,
/// calls fail with [`Error::RuntimeGone`].
///
/// ```
/// use ordo::{Ctx, Runtime};
///
/// async fn greet(_: Ctx, name: String) -> Result<String, String> { Ok(format!("hi {name}")) }
///
/// let rt = Runtime::builder().temporary().register("greet", greet).build()?;
/// let client = rt.client();
/// let caller = std::thread::spawn(move || {
///     futures::executor::block_on(async {
///         let handle = client.start::<String, String, String>("greet", "g-1", "ada".into()).await?;
///         handle.result().await
///     })
/// });
/// // The runtime's thread serves until the caller is done (and its client dropped).
/// futures::executor::block_on(rt.run());
/// assert_eq!(caller.join().expect("no panic")?, Ok("hi ada".to_string()));
/// # Ok::<(), ordo::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// Sends `request` (made with `reply`'s sender) and awaits the answer.
/// (Boxed, so the future captures none of the closure's borrows.)
pub(crate) fn ask<T: Send + 'static>(
    shared: &Shared,
    request: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Request,
) -> BoxFuture<'static, Result<T, Error>> {
    let (reply, answer) = oneshot::channel();
    let sent = shared.requests.unbounded_send(request(reply));
    async move {
        sent.map_err(|_| Error::RuntimeGone)?;
        answer.await.map_err(|_| Error::RuntimeGone)?
    }
    .boxed()
}

impl Client {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Client { shared }
    }

    /// Starts workflow `name` under `id` with `input`, once: a workflow already recorded
    /// under `id` (same name) is not started again, and its handle is returned. Resolves
    /// once the start is durable. Types are checked against the registration, as by
    /// [`Runtime::start`](crate::Runtime::start).
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// # async fn nop(_: Ctx, n: u8) -> Result<u8, ()> { Ok(n) }
    /// # let rt = Runtime::builder().temporary().register("nop", nop).build()?;
    /// let client = rt.client();
    /// let handle = rt.block_on(client.start::<u8, u8, ()>("nop", "n-1", 5))?;
    /// assert_eq!(handle.id(), "n-1");
    /// assert_eq!(rt.block_on(handle.result())?, Ok(5));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn start<I, O, E>(
        &self,
        name: &str,
        id: &str,
        input: I,
    ) -> impl Future<Output = Result<ClientHandle<O, E>, Error>> + Send + 'static
    where
        I: Serialize + DeserializeOwned + 'static,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        self.start_with(name, id, input, StartOptions::default())
    }

    /// [`Client::start`] with [`StartOptions`] (a timeout, a trace context), as
    /// [`Runtime::start_with`](crate::Runtime::start_with). A timeout counts from when
    /// the runtime's thread takes the request; the deadline it makes is durable before
    /// the future resolves.
    ///
    /// ```
    /// use ordo::{Clock, Ctx, Error, Runtime, StartOptions};
    /// use std::time::Duration;
    ///
    /// async fn slow(ctx: Ctx, _: ()) -> Result<(), String> {
    ///     ctx.sleep(Duration::from_secs(3600)).await;
    ///     Ok(())
    /// }
    /// let rt = Runtime::builder().temporary().clock(Clock::Virtual).register("slow", slow).build()?;
    /// let client = rt.client();
    /// let options = StartOptions::default().timeout(Duration::from_secs(60));
    /// let handle = rt.block_on(client.start_with::<(), (), String>("slow", "s-1", (), options))?;
    /// assert!(matches!(rt.block_on(handle.result()), Err(Error::DeadlineExceeded { .. })));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn start_with<I, O, E>(
        &self,
        name: &str,
        id: &str,
        input: I,
        options: StartOptions,
    ) -> impl Future<Output = Result<ClientHandle<O, E>, Error>> + Send + 'static
    where
        I: Serialize + DeserializeOwned + 'static,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        let typed = Typed::encode::<I, O, E>(id, &input);
        let handle = ClientHandle {
            id: id.to_string(),
            client: self.clone(),
            _types: PhantomData,
        };
        let (name, id) = (name.to_string(), id.to_string());
        let shared = Arc::clone(&self.shared);
        async move {
            let typed = typed?;
            ask(&shared, |reply| Request::Start {
                name,
                id,
                typed,
                options,
                reply,
            })
            .await?;
            Ok(handle)
        }
    }

    /// Puts workflow `name` with `input` in queue `queue`, as
    /// [`Runtime::enqueue`](crate::Runtime::enqueue) does; resolves once the enqueue is
    /// durable, to the handle of the workflow enqueued (or found under its id, or
    /// holding its deduplication id when [`OnDuplicate::ReturnExisting`](crate::OnDuplicate::ReturnExisting) asks).
    ///
    /// ```
    /// use ordo::{Ctx, EnqueueOptions, QueueOptions, Runtime};
    /// async fn resize(_: Ctx, px: u32) -> Result<u32, String> { Ok(px / 2) }
    /// let rt = Runtime::builder().temporary()
    ///     .queue("images", QueueOptions::new().concurrency(2))
    ///     .register("resize", resize).build()?;
    /// let client = rt.client();
    /// let handle = rt.block_on(client.enqueue::<_, u32, String>("images", "resize", 640u32,
    ///     EnqueueOptions::new().id("img-1")))?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(320));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn enqueue<I, O, E>(
        &self,
        queue: &str,
        name: &str,
        input: I,
        options: crate::queue::EnqueueOptions,
    ) -> impl Future<Output = Result<ClientHandle<O, E>, Error>> + Send + 'static
    where
        I: Serialize + DeserializeOwned + 'static,
        O: DeserializeOwned + 'static,
        E: DeserializeOwned + 'static,
    {
        let what = options.id.clone().unwrap_or_else(|| queue.to_string());
        let typed = Typed::encode::<I, O, E>(&what, &input);
        let (queue, name) = (queue.to_string(), name.to_string());
        let client = self.clone();
        async move {
            let typed = typed?;
            let id = ask(&client.shared, |reply| Request::Enqueue {
                queue,
                name,
                typed,
                options,
                reply,
            })
            .await?;
            Ok(ClientHandle {
                id,
                client,
                _types: PhantomData,
            })
        }
    }

    /// A handle on workflow `id` (started by anyone), to await its result.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// # async fn nop(_: Ctx, n: u8) -> Result<u8, ()> { Ok(n) }
    /// # let rt = Runtime::builder().temporary().register("nop", nop).build()?;
    /// rt.start::<_, u8, ()>("nop", "n-1", 3u8)?;
    /// let handle = rt.client().handle::<u8, ()>("n-1");
    /// assert_eq!(rt.block_on(handle.result())?, Ok(3));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn handle<O, E>(&self, id: &str) -> ClientHandle<O, E> {
        ClientHandle {
            id: id.to_string(),
            client: self.clone(),
            _types: PhantomData,
        }
    }

    /// Workflow `id`'s status now, without waiting for anything: `None` if no workflow
    /// has that id (a start under way counts as `Pending`).
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime, Status};
    /// # async fn nop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// # let rt = Runtime::builder().temporary().register("nop", nop).build()?;
    /// let client = rt.client();
    /// assert_eq!(rt.block_on(client.status("n"))?, None);
    /// let handle = rt.block_on(client.start::<(), (), ()>("nop", "n", ()))?;
    /// rt.block_on(handle.result())?.expect("runs");
    /// assert_eq!(rt.block_on(client.status("n"))?, Some(Status::Succeeded));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn status(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Status>, Error>> + Send + 'static {
        ask(&self.shared, |reply| Request::Status {
            id: id.to_string(),
            reply,
        })
    }

    /// Sends `message` to workflow `destination` under `topic`; durable when it
    /// resolves. Fails with [`Error::UnknownDestination`] if no workflow has that id.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    /// async fn inbox(ctx: Ctx, _: ()) -> Result<Option<String>, ()> {
    ///     Ok(ctx.recv::<String>("note", Duration::from_secs(60)).await)
    /// }
    /// let rt = Runtime::builder().temporary().register("inbox", inbox).build()?;
    /// let handle = rt.start::<_, Option<String>, ()>("inbox", "i-1", ())?;
    /// let client = rt.client();
    /// rt.block_on(client.send("i-1", "note", "hello".to_string()))?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(Some("hello".to_string())));
    /// assert!(matches!(rt.block_on(client.send("nobody", "note", 1u8)), Err(ordo::Error::UnknownDestination { .. })));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn send<M>(
        &self,
        destination: &str,
        topic: &str,
        message: M,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        M: Serialize + DeserializeOwned + 'static,
    {
        self.send_message(destination, topic, message, None)
    }

    /// Like [`Client::send`], deduplicated: of all messages to `destination` with the
    /// same `idempotency_key` (a webhook delivered twice, a retried request), only the
    /// first is stored; the others resolve `Ok` without sending anything.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    /// async fn count(ctx: Ctx, _: ()) -> Result<u32, ()> {
    ///     let mut n = 0;
    ///     while ctx.recv::<u8>("hook", Duration::from_millis(200)).await.is_some() { n += 1; }
    ///     Ok(n)
    /// }
    /// let rt = Runtime::builder().temporary().register("count", count).build()?;
    /// let handle = rt.start::<_, u32, ()>("count", "c-1", ())?;
    /// let client = rt.client();
    /// rt.block_on(client.send_idempotent("c-1", "hook", 1u8, "delivery-9"))?;
    /// rt.block_on(client.send_idempotent("c-1", "hook", 1u8, "delivery-9"))?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(1));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn send_idempotent<M>(
        &self,
        destination: &str,
        topic: &str,
        message: M,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        M: Serialize + DeserializeOwned + 'static,
    {
        self.send_message(
            destination,
            topic,
            message,
            Some(idempotency_key.to_string()),
        )
    }

    fn send_message<M>(
        &self,
        destination: &str,
        topic: &str,
        message: M,
        idempotency_key: Option<String>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        M: Serialize + DeserializeOwned + 'static,
    {
        let payload =
            codec::encode(fingerprint::of::<M>(), &message).map_err(|detail| Error::Encode {
                workflow_id: destination.to_string(),
                what: format!("a message on topic {topic:?}"),
                detail,
            });
        let (destination, topic) = (destination.to_string(), topic.to_string());
        let shared = Arc::clone(&self.shared);
        async move {
            crate::core::check_key(&destination)?;
            crate::core::check_key(&topic)?;
            if let Some(key) = &idempotency_key {
                crate::core::check_key(key)?;
            }
            let message = Message {
                destination,
                topic,
                number: 0,
                payload: payload?,
                sent_ms: 0,
                idempotency_key,
            };
            ask(&shared, |reply| Request::Send { message, reply }).await
        }
    }

    /// The latest value of event `key` of workflow `workflow_id`, waiting up to
    /// `timeout` for one to be set; `None` if none was by then. A value of another type
    /// than `T` is an [`Error::TypeMismatch`].
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    /// async fn order(ctx: Ctx, _: ()) -> Result<(), ()> {
    ///     ctx.set_event("status", "shipped".to_string()).await;
    ///     Ok(())
    /// }
    /// let rt = Runtime::builder().temporary().register("order", order).build()?;
    /// rt.start::<_, (), ()>("order", "o-1", ())?;
    /// let client = rt.client();
    /// let status = rt.block_on(client.get_event::<String>("o-1", "status", Duration::from_secs(5)))?;
    /// assert_eq!(status.as_deref(), Some("shipped"));
    /// let missing = rt.block_on(client.get_event::<String>("o-1", "eta", Duration::from_millis(10)))?;
    /// assert_eq!(missing, None);
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn get_event<T>(
        &self,
        workflow_id: &str,
        key: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<T>, Error>> + Send + 'static
    where
        T: DeserializeOwned + 'static,
    {
        let asked = ask(&self.shared, |reply| Request::GetEvent {
            workflow_id: workflow_id.to_string(),
            key: key.to_string(),
            timeout,
            reply,
        });
        let (workflow_id, key) = (workflow_id.to_string(), key.to_string());
        async move {
            let Some(bytes) = asked.await? else {
                return Ok(None);
            };
            let expected = fingerprint::of::<T>();
            codec::decode::<T>(expected, &bytes)
                .map(Some)
                .map_err(|err| {
                    codec::type_error_here(&workflow_id, format!("event {key:?}"), expected, err)
                })
        }
    }

    /// Resolves the awakeable whose token is `token` with `value`: durable when it
    /// resolves; the workflow's [`Awakeable`](crate::Awakeable) completes with
    /// `Ok(value)`. A token no workflow gave out is [`Error::UnknownAwakeable`]; a
    /// second resolution is [`Error::AwakeableResolved`] (the first stands).
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn hook(ctx: Ctx, _: ()) -> Result<String, String> {
    ///     let (token, done) = ctx.awakeable::<String>();
    ///     ctx.set_event("token", token).await;
    ///     done.await
    /// }
    /// let rt = Runtime::builder().temporary().register("hook", hook).build()?;
    /// let handle = rt.start::<_, String, String>("hook", "h-1", ())?;
    /// let client = rt.client();
    /// let token: String = rt.block_on(client.get_event("h-1", "token", std::time::Duration::from_secs(5)))?.expect("set");
    /// rt.block_on(client.resolve_awakeable(&token, "ok".to_string()))?;
    /// let again = rt.block_on(client.resolve_awakeable(&token, "twice".to_string()));
    /// assert!(matches!(again, Err(ordo::Error::AwakeableResolved { .. })));
    /// assert_eq!(rt.block_on(handle.result())?, Ok("ok".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn resolve_awakeable<T>(
        &self,
        token: &str,
        value: T,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        let outcome = codec::encode(fingerprint::of::<T>(), &value).map(Outcome::Ok);
        self.resolve(token, outcome)
    }

    /// Resolves the awakeable whose token is `token` with an error: the workflow's
    /// [`Awakeable`](crate::Awakeable) completes with `Err(reason)`.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn hook(ctx: Ctx, _: ()) -> Result<u8, String> {
    ///     let (token, done) = ctx.awakeable::<u8>();
    ///     ctx.set_event("token", token).await;
    ///     done.await
    /// }
    /// let rt = Runtime::builder().temporary().register("hook", hook).build()?;
    /// let handle = rt.start::<_, u8, String>("hook", "h-1", ())?;
    /// let client = rt.client();
    /// let token: String = rt.block_on(client.get_event("h-1", "token", std::time::Duration::from_secs(5)))?.expect("set");
    /// rt.block_on(client.reject_awakeable(&token, "card declined"))?;
    /// assert_eq!(rt.block_on(handle.result())?, Err("card declined".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn reject_awakeable(
        &self,
        token: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let outcome =
            codec::encode(fingerprint::of::<String>(), &reason.to_string()).map(Outcome::Err);
        self.resolve(token, outcome)
    }

    fn resolve(
        &self,
        token: &str,
        outcome: Result<Outcome, String>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let token = token.to_string();
        let shared = Arc::clone(&self.shared);
        async move {
            let outcome = outcome.map_err(|detail| Error::Encode {
                workflow_id: token.clone(),
                what: "an awakeable's resolution".into(),
                detail,
            })?;
            ask(&shared, |reply| Request::Resolve {
                token,
                outcome,
                reply,
            })
            .await
        }
    }
}

/// A client's typed handle on one workflow.
///
/// ```
/// # use ordo::{ClientHandle, Ctx, Runtime};
/// # async fn nop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
/// # let rt = Runtime::builder().temporary().register("nop", nop).build()?;
/// let handle: ClientHandle<(), ()> = rt.block_on(rt.client().start("nop", "n", ()))?;
/// assert_eq!(rt.block_on(handle.result())?, Ok(()));
/// # Ok::<(), ordo::Error>(())
/// ```
pub struct ClientHandle<O, E> {
    id: String,
    client: Client,
    _types: PhantomData<fn() -> (O, E)>,
}

impl<O, E> Clone for ClientHandle<O, E> {
    fn clone(&self) -> Self {
        ClientHandle {
            id: self.id.clone(),
            client: self.client.clone(),
            _types: PhantomData,
        }
    }
}

impl<O: DeserializeOwned + 'static, E: DeserializeOwned + 'static> ClientHandle<O, E> {
    /// The workflow's id.
    ///
    /// ```
    /// # let rt = ordo::Runtime::builder().temporary().build()?;
    /// assert_eq!(rt.client().handle::<(), ()>("x").id(), "x");
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The workflow's result once its final record is durable, as
    /// [`WorkflowHandle::result`](crate::WorkflowHandle::result) gives it.
    ///
    /// ```
    /// # use ordo::{Ctx, Runtime};
    /// # async fn no(_: Ctx, _: ()) -> Result<(), String> { Err("no".into()) }
    /// # let rt = Runtime::builder().temporary().register("no", no).build()?;
    /// let handle = rt.block_on(rt.client().start::<(), (), String>("no", "n", ()))?;
    /// assert_eq!(rt.block_on(handle.result())?, Err("no".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn result(&self) -> impl Future<Output = Result<Result<O, E>, Error>> + Send + 'static {
        let id = self.id.clone();
        let asked = ask(&self.client.shared, |reply| Request::Result {
            id: id.clone(),
            reply,
        });
        async move {
            let outcome = asked.await?;
            codec::decode_result(&outcome)
                .map_err(|(key, err)| codec::type_error_here(&id, "output".into(), key, err))
        }
    }
}

/// A new channel: the clients' end, and the runtime's.
pub(crate) fn channel() -> (Arc<Shared>, mpsc::UnboundedReceiver<Request>) {
    let (requests, incoming) = mpsc::unbounded();
    (Arc::new(Shared { requests }), incoming)
}

/// The runtime's side: a new channel and the task that serves it.
pub(crate) fn open(core: &Rc<Core>) -> (Arc<Shared>, impl Future<Output = ()> + 'static) {
    let (shared, mut incoming) = channel();
    let core = Rc::clone(core);
    let serve = async move {
        while let Some(request) = incoming.next().await {
            core.serve(request);
        }
    };
    (shared, serve)
}

impl Core {
    /// Serves one client request on the runtime's thread: what must be durable goes
    /// into the next group commit, and the answer follows it.
    pub(crate) fn serve(self: &Rc<Self>, request: Request) {
        if let Some(err) = self.broken() {
            request.refuse(err);
            return;
        }
        match request {
            Request::Start {
                name,
                id,
                typed,
                options,
                reply,
            } => {
                let reply: crate::core::Reply = Box::new(move |r| drop(reply.send(r)));
                match self.client_start(&name, &id, typed, options) {
                    Ok(Started::Staged(wf)) => self.queue_start_reply(wf, reply),
                    Ok(_) => self.reply_when_durable(id, reply),
                    Err(err) => reply(Err(err)),
                }
            }
            Request::Result { id, reply } => {
                let running = self.running.borrow().get(&id).cloned();
                let outcome = crate::handle::final_outcome(Rc::clone(self), id, running);
                drop(ordo_executor::spawn(async move {
                    drop(reply.send(outcome.await));
                }));
            }
            Request::Send { message, reply } => match self.client_send(&message) {
                Err(err) => drop(reply.send(Err(err))),
                Ok(Some(duplicate_pending)) => {
                    let reply: crate::core::Reply = Box::new(move |r| drop(reply.send(r)));
                    if duplicate_pending {
                        self.queue_reply(reply);
                    } else {
                        reply(Ok(()));
                    }
                }
                Ok(None) => self.stage_client_message(message, reply),
            },
            Request::GetEvent {
                workflow_id,
                key,
                timeout,
                reply,
            } => {
                let deadline = ordo_executor::saturating_deadline(ordo_executor::now(), timeout);
                let watch = WatchKey::Event(workflow_id.clone(), key.clone());
                let waited = wait_for(Rc::clone(self), watch, Some(deadline), move |core| {
                    core.store.event(&workflow_id, &key).map_err(Error::from)
                });
                drop(ordo_executor::spawn(async move {
                    drop(reply.send(waited.await));
                }));
            }
            Request::Enqueue {
                queue,
                name,
                typed,
                options,
                reply,
            } => self.client_enqueue(&queue, &name, typed, &options, reply),
            Request::Status { id, reply } => {
                let status = if self.running.borrow().contains_key(&id) {
                    Ok(Some(Status::Pending))
                } else {
                    self.store
                        .workflow(&id)
                        .map(|record| record.map(|r| r.status))
                        .map_err(Error::from)
                };
                drop(reply.send(status));
            }
            Request::Resolve {
                token,
                outcome,
                reply,
            } => match self.check_resolution(&token) {
                Ok((workflow_id, step_id)) => self.queue_write(
                    Write::Resolve {
                        workflow_id,
                        step_id,
                        outcome,
                    },
                    Box::new(move |r| drop(reply.send(r))),
                ),
                Err(err) => drop(reply.send(Err(err))),
            },
            Request::Operate(operation) => self.operate(operation),
        }
    }

    /// A client's start: what [`Core::start_workflow`] found or did.
    fn client_start(
        self: &Rc<Self>,
        name: &str,
        id: &str,
        typed: Typed,
        options: StartOptions,
    ) -> Result<Started, Error> {
        let registration = self.check_client_types(name, id, &typed)?;
        let now_ms = self.now_ms();
        self.start_workflow(name, id, registration, typed.input, now_ms, options)
    }

    /// The registration of workflow `name`, if a client's input, output and error types
    /// (their fingerprints) are its registered ones.
    fn check_client_types(
        &self,
        name: &str,
        id: &str,
        typed: &Typed,
    ) -> Result<crate::registry::Registration, Error> {
        let registration = self.registry.lookup(name)?.clone();
        if registration.input.fingerprint != typed.input_fingerprint {
            return Err(Error::TypeMismatch {
                workflow_id: id.to_string(),
                what: "input".into(),
                expected: registration.input.name,
                recorded: typed.input_name.to_string(),
                detail: "the input given is not of the registered input type".into(),
            });
        }
        for (what, registered, asked) in [
            (
                "output type of the handle",
                registration.output,
                typed.output,
            ),
            ("error type of the handle", registration.error, typed.error),
        ] {
            if registered.fingerprint != asked {
                return Err(Error::TypeMismatch {
                    workflow_id: id.to_string(),
                    what: what.into(),
                    expected: registered.name,
                    recorded: format!("another type (fingerprint {asked:016x})"),
                    detail: "the handle's type is not the registered one".into(),
                });
            }
        }
        Ok(registration)
    }

    /// A client's enqueue: the id it is (or was) enqueued under, answered after the
    /// commit that writes it when it is new.
    fn client_enqueue(
        self: &Rc<Self>,
        queue: &str,
        name: &str,
        typed: Typed,
        options: &crate::queue::EnqueueOptions,
        reply: oneshot::Sender<Result<String, Error>>,
    ) {
        let id = options
            .id
            .clone()
            .unwrap_or_else(|| crate::queue::generated_id(queue));
        let enqueued = self
            .queues
            .options(queue)
            .and_then(|_| self.check_client_types(name, &id, &typed))
            .and_then(|_| {
                let record = ordo_journal::WorkflowRecord::new(&id, name, typed.input, 0);
                self.queues
                    .enqueue_outside(self, queue, record, options, self.now_ms())
            });
        match enqueued {
            // Answered once the commit that writes it is durable.
            Ok((id, Some(_))) => {
                let answer = id.clone();
                self.queue_enqueue_reply(
                    id,
                    Box::new(move |r| drop(reply.send(r.map(|()| answer)))),
                );
            }
            Ok((id, None)) => {
                let answer = id.clone();
                self.reply_when_durable(
                    id,
                    Box::new(move |r| drop(reply.send(r.map(|()| answer)))),
                );
            }
            Err(err) => drop(reply.send(Err(err))),
        }
    }

    /// Answers a client whose start or enqueue found workflow `id` there already: at
    /// once if it is durable, else with the commit that writes it (another request's
    /// start or enqueue of the same id, in the same turn, say), as that request is.
    fn reply_when_durable(&self, id: String, reply: crate::core::Reply) {
        let running = self.running.borrow().get(&id).cloned();
        match running {
            Some(wf) if self.start_is_staged(&wf) => self.queue_start_reply(wf, reply),
            _ if self.queues.is_staged(&id) => self.queue_enqueue_reply(id, reply),
            _ => reply(Ok(())),
        }
    }

    /// Checks a client's message: `Err` if its destination does not exist; `Some` if its
    /// idempotency key was used already (`true` while that first message's commit is
    /// still to come); `None` if it is to be sent.
    fn client_send(&self, message: &Message) -> Result<Option<bool>, Error> {
        if !self.workflow_exists(&message.destination)? {
            return Err(Error::UnknownDestination {
                workflow_id: message.destination.clone(),
            });
        }
        let Some(key) = &message.idempotency_key else {
            return Ok(None);
        };
        if self.store.message_key_used(&message.destination, key)? {
            return Ok(Some(false));
        }
        let pending = self.outbox_has(|write| match write {
            Write::Send(m) => {
                m.destination == message.destination && m.idempotency_key.as_ref() == Some(key)
            }
            Write::Resolve { .. } => false,
        });
        Ok(pending.then_some(true))
    }

    /// Stages a client's message for the next commit, and hands it at once to its
    /// destination's mailbox if that runs here: a `recv` waiting for it completes in the
    /// same commit that stores the message (one durability point, not two), and is
    /// delivered only once that commit is durable. A client's write is never dropped
    /// short of the runtime stopping, so the message is stored whenever the `recv`'s
    /// record is.
    fn stage_client_message(
        &self,
        mut message: Message,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        message.number = self.message_number();
        let destination = self.running.borrow().get(&message.destination).cloned();
        if let Some(wf) = destination {
            wf.letter_staged(
                self,
                &message.topic,
                crate::talk::mailbox::Letter {
                    number: message.number,
                    payload: message.payload.clone(),
                },
            );
        }
        self.queue_write(Write::Send(message), Box::new(move |r| drop(reply.send(r))));
    }

    /// The workflow and step a token names, if it may still be resolved.
    fn check_resolution(&self, token: &str) -> Result<(String, u64), Error> {
        let (workflow_id, step_id) = parse_token(token)?;
        let unknown = |reason: String| Error::UnknownAwakeable {
            token: token.to_string(),
            reason,
        };
        let running = self.running.borrow().get(&workflow_id).cloned();
        let record = match running {
            Some(_) => None,
            None => self.store.workflow(&workflow_id)?,
        };
        let tokens = match (&running, &record) {
            (Some(wf), _) => Tokens::of(&*self.store, wf),
            (None, Some(record)) => Tokens::of_record(&*self.store, record),
            (None, None) if self.workflow_exists(&workflow_id)? => {
                return Err(unknown(format!("workflow {workflow_id:?} has not started")))
            }
            (None, None) => return Err(unknown(format!("no workflow {workflow_id:?} exists"))),
        };
        // First: nothing more is said about a token that was never given out.
        if !tokens.gave_out(token, step_id) {
            return Err(unknown(format!(
                "workflow {workflow_id:?} gave out no such token"
            )));
        }
        let pending = self.outbox_has(|write| {
            matches!(write, Write::Resolve { workflow_id: w, step_id: s, .. } if *w == workflow_id && *s == step_id)
        });
        if pending || self.store.awakeable(&workflow_id, step_id)?.is_some() {
            return Err(Error::AwakeableResolved {
                token: token.to_string(),
            });
        }
        // A token is given out by the step that creates the awakeable: one naming a step
        // not created yet, or a step of another kind, was not given out (a stored
        // resolution would complete whatever awakeable that step later turns out to be).
        let earlier_run = || {
            unknown(format!(
                "step {step_id} belongs to an earlier run of workflow {workflow_id:?}, \
                 which continued as new"
            ))
        };
        match (running, record) {
            (Some(wf), _) if step_id < wf.first_step.get() => return Err(earlier_run()),
            (Some(wf), _) if step_id >= wf.steps_created() => {
                return Err(unknown(format!(
                    "workflow {workflow_id:?} has created no step {step_id}"
                )));
            }
            (Some(wf), _) => {
                if let Some(name) = wf.slot_name(step_id) {
                    if &*name != crate::talk::awakeable::AWAKEABLE {
                        return Err(unknown(format!(
                            "step {step_id} of workflow {workflow_id:?} is a {name:?} step, \
                             not an awakeable"
                        )));
                    }
                }
            }
            (None, Some(record)) if step_id < record.first_step => return Err(earlier_run()),
            (None, Some(record)) if record.status.is_finished() => {
                return Err(unknown(format!(
                    "workflow {workflow_id:?} has ended ({})",
                    record.status
                )));
            }
            (None, Some(record)) if record.status != Status::Pending => {
                return Err(unknown(format!(
                    "workflow {workflow_id:?} has not started ({})",
                    record.status
                )));
            }
            (None, _) => {}
        }
        Ok((workflow_id, step_id))
    }
}

impl Request {
    /// Answers the request with `err`.
    fn refuse(self, err: Error) {
        match self {
            Request::Start { reply, .. }
            | Request::Send { reply, .. }
            | Request::Resolve { reply, .. } => drop(reply.send(Err(err))),
            Request::Result { reply, .. } => drop(reply.send(Err(err))),
            Request::GetEvent { reply, .. } => drop(reply.send(Err(err))),
            Request::Status { reply, .. } => drop(reply.send(Err(err))),
            Request::Enqueue { reply, .. } => drop(reply.send(Err(err))),
            Request::Operate(operation) => operation.refuse(err),
        }
    }
}
