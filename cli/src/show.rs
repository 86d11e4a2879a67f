//! `ordo show ID`: a workflow's record and its step timeline in delivery order.

use ordo::admin::ShownWorkflow;
use ordo::journal::Store;

use crate::error::CliError;
use crate::format::{bytes, utc, Align, Table};

/// Shows workflow `id` of `journal` (sled or PostgreSQL).
pub fn run(journal: &dyn Store, id: &str, json: bool) -> Result<String, CliError> {
    let record = journal
        .workflow(id)?
        .ok_or_else(|| CliError::UnknownWorkflow { id: id.to_string() })?;
    render(&ShownWorkflow::new(record, journal.completions(id)?), json)
}

/// The workflow as `ordo show` prints it (`--json`: the stable field names of
/// [`ShownWorkflow`]).
pub fn render(shown: &ShownWorkflow, json: bool) -> Result<String, CliError> {
    if json {
        return Ok(serde_json::to_string_pretty(shown)? + "\n");
    }
    Ok(text(shown))
}

fn text(shown: &ShownWorkflow) -> String {
    let r = &shown.record;
    let output = match &r.output {
        Some(out) => format!(
            "{} ({})",
            if out.ok { "Ok" } else { "Err" },
            bytes(out.bytes as u64)
        ),
        None => "none yet".to_string(),
    };
    let mut out = String::new();
    for (label, value) in [
        ("workflow", r.id.clone()),
        ("name", r.name.clone()),
        ("status", r.status.to_string()),
        (
            "version",
            r.app_version
                .clone()
                .unwrap_or_else(|| "unknown".to_string()),
        ),
        ("created", format!("{} UTC", utc(r.created_ms))),
        ("updated", format!("{} UTC", utc(r.updated_ms))),
        ("recovered", format!("{} time(s)", r.recovery_attempts)),
        ("input", bytes(r.input_bytes as u64)),
        ("output", output),
    ] {
        out.push_str(&format!("{label:<10} {value}\n"));
    }
    if let Some(deadline_ms) = r.deadline_ms {
        out.push_str(&format!("{:<10} {} UTC\n", "deadline", utc(deadline_ms)));
    }
    out.push('\n');
    if shown.steps.is_empty() {
        out.push_str("no steps recorded\n");
        return out;
    }
    let mut table = Table::new(&[
        ("SEQ", Align::Right),
        ("STEP", Align::Right),
        ("NAME", Align::Left),
        ("OUTCOME", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("DURATION", Align::Right),
        ("OUTPUT", Align::Right),
    ]);
    for step in &shown.steps {
        table.row(vec![
            step.seq.to_string(),
            step.step_id.to_string(),
            step.name.clone(),
            if step.ok { "Ok" } else { "Err" }.to_string(),
            step.attempts.to_string(),
            format!("{} ms", step.ended_ms.saturating_sub(step.started_ms)),
            bytes(step.output_bytes as u64),
        ]);
    }
    out.push_str(&table.render());
    out
}
