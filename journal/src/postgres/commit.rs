//! A [`Batch`] as the columns of one pipelined transaction.
//!
//! [`Encoded::from_batch`] turns the batch into owned column arrays on the caller's
//! thread (the store's thread needs owned values); [`Encoded::send`] sends `BEGIN`, the
//! fence, one statement per non-empty part, and `COMMIT` without waiting in between:
//! one round trip, one transaction. Every statement takes whole arrays (`unnest`), so
//! a commit of 64 steps is as many statements as a commit of one.
//!
//! Within a batch a later put of the same workflow, type, trace context, event,
//! resolution or queue key wins, as on sled; the arrays keep only the last of each (a
//! statement may not touch a row twice).

use std::collections::HashMap;
use std::hash::Hash;

use tokio_postgres::types::ToSql;

use super::session::Conn;
use crate::key;
use crate::last_seq::LastSeqs;
use crate::record::{Batch, Outcome, Prior};
use crate::Error;

/// Bit for bit: the journal's `u64`s live in `int8` columns.
pub(crate) fn signed(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

/// The inverse of [`signed`].
pub(crate) fn unsigned(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

/// Indexes of the last occurrence of each key, in order of those last occurrences.
fn last_of<K: Eq + Hash>(keys: impl Iterator<Item = K>) -> Vec<usize> {
    let mut last = HashMap::new();
    let mut count = 0;
    for (i, k) in keys.enumerate() {
        last.insert(k, i);
        count = i + 1;
    }
    let mut keep: Vec<bool> = vec![false; count];
    for i in last.into_values() {
        keep[i] = true;
    }
    keep.iter()
        .enumerate()
        .filter_map(|(i, &k)| k.then_some(i))
        .collect()
}

fn outcome_columns(outcome: &Outcome) -> (bool, Vec<u8>) {
    match outcome {
        Outcome::Ok(bytes) => (true, bytes.clone()),
        Outcome::Err(bytes) => (false, bytes.clone()),
    }
}

/// One batch as column arrays.
#[derive(Default)]
pub(crate) struct Encoded {
    deletes: Vec<String>,
    wf_id: Vec<String>,
    wf_name: Vec<String>,
    wf_status: Vec<i16>,
    wf_input: Vec<Vec<u8>>,
    wf_output_ok: Vec<Option<bool>>,
    wf_output: Vec<Option<Vec<u8>>>,
    wf_created: Vec<i64>,
    wf_updated: Vec<i64>,
    wf_attempts: Vec<i32>,
    wf_app: Vec<Option<String>>,
    wf_deadline: Vec<Option<i64>>,
    wf_first_step: Vec<i64>,
    wf_keyed: Vec<bool>,
    /// Whether the record is new (a start): inserted only where no record has its id.
    wf_new: Vec<bool>,
    type_fp: Vec<i64>,
    type_name: Vec<String>,
    trace_id: Vec<String>,
    trace_value: Vec<String>,
    resets: Vec<String>,
    c_id: Vec<String>,
    c_seq: Vec<i64>,
    c_step: Vec<i64>,
    c_name: Vec<String>,
    c_ok: Vec<bool>,
    c_value: Vec<Vec<u8>>,
    c_attempts: Vec<i32>,
    c_started: Vec<i64>,
    c_ended: Vec<i64>,
    m_dest: Vec<String>,
    m_topic: Vec<String>,
    m_number: Vec<i64>,
    m_payload: Vec<Vec<u8>>,
    m_sent: Vec<i64>,
    m_key: Vec<Option<String>>,
    k_dest: Vec<String>,
    k_key: Vec<String>,
    gone_dest: Vec<String>,
    gone_topic: Vec<String>,
    gone_number: Vec<i64>,
    ev_id: Vec<String>,
    ev_key: Vec<String>,
    ev_value: Vec<Vec<u8>>,
    aw_id: Vec<String>,
    aw_step: Vec<i64>,
    aw_ok: Vec<bool>,
    aw_value: Vec<Vec<u8>>,
    highest_message: Option<i64>,
    /// `(kind, workflow id)` of what other workers may wait for: `m` mail, `w` an end,
    /// `e` an event, `a` an awakeable's resolution (see `Elsewhere`).
    note_kind: Vec<String>,
    note_id: Vec<String>,
    q_delete: Vec<Vec<u8>>,
    q_key: Vec<Vec<u8>>,
    q_value: Vec<Vec<u8>>,
    /// Each workflow's completions in this batch: its id, first seq and last seq.
    runs: Vec<(String, u64, u64)>,
}

/// Refuses an id sled's store refuses (too long, [`key::check_id`]) or one a `text`
/// column cannot hold ([`key::check_text`]).
fn stored_id(id: &str) -> Result<(), Error> {
    key::check_id(id)?;
    key::check_text(id)
}

impl Encoded {
    /// The batch's columns; fails as sled's store does on an id too long or completions
    /// whose seqs repeat within the batch, and with [`Error::NulCharacter`] on a string
    /// that `text` cannot hold (which the runtime refuses before it gets here), rather
    /// than a round trip that PostgreSQL fails.
    pub(crate) fn from_batch(batch: &Batch) -> Result<Encoded, Error> {
        let mut e = Encoded::default();
        for id in &batch.deletes {
            stored_id(id)?;
            e.deletes.push(id.clone());
        }
        // The last record of each id, in id order; it is new if the batch's first record
        // of its id is (later records of a start in the same batch, its attempts reset
        // or its end, ride on its insert). One map for both. Id order, not batch order:
        // two workers starting some of the same ids in one commit each lock their rows
        // in one order, or PostgreSQL would find them in a deadlock and fail one
        // commit, which stops that worker's runtime
        // (`tests/postgres_workers.rs`: `one_fan_out_started_with_start_many_..`).
        let mut by_id: HashMap<&str, (usize, bool)> = HashMap::with_capacity(batch.workflows.len());
        for (i, (w, prior)) in batch.workflows.iter().zip(&batch.priors).enumerate() {
            by_id
                .entry(w.id.as_str())
                .and_modify(|last| last.0 = i)
                .or_insert((i, *prior == Prior::Absent));
        }
        let mut last: Vec<(usize, bool)> = by_id.into_values().collect();
        last.sort_unstable_by(|&(a, _), &(b, _)| batch.workflows[a].id.cmp(&batch.workflows[b].id));
        for (i, new) in last {
            let w = &batch.workflows[i];
            e.wf_new.push(new);
            stored_id(&w.id)?;
            e.wf_id.push(w.id.clone());
            key::check_text(&w.name)?;
            e.wf_name.push(w.name.clone());
            e.wf_status.push(i16::from(w.status.index_byte()));
            e.wf_input.push(w.input.clone());
            let output = w.output.as_ref().map(outcome_columns);
            e.wf_output_ok.push(output.as_ref().map(|o| o.0));
            e.wf_output.push(output.map(|o| o.1));
            e.wf_created.push(signed(w.created_ms));
            e.wf_updated.push(signed(w.updated_ms));
            e.wf_attempts
                .push(i32::from_ne_bytes(w.recovery_attempts.to_ne_bytes()));
            if let Some(version) = &w.app_version {
                key::check_text(version)?;
            }
            e.wf_app.push(w.app_version.clone());
            e.wf_deadline.push(w.deadline_ms.map(signed));
            e.wf_first_step.push(signed(w.first_step));
            e.wf_keyed.push(w.keyed_tokens);
        }
        // Workers that start together name the same types in their first commits.
        let mut types = last_of(batch.types.iter().map(|t| t.0));
        types.sort_unstable_by_key(|&i| batch.types[i].0);
        for i in types {
            e.type_fp.push(signed(batch.types[i].0));
            e.type_name.push(batch.types[i].1.clone());
        }
        for i in last_of(batch.trace_contexts.iter().map(|t| t.0.as_str())) {
            stored_id(&batch.trace_contexts[i].0)?;
            e.trace_id.push(batch.trace_contexts[i].0.clone());
            e.trace_value.push(batch.trace_contexts[i].1.clone());
        }
        for id in &batch.resets {
            stored_id(id)?;
            e.resets.push(id.clone());
        }
        e.completions(batch)?;
        e.mail(batch)?;
        e.notes(batch);
        for i in last_of(batch.queue.iter().map(|q| q.0.as_slice())) {
            match &batch.queue[i] {
                (k, Some(v)) => {
                    e.q_key.push(k.clone());
                    e.q_value.push(v.clone());
                }
                (k, None) => e.q_delete.push(k.clone()),
            }
        }
        Ok(e)
    }

    fn completions(&mut self, batch: &Batch) -> Result<(), Error> {
        let completions = &batch.completions;
        let mut order: Vec<usize> = (0..completions.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            let ((id_a, a), (id_b, b)) = (&completions[a], &completions[b]);
            id_a.cmp(id_b).then(a.seq.cmp(&b.seq))
        });
        for pair in order.windows(2) {
            let ((id_a, a), (id_b, b)) = (&completions[pair[0]], &completions[pair[1]]);
            if id_a == id_b && a.seq == b.seq {
                return Err(Error::SeqOutOfOrder {
                    workflow_id: id_a.clone(),
                    seq: b.seq,
                    after: a.seq,
                });
            }
        }
        for run in order.chunk_by(|&a, &b| completions[a].0 == completions[b].0) {
            let (first, last) = (&completions[run[0]], &completions[run[run.len() - 1]]);
            self.runs.push((first.0.clone(), first.1.seq, last.1.seq));
        }
        // Each column once at its size, not grown a push at a time (a commit of many
        // workflows' steps has one row per workflow).
        let n = completions.len();
        self.c_id.reserve_exact(n);
        self.c_seq.reserve_exact(n);
        self.c_step.reserve_exact(n);
        self.c_name.reserve_exact(n);
        self.c_ok.reserve_exact(n);
        self.c_value.reserve_exact(n);
        self.c_attempts.reserve_exact(n);
        self.c_started.reserve_exact(n);
        self.c_ended.reserve_exact(n);
        for (id, c) in completions {
            stored_id(id)?;
            self.c_id.push(id.clone());
            self.c_seq.push(signed(c.seq));
            self.c_step.push(signed(c.step_id));
            key::check_text(&c.name)?;
            self.c_name.push(c.name.clone());
            let (ok, value) = outcome_columns(&c.outcome);
            self.c_ok.push(ok);
            self.c_value.push(value);
            self.c_attempts
                .push(i32::from_ne_bytes(c.attempts.to_ne_bytes()));
            self.c_started.push(signed(c.started_ms));
            self.c_ended.push(signed(c.ended_ms));
        }
        Ok(())
    }

    fn notes(&mut self, batch: &Batch) {
        let mut kinds = Vec::new();
        let mut ids = Vec::new();
        let mut note = |kind: &str, id: &str| {
            kinds.push(kind.to_owned());
            ids.push(id.to_owned());
        };
        for d in &self.m_dest {
            note("m", d);
        }
        for w in batch.workflows.iter().filter(|w| w.status.is_finished()) {
            note("w", &w.id);
        }
        for (id, _, _) in &batch.mail.events {
            note("e", id);
        }
        for (id, _, _) in &batch.mail.resolutions {
            note("a", id);
        }
        self.note_kind = kinds;
        self.note_id = ids;
    }

    fn mail(&mut self, batch: &Batch) -> Result<(), Error> {
        let mail = &batch.mail;
        // A message consumed in the batch that sends it is stored neither way (its
        // idempotency key is), as on sled.
        let consumed: std::collections::HashSet<(&str, &str, u64)> = mail
            .consumed
            .iter()
            .map(|(d, t, n)| (d.as_str(), t.as_str(), *n))
            .collect();
        let mut here = std::collections::HashSet::new();
        // Rows other workers may write too go in key order, as workflow rows do (see
        // `from_batch`): idempotency keys, events, resolutions.
        let mut keys: Vec<(&str, &str)> = Vec::new();
        for m in &mail.messages {
            stored_id(&m.destination)?;
            stored_id(&m.topic)?;
            self.highest_message = self.highest_message.max(Some(signed(m.number)));
            if let Some(used) = &m.idempotency_key {
                key::check_text(used)?;
                keys.push((&m.destination, used));
            }
            let id = (m.destination.as_str(), m.topic.as_str(), m.number);
            if consumed.contains(&id) {
                here.insert(id);
                continue;
            }
            self.m_dest.push(m.destination.clone());
            self.m_topic.push(m.topic.clone());
            self.m_number.push(signed(m.number));
            self.m_payload.push(m.payload.clone());
            self.m_sent.push(signed(m.sent_ms));
            self.m_key.push(m.idempotency_key.clone());
        }
        keys.sort_unstable();
        keys.dedup();
        for (destination, used) in keys {
            self.k_dest.push(destination.to_owned());
            self.k_key.push(used.to_owned());
        }
        for (d, t, n) in &mail.consumed {
            if here.contains(&(d.as_str(), t.as_str(), *n)) {
                continue;
            }
            self.gone_dest.push(d.clone());
            self.gone_topic.push(t.clone());
            self.gone_number.push(signed(*n));
        }
        let mut events = last_of(
            mail.events
                .iter()
                .map(|(id, k, _)| (id.as_str(), k.as_str())),
        );
        events.sort_unstable_by_key(|&i| (&mail.events[i].0, &mail.events[i].1));
        for i in events {
            let (id, k, value) = &mail.events[i];
            stored_id(id)?;
            key::check_text(k)?;
            self.ev_id.push(id.clone());
            self.ev_key.push(k.clone());
            self.ev_value.push(value.clone());
        }
        let mut resolutions = last_of(mail.resolutions.iter().map(|(id, s, _)| (id.as_str(), *s)));
        resolutions.sort_unstable_by_key(|&i| (&mail.resolutions[i].0, mail.resolutions[i].1));
        for i in resolutions {
            let (id, step, outcome) = &mail.resolutions[i];
            stored_id(id)?;
            self.aw_id.push(id.clone());
            self.aw_step.push(signed(*step));
            let (ok, value) = outcome_columns(outcome);
            self.aw_ok.push(ok);
            self.aw_value.push(value);
        }
        Ok(())
    }

    /// The workflow records' columns, in the statements' order.
    fn workflow_columns(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.wf_id,
            &self.wf_name,
            &self.wf_status,
            &self.wf_input,
            &self.wf_output_ok,
            &self.wf_output,
            &self.wf_created,
            &self.wf_updated,
            &self.wf_attempts,
            &self.wf_app,
            &self.wf_deadline,
            &self.wf_first_step,
            &self.wf_keyed,
        ]
    }

    /// The first completion's columns, in the statements' order (that of
    /// [`Encoded::completion_columns`]), as scalars. Only for a batch with completions.
    fn first_completion(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.c_id[0],
            &self.c_seq[0],
            &self.c_step[0],
            &self.c_name[0],
            &self.c_ok[0],
            &self.c_value[0],
            &self.c_attempts[0],
            &self.c_started[0],
            &self.c_ended[0],
        ]
    }

    /// The completions' columns, in the statements' order.
    fn completion_columns(&self) -> [&(dyn ToSql + Sync); 9] {
        [
            &self.c_id,
            &self.c_seq,
            &self.c_step,
            &self.c_name,
            &self.c_ok,
            &self.c_value,
            &self.c_attempts,
            &self.c_started,
            &self.c_ended,
        ]
    }

    /// Whether the batch is only completions, of workflows whose last recorded seqs the
    /// worker knows (`known`, see [`KnownSeqs::check`]): then it is sent without the
    /// fence, on the connection fenced as a whole (`session::session_fenced_commit`).
    pub(crate) fn session_fenced(&self, known: bool) -> bool {
        known
            && !self.c_id.is_empty()
            && self.wf_id.is_empty()
            && self.note_kind.is_empty()
            && self.only_records_and_completions()
    }

    /// The workflow id and seq of the batch's first completion, if it has one.
    pub(crate) fn first_seq(&self) -> Option<(&str, i64)> {
        Some((self.c_id.first()?.as_str(), *self.c_seq.first()?))
    }

    /// Whether the batch writes workflow records and completions, and notifies, and does
    /// nothing else that needs a statement of its own (most commits): then one statement
    /// does it all.
    fn only_records_and_completions(&self) -> bool {
        self.deletes.is_empty()
            && self.type_fp.is_empty()
            && self.trace_id.is_empty()
            && self.resets.is_empty()
            && self.m_dest.is_empty()
            && self.k_dest.is_empty()
            && self.gone_dest.is_empty()
            && self.ev_id.is_empty()
            && self.aw_id.is_empty()
            && self.highest_message.is_none()
            && self.q_delete.is_empty()
            && self.q_key.is_empty()
    }

    /// The ids of the new records (starts) in this batch.
    pub(crate) fn new_ids(&self) -> Vec<String> {
        self.wf_id
            .iter()
            .zip(&self.wf_new)
            .filter(|(_, &new)| new)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Sends the whole transaction at once and waits for every answer: the worker's
    /// commit count after it (none for a commit without the fence, see
    /// [`Encoded::session_fenced`]) and the ids of the new records it did not write
    /// (another worker had started them), or the first statement's error (the rest of
    /// an aborted transaction only says it is aborted). `None`: the worker was fenced,
    /// and the one-statement commit wrote nothing (it answers no row then, see
    /// `one_statement_commit`; a transaction's fence raises instead).
    ///
    /// `known`: every workflow of the batch's completions is known to have none
    /// recorded at or after them ([`KnownSeqs::check`]), so the one-statement commits
    /// leave out the server's own check.
    pub(crate) async fn send(
        &self,
        conn: &Conn,
        owner: i64,
        fence: [i64; 2],
        known: bool,
    ) -> Result<Option<Sent>, tokio_postgres::Error> {
        let c = &conn.client;
        let st = &conn.st;
        let [worker, epoch] = fence;
        if self.session_fenced(known) {
            if self.c_id.len() == 1 {
                c.execute(&st.step_known, &self.first_completion()).await?;
            } else {
                c.execute(&st.steps_known, &self.completion_columns())
                    .await?;
            }
            return Ok(Some((None, Vec::new())));
        }
        if self.only_records_and_completions() && self.wf_id.is_empty() && self.note_kind.is_empty()
        {
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(11); // worker, epoch and the nine completion columns
            params.extend([&worker as &(dyn ToSql + Sync), &epoch]);
            params.extend(self.completion_columns());
            return answer(c.query_opt(&st.steps, &params).await?);
        }
        if self.only_records_and_completions() {
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&worker, &epoch];
            params.extend(self.workflow_columns());
            params.extend(self.completion_columns());
            params.push(&self.wf_new);
            let notify = !self.note_kind.is_empty();
            if notify {
                params.push(&self.note_kind);
                params.push(&self.note_id);
            }
            let statement = match (known, notify) {
                (true, false) => &st.fast_known,
                (false, false) => &st.fast,
                (true, true) => &st.fast_known_notify,
                (false, true) => &st.fast_notify,
            };
            return answer(c.query_opt(statement, &params).await?);
        }
        // Boxed: the transaction's futures (a dozen statements in one flight) would
        // otherwise more than double every commit's future (3.4 KB against 1.5 KB,
        // measured with `size_of_val`), most of which take one of the paths above.
        Box::pin(self.transaction(conn, owner, fence)).await
    }

    /// [`Encoded::send`] of a batch that needs more than one statement: one transaction,
    /// sent at once.
    async fn transaction(
        &self,
        conn: &Conn,
        owner: i64,
        fence: [i64; 2],
    ) -> Result<Option<Sent>, tokio_postgres::Error> {
        let c = &conn.client;
        let st = &conn.st;
        let [worker, epoch] = fence;
        type Part<'a> = (&'a tokio_postgres::Statement, Vec<&'a (dyn ToSql + Sync)>);
        let mut first: Vec<Part<'_>> = Vec::new();
        if !self.deletes.is_empty() {
            first.push((&st.delete, vec![&self.deletes]));
        }
        let mut put: Vec<&(dyn ToSql + Sync)> = self.workflow_columns().to_vec();
        put.push(&owner);
        put.push(&self.wf_new);
        let puts = !self.wf_id.is_empty();
        let mut parts: Vec<Part<'_>> = Vec::new();
        if !self.type_fp.is_empty() {
            parts.push((&st.put_types, vec![&self.type_fp, &self.type_name]));
        }
        if !self.trace_id.is_empty() {
            parts.push((&st.put_traces, vec![&self.trace_id, &self.trace_value]));
        }
        if !self.resets.is_empty() {
            parts.push((&st.reset, vec![&self.resets]));
        }
        if !self.c_id.is_empty() {
            parts.push((&st.append, self.completion_columns().to_vec()));
        }
        if !self.m_dest.is_empty() {
            parts.push((
                &st.send,
                vec![
                    &self.m_dest,
                    &self.m_topic,
                    &self.m_number,
                    &self.m_payload,
                    &self.m_sent,
                    &self.m_key,
                ],
            ));
        }
        if !self.k_dest.is_empty() {
            parts.push((&st.keys, vec![&self.k_dest, &self.k_key]));
        }
        if !self.gone_dest.is_empty() {
            parts.push((
                &st.consume,
                vec![&self.gone_dest, &self.gone_topic, &self.gone_number],
            ));
        }
        if !self.ev_id.is_empty() {
            parts.push((
                &st.put_events,
                vec![&self.ev_id, &self.ev_key, &self.ev_value],
            ));
        }
        if !self.aw_id.is_empty() {
            parts.push((
                &st.resolve,
                vec![&self.aw_id, &self.aw_step, &self.aw_ok, &self.aw_value],
            ));
        }
        if let Some(highest) = &self.highest_message {
            parts.push((&st.counter, vec![highest]));
        }
        if !self.note_kind.is_empty() {
            // Delivered at commit to every worker listening: the one driving a
            // destination reads its mailbox again, one waiting for an end, an event or
            // a resolution looks again.
            parts.push((&st.notify, vec![&fence[0], &self.note_kind, &self.note_id]));
        }
        if !self.q_delete.is_empty() {
            parts.push((&st.queue_delete, vec![&self.q_delete]));
        }
        if !self.q_key.is_empty() {
            parts.push((&st.queue_put, vec![&self.q_key, &self.q_value]));
        }
        let fence_params: [&(dyn ToSql + Sync); 2] = [&worker, &epoch];
        // `join!` polls its futures in order, and each sends its request on its first
        // poll: the server gets them in this order, in one flight.
        let (begin, fenced, deleted, refused, applied, commit) = futures::join!(
            c.batch_execute("BEGIN"),
            c.query_one(&st.fence, &fence_params),
            futures::future::join_all(
                first
                    .iter()
                    .map(|(statement, params)| c.execute(*statement, params))
            ),
            async {
                if puts {
                    c.query_one(&st.put_workflows, &put).await.map(Some)
                } else {
                    Ok(None)
                }
            },
            futures::future::join_all(
                parts
                    .iter()
                    .map(|(statement, params)| c.execute(*statement, params))
            ),
            c.batch_execute("COMMIT"),
        );
        begin?;
        let counted: i64 = fenced?.try_get(0)?;
        for result in deleted {
            result?;
        }
        let refused = match refused? {
            Some(row) => row.try_get(0)?,
            None => Vec::new(),
        };
        for result in applied {
            result?;
        }
        commit?;
        Ok(Some((Some(counted), refused)))
    }
}

