//! [`MemoryJournal`]: a journal in memory that outlives the runtimes opened on it.
//!
//! The checker crashes and recovers a workflow hundreds of times per check; on sled each
//! run opens a database in a temporary folder (tens of milliseconds), in memory it costs
//! nothing. It is atomic and append-only like [`SledJournal`](ordo_journal::SledJournal),
//! so what a crash leaves behind is what sled would leave.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ordo_journal::{Batch, Completion, Message, Outcome, Status, Store, WorkflowRecord};

/// What a [`MemoryJournal`] holds.
#[derive(Clone, Default)]
struct Records {
    workflows: BTreeMap<String, WorkflowRecord>,
    /// Each workflow's completions in `seq` order.
    completions: BTreeMap<String, Vec<Completion>>,
    /// The type table.
    types: BTreeMap<u64, String>,
    /// Unconsumed messages by (destination, number).
    messages: BTreeMap<(String, u64), Message>,
    message_keys: std::collections::BTreeSet<(String, String)>,
    last_message: u64,
    events: BTreeMap<(String, String), Vec<u8>>,
    awakeables: BTreeMap<(String, u64), Outcome>,
    trace_contexts: BTreeMap<String, String>,
    queue: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A [`Store`] in memory that outlives the runtimes opened on it, as a journal on disk
/// outlives a crashed process: [`MemoryJournal::reopen`] is "open the same journal
/// again". Atomic and append-only like sled; durable only as long as the value lives.
///
/// ```
/// use ordo::{Ctx, Runtime};
/// use ordo_testkit::MemoryJournal;
///
/// async fn hello(ctx: Ctx, _: ()) -> Result<u8, String> {
///     ctx.step("greet", || async { Ok::<_, String>(1) }).await
/// }
/// let journal = MemoryJournal::default();
/// let rt = Runtime::builder().store(Box::new(journal.reopen())).register("hello", hello).build()?;
/// let handle = rt.start::<_, u8, String>("hello", "h-1", ())?;
/// assert_eq!(rt.block_on(handle.result())?, Ok(1));
/// drop(rt);
/// // Another runtime on the same records sees the finished workflow.
/// let rt = Runtime::builder().store(Box::new(journal.reopen())).register("hello", hello).build()?;
/// assert_eq!(rt.block_on(rt.handle::<u8, String>("h-1")?.result())?, Ok(1));
/// # Ok::<(), ordo::Error>(())
/// ```
#[derive(Default)]
pub struct MemoryJournal {
    /// Shared by every handle on the same journal; a std mutex because `Store` must be
    /// `Sync` (nothing here ever waits on it).
    records: Arc<Mutex<Records>>,
    /// Commits through this handle (`Store::commit_count` counts per opening).
    commits: AtomicU64,
}

impl MemoryJournal {
    /// Another handle on the same records, as if the journal were opened again.
    ///
    /// ```
    /// # use ordo_journal::Store;
    /// let journal = ordo_testkit::MemoryJournal::default();
    /// assert_eq!(journal.reopen().commit_count(), 0);
    /// ```
    pub fn reopen(&self) -> MemoryJournal {
        MemoryJournal {
            records: Arc::clone(&self.records),
            commits: AtomicU64::new(0),
        }
    }

