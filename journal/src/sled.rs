//! The embedded store: [`SledJournal`], the [`Store`] on sled 0.34.7.
//!
//! Every record lives in sled's default tree under the key space of [`key`](crate::key),
//! so a commit is one `sled::Batch` applied to one tree (atomic across a crash), followed
//! by the [`Durability`] point chosen at open.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::codec::{
    self, KEYED_TOKENS_SCHEMA, MARKED_ENTRY_SCHEMA, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION,
    UNINDEXED_QUEUE_SCHEMA,
};
use crate::copy::{self, TempFolder};
use crate::durability::{DataFiles, Durability};
use crate::key::{self, Key};
use crate::last_seq::LastSeqs;
use crate::mail::Message;
use crate::queue::Mark;
use crate::record::{Batch, Completion, Outcome, Prior, Status, WorkflowRecord};
use crate::seal::{self, Seal, SealState, SEAL_FILE};
use crate::start_group::{self, GroupChanges, StartGroups};
use crate::store::Store;
use crate::token_key::{self, TokenKey};
use crate::Error;

/// The journal on sled: one directory, held exclusively by one process.
///
/// ```
/// use ordo_journal::{Durability, SledJournal, Store};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let journal = SledJournal::open(dir.path().join("journal"), Durability::Flush)?;
/// assert_eq!(journal.workflow("nobody")?, None);
/// # Ok(()) }
/// ```
pub struct SledJournal {
    /// The sled database; only its default tree is used.
    db: ::sled::Db,
    /// The journal directory; `None` for a temporary journal.
    path: Option<PathBuf>,
    /// The durability point every commit reaches before returning.
    durability: Durability,
    /// sled's files to `fdatasync`; present exactly when `durability` is `Sync`.
    data_files: Option<DataFiles>,
    /// Set by `open_existing`, which promises never to write.
    read_only: bool,
    /// The high-water mark of acknowledged commits outside sled's log (see
    /// [`seal`](crate::seal)); `None` for temporary and read-only journals. Advanced
    /// after each commit's durability point; a std mutex, held for one `pwrite`.
    seal: Option<Mutex<Seal>>,
    /// Successful non-empty commits since open, exposed by the runtime as a metric.
    commits: AtomicU64,
    /// Whether queue entries stored as records of their own (before schema 6) were left
    /// at open (see `upgrade_entries`): the deletion of an entry removes that record too.
    legacy_entries: bool,
    /// Whether a workflow record may be held in a `Pending` index entry rather than under
    /// a key of its own (see [`Mark`] and [`key::HELD`]): until a workflow was started or
    /// enqueued (by this build; older ones wrote records of their own), a read of a
    /// workflow looks at its own key alone. Set before the first such commit is applied,
    /// so no reader misses a held record.
    /// The journal's token key; `None` only for a journal opened read-only that has
    /// none yet (see [`crate::token_key`]).
    token_key: Option<TokenKey>,
    may_hold: AtomicBool,
    /// The start groups stored, as [`StartGroups`] keeps them: which group lists each
    /// id (see [`crate::start_group`]). Read at open; changed by the writer after each
    /// commit is applied, under the `writer` lock.
    groups: RwLock<StartGroups>,
    /// Counts commits applied, twice each: odd while one is being applied (from before
    /// sled's apply to after `groups` took it in), even otherwise. A read of one
    /// workflow that saw it change reads again (see [`SledJournal::read_workflow`]).
    applying: AtomicU64,
    /// Declared after `db` on purpose: fields drop in declaration order, so this waits,
    /// after sled is dropped, until sled's file lock is really free (see
    /// [`LockRelease`]).
    _lock_release: LockRelease,
    /// The private copy a read-only journal reads from, removed after sled let go of it.
    _copy: Option<TempFolder>,
    /// Serializes commits from the append check to the apply, so the check that new
    /// seqs come after the recorded ones sees what the apply will extend. It also owns the
    /// encode buffers, so a commit allocates only the sled values themselves. A std mutex:
    /// held for CPU work and sled's in-memory apply, released before the durability point
    /// so concurrent commits can share one flush.
    writer: Mutex<Writer>,
}

/// The commit path's state, behind `SledJournal::writer`: encode buffers and the
/// last-seq cache.
#[derive(Default)]
struct Writer {
    /// The key being built.
    key: Vec<u8>,
    /// The value being encoded.
    value: Vec<u8>,
    /// A record being encoded into a start mark.
    record: Vec<u8>,
    /// The batch's completions as indices, sorted by (workflow id, seq) to form runs.
    order: Vec<usize>,
    /// The last recorded seq of recently committed workflows, so the append check of a
    /// running workflow costs a hash lookup instead of a reverse sled scan (~15 µs).
    /// Coherent because sled's lock makes this process the journal's only writer; the raw
    /// test hooks clear it. A miss reads the journal.
    last_seq: LastSeqs,
    /// `(completion index, last seq)` of each run in the batch being encoded, moved into
    /// `last_seq` once the batch is applied.
    appended: Vec<(usize, u64)>,
    /// Commits the journal ever acknowledged (its `meta/commits` counter), so each commit
    /// writes the next number.
    total_commits: u64,
    /// The queue entries of workflows recent commits enqueued and that have not started
    /// yet, so a start (which rewrites the `Pending` index entry holding the entry, see
    /// [`Mark`]) needs no read of it. Only a cache, coherent like `last_seq`: an entry
    /// leaves it with its start, deletion or removal, a miss reads the journal, and it is
    /// cleared when it grows past [`WAITING_CACHE_LIMIT`].
    waiting: HashMap<String, Waiting>,
    /// What the batch being encoded does to `waiting` once applied, in order: an entry
    /// put (`Some`) or one gone (`None`).
    enqueued: Vec<CacheChange>,
    /// Whether [`key::HELD`] is in the journal (applied), so batches that hold records
    /// in marks need not write it again.
    held_recorded: bool,
    /// Whether the batch being encoded writes [`key::HELD`].
    writes_held: bool,
    /// What the batch being encoded does to the start groups, taken into
    /// `SledJournal::groups` once applied.
    group_changes: GroupChanges,
}

/// Frees what sled retired while applying `batch`, before the runtime goes on.
///
/// sled replaces a tree node on every insert and hands the old one to its epoch-based
/// collector (crossbeam-epoch's global one), which frees retired memory only a little
/// at a time: at most eight bags of 64 objects per collection, one collection per 128
/// pins. A commit of a thousand starts retires several thousand objects; when the
/// runtime then goes quiet (a million workflows parked in a durable sleep), nothing pins
/// any more and they stay allocated for good: `benches/memory.rs` measured about 6 KiB
/// per workflow, more than the workflows' own state, still held after 1,000 workflows
/// parked. Each `flush` here advances the epoch (nothing else stays pinned for long)
/// and frees up to eight expired bags; the count allows about sixteen objects per write,
/// more than an insert retires, and costs well under a microsecond per flush when
/// nothing is left to free.
fn collect_garbage(batch: &Batch) {
    let writes = batch.workflows.len() * 2
        + batch.completions.len()
        + batch.queue.len()
        + batch.deletes.len()
        + batch.mail.messages.len()
        + batch.mail.consumed.len()
        + batch.mail.events.len()
        + batch.mail.resolutions.len();
    for _ in 0..(writes / 32 + 3) {
        ::sled::pin().flush();
    }
}

/// The start groups a batch writes (see [`crate::start_group`]), built as its starts
/// are encoded.
struct Grouping<'b> {
    /// The number the next group takes.
    next: u64,
    /// Each group: number, value, member ids.
    groups: Vec<(u64, Vec<u8>, Vec<&'b str>)>,
}

impl<'b> Grouping<'b> {
    fn new(next: u64) -> Self {
        Grouping {
            next,
            groups: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Adds workflow `id`'s encoded `record` to the last group, or to a new one if it
    /// would pass [`start_group::GROUP_BYTES`].
    fn push(&mut self, id: &'b str, record: &[u8]) {
        let len = start_group::member_len(id, record);
        let fits = self
            .groups
            .last()
            .is_some_and(|(_, value, _)| value.len() + len <= start_group::GROUP_BYTES);
        if !fits {
            self.groups.push((
                self.next,
                Vec::with_capacity(start_group::GROUP_BYTES.max(len)),
                Vec::new(),
            ));
            self.next += 1;
        }
        if let Some((_, value, ids)) = self.groups.last_mut() {
            start_group::push_member(id, record, value);
            ids.push(id);
        }
    }
}

/// A change to [`Writer::waiting`]: workflow id, and its entry (`None`: it leaves).
type CacheChange = (String, Option<Waiting>);

/// A waiting queued workflow's queue entry, and whether its mark holds its record (see
/// [`Mark`]), as [`Writer::waiting`] remembers them.
type Waiting = (Vec<u8>, bool);

/// How many queue entries [`Writer::waiting`] remembers before starting over.
const WAITING_CACHE_LIMIT: usize = 1 << 16;

impl Writer {
    /// Records the runs of an applied batch in the last-seq cache, and its queue entries
    /// in the cache of waiting ones.
    fn applied(&mut self, batch: &Batch) {
        if self.waiting.len() + self.enqueued.len() > WAITING_CACHE_LIMIT {
            self.waiting.clear();
        }
        for (id, entry) in self.enqueued.drain(..) {
            match entry {
                Some(entry) => self.waiting.insert(id, entry),
                None => self.waiting.remove(&id),
            };
        }
        if std::mem::take(&mut self.writes_held) {
            self.held_recorded = true;
        }
        self.last_seq
            .make_room(self.appended.len() + batch.workflows.len());
        // A new record's workflow has no completion yet (a delete of its id in this batch
        // took the old ones along). Starts first: a run in the same batch comes after.
        for (record, _) in
            (batch.workflows.iter().zip(&batch.priors)).filter(|(_, &prior)| prior == Prior::Absent)
        {
            self.last_seq.started(&record.id);
        }
        for &(index, last) in &self.appended {
            self.last_seq.appended(&batch.completions[index].0, last);
        }
    }
}

/// What a batch does to one queue entry (see [`SledJournal::entry_ops`]).
struct EntryOp<'b> {
    /// Its last put (`Some`) or delete (`None`).
    entry: Option<&'b [u8]>,
    /// The status of the last record of its workflow the batch writes (not a start of a
    /// queued one), with whether it is new.
    status: Option<(Status, bool)>,
    /// Whether the batch starts its workflow, its mark holding the entry.
    started: bool,
    /// The record of a workflow this batch enqueues (encoded), kept in its mark rather
    /// than as a record of its own (schema 8): one sled entry per enqueue, not two.
    record: Option<Vec<u8>>,
    /// Whether the batch writes the workflow's own record (after any enqueue in it).
    wrote_record: bool,
}

impl EntryOp<'_> {
    /// The record a rewritten mark holds: the one this batch enqueued, else none if the
    /// batch wrote the workflow's own record (read from then on), else the one the
    /// stored mark `held`.
    fn kept_record<'a>(&'a self, held: Option<&'a [u8]>) -> Option<&'a [u8]> {
        match &self.record {
            Some(record) => Some(record),
            None if self.wrote_record => None,
            None => held,
        }
    }
}

