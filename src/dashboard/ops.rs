//! The dashboard's cancel and resume, as the runtime's thread runs them.
//!
//! They do what [`Runtime::cancel`](crate::Runtime::cancel) and
//! [`Runtime::resume`](crate::Runtime::resume) do, from a task on the executor (where a
//! dashboard request is served) rather than from the runtime's owner. They sit in this
//! one file so that they can give way to `impl Core` versions of the same operations.

use std::rc::Rc;

use ordo_journal::{Batch, Status};

use crate::core::Core;
use crate::error::Error;
use crate::launch::launch;
use crate::workflow::{Phase, WorkflowState};

impl Core {
    /// Cancels pending workflow `id` durably and stops it here; `Ok(false)`, changing
    /// nothing, when it had finished already (see `Runtime::cancel`).
    pub(crate) fn cancel_workflow(self: &Rc<Self>, id: &str) -> Result<bool, Error> {
        if let Some(err) = self.broken() {
            return Err(err);
        }
        if let Some(start) = self.unstage_start(id) {
            // Started but not committed yet: it never ran; record it as cancelled.
            let mut record = start.record;
            record.status = Status::Cancelled;
            record.updated_ms = self.now_ms();
            let mut batch = Batch::new();
            if start.is_new {
                batch.insert_workflow(record);
            } else {
                batch.update_workflow(record, Status::Pending);
            }
            self.store.commit(&batch)?;
            crate::telemetry::workflow_finished(&start.wf.name, Status::Cancelled);
            start.wf.fail(Error::Cancelled {
                workflow_id: id.to_string(),
            });
            self.forget(&start.wf);
            return Ok(true);
        }
        let mut record = self.record(id)?;
        if record.status != Status::Pending {
            return Ok(false);
        }
        let running = self.running.borrow().get(id).cloned();
        if running
            .as_ref()
            .is_some_and(|wf| wf.phase.get() == Phase::Finishing)
        {
            // It returned; its final record is about to be committed.
            return Ok(false);
        }
        record.status = Status::Cancelled;
        record.updated_ms = self.now_ms();
        let name = record.name.clone();
        let mut batch = Batch::new();
        batch.update_workflow(record, Status::Pending);
        self.store.commit(&batch)?;
        crate::telemetry::workflow_finished(&name, Status::Cancelled);
        if let Some(wf) = running {
            wf.fail(Error::Cancelled {
                workflow_id: id.to_string(),
            });
            self.forget(&wf);
        }
        Ok(true)
    }

    /// Starts cancelled workflow `id` again (or a pending one not running here) from
    /// its journal, as `Runtime::resume` does; nothing to do if it runs here.
    pub(crate) fn resume_workflow(self: &Rc<Self>, id: &str) -> Result<(), Error> {
        if let Some(err) = self.broken() {
            return Err(err);
        }
        if self.running.borrow().contains_key(id) {
            return Ok(());
        }
        let record = self.record(id)?;
        if matches!(record.status, Status::Succeeded | Status::Failed) {
            return Err(Error::NotResumable {
                workflow_id: id.to_string(),
                status: record.status,
            });
        }
        let registration = self.registry.lookup(&record.name)?.clone();
        let previous = record.status;
        let completions = self.store.completions(&record.id)?;
        let mut resumed = record;
        resumed.status = Status::Pending;
        resumed.output = None;
        resumed.recovery_attempts = 0;
        resumed.updated_ms = self.now_ms();
        let mut batch = Batch::new();
        batch.update_workflow(resumed.clone(), previous);
        self.store.commit(&batch)?;
        let wf = Rc::new(WorkflowState::new(&resumed, completions));
        // Served from a task on the runtime's executor: spawn there.
        launch(self, &wf, &registration, |root| {
            drop(ordo_executor::spawn(root));
        });
        Ok(())
    }
}
