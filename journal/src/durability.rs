//! How far a commit goes before it returns, and the `fdatasync` that makes `Sync` true.
//!
//! sled 0.34.7's `flush()` writes its log buffers and, on Linux, waits on
//! `sync_file_range`: the data leaves the page cache for the disk but the disk's volatile
//! write cache is never flushed and no metadata is synced, so a power cut can still lose
//! it. `Sync` therefore follows the flush with `fdatasync` of sled's files.
//!
//! # What a `Sync` commit depends on, and when it is written
//!
//! - Log records in `db`: written by sled during the commit's apply (a full I/O buffer)
//!   and its flush, then covered by our `fdatasync` of `db`.
//! - Blob files (`blobs/<lsn>`): sled writes one, unsynced, for every log message over a
//!   quarter segment (a large value, or a leaf of large values being consolidated or
//!   relocated), *before* the log record that points at it. sled's recovery silently
//!   skips a record whose blob file is missing, so a blob must be durable before any
//!   record pointing at it is: new blobs and their directory are synced before `db`.
//! - Directory entries: of `db`, `conf`, `blobs/` and the journal folder itself, synced
//!   once at open; of each new blob, with the blob directory.
//!
//! Two things could write behind that order's back, and both are shut out:
//!
//! - sled's background flusher (every 500 ms by default) rolls I/O buffers, relocates
//!   pages (which can write new blobs) and then `fsync`s `db`, making durable a record
//!   whose blob nobody synced. `Sync` and `Flush` journals run with no flusher
//!   ([`Durability::sled_flush_every_ms`]): sled then writes only inside our calls (its
//!   page relocation also runs on the write path, so space is still reclaimed).
//! - A concurrent commit's apply, which can create a blob and have its record written by
//!   our flush between our listing of `blobs/` and our `fdatasync` of `db`. Applies hold
//!   [`DataFiles::applying`] (shared), the durability point holds it exclusively.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

/// How durable a commit is when [`Store::commit`](crate::Store::commit) returns. Chosen at
/// open.
///
/// ```
/// use ordo_journal::Durability;
///
/// assert_eq!(Durability::default(), Durability::Sync);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// A returned commit survives power loss: sled's flush, then `fdatasync` of its files.
    #[default]
    Sync,
    /// A returned commit survives the process being killed, but not a power cut: sled's
    /// flush only, so the data is in the operating system's hands.
    Flush,
    /// A returned commit may be lost if the process dies before sled's background flush
    /// (every 500 ms) writes it; for tests and benchmarks.
    None,
}

impl Durability {
    /// sled's background flush interval for a journal of this durability: none for `Sync`
    /// and `Flush`, whose commits flush themselves (and for `Sync` must be the only
    /// writers, see the module docs); sled's default 500 ms for `None`, which relies on
    /// it.
    pub(crate) fn sled_flush_every_ms(self) -> Option<u64> {
        match self {
            Durability::Sync | Durability::Flush => None,
            Durability::None => Some(500),
        }
    }
}

/// sled's on-disk files that `Sync` must `fdatasync` after each flush.
#[derive(Debug)]
pub(crate) struct DataFiles {
    /// `<dir>/db`, sled's log and page store: every commit lands here. Kept open so a
    /// commit's durability point is one `fdatasync`, not an open + sync + close.
    log: File,
    /// `<dir>/blobs`, where sled puts any log message over a quarter segment (~128 KiB):
    /// a large value, or a 16-entry leaf of large values being consolidated. sled writes
    /// these files without any sync, so `Sync` must sync new ones itself.
    blob_dir: PathBuf,
    /// Blob files already synced, so each is synced once. A std mutex: commits are
    /// short, and the lock is never held across anything but these syscalls.
    synced_blobs: Mutex<HashSet<OsString>>,
    /// Shared by commits while they apply (the only time sled reserves log records and
    /// writes blobs), exclusive from the listing of new blobs to the `fdatasync` of
    /// `db`: no blob can appear in between whose record the `fdatasync` would make
    /// durable. An `RwLock` so that applies never wait for each other here.
    gate: RwLock<()>,
}

impl DataFiles {
    /// Opens sled's files under `dir` (after sled has created them) and makes their
    /// creation durable: the files' contents and the directory entries naming them.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        let log = File::open(dir.join("db"))?;
        log.sync_all()?;
        if let Ok(conf) = File::open(dir.join("conf")) {
            conf.sync_all()?;
        }
        // The folder's entries (db, conf, blobs/, a snapshot sled renamed into place at
        // open), and the folder's own entry in its parent: sled may just have created it.
        File::open(dir)?.sync_all()?;
        let parent = match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
        let files = DataFiles {
            log,
            blob_dir: dir.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
            gate: RwLock::new(()),
        };
        files.sync_new_blobs()?;
        Ok(files)
    }

    /// Held (shared) while a commit applies its writes to sled, so that no blob appears
    /// during another commit's durability point (see the module docs).
    pub(crate) fn applying(&self) -> RwLockReadGuard<'_, ()> {
        self.gate
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The durability point of a `Sync` commit, called after sled's flush.
    ///
    /// Blobs first: a log record that points at a blob must not become durable before
    /// the blob does (sled's recovery would skip the record and keep an older page).
    pub(crate) fn sync(&self) -> io::Result<()> {
        let _exclusive = self
            .gate
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.sync_new_blobs()?;
        self.log.sync_data()
    }

    /// `fdatasync`s every blob file not synced yet, then the blob directory if any was.
    fn sync_new_blobs(&self) -> io::Result<()> {
        let entries = match std::fs::read_dir(&self.blob_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = self
            .synced_blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut present = HashSet::with_capacity(synced.len());
        let mut any_new = false;
        for entry in entries {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(self.blob_dir.join(&name)) {
                    Ok(blob) => blob.sync_data()?,
                    // sled garbage-collected it between the listing and the open.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                any_new = true;
            }
            present.insert(name);
        }
        *synced = present;
        if any_new {
            File::open(&self.blob_dir)?.sync_all()?;
        }
        Ok(())
    }
}