impl fmt::Debug for SledJournal {
    // Not derived: sled's own `Debug` for a tree prints every entry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledJournal")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .field("read_only", &self.read_only)
            .field("commits", &self.commit_count())
            .finish_non_exhaustive()
    }
}

impl SledJournal {
    /// Opens the journal in directory `path`, creating it if missing (and then writing the
    /// schema version and the [seal](crate#damage)), or checking an existing one.
    ///
    /// An existing journal is checked before sled may write to it: a private copy is
    /// opened first and must hold every commit the seal says was acknowledged. A journal
    /// that fails the check is left exactly as it was on disk (sled would otherwise zero
    /// what it takes for a torn tail) and reported as [`Error::Damaged`]. The check reads
    /// the journal's files once more at open (on filesystems with reflinks, such as btrfs
    /// and XFS, the copy shares blocks and is nearly free).
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] if another process has it open (after waiting up to five seconds
    /// for a lock that a process that just died may still hold), [`Error::Damaged`] if it lost
    /// acknowledged commits or sled cannot read its files, [`Error::UnsupportedVersion`]
    /// for another schema version, [`Error::Corrupt`] for a sled database that is not an
    /// ordo journal, [`Error::Io`] or [`Error::Storage`] otherwise.
    ///
    /// ```
    /// use ordo_journal::{Durability, SledJournal, Store};
    /// let dir = tempfile::tempdir()?;
    /// let journal = SledJournal::open(dir.path(), Durability::Sync)?;
    /// assert!(journal.workflows(None)?.is_empty());
    /// drop(journal);
    /// // Reopening finds the same journal; a second opener while it is open gets `Error::Locked`.
    /// let again = SledJournal::open(dir.path(), Durability::Sync)?;
    /// # drop(again);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        // The seal of a new journal, written before sled writes anything there.
        let mut created = None;
        if creation_unfinished(&path) {
            // A process stopped while it created this journal, before anything reached
            // sled's log: sled may have been stopped between writing its `conf` and the
            // checksum after it, and would refuse that file on every open. It is sled's
            // own configuration, which sled writes again, and nothing else goes. Under
            // sled's lock, so a process creating it right now is not disturbed.
            let probe = lock_probe(&path, true)?;
            if creation_unfinished(&path) {
                match std::fs::remove_file(path.join("conf")) {
                    Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                        return Err(err.into())
                    }
                    _ => {}
                }
            }
            drop(probe);
        } else if !is_existing(&path) {
            std::fs::create_dir_all(&path)?;
            created = Some(Seal::create(&path)?);
        } else {
            // Hold sled's lock while copying, so no runtime writes meanwhile; let go of it
            // before sled takes it (a flock is per open file, so it would refuse us).
            let probe = lock_probe(&path, false)?;
            // Holding the lock, no other process is checking this journal: a copy left
            // behind by a process that died while checking is stale.
            copy::remove_stale(&path, "verify");
            let checked = TempFolder::new(&path, "verify")
                .map_err(Error::from)
                .and_then(|copy| {
                    copy::copy_journal(&path, copy.path())?;
                    let (db, _) = open_checked(copy.path(), &path)?;
                    drop(db);
                    wait_for_release(copy.path());
                    Ok(())
                });
            drop(probe);
            checked?;
        }
        // Checked before sled opens the journal (and may write to it): a damaged key file
        // leaves every file as it was.
        let stored_key = stored_token_key(&path)?;
        let config = ::sled::Config::new()
            .path(&path)
            .flush_every_ms(durability.sled_flush_every_ms());
        let db = open_sled(config, &path)?;
        let (seal, total_commits, token_key) = match stored_schema(&db)? {
            Some(version) => {
                check_schema(version, &path)?;
                let state = check_seal(&db, &path)?;
                let seal = Seal::open(&path, state)?;
                let token_key = match stored_key {
                    Some(token_key) => token_key,
                    // Journals of versions before 9 have none: drawn before the version
                    // write, so that a journal of version 9 or later always has one.
                    None if version < KEYED_TOKENS_SCHEMA => token_key::create(&path)?,
                    None => return Err(missing_token_key(&path)),
                };
                if version < SCHEMA_VERSION {
                    // An older schema this build reads (see `SCHEMA_VERSION`): mark the
                    // journal as this build's before writing any record of the new form,
                    // so an older build refuses it rather than misreading it. sled
                    // recovers a prefix of its log, so no later commit survives a crash
                    // without this write.
                    let mut upgrade = ::sled::Batch::default();
                    if version < UNINDEXED_QUEUE_SCHEMA {
                        // Index entries of queued statuses, which this schema no longer
                        // keeps (see `key::is_indexed`): removed with the version write,
                        // so none is left behind to go stale.
                        for status in [Status::Enqueued, Status::Delayed] {
                            for entry in db.scan_prefix(key::status_prefix(status)).keys() {
                                upgrade.remove(entry?);
                            }
                        }
                    }
                    if version < MARKED_ENTRY_SCHEMA {
                        upgrade_entries(&db, &mut upgrade)?;
                    }
                    // (The `Succeeded` entries of versions before 7 can be millions: they
                    // go after the version write, in bounded batches, below.)
                    upgrade.insert(key::SCHEMA, &codec::encode_schema(SCHEMA_VERSION));
                    db.apply_batch(upgrade)?;
                    db.flush()?;
                }
                drop_succeeded_entries(&db)?;
                (seal, stored_commits(&db)?, token_key)
            }
            None if db.is_empty() => {
                // The seal first: a journal with a schema always has one. A process
                // killed in between leaves an empty journal sealed at zero commits,
                // which opens as a new one (see `open_checked`); the other way round it
                // left a journal without a seal, refused as damaged on every open.
                let seal = match created.take() {
                    Some(seal) => seal,
                    None => Seal::create(&path)?,
                };
                // Then the token key (kept if a creation cut short drew it): a journal
                // with a schema always has one too.
                let token_key = match stored_key {
                    Some(token_key) => token_key,
                    None => token_key::create(&path)?,
                };
                db.insert(key::SCHEMA, &codec::encode_schema(SCHEMA_VERSION))?;
                db.insert(key::COMMITS, &0u64.to_be_bytes())?;
                db.flush()?;
                (seal, 0, token_key)
            }
            None => return Err(not_a_journal()),
        };
        // After the schema write, so that the creation of sled's files is synced too.
        let data_files = match durability {
            Durability::Sync => Some(DataFiles::open(&path)?),
            Durability::Flush | Durability::None => None,
        };
        let legacy_entries = has_legacy_entries(&db)?;
        let mut journal = SledJournal::new(db, Some(path), durability, data_files, false)?;
        journal.token_key = Some(token_key);
        journal.seal = Some(Mutex::new(seal));
        journal.legacy_entries = legacy_entries;
        journal
            .writer
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .total_commits = total_commits;
        Ok(journal)
    }

    /// Opens an existing journal read-only, for inspecting it (a CLI): reads a private
    /// copy taken into the system's temporary folder, so it never writes one byte to
    /// `path` and never takes its lock: it works while a runtime has the journal open,
    /// and never stops one from starting. [`Store::commit`] returns [`Error::ReadOnly`].
    ///
    /// The copy is checked like [`SledJournal::open`] checks a journal. A copy taken while
    /// a runtime commits can catch a file mid-write (sled moves pages between segments as
    /// it goes); such a copy is taken again. While a process holds the journal, a copy
    /// that fails the check is never reported as damage: that process opened (and so
    /// checked) the journal, and the copy is what is torn.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] naming `path` if there is no journal there, [`Error::Damaged`]
    /// if it lost acknowledged commits or cannot be read, [`Error::Busy`] if a running
    /// process changed it during every copy, and the errors of [`SledJournal::open`] but
    /// [`Error::Locked`].
    ///
    /// ```
    /// use ordo_journal::{Error, SledJournal};
    ///
    /// let err = SledJournal::open_existing("/definitely/not/here").unwrap_err();
    /// assert!(matches!(err, Error::NotFound { .. }));
    /// assert_eq!(err.to_string(), "no ordo journal at /definitely/not/here");
    /// ```
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        // sled would create a missing database; look before it can.
        if !path.join("db").is_file() {
            return Err(Error::NotFound { path });
        }
        /// Copies taken of a journal a running process changes, at growing intervals
        /// (20 ms more each time: about 1.3 s of pauses in all, besides the copies).
        const TRIES: u32 = 12;
        copy::remove_orphans(&std::env::temp_dir(), "read");
        let mut tries = 0;
        loop {
            tries += 1;
            let copy = TempFolder::new(&std::env::temp_dir(), "read")?;
            copy::copy_journal(&path, copy.path())?;
            let opened = open_checked(copy.path(), &path);
            match opened {
                Ok((db, schema)) => {
                    let Some(schema) = schema else {
                        return Err(Error::NotFound { path });
                    };
                    let token_key = stored_token_key(&path)?;
                    if token_key.is_none() && schema >= KEYED_TOKENS_SCHEMA {
                        return Err(missing_token_key(&path));
                    }
                    let mut journal =
                        SledJournal::new(db, Some(path), Durability::None, None, true)?;
                    journal.token_key = token_key;
                    journal._lock_release = LockRelease(Some(copy.path().to_path_buf()));
                    journal._copy = Some(copy);
                    return Ok(journal);
                }
                // A copy taken while a runtime writes may be torn; take another.
                Err(Error::Damaged { .. }) if is_locked(&path) => {
                    if tries >= TRIES {
                        return Err(Error::Busy { path, tries });
                    }
                    std::thread::sleep(Duration::from_millis(20 * u64::from(tries)));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// A journal in a temporary sled database that is deleted on drop, with
    /// [`Durability::None`]; for tests.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::Storage`] if sled cannot create it.
    ///
    /// ```
    /// use ordo_journal::{SledJournal, Store};
    /// let journal = SledJournal::temporary()?;
    /// assert_eq!(journal.path(), None);
    /// assert_eq!(journal.commit_count(), 0);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn temporary() -> Result<Self, Error> {
        let db = ::sled::Config::new().temporary(true).open()?;
        db.insert(key::SCHEMA, &codec::encode_schema(SCHEMA_VERSION))?;
        let mut journal = SledJournal::new(db, None, Durability::None, None, false)?;
        journal.token_key = Some(TokenKey::generate()?);
        Ok(journal)
    }

    fn new(
        db: ::sled::Db,
        path: Option<PathBuf>,
        durability: Durability,
        data_files: Option<DataFiles>,
        read_only: bool,
    ) -> Result<Self, Error> {
        let groups = load_groups(&db)?;
        let journal = SledJournal {
            db,
            _lock_release: LockRelease(path.clone()),
            _copy: None,
            path,
            durability,
            data_files,
            read_only,
            token_key: None,
            seal: None,
            commits: AtomicU64::new(0),
            legacy_entries: false,
            may_hold: AtomicBool::new(false),
            groups: RwLock::new(groups),
            applying: AtomicU64::new(0),
            writer: Mutex::new(Writer::default()),
        };
        journal.read_held_marker();
        Ok(journal)
    }

    /// Reads [`key::HELD`] into `may_hold` and the writer's state: at open, and after a
    /// raw write went around the commit path. If it cannot be read, reads look at both
    /// places (always right) and the next commit holding a record writes it again.
    fn read_held_marker(&self) {
        let found = self.db.get(key::HELD);
        let recorded = matches!(found, Ok(Some(_)));
        self.may_hold.store(
            found.map_or(true, |found| found.is_some()),
            Ordering::SeqCst,
        );
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .held_recorded = recorded;
    }

    /// The journal directory, or `None` for a [temporary](SledJournal::temporary) journal.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let journal = ordo_journal::SledJournal::open(dir.path(), ordo_journal::Durability::None)?;
    /// assert_eq!(journal.path(), Some(dir.path()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The durability chosen at open.
    ///
    /// ```
    /// use ordo_journal::{Durability, SledJournal};
    /// # let dir = tempfile::tempdir()?;
    /// let journal = SledJournal::open(dir.path(), Durability::Flush)?;
    /// assert_eq!(journal.durability(), Durability::Flush);
    /// // `open_existing` (read-only) and `temporary` journals never sync.
    /// assert_eq!(SledJournal::temporary()?.durability(), Durability::None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The bytes sled uses on disk.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if sled cannot stat its files.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let journal = ordo_journal::SledJournal::open(dir.path(), ordo_journal::Durability::None)?;
    /// println!("{} bytes", journal.size_on_disk()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn size_on_disk(&self) -> Result<u64, Error> {
        Ok(self.db.size_on_disk()?)
    }

    /// Writes raw bytes under a raw key, bypassing encoding: for tests and fuzzing that
    /// plant bad records. Not part of the stable API.
    #[doc(hidden)]
    pub fn raw_insert(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.forget_cached_seqs();
        self.db.insert(key, value)?;
        self.db.flush()?;
        Ok(())
    }

    /// Reads the raw bytes under a raw key: for tests that check what is stored. Not
    /// part of the stable API.
    #[doc(hidden)]
    pub fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.db.get(key)?.map(|value| value.to_vec()))
    }

    /// Removes a raw key: for tests and fuzzing. Not part of the stable API.
    #[doc(hidden)]
    pub fn raw_remove(&self, key: &[u8]) -> Result<(), Error> {
        self.forget_cached_seqs();
        self.db.remove(key)?;
        Ok(())
    }

    /// Removes every record, schema version included: for fuzzing. Not part of the stable
    /// API.
    #[doc(hidden)]
    pub fn raw_clear(&self) -> Result<(), Error> {
        self.forget_cached_seqs();
        self.db.clear()?;
        Ok(())
    }

    /// Encodes `batch` into one sled batch; a batch of a single entry (one workflow's
    /// completions, nothing else) is left in the writer's key and value buffers instead,
    /// returned as `None`.
    fn encode(&self, batch: &Batch, writer: &mut Writer) -> Result<Option<::sled::Batch>, Error> {
        let Writer {
            key: k,
            value: v,
            record,
            order,
            last_seq,
            appended,
            total_commits: _,
            waiting: waiting_cache,
            enqueued,
            held_recorded,
            writes_held,
            group_changes,
        } = writer;
        enqueued.clear();
        *writes_held = false;
        group_changes.clear();
        let mut writes = ::sled::Batch::default();
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        // What the batch does to the start groups (see `crate::start_group`): members it
        // moves out (and the groups they leave), ids deleted from groups that stay, and
        // the groups it writes.
        let mut moving: HashSet<&str> = HashSet::new();
        let mut unlisting: HashMap<u64, Vec<&str>> = HashMap::new();
        let mut grouping = Grouping::new(groups.next);
        // Deletions first: a put of the same id later in this batch writes a new workflow.
        if !batch.deletes.is_empty() && !groups.is_empty() {
            for id in &batch.deletes {
                if let Some(listing) = groups.listing(id) {
                    if listing.live {
                        moving.insert(id);
                    }
                    unlisting.entry(listing.group).or_default().push(id);
                }
            }
        }
        if !batch.deletes.is_empty() {
            self.delete_workflow_keys(&batch.deletes, &batch.delete_priors, &mut writes, k)?;
            for id in &batch.deletes {
                last_seq.forget(id);
                if waiting_cache.remove(id.as_str()).is_some() {
                    enqueued.push((id.clone(), None));
                }
            }
        }
        // Queue entries live in `Pending` index entries (see `crate::queue::ENTRY`): what
        // this batch does to each (the other queue records are written as they come).
        let mut entries = self.entry_ops(batch, k, &mut writes);
        // Each id's first and last put in this batch, built when first needed.
        let mut puts: Option<HashMap<&str, (usize, usize)>> = None;
        for (i, (rec, prior)) in batch.workflows.iter().zip(&batch.priors).enumerate() {
            key::check_id(&rec.id)?;
            // Whether an earlier put of this batch wrote this id (then a new record's
            // entries are not known to be absent), and whether this is its only put.
            // (Asked only of the puts below that depend on it: an end needs neither.)
            let asks = *prior == Prior::Absent
                || (*prior == Prior::Was(Status::Pending) && rec.status == Status::Pending);
            let (first, last) = if asks {
                put_range(&mut puts, batch, &rec.id)
            } else {
                (i, i)
            };
            let (earlier_put, only_put) = (first != i, first == last);
            // A member of a start group moves out with its first put in this batch:
            // every put below writes a record or a `Pending` entry of its own.
            let grouped = !groups.is_empty()
                && groups.member_of(&rec.id).is_some()
                && moving.insert(rec.id.as_str());
            if *prior == Prior::Queued {
                // A queued workflow's start: its record stays as enqueued, and its
                // `Pending` index entry, holding the start time next to its queue entry,
                // marks it started (one sled entry, not a record and an entry; see
                // `read_start`). A workflow enqueued since schema 8 has no record of its
                // own until it ends: its mark holds it, as started from now on.
                key::status(Status::Pending, &rec.id, k);
                let (entry, held) = self.entry_of(&mut entries, waiting_cache, &rec.id, k)?;
                let held = if held {
                    codec::encode_workflow(rec, record)?;
                    Some(record.as_slice())
                } else {
                    None
                };
                Mark::Started(rec.updated_ms, entry.as_deref(), held).encode(v);
                *writes_held |= held.is_some();
                writes.insert(k.as_slice(), v.as_slice());
                continue;
            }
            if *prior == Prior::Absent && key::is_queued(rec.status) {
                if let Some(op) = entries
                    .get_mut(rec.id.as_str())
                    .filter(|op| op.entry.is_some())
                {
                    // Enqueued by this batch, with its queue entry: the record goes in
                    // the mark `encode_entries` writes (its `Pending` index entry), not
                    // under a key of its own. Nothing else to do: a queued status has no
                    // index entry, and a new workflow none to remove.
                    codec::encode_workflow(rec, v)?;
                    op.record = Some(v.clone());
                    if std::mem::take(&mut op.wrote_record) {
                        // An earlier put of this batch wrote one under its own key,
                        // which would be read first: it goes.
                        key::workflow(&rec.id, k);
                        writes.remove(k.as_slice());
                    }
                    op.status = Some((rec.status, true));
                    continue;
                }
            }
            if *prior == Prior::Absent
                && rec.status == Status::Pending
                && !earlier_put
                && !entries.contains_key(rec.id.as_str())
            {
                // A direct start: its `Pending` index entry holds its record, as an
                // enqueued workflow's does, until its end writes a record of its own and
                // removes the entry (a put while it stays pending replaces the held
                // record, below). One sled entry per start, not two. A later put of the
                // same id in this batch writes a record of its own, which wins over the
                // held copy. (After an earlier put of the same id, which may have written
                // a record of its own, it is written as any put is, below.)
                codec::encode_workflow(rec, record)?;
                // Or, short enough and the id's only put in this batch, in a start group
                // with the batch's other starts: no key of its own at all. (With another
                // put of the id in the batch, the last put must be what is read, and a
                // mark or a record of its own is read before a group.)
                if record.len() <= start_group::MAX_GROUPED_RECORD && only_put {
                    grouping.push(&rec.id, record);
                    continue;
                }
                key::status(Status::Pending, &rec.id, k);
                Mark::Started(rec.updated_ms, None, Some(record.as_slice())).encode(v);
                writes.insert(k.as_slice(), v.as_slice());
                *writes_held = true;
                continue;
            }
            if grouped
                && *prior == Prior::Was(Status::Pending)
                && rec.status == Status::Pending
                && !entries.contains_key(rec.id.as_str())
            {
                // A member rewritten while it stays pending: its record moves from the
                // group to a `Pending` entry of its own, as a direct start's mark.
                codec::encode_workflow(rec, record)?;
                key::status(Status::Pending, &rec.id, k);
                Mark::Started(rec.updated_ms, None, Some(record.as_slice())).encode(v);
                writes.insert(k.as_slice(), v.as_slice());
                *writes_held = true;
                continue;
            }
            if *prior == Prior::Was(Status::Pending)
                && rec.status == Status::Pending
                && self.may_hold.load(Ordering::SeqCst)
                && !entries.contains_key(rec.id.as_str())
                && !earlier_put
            {
                // Still pending (a resumption's attempt count, its reset): if its mark
                // holds its record, the new one replaces it there, rather than going under
                // a key of its own next to a copy that would stay until the end (every
                // workflow resumed after a restart would hold its record twice). One read
                // of the mark; the same one write. Only for the id's first put in this
                // batch: the stored mark is what an earlier put would have replaced, and
                // a record of its own that one wrote would be read first.
                key::status(Status::Pending, &rec.id, k);
                if let Some(stored) = self.db.get(k.as_slice())? {
                    if let Mark::Started(_, entry, Some(_)) = Mark::parse(k, &stored)? {
                        // Unless an earlier batch wrote a record of its own after the
                        // mark (two rewrites in one batch): that one is read first, so it
                        // is the one rewritten, below. (`v` as the key's buffer: it is
                        // encoded into afterwards.)
                        key::workflow(&rec.id, v);
                        if self.db.get(v.as_slice())?.is_none() {
                            codec::encode_workflow(rec, record)?;
                            Mark::Started(rec.updated_ms, entry, Some(record.as_slice())).encode(v);
                            writes.insert(k.as_slice(), v.as_slice());
                            continue;
                        }
                    }
                }
            }
            key::workflow(&rec.id, k);
            codec::encode_workflow(rec, v)?;
            writes.insert(k.as_slice(), v.as_slice());
            if !entries.is_empty() {
                if let Some(op) = entries.get_mut(rec.id.as_str()) {
                    op.status = Some((rec.status, *prior == Prior::Absent));
                    op.record = None;
                    op.wrote_record = true;
                }
            }
            // The status index changes with the record, in the same batch: one entry for
            // the new status, none for the others. Without a known prior status, the
            // others are removed blindly (no read of the old record); a later put of the
            // same id in this batch overrides both. Queued statuses have no entry.
            for status in Status::ALL.into_iter().filter(|&s| key::is_indexed(s)) {
                let stale = match *prior {
                    Prior::Unknown => true,
                    // A new record after an earlier put of this batch (a start and its
                    // end in one batch, say): what that put indexed goes.
                    Prior::Absent if earlier_put => true,
                    Prior::Absent | Prior::Queued => false,
                    Prior::Was(previous) => previous == status,
                };
                if status == rec.status {
                    // A group member has no `Pending` entry of its own: one is written as
                    // it moves out still pending.
                    if *prior != Prior::Was(status) || (grouped && status == Status::Pending) {
                        key::status(status, &rec.id, k);
                        // A record that may have been queued keeps its queue entry
                        // in its `Pending` entry.
                        let entry = match *prior {
                            Prior::Unknown | Prior::Was(Status::Enqueued | Status::Delayed)
                                if status == Status::Pending =>
                            {
                                self.entry_of(&mut entries, waiting_cache, &rec.id, k)?.0
                            }
                            _ => None,
                        };
                        match entry {
                            Some(entry) => {
                                Mark::Started(rec.updated_ms, Some(&entry), None).encode(v);
                                writes.insert(k.as_slice(), v.as_slice());
                            }
                            None => writes.insert(k.as_slice(), &[][..]),
                        }
                    }
                } else if stale && !(grouped && status == Status::Pending) {
                    // (A group member has no `Pending` entry to remove: sled costs as
                    // much to remove an absent key as to write one.)
                    key::status(status, &rec.id, k);
                    writes.remove(k.as_slice());
                    // A queued workflow's entry goes with its `Pending` index entry.
                    if status == Status::Pending
                        && !waiting_cache.is_empty()
                        && waiting_cache.remove(rec.id.as_str()).is_some()
                    {
                        enqueued.push((rec.id.clone(), None));
                    }
                }
            }
        }

        for (fingerprint, name) in &batch.types {
            codec::encode_type_name(name, v)?;
            writes.insert(&key::type_name(*fingerprint)[..], v.as_slice());
        }

        for (id, traceparent) in &batch.trace_contexts {
            key::check_id(id)?;
            key::trace_context(id, k);
            codec::encode_trace_context(traceparent, v)?;
            writes.insert(k.as_slice(), v.as_slice());
        }

        // Continue-as-new: the workflow's runs go, and its seqs start over.
        for id in &batch.resets {
            key::check_id(id)?;
            key::completion_prefix(id, k);
            for entry in self.db.scan_prefix(k.as_slice()).keys() {
                writes.remove(entry?);
            }
            last_seq.forget(id);
        }

        // One run (one sled entry) per workflow: see `key` for why.
        let completions = &batch.completions;
        order.clear();
        order.extend(0..completions.len());
        appended.clear();
        order.sort_unstable_by(|&a, &b| {
            let ((id_a, a), (id_b, b)) = (&completions[a], &completions[b]);
            id_a.cmp(id_b).then(a.seq.cmp(&b.seq))
        });
        for run in order.chunk_by(|&a, &b| completions[a].0 == completions[b].0) {
            let id = &completions[run[0]].0;
            key::check_id(id)?;
            let seq = |i: usize| completions[i].1.seq;
            let out_of_order = |seq, after| Error::SeqOutOfOrder {
                workflow_id: id.clone(),
                seq,
                after,
            };
            if let Some(pair) = run.windows(2).find(|pair| seq(pair[0]) == seq(pair[1])) {
                return Err(out_of_order(seq(pair[1]), seq(pair[0])));
            }
            let (first, last) = (seq(run[0]), seq(run[run.len() - 1]));
            if !last_seq.check(id, first)? {
                let recorded_last = if batch.resets.contains(id) || batch.deletes.contains(id) {
                    None
                } else {
                    self.recorded_last_seq(id, k)?
                };
                if let Some(recorded_last) = recorded_last.filter(|&recorded| first <= recorded) {
                    return Err(out_of_order(first, recorded_last));
                }
            }
            appended.push((run[0], last));
            key::completion_run(id, first, last, k);
            codec::encode_run(run.iter().map(|&i| &completions[i].1), v)?;
            writes.insert(k.as_slice(), v.as_slice());
        }
        if let Some(highest) = crate::mail::encode(batch, k, v, &mut writes)? {
            writes.insert(crate::mail::MESSAGE_COUNTER, &highest.to_be_bytes());
        }
        *writes_held |=
            self.encode_entries(&entries, (waiting_cache, enqueued), (k, v), &mut writes)?;
        if !groups.is_empty() || !grouping.is_empty() {
            self.encode_groups(
                &groups,
                (moving, unlisting, grouping),
                group_changes,
                &mut writes,
            )?;
        }
        drop(groups);
        if *writes_held {
            if *held_recorded {
                *writes_held = false;
            } else {
                // The first commit holding a record in a mark says so, and readers look
                // for held records from before it is applied on.
                writes.insert(key::HELD, &[][..]);
                self.may_hold.store(true, Ordering::SeqCst);
            }
        }
        let single_entry = batch.workflows.is_empty()
            && group_changes.is_empty()
            && batch.mail.is_empty()
            && batch.types.is_empty()
            && batch.resets.is_empty()
            && batch.trace_contexts.is_empty()
            && batch.deletes.is_empty()
            && batch.queue.is_empty()
            && appended.len() == 1;
        Ok((!single_entry).then_some(writes))
    }

    /// Adds to `writes` what a batch does to the start groups (see
    /// [`crate::start_group`]): the groups it writes, the removal of those its members
    /// all left (and of those found empty at open), the rewrite of those it deletes ids
    /// from; `changes` says the same for [`StartGroups`], once applied.
    fn encode_groups(
        &self,
        groups: &StartGroups,
        (moving, mut unlisting, grouping): (HashSet<&str>, HashMap<u64, Vec<&str>>, Grouping<'_>),
        changes: &mut GroupChanges,
        writes: &mut ::sled::Batch,
    ) -> Result<(), Error> {
        let mut leaving: HashMap<u64, u32> = HashMap::new();
        for id in moving {
            if let Some(group) = groups.member_of(id) {
                *leaving.entry(group).or_default() += 1;
                changes.moved.push(id.to_owned());
            }
        }
        let mut removing = groups.empty.clone();
        removing.extend(
            leaving
                .into_iter()
                .filter(|&(group, left)| groups.members_left(group) <= left)
                .map(|(group, _)| group),
        );
        for group in removing {
            let group_key = start_group::key(group);
            let ids = match self.db.get(group_key)? {
                Some(value) => start_group::members(&group_key, &value)?
                    .into_iter()
                    .map(|(id, _)| id.to_owned())
                    .collect(),
                None => Vec::new(),
            };
            writes.remove(&group_key[..]);
            unlisting.remove(&group);
            changes.removed.push((group, ids));
        }
        for (group, ids) in unlisting {
            let group_key = start_group::key(group);
            let Some(value) = self.db.get(group_key)? else {
                continue;
            };
            let mut kept = Vec::with_capacity(value.len());
            for (id, record) in start_group::members(&group_key, &value)? {
                if !ids.contains(&id) {
                    start_group::push_member(id, record, &mut kept);
                }
            }
            if kept.is_empty() {
                writes.remove(&group_key[..]);
                changes.removed.push((group, Vec::new()));
            } else {
                writes.insert(&group_key[..], kept);
            }
            changes.unlisted.extend(ids.into_iter().map(str::to_owned));
        }
        for (number, value, ids) in grouping.groups {
            writes.insert(&start_group::key(number)[..], value);
            changes
                .written
                .push((number, ids.into_iter().map(str::to_owned).collect()));
        }
        Ok(())
    }

    /// The record of workflow `id` in its start group, if it is a member of one (see
    /// [`crate::start_group`]). `None` too if a commit moved it out since: its record is
    /// under its own keys then, which the caller reads next.
    fn grouped_record(&self, id: &str) -> Result<Option<WorkflowRecord>, Error> {
        let Some(group) = self.membership(id) else {
            return Ok(None);
        };
        // `None` if the group no longer holds it: a commit moved it out (to keys of its
        // own), or to another group (deleted and started again in one commit), between
        // the two reads; `read_workflow` sees the commit and reads again.
        self.read_member(group, id)
    }

    /// The group `id` is a member of, as the journal's memory says now.
    fn membership(&self, id: &str) -> Option<u64> {
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        if groups.is_empty() {
            return None;
        }
        groups.member_of(id)
    }

    /// The record group `group` holds for `id`, if the group is there and lists it.
    fn read_member(&self, group: u64, id: &str) -> Result<Option<WorkflowRecord>, Error> {
        let group_key = start_group::key(group);
        match self.db.get(group_key)? {
            Some(value) => start_group::find(&group_key, &value, id),
            None => Ok(None),
        }
    }

    /// The records of every start group member, in id order (see [`Self::grouped_record`]).
    fn grouped_records(&self) -> Result<Vec<WorkflowRecord>, Error> {
        let by_group: Vec<(u64, HashSet<String>)> = {
            let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
            if groups.is_empty() {
                return Ok(Vec::new());
            }
            groups
                .members_by_group()
                .into_iter()
                .map(|(group, ids)| (group, ids.into_iter().map(str::to_owned).collect()))
                .collect()
        };
        let mut out = Vec::new();
        for (group, mut ids) in by_group {
            let group_key = start_group::key(group);
            if let Some(value) = self.db.get(group_key)? {
                for (id, record) in start_group::members(&group_key, &value)? {
                    if ids.remove(id) {
                        out.push(codec::decode_workflow(&group_key, id, record)?);
                    }
                }
            }
            // Members the group no longer holds moved since: see `Store::workflows`.
        }
        out.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// What `batch` does to each queue entry (by workflow id), its other queue records
    /// added to `writes` as they come (`k` is scratch).
    fn entry_ops<'b>(
        &self,
        batch: &'b Batch,
        k: &mut Vec<u8>,
        writes: &mut ::sled::Batch,
    ) -> HashMap<&'b str, EntryOp<'b>> {
        let mut ops = HashMap::new();
        for (queue_key, value) in &batch.queue {
            match crate::queue::entry_id(queue_key) {
                Some(id) => {
                    let op = ops.entry(id).or_insert(EntryOp {
                        entry: None,
                        status: None,
                        started: false,
                        record: None,
                        wrote_record: false,
                    });
                    op.entry = value.as_deref();
                }
                None => crate::queue::encode_record(queue_key, value.as_deref(), k, writes),
            }
        }
        ops
    }

    /// The queue entry of workflow `id` as this batch leaves it (its last put or delete
    /// in `entries`, marked as started now), else the one kept in its `Pending` index
    /// entry (`k` is that key, and stays so), from the cache of `waiting` ones if there
    /// (it leaves it: it is read to start the workflow). And whether its record has no
    /// home but that index entry (see [`Mark`]).
    fn entry_of(
        &self,
        entries: &mut HashMap<&str, EntryOp<'_>>,
        waiting: &mut HashMap<String, Waiting>,
        id: &str,
        k: &[u8],
    ) -> Result<(Option<Vec<u8>>, bool), Error> {
        let stored_holds = || -> Result<bool, Error> {
            match self.db.get(k)? {
                Some(value) => Ok(Mark::parse(k, &value)?.record().is_some()),
                None => Ok(false),
            }
        };
        if let Some(op) = entries.get_mut(id) {
            op.started = true;
            let entry = op.entry.map(<[u8]>::to_vec);
            let held = match (&op.record, op.wrote_record) {
                (Some(_), _) => true,
                (None, true) => false,
                (None, false) => stored_holds()?,
            };
            return Ok((entry, held));
        }
        if let Some((entry, held)) = waiting.remove(id) {
            return Ok((Some(entry), held));
        }
        match self.db.get(k)? {
            Some(value) => {
                let mark = Mark::parse(k, &value)?;
                Ok((mark.entry().map(<[u8]>::to_vec), mark.record().is_some()))
            }
            None => Ok((None, false)),
        }
    }

    /// Adds the batch's queue entries to `writes`, into their workflows' `Pending` index
    /// entries (see [`Mark`]). Those left waiting go to the cache of `waiting` ones once
    /// applied (`enqueued`), the others leave it. Returns whether a mark it wrote holds a
    /// record.
    fn encode_entries(
        &self,
        entries: &HashMap<&str, EntryOp<'_>>,
        (waiting, enqueued): (&mut HashMap<String, Waiting>, &mut Vec<CacheChange>),
        (k, v): (&mut Vec<u8>, &mut Vec<u8>),
        writes: &mut ::sled::Batch,
    ) -> Result<bool, Error> {
        let mut holds = false;
        for (&id, op) in entries {
            key::status(Status::Pending, id, k);
            if op.entry.is_none() && self.legacy_entries {
                k.clear();
                k.push(crate::queue::QUEUE);
                k.push(crate::queue::ENTRY);
                k.extend_from_slice(id.as_bytes());
                writes.remove(k.as_slice());
                key::status(Status::Pending, id, k);
            }
            let stored;
            let next = match (op.entry, op.status) {
                // Started by this batch: its mark holds the entry as the batch leaves it
                // (or its end removed it).
                _ if op.started => {
                    waiting.remove(id);
                    continue;
                }
                // It leaves its queue with its end (or cancellation, or while queued):
                // the index entry goes, the start mark with it.
                (None, Some((status, _))) if status != Status::Pending => None,
                // Enqueued by this batch: waiting (nothing to read), holding its record.
                (Some(entry), Some((status, true))) if key::is_queued(status) => {
                    Some(Mark::Waiting(entry, op.record.as_deref()))
                }
                // Else as the index entry says now.
                (entry, _) => {
                    stored = self.db.get(k.as_slice())?;
                    let mark = stored
                        .as_deref()
                        .map(|stored| Mark::parse(k, stored))
                        .transpose()?;
                    let kept = |held| op.kept_record(held);
                    match (entry, mark) {
                        (Some(entry), None) => Some(Mark::Waiting(entry, kept(None))),
                        (Some(entry), Some(Mark::Waiting(_, held))) => {
                            Some(Mark::Waiting(entry, kept(held)))
                        }
                        (Some(entry), Some(Mark::Plain)) => {
                            Some(Mark::Started(0, Some(entry), None))
                        }
                        (Some(entry), Some(Mark::Started(time, _, held))) => {
                            Some(Mark::Started(time, Some(entry), kept(held)))
                        }
                        (None, None) => None,
                        (None, Some(Mark::Waiting(_, held))) => {
                            // Its entry goes while it waits, its record with no other
                            // home: the record moves under its own key, never lost.
                            if let Some(record) = kept(held) {
                                // (`v` as the key's buffer: nothing is encoded into it
                                // for this entry, which goes.)
                                key::workflow(id, v);
                                writes.insert(v.as_slice(), record);
                            }
                            None
                        }
                        (None, Some(Mark::Started(time, Some(_), held))) => {
                            Some(Mark::Started(time, None, kept(held)))
                        }
                        // No entry to remove: the index entry stays as it is.
                        (None, Some(Mark::Plain | Mark::Started(_, None, _))) => continue,
                    }
                }
            };
            match next {
                Some(mark) => {
                    holds |= mark.record().is_some();
                    mark.encode(v);
                    writes.insert(k.as_slice(), v.as_slice());
                }
                None => writes.remove(k.as_slice()),
            }
            if let Some(Mark::Waiting(entry, held)) = next {
                enqueued.push((id.to_owned(), Some((entry.to_vec(), held.is_some()))));
            } else if waiting.remove(id).is_some() {
                enqueued.push((id.to_owned(), None));
            }
        }
        Ok(holds)
    }

    /// Adds to `writes` the removal of every key workflows `ids` have: each record, its
    /// status-index entry (the one `priors` names, else the one its record names; all
    /// of them, blindly, when the record is missing or unreadable, so no stale entry
    /// survives), and their completion runs (`k` is scratch).
    ///
    /// The one place that knows every record kind stored per workflow: a new kind keyed
    /// by workflow (messages, events, ...) must be removed here too, or a deleted
    /// workflow leaves it behind. The kinds with a variable number of keys per workflow
    /// are walked once for the whole batch ([`remove_keyed`]), not scanned per workflow.
    fn delete_workflow_keys(
        &self,
        ids: &[String],
        priors: &[Prior],
        writes: &mut ::sled::Batch,
        k: &mut Vec<u8>,
    ) -> Result<(), Error> {
        for (n, id) in ids.iter().enumerate() {
            key::check_id(id)?;
            key::workflow(id, k);
            // Commits keep the index in step with the record: only the record's status
            // can be indexed. sled costs microseconds per entry, even the removal of an
            // absent one, and a read costs as much: a known status spares both.
            let indexed = match priors.get(n) {
                Some(&Prior::Was(status)) => Some(status),
                _ => match self.db.get(k.as_slice())? {
                    Some(value) => codec::decode_workflow(k, id, &value)
                        .ok()
                        .map(|record| record.status),
                    None => None,
                },
            };
            // The one index entry the record can have (none for an unindexed status),
            // or `None` (unknown): all of them. A queued record may carry a start mark
            // (its `Pending` entry).
            let indexed = indexed.map(|status| {
                if key::is_queued(status) {
                    Some(Status::Pending)
                } else {
                    Some(status).filter(|&status| key::is_indexed(status))
                }
            });
            writes.remove(k.as_slice());
            for status in Status::ALL.into_iter().filter(|&s| key::is_indexed(s)) {
                if indexed.is_none_or(|indexed| indexed == Some(status)) {
                    key::status(status, id, k);
                    writes.remove(k.as_slice());
                }
            }
        }
        // Ids are length-prefixed in completion keys: no workflow's prefix is a prefix
        // of another's.
        remove_keyed(&self.db, ids, key::completion_prefix, false, writes)?;
        // Per-workflow record kinds added after completions.
        crate::mail::delete(&self.db, ids, writes)?;
        remove_keyed(&self.db, ids, key::trace_context, true, writes)?;
        Ok(())
    }

    /// The last seq recorded for workflow `id`, read from the journal (`k` is scratch).
    fn recorded_last_seq(&self, id: &str, k: &mut Vec<u8>) -> Result<Option<u64>, Error> {
        key::completion_prefix(id, k);
        // A forward probe first: cheap, and enough for a workflow's first commit.
        if self
            .db
            .scan_prefix(k.as_slice())
            .next()
            .transpose()?
            .is_none()
        {
            return Ok(None);
        }
        let Some((recorded, _)) = self.db.scan_prefix(k.as_slice()).next_back().transpose()? else {
            return Ok(None);
        };
        let (_, last) = key::run_range(&recorded, k.len())
            .ok_or_else(|| codec::corrupt(&recorded, BAD_RUN_KEY.into()))?;
        Ok(Some(last))
    }

    /// Reads a status-index entry and the record it points at atomically: `None` if the
    /// entry is gone, else the entry's value and the record's raw value.
    #[allow(clippy::type_complexity)]
    fn read_indexed(
        &self,
        index_key: &[u8],
        record_key: &[u8],
    ) -> Result<Option<(::sled::IVec, Option<::sled::IVec>)>, Error> {
        use ::sled::transaction::{ConflictableTransactionError, TransactionError};
        let read = self.db.transaction(|tx| {
            let indexed = tx.get(index_key)?;
            let record = tx.get(record_key)?;
            Ok::<_, ConflictableTransactionError<()>>(indexed.map(|entry| (entry, record)))
        });
        read.map_err(|err| match err {
            TransactionError::Storage(err) => Error::from(err),
            TransactionError::Abort(()) => Error::Storage("read transaction aborted".into()),
        })
    }

    /// Forgets cached last seqs and waiting queue entries, after a raw write went around
    /// the commit path.
    fn forget_cached_seqs(&self) {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writer.last_seq.clear();
        writer.waiting.clear();
        // (A raw write that leaves groups unreadable keeps the last good reading: the
        // raw hooks plant bad records for tests, never groups.)
        if let Ok(groups) = load_groups(&self.db) {
            *self.groups.write().unwrap_or_else(|p| p.into_inner()) = groups;
        }
        drop(writer);
        self.read_held_marker();
    }

    /// Reads and decodes workflow `id`'s record (as started, if queued and started): its
    /// own (`key`), or the one its mark holds (a workflow started or enqueued since
    /// schema 8, see [`Mark`]).
    ///
    /// A commit may move a record between those places (a group, a mark, a key of its
    /// own; a deletion and a new start in one commit even back into a group) while it
    /// is read: a read that a commit overlapped reads again, and after a few tries reads
    /// under the writer's lock, which no commit lets go of while it applies.
    fn read_workflow(&self, key: &[u8], id: &str) -> Result<Option<WorkflowRecord>, Error> {
        self.settled(4, || self.read_workflow_once(key, id))
    }

    /// What `read` returns when no commit was applied while it ran: it runs again if one
    /// was, up to `tries` times, then once under the writer's lock, which a commit holds
    /// from its encoding to its last change in memory. (Never called under that lock.)
    fn settled<T>(
        &self,
        tries: usize,
        mut read: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, Error> {
        for _ in 0..tries {
            let before = self.applying.load(Ordering::SeqCst);
            if before % 2 == 0 {
                let out = read()?;
                std::sync::atomic::fence(Ordering::SeqCst);
                if self.applying.load(Ordering::SeqCst) == before {
                    return Ok(out);
                }
            }
            std::thread::yield_now();
        }
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        read()
    }

    /// One read of [`Self::read_workflow`].
    fn read_workflow_once(&self, key: &[u8], id: &str) -> Result<Option<WorkflowRecord>, Error> {
        // A start group's copy first: a member moves out to a mark or a record of its own
        // (in one commit with the group's removal, if it was the last), never back, so
        // either read below finds what moved it.
        let grouped = self.grouped_record(id)?;
        if !self.may_hold.load(Ordering::SeqCst) {
            return Ok(self.read_own(key, id)?.or(grouped));
        }
        // The mark first, then the record of its own, which wins. A record moves from a
        // mark to a key of its own (with the mark's removal, in one commit), never back:
        // no record of its own now means none when the mark was read, so what the mark
        // held then is the record, and two reads settle every case.
        let mut k = Vec::with_capacity(2 + id.len());
        key::status(Status::Pending, id, &mut k);
        let mark = self.db.get(&k)?;
        match self.read_own(key, id)? {
            Some(record) => Ok(Some(record)),
            None => match mark {
                Some(value) => held_record(&k, id, &value),
                None => Ok(grouped),
            },
        }
    }

    /// Reads and decodes workflow `id`'s record of its own (`key`), as started if queued
    /// and started.
    fn read_own(&self, key: &[u8], id: &str) -> Result<Option<WorkflowRecord>, Error> {
        let Some(value) = self.db.get(key)? else {
            return Ok(None);
        };
        let record = self.decode_workflow(key, id, &value)?;
        if !key::is_queued(record.status) {
            return Ok(Some(record));
        }
        // Still queued when its start mark was looked for, unless it started and ended
        // in between (an end rewrites the record): read it once more to tell.
        match self.db.get(key)? {
            Some(again) if again != value => self.decode_workflow(key, id, &again).map(Some),
            Some(_) => Ok(Some(record)),
            None => Ok(None),
        }
    }

    /// The records held in marks (see [`Mark`]), in id order, with `status` if given.
    /// The start groups' members are among them (see [`crate::start_group`]), unless a
    /// mark of their own is there by the time the marks are read.
    fn held_records(&self, status: Option<Status>) -> Result<Vec<WorkflowRecord>, Error> {
        let mut grouped = self
            .grouped_records()?
            .into_iter()
            .filter(|record| status.is_none_or(|status| status == record.status))
            .peekable();
        let mut out = Vec::new();
        if !self.may_hold.load(Ordering::SeqCst) {
            out.extend(grouped);
            return Ok(out);
        }
        for entry in self.db.scan_prefix(key::status_prefix(Status::Pending)) {
            let (index_key, value) = entry?;
            let Ok(Key::Status { id, .. }) = key::parse(&index_key) else {
                return Err(codec::corrupt(
                    &index_key,
                    "workflow id is not UTF-8".into(),
                ));
            };
            out.extend(std::iter::from_fn(|| {
                grouped.next_if(|record| record.id.as_str() < id)
            }));
            let mut listed = grouped.next_if(|record| record.id == id);
            if let Some(record) = held_record(&index_key, id, &value)? {
                if status.is_none_or(|status| status == record.status) {
                    out.push(record);
                }
                listed = None;
            }
            // (An entry without a record, a queue entry or a plain one, says nothing of
            // a group's copy.)
            out.extend(listed);
        }
        out.extend(grouped);
        Ok(out)
    }

    /// Decodes workflow `id`'s record `value`; a queued record with a start mark reads
    /// as started ([`Batch::start_queued`]).
    fn decode_workflow(&self, key: &[u8], id: &str, value: &[u8]) -> Result<WorkflowRecord, Error> {
        let mut record = codec::decode_workflow(key, id, value)?;
        if key::is_queued(record.status) {
            if let Some(started_ms) = self.read_start(id)? {
                record.status = Status::Pending;
                record.updated_ms = started_ms;
            }
        }
        Ok(record)
    }

    /// The start time in queued workflow `id`'s start mark, if it has one: its `Pending`
    /// index entry, which holds the time (an index entry of a record that says
    /// `Pending` itself is empty, or holds that record; one of a queued workflow not
    /// started yet holds its queue entry alone, see [`Mark`]). Kept until its end
    /// removes it, with the entry.
    fn read_start(&self, id: &str) -> Result<Option<u64>, Error> {
        let mut k = Vec::with_capacity(2 + id.len());
        key::status(Status::Pending, id, &mut k);
        let Some(mark) = self.db.get(&k)? else {
            return Ok(None);
        };
        match Mark::parse(&k, &mark)? {
            Mark::Started(started, _, _) => Ok(Some(started)),
            Mark::Waiting(..) => Ok(None),
            Mark::Plain => Err(codec::corrupt(
                &k,
                "indexed as pending but the record is queued".into(),
            )),
        }
    }

    /// One listing of [`Store::workflows`].
    fn list(&self, status: Option<Status>) -> Result<Vec<WorkflowRecord>, Error> {
        let mut out = Vec::new();
        match status.filter(|&status| key::is_indexed(status)) {
            // All workflows, or a status without an index (the queued ones and
            // `Succeeded`, see `key::is_indexed`): every record is read.
            None => {
                // And the records queued workflows' marks hold (schema 8), merged in id
                // order. Read first: a workflow whose end writes its own record in
                // between is in both, and listed once, as its own record says; so is one
                // whose mark keeps a copy of a record of its own.
                let mut held = self.held_records(status)?.into_iter().peekable();
                for entry in self.db.scan_prefix(key::WORKFLOW_PREFIX) {
                    let (k, value) = entry?;
                    let Ok(Key::Workflow(id)) = key::parse(&k) else {
                        return Err(codec::corrupt(&k, "workflow id is not UTF-8".into()));
                    };
                    out.extend(std::iter::from_fn(|| {
                        held.next_if(|record| record.id.as_str() < id)
                    }));
                    held.next_if(|record| record.id == id);
                    let record = self.decode_workflow(&k, id, &value)?;
                    if status.is_none_or(|status| status == record.status) {
                        out.push(record);
                    }
                }
                out.extend(held);
            }
            Some(status) => {
                let mut record_key = Vec::new();
                // Start group members are `Pending` with no index entry of their own (one
                // that moves out gets one, in the commit that moves it; a listing that a
                // commit overlapped is taken again, see `Store::workflows`).
                let grouped = if status == Status::Pending {
                    self.grouped_records()?
                } else {
                    Vec::new()
                };
                for entry in self.db.scan_prefix(key::status_prefix(status)) {
                    let (index_key, value) = entry?;
                    // The queue entry of a queued workflow not started yet.
                    if status == Status::Pending
                        && matches!(Mark::parse(&index_key, &value)?, Mark::Waiting(..))
                    {
                        continue;
                    }
                    let Ok(Key::Status { id, .. }) = key::parse(&index_key) else {
                        return Err(codec::corrupt(
                            &index_key,
                            "workflow id is not UTF-8".into(),
                        ));
                    };
                    key::workflow(id, &mut record_key);
                    // Once: the whole listing is taken again if a commit overlapped it.
                    let mut rec = self.read_workflow_once(&record_key, id)?;
                    if rec.as_ref().map(|rec| rec.status) != Some(status) {
                        // A scan is not a snapshot: a commit may have moved this workflow
                        // since the entry was read. Look again at both keys at one instant
                        // (a sled transaction excludes commits); only an entry that is
                        // still there and still disagrees is corrupt.
                        let Some((entry, record)) = self.read_indexed(&index_key, &record_key)?
                        else {
                            continue;
                        };
                        rec = match record {
                            Some(value) => Some(self.decode_workflow(&record_key, id, &value)?),
                            None => held_record(&index_key, id, &entry)?,
                        };
                    }
                    let rec = match rec {
                        Some(rec) if rec.status == status => rec,
                        Some(rec) => {
                            let reason =
                                format!("indexed as {status} but the record says {}", rec.status);
                            return Err(codec::corrupt(&index_key, reason));
                        }
                        None => {
                            let reason = "status index entry without a workflow record".into();
                            return Err(codec::corrupt(&index_key, reason));
                        }
                    };
                    out.push(rec);
                }
                if !grouped.is_empty() {
                    out.extend(grouped);
                    out.sort_unstable_by(|a, b| a.id.cmp(&b.id));
                }
            }
        }
        Ok(out)
    }
}

impl Store for SledJournal {
    fn commit(&self, batch: &Batch) -> Result<(), Error> {
        if self.read_only {
            let path = self.path.clone().unwrap_or_default();
            return Err(Error::ReadOnly { path });
        }
        if batch.is_empty() {
            return Ok(());
        }
        let number = {
            let mut writer = self
                .writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // The commit counter the seal is checked against (see `seal`). It needs no
            // atomicity with the data: sled recovers a prefix of its log, and the
            // counter is written after the data it counts.
            let number = writer.total_commits + 1;
            let counter = number.to_be_bytes();
            // No blob may appear during a concurrent durability point (see `durability`).
            let _applying = self.data_files.as_ref().map(DataFiles::applying);
            // `None` commits are not sealed (nothing is promised of them), so they need
            // no counter either: the seal and the counter stay equal across them.
            let counted = self.durability != Durability::None;
            let encoded = self.encode(batch, &mut writer)?;
            // Readers of one workflow look again if this changes while they read: from
            // here to the end of this block, which takes the groups' changes in.
            let _applying = Applying::begin(&self.applying);
            match encoded {
                Some(mut writes) => {
                    if counted {
                        writes.insert(key::COMMITS, &counter);
                    }
                    self.db.apply_batch(writes)?;
                }
                // One entry is atomic on its own. sled's `apply_batch` rolls its I/O
                // buffer twice to make a batch atomic (`PageCache::pin_log`): two extra
                // log writes that two inserts do not need.
                None => {
                    self.db
                        .insert(writer.key.as_slice(), writer.value.as_slice())?;
                    if counted {
                        self.db.insert(key::COMMITS, &counter)?;
                    }
                }
            }
            if counted {
                writer.total_commits = number;
            }
            writer.applied(batch);
            if !writer.group_changes.is_empty() {
                self.groups
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(&mut writer.group_changes);
            }
            number
        };
        collect_garbage(batch);
        match self.durability {
            Durability::Sync => {
                self.db.flush()?;
                if let Some(files) = &self.data_files {
                    files.sync()?;
                }
            }
            Durability::Flush => {
                self.db.flush()?;
            }
            Durability::None => {}
        }
        // Only now is the commit acknowledged: the seal never counts one that could still
        // be lost. `None` promises nothing, so its commits are not sealed.
        if self.durability != Durability::None {
            if let Some(seal) = &self.seal {
                seal.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .advance(number)?;
            }
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn workflow(&self, id: &str) -> Result<Option<WorkflowRecord>, Error> {
        let mut k = Vec::with_capacity(1 + id.len());
        key::workflow(id, &mut k);
        self.read_workflow(&k, id)
    }

    fn completions(&self, workflow_id: &str) -> Result<Vec<Completion>, Error> {
        if key::check_id(workflow_id).is_err() {
            return Ok(Vec::new()); // too long to have been stored
        }
        let mut prefix = Vec::with_capacity(3 + workflow_id.len());
        key::completion_prefix(workflow_id, &mut prefix);
        let mut out = Vec::new();
        let mut previous_last = None;
        for entry in self.db.scan_prefix(&prefix) {
            let (k, value) = entry?;
            let (first, last) = key::run_range(&k, prefix.len())
                .ok_or_else(|| codec::corrupt(&k, BAD_RUN_KEY.into()))?;
            if let Some(previous) = previous_last.filter(|&previous| first <= previous) {
                let reason = format!("run overlaps the previous run, which ends at seq {previous}");
                return Err(codec::corrupt(&k, reason));
            }
            codec::decode_run(&k, first, last, &value, &mut out)?;
            previous_last = Some(last);
        }
        Ok(out)
    }

    fn workflows(&self, status: Option<Status>) -> Result<Vec<WorkflowRecord>, Error> {
        // A commit applied during a listing may move a record between the places it is
        // read from, one after the other (a group, the marks, the records of their own;
        // sled applies a batch key by key), so that no place lists it: a listing that a
        // commit overlapped is taken again, and after a few tries under the writer's
        // lock. (The runtime lists on the thread that commits: never overlapped there.)
        self.settled(3, || self.list(status))
    }

    fn type_name(&self, fingerprint: u64) -> Result<Option<String>, Error> {
        let key = key::type_name(fingerprint);
        match self.db.get(key)? {
            Some(value) => codec::decode_type_name(&key, &value).map(Some),
            None => Ok(None),
        }
    }

    fn queue_records(&self, prefix: &[u8]) -> Result<Vec<crate::queue::QueueRecord>, Error> {
        crate::queue::scan(&self.db, prefix)
    }

    fn trace_context(&self, workflow_id: &str) -> Result<Option<String>, Error> {
        let mut k = Vec::with_capacity(1 + workflow_id.len());
        key::trace_context(workflow_id, &mut k);
        match self.db.get(&k)? {
            Some(value) => codec::decode_trace_context(&k, &value).map(Some),
            None => Ok(None),
        }
    }

    fn token_key(&self) -> Option<TokenKey> {
        self.token_key
    }

    fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn messages(&self, destination: &str) -> Result<Vec<Message>, Error> {
        crate::mail::messages(&self.db, destination)
    }

    fn message_key_used(&self, destination: &str, key: &str) -> Result<bool, Error> {
        crate::mail::message_key_used(&self.db, destination, key)
    }

    fn last_message_number(&self) -> Result<u64, Error> {
        crate::mail::last_message_number(&self.db)
    }

    fn event(&self, workflow_id: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        crate::mail::event(&self.db, workflow_id, key)
    }

    fn events(&self, workflow_id: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        crate::mail::events(&self.db, workflow_id)
    }

    fn awakeable(&self, workflow_id: &str, step_id: u64) -> Result<Option<Outcome>, Error> {
        crate::mail::awakeable(&self.db, workflow_id, step_id)
    }
}

/// Makes dropping a journal release its directory synchronously.
///
/// sled 0.34.7 can keep its file lock for a moment after the last `Db` handle is dropped:
/// an I/O task on its thread pool may still hold the file. Reopening the path right away,
/// in this process or in a child, would then fail with [`Error::Locked`]. On drop, this
/// waits (up to two seconds) until the lock can be taken, then lets go of it at once.
#[derive(Debug)]
struct LockRelease(Option<PathBuf>);

impl Drop for LockRelease {
    fn drop(&mut self) {
        use fs2::FileExt;
        let Some(dir) = &self.0 else { return };
        let Ok(log) = std::fs::File::open(dir.join("db")) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match log.try_lock_exclusive() {
                Ok(()) => {
                    let _ = FileExt::unlock(&log);
                    return;
                }
                // Still held (by sled's last task, or already by another opener).
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => return,
            }
        }
    }
}

/// Why a key under a workflow's completion prefix is not a run key.
const BAD_RUN_KEY: &str =
    "completion key has no valid seq range (first <= last, 16 bytes) after its id";

/// Adds to `writes` the removal of the keys of one kind keyed by workflow that workflows
/// `ids` have: `key_of` writes a workflow's key (`exact`) or the prefix of all of its
/// keys of that kind (which must be no other workflow's prefix).
///
/// One range walk from the lowest of those keys, seeking again only past a key of a
/// workflow not deleted: a batch of neighbouring ids, or of ids with no key of the kind,
/// costs one tree descent instead of a prefix scan per id, and never more descents than
/// ids. Only what exists is removed (sled costs microseconds even per absent key).
pub(crate) fn remove_keyed(
    db: &::sled::Db,
    ids: &[String],
    key_of: impl Fn(&str, &mut Vec<u8>),
    exact: bool,
    writes: &mut ::sled::Batch,
) -> Result<(), Error> {
    let mut targets: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| {
            let mut target = Vec::new();
            key_of(id, &mut target);
            target
        })
        .collect();
    targets.sort_unstable();
    targets.dedup();
    let mut next = 0;
    'seek: while let Some(from) = targets.get(next) {
        for key in db.range(from.as_slice()..).keys() {
            let key = key?;
            loop {
                let target = targets[next].as_slice();
                if &*key == target || (!exact && key.starts_with(target)) {
                    writes.remove(key);
                    break;
                }
                if &*key < target {
                    // A key of a workflow that stays: seek to the next one deleted.
                    continue 'seek;
                }
                next += 1;
                if next == targets.len() {
                    return Ok(());
                }
            }
        }
        break; // the end of the tree
    }
    Ok(())
}

