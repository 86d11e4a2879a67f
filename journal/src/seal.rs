//! The seal: a checksummed high-water mark of acknowledged commits, kept outside sled's
//! log, so that a journal which lost commits is refused instead of silently replayed.
//!
//! # Why
//!
//! sled checksums every log message, and on open it treats the first message that fails
//! its checksum as the torn tail of a crash: everything after it is dropped (and the
//! segment zeroed). That is right for a tail torn by a crash, and disastrous for one
//! flipped byte in the middle of the log (bit rot, a bad sector, a stray write): every
//! later commit vanishes without an error, and a workflow whose `charge` step was
//! recorded would charge again.
//!
//! # How
//!
//! Every commit also writes a counter, `meta/commits`, inside sled (the number of commits
//! the journal ever acknowledged). After the commit reached its durability point, the
//! same number is written to `ordo.seal`, a 64-byte file beside sled's files: two 32-byte
//! slots written in turn, each `magic | generation | commits | crc32`, so a torn write of
//! one slot leaves the other. The seal is written with `pwrite` and never synced: it
//! costs no fsync. On open, the journal's counter must be at least the seal's: a journal
//! that holds fewer commits than the seal says were acknowledged is damaged.
//!
//! # What it detects, and what it cannot
//!
//! Detected: any loss of an acknowledged commit through sled's recovery dropping a log
//! suffix, which is how sled reacts to a damaged byte anywhere in its log (flipped,
//! zeroed, truncated), to a replaced or emptied `db` file, or to a lost file; a missing
//! or unreadable seal beside an existing journal. sled's own open errors on garbage in
//! `conf` or in a snapshot are reported as damage too.
//!
//! Not detected: a whole journal folder rolled back together with its seal (a restored
//! old backup is consistent with itself); damage that sled's checksums and ordo's
//! decoder both accept (a checksum collision); after a power cut in
//! [`Durability::Flush`](crate::Durability::Flush) mode, acknowledged commits that never
//! reached the disk are reported as damage, which is the truth (`Flush` does not
//! survive power loss). With [`Durability::None`](crate::Durability::None) the seal is
//! not advanced, since such commits are not promised to survive anything.
//!
//! Sync safety: the seal is written only after the commit it counts has reached its
//! durability point, so it can lag the journal after a power cut (harmless: fewer commits
//! are checked) but never lead it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// The seal's file name inside the journal folder.
pub(crate) const SEAL_FILE: &str = "ordo.seal";

/// Where a new seal is written before it is renamed to [`SEAL_FILE`].
const SEAL_NEW: &str = "ordo.seal.new";

/// Identifies a seal slot (and the seal's format version).
const MAGIC: &[u8; 8] = b"ordoseal";

/// One slot: magic (8), generation (8), commits (8), crc32 (4), zero (4).
const SLOT: usize = 32;

/// The seal file: two slots.
const SEAL_LEN: usize = 2 * SLOT;

/// What a valid seal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealState {
    /// Incremented by every write; the slot with the higher one is the latest.
    pub(crate) generation: u64,
    /// Commits acknowledged when the slot was written.
    pub(crate) commits: u64,
}

/// An open seal, advanced after each acknowledged commit.
#[derive(Debug)]
pub(crate) struct Seal {
    file: File,
    /// The last state written; later commits only move it forward.
    state: SealState,
}

