//! How far a commit goes before it returns, and the `fdatasync` that makes `Sync` true.
//!
//! sled 0.34.7's `flush()` writes its log buffers and, on Linux, waits on
//! `sync_file_range`: the data leaves the page cache for the disk but the disk's volatile
//! write cache is never flushed and no metadata is synced, so a power cut can still lose
//! it. `Sync` therefore follows the flush with `fdatasync` of sled's files.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
        File::open(dir)?.sync_all()?;
        let files = DataFiles {
            log,
            blob_dir: dir.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
        };
        files.sync_new_blobs()?;
        Ok(files)
    }

    /// The durability point of a `Sync` commit, called after sled's flush.
    ///
    /// Blobs first: a log record that points at a blob must not become durable before
    /// the blob does.
    pub(crate) fn sync(&self) -> io::Result<()> {
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
