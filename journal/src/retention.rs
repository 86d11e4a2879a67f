//! Retention: which finished workflows are past their age. Deleting them is
//! [`Batch::delete_workflow`](crate::Batch::delete_workflow), at most [`GC_BATCH`] per
//! commit.

use crate::record::Status;
use crate::store::Store;
use crate::Error;

/// Most workflows one retention commit deletes. A commit is one sled batch holding
/// every key of every workflow it deletes; bounded, it neither grows memory with the
/// backlog nor holds the runtime's thread for long, and a crash in the middle of a long
/// deletion leaves the journal between two whole commits.
///
/// ```
/// assert_eq!(ordo_journal::GC_BATCH, 1000);
/// ```
pub const GC_BATCH: usize = 1000;

/// The statuses retention deletes: every status a workflow ends in.
///
/// ```
/// use ordo_journal::{Status, FINISHED};
/// assert!(!FINISHED.contains(&Status::Pending));
/// ```
pub const FINISHED: [Status; 3] = [Status::Succeeded, Status::Failed, Status::Cancelled];

/// The ids of the finished workflows whose record was last written before `cutoff_ms`
/// (milliseconds since the UNIX epoch), in id byte order.
///
/// # Errors
///
/// The store's errors reading its records.
///
/// ```
/// use ordo_journal::{finished_before, Batch, SledJournal, Status, Store, WorkflowRecord};
/// let journal = SledJournal::temporary()?;
/// let mut batch = Batch::new();
/// for (id, status, updated_ms) in [("a", Status::Succeeded, 10), ("b", Status::Pending, 10),
///                                  ("c", Status::Cancelled, 10), ("d", Status::Failed, 99)] {
///     let mut record = WorkflowRecord::new(id, "flow", vec![], 0);
///     (record.status, record.updated_ms) = (status, updated_ms);
///     batch.put_workflow(record);
/// }
/// journal.commit(&batch)?;
/// assert_eq!(finished_before(&journal, 50)?, ["a", "c"]);
/// # Ok::<(), ordo_journal::Error>(())
/// ```
pub fn finished_before(store: &dyn Store, cutoff_ms: u64) -> Result<Vec<String>, Error> {
    let mut ids = Vec::new();
    for status in FINISHED {
        ids.extend(
            store
                .workflows(Some(status))?
                .into_iter()
                .filter(|record| record.updated_ms < cutoff_ms)
                .map(|record| record.id),
        );
    }
    ids.sort_unstable();
    Ok(ids)
}
