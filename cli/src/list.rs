//! `ordo list`: one row per workflow.

use ordo::journal::{SledJournal, Store};
use ordo::Status;
use serde::Serialize;

use crate::error::CliError;
use crate::format::{utc, Align, Table};

/// One workflow as `ordo list --json` prints it. Field names are a stable interface.
#[derive(Debug, Serialize)]
struct Row {
    /// The workflow id.
    id: String,
    /// The registered workflow name.
    name: String,
    /// `pending`, `succeeded`, `failed` or `cancelled`.
    status: &'static str,
    /// Completions recorded (steps, durable timers, `now`/`random`).
    steps: usize,
    /// When the workflow was started, ms since the Unix epoch.
    created_ms: u64,
    /// When its record last changed, ms since the Unix epoch.
    updated_ms: u64,
    /// The version of the application that started it (`RuntimeBuilder::app_version`);
    /// `null` when none was given, or for a workflow recorded before ordo kept it.
    app_version: Option<String>,
}

/// Lists the workflows (those with `status`, if given) in id order.
pub fn run(journal: &SledJournal, status: Option<Status>, json: bool) -> Result<String, CliError> {
    let mut rows = Vec::new();
    for record in journal.workflows(status)? {
        let steps = journal.completions(&record.id)?.len();
        rows.push(Row {
            steps,
            status: record.status.as_str(),
            created_ms: record.created_ms,
            updated_ms: record.updated_ms,
            app_version: record.app_version,
            name: record.name,
            id: record.id,
        });
    }
    if json {
        return Ok(serde_json::to_string_pretty(&rows)? + "\n");
    }
    if rows.is_empty() {
        let filter = status.map(|s| format!(" {s}")).unwrap_or_default();
        return Ok(format!("no{filter} workflows\n"));
    }
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("NAME", Align::Left),
        ("STATUS", Align::Left),
        ("STEPS", Align::Right),
        ("CREATED (UTC)", Align::Left),
        ("UPDATED (UTC)", Align::Left),
        ("VERSION", Align::Left),
    ]);
    for row in rows {
        table.row(vec![
            row.id,
            row.name,
            row.status.to_string(),
            row.steps.to_string(),
            utc(row.created_ms),
            utc(row.updated_ms),
            row.app_version.unwrap_or_else(|| "-".to_string()),
        ]);
    }
    Ok(table.render())
}
