//! `ordo stats`: workflows by status, completions recorded, size on disk.

use ordo::journal::{SledJournal, Store};
use ordo::Status;
use serde::Serialize;

use crate::error::CliError;
use crate::format::bytes;

/// `ordo stats --json`. Field names are a stable interface.
#[derive(Debug, Serialize)]
struct Stats {
    /// Every workflow, whatever its status.
    workflows: usize,
    pending: usize,
    succeeded: usize,
    failed: usize,
    cancelled: usize,
    enqueued: usize,
    delayed: usize,
    /// Completions recorded across all workflows.
    completions: usize,
    /// Bytes sled uses on disk (logs, snapshots, blobs).
    size_on_disk_bytes: u64,
}

/// Counts what the journal holds.
pub fn run(journal: &SledJournal, json: bool) -> Result<String, CliError> {
    let mut stats = Stats {
        workflows: 0,
        pending: 0,
        succeeded: 0,
        failed: 0,
        cancelled: 0,
        enqueued: 0,
        delayed: 0,
        completions: 0,
        size_on_disk_bytes: journal.size_on_disk()?,
    };
    for record in journal.workflows(None)? {
        stats.workflows += 1;
        stats.completions += journal.completions(&record.id)?.len();
        *match record.status {
            Status::Pending => &mut stats.pending,
            Status::Succeeded => &mut stats.succeeded,
            Status::Failed => &mut stats.failed,
            Status::Cancelled => &mut stats.cancelled,
            Status::Enqueued => &mut stats.enqueued,
            Status::Delayed => &mut stats.delayed,
        } += 1;
    }
    if json {
        return Ok(serde_json::to_string_pretty(&stats)? + "\n");
    }
    let s = &stats;
    Ok(format!(
        "workflows    {}\n  pending    {}\n  succeeded  {}\n  failed     {}\n  cancelled  {}\n  enqueued   {}\n  delayed    {}\n\
         completions  {}\nsize on disk {} ({} bytes)\n",
        s.workflows,
        s.pending,
        s.succeeded,
        s.failed,
        s.cancelled,
        s.enqueued,
        s.delayed,
        s.completions,
        bytes(s.size_on_disk_bytes),
        s.size_on_disk_bytes
    ))
}
