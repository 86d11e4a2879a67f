//! Operations any thread may ask of a runtime through a [`Client`]: cancel, resume,
//! fork, gc, and the reads the admin channel shows (list, show, stats).
//!
//! Each is served on the runtime's thread, inside its executor, by the same code as
//! the `Runtime` method of that name (`Core::cancel_tree`, `Core::resume_workflow`...),
//! and answered once what it wrote is committed. The reads and gc, which may cover a
//! hundred thousand workflows, run as tasks that give the thread back to the workflows
//! between slices, so a large journal never stalls them for long.

use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::Future;
use ordo_journal::{Completion, Status, WorkflowRecord};

use crate::admin::view::{JournalStats, WorkflowSummary};
use crate::core::Core;
use crate::error::Error;
use crate::operations::GcReport;
use crate::talk::client::{ask, Request};
use crate::talk::Client;

/// What one slice of a read covers before the reading task lets workflows run.
const READ_SLICE: usize = 1_000;

/// How long a reading task waits between two slices (a timer, not a yield: group
/// commits happen when the executor stalls, which a ready task prevents).
const READ_PAUSE: Duration = Duration::from_micros(200);

/// A client's operation, with where its answer goes.
pub(crate) enum Operation {
    Cancel {
        id: String,
        children: bool,
        reply: oneshot::Sender<Result<Vec<String>, Error>>,
    },
    Resume {
        id: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Fork {
        id: String,
        at_seq: u64,
        new_id: Option<String>,
        reply: oneshot::Sender<Result<String, Error>>,
    },
    Gc {
        older_than: Duration,
        reply: oneshot::Sender<Result<GcReport, Error>>,
    },
    List {
        status: Option<Status>,
        limit: Option<u64>,
        reply: oneshot::Sender<Result<Vec<WorkflowSummary>, Error>>,
    },
    Show {
        id: String,
        reply: oneshot::Sender<Result<(WorkflowRecord, Vec<Completion>), Error>>,
    },
    Stats {
        reply: oneshot::Sender<Result<JournalStats, Error>>,
    },
}

impl Operation {
    /// Answers the operation with `err`.
    pub(crate) fn refuse(self, err: Error) {
        match self {
            Operation::Cancel { reply, .. } => drop(reply.send(Err(err))),
            Operation::Resume { reply, .. } => drop(reply.send(Err(err))),
            Operation::Fork { reply, .. } => drop(reply.send(Err(err))),
            Operation::Gc { reply, .. } => drop(reply.send(Err(err))),
            Operation::List { reply, .. } => drop(reply.send(Err(err))),
            Operation::Show { reply, .. } => drop(reply.send(Err(err))),
            Operation::Stats { reply, .. } => drop(reply.send(Err(err))),
        }
    }
}

impl Core {
    /// Serves one operation on the runtime's thread, inside its executor.
    pub(crate) fn operate(self: &Rc<Self>, operation: Operation) {
        match operation {
            Operation::Cancel {
                id,
                children,
                reply,
            } => {
                let cancelled = if children {
                    self.cancel_tree(&id)
                } else {
                    self.cancel_workflow(&id)
                        .map(|done| if done { vec![id] } else { Vec::new() })
                };
                drop(reply.send(cancelled));
            }
            Operation::Resume { id, reply } => drop(reply.send(self.resume_workflow(&id))),
            Operation::Fork {
                id,
                at_seq,
                new_id,
                reply,
            } => drop(reply.send(self.fork_workflow(&id, at_seq, new_id.as_deref()))),
            Operation::Gc { older_than, reply } => {
                let gc = Rc::clone(self).gc_paced(older_than);
                drop(ordo_executor::spawn(async move {
                    drop(reply.send(gc.await));
                }));
            }
            Operation::List {
                status,
                limit,
                reply,
            } => {
                let listed = Rc::clone(self).summaries(status, limit);
                drop(ordo_executor::spawn(async move {
                    drop(reply.send(listed.await));
                }));
            }
            Operation::Show { id, reply } => {
                let shown = self
                    .record(&id)
                    .and_then(|record| Ok((record, self.store.completions(&id)?)));
                drop(reply.send(shown));
            }
            Operation::Stats { reply } => {
                let counted = Rc::clone(self).stats();
                drop(ordo_executor::spawn(async move {
                    drop(reply.send(counted.await));
                }));
            }
        }
    }

    /// The workflows with `status` (all if `None`) in id order, at most `limit`, each
    /// with its count of completions; a slice at a time.
    async fn summaries(
        self: Rc<Self>,
        status: Option<Status>,
        limit: Option<u64>,
    ) -> Result<Vec<WorkflowSummary>, Error> {
        let mut records = self.store.workflows(status)?;
        let limit = limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        records.truncate(limit);
        let mut rows = Vec::with_capacity(records.len());
        for slice in records.chunks(READ_SLICE) {
            for record in slice {
                let steps = self.store.completions(&record.id)?.len() as u64;
                rows.push(WorkflowSummary::new(record.clone(), steps));
            }
            if rows.len() < records.len() {
                ordo_executor::sleep(READ_PAUSE).await;
            }
        }
        Ok(rows)
    }