    /// An independent copy of the records, to run two futures from one crash.
    ///
    /// ```
    /// # use ordo_journal::Store;
    /// let journal = ordo_testkit::MemoryJournal::default();
    /// assert!(journal.fork().workflows(None)?.is_empty());
    /// # Ok::<(), ordo_journal::Error>(())
    /// ```
    pub fn fork(&self) -> MemoryJournal {
        MemoryJournal {
            records: Arc::new(Mutex::new(self.lock().clone())),
            commits: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryJournal {
    fn commit(&self, batch: &Batch) -> Result<(), ordo_journal::Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut records = self.lock();
        // Check everything before changing anything: all of the batch or none of it.
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, c) in batch.completions() {
            let reset = batch.resets().contains(id) || batch.deletes().contains(id);
            let after = last.get(id.as_str()).copied().or_else(|| {
                if reset {
                    return None;
                }
                records
                    .completions
                    .get(id)
                    .and_then(|cs| cs.last())
                    .map(|c| c.seq)
            });
            if let Some(after) = after.filter(|&after| c.seq <= after) {
                return Err(ordo_journal::Error::SeqOutOfOrder {
                    workflow_id: id.clone(),
                    seq: c.seq,
                    after,
                });
            }
            last.insert(id, c.seq);
        }
        // Deletions first, as in sled: a put of the same id in this batch starts anew.
        for id in batch.deletes() {
            records.workflows.remove(id);
            records.completions.remove(id);
            records
                .messages
                .retain(|(destination, _), _| destination != id);
            records
                .message_keys
                .retain(|(destination, _)| destination != id);
            records.events.retain(|(workflow, _), _| workflow != id);
            records.awakeables.retain(|(workflow, _), _| workflow != id);
            records.trace_contexts.remove(id);
        }
        for id in batch.resets() {
            records.completions.remove(id);
        }
        for (id, c) in batch.completions() {
            records
                .completions
                .entry(id.clone())
                .or_default()
                .push(c.clone());
        }
        for record in batch.workflows() {
            records.workflows.insert(record.id.clone(), record.clone());
        }
        for (fingerprint, name) in batch.types() {
            records.types.insert(*fingerprint, name.clone());
        }
        for m in batch.messages() {
            records.last_message = records.last_message.max(m.number);
            if let Some(key) = &m.idempotency_key {
                records
                    .message_keys
                    .insert((m.destination.clone(), key.clone()));
            }
            records
                .messages
                .insert((m.destination.clone(), m.number), m.clone());
        }
        for (destination, _, number) in batch.consumed() {
            records.messages.remove(&(destination.clone(), *number));
        }
        for (id, key, value) in batch.events() {
            records
                .events
                .insert((id.clone(), key.clone()), value.clone());
        }
        for (id, traceparent) in batch.trace_contexts() {
            records
                .trace_contexts
                .insert(id.clone(), traceparent.clone());
        }
        for (id, step_id, outcome) in batch.resolutions() {
            records
                .awakeables
                .insert((id.clone(), *step_id), outcome.clone());
        }
        for (key, value) in batch.queue_records() {
            match value {
                Some(value) => records.queue.insert(key.clone(), value.clone()),
                None => records.queue.remove(key),
            };
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn workflow(&self, id: &str) -> Result<Option<WorkflowRecord>, ordo_journal::Error> {
        Ok(self.lock().workflows.get(id).cloned())
    }

    fn completions(&self, workflow_id: &str) -> Result<Vec<Completion>, ordo_journal::Error> {
        Ok(self
            .lock()
            .completions
            .get(workflow_id)
            .cloned()
            .unwrap_or_default())
    }

    fn workflows(
        &self,
        status: Option<Status>,
    ) -> Result<Vec<WorkflowRecord>, ordo_journal::Error> {
        Ok(self
            .lock()
            .workflows
            .values()
            .filter(|record| status.is_none_or(|s| record.status == s))
            .cloned()
            .collect())
    }

    fn type_name(&self, fingerprint: u64) -> Result<Option<String>, ordo_journal::Error> {
        Ok(self.lock().types.get(&fingerprint).cloned())
    }

    fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn messages(&self, destination: &str) -> Result<Vec<Message>, ordo_journal::Error> {
        Ok(self
            .lock()
            .messages
            .range((destination.to_owned(), 0)..=(destination.to_owned(), u64::MAX))
            .map(|(_, m)| m.clone())
            .collect())
    }

    fn message_key_used(&self, destination: &str, key: &str) -> Result<bool, ordo_journal::Error> {
        Ok(self
            .lock()
            .message_keys
            .contains(&(destination.to_owned(), key.to_owned())))
    }

    fn last_message_number(&self) -> Result<u64, ordo_journal::Error> {
        Ok(self.lock().last_message)
    }

    fn event(&self, workflow_id: &str, key: &str) -> Result<Option<Vec<u8>>, ordo_journal::Error> {
        Ok(self
            .lock()
            .events
            .get(&(workflow_id.to_owned(), key.to_owned()))
            .cloned())
    }

    fn events(&self, workflow_id: &str) -> Result<Vec<(String, Vec<u8>)>, ordo_journal::Error> {
        Ok(self
            .lock()
            .events
            .iter()
            .filter(|((id, _), _)| id == workflow_id)
            .map(|((_, key), value)| (key.clone(), value.clone()))
            .collect())
    }

    fn trace_context(&self, workflow_id: &str) -> Result<Option<String>, ordo_journal::Error> {
        Ok(self.lock().trace_contexts.get(workflow_id).cloned())
    }

    fn queue_records(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<ordo_journal::queue::QueueRecord>, ordo_journal::Error> {
        Ok(self
            .lock()
            .queue
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn awakeable(
        &self,
        workflow_id: &str,
        step_id: u64,
    ) -> Result<Option<Outcome>, ordo_journal::Error> {
        Ok(self
            .lock()
            .awakeables
            .get(&(workflow_id.to_owned(), step_id))
            .cloned())
    }
}
