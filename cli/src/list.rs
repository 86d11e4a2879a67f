//! `ordo list`: one row per workflow.

use ordo::journal::Store;
use ordo::{Status, WorkflowSummary};

use crate::error::CliError;
use crate::format::{utc, Align, Table};

/// Lists the workflows of `journal` (sled or PostgreSQL; those with `status`, if given)
/// in id order.
pub fn run(journal: &dyn Store, status: Option<Status>, json: bool) -> Result<String, CliError> {
    let mut rows = Vec::new();
    for record in journal.workflows(status)? {
        let steps = journal.completions(&record.id)?.len() as u64;
        rows.push(WorkflowSummary::new(record, steps));
    }
    render(rows, status, json)
}

/// The rows as `ordo list` prints them (`--json`: one object per row, with the stable
/// field names of [`WorkflowSummary`]).
pub fn render(
    rows: Vec<WorkflowSummary>,
    status: Option<Status>,
    json: bool,
) -> Result<String, CliError> {
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
            row.status.as_str().to_string(),
            row.steps.to_string(),
            utc(row.created_ms),
            utc(row.updated_ms),
            row.app_version.unwrap_or_else(|| "-".to_string()),
        ]);
    }
    Ok(table.render())
}
