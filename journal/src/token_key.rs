//! The journal's token key: a secret drawn once per journal, which the runtime tags
//! awakeable tokens with, so a token cannot be made up from a workflow id and a step
//! number (see `Ctx::awakeable` in the runtime).
//!
//! The sled store keeps it in a file of its own in the journal's folder,
//! [`TOKEN_KEY_FILE`], written when a journal is first opened for writing (at its
//! creation, or by the first build that knows of token keys); outside sled, so that
//! sled's pages (and what a power cut does to them) are what they were without it. The
//! PostgreSQL store keeps it in a table of one row, created by its schema migration. A
//! read-only open reads it if there is one. The key is never printed: its `Debug` says
//! only that there is one.

use std::fmt;
use std::fs::File;
use std::hash::Hasher;
use std::io::{self, Write};
use std::path::Path;

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::error::Error;

/// The secret that tags a journal's awakeable tokens (see the module docs).
///
/// ```
/// use ordo_journal::TokenKey;
/// let key = TokenKey::generate()?;
/// // The same input, the same tag; another workflow, step or start time, another.
/// assert_eq!(key.tag("order-42", 1_000, 3), key.tag("order-42", 1_000, 3));
/// assert_ne!(key.tag("order-42", 1_000, 3), key.tag("order-42", 1_000, 4));
/// assert_ne!(key.tag("order-42", 1_000, 3), key.tag("order-43", 1_000, 3));
/// assert_ne!(key.tag("order-42", 1_000, 3), key.tag("order-42", 1_001, 3));
/// // Another key tags differently, and the key never shows.
/// assert_ne!(key.tag("order-42", 1_000, 3), TokenKey::generate()?.tag("order-42", 1_000, 3));
/// assert_eq!(format!("{key:?}"), "TokenKey(..)");
/// # Ok::<(), ordo_journal::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenKey([u8; TokenKey::LEN]);

impl TokenKey {
    /// The key's length in bytes (SipHash's key).
    pub const LEN: usize = 16;

    /// A new key from the operating system's random source.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the operating system gives no random bytes.
    pub fn generate() -> Result<Self, Error> {
        let mut key = [0u8; Self::LEN];
        getrandom::fill(&mut key)
            .map_err(|err| Error::Io(std::io::Error::other(format!("no random bytes: {err}"))))?;
        Ok(TokenKey(key))
    }

    /// The key stored as `bytes`; `None` unless they are exactly [`TokenKey::LEN`] long.
    ///
    /// ```
    /// use ordo_journal::TokenKey;
    /// let key = TokenKey::generate()?;
    /// assert_eq!(TokenKey::from_bytes(key.as_bytes()), Some(key));
    /// assert_eq!(TokenKey::from_bytes(&[0; 3]), None);
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(TokenKey)
    }

    /// The key's bytes, to store it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The tag of the token of awakeable `step_id` of workflow `workflow_id`, started at
    /// `created_ms` (so a workflow deleted and started again under its id gives out
    /// other tokens): SipHash-2-4 (128 bits) keyed with this key.
    pub fn tag(&self, workflow_id: &str, created_ms: u64, step_id: u64) -> u128 {
        let mut hasher = SipHasher24::new_with_key(&self.0);
        hasher.write_u64(workflow_id.len() as u64);
        hasher.write(workflow_id.as_bytes());
        hasher.write_u64(created_ms);
        hasher.write_u64(step_id);
        hasher.finish128().as_u128()
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// The file of a sled journal's token key, in its folder: a magic, the key, and a
/// CRC-32 of both.
pub(crate) const TOKEN_KEY_FILE: &str = "ordo.token_key";

/// Where a new token key file is written before it is renamed to [`TOKEN_KEY_FILE`].
const TOKEN_KEY_NEW: &str = "ordo.token_key.new";

const MAGIC: &[u8; 8] = b"ordotkey";

const FILE_LEN: usize = MAGIC.len() + TokenKey::LEN + 4;

/// The token key of the sled journal in `dir`, if it has one; `Err` with what is wrong
/// if its file is not one this build wrote (the caller reports the journal damaged).
pub(crate) fn read(dir: &Path) -> Result<Option<TokenKey>, String> {
    let bytes = match std::fs::read(dir.join(TOKEN_KEY_FILE)) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("{TOKEN_KEY_FILE} cannot be read: {err}")),
    };
    if bytes.len() != FILE_LEN {
        return Err(format!(
            "{TOKEN_KEY_FILE} is {} bytes, not {FILE_LEN}",
            bytes.len()
        ));
    }
    let (body, crc) = bytes.split_at(FILE_LEN - 4);
    if !body.starts_with(MAGIC) || crc32fast::hash(body).to_le_bytes() != crc {
        return Err(format!("{TOKEN_KEY_FILE} has a bad magic or checksum"));
    }
    Ok(TokenKey::from_bytes(&body[MAGIC.len()..]))
}

/// Draws the token key of the sled journal in `dir` and makes it durable, with the
/// directory entry naming it: written beside its place and renamed into it, so a
/// process killed meanwhile leaves either no key (drawn again at the next open, before
/// any token was given out) or a whole one.
pub(crate) fn create(dir: &Path) -> Result<TokenKey, crate::Error> {
    let key = TokenKey::generate()?;
    let mut bytes = Vec::with_capacity(FILE_LEN);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(key.as_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let fresh = dir.join(TOKEN_KEY_NEW);
    // One left by a process killed here goes: a new file is made (never one that is
    // there, whose mode it would keep, nor through a link), with the mode below.
    match std::fs::remove_file(&fresh) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err.into()),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // A secret: readable by the journal's owner alone.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&fresh)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&fresh, dir.join(TOKEN_KEY_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(key)
}