/// Adds to `upgrade` the move of the queue entries a journal older than schema 6 keeps
/// as queue records of their own into their workflows' `Pending` index entries (see
/// [`Mark`]): as waiting or as started (with the start time its start mark or its
/// `Pending` record says). The entries of workflows ended or missing stay as they are:
/// the runtime removes them (and what goes with them) when it loads its queues.
fn upgrade_entries(db: &::sled::Db, upgrade: &mut ::sled::Batch) -> Result<(), Error> {
    let mut k = Vec::new();
    let mut v = Vec::new();
    for stored in db.scan_prefix([crate::queue::QUEUE, crate::queue::ENTRY]) {
        let (queue_key, entry) = stored?;
        let Some(id) = crate::queue::entry_id(&queue_key[1..]) else {
            continue;
        };
        key::workflow(id, &mut k);
        let Some(value) = db.get(&k)? else {
            continue;
        };
        let record = codec::decode_workflow(&k, id, &value)?;
        key::status(Status::Pending, id, &mut k);
        let stored_mark = db.get(&k)?;
        let stored_mark = stored_mark
            .as_deref()
            .map(|mark| Mark::parse(&k, mark))
            .transpose()?;
        let mark = match (record.status, stored_mark) {
            (Status::Enqueued | Status::Delayed, None) => Mark::Waiting(&entry, None),
            (
                Status::Enqueued | Status::Delayed | Status::Pending,
                Some(Mark::Started(t, _, _)),
            ) => Mark::Started(t, Some(&entry), None),
            (Status::Pending, Some(Mark::Plain)) => {
                Mark::Started(record.updated_ms, Some(&entry), None)
            }
            _ => continue,
        };
        mark.encode(&mut v);
        upgrade.insert(k.as_slice(), v.as_slice());
        upgrade.remove(queue_key);
    }
    Ok(())
}