/// A commit's answer: the worker's commit count after it (none for a commit sent
/// without the fence), and the new records that were another worker's first.
pub(crate) type Sent = (Option<i64>, Vec<String>);

/// A one-statement commit's answer: its row (the worker's commit count, the new records
/// refused), or none if the worker was fenced.
fn answer(row: Option<tokio_postgres::Row>) -> Result<Option<Sent>, tokio_postgres::Error> {
    row.map(|row| Ok((Some(row.try_get(0)?), row.try_get(1)?)))
        .transpose()
}

/// The last recorded seq of workflows this worker drives, as its own commits tell (see
/// [`LastSeqs`]).
///
/// Completions are append-only: a commit of a seq at or before a recorded one of its
/// workflow is refused. The server checks this with a read of the workflow's last seq
/// in every commit; a batch whose every workflow is known here is checked here instead
/// and sent without that read. Only the worker driving a workflow appends to it, so
/// what its commits wrote stays the truth while it drives it; a workflow this worker
/// comes to drive otherwise (claimed at recovery, a takeover, a resume) is forgotten at
/// the claim, and a failed commit forgets its workflows, so the next commit of each
/// lets the server check again. A worker that loses its lease is fenced for good, so a
/// stale entry never outlives the lease it came from; and the primary key refuses a seq
/// recorded twice whatever this says.
#[derive(Default)]
pub(crate) struct KnownSeqs(LastSeqs);

