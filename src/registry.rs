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
            let workflow_id = ctx.workflow_id().to_string();
            let input: I = codec::decode(input_key, input).map_err(|err| {
                codec::type_error(
                    &*ctx.core.store,
                    &workflow_id,
                    "input".into(),
                    input_key,
                    err,
                )
            })?;
            let fut = workflow(ctx, input);
            Ok(async move {
                let encoded = match fut.await {
                    Ok(output) => codec::encode(output_key, &output).map(Outcome::Ok),
                    Err(error) => codec::encode(error_key, &error).map(Outcome::Err),
                };
                encoded.map_err(|detail| Error::Encode {
                    workflow_id,
                    what: "output".into(),
                    detail,
                })
            }
            .boxed_local())
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

    pub(crate) fn get(&self, name: &str) -> Option<&Registration> {
        self.by_name.get(name)
    }
}
