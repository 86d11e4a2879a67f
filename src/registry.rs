//! Registered workflow functions, with their types erased to bytes in, bytes out.

use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use futures::FutureExt;
use ordo_journal::Outcome;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::ctx::Ctx;
use crate::error::Error;
use crate::fingerprint::{self, TypeKey};

/// A workflow function taking encoded input and giving its encoded outcome.
type ErasedWorkflow =
    Rc<dyn Fn(Ctx, &[u8]) -> Result<LocalBoxFuture<'static, Result<Outcome, Error>>, Error>>;

/// One registered workflow.
#[derive(Clone)]
pub(crate) struct Registration {
    pub(crate) run: ErasedWorkflow,
    pub(crate) input: TypeKey,
    pub(crate) output: TypeKey,
    pub(crate) error: TypeKey,
}

/// Workflow registrations by name.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    by_name: HashMap<String, Registration>,
}

impl Registry {
    pub(crate) fn register<F, Fut, I, O, E>(&mut self, name: &str, workflow: F)
    where
        F: Fn(Ctx, I) -> Fut + 'static,
        Fut: Future<Output = Result<O, E>> + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + DeserializeOwned + 'static,
        E: Serialize + DeserializeOwned + 'static,
    {
        let (input_key, output_key, error_key) = (
            fingerprint::of::<I>(),
            fingerprint::of::<O>(),
            fingerprint::of::<E>(),
        );
        let run: ErasedWorkflow = Rc::new(move |ctx: Ctx, input: &[u8]| {
            let input: I = codec::decode(input_key, input).map_err(|err| {
                codec::type_error(
                    &*ctx.core.store,
                    ctx.workflow_id(),
                    "input".into(),
                    input_key,
                    err,
                )
            })?;
            let wf = Rc::clone(&ctx.wf);
            // A combinator, not an `async` block: the block would keep the user's future
            // twice (once captured, once being awaited), and this future is most of what
            // a parked workflow costs.
            let fut = workflow(ctx, input).map(move |result| {
                let encoded = match result {
                    Ok(output) => codec::encode(output_key, &output).map(Outcome::Ok),
                    Err(error) => codec::encode(error_key, &error).map(Outcome::Err),
                };
                encoded.map_err(|detail| Error::Encode {
                    workflow_id: wf.id.clone(),
                    what: "output".into(),
                    detail,
                })
            });
            Ok(fut.boxed_local())
        });
        self.by_name.insert(
            name.to_string(),
            Registration {
                run,
                input: input_key,
                output: output_key,
                error: error_key,
            },
        );
    }

    /// The registered names.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Registration> {
        self.by_name.get(name)
    }

    /// The registration of `name`, or [`Error::UnknownWorkflow`].
    pub(crate) fn lookup(&self, name: &str) -> Result<&Registration, Error> {
        self.by_name
            .get(name)
            .ok_or_else(|| Error::UnknownWorkflow {
                name: name.to_string(),
            })
    }
}

impl Registration {
    /// The input's type must be the registered one: bincode encodes an `i32` that
    /// decodes as a `u8` without complaint, into a wrong value. `I` need not be an owned
    /// type (a reference to the registered type, and `&str` for `String`, serialize
    /// identically and are accepted), so it cannot be fingerprinted; its name is
    /// compared within this binary, where names are consistent. The bytes stored carry
    /// the registered type's fingerprint.
    pub(crate) fn check_input<I: ?Sized>(&self, id: &str) -> Result<(), Error> {
        let registered = self.input.name;
        let asked = std::any::type_name::<I>();
        let mut plain = asked;
        while let Some(rest) = plain.strip_prefix('&') {
            plain = rest;
        }
        if plain == "str" {
            plain = std::any::type_name::<String>();
        }
        if plain == registered {
            return Ok(());
        }
        Err(Error::TypeMismatch {
            workflow_id: id.to_string(),
            what: "input".to_string(),
            expected: registered,
            recorded: asked.to_string(),
            detail: "the input given is not of the registered input type".into(),
        })
    }

    /// The output and error types `O` and `E` a caller asks for (a handle's, a child's:
    /// `whose`) must be the registered ones: a value read as another type is refused, not
    /// decoded wrong.
    pub(crate) fn check_outputs<O: DeserializeOwned + 'static, E: DeserializeOwned + 'static>(
        &self,
        id: &str,
        whose: &str,
    ) -> Result<(), Error> {
        for (what, registered, asked) in [
            ("output", self.output, fingerprint::of::<O>()),
            ("error", self.error, fingerprint::of::<E>()),
        ] {
            if registered.fingerprint != asked.fingerprint {
                return Err(Error::TypeMismatch {
                    workflow_id: id.to_string(),
                    what: format!("{what} type of the {whose}"),
                    expected: registered.name,
                    recorded: asked.name.to_string(),
                    detail: format!("the {whose}'s type is not the registered one"),
                });
            }
        }
        Ok(())
    }

    /// Checks and encodes an input for workflow `id` (a start's, or the next run's of
    /// `continue_as_new`).
    pub(crate) fn encode_input<I: Serialize + ?Sized>(
        &self,
        id: &str,
        input: &I,
    ) -> Result<Vec<u8>, Error> {
        self.check_input::<I>(id)?;
        codec::encode(self.input, input).map_err(|detail| Error::Encode {
            workflow_id: id.to_string(),
            what: "input".into(),
            detail,
        })
    }
}
