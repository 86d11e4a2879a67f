//! Awakeables: a token a workflow hands to the outside world (a webhook's callback
//! URL, say), and a future that completes when someone resolves the token through a
//! [`Client`](crate::Client).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::error::Error;
use crate::step::{Body, BodyOutput, Step};
use crate::talk::watch::{wait_for, WatchKey};

pub(crate) const AWAKEABLE: &str = "ordo.awakeable";

/// The prefix of every token, so a stray string is told apart from a token at once.
const TOKEN_PREFIX: &str = "ordo-awk1-";

/// The token of the awakeable created by step `step_id` of workflow `workflow_id`: the
/// same on every replay, so a token sent out before a crash stays valid.
pub(crate) fn token(workflow_id: &str, step_id: u64) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(TOKEN_PREFIX.len() + 2 * workflow_id.len() + 20);
    out.push_str(TOKEN_PREFIX);
    for byte in workflow_id.as_bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    let _ = write!(out, "-{step_id}");
    out
}

/// The workflow id and step id a token names, or why it names none.
pub(crate) fn parse_token(token: &str) -> Result<(String, u64), Error> {
    let unknown = |reason: &str| Error::UnknownAwakeable {
        token: token.to_string(),
        reason: reason.to_string(),
    };
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or_else(|| unknown("not an ordo awakeable token"))?;
    let (hex, step) = rest.rsplit_once('-').ok_or_else(|| unknown("no step id"))?;
    let step_id = step
        .parse()
        .map_err(|_| unknown("the step id is not a number"))?;
    if hex.len() % 2 != 0 {
        return Err(unknown("the workflow id is garbled"));
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| unknown("the workflow id is garbled"))?;
    let id = String::from_utf8(bytes).map_err(|_| unknown("the workflow id is garbled"))?;
    Ok((id, step_id))
}

/// The future of [`Ctx::awakeable`]: the value (`Ok`) or the error (`Err`) it was
/// resolved with.
///
/// ```
/// use ordo::{Awakeable, Ctx};
/// async fn wait(ctx: Ctx, _: ()) -> Result<u32, String> {
///     let (_token, paid): (String, Awakeable<u32>) = ctx.awakeable();
///     paid.await
/// }
/// ```
#[must_use = "an awakeable does nothing unless awaited"]
pub struct Awakeable<T> {
    step: Step<T, String>,
    _value: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + 'static> Future for Awakeable<T> {
    type Output = Result<T, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, String>> {
        Pin::new(&mut self.step).poll(cx)
    }
}

impl Ctx {
    /// A durable promise the outside world keeps: returns a token (an opaque string, the
    /// same on every replay) and a future that completes once someone resolves the
    /// token with [`Client::resolve_awakeable`](crate::Client::resolve_awakeable) or
    /// [`Client::reject_awakeable`](crate::Client::reject_awakeable). The resolution is
    /// durable before the resolver's call returns, and reaches the workflow as a recorded
    /// completion (rule 2). Takes one step id at the call.
    ///
    /// A resolution of another type than `T` is accepted by the resolver's call (the
    /// client does not know `T`) and stops the workflow with [`Error::TypeMismatch`]
    /// when it is delivered; the token is used up by then. Resolve with the type the
    /// workflow awaits.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    ///
    /// async fn payment(ctx: Ctx, _: ()) -> Result<u64, String> {
    ///     let (token, paid) = ctx.awakeable::<u64>();
    ///     ctx.set_event("callback", token).await; // tell the payment provider
    ///     paid.await
    /// }
    /// let rt = Runtime::builder().temporary().register("payment", payment).build()?;
    /// let handle = rt.start::<_, u64, String>("payment", "pay-1", ())?;
    /// let client = rt.client();
    /// let token: Option<String> = rt.block_on(client.get_event("pay-1", "callback", std::time::Duration::from_secs(5)))?;
    /// rt.block_on(client.resolve_awakeable(&token.expect("a token"), 4_200u64))?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(4_200));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn awakeable<T>(&self) -> (String, Awakeable<T>)
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        let id = self.wf.create_step(AWAKEABLE);
        let token = token(&self.wf.id, id);
        let body: Body = {
            let (core, wf) = (Rc::clone(&self.core), Rc::clone(&self.wf));
            Box::new(move || {
                async move {
                    let watch = WatchKey::Awakeable(wf.id.clone(), id);
                    let found = wait_for(Rc::clone(&core), watch, None, |core| {
                        core.store.awakeable(&wf.id, id).map_err(Error::from)
                    })
                    .await;
                    match found {
                        Ok(Some(outcome)) => BodyOutput::new(Ok(outcome)),
                        Ok(None) => std::future::pending().await,
                        Err(err) => {
                            wf.fail(err);
                            std::future::pending().await
                        }
                    }
                }
                .boxed_local()
            })
        };
        let step = Step::new(self.clone(), id, body);
        (
            token,
            Awakeable {
                step,
                _value: PhantomData,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_workflow_and_step_and_garbage_is_refused() {
        let t = token("order-42/ä", 7);
        assert_eq!(parse_token(&t).ok(), Some(("order-42/ä".to_string(), 7)));
        for bad in [
            "",
            "ordo-awk1-",
            "ordo-awk1-zz-1",
            "ordo-awk1-616-1",
            "x-61-1",
            "ordo-awk1-61-x",
        ] {
            assert!(
                matches!(parse_token(bad), Err(Error::UnknownAwakeable { .. })),
                "{bad:?}"
            );
        }
    }
}
