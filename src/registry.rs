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

/// A workflow function taking encoded input and giving its encoded outcome.
type ErasedWorkflow =
    Rc<dyn Fn(Ctx, &[u8]) -> Result<LocalBoxFuture<'static, Result<Outcome, Error>>, Error>>;

/// One registered workflow.
#[derive(Clone)]
pub(crate) struct Registration {
    pub(crate) run: ErasedWorkflow,
    pub(crate) input_type: &'static str,
    pub(crate) output_type: &'static str,
    pub(crate) error_type: &'static str,
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
        O: Serialize + 'static,
        E: Serialize + 'static,
    {
        let run: ErasedWorkflow = Rc::new(move |ctx: Ctx, input: &[u8]| {
            let workflow_id = ctx.workflow_id().to_string();
            let input: I = codec::decode(input).map_err(|detail| Error::TypeMismatch {
                workflow_id: workflow_id.clone(),
                what: "input".into(),
                expected: std::any::type_name::<I>(),
                detail,
            })?;
            let fut = workflow(ctx, input);
            Ok(async move {
                let encoded = match fut.await {
                    Ok(output) => codec::encode(&output).map(Outcome::Ok),
                    Err(error) => codec::encode(&error).map(Outcome::Err),
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
                input_type: std::any::type_name::<I>(),
                output_type: std::any::type_name::<O>(),
                error_type: std::any::type_name::<E>(),
            },
        );
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Registration> {
        self.by_name.get(name)
    }
}
