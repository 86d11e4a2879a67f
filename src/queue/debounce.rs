//! Debouncing: start a workflow for a key only once calls for that key have been quiet
//! for a while, with the last call's input.
//!
//! Each [`Runtime::debounce`] call records the key's pending call (the latest input,
//! and when the first and the last calls came) with the next group commit, so a crash
//! loses no accepted call. The workflow starts at `last call + quiet`, or at
//! `first call + max wait` if calls never stop for that long, in the commit that removes
//! the pending call: exactly once. Its id is `"<workflow>/<key>@<first call ms>"`. A call
//! after that start begins a new round for the key.
//!
//! On a journal shared by many workers ([`Store::swap_queue_record`]), calls for one key
//! may come to any worker, and the pending call is the journal's, not a worker's: each
//! call swaps it in at once (one round trip, ordered with every other worker's calls for
//! the key, so none is lost and every call of a round returns its id), and the worker
//! that sees the round due fires it by swapping it out for a *fired* record (`f`), only
//! if no call changed it since; the commit that starts the workflow deletes that fired
//! record. A worker that died between the two leaves the fired record, which the next
//! worker to load the queue records (on start, or on a takeover round) fires: the id is
//! the round's, so the journal writes one start whoever fires it. Every worker learns of
//! the rounds other workers opened on its takeover rounds, so a round outlives the
//! worker that opened it.
//!
//! [`Store::swap_queue_record`]: ordo_journal::Store::swap_queue_record

use std::time::Duration;

use ordo_journal::queue::Swap;
use serde::Serialize;

use super::millis;
use super::records::{self, Debounced, DEBOUNCE};
use crate::error::Error;
use crate::runtime::Runtime;

/// How long calls for a key must be quiet before the workflow starts, and the longest
/// a first call waits whatever comes after it.
///
/// ```
/// use std::time::Duration;
/// let options = ordo::DebounceOptions::new(Duration::from_secs(5)).max_wait(Duration::from_secs(60));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DebounceOptions {
    pub(crate) quiet: Duration,
    pub(crate) max_wait: Option<Duration>,
}

impl DebounceOptions {
    /// Starts the workflow once no call came for `quiet`.
    ///
    /// ```
    /// let options = ordo::DebounceOptions::new(std::time::Duration::from_secs(2));
    /// # let _ = options;
    /// ```
    pub fn new(quiet: Duration) -> Self {
        DebounceOptions {
            quiet,
            max_wait: None,
        }
    }

    /// Starts it at most `max_wait` after the first call of a round, even if calls
    /// keep coming.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = ordo::DebounceOptions::new(Duration::from_secs(2)).max_wait(Duration::from_secs(30));
    /// # let _ = options;
    /// ```
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }
}

impl Runtime {
    /// The id a new round for (`name`, `key`) starts at `now_ms` takes: `name/key@now_ms`,
    /// or with `-2`, `-3`, ... after it when a workflow has that id already (a round of
    /// the same millisecond that fired, or was cancelled: its id is never used again).
    /// A `/` in the name and an `@` in the key are written `%2F` and `%40` (and `%` as
    /// `%25`), so that no two (name, key) pairs give one id.
    fn new_round_id(&self, name: &str, key: &str, now_ms: u64) -> Result<String, Error> {
        let escaped =
            |part: &str, special: char, code: &str| part.replace('%', "%25").replace(special, code);
        let base = format!(
            "{}/{}@{now_ms}",
            escaped(name, '/', "%2F"),
            escaped(key, '@', "%40")
        );
        let mut id = base.clone();
        let mut n = 1u64;
        while self.core.holder_name(&id)?.is_some() {
            n += 1;
            id = format!("{base}-{n}");
        }
        Ok(id)
    }

    /// Debounces workflow `name` for `key`: it starts with this call's `input` once
    /// calls for (`name`, `key`) have been quiet for `options`' quiet period (or its
    /// maximum wait has passed since the round's first call). Returns the id it will
    /// start under (`name/key@ms`, the time of the round's first call, with a `/` in the
    /// name and an `@` in the key escaped as `%2F` and `%40`, and `-2`, `-3`... after it
    /// if a workflow had that id); every call of a round returns the same id, and a
    /// [`Runtime::start`] of it under `name` is that round. Durable with the next group
    /// commit. [`Runtime::cancel`] of that id before the round starts it takes the
    /// round back: the workflow is recorded cancelled and never runs.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownWorkflow`], [`Error::TypeMismatch`] (input), journal errors.
    ///
    /// ```
    /// use ordo::{Clock, Ctx, DebounceOptions, Runtime};
    /// use std::time::Duration;
    /// async fn reindex(_: Ctx, doc: u32) -> Result<u32, String> { Ok(doc) }
    ///
    /// let rt = Runtime::builder().temporary().clock(Clock::Virtual)
    ///     .register("reindex", reindex).build()?;
    /// let quiet = DebounceOptions::new(Duration::from_secs(5));
    /// let first = rt.debounce("reindex", "doc-7", 1u32, quiet)?;
    /// let last = rt.debounce("reindex", "doc-7", 2u32, quiet)?;
    /// assert_eq!(first, last);
    /// let handle = rt.handle::<u32, String>(&last)?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok(2)); // one run, with the last input
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn debounce<I: Serialize>(
        &self,
        name: &str,
        key: &str,
        input: I,
        options: DebounceOptions,
    ) -> Result<String, Error> {
        if let Some(err) = self.core.broken() {
            return Err(err);
        }
        let registration = self.core.registry.lookup(name)?;
        crate::core::check_key(key)?;
        let now_ms = self.now_ms();
        let record_key = records::key(DEBOUNCE, &[name, key]);
        let queues = &self.core.queues;
        // What the journal holds, as far as this worker knows; a shared journal says
        // so when another worker changed it since.
        let mut held = queues.debounced(&record_key).map(|d| records::encode(&d));
        loop {
            let round = held
                .as_deref()
                .map(|bytes| records::decode::<Debounced>(&record_key, bytes))
                .transpose()?;
            let id = match &round {
                Some(round) => round.id.clone(),
                None => self.new_round_id(name, key, now_ms)?,
            };
            crate::core::check_key(&id)?;
            let input = registration.encode_input(&id, &input)?;
            let pending = match round {
                Some(mut round) => {
                    round.input = input;
                    round.last_ms = now_ms;
                    round.quiet_ms = millis(options.quiet);
                    round
                }
                None => Debounced {
                    id,
                    input,
                    first_ms: now_ms,
                    last_ms: now_ms,
                    quiet_ms: millis(options.quiet),
                    max_wait_ms: options.max_wait.map_or(u64::MAX, millis),
                },
            };
            let write = [(record_key.clone(), Some(records::encode(&pending)))];
            match self
                .core
                .store
                .swap_queue_record(&record_key, held.as_deref(), &write)
                .map_err(Error::from)?
            {
                // One writer: this runtime keeps the call, and its next commit writes it.
                None => {
                    let id = pending.id.clone();
                    queues.debounce(record_key, pending);
                    return Ok(id);
                }
                // Written, ordered with every other worker's calls for the key.
                Some(Swap::Done) => {
                    let id = pending.id.clone();
                    queues.remember_debounced(record_key, Some(pending));
                    return Ok(id);
                }
                Some(Swap::Changed(now_held)) => held = now_held,
            }
        }
    }
}
