//! A power cut never loses a `Sync` commit that was acknowledged, and after a power cut a
//! `Flush` journal that lost acknowledged commits is refused, not silently replayed.
//!
//! In the spirit of the ALICE study: a child process commits under strace, printing
//! `ACK <thread> <n>` once commit `n` of a thread returned. From the trace, the test
//! rebuilds the files a power cut could leave at many points — at every acknowledgement
//! and at a random point inside every commit — keeping everything not yet `fsync`ed
//! (what a killed process leaves), nothing of it, and random parts of it (writes torn
//! into 4 KiB pieces, lost file names): see `common/crash_fs.rs` for the model. Each
//! state is opened with [`SledJournal::open`] and read back.
//!
//! Two threads commit at once, and every fourth commit carries a value larger than
//! sled's blob threshold, so blob files (and sled's leaf consolidations into new blobs)
//! are part of what must be durable.
//!
//! Known gaps, found by these tests and documented rather than hidden: with the disk
//! reordering unsynced writes (the ignored `..._even_if_the_disk_reorders`), and after a
//! power cut under `Flush` past the seal, sled's recovery can skip a log record whose
//! blob file was lost, tearing an unacknowledged commit (a large record missing while its
//! completion is there) or, rarely, losing a page.
//!
//! To look at a run: `ORDO_KEEP_TRACE=<file>` keeps the strace output, and
//! `ORDO_KEEP_STATES=<folder>` keeps a copy of each failing crash state.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::crash_fs::{History, Keep};
use common::{completion, strace};
use ordo_journal::{Batch, Durability, Error, SledJournal, Status, Store, WorkflowRecord};

/// Committing threads in the child.
const THREADS: u64 = 2;
/// Commits per thread.
const COMMITS: u64 = 8;
/// The size of a large value: over a quarter of sled's 512 KiB segment, so sled stores
/// the message holding it in a blob file.
const BIG: usize = 140_000;

/// Whether commit `n` of a thread writes a large workflow record.
fn is_big(n: u64) -> bool {
    n % 4 == 1
}

fn big_record(thread: u64, n: u64) -> WorkflowRecord {
    let input = (0..BIG)
        .map(|k| (k as u64).wrapping_mul(31).wrapping_add(thread * 7 + n) as u8)
        .collect();
    WorkflowRecord::new(format!("big-{thread}-{n}"), "bulk", input, 1_000 + n)
}

fn workflow_id(thread: u64) -> String {
    format!("w{thread}")
}

/// Commit `n` of `thread`: completion `n` of its workflow, and maybe a large record.
fn batch(thread: u64, n: u64) -> Batch {
    let mut batch = Batch::new();
    batch.push_completion(&workflow_id(thread), completion(n));
    if is_big(n) {
        batch.put_workflow(big_record(thread, n));
    }
    batch
}

/// A traced child run: its history and acknowledgements `(trace line, thread, n)`.
struct Run {
    history: History,
    acks: Vec<(usize, u64, u64)>,
    trace_lines: usize,
    blobs_created: usize,
    _dir: tempfile::TempDir,
}

fn traced_run(mode: &str, threads: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let journal = base.join("journal");
    let mut child = common::child("crash_states_child");
    child
        .env("ORDO_JOURNAL_PATH", &journal)
        .env("ORDO_JOURNAL_DURABILITY", mode)
        .env("ORDO_CRASH_THREADS", threads.to_string());
    let traced = strace::run(&child, &base.join("trace"));
    if let Ok(keep) = std::env::var("ORDO_KEEP_TRACE") {
        std::fs::copy(base.join("trace"), keep).unwrap();
    }
    let acks: Vec<_> = traced
        .stdout_lines()
        .into_iter()
        .filter_map(|(line, text)| {
            // The harness's own "test ... " may precede the first one on its line.
            let at = text.find("ACK ")?;
            let mut words = text[at + 4..].split(' ');
            let thread = words.next()?.parse().ok()?;
            let n = words.next()?.parse().ok()?;
            Some((line, thread, n))
        })
        .collect();
    assert_eq!(
        acks.len() as u64,
        threads * COMMITS,
        "every commit acknowledged; the child printed {:?}",
        traced.stdout_lines()
    );
    let blobs = journal.join("blobs");
    let blobs_created = traced
        .events
        .iter()
        .filter(|e| {
            matches!(&e.call, strace::Call::Open { path, create: true, .. } if path.starts_with(&blobs))
        })
        .count();
    let history = History::new(&traced.events, &journal);
    assert!(
        history.unmodelled.is_empty(),
        "calls on the journal the crash model cannot replay: {:?}",
        history.unmodelled
    );
    let trace_lines = traced.events.last().map_or(0, |e| e.end + 1);
    Run {
        history,
        acks,
        trace_lines,
        blobs_created,
        _dir: dir,
    }
}

