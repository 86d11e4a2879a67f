//! The budget ledger: the "outside world" the workflow's steps change, kept as a text
//! file (`ledger.txt` in the data folder) so a reader, or a test, can see every effect.
//!
//! One line per entry: `<op> <expense id> <amount> <idempotency key>`, where `op` is
//! `reserve`, `release` or `pay`. A step body runs at least once (the one in flight
//! at a crash runs again), so each operation is written at most once per expense: a
//! body that finds its line already there does nothing. That check is what makes the
//! payment exactly-once, the way a real payment service would deduplicate on the
//! idempotency key it is given.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;

/// The ledger file and the total budget it is checked against.
#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
    /// Reservations beyond this total are refused.
    budget: u64,
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub op: String,
    pub expense: String,
    pub amount: u64,
}

impl Ledger {
    pub fn new(path: PathBuf, budget: u64) -> Self {
        Ledger { path, budget }
    }

    /// Every complete line (a torn last line, cut by a crash mid-write, is not an entry).
    fn entries(&self) -> Result<Vec<Entry>, String> {
        let mut text = String::new();
        match File::open(&self.path) {
            Ok(mut file) => file
                .read_to_string(&mut text)
                .map_err(|e| format!("reading {}: {e}", self.path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("opening {}: {e}", self.path.display())),
        };
        Ok(text
            .split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                Some(Entry {
                    op: fields.next()?.to_string(),
                    expense: fields.next()?.to_string(),
                    amount: fields.next()?.parse().ok()?,
                })
            })
            .collect())
    }

    fn find(&self, op: &str, expense: &str) -> Result<Option<Entry>, String> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|e| e.op == op && e.expense == expense))
    }

    /// Appends one entry and makes it durable before returning, so the step's recorded
    /// outcome never claims an effect the disk could lose.
    fn append(&self, op: &str, expense: &str, amount: u64, key: &str) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("writing {}: {e}", self.path.display());
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(fail)?;
        let mut line = String::new();
        // A crash mid-write can leave a torn last line: end it so ours stands alone.
        let len = file.metadata().map_err(fail)?.len();
        if len > 0 {
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(fail)?;
            if !text.ends_with('\n') {
                line.push('\n');
            }
        }
        line.push_str(&format!("{op} {expense} {amount} {key}\n"));
        file.write_all(line.as_bytes()).map_err(fail)?;
        file.sync_data().map_err(fail)
    }

    /// Reserves `amount` for `expense`, or says why not (the budget left is too small).
    pub fn reserve(&self, expense: &str, amount: u64, key: &str) -> Result<(), String> {
        if self.find("reserve", expense)?.is_some() {
            return Ok(());
        }
        let entries = self.entries()?;
        let sum = |op: &str| -> u64 {
            entries
                .iter()
                .filter(|e| e.op == op)
                .map(|e| e.amount)
                .sum()
        };
        // Paid money stays reserved: only releases give budget back.
        let left = self
            .budget
            .saturating_sub(sum("reserve"))
            .saturating_add(sum("release"));
        if amount > left {
            return Err(format!("over budget: {amount} asked, {left} left"));
        }
        self.append("reserve", expense, amount, key)
    }

    /// Gives `expense`'s reservation back.
    pub fn release(&self, expense: &str, amount: u64, key: &str) -> Result<(), String> {
        if self.find("release", expense)?.is_some() {
            return Ok(());
        }
        self.append("release", expense, amount, key)
    }

    /// Pays `expense` once, whatever number of times it is asked; returns the payment's
    /// reference (the idempotency key of the first request that paid).
    pub fn pay(&self, expense: &str, amount: u64, key: &str) -> Result<String, String> {
        if self.find("pay", expense)?.is_none() {
            self.append("pay", expense, amount, key)?;
        }
        Ok(format!("payment {key}"))
    }
}
