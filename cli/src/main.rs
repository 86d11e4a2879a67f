//! `ordo`: look into a journal from the shell.
//!
//! ```text
//! ordo list   [--data DIR | --postgres URL] [--status pending|succeeded|failed|cancelled|enqueued|delayed] [--json]
//! ordo show   ID [--data DIR | --postgres URL] [--json]
//! ordo stats  [--data DIR | --postgres URL] [--json]
//! ordo gc     --older-than AGE [--data DIR] [--json]
//! ordo cancel ID [--children] [--data DIR] [--json]
//! ordo resume ID [--data DIR] [--json]
//! ordo fork   ID --at SEQ [--id NEW] [--data DIR] [--json]
//! ```
//!
//! Install it with `cargo install --path cli` (from the repository's root), or run it in
//! place with `cargo run --release -p ordo-cli -- <command>`.
//!
//! **While an application runs** on the journal (it holds sled's lock), every command
//! goes through the application's admin socket, `DIR/admin.sock` (see `ordo::admin`):
//! `list`, `show` and `stats` show the live state, and `cancel`, `resume`, `fork` and
//! `gc` happen on the application's own thread, between its workflows' steps.
//!
//! **With no application running**, `list`, `show` and `stats` only read: they open the
//! journal with [`SledJournal::open_existing`](ordo::journal::SledJournal::open_existing),
//! which never creates, migrates or writes anything. `gc` deletes finished workflows
//! older than an age (`30d`, `12h`...) itself, opening the journal for writing.
//! `cancel`, `resume` and `fork` refuse (exit code 4) and change nothing: stopping
//! running code and running a workflow's code again need the application that has it.
//!
//! **On PostgreSQL** (`--postgres URL`, or the environment variable `ORDO_DATABASE_URL`
//! when neither `--postgres` nor `--data` is given, as for the applications
//! themselves), `list`, `show` and `stats` read the journal in that database, opened
//! with [`PgOptions::read_only`](ordo::journal::PgOptions::read_only): the CLI is no
//! worker, registers nothing and writes nothing, so it never disturbs the applications
//! running on it. `stats` reports the size of the journal's tables on the server.
//! `cancel`, `resume`, `fork` and `gc` are requests the CLI leaves in the journal for
//! the running workers (the applications on that database): a cancel is carried out by
//! the worker that drives the workflow, the others by the first worker to take them,
//! and the reply is what an admin socket would give. With no worker to take a request
//! within 5 s, it is withdrawn and the CLI exits with code 4, having changed nothing.
//!
//! Every failure is one line on stderr, `ordo: <message>`, and an exit code saying what
//! kind of failure it was (see [`error`]).
//!
//! # Layout
//!
//! - `main.rs`: the command line (clap) and the dispatch.
//! - `error`: the CLI's error and its exit codes, mapped from the journal's errors.
//! - `list`, `show`, `stats`, `gc`: one file per command, each with its text and JSON
//!   output, from the journal (sled or PostgreSQL) or from a running application.
//! - `postgres`: the journal on PostgreSQL, opened read-only, and requests for its
//!   workers.
//! - `operate`: `cancel`, `resume`, `fork`, which need the running application.
//! - `remote`: asking the running application through its admin socket, or the
//!   workers through the journal (`Via`).
//! - `format`: UTC times from milliseconds, byte sizes, aligned text tables.

mod error;
mod format;
mod gc;
mod list;
mod operate;
mod postgres;
mod remote;
mod show;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ordo::admin::{CallError, ErrorKind, Request};
use ordo::journal::SledJournal;
use ordo::Status;

use crate::error::CliError;
use crate::remote::Via;

/// The environment variable naming the PostgreSQL journal when neither `--postgres`
/// nor `--data` is given (the one `ordo::RuntimeBuilder` reads too).
const DATABASE_URL_VAR: &str = "ORDO_DATABASE_URL";

/// Inspect an ordo journal: its workflows, their steps, its size; delete old finished
/// workflows; cancel, resume and fork workflows of the running application.
#[derive(Debug, Parser)]
#[command(name = "ordo", version, after_help = error::EXIT_CODES_HELP)]
struct Cli {
    /// The journal folder [default: ordo-data, the quickstart's].
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,