impl KnownSeqs {
    /// Whether every run of `encoded` is known to come after its workflow's recorded
    /// seqs; [`Error::SeqOutOfOrder`] if one is known not to.
    pub(crate) fn check(&self, encoded: &Encoded) -> Result<bool, Error> {
        // A workflow this batch starts, deletes or starts over is the server's to check:
        // what is known here may be of an earlier workflow of that id. One set, not a
        // scan per run (a batch may hold a thousand of each).
        let fresh: std::collections::HashSet<&str> = (encoded.deletes.iter())
            .chain(&encoded.resets)
            .chain(
                (encoded.wf_id.iter().zip(&encoded.wf_new))
                    .filter(|(_, &new)| new)
                    .map(|(id, _)| id),
            )
            .map(String::as_str)
            .collect();
        let mut known = true;
        for (id, first, _) in &encoded.runs {
            if fresh.contains(id.as_str()) {
                known = false;
            } else {
                known &= self.0.check(id, *first)?;
            }
        }
        Ok(known)
    }

    /// Takes in what a committed `encoded` recorded; `refused`: its new records that
    /// were another worker's first (not started here).
    pub(crate) fn committed(&mut self, encoded: &Encoded, refused: &[String]) {
        self.0.make_room(encoded.runs.len() + encoded.wf_id.len());
        for id in encoded.deletes.iter().chain(&encoded.resets) {
            self.0.forget(id);
        }
        for (id, _) in encoded
            .wf_id
            .iter()
            .zip(&encoded.wf_new)
            .filter(|(_, &new)| new)
        {
            if !refused.contains(id) {
                self.0.started(id);
            }
        }
        for (id, _, last) in &encoded.runs {
            self.0.appended(id, *last);
        }
    }

