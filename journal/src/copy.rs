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
    remove_temp_folders(parent, purpose, |_| true);
}

/// Removes the folders `TempFolder::new(parent, purpose)` made in `parent` whose maker's
/// pid (`None` if the name holds none) `remove` accepts. Best effort.
fn remove_temp_folders(parent: &Path, purpose: &str, remove: impl Fn(Option<u32>) -> bool) {
    let prefix = format!(".ordo-{purpose}-");
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        if remove(pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Removes the folders `TempFolder::new(parent, purpose)` made in `parent` whose
/// process is gone (no `/proc/<pid>`): a reader killed while it read (Ctrl-C, SIGKILL)
/// leaves its whole copy of a journal behind, and `parent` is shared with readers that
/// are still running, whose copies stay. Best effort; nothing is removed where `/proc`
/// is missing.
pub(crate) fn remove_orphans(parent: &Path, purpose: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    remove_temp_folders(parent, purpose, |pid| {
        pid.is_some_and(|pid| {
            pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
        })
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader killed mid-read leaves its copy; the next reader removes it, and only
    /// it: the copies of readers still running (here this process and pid 1) stay.
    #[test]
    fn copies_of_readers_that_are_gone_are_removed_and_no_others() {
        let parent = tempfile::tempdir().expect("temp dir");
        let mut gone = std::process::Command::new("true").spawn().expect("spawn");
        let gone_pid = gone.id();
        gone.wait().expect("reaped");
        let folder = |pid: u32| parent.path().join(format!(".ordo-read-{pid}-0"));
        for pid in [gone_pid, std::process::id(), 1] {
            fs::create_dir_all(folder(pid).join("blobs")).expect("create");
        }
        fs::create_dir_all(parent.path().join("unrelated")).expect("create");
        remove_orphans(parent.path(), "read");
        assert!(
            !folder(gone_pid).exists(),
            "the dead reader's copy is removed"
        );
        assert!(folder(std::process::id()).exists());
        assert!(folder(1).exists());
        assert!(parent.path().join("unrelated").exists());
    }
}
