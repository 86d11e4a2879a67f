//! Events: `Ctx::set_event` publishes a workflow's latest value under a key;
//! `Ctx::get_event` (and the client's) reads another workflow's, waiting for it up to a
//! durable deadline.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures::FutureExt;
use ordo_journal::Outcome;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::core::Effect;
use crate::ctx::{Ctx, Never};
use crate::error::Error;
use crate::fingerprint;
use crate::step::{Body, BodyOutput, Step};
use crate::talk::watch::{wait_for, WatchKey};

const SET: &str = "ordo.event.set";
const GET_UNTIL: &str = "ordo.event.until";
const GET: &str = "ordo.event.get";

impl Ctx {
    /// Sets this workflow's event `key` to `value`: readers see the latest value; the
    /// step's own record keeps each value set, so the history of the key is in the
    /// journal (one step per `set_event`). Takes one step id at the call; the value is
    /// visible once committed.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    ///
    /// async fn order(ctx: Ctx, _: ()) -> Result<(), String> {
    ///     ctx.set_event("status", "reserved".to_string()).await;
    ///     ctx.set_event("status", "paid".to_string()).await;
    ///     Ok(())
    /// }
    /// let rt = Runtime::builder().temporary().register("order", order).build()?;
    /// let handle = rt.start::<_, (), String>("order", "o-1", ())?;
    /// rt.block_on(handle.result())?.expect("the order runs");
    /// let client = rt.client();
    /// let status = rt.block_on(client.get_event::<String>("o-1", "status", std::time::Duration::ZERO))?;
    /// assert_eq!(status.as_deref(), Some("paid"));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn set_event<V>(&self, key: &str, value: V) -> impl Future<Output = ()> + 'static
    where
        V: Serialize + DeserializeOwned + 'static,
    {
        let id = self.wf.create_step(SET);
        let key = key.to_string();
        // A key the journal cannot store stops this workflow alone, as a value that
        // cannot be encoded does, before anything of it is committed.
        let encoded = crate::core::check_key(&key)
            .map_err(|err| err.to_string())
            .and_then(|()| codec::encode(fingerprint::of::<V>(), &value));
        let body: Body = Box::new(move || {
            async move {
                match encoded {
                    Ok(bytes) => BodyOutput::new(Ok(Outcome::Ok(bytes.clone())))
                        .with_effect(Effect::SetEvent { key, value: bytes }),
                    Err(detail) => BodyOutput::new(Err(detail)),
                }
            }
            .boxed_local()
        });
        let step: Step<V, Never> = Step::new(self.clone(), id, body);
        async move {
            let Ok(_) = step.await;
        }
    }

    /// The latest value of event `key` of workflow `workflow_id`, waiting for one to be
    /// set up to `timeout` (a durable deadline; `Duration::ZERO` looks once); `None` if
    /// none was set by then. What it saw is recorded: a replay returns the same. A value
    /// of another type than `T` stops the workflow with [`Error::TypeMismatch`].
    ///
    /// Takes two step ids at the call.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    ///
    /// async fn producer(ctx: Ctx, _: ()) -> Result<(), String> {
    ///     ctx.set_event("progress", 50u8).await;
    ///     Ok(())
    /// }
    /// async fn watcher(ctx: Ctx, _: ()) -> Result<Option<u8>, String> {
    ///     Ok(ctx.get_event::<u8>("p-1", "progress", Duration::from_secs(5)).await)
    /// }
    /// let rt = Runtime::builder().temporary()
    ///     .register("producer", producer).register("watcher", watcher).build()?;
    /// let watching = rt.start::<_, Option<u8>, String>("watcher", "w-1", ())?;
    /// rt.start::<_, (), String>("producer", "p-1", ())?;
    /// assert_eq!(rt.block_on(watching.result())?, Ok(Some(50)));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn get_event<T>(
        &self,
        workflow_id: &str,
        key: &str,
        timeout: Duration,
    ) -> impl Future<Output = Option<T>> + 'static
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        let until_id = self.wf.create_step(GET_UNTIL);
        let get_id = self.wf.create_step(GET);
        let deadline = self.deadline(until_id, timeout);
        let body: Body = {
            let (core, wf, at) = (
                Rc::clone(&self.core),
                Rc::clone(&self.wf),
                deadline.at.clone(),
            );
            let (source, key) = (workflow_id.to_string(), key.to_string());
            Box::new(move || {
                async move {
                    let at = at.instant(&core);
                    let watch = WatchKey::Event(source.clone(), key.clone());
                    let found = wait_for(Rc::clone(&core), watch, at, |core| {
                        core.store.event(&source, &key).map_err(Error::from)
                    })
                    .await;
                    match found {
                        Ok(Some(bytes)) => BodyOutput::new(Ok(Outcome::Ok(bytes))),
                        Ok(None) => BodyOutput::new(crate::step::encode_result::<(), ()>(&Err(()))),
                        Err(err) => {
                            wf.fail(err);
                            std::future::pending().await
                        }
                    }
                }
                .boxed_local()
            })
        };
        let got: Step<T, ()> = Step::new(self.clone(), get_id, body).in_place();
        async move {
            deadline.recorded().await;
            got.await.ok()
        }
    }
}
