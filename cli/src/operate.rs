//! `ordo cancel`, `ordo resume`, `ordo fork`: steering workflows of a running
//! application, through its admin socket, or of the workers of a PostgreSQL journal,
//! through requests left in it.
//!
//! They need the application: cancelling stops running code, and resuming or forking
//! runs the workflow's code, which only the application has. Without one they change
//! nothing and say so (exit code 4).

use ordo::admin::Request;
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::remote::Via;

/// `ordo cancel --json`. Field names are a stable interface.
#[derive(Debug, Serialize, Deserialize)]
struct Cancelled {
    /// The ids cancelled: the workflow first, then its descendants level by level (with
    /// `--children`); empty when it had already finished.
    cancelled: Vec<String>,
}

/// `ordo resume --json`.
#[derive(Debug, Serialize, Deserialize)]
struct Resumed {
    /// The workflow now running again.
    resumed: String,
}

/// `ordo fork --json`.
#[derive(Debug, Serialize, Deserialize)]
struct Forked {
    /// The new workflow's id.
    forked: String,
}

/// Cancels workflow `id` (and with `children` its descendants).
pub fn cancel(via: Via<'_>, id: &str, children: bool, json: bool) -> Result<String, CliError> {
    let request = Request::Cancel {
        id: id.to_string(),
        children,
    };
    let done: Cancelled = via.decode(via.ask("cancel", Some(id), &request)?)?;
    if json {
        return Ok(serde_json::to_string_pretty(&done)? + "\n");
    }
    if done.cancelled.is_empty() {
        return Ok(format!(
            "nothing cancelled: workflow {id:?} had already finished\n"
        ));
    }
    Ok(format!("cancelled {}\n", done.cancelled.join(", ")))
}

/// Resumes workflow `id`.
pub fn resume(via: Via<'_>, id: &str, json: bool) -> Result<String, CliError> {
    let request = Request::Resume { id: id.to_string() };
    let done: Resumed = via.decode(via.ask("resume", Some(id), &request)?)?;
    if json {
        return Ok(serde_json::to_string_pretty(&done)? + "\n");
    }
    Ok(format!("resumed {}\n", done.resumed))
}

/// Forks workflow `id` at delivery `at_seq`, as `new_id` if given.
pub fn fork(
    via: Via<'_>,
    id: &str,
    at_seq: u64,
    new_id: Option<&str>,
    json: bool,
) -> Result<String, CliError> {
    let request = Request::Fork {
        id: id.to_string(),
        at_seq,
        new_id: new_id.map(str::to_string),
    };
    let done: Forked = via.decode(via.ask("fork", None, &request)?)?;
    if json {
        return Ok(serde_json::to_string_pretty(&done)? + "\n");
    }
    Ok(format!(
        "forked {id} at seq {at_seq} as {} (now running)\n",
        done.forked
    ))
}