impl Seal {
    /// Creates the seal of a new journal (zero commits) and makes it durable, with the
    /// directory entry naming it. Written beside its place and renamed into it, so a
    /// process killed meanwhile leaves either no seal or a whole one, never a torn one
    /// (which would read as damage). A new journal's seal is created before anything is
    /// written into sled (see `SledJournal::open`).
    pub(crate) fn create(dir: &Path) -> io::Result<Seal> {
        let fresh = dir.join(SEAL_NEW);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&fresh)?;
        let state = SealState {
            generation: 0,
            commits: 0,
        };
        let mut bytes = [0u8; SEAL_LEN];
        bytes[..SLOT].copy_from_slice(&encode_slot(state));
        write_at(&file, &bytes, 0)?;
        file.sync_all()?;
        std::fs::rename(&fresh, dir.join(SEAL_FILE))?;
        File::open(dir)?.sync_all()?;
        Ok(Seal { file, state })
    }

    /// Opens the seal of an existing journal for advancing, starting from `state` (what
    /// [`read`] found).
    pub(crate) fn open(dir: &Path, state: SealState) -> io::Result<Seal> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(SEAL_FILE))?;
        Ok(Seal { file, state })
    }

    /// Records that `commits` commits are acknowledged, unless a later commit already
    /// recorded more (concurrent commits may reach here out of order). No fsync.
    pub(crate) fn advance(&mut self, commits: u64) -> io::Result<()> {
        if commits <= self.state.commits {
            return Ok(());
        }
        let state = SealState {
            generation: self.state.generation + 1,
            commits,
        };
        // Slots alternate, so a torn write leaves the previous state readable.
        let offset = (state.generation % 2) * SLOT as u64;
        write_at(&self.file, &encode_slot(state), offset)?;
        self.state = state;
        Ok(())
    }
}

/// Reads the seal in `dir`: `Ok(None)` if there is no seal file, `Err(reason)` if there
/// is one but no slot is valid.
pub(crate) fn read(dir: &Path) -> io::Result<Result<Option<SealState>, String>> {
    let bytes = match std::fs::read(dir.join(SEAL_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(None)),
        Err(e) => return Err(e),
    };
    Ok(decode(&bytes).map(Some))
}

/// The latest valid slot of a seal file's bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<SealState, String> {
    if bytes.len() != SEAL_LEN {
        return Err(format!(
            "{SEAL_FILE} is {} bytes, not {SEAL_LEN}",
            bytes.len()
        ));
    }
    bytes
        .chunks_exact(SLOT)
        .filter_map(decode_slot)
        .max_by_key(|state| state.generation)
        .ok_or_else(|| format!("{SEAL_FILE} has no valid slot (bad magic or checksum)"))
}

fn encode_slot(state: SealState) -> [u8; SLOT] {
    let mut slot = [0u8; SLOT];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..16].copy_from_slice(&state.generation.to_le_bytes());
    slot[16..24].copy_from_slice(&state.commits.to_le_bytes());
    let crc = crc32fast::hash(&slot[..24]);
    slot[24..28].copy_from_slice(&crc.to_le_bytes());
    slot
}

fn decode_slot(slot: &[u8]) -> Option<SealState> {
    let word = |range: std::ops::Range<usize>| -> Option<u64> {
        Some(u64::from_le_bytes(slot.get(range)?.try_into().ok()?))
    };
    let crc = u32::from_le_bytes(slot.get(24..28)?.try_into().ok()?);
    if slot.get(..8)? != MAGIC || crc32fast::hash(slot.get(..24)?) != crc {
        return None;
    }
    Some(SealState {
        generation: word(8..16)?,
        commits: word(16..24)?,
    })
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        let n = file.seek_write(bytes, offset)?;
        bytes = &bytes[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_valid_slot_wins_and_a_torn_slot_falls_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seal = Seal::create(dir.path()).expect("create");
        for commits in 1..=5 {
            seal.advance(commits).expect("advance");
        }
        seal.advance(3).expect("an older count is ignored");
        let state = read(dir.path()).expect("io").expect("valid");
        assert_eq!(
            state,
            Some(SealState {
                generation: 5,
                commits: 5
            })
        );

        // Garble the latest slot (generation 5 is odd: slot 1): the previous one remains.
        let mut bytes = std::fs::read(dir.path().join(SEAL_FILE)).expect("read");
        bytes[SLOT + 17] ^= 0x40;
        assert_eq!(
            decode(&bytes),
            Ok(SealState {
                generation: 4,
                commits: 4
            })
        );
        bytes[3] ^= 1;
        assert!(decode(&bytes)
            .expect_err("no slot")
            .contains("no valid slot"));
        assert!(decode(&bytes[..10])
            .expect_err("short")
            .contains("10 bytes"));
    }

    #[test]
    fn no_seal_file_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("io"), Ok(None));
    }
}