/// The record `Pending` index entry `k` of workflow `id` holds in its mark `value` (as
/// started, if it is), if it holds one (see [`Mark`]).
fn held_record(k: &[u8], id: &str, value: &[u8]) -> Result<Option<WorkflowRecord>, Error> {
    let mark = Mark::parse(k, value)?;
    let Some(bytes) = mark.record() else {
        return Ok(None);
    };
    let mut record = codec::decode_workflow(k, id, bytes)?;
    if let Mark::Started(started, _, _) = mark {
        record.status = Status::Pending;
        record.updated_ms = started;
    }
    Ok(Some(record))
}

/// Marks a commit being applied in [`SledJournal::applying`]: odd from `begin` to drop.
struct Applying<'a>(&'a AtomicU64);

impl<'a> Applying<'a> {
    fn begin(count: &'a AtomicU64) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Applying(count)
    }
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The first and last index of a put of workflow `id` in `batch` (see
/// [`SledJournal::encode`]), from `puts`, built on first use.
fn put_range<'b>(
    puts: &mut Option<HashMap<&'b str, (usize, usize)>>,
    batch: &'b Batch,
    id: &str,
) -> (usize, usize) {
    if batch.workflows.len() == 1 {
        return (0, 0);
    }
    let puts = puts.get_or_insert_with(|| {
        let mut puts: HashMap<&str, (usize, usize)> = HashMap::with_capacity(batch.workflows.len());
        for (n, rec) in batch.workflows.iter().enumerate() {
            puts.entry(rec.id.as_str())
                .and_modify(|(_, last)| *last = n)
                .or_insert((n, n));
        }
        puts
    });
    // Every id of the batch is in it.
    puts.get(id).copied().unwrap_or((0, 0))
}

/// Reads the start groups of `db` (see [`crate::start_group`]): an id listed there is
/// no longer a member once it has a record or a `Pending` index entry of its own.
fn load_groups(db: &::sled::Db) -> Result<StartGroups, Error> {
    let mut k = Vec::new();
    StartGroups::load(db, |id| {
        key::workflow(id, &mut k);
        if db.get(k.as_slice())?.is_some() {
            return Ok(true);
        }
        key::status(Status::Pending, id, &mut k);
        Ok(db.get(k.as_slice())?.is_some())
    })
}

/// How many index entries [`drop_succeeded_entries`] removes per sled batch.
const SWEEP_BATCH: usize = 10_000;

/// Removes the `Succeeded` status-index entries that journals of schema versions before
/// 7 kept (see [`key::is_indexed`]), at a writable open, after the version write.
///
/// Not with the version write, as earlier upgrades removed what they dropped: a journal
/// can hold millions of them, and one sled batch holds every key it removes in memory.
/// In batches of [`SWEEP_BATCH`] instead. Until the last batch is applied, the entries
/// left are ignored (this schema lists `Succeeded` from the records), and a crash in
/// between leaves them for the next writable open, which looks for any (one prefix
/// probe) and goes on. An older build cannot see the state in between: it refuses the
/// journal from the version write on.
fn drop_succeeded_entries(db: &::sled::Db) -> Result<(), Error> {
    let prefix = key::status_prefix(Status::Succeeded);
    loop {
        let mut sweep = ::sled::Batch::default();
        let mut swept = 0;
        for entry in db.scan_prefix(prefix).keys().take(SWEEP_BATCH) {
            sweep.remove(entry?);
            swept += 1;
        }
        if swept == 0 {
            return Ok(());
        }
        db.apply_batch(sweep)?;
        db.flush()?;
    }
}

/// Whether `db` holds queue entries stored as queue records of their own (left by
/// [`upgrade_entries`]).
fn has_legacy_entries(db: &::sled::Db) -> Result<bool, Error> {
    Ok(db
        .scan_prefix([crate::queue::QUEUE, crate::queue::ENTRY])
        .next()
        .transpose()?
        .is_some())
}

/// Opens sled, turning its lock failure into [`Error::Locked`] naming `path`.
fn open_sled(config: ::sled::Config, path: &Path) -> Result<::sled::Db, Error> {
    // Like `lock_probe`: a lock that a process that just died (or a journal just
    // dropped) still holds for a moment is waited for, briefly.
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled 0.34.7 reports a held lock only as an `Other` I/O error with this
            // text (config.rs, `try_lock`); there is no kind to match on.
            Err(::sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if Instant::now() >= deadline {
                    return Err(Error::Locked {
                        path: path.to_path_buf(),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(other) => return Err(other.into()),
        }
    }
}

/// How long opening waits for a journal's lock before reporting [`Error::Locked`].
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// The schema version stored in `db`, if any.
fn stored_schema(db: &::sled::Db) -> Result<Option<u32>, Error> {
    db.get(key::SCHEMA)?
        .map(|value| codec::decode_schema(&value))
        .transpose()
}

/// Rejects any schema version but this build's and the older ones it reads.
fn check_schema(found: u32, path: &Path) -> Result<(), Error> {
    if (OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&found) {
        return Ok(());
    }
    Err(Error::UnsupportedVersion {
        what: format!("journal schema at {}", path.display()),
        found,
        supported: SCHEMA_VERSION,
    })
}

/// The error for a sled database that holds records but no schema version.
fn not_a_journal() -> Error {
    codec::corrupt(
        key::SCHEMA,
        "missing in a non-empty database: not an ordo journal".into(),
    )
}

/// Whether `dir` holds a journal whose creation stopped before anything reached sled's
/// log: its seal, which is written first (see [`SledJournal::open`]), at zero commits
/// and never advanced, and sled's log missing or empty.
fn creation_unfinished(dir: &Path) -> bool {
    matches!(seal::read(dir), Ok(Ok(Some(state))) if state.commits == 0 && state.generation == 0)
        && std::fs::metadata(dir.join("db")).map_or(true, |meta| meta.len() == 0)
}

/// Whether `dir` holds a journal already (rather than nothing, or a folder to create one
/// in): a seal, or a sled log with bytes in it.
fn is_existing(dir: &Path) -> bool {
    dir.join(SEAL_FILE).exists()
        || std::fs::metadata(dir.join("db")).is_ok_and(|meta| meta.len() > 0)
}

/// Takes sled's lock on `dir` (an exclusive `flock` of its `db` file, created empty first
/// if `create`) for as long as the returned file is open.
fn lock_probe(dir: &Path, create: bool) -> Result<std::fs::File, Error> {
    use fs2::FileExt;
    let log = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(dir.join("db"))?;
    // A process that just died, or a journal this process just dropped, can hold the
    // lock for a moment more (sled's last I/O task): wait briefly before refusing.
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match FileExt::try_lock_exclusive(&log) {
            Ok(()) => return Ok(log),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                })
            }
        }
    }
}

