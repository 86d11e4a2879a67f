//! `ordo`: look into a journal from the shell.
//!
//! ```text
//! ordo list  [--data DIR] [--status pending|succeeded|failed|cancelled|enqueued|delayed] [--json]
//! ordo show  ID [--data DIR] [--json]
//! ordo stats [--data DIR] [--json]
//! ordo gc    --older-than AGE [--data DIR] [--json]
//! ```
//!
//! Install it with `cargo install --path cli` (from the repository's root), or run it in
//! place with `cargo run --release -p ordo-cli -- <command>`.
//!
//! `list`, `show` and `stats` only read: they open the journal with
//! [`SledJournal::open_existing`](ordo::journal::SledJournal::open_existing), which
//! never creates, migrates or writes anything. `gc` deletes finished workflows older
//! than an age (`30d`, `12h`...): it opens the journal for writing, so no application
//! may have it open (a running one deletes its own: `Runtime::gc`, or
//! `RuntimeBuilder::retention`). Every failure is one line on stderr,
//! `ordo: <message>`, and an exit code saying what kind of failure it was (see
//! [`error`]).
//!
//! # Layout
//!
//! - `main.rs`: the command line (clap) and the dispatch.
//! - `error`: the CLI's error and its exit codes, mapped from the journal's errors.
//! - `list`, `show`, `stats`, `gc`: one file per command, each with its text and JSON
//!   output.
//! - `format`: UTC times from milliseconds, byte sizes, aligned text tables.

mod error;
mod format;
mod gc;
mod list;
mod show;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ordo::journal::SledJournal;
use ordo::Status;

use crate::error::CliError;

/// Inspect an ordo journal: its workflows, their steps, its size; delete old finished
/// workflows. Only `gc` writes.
#[derive(Debug, Parser)]
#[command(name = "ordo", version, after_help = error::EXIT_CODES_HELP)]
struct Cli {
    /// The journal folder (the quickstart's is ./ordo-data).
    #[arg(long, global = true, value_name = "DIR", default_value = ordo::DEFAULT_DATA_DIR)]
    data: PathBuf,

    /// Print JSON (stable field names) instead of text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One row per workflow: id, name, status, steps, created, updated (UTC), app version.
    List {
        /// Only workflows with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
    },
    /// A workflow's record and its step timeline in delivery order.
    Show {
        /// The workflow id.
        id: String,
    },
    /// Workflows by status, completions recorded, size on disk.
    Stats,
    /// Deletes finished (succeeded, failed, cancelled) workflows last written more than
    /// AGE ago, with their steps, in commits of at most 1,000. Writes: the application
    /// must not be running.
    Gc {
        /// The age: a whole number and a unit, s, m, h, d or w (30d, 12h).
        #[arg(long, value_name = "AGE", value_parser = gc::parse_age)]
        older_than: Duration,
    },
}

/// `--status` values; a local enum so clap can list them in `--help`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusArg {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
    Enqueued,
    Delayed,
}

impl From<StatusArg> for Status {
    fn from(arg: StatusArg) -> Status {
        match arg {
            StatusArg::Pending => Status::Pending,
            StatusArg::Succeeded => Status::Succeeded,
            StatusArg::Failed => Status::Failed,
            StatusArg::Cancelled => Status::Cancelled,
            StatusArg::Enqueued => Status::Enqueued,
            StatusArg::Delayed => Status::Delayed,
        }
    }
}

fn main() -> ExitCode {
    error::install_panic_hook();
    // clap prints usage errors itself (exit code 2) and `--help`/`--version` (0).
    let cli = Cli::parse();
    match run(&cli) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ordo: {}", err.one_line());
            ExitCode::from(err.exit_code())
        }
    }
}

/// Runs the command and returns what to print on stdout.
fn run(cli: &Cli) -> Result<String, CliError> {
    match &cli.command {
        Command::List { status } => {
            list::run(&open(&cli.data)?, status.map(Status::from), cli.json)
        }
        Command::Show { id } => show::run(&open(&cli.data)?, id, cli.json),
        Command::Stats => stats::run(&open(&cli.data)?, cli.json),
        // The one command that writes: it opens the journal itself.
        Command::Gc { older_than } => gc::run(&cli.data, *older_than, cli.json),
    }
}

/// Opens the journal read-only: a missing folder is an error, never a new journal.
fn open(path: &Path) -> Result<SledJournal, CliError> {
    SledJournal::open_existing(path).map_err(CliError::Journal)
}
