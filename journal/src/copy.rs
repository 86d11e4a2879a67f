//! Private copies of a journal folder.
//!
//! sled's recovery writes to the files it opens (it zeroes what it takes for a torn
//! tail), so the only way to look at a journal without changing it is to open a copy.
//! Two users: [`SledJournal::open`](crate::SledJournal::open) checks a copy against the
//! seal before sled may touch the original (a damaged journal is left byte for byte as
//! it was), and [`SledJournal::open_existing`](crate::SledJournal::open_existing) reads
//! from a copy in the system's temporary folder, so it never writes to the journal and
//! never takes its lock.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::seal::SEAL_FILE;

/// sled's folder of large values.
const BLOBS: &str = "blobs";

/// Copies the journal in `from` into the new folder `to`: the seal first, then sled's
/// files (`conf`, `db`, `snap.*`, `blobs/*`). Copying the seal first matters when a
/// runtime is committing meanwhile: the seal then never counts a commit the copied log
/// does not hold. Files that vanish during the copy (sled replacing a snapshot) are
/// skipped.
pub(crate) fn copy_journal(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    copy_if_present(&from.join(SEAL_FILE), &to.join(SEAL_FILE))?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(text) = name.to_str() else { continue };
        if text == "conf" || text == "db" || text.starts_with("snap.") {
            copy_if_present(&entry.path(), &to.join(&name))?;
        } else if text == BLOBS && entry.file_type()?.is_dir() {
            let blobs = to.join(BLOBS);
            fs::create_dir_all(&blobs)?;
            for blob in fs::read_dir(entry.path())? {
                let blob = blob?;
                copy_if_present(&blob.path(), &blobs.join(blob.file_name()))?;
            }
        }
    }
    Ok(())
}

fn copy_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match fs::copy(from, to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the folders `TempFolder::new(parent, purpose)` made that are still in
/// `parent` (left by a process that died before dropping them). Best effort.
pub(crate) fn remove_stale(parent: &Path, purpose: &str) {
    let prefix = format!(".ordo-{purpose}-");
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A folder that is removed (with its contents) when dropped.
#[derive(Debug)]
pub(crate) struct TempFolder(PathBuf);

impl TempFolder {
    /// A new, empty, uniquely named folder inside `parent`, named after `purpose`.
    pub(crate) fn new(parent: &Path, purpose: &str) -> io::Result<TempFolder> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!(".ordo-{purpose}-{}-{n}", std::process::id()));
        // A leftover of a crashed process with the same pid is stale.
        match fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::create_dir_all(&path)?;
        Ok(TempFolder(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
