//! `ordo cancel`, `ordo resume`, `ordo fork`: steering workflows of a running
//! application, through its admin socket.
//!
//! They need the application: cancelling stops running code, and resuming or forking
//! runs the workflow's code, which only the application has. Without one they change
//! nothing and say so (exit code 4).

use std::path::Path;

use ordo::admin::Request;
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::remote::{ask_running, decode};

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
pub fn cancel(data: &Path, id: &str, children: bool, json: bool) -> Result<String, CliError> {
    let request = Request::Cancel {
        id: id.to_string(),
        children,
    };
    let done: Cancelled = decode(data, ask_running(data, "cancel", &request)?)?;
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
pub fn resume(data: &Path, id: &str, json: bool) -> Result<String, CliError> {
    let request = Request::Resume { id: id.to_string() };
    let done: Resumed = decode(data, ask_running(data, "resume", &request)?)?;
    if json {
        return Ok(serde_json::to_string_pretty(&done)? + "\n");
    }
    Ok(format!("resumed {}\n", done.resumed))
}

/// Forks workflow `id` at delivery `at_seq`, as `new_id` if given.
pub fn fork(
    data: &Path,
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
    let done: Forked = decode(data, ask_running(data, "fork", &request)?)?;
    if json {
        return Ok(serde_json::to_string_pretty(&done)? + "\n");
    }
    Ok(format!(
        "forked {id} at seq {at_seq} as {} (now running)\n",
        done.forked
    ))
}
