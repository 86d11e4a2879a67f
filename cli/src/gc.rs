//! `ordo gc --older-than AGE`: deletes finished workflows past an age.
//!
//! When an application runs on the journal, the CLI asks it through its admin socket
//! (`Client::gc`: the application deletes them on its own thread, between its
//! workflows' steps). Otherwise the CLI opens the journal for writing itself (sled's
//! lock keeps an application from starting meanwhile, and the CLI never waits for it).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ordo::admin::Request;
use ordo::journal::{Batch, Durability, SledJournal, Store};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::format::utc;
use crate::remote;

/// What `ordo gc --json` prints. Field names are a stable interface.
#[derive(Debug, Serialize)]
struct Collected {
    /// Finished workflows deleted, with their completions.
    deleted: u64,
    /// Commits it took (at most `ordo::GC_BATCH` workflows each).
    commits: u64,
    /// Workflows last written before this instant were deleted, ms since the Unix epoch.
    cutoff_ms: u64,
}

/// Deletes the finished workflows of the journal at `path` whose record was last
/// written more than `older_than` before now, at most `GC_BATCH` per commit (a kill
/// leaves every workflow whole or gone).
pub fn run(path: &Path, older_than: Duration, json: bool) -> Result<String, CliError> {
    // sled would create a missing database; look before it can.
    if !path.join("db").is_file() {
        return Err(ordo::journal::Error::NotFound {
            path: path.to_path_buf(),
        }
        .into());
    }
    let journal = SledJournal::open(path, Durability::Sync)?;
    let cutoff_ms =
        now_ms().saturating_sub(u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX));
    let ids = ordo::collectable_before(&journal, cutoff_ms)?;
    let mut commits = 0;
    for chunk in ids.chunks(ordo::GC_BATCH) {
        let mut batch = Batch::new();
        for id in chunk {
            batch.delete_workflow(id);
        }
        journal.commit(&batch)?;
        commits += 1;
    }
    render(
        Collected {
            deleted: ids.len() as u64,
            commits,
            cutoff_ms,
        },
        json,
    )
}

/// Asks the application running on the journal at `path` to delete its finished
/// workflows older than `older_than` (it does so between its workflows' steps);
/// `Ok(None)` if no application runs there.
pub fn run_live(path: &Path, older_than: Duration, json: bool) -> Result<Option<String>, CliError> {
    let older_than_ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
    let cutoff_ms = now_ms().saturating_sub(older_than_ms);
    let Some(reply) = remote::ask(path, &Request::Gc { older_than_ms })? else {
        return Ok(None);
    };
    let done: Deleted = remote::decode(path, reply)?;
    let collected = Collected {
        deleted: done.deleted,
        commits: done.commits,
        cutoff_ms,
    };
    render(collected, json).map(Some)
}

/// `ordo gc` on a PostgreSQL journal: one of its workers collects.
pub fn run_on_workers(
    url: &crate::postgres::Url,
    older_than: Duration,
    json: bool,
) -> Result<String, CliError> {
    let older_than_ms = u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX);
    let cutoff_ms = now_ms().saturating_sub(older_than_ms);
    let via = remote::Via::Workers(url);
    let done: Deleted = via.decode(via.ask("gc", None, &Request::Gc { older_than_ms })?)?;
    let collected = Collected {
        deleted: done.deleted,
        commits: done.commits,
        cutoff_ms,
    };
    render(collected, json)
}

/// The running application's answer to a gc request.
#[derive(Debug, Deserialize)]
struct Deleted {
    deleted: u64,
    commits: u64,
}

/// Ms since the Unix epoch, now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn render(collected: Collected, json: bool) -> Result<String, CliError> {
    let cutoff_ms = collected.cutoff_ms;
    if json {
        return Ok(serde_json::to_string_pretty(&collected)? + "\n");
    }
    Ok(format!(
        "deleted {} finished workflow(s) last written before {} UTC ({} commit(s))\n",
        collected.deleted,
        utc(cutoff_ms),
        collected.commits
    ))
}

/// Parses an age: a whole number and a unit, `s`, `m`, `h`, `d` or `w` (`30d`, `12h`).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: write 30d, 12h, 90m, 45s or 2w"))?;
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        "w" => 7 * 24 * 3600,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}: use s, m, h, d or w"
            ))
        }
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long an age"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_their_unit_and_nothing_else_does() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in [
            "30",
            "d",
            "",
            "3.5d",
            "30days",
            "-1d",
            "99999999999999999999d",
        ] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