    /// Forgets the workflows of a commit whose outcome is not known.
    pub(crate) fn failed(&mut self, encoded: &Encoded) {
        for id in encoded
            .runs
            .iter()
            .map(|(id, _, _)| id)
            .chain(&encoded.wf_id)
        {
            self.0.forget(id);
        }
    }

    /// Forgets workflows this worker now drives but did not start: their seqs are read
    /// by the server again.
    pub(crate) fn forget<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            self.0.forget(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::Message;
    use crate::record::WorkflowRecord;

    #[test]
    fn workflow_rows_go_in_id_order_whatever_the_batch_order() {
        let mut batch = Batch::new();
        for id in ["fan-9", "fan-1", "fan-5", "fan-1"] {
            batch.insert_workflow(WorkflowRecord::new(id, "fanned", vec![], 0));
        }
        let encoded = Encoded::from_batch(&batch).expect("encodes");
        assert_eq!(encoded.wf_id, ["fan-1", "fan-5", "fan-9"]);
    }

    #[test]
    fn rows_other_workers_may_write_go_in_key_order() {
        let mut batch = Batch::new();
        batch.put_type(9, "u9".into());
        batch.put_type(2, "u2".into());
        for (key, number) in [("k-b", 1), ("k-a", 2), ("k-b", 3)] {
            batch.send_message(Message {
                destination: "d".into(),
                topic: "t".into(),
                number,
                payload: vec![],
                sent_ms: 0,
                idempotency_key: Some(key.into()),
            });
        }
        batch.set_event("w-2", "e", vec![1]);
        batch.set_event("w-1", "e", vec![2]);
        batch.resolve_awakeable("w-2", 1, Outcome::Ok(vec![]));
        batch.resolve_awakeable("w-1", 7, Outcome::Ok(vec![]));
        let encoded = Encoded::from_batch(&batch).expect("encodes");
        assert_eq!(encoded.type_fp, [2, 9]);
        assert_eq!(encoded.k_key, ["k-a", "k-b"]);
        assert_eq!(encoded.ev_id, ["w-1", "w-2"]);
        assert_eq!(encoded.aw_id, ["w-1", "w-2"]);
    }
}