    /// Counts the workflows by status and their completions; a slice at a time.
    async fn stats(self: Rc<Self>) -> Result<JournalStats, Error> {
        let records = self.store.workflows(None)?;
        let mut stats = JournalStats::default();
        for slice in records.chunks(READ_SLICE) {
            for record in slice {
                let completions = self.store.completions(&record.id)?.len() as u64;
                stats.count(record.status, completions);
            }
            if stats.workflows < records.len() as u64 {
                ordo_executor::sleep(READ_PAUSE).await;
            }
        }
        Ok(stats)
    }
}

/// Asks for `operation` (made with the answer's sender).
fn operate<T: Send + 'static>(
    client: &Client,
    operation: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Operation,
) -> impl Future<Output = Result<T, Error>> + Send + 'static {
    ask(&client.shared, |reply| Request::Operate(operation(reply)))
}

impl Client {
    /// Cancels workflow `id` as [`Runtime::cancel`](crate::Runtime::cancel) does, and
    /// with `children` its descendants too, level by level, as
    /// [`Runtime::cancel_tree`](crate::Runtime::cancel_tree) does. Resolves, once the
    /// cancellations are durable, to the ids it cancelled: none when `id` had already
    /// finished.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown id, journal errors.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime, Status};
    /// use std::time::Duration;
    ///
    /// async fn slow(ctx: Ctx, _: ()) -> Result<(), String> {
    ///     ctx.sleep(Duration::from_secs(3600)).await;
    ///     Ok(())
    /// }
    /// let rt = Runtime::builder().temporary().register("slow", slow).build()?;
    /// rt.start::<_, (), String>("slow", "s-1", ())?;
    /// let client = rt.client();
    /// let other = std::thread::spawn(move || futures::executor::block_on(client.cancel("s-1", false)));
    /// rt.block_on(async { while !other.is_finished() { ordo::executor::sleep(Duration::from_millis(2)).await } });
    /// assert_eq!(other.join().expect("no panic")?, vec!["s-1".to_string()]);
    /// assert_eq!(rt.journal().workflow("s-1")?.map(|w| w.status), Some(Status::Cancelled));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(
        &self,
        id: &str,
        children: bool,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send + 'static {
        let id = id.to_string();
        operate(self, move |reply| Operation::Cancel {
            id,
            children,
            reply,
        })
    }

    /// Starts a cancelled workflow, or a pending one that is not running (its recovery
    /// attempts exhausted), again from its journal, as
    /// [`Runtime::resume`](crate::Runtime::resume) does; no typed handle: the workflow
    /// simply runs. Resolves once its record is `Pending` again, durably.
    ///
    /// # Errors
    ///
    /// [`Error::NotResumable`] for a finished workflow, [`Error::NotFound`],
    /// [`Error::UnknownWorkflow`] when its name is not registered here.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime, Status};
    /// async fn one(ctx: Ctx, _: ()) -> Result<u8, String> {
    ///     ctx.step("one", || async { Ok::<_, String>(1u8) }).await
    /// }
    /// let rt = Runtime::builder().temporary().register("one", one).build()?;
    /// rt.start::<_, u8, String>("one", "o-1", ())?;
    /// rt.cancel("o-1")?;
    /// let client = rt.client();
    /// rt.block_on(client.resume("o-1"))?;
    /// assert_eq!(rt.block_on(rt.handle::<u8, String>("o-1")?.result())?, Ok(1));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn resume(&self, id: &str) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let id = id.to_string();
        operate(self, move |reply| Operation::Resume { id, reply })
    }

    /// Starts a copy of workflow `id` that keeps its first `at_seq` completions, as
    /// [`Runtime::fork`](crate::Runtime::fork) does, under `new_id`, or when `None`
    /// under `ID.fork-SEQ` (or the first free of `ID.fork-SEQ-2`, `-3`...). Resolves to
    /// the copy's id once its record and copied completions are durable.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::ForkPointOutOfRange`], [`Error::AlreadyExists`]
    /// for a taken `new_id`, [`Error::UnknownWorkflow`].
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn two(ctx: Ctx, n: u32) -> Result<u32, String> {
    ///     let a = ctx.step("a", move || async move { Ok::<_, String>(n + 1) }).await?;
    ///     ctx.step("b", move || async move { Ok::<_, String>(a * 10) }).await
    /// }
    /// let rt = Runtime::builder().temporary().register("two", two).build()?;
    /// let original = rt.start::<_, u32, String>("two", "t-1", 4u32)?;
    /// rt.block_on(original.result())?.expect("runs");
    /// let client = rt.client();
    /// let copy = rt.block_on(client.fork("t-1", 1, None))?;
    /// assert_eq!(copy, "t-1.fork-1");
    /// assert_eq!(rt.block_on(rt.handle::<u32, String>(&copy)?.result())?, Ok(50));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn fork(
        &self,
        id: &str,
        at_seq: u64,
        new_id: Option<String>,
    ) -> impl Future<Output = Result<String, Error>> + Send + 'static {
        let id = id.to_string();
        operate(self, move |reply| Operation::Fork {
            id,
            at_seq,
            new_id,
            reply,
        })
    }

    /// Deletes the finished workflows last written more than `older_than` ago, as
    /// [`Runtime::gc`](crate::Runtime::gc) does, but sharing the runtime's thread: after
    /// each commit of at most [`GC_BATCH`](crate::GC_BATCH) deletions it waits nineteen
    /// times as long as that commit took, so workflows keep making steps meanwhile.
    /// Resolves when nothing old is left.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    /// async fn noop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// let rt = Runtime::builder().temporary().clock(ordo::Clock::Virtual)
    ///     .register("noop", noop).build()?;
    /// rt.block_on(rt.start::<_, (), ()>("noop", "n-1", ())?.result())?.expect("runs");
    /// rt.block_on(ordo::executor::sleep(Duration::from_secs(7200))); // two (virtual) hours
    /// let client = rt.client();
    /// assert_eq!(rt.block_on(client.gc(Duration::from_secs(3 * 3600)))?.deleted, 0);
    /// assert_eq!(rt.block_on(client.gc(Duration::from_secs(3600)))?.deleted, 1);
    /// assert!(rt.journal().workflow("n-1")?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn gc(
        &self,
        older_than: Duration,
    ) -> impl Future<Output = Result<GcReport, Error>> + Send + 'static {
        operate(self, move |reply| Operation::Gc { older_than, reply })
    }

    /// The workflows with `status` (all if `None`), in id order, each with its count of
    /// completions: what `ordo list` shows.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime, Status};
    /// async fn noop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// let rt = Runtime::builder().temporary().register("noop", noop).build()?;
    /// rt.block_on(rt.start::<_, (), ()>("noop", "n-1", ())?.result())?.expect("runs");
    /// let client = rt.client();
    /// let rows = rt.block_on(client.list(Some(Status::Succeeded)))?;
    /// assert_eq!(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["n-1"]);
    /// assert!(rt.block_on(client.list(Some(Status::Pending)))?.is_empty());
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn list(
        &self,
        status: Option<Status>,
    ) -> impl Future<Output = Result<Vec<WorkflowSummary>, Error>> + Send + 'static {
        self.list_first(status, None)
    }

    /// [`Client::list`], at most `limit` rows (the first screen).
    pub(crate) fn list_first(
        &self,
        status: Option<Status>,
        limit: Option<u64>,
    ) -> impl Future<Output = Result<Vec<WorkflowSummary>, Error>> + Send + 'static {
        operate(self, move |reply| Operation::List {
            status,
            limit,
            reply,
        })
    }

    /// Workflow `id`'s record and its completions in delivery (`seq`) order: what
    /// `ordo show` shows, and the seqs [`Client::fork`] takes.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown id.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn one(ctx: Ctx, _: ()) -> Result<u8, ()> { ctx.step("one", || async { Ok::<_, ()>(1u8) }).await }
    /// let rt = Runtime::builder().temporary().register("one", one).build()?;
    /// rt.block_on(rt.start::<_, u8, ()>("one", "o-1", ())?.result())?.expect("runs");
    /// let (record, completions) = rt.block_on(rt.client().show("o-1"))?;
    /// assert_eq!(record.status, ordo::Status::Succeeded);
    /// assert_eq!(completions.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["one"]);
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn show(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<(WorkflowRecord, Vec<Completion>), Error>> + Send + 'static
    {
        let id = id.to_string();
        operate(self, move |reply| Operation::Show { id, reply })
    }

    /// Counts of the journal's workflows by status, and of their completions: what
    /// `ordo stats` shows.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// async fn noop(_: Ctx, _: ()) -> Result<(), ()> { Ok(()) }
    /// let rt = Runtime::builder().temporary().register("noop", noop).build()?;
    /// rt.block_on(rt.start::<_, (), ()>("noop", "n-1", ())?.result())?.expect("runs");
    /// let stats = rt.block_on(rt.client().stats())?;
    /// assert_eq!((stats.workflows, stats.succeeded), (1, 1));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn stats(&self) -> impl Future<Output = Result<JournalStats, Error>> + Send + 'static {
        operate(self, |reply| Operation::Stats { reply })
    }
}
