//! `ordo show ID`: a workflow's record and its step timeline in delivery order.

use ordo::journal::{Completion, Outcome, SledJournal, Store, WorkflowRecord};
use serde::Serialize;

use crate::error::CliError;
use crate::format::{bytes, utc, Align, Table};

/// `ordo show --json`: the record and the steps. Field names are a stable interface.
#[derive(Debug, Serialize)]
struct Shown {
    /// The workflow record.
    record: Record,
    /// Its completions in delivery (`seq`) order.
    steps: Vec<Step>,
}

/// The workflow record, with encoded values reduced to their sizes.
#[derive(Debug, Serialize)]
struct Record {
    id: String,
    name: String,
    status: &'static str,
    created_ms: u64,
    updated_ms: u64,
    recovery_attempts: u32,
    /// The version of the application that started it; `null` when unknown.
    app_version: Option<String>,
    /// Its deadline (ms since the UNIX epoch), past which the runtime cancels it;
    /// `null` when it has none.
    deadline_ms: Option<u64>,
    /// Size of the encoded input.
    input_bytes: usize,
    /// The recorded output or error; `null` while the workflow is pending.
    output: Option<OutputSummary>,
}

/// A recorded outcome: which side, and how big its encoding is.
#[derive(Debug, Serialize)]
struct OutputSummary {
    /// `true` for `Ok`, `false` for `Err`.
    ok: bool,
    /// Size of the encoded value.
    bytes: usize,
}

/// One completion.
#[derive(Debug, Serialize)]
struct Step {
    /// Delivery order, 0, 1, 2... per workflow.
    seq: u64,
    /// The call-site number the workflow gave the step.
    step_id: u64,
    name: String,
    /// `true` if the step returned `Ok`.
    ok: bool,
    attempts: u32,
    started_ms: u64,
    ended_ms: u64,
    /// Size of the encoded `Ok` or `Err` value.
    output_bytes: usize,
}

impl From<&Outcome> for OutputSummary {
    fn from(outcome: &Outcome) -> Self {
        OutputSummary {
            ok: outcome.is_ok(),
            bytes: outcome.bytes().len(),
        }
    }
}

impl From<WorkflowRecord> for Record {
    fn from(r: WorkflowRecord) -> Self {
        Record {
            output: r.output.as_ref().map(OutputSummary::from),
            input_bytes: r.input.len(),
            id: r.id,
            name: r.name,
            status: r.status.as_str(),
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            recovery_attempts: r.recovery_attempts,
            app_version: r.app_version,
            deadline_ms: r.deadline_ms,
        }
    }
}

impl From<Completion> for Step {
    fn from(c: Completion) -> Self {
        Step {
            seq: c.seq,
            step_id: c.step_id,
            ok: c.outcome.is_ok(),
            output_bytes: c.outcome.bytes().len(),
            name: c.name,
            attempts: c.attempts,
            started_ms: c.started_ms,
            ended_ms: c.ended_ms,
        }
    }
}

/// Shows workflow `id`.
pub fn run(journal: &SledJournal, id: &str, json: bool) -> Result<String, CliError> {
    let record = journal
        .workflow(id)?
        .ok_or_else(|| CliError::UnknownWorkflow { id: id.to_string() })?;
    let shown = Shown {
        steps: journal
            .completions(id)?
            .into_iter()
            .map(Step::from)
            .collect(),
        record: Record::from(record),
    };
    if json {
        return Ok(serde_json::to_string_pretty(&shown)? + "\n");
    }
    Ok(text(&shown))
}

fn text(shown: &Shown) -> String {
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
