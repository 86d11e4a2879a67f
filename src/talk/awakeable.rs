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
use crate::workflow::WorkflowState;
use ordo_journal::{Store, TokenKey, WorkflowRecord};

pub(crate) const AWAKEABLE: &str = "ordo.awakeable";

/// The prefix of a plain token (see [`Tokens`]), so a stray string is told apart from a
/// token at once.
const PLAIN_PREFIX: &str = "ordo-awk1-";

/// The prefix of a keyed token (see [`Tokens`]).
const KEYED_PREFIX: &str = "ordo-awk2-";

/// What the tokens of one workflow are made of. A token names its workflow (the id's
/// bytes in hex) and the step that created the awakeable, the same on every replay, so a
/// token sent out before a crash stays valid; a keyed one (`ordo-awk2-<id>-<step>-<tag>`)
/// adds a tag of the journal's [`TokenKey`] over the workflow's id, start time and step,
/// so that a token cannot be made up from what it names, nor taken over by a workflow
/// started again under the id of a deleted one. Workflows recorded before the journal
/// kept a key (schema 9), or on a store that keeps none, give out plain tokens
/// (`ordo-awk1-<id>-<step>`), as they did.
pub(crate) struct Tokens<'a> {
    pub(crate) workflow_id: &'a str,
    pub(crate) created_ms: u64,
    /// The store's key, if this workflow's tokens are keyed.
    pub(crate) key: Option<TokenKey>,
}

impl<'a> Tokens<'a> {
    /// The tokens of running workflow `wf`.
    pub(crate) fn of(store: &dyn Store, wf: &'a WorkflowState) -> Self {
        Tokens {
            workflow_id: &wf.id,
            created_ms: wf.created_ms,
            key: store.token_key().filter(|_| wf.keyed_tokens),
        }
    }

    /// The tokens of the workflow `record` is of.
    pub(crate) fn of_record(store: &dyn Store, record: &'a WorkflowRecord) -> Self {
        Tokens {
            workflow_id: &record.id,
            created_ms: record.created_ms,
            key: store.token_key().filter(|_| record.keyed_tokens),
        }
    }

    /// The token of the awakeable created by step `step_id`.
    pub(crate) fn token(&self, step_id: u64) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(KEYED_PREFIX.len() + 2 * self.workflow_id.len() + 54);
        out.push_str(match self.key {
            Some(_) => KEYED_PREFIX,
            None => PLAIN_PREFIX,
        });
        for byte in self.workflow_id.as_bytes() {
            let _ = write!(out, "{byte:02x}");
        }
        let _ = write!(out, "-{step_id}");
        if let Some(key) = &self.key {
            let tag = key.tag(self.workflow_id, self.created_ms, step_id);
            let _ = write!(out, "-{tag:032x}");
        }
        out
    }

    /// Whether `token` is the one this workflow gives out for step `step_id` (compared
    /// as a secret: answers do not tell how much of a made-up tag was right).
    pub(crate) fn gave_out(&self, token: &str, step_id: u64) -> bool {
        crate::same_secret(token, &self.token(step_id))
    }
}

/// The workflow id and step id a token names, or why it names none (whether it is the
/// token that workflow gave out is [`Tokens::gave_out`]'s to say).
pub(crate) fn parse_token(token: &str) -> Result<(String, u64), Error> {
    let unknown = |reason: &str| Error::UnknownAwakeable {
        token: token.to_string(),
        reason: reason.to_string(),
    };
    let rest = match token.strip_prefix(KEYED_PREFIX) {
        Some(rest) => {
            rest.rsplit_once('-')
                .filter(|(_, tag)| tag.len() == 32 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| unknown("no tag"))?
                .0
        }
        None => token
            .strip_prefix(PLAIN_PREFIX)
            .ok_or_else(|| unknown("not an ordo awakeable token"))?,
    };
    let (hex, step) = rest.rsplit_once('-').ok_or_else(|| unknown("no step id"))?;
    let step_id = step
        .parse()
        .map_err(|_| unknown("the step id is not a number"))?;
    // Hex digits only (ASCII, so the pairs below are whole characters): a token comes
    // from outside, and no string may stop the runtime.
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
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
    /// The token cannot be made up from the workflow's id and a step number: it carries
    /// a tag keyed with the journal's secret (see `ordo_journal::TokenKey`), and a token
    /// nobody gave out is refused with [`Error::UnknownAwakeable`]. Whoever holds it can
    /// resolve it: hand it only to whom should.
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
        let token = Tokens::of(&*self.core.store, &self.wf).token(id);
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
        let step = Step::new(self.clone(), id, body).in_place();
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
        let key = TokenKey::generate().expect("random bytes");
        for key in [None, Some(key)] {
            let tokens = Tokens {
                workflow_id: "order-42/ä",
                created_ms: 1_000,
                key,
            };
            let t = tokens.token(7);
            assert_eq!(parse_token(&t).ok(), Some(("order-42/ä".to_string(), 7)));
            assert!(tokens.gave_out(&t, 7));
            assert!(!tokens.gave_out(&t, 8));
            assert!(!tokens.gave_out(&t[..t.len() - 1], 7));
        }
        let keyed = Tokens {
            workflow_id: "w",
            created_ms: 1_000,
            key: Some(key),
        };
        let plain = Tokens { key: None, ..keyed };
        // A keyed workflow's token cannot be made up: the plain form, a tag changed in
        // one digit, or another start time's tag are not it.
        let t = keyed.token(3);
        assert!(t.starts_with(KEYED_PREFIX), "{t}");
        assert!(!keyed.gave_out(&plain.token(3), 3));
        let last = if t.ends_with('0') { "1" } else { "0" };
        assert!(!keyed.gave_out(&format!("{}{last}", &t[..t.len() - 1]), 3));
        let restarted = Tokens {
            created_ms: 1_001,
            ..keyed
        };
        assert!(!keyed.gave_out(&restarted.token(3), 3));
        for bad in [
            "ordo-awk2-77-3",
            "ordo-awk2-77-3-zz",
            "ordo-awk2-77-3-0123456789abcdef0123456789abcdeg",
            // Not ASCII where the id's hex digits go (a byte index inside a character).
            "ordo-awk1-0\u{e9}0-0",
            "ordo-awk2-0\u{e9}0-0-00000000000000000000000000000000",
            "ordo-awk1-+f-0",
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
