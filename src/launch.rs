//! Spawning a workflow's root task, and what happens when it ends.
//!
//! Used by `recover()` (outside the executor) and by the group commit that makes a
//! `start()` durable (inside it), so the root task is spawned where the caller says
//! ([`SpawnRoot`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

use futures::future::{AbortHandle, Abortable};
use futures::FutureExt;
use ordo_executor::Executor;

use crate::core::Core;
use crate::ctx::Ctx;
use crate::error::Error;
use crate::registry::Registration;
use crate::workflow::WorkflowState;

/// Runs `wf` (its recorded completions, if any, already in its inbox): builds its
/// future from `registration`, admits it to the core, and hands its root task to
/// `spawn`.
pub(crate) fn launch(
    core: &Rc<Core>,
    wf: &Rc<WorkflowState>,
    registration: &Registration,
    spawn: SpawnRoot<'_>,
) {
    let ctx = Ctx::new(Rc::clone(core), Rc::clone(wf));
    let fut = match (registration.run)(ctx, &wf.input) {
        Ok(fut) => fut,
        Err(err) => {
            wf.fail(err);
            core.forget(wf);
            return;
        }
    };
    let fut = crate::deadline::bound(core, wf, fut);
    let fut = crate::telemetry::run(wf, registration, fut);
    let (abort, abort_registration) = AbortHandle::new_pair();
    wf.register_root_abort(abort);
    core.admit(wf);
    let core = Rc::clone(core);
    let wf = Rc::clone(wf);
    let root = Abortable::new(AssertUnwindSafe(fut).catch_unwind(), abort_registration);
    // A combinator, not an `async` block, which would hold `root` twice; spawned as it
    // is, so the executor's task is its one allocation (a boxed future boxed again by
    // the executor was two, for every workflow parked).
    spawn.spawn(root.map(move |ended| {
        match ended {
            Ok(Ok(Ok(output))) => {
                if let Err(err) = wf.check_undelivered_on_return() {
                    wf.fail(err);
                    core.forget(&wf);
                    return;
                }
                // Tasks it spawned and left behind end with it.
                wf.abort_tasks();
                core.queue_finished(wf, output);
            }
            Ok(Ok(Err(err))) => {
                wf.fail(err);
                core.forget(&wf);
            }
            Ok(Err(panic)) => {
                wf.fail(Error::Panicked {
                    workflow_id: wf.id.clone(),
                    message: crate::panic_message(&*panic),
                });
                core.forget(&wf);
            }
            Err(_aborted) => core.forget(&wf),
        }
    }));
}

/// Where [`launch`] spawns a workflow's root task: code on the runtime's thread inside
/// its executor (a commit, a served request, a takeover round) spawns `Here`;
/// `Runtime`'s methods, which run outside it, spawn `On` its executor.
#[derive(Clone, Copy)]
pub(crate) enum SpawnRoot<'a> {
    /// `ordo_executor::spawn`: the executor this code runs in.
    Here,
    /// This executor, from outside it.
    On(&'a Executor),
}

impl SpawnRoot<'_> {
    /// Spawns `root`, detached.
    pub(crate) fn spawn(self, root: impl Future<Output = ()> + 'static) {
        match self {
            SpawnRoot::Here => drop(ordo_executor::spawn(root)),
            SpawnRoot::On(executor) => drop(executor.spawn(root)),
        }
    }
}