    /// Read the journal in this PostgreSQL database (`postgres://USER:PASSWORD@HOST/DB`
    /// or `host=... dbname=...`) instead of a folder; `list`, `show` and `stats` only,
    /// and they write nothing. Without --postgres and --data, the environment
    /// variable ORDO_DATABASE_URL, if set, is used the same way.
    #[arg(long, global = true, value_name = "URL", conflicts_with = "data")]
    postgres: Option<String>,

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
    /// AGE ago, with their steps, in commits of at most 1,000: through the running
    /// application if one runs, else in the journal itself.
    Gc {
        /// The age: a whole number and a unit, s, m, h, d or w (30d, 12h).
        #[arg(long, value_name = "AGE", value_parser = gc::parse_age)]
        older_than: Duration,
    },
    /// Cancels a workflow of the running application: its running steps are dropped,
    /// its status becomes cancelled, recovery leaves it alone.
    Cancel {
        /// The workflow id.
        id: String,
        /// Cancels its child workflows too, level by level.
        #[arg(long)]
        children: bool,
    },
    /// Runs a cancelled workflow, or one stuck after too many recovery attempts, again
    /// in the running application: its recorded steps replay, the rest runs live.
    Resume {
        /// The workflow id.
        id: String,
    },
    /// Starts a copy of a workflow in the running application with its first SEQ
    /// recorded steps (the SEQ column of `ordo show`); the rest runs live.
    Fork {
        /// The workflow to copy.
        id: String,
        /// How many recorded steps the copy keeps.
        #[arg(long = "at", value_name = "SEQ")]
        at_seq: u64,
        /// The copy's id (default: ID.fork-SEQ).
        #[arg(long = "id", value_name = "NEW")]
        new_id: Option<String>,
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

/// Where the journal is.
#[derive(Debug)]
enum Source {
    /// A sled journal folder (and the admin socket in it).
    Folder(PathBuf),
    /// A PostgreSQL database.
    Postgres(postgres::Url),
}

impl Cli {
    /// `--postgres`, else `--data`, else `ORDO_DATABASE_URL` if set, else the default
    /// folder: the same choice an application's `RuntimeBuilder` makes without a store.
    fn source(&self) -> Source {
        if let Some(url) = &self.postgres {
            return Source::Postgres(postgres::Url::given(url.clone()));
        }
        if let Some(data) = &self.data {
            return Source::Folder(data.clone());
        }
        match std::env::var(DATABASE_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => {
                Source::Postgres(postgres::Url::from_env(url, DATABASE_URL_VAR))
            }
            _ => Source::Folder(PathBuf::from(ordo::DEFAULT_DATA_DIR)),
        }
    }
}

fn main() -> ExitCode {
    error::install_panic_hook();
    // clap prints usage errors itself (exit code 2) and `--help`/`--version` (0).
    let cli = Cli::parse();
    match run(&cli) {
        Ok(output) => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(output.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // A reader that stopped reading (`ordo list | head -1`) wanted no more.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("ordo: cannot write the output: {err}");
                    ExitCode::from(1)
                }
                Ok(()) => ExitCode::SUCCESS,
            }
        }
        Err(err) => {
            eprintln!("ordo: {}", err.one_line());
            ExitCode::from(err.exit_code())
        }
    }
}

/// Runs the command and returns what to print on stdout.
fn run(cli: &Cli) -> Result<String, CliError> {
    match cli.source() {
        Source::Folder(data) => run_folder(cli, &data),
        Source::Postgres(url) => run_postgres(cli, &url),
    }
}

/// Through the running application's admin socket if one serves the journal in `data`,
/// else from the journal.
fn run_folder(cli: &Cli, data: &Path) -> Result<String, CliError> {
    match &cli.command {
        Command::List { status } => {
            let status = status.map(Status::from);
            let request = Request::List {
                status,
                limit: None,
            };
            match remote::ask_to_read(data, &request)? {
                Some(rows) => list::render(remote::decode(data, rows)?, status, cli.json),
                None => list::run(&open(data)?, status, cli.json),
            }
        }
        Command::Show { id } => {
            match remote::ask_to_read(data, &Request::Show { id: id.clone() }) {
                Ok(Some(shown)) => show::render(&remote::decode(data, shown)?, cli.json),
                Ok(None) => show::run(&open(data)?, id, cli.json),
                Err(CliError::Remote(CallError::Refused {
                    kind: ErrorKind::NotFound,
                    ..
                })) => Err(CliError::UnknownWorkflow { id: id.clone() }),
                Err(err) => Err(err),
            }
        }
        Command::Stats => match remote::ask_to_read(data, &Request::Stats)? {
            Some(counts) => stats::render(
                remote::decode(data, counts)?,
                remote::folder_size(data),
                cli.json,
            ),
            None => {
                let journal = open(data)?;
                stats::run(&journal, journal.size_on_disk()?, cli.json)
            }
        },
        Command::Gc { older_than } => match gc::run_live(data, *older_than, cli.json)? {
            Some(output) => Ok(output),
            // No application runs: the one offline command that writes.
            None => gc::run(data, *older_than, cli.json),
        },
        Command::Cancel { id, children } => {
            operate::cancel(Via::Socket(data), id, *children, cli.json)
        }
        Command::Resume { id } => operate::resume(Via::Socket(data), id, cli.json),
        Command::Fork { id, at_seq, new_id } => {
            operate::fork(Via::Socket(data), id, *at_seq, new_id.as_deref(), cli.json)
        }
    }
}

/// From the PostgreSQL journal at `url`: reads open it read-only; `gc`, `cancel`,
/// `resume` and `fork` are requests its workers serve.
fn run_postgres(cli: &Cli, url: &postgres::Url) -> Result<String, CliError> {
    match &cli.command {
        Command::List { status } => {
            list::run(&postgres::open(url)?, status.map(Status::from), cli.json)
        }
        Command::Show { id } => show::run(&postgres::open(url)?, id, cli.json),
        Command::Stats => {
            let journal = postgres::open(url)?;
            stats::run(&journal, journal.size_on_disk()?, cli.json)
        }
        Command::Gc { older_than } => gc::run_on_workers(url, *older_than, cli.json),
        Command::Cancel { id, children } => {
            operate::cancel(Via::Workers(url), id, *children, cli.json)
        }
        Command::Resume { id } => operate::resume(Via::Workers(url), id, cli.json),
        Command::Fork { id, at_seq, new_id } => {
            operate::fork(Via::Workers(url), id, *at_seq, new_id.as_deref(), cli.json)
        }
    }
}

/// Opens the journal read-only: a missing folder is an error, never a new journal.
fn open(path: &Path) -> Result<SledJournal, CliError> {
    SledJournal::open_existing(path).map_err(CliError::Journal)
}