/// Cut points: every acknowledgement, a random line inside every commit (between two
/// acknowledgements), and the end of the run.
fn cuts(run: &Run, rng: &mut fastrand::Rng) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut previous = 0;
    for &(line, _, _) in &run.acks {
        if line > previous + 1 {
            cuts.push(rng.usize(previous + 1..line));
        }
        cuts.push(line);
        previous = line;
    }
    cuts.push(run.trace_lines);
    cuts
}

/// Commits acknowledged at `cut`, per thread: the child printed the line, so the commit
/// had returned.
fn acked_at(run: &Run, cut: usize) -> BTreeMap<u64, u64> {
    let mut acked = BTreeMap::new();
    for &(line, thread, n) in &run.acks {
        if line <= cut {
            let count = acked.entry(thread).or_insert(0);
            *count = (*count).max(n + 1);
        }
    }
    acked
}

/// Reads the journal back: per thread, how many of its commits it holds. Fails unless
/// they are a prefix of the thread's commits, each exact (completion and large record).
fn commits_present(journal: &SledJournal, threads: u64) -> Result<BTreeMap<u64, u64>, String> {
    commits_present_sealed(journal, threads, u64::MAX)
}

/// [`commits_present`], checking large records only for the first `exact` commits (a
/// thread's later ones may be torn).
fn commits_present_sealed(
    journal: &SledJournal,
    threads: u64,
    exact: u64,
) -> Result<BTreeMap<u64, u64>, String> {
    let mut present = BTreeMap::new();
    for thread in 0..threads {
        let id = workflow_id(thread);
        let steps = journal.completions(&id).map_err(|e| e.to_string())?;
        let count = steps.len() as u64;
        let expected: Vec<_> = (0..count).map(completion).collect();
        if steps != expected {
            return Err(format!("{id}'s completions are not the ones committed"));
        }
        for n in (0..COMMITS.min(exact)).filter(|&n| is_big(n)) {
            let want = (n < count).then(|| big_record(thread, n));
            let got = journal
                .workflow(&format!("big-{thread}-{n}"))
                .map_err(|e| e.to_string())?;
            if got != want {
                return Err(format!(
                    "large record big-{thread}-{n} is {} but commit {n} is {}",
                    if got.is_some() {
                        "present (or wrong)"
                    } else {
                        "missing"
                    },
                    if n < count { "present" } else { "absent" }
                ));
            }
        }
        // A torn commit past the seal can leave an index entry without its large record.
        if exact == u64::MAX && journal.workflows(Some(Status::Pending)).is_err() {
            return Err("the status index is unreadable".into());
        }
        present.insert(thread, count);
    }
    Ok(present)
}

/// Opens a crash state and reads it back ([`commits_present`]); a panic of sled's while
/// reading is a failure like any error.
fn open_and_read(journal: &Path, threads: u64) -> Result<BTreeMap<u64, u64>, String> {
    let read = std::panic::catch_unwind(|| {
        SledJournal::open(journal, Durability::Flush)
            .map_err(|e| e.to_string())
            .and_then(|j| commits_present(&j, threads))
    });
    read.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(format!("sled panicked reading it: {message}"))
    })
}

/// The commit count of the seal a crash state holds (0 for none or no valid slot).
fn seal_count(journal: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(journal.join("ordo.seal")) else {
        return 0;
    };
    bytes
        .chunks_exact(32)
        .filter(|slot| {
            slot[..8] == *b"ordoseal" && crc32fast::hash(&slot[..24]).to_le_bytes() == slot[24..28]
        })
        .map(|slot| {
            let word = |r: std::ops::Range<usize>| u64::from_le_bytes(slot[r].try_into().unwrap());
            (word(8..16), word(16..24))
        })
        .max()
        .map_or(0, |(_, commits)| commits)
}

/// The crash states built at each cut: nothing unsynced kept, everything kept, and two
/// power failures part-way through the unsynced calls in issue order.
fn in_order_variants(cut: usize) -> Vec<Keep> {
    let seed = cut as u64 * 4;
    vec![
        Keep::Nothing,
        Keep::Everything,
        Keep::InOrder(seed + 1),
        Keep::InOrder(seed + 2),
    ]
}

/// Crash states whose unsynced calls reached the disk in any order.
fn reordered_variants(cut: usize) -> Vec<Keep> {
    let seed = cut as u64 * 4;
    vec![
        Keep::Random(seed + 1),
        Keep::Random(seed + 2),
        Keep::Random(seed + 3),
    ]
}