/// Whether another process holds sled's lock on `dir`.
fn is_locked(dir: &Path) -> bool {
    use fs2::FileExt;
    let Ok(log) = std::fs::File::open(dir.join("db")) else {
        return false;
    };
    match FileExt::try_lock_shared(&log) {
        Ok(()) => {
            let _ = FileExt::unlock(&log);
            false
        }
        Err(_) => true,
    }
}

/// Waits until sled let go of the database in `dir` (see [`LockRelease`]).
fn wait_for_release(dir: &Path) {
    drop(LockRelease(Some(dir.to_path_buf())));
}

/// Opens the sled database in `dir` (a private copy of the journal at `reported`, whose
/// path the errors name) and checks it against its seal: the database and its schema
/// version (`None` for an empty database).
///
/// Everything sled cannot open, and any panic of sled's on garbage, is
/// [`Error::Damaged`]: the files are not a journal this build can trust.
fn open_checked(dir: &Path, reported: &Path) -> Result<(::sled::Db, Option<u32>), Error> {
    let damaged = |reason: String| Error::Damaged {
        path: reported.to_path_buf(),
        reason,
    };
    let seal = seal::read(dir)?;
    let config = ::sled::Config::new().path(dir);
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    let db = match opened {
        Ok(Ok(db)) => db,
        Ok(Err(err)) => return Err(damaged(format!("sled cannot open it: {err}"))),
        Err(_) => return Err(damaged("sled panicked opening it".into())),
    };
    let schema = stored_schema(&db)?;
    match (schema, seal) {
        (Some(version), _) if version < OLDEST_SCHEMA_VERSION => {
            return Err(Error::UnsupportedVersion {
                what: format!(
                    "journal schema at {} (written by an older ordo, before values \
                     carried type fingerprints)",
                    reported.display()
                ),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        (Some(version), _) => check_schema(version, reported)?,
        // Nothing written yet, or a new journal whose creation stopped after its seal
        // (see `SledJournal::open`): it opens as new.
        (None, Ok(None)) if db.is_empty() => return Ok((db, None)),
        (None, Ok(Some(state))) if db.is_empty() && state.commits == 0 => return Ok((db, None)),
        (None, Ok(Some(state))) if db.is_empty() => {
            return Err(damaged(format!(
                "it is empty, but its seal counts {} acknowledged commits",
                state.commits
            )));
        }
        (None, _) => return Err(not_a_journal()),
    }
    check_seal(&db, reported)?;
    Ok((db, schema))
}

/// Checks the journal's commit counter against the seal in `dir`: the seal's state.
fn check_seal(db: &::sled::Db, dir: &Path) -> Result<SealState, Error> {
    let damaged = |reason: String| Error::Damaged {
        path: dir.to_path_buf(),
        reason,
    };
    let state = match seal::read(dir)? {
        Ok(Some(state)) => state,
        Ok(None) => return Err(damaged(format!("its seal ({SEAL_FILE}) is missing"))),
        Err(reason) => return Err(damaged(reason)),
    };
    let recorded = stored_commits(db).map_err(|err| damaged(err.to_string()))?;
    if recorded < state.commits {
        return Err(damaged(format!(
            "it holds {recorded} commits but {} were acknowledged: the last {} are missing",
            state.commits,
            state.commits - recorded
        )));
    }
    Ok(state)
}

/// The journal's `meta/commits` counter (0 if absent).
/// A journal of schema 9 or later without its token key: the tokens its workflows gave
/// out could never be checked again (a new key would refuse them all).
fn missing_token_key(dir: &Path) -> Error {
    Error::Damaged {
        path: dir.to_path_buf(),
        reason: format!(
            "{} is missing: the secret its awakeable tokens are tagged with; restore it \
             with the rest of the folder",
            token_key::TOKEN_KEY_FILE
        ),
    }
}

/// The token key of the journal in `dir`, if it has one; a file that is not one is
/// damage.
fn stored_token_key(dir: &Path) -> Result<Option<TokenKey>, Error> {
    token_key::read(dir).map_err(|reason| Error::Damaged {
        path: dir.to_path_buf(),
        reason,
    })
}

fn stored_commits(db: &::sled::Db) -> Result<u64, Error> {
    let Some(value) = db.get(key::COMMITS)? else {
        return Ok(0);
    };
    let bytes: [u8; 8] = value.as_ref().try_into().map_err(|_| {
        codec::corrupt(
            key::COMMITS,
            format!("commit counter is {} bytes, not 8", value.len()),
        )
    })?;
    Ok(u64::from_be_bytes(bytes))
}
