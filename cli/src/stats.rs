//! `ordo stats`: workflows by status, completions recorded, size on disk.

use ordo::journal::Store;
use ordo::JournalStats;
use serde::Serialize;

use crate::error::CliError;
use crate::format::bytes;

/// `ordo stats --json`. Field names are a stable interface.
#[derive(Debug, Serialize)]
struct Stats {
    /// Every workflow, whatever its status.
    workflows: u64,
    pending: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    enqueued: u64,
    delayed: u64,
    /// Completions recorded across all workflows.
    completions: u64,
    /// Bytes sled uses on disk (logs, snapshots, blobs); on PostgreSQL, the journal's
    /// tables with their indexes.
    size_on_disk_bytes: u64,
}

/// Counts what `journal` (sled or PostgreSQL) holds; it takes `size_on_disk_bytes`.
pub fn run(journal: &dyn Store, size_on_disk_bytes: u64, json: bool) -> Result<String, CliError> {
    let mut counts = JournalStats::default();
    for record in journal.workflows(None)? {
        counts.count(record.status, journal.completions(&record.id)?.len() as u64);
    }
    render(counts, size_on_disk_bytes, json)
}

/// The counts as `ordo stats` prints them, with the journal's size on disk.
pub fn render(
    counts: JournalStats,
    size_on_disk_bytes: u64,
    json: bool,
) -> Result<String, CliError> {
    let stats = Stats {
        workflows: counts.workflows,
        pending: counts.pending,
        succeeded: counts.succeeded,
        failed: counts.failed,
        cancelled: counts.cancelled,
        enqueued: counts.enqueued,
        delayed: counts.delayed,
        completions: counts.completions,
        size_on_disk_bytes,
    };
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
