//! Upgrading workflow code under running workflows: `Ctx::patched` and
//! `Ctx::deprecate_patch`.
//!
//! A patch point is a place where new code does something else than old code. Which
//! path a workflow takes there must not change across replays, so the answer is read
//! from, or written to, its journal, at one step id taken at the call (determinism
//! rule 1):
//!
//! - the journal holds the patch's *marker* at that id: the workflow passed the point
//!   under code that had the patch: new path (the marker takes the id);
//! - the journal holds another step at that id, or any later one: the workflow passed
//!   the point under old code, which created that step: old path, and the id is left to
//!   the old code's step (no marker is written, none is consumed);
//! - the journal holds nothing there (the workflow is live, or its recorded history ends
//!   before this point): new path, and the marker is recorded at that id.
//!
//! The answer is given at the call, synchronously, and it is the same on every replay:
//! when the workflow is live every recorded step has an id below the point (replay
//! delivers a completion only to a step that exists), so "nothing there" and "live"
//! agree; and the marker is queued at the call, before any step created after it, so no
//! later step can be recorded without it.

use std::rc::Rc;

use ordo_journal::{Completion, Outcome};

use crate::codec;
use crate::ctx::Ctx;
use crate::error::Error;
use crate::fingerprint;

/// The journal name of patch `name`'s marker step.
fn marker(name: &str) -> String {
    format!("ordo.patch.{name}")
}

impl Ctx {
    /// Whether this workflow takes the new path at patch point `name`: `false` for a
    /// workflow that went past this point under code without the patch (it keeps the
    /// path its journal recorded), `true` for every other one, new or not yet there.
    /// The answer is recorded (a marker step, one step id) and the same on every replay.
    ///
    /// Upgrading: put the new code under `if ctx.patched("name") { new } else { old }`.
    /// Retiring, once no workflow started before the patch is left (`ordo list` shows
    /// each workflow's app version): replace the call by [`Ctx::deprecate_patch`] with
    /// the new code only; once no workflow that ran the patched code is left either,
    /// remove that call too.
    ///
    /// Mind the step that was in flight when the old process stopped (started, its
    /// outcome not recorded): under the new code it runs again, and if the patch adds
    /// steps before it, it runs under another step id, so its
    /// [`idempotency_key`](crate::StepInfo::idempotency_key) is not the one the first
    /// attempt used. A patched path that leads to a non-idempotent call (a charge) should
    /// give the provider a key made from the workflow's own data (the order id), not the
    /// step's.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    ///
    /// async fn order(ctx: Ctx, amount: u64) -> Result<u64, String> {
    ///     let reserved = ctx.step("reserve", move || async move { Ok::<_, String>(amount) }).await?;
    ///     // Added in version 2: workflows that reserved under version 1 and already
    ///     // went on to "charge" skip it; everything else runs it.
    ///     if ctx.patched("fraud-check") {
    ///         ctx.step("fraud-check", || async { Ok::<_, String>(()) }).await?;
    ///     }
    ///     ctx.step("charge", move || async move { Ok::<_, String>(reserved * 100) }).await
    /// }
    ///
    /// let rt = Runtime::builder().temporary().register("order", order).build()?;
    /// let handle = rt.start::<_, u64, String>("order", "o-1", 3u64)?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(300));
    /// let names: Vec<String> =
    ///     rt.journal().completions("o-1")?.into_iter().map(|c| c.name).collect();
    /// assert_eq!(names, ["reserve", "ordo.patch.fraud-check", "fraud-check", "charge"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn patched(&self, name: &str) -> bool {
        let marker = marker(name);
        let id = self.wf.steps_created();
        match self.wf.recorded_from(id) {
            Some((at, recorded)) if at == id && *recorded == *marker => {
                // Passed under patched code: the marker's id, whose recorded completion
                // replay delivers to a slot already released (and drops).
                let id = self.wf.create_step(&marker);
                self.wf.release_step(id);
                true
            }
            // Passed under old code: its step keeps this id.
            Some(_) => false,
            None => {
                self.record_marker(&marker);
                true
            }
        }
    }

    /// Retires patch `name` whose old path is gone: code that called
    /// `if ctx.patched(name) { new } else { old }` calls `ctx.deprecate_patch(name); new`.
    /// A workflow that recorded the patch's marker replays (the marker's step id is taken
    /// back); one that never reached the point records nothing and runs the new code.
    /// Only a workflow that went past the point on the old path cannot be replayed, which
    /// is why the old path is dropped only once no such workflow is left.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    ///
    /// async fn order(ctx: Ctx, amount: u64) -> Result<u64, String> {
    ///     let reserved = ctx.step("reserve", move || async move { Ok::<_, String>(amount) }).await?;
    ///     ctx.deprecate_patch("fraud-check"); // was: if ctx.patched("fraud-check") { ... }
    ///     ctx.step("fraud-check", || async { Ok::<_, String>(()) }).await?;
    ///     ctx.step("charge", move || async move { Ok::<_, String>(reserved * 100) }).await
    /// }
    ///
    /// let rt = Runtime::builder().temporary().register("order", order).build()?;
    /// let handle = rt.start::<_, u64, String>("order", "o-2", 3u64)?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(300));
    /// assert_eq!(rt.journal().completions("o-2")?.len(), 3); // no marker any more
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn deprecate_patch(&self, name: &str) {
        let marker = marker(name);
        let id = self.wf.steps_created();
        if let Some((at, recorded)) = self.wf.recorded_from(id) {
            if at == id && *recorded == *marker {
                let id = self.wf.create_step(&marker);
                self.wf.release_step(id);
            }
        }
    }

    /// Takes the next step id for the marker and queues its completion: committed with
    /// the next group commit, before any step created after it (the outbox keeps order).
    fn record_marker(&self, marker: &str) {
        let step_id = self.wf.create_step(marker);
        // Nothing awaits the marker: its delivery finds no slot and is dropped.
        self.wf.release_step(step_id);
        let outcome = match codec::encode(fingerprint::of::<()>(), &()) {
            Ok(bytes) => Outcome::Ok(bytes),
            Err(detail) => {
                self.wf.fail(Error::Encode {
                    workflow_id: self.wf.id.clone(),
                    what: format!("the marker of {marker:?}"),
                    detail,
                });
                return;
            }
        };
        let now_ms = self.core.now_ms();
        self.core.queue_completion(
            Rc::clone(&self.wf),
            Completion {
                seq: 0, // assigned at commit
                step_id,
                name: marker.to_string(),
                outcome,
                attempts: 1,
                started_ms: now_ms,
                ended_ms: now_ms,
            },
            crate::core::Effect::None,
        );
    }
}