/// Builds the crash state for (`cut`, `keep`) in a fresh folder: the folder, the
/// journal's path in it, and how many calls were not durable at the cut.
fn build(run: &Run, cut: usize, keep: Keep) -> (tempfile::TempDir, PathBuf, usize) {
    let state = tempfile::tempdir().unwrap();
    let volatile = run.history.crash_state(cut, keep, state.path());
    let journal = state.path().join("journal");
    (state, journal, volatile)
}

/// Checks every crash state of a `Sync` run: each acknowledged commit is there, exact.
/// A state cut before the first acknowledgement (the journal being created) may be
/// refused as damaged, never read wrong.
fn check_sync_states(run: &Run, variants: fn(usize) -> Vec<Keep>) {
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut states, mut with_volatile, mut refused_new, mut failures) = (0, 0, 0, Vec::new());
    for cut in cuts(run, &mut rng) {
        let acked = acked_at(run, cut);
        for keep in variants(cut) {
            let (_state, journal, volatile) = build(run, cut, keep);
            states += 1;
            with_volatile += usize::from(volatile > 0);
            let describe = || format!("cut at trace line {cut}, {keep:?}, acknowledged {acked:?}");
            if !journal.join("db").exists() {
                if !acked.is_empty() {
                    failures.push(format!("{}: the journal's log is gone", describe()));
                }
                continue;
            }
            match open_and_read(&journal, THREADS) {
                Ok(present) => {
                    for (thread, &count) in &acked {
                        let held = present.get(thread).copied().unwrap_or(0);
                        if held < count {
                            failures.push(format!(
                                "{}: thread {thread} has {held} of its {count} acknowledged commits",
                                describe()
                            ));
                        }
                    }
                }
                Err(err) if acked.is_empty() && err.contains("is damaged") => refused_new += 1,
                Err(err) => {
                    failures.push(format!(
                        "{}: {err} ({volatile} calls were not durable)",
                        describe()
                    ));
                    if let Ok(keep_dir) = std::env::var("ORDO_KEEP_STATES") {
                        let to = Path::new(&keep_dir).join(format!("cut{cut}-{keep:?}"));
                        let _ = std::process::Command::new("cp")
                            .arg("-r")
                            .arg(&journal)
                            .arg(&to)
                            .status();
                    }
                }
            }
        }
    }
    eprintln!(
        "{states} crash states ({with_volatile} with calls not yet durable; {refused_new} cut \
         while the journal was created, refused as damaged), {} blob files created, {} failures",
        run.blobs_created,
        failures.len()
    );
    assert!(
        with_volatile > states / 2,
        "most crash states must have something to lose, or nothing is tested"
    );
    assert!(
        failures.is_empty(),
        "{} of {states} crash states lost acknowledged commits:\n{}",
        failures.len(),
        failures[..failures.len().min(8)].join("\n")
    );
}

#[test]
fn a_power_cut_never_loses_an_acknowledged_sync_commit() {
    let run = traced_run("sync", THREADS);
    assert!(
        run.blobs_created > 0,
        "the run must write blob files, or they are not tested"
    );
    check_sync_states(&run, in_order_variants);
}

/// The same, with the unsynced tail of the log persisted out of order (a hole, then
/// later writes). Fails today, rarely with one committing thread and often with two:
/// sled 0.34.7's recovery skips a damaged message at the end of its log and applies
/// later ones, and can then lose pages that acknowledged commits live in ("cannot find
/// pid 3"). Run with `--ignored`.
#[test]
#[ignore = "finding: sled's recovery does not survive a reordered unsynced log tail"]
fn a_power_cut_never_loses_an_acknowledged_sync_commit_even_if_the_disk_reorders() {
    let run = traced_run("sync", THREADS);
    check_sync_states(&run, reordered_variants);
}

