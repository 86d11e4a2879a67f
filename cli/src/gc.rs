//! `ordo gc --older-than AGE`: deletes finished workflows past an age, offline.
//!
//! The CLI opens the journal for writing itself, so no application may hold it (sled's
//! lock says so, and the CLI never waits for it). A running application deletes its own
//! through `Runtime::gc` or `RuntimeBuilder::retention`, on its own thread.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ordo::journal::{finished_before, Batch, Durability, SledJournal, Store};
use serde::Serialize;

use crate::error::CliError;
use crate::format::utc;

/// What `ordo gc --json` prints. Field names are a stable interface.
#[derive(Debug, Serialize)]
struct Collected {
    /// Finished workflows deleted, with their completions.
    deleted: usize,
    /// Commits it took (at most `ordo::GC_BATCH` workflows each).
    commits: usize,
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
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let cutoff_ms =
        now_ms.saturating_sub(u64::try_from(older_than.as_millis()).unwrap_or(u64::MAX));
    let ids = finished_before(&journal, cutoff_ms)?;
    let mut commits = 0;
    for chunk in ids.chunks(ordo::GC_BATCH) {
        let mut batch = Batch::new();
        for id in chunk {
            batch.delete_workflow(id);
        }
        journal.commit(&batch)?;
        commits += 1;
    }
    let collected = Collected {
        deleted: ids.len(),
        commits,
        cutoff_ms,
    };
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
