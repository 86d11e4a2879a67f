//! What the dashboard asks the runtime's thread, and how that thread answers.
//!
//! The dashboard's HTTP thread never opens the journal: like a [`Client`](crate::Client),
//! it sends each request over a channel into a task on the runtime's executor, which
//! reads the journal (or cancels, or resumes) between two turns of the workflows and
//! replies. The reply travels on a `std` channel so the HTTP thread can wait for it
//! with a timeout: a runtime that is not being driven gets a "not answering" page,
//! not a hung browser tab.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::mpsc::SyncSender;

use futures::channel::mpsc;
use futures::{Future, StreamExt};
use ordo_journal::{Completion, Status, WorkflowRecord};

use crate::codec;
use crate::core::Core;
use crate::error::Error;
use crate::fingerprint;

/// Most workflows one list page shows (the newest first).
pub(crate) const LIST_LIMIT: usize = 500;

/// One request of the dashboard, with where its answer goes.
pub(crate) enum Query {
    /// Workflows with `status` (all if `None`) whose id contains `search`, newest first.
    List {
        status: Option<Status>,
        search: String,
        reply: SyncSender<Result<Listing, Error>>,
    },
    /// One workflow, its completions and the names of its values' types.
    Workflow {
        id: String,
        reply: SyncSender<Result<WorkflowView, Error>>,
    },
    /// Cancel `id` (see `Core::cancel_workflow`).
    Cancel {
        id: String,
        reply: SyncSender<Result<bool, Error>>,
    },
    /// Resume `id` (see `Core::resume_workflow`).
    Resume {
        id: String,
        reply: SyncSender<Result<(), Error>>,
    },
}

/// A page of the workflow list.
pub(crate) struct Listing {
    /// At most [`LIST_LIMIT`] records, newest first.
    pub(crate) workflows: Vec<WorkflowRecord>,
    /// How many matched in all.
    pub(crate) matched: usize,
    /// Workflows per status, over the whole journal (the filter's counts).
    pub(crate) counts: BTreeMap<Status, usize>,
}

/// Everything the workflow page shows.
pub(crate) struct WorkflowView {
    pub(crate) record: WorkflowRecord,
    pub(crate) completions: Vec<Completion>,
    /// Type names by fingerprint, for the input, the output and every outcome: from the
    /// journal's type table, or from this process if the table lacks one.
    pub(crate) type_names: BTreeMap<u64, String>,
    /// Whether it runs in this process now.
    pub(crate) running_here: bool,
    /// Children it launched.
    pub(crate) children: Vec<String>,
    pub(crate) trace_context: Option<String>,
}

/// The runtime's side: a channel for the dashboard and the task that serves it (ending
/// when the dashboard drops its sender).
pub(crate) fn open(core: &Rc<Core>) -> (mpsc::UnboundedSender<Query>, impl Future<Output = ()>) {
    let (queries, mut incoming) = mpsc::unbounded::<Query>();
    let core = Rc::clone(core);
    let serve = async move {
        while let Some(query) = incoming.next().await {
            // A reader that gave up (timeout, closed tab) finds its answer dropped.
            match query {
                Query::List {
                    status,
                    search,
                    reply,
                } => drop(reply.try_send(list(&core, status, &search))),
                Query::Workflow { id, reply } => drop(reply.try_send(view(&core, &id))),
                Query::Cancel { id, reply } => drop(reply.try_send(core.cancel_workflow(&id))),
                Query::Resume { id, reply } => drop(reply.try_send(core.resume_workflow(&id))),
            }
        }
    };
    (queries, serve)
}

fn list(core: &Core, status: Option<Status>, search: &str) -> Result<Listing, Error> {
    if let Some(err) = core.broken() {
        return Err(err);
    }
    let all = core.store.workflows(None)?;
    let mut counts = BTreeMap::new();
    for record in &all {
        *counts.entry(record.status).or_insert(0) += 1;
    }
    let mut workflows: Vec<WorkflowRecord> = all
        .into_iter()
        .filter(|r| status.is_none_or(|s| r.status == s) && r.id.contains(search))
        .collect();
    let matched = workflows.len();
    workflows.sort_by(|a, b| (b.created_ms, &a.id).cmp(&(a.created_ms, &b.id)));
    workflows.truncate(LIST_LIMIT);
    Ok(Listing {
        workflows,
        matched,
        counts,
    })
}

fn view(core: &Rc<Core>, id: &str) -> Result<WorkflowView, Error> {
    if let Some(err) = core.broken() {
        return Err(err);
    }
    let record = core.record(id)?;
    let completions = core.store.completions(id)?;
    let values = std::iter::once(record.input.as_slice())
        .chain(record.output.iter().map(|o| o.bytes()))
        .chain(completions.iter().map(|c| c.outcome.bytes()));
    let mut type_names = BTreeMap::new();
    for bytes in values {
        let Some(fp) = codec::fingerprint_of(bytes) else {
            continue;
        };
        if type_names.contains_key(&fp) {
            continue;
        }
        let name = match core.store.type_name(fp)? {
            Some(name) => Some(name),
            None => fingerprint::known_name(fp).map(str::to_string),
        };
        if let Some(name) = name {
            type_names.insert(fp, name);
        }
    }
    Ok(WorkflowView {
        running_here: core.running.borrow().contains_key(id),
        children: core.children_of(id)?,
        trace_context: core.store.trace_context(id)?,
        record,
        completions,
        type_names,
    })
}