#[test]
fn after_a_power_cut_a_flush_journal_missing_sealed_commits_is_refused() {
    let run = traced_run("flush", 1);
    let mut rng = fastrand::Rng::with_seed(11);
    let (mut states, mut refused, mut opened_fewer, mut failures) = (0, 0, 0, Vec::new());
    // States whose unsynced writes reached the disk out of order and that broke the
    // promise (seen: a sealed commit's large record lost): outside what is promised (see
    // the README's "Not guaranteed": `Flush` syncs no blob file, and sled's recovery
    // skips a log record whose blob is gone), so counted and shown, not failed. Which states occur depends
    // on when sled synced its log during the traced run.
    let mut reordered_losses = Vec::new();
    for cut in cuts(&run, &mut rng) {
        let acked = acked_at(&run, cut).get(&0).copied().unwrap_or(0);
        let in_order = in_order_variants(cut);
        let mut variants = in_order.clone();
        variants.extend(reordered_variants(cut));
        for keep in variants {
            let failures = if in_order.contains(&keep) {
                &mut failures
            } else {
                &mut reordered_losses
            };
            let (_state, journal, _) = build(&run, cut, keep);
            if !journal.join("db").exists() {
                continue;
            }
            states += 1;
            let sealed = seal_count(&journal);
            let describe = || format!("cut at trace line {cut}, {keep:?}, seal {sealed}");
            match SledJournal::open(&journal, Durability::Flush) {
                // Past the seal, Flush promises nothing after a power cut: sled may have
                // synced a commit's log record (it fsyncs `db` itself at times) but not
                // the blob file it points at, and its recovery then skips that record.
                Ok(j) => match commits_present_sealed(&j, 1, sealed) {
                    // The only promise left after a power cut: never fewer commits than
                    // the surviving seal counts (there is one commit counter for all).
                    Ok(present) if present[&0] >= sealed => {
                        opened_fewer += usize::from(present[&0] < acked);
                    }
                    Ok(present) => failures.push(format!(
                        "{}: opened with {} commits, fewer than sealed",
                        describe(),
                        present[&0]
                    )),
                    Err(err) => failures.push(format!("{}: {err}", describe())),
                },
                // Refused: lost sealed commits, or files sled itself cannot recover.
                Err(Error::Damaged { .. }) => refused += 1,
                Err(err) => failures.push(format!("{}: {err}", describe())),
            }
        }
    }
    eprintln!("{states} crash states: {refused} refused as damaged, {opened_fewer} opened with fewer commits than acknowledged but as many as sealed, {} reordered ones broke it (not promised)", reordered_losses.len());
    for loss in &reordered_losses {
        eprintln!("  not promised: {loss}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        refused > 0,
        "Flush does not survive a power cut: some states must be refused"
    );
}

/// A process killed at any point while it creates a journal leaves a folder that opens
/// as a new, empty journal, never one refused as damaged: nothing was acknowledged yet,
/// and a refusal would keep the service from starting until someone deleted the folder.
/// Every cut between two traced calls of a child that only creates a journal, keeping
/// all it wrote (what a killed process leaves); each state must open, hold nothing, and
/// then take a commit that a reopen finds.
#[test]
fn a_journal_killed_while_it_is_created_opens_as_a_new_one() {
    let run = traced_run("sync", 0);
    let (mut states, mut failures) = (0, Vec::new());
    for cut in 0..=run.trace_lines {
        let (_state, journal, _) = build(&run, cut, Keep::Everything);
        if !journal.exists() {
            continue;
        }
        states += 1;
        let opened = SledJournal::open(&journal, Durability::Sync).and_then(|j| {
            let listed = j.workflows(None)?.len();
            j.commit(&batch(0, 0))?;
            drop(j);
            let again = SledJournal::open(&journal, Durability::Sync)?;
            Ok((listed, again.completions(&workflow_id(0))?.len()))
        });
        match opened {
            Ok((0, 1)) => {}
            Ok((listed, completions)) => failures.push(format!(
                "cut at trace line {cut}: {listed} workflows listed at open, {completions} \
                 completions after a commit and a reopen (expected 0 and 1)"
            )),
            Err(err) => failures.push(format!("cut at trace line {cut}: {err}")),
        }
    }
    eprintln!("{states} states of a journal killed while it was created");
    assert!(states > 5, "the trace must cut the creation in many places");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The child: `ORDO_CRASH_THREADS` threads each make `COMMITS` commits, printing
/// `ACK <thread> <n>` after each. Thread 0 pauses twice for 600 ms, long enough for
/// sled's background flusher (every 500 ms, when it runs) to act between commits.
#[test]
#[ignore = "child process of the crash-state tests"]
fn crash_states_child() {
    if !common::is_child() {
        return;
    }
    let (path, durability) = common::child_journal();
    let threads: u64 = std::env::var("ORDO_CRASH_THREADS")
        .unwrap()
        .parse()
        .unwrap();
    let journal = SledJournal::open(&path, durability).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let journal = &journal;
            scope.spawn(move || {
                for n in 0..COMMITS {
                    journal.commit(&batch(thread, n)).unwrap();
                    // One `write` per line, so lines of two threads never mix.
                    let line = format!("ACK {thread} {n}\n");
                    std::io::Write::write_all(&mut std::io::stdout().lock(), line.as_bytes())
                        .unwrap();
                    if thread == 0 && (n == 3 || n == 6) {
                        std::thread::sleep(std::time::Duration::from_millis(600));
                    }
                }
            });
        }
    });
}
