//! Messages: `Ctx::send` and `Ctx::recv`, and the mailbox that hands a topic's messages
//! to its waiting `recv`s in call-site order.
//!
//! A `send` is a step whose completion and message commit together: exactly once. A
//! `recv` takes two step ids at the call (its deadline, and what it got); a live `recv`
//! joins its topic's queue of receivers at the call too, so when several wait on one
//! topic the oldest message goes to the one called first, whatever order their futures
//! are polled in. The message a `recv` takes is consumed in the commit that records the
//! `recv` (see `Core::admit_consumes` for why that commit is one the workflow reads).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use futures::FutureExt;
use ordo_journal::{Message, Outcome};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::core::{Core, Effect};
use crate::ctx::{Ctx, Never};
use crate::error::Error;
use crate::fingerprint;
use crate::step::{Body, BodyOutput, Step};
use crate::workflow::WorkflowState;

const SEND: &str = "ordo.send";
const RECV_UNTIL: &str = "ordo.recv.until";
const RECV: &str = "ordo.recv";

/// A message taken out of the journal's mailbox, in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Letter {
    /// Its number in the journal (its age: lower is older).
    pub(crate) number: u64,
    pub(crate) payload: Vec<u8>,
}

/// One workflow's unconsumed messages, by topic, and its `recv`s waiting for them.
/// Loaded from the journal when a `recv` first needs it.
///
/// Every workflow parked in a `recv` keeps one, so it is kept small: its topics are a
/// `Vec` searched in order (a topic goes once it has neither messages nor receivers,
/// so a workflow rarely has more than a few at once; a hash map's first table was
/// about 280 bytes), and each topic's receivers another (see [`Receivers`]).
#[derive(Default)]
pub(crate) struct Mailbox {
    topics: Vec<(Rc<str>, Topic)>,
    /// The number of every message this mailbox ever held (numbers are unique in a
    /// journal): reading the journal again (mail committed by another worker) adds only
    /// what is new, never a message already taken by a `recv` whose commit is pending.
    seen: std::collections::HashSet<u64>,
}

#[derive(Default)]
struct Topic {
    /// Messages nobody took yet, by number.
    letters: BTreeMap<u64, Vec<u8>>,
    /// Live `recv`s by step id (call-site order), with the message handed to each.
    waiting: Receivers,
}

/// A topic's live `recv`s by step id, in call-site order: a `Vec` sorted by step id.
/// A topic rarely has more than one or two receivers at once, and a `BTreeMap`'s first
/// node took 632 bytes, which every workflow parked in a `recv` kept.
#[derive(Default)]
struct Receivers(Vec<(u64, Waiting)>);

/// Pushes `item`, making room for exactly one when `items` has none: most mailboxes
/// hold one topic with one receiver, where a `Vec`'s first growth makes room for four.
fn push_first_exact<T>(items: &mut Vec<T>, item: T) {
    if items.capacity() == 0 {
        items.reserve_exact(1);
    }
    items.push(item);
}

impl Receivers {
    /// The receiver of step `step_id`, added if it is not there.
    fn entry(&mut self, step_id: u64) -> &mut Waiting {
        let at = match self.0.binary_search_by_key(&step_id, |(id, _)| *id) {
            Ok(at) => at,
            Err(at) => {
                if self.0.is_empty() {
                    push_first_exact(&mut self.0, (step_id, Waiting::default()));
                } else {
                    self.0.insert(at, (step_id, Waiting::default()));
                }
                at
            }
        };
        &mut self.0[at].1
    }

    fn get_mut(&mut self, step_id: u64) -> Option<&mut Waiting> {
        let at = self.0.binary_search_by_key(&step_id, |(id, _)| *id).ok()?;
        Some(&mut self.0[at].1)
    }

    fn remove(&mut self, step_id: u64) -> Option<Waiting> {
        let at = self.0.binary_search_by_key(&step_id, |(id, _)| *id).ok()?;
        Some(self.0.remove(at).1)
    }

    /// The receivers in call-site order.
    fn in_order(&mut self) -> impl Iterator<Item = &mut Waiting> {
        self.0.iter_mut().map(|(_, waiting)| waiting)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Default)]
struct Waiting {
    handed: Option<Letter>,
    waker: Option<Waker>,
}

impl Mailbox {
    fn new(messages: Vec<Message>) -> Self {
        let mut mailbox = Mailbox::default();
        for m in messages {
            mailbox.seen.insert(m.number);
            mailbox
                .topic_entry(&m.topic)
                .letters
                .insert(m.number, m.payload);
        }
        mailbox
    }

    /// Topic `topic`'s place in `topics`, if it has one.
    fn position(&self, topic: &str) -> Option<usize> {
        self.topics.iter().position(|(name, _)| &**name == topic)
    }

    fn topic_mut(&mut self, topic: &str) -> Option<&mut Topic> {
        let at = self.position(topic)?;
        Some(&mut self.topics[at].1)
    }

    /// Topic `topic`, added if it is not there.
    fn topic_entry(&mut self, topic: &str) -> &mut Topic {
        let at = self.position(topic).unwrap_or_else(|| {
            push_first_exact(&mut self.topics, (Rc::from(topic), Topic::default()));
            self.topics.len() - 1
        });
        &mut self.topics[at].1
    }

    /// Hands the oldest messages to the earliest receivers that have none; returns the
    /// wakers to call once no borrow is held.
    fn dispatch(&mut self, topic: &str) -> Vec<Waker> {
        let mut wake = Vec::new();
        let Some(at) = self.position(topic) else {
            return wake;
        };
        let t = &mut self.topics[at].1;
        for waiting in t.waiting.in_order().filter(|w| w.handed.is_none()) {
            let Some((number, payload)) = t.letters.pop_first() else {
                break;
            };
            waiting.handed = Some(Letter { number, payload });
            wake.extend(waiting.waker.take());
        }
        if t.letters.is_empty() && t.waiting.is_empty() {
            self.topics.swap_remove(at);
        }
        wake
    }

    fn join(&mut self, topic: &str, step_id: u64) -> Vec<Waker> {
        self.topic_entry(topic).waiting.entry(step_id);
        self.dispatch(topic)
    }

    /// Puts a message in, unless this mailbox held it before.
    fn put(&mut self, topic: &str, letter: Letter) -> Vec<Waker> {
        if !self.seen.insert(letter.number) {
            return Vec::new();
        }
        self.put_back(topic, letter)
    }

    /// Puts a message in (again: a `recv` gave it back).
    fn put_back(&mut self, topic: &str, letter: Letter) -> Vec<Waker> {
        self.topic_entry(topic)
            .letters
            .insert(letter.number, letter.payload);
        self.dispatch(topic)
    }

    /// The letter handed to `step_id` and up to `max - 1` more of the topic's, taking
    /// them (and its place in the queue); else keeps `waker` to call when one is. The
    /// extra letters are fair game: letters wait only when every receiver has one.
    fn take(
        &mut self,
        topic: &str,
        step_id: u64,
        max: usize,
        waker: &Waker,
    ) -> Option<Vec<Letter>> {
        let at = self.position(topic)?;
        let t = &mut self.topics[at].1;
        let waiting = t.waiting.get_mut(step_id)?;
        match waiting.handed.take() {
            Some(letter) => {
                t.waiting.remove(step_id);
                let mut letters = vec![letter];
                while letters.len() < max {
                    let Some((number, payload)) = t.letters.pop_first() else {
                        break;
                    };
                    letters.push(Letter { number, payload });
                }
                if t.letters.is_empty() && t.waiting.is_empty() {
                    // Nothing left in it: a workflow that moves on to other topics
                    // keeps none of those it is done with.
                    self.topics.swap_remove(at);
                }
                Some(letters)
            }
            None => {
                waiting.waker = Some(waker.clone());
                None
            }
        }
    }

    /// Takes `step_id` out of the queue, giving back a letter handed to it.
    fn leave(&mut self, topic: &str, step_id: u64) -> Vec<Waker> {
        let Some(t) = self.topic_mut(topic) else {
            return Vec::new();
        };
        let Some(waiting) = t.waiting.remove(step_id) else {
            return Vec::new();
        };
        if let Some(letter) = waiting.handed {
            t.letters.insert(letter.number, letter.payload);
        }
        self.dispatch(topic)
    }
}

impl WorkflowState {
    /// Runs `f` on the mailbox, loading it from the journal first if needed; wakes whom
    /// `f` says once the borrow is released.
    fn with_mailbox<R>(
        &self,
        core: Option<&Core>,
        f: impl FnOnce(&mut Mailbox) -> (R, Vec<Waker>),
    ) -> Option<R> {
        let (result, wake) = {
            let mut slot = self.mailbox.borrow_mut();
            if slot.is_none() {
                let core = core?;
                match core.store.messages(&self.id) {
                    Ok(messages) => *slot = Some(Box::new(Mailbox::new(messages))),
                    Err(err) => {
                        drop(slot);
                        self.fail(err.into());
                        return None;
                    }
                }
            }
            let mailbox = slot.as_mut()?;
            f(mailbox)
        };
        for waker in wake {
            waker.wake();
        }
        Some(result)
    }

    /// Messages another worker committed for this workflow: if its mailbox is loaded,
    /// the journal's are read again and the new ones put in (an unloaded mailbox reads
    /// them all when it loads).
    pub(crate) fn mail_committed_elsewhere(&self, core: &Core) {
        if self.mailbox.borrow().is_none() {
            return;
        }
        match core.store.messages(&self.id) {
            Ok(messages) => {
                for m in messages {
                    let letter = Letter {
                        number: m.number,
                        payload: m.payload,
                    };
                    self.with_mailbox(None, |mailbox| ((), mailbox.put(&m.topic, letter)));
                }
            }
            Err(err) => self.fail(err.into()),
        }
    }

    /// A message committed for this workflow: into the mailbox if it is loaded (else the
    /// journal has it for when it is).
    pub(crate) fn letter_arrived(&self, topic: &str, letter: Letter) {
        self.with_mailbox(None, |m| ((), m.put(topic, letter)));
    }

    /// A client's message staged for the next commit: into the mailbox now, loading it
    /// first if needed (the journal does not have the message yet, so a later load
    /// would miss it).
    pub(crate) fn letter_staged(&self, core: &Core, topic: &str, letter: Letter) {
        self.with_mailbox(Some(core), |m| ((), m.put(topic, letter)));
    }

    /// Messages a `recv` took but whose commit never took the `recv`: back to their
    /// places (by number) in their topic.
    pub(crate) fn give_back(&self, topic: &str, letters: Vec<Letter>) {
        self.with_mailbox(None, |m| {
            let mut wake = Vec::new();
            for letter in letters {
                wake.extend(m.put_back(topic, letter));
            }
            ((), wake)
        });
    }

    /// Whether step `step_id`'s future still exists.
    pub(crate) fn step_alive(&self, step_id: u64) -> bool {
        self.steps.borrow().get(step_id).is_some()
    }
}

/// The parts of a receipt (`recv`, `recv_many`): its step id and body, and the future
/// to await before the receipt step (its deadline, and its place in the queue, which it
/// leaves when dropped).
struct Receipt {
    id: u64,
    body: Body,
    wait: futures::future::LocalBoxFuture<'static, ()>,
    /// Held until the receipt resolves or is dropped (`None` for a recorded receipt).
    leave: Option<LeaveOnDrop>,
}

/// Why a `send` was refused, as recorded.
#[derive(Serialize, Deserialize)]
enum SendRefused {
    UnknownDestination,
}

/// Leaves the topic's queue when a `recv` is dropped, whoever drops it.
struct LeaveOnDrop {
    wf: Rc<WorkflowState>,
    topic: Rc<str>,
    step_id: u64,
}

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        let (topic, step_id) = (&self.topic, self.step_id);
        self.wf
            .with_mailbox(None, |m| ((), m.leave(topic, step_id)));
    }
}

impl Ctx {
    /// Sends `message` to workflow `destination` under `topic`, exactly once: the
    /// message and this step's record are committed together, and a replay sends
    /// nothing. Takes one step id at the call.
    ///
    /// The destination must exist (started, here or in the journal, finished or not):
    /// else [`Error::UnknownDestination`], recorded like any outcome. A message to a
    /// workflow that is not running waits in the journal for its `recv`.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    ///
    /// async fn pinger(ctx: Ctx, to: String) -> Result<(), String> {
    ///     ctx.send(&to, "ping", 7u32).await.map_err(|e| e.to_string())
    /// }
    /// async fn ponger(ctx: Ctx, _: ()) -> Result<Option<u32>, String> {
    ///     Ok(ctx.recv::<u32>("ping", Duration::from_secs(60)).await)
    /// }
    /// let rt = Runtime::builder().temporary()
    ///     .register("pinger", pinger).register("ponger", ponger).build()?;
    /// let pong = rt.start::<_, Option<u32>, String>("ponger", "pong", ())?;
    /// let ping = rt.start::<_, (), String>("pinger", "ping", "pong".to_string())?;
    /// assert_eq!(rt.block_on(ping.result())?, Ok(()));
    /// assert_eq!(rt.block_on(pong.result())?, Ok(Some(7)));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn send<M>(
        &self,
        destination: &str,
        topic: &str,
        message: M,
    ) -> impl Future<Output = Result<(), Error>> + 'static
    where
        M: Serialize + DeserializeOwned + 'static,
    {
        let id = self.wf.create_step(SEND);
        let payload = codec::encode(fingerprint::of::<M>(), &message);
        let destination = destination.to_string();
        // A destination or topic too long for the journal stops this workflow alone,
        // before anything of the send is committed.
        let keys =
            crate::core::check_key(&destination).and_then(|()| crate::core::check_key(topic));
        let message = match keys.and_then(|()| {
            payload.map_err(|detail| Error::Encode {
                workflow_id: self.wf.id.clone(),
                what: format!("the message of step {id} (send to {destination:?})"),
                detail,
            })
        }) {
            Ok(payload) => Some(Message {
                destination: destination.clone(),
                topic: topic.to_string(),
                number: 0,
                payload,
                sent_ms: 0,
                idempotency_key: None,
            }),
            Err(err) => {
                self.wf.fail(err);
                None
            }
        };
        let core = Rc::clone(&self.core);
        let wf = Rc::clone(&self.wf);
        let body: Body = Box::new(move || {
            async move {
                let Some(message) = message else {
                    return std::future::pending().await;
                };
                let exists = match core.workflow_exists(&message.destination) {
                    Ok(exists) => exists,
                    Err(err) => {
                        wf.fail(err);
                        return std::future::pending().await;
                    }
                };
                if exists {
                    BodyOutput::new(crate::step::encode_result::<(), SendRefused>(&Ok(())))
                        .with_effect(Effect::Send(Box::new(message)))
                } else {
                    BodyOutput::new(crate::step::encode_result::<(), SendRefused>(&Err(
                        SendRefused::UnknownDestination,
                    )))
                }
            }
            .boxed_local()
        });
        let step: Step<(), SendRefused> = Step::new(self.clone(), id, body);
        async move {
            step.await.map_err(
                |SendRefused::UnknownDestination| Error::UnknownDestination {
                    workflow_id: destination,
                },
            )
        }
    }

    /// Receives the oldest unconsumed message of `topic` sent to this workflow, or
    /// `None` once `timeout` has passed (a durable deadline: after a restart only the
    /// remainder is waited; `Duration::MAX` waits forever, and records no deadline).
    ///
    /// Takes two step ids at the call. Taking the message and recording what was
    /// received are one commit: exactly one `recv` gets each message, and a replay
    /// returns the same message or the same `None`. Several `recv`s pending on one topic
    /// get messages in call-site order. A message of another type than `T` stops the
    /// workflow with [`Error::TypeMismatch`].
    ///
    /// It works as a `select!` arm. A message belongs to the `recv` whose record holds
    /// it: a `recv` future dropped before then gives its message back to the head of the
    /// topic, but one that still exists keeps it, awaited or not. So drop a losing
    /// `recv` when the `select!` is decided (a `select!` over futures pinned outside it
    /// keeps them until they go out of scope).
    ///
    /// ```
    /// use ordo::{Clock, Ctx, Runtime};
    /// use std::time::Duration;
    ///
    /// async fn approval(ctx: Ctx, _: ()) -> Result<String, String> {
    ///     match ctx.recv::<bool>("approve", Duration::from_secs(48 * 3600)).await {
    ///         Some(true) => Ok("approved".into()),
    ///         Some(false) => Ok("rejected".into()),
    ///         None => Ok("timed out".into()),
    ///     }
    /// }
    /// // Virtual time: the 48 hours pass at once, nobody sends anything.
    /// let rt = Runtime::builder().temporary().clock(Clock::Virtual)
    ///     .register("approval", approval).build()?;
    /// let handle = rt.start::<_, String, String>("approval", "a-1", ())?;
    /// assert_eq!(rt.block_on(handle.result())?, Ok("timed out".to_string()));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn recv<T>(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> impl Future<Output = Option<T>> + 'static
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        let receipt = self.receipt(topic, timeout, 1, |letters| {
            letters.first().map_or_else(
                || crate::step::encode_result::<(), ()>(&Err(())),
                |letter| Ok(Outcome::Ok(letter.payload.clone())),
            )
        });
        let received: Step<T, ()> = Step::new(self.clone(), receipt.id, receipt.body).in_place();
        let (wait, leave) = (receipt.wait, receipt.leave);
        async move {
            let _leave = leave;
            wait.await;
            received.await.ok()
        }
    }

    /// Receives up to `max` messages of `topic` at once, oldest first: at least one,
    /// waiting for it up to `timeout` like [`Ctx::recv`] (an empty `Vec` at the
    /// deadline), and then every other message already there, up to `max`. One step,
    /// one record for them all: a workflow draining a busy topic takes many messages
    /// per commit instead of one. `max` of 0 counts as 1.
    ///
    /// ```
    /// use ordo::{Ctx, Runtime};
    /// use std::time::Duration;
    ///
    /// async fn totals(ctx: Ctx, n: usize) -> Result<u64, String> {
    ///     let mut total = 0;
    ///     let mut seen = 0;
    ///     while seen < n {
    ///         let batch = ctx.recv_many::<u64>("amounts", 100, Duration::from_secs(60)).await;
    ///         if batch.is_empty() { return Err("timed out".into()); }
    ///         seen += batch.len();
    ///         total += batch.iter().sum::<u64>();
    ///     }
    ///     Ok(total)
    /// }
    /// let rt = Runtime::builder().temporary().register("totals", totals).build()?;
    /// let handle = rt.start::<_, u64, String>("totals", "t-1", 3usize)?;
    /// let client = rt.client();
    /// for amount in [5u64, 10, 20] {
    ///     rt.block_on(client.send("t-1", "amounts", amount))?;
    /// }
    /// assert_eq!(rt.block_on(handle.result())?, Ok(35));
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn recv_many<T>(
        &self,
        topic: &str,
        max: usize,
        timeout: Duration,
    ) -> impl Future<Output = Vec<T>> + 'static
    where
        T: Serialize + DeserializeOwned + 'static,
    {
        let receipt = self.receipt(topic, timeout, max.max(1), |letters| {
            let payloads: Vec<&[u8]> = letters.iter().map(|l| l.payload.as_slice()).collect();
            codec::encode(fingerprint::of::<Vec<Vec<u8>>>(), &payloads).map(Outcome::Ok)
        });
        let received: Step<Vec<Vec<u8>>, Never> =
            Step::new(self.clone(), receipt.id, receipt.body).in_place();
        let (wait, leave) = (receipt.wait, receipt.leave);
        let (wf, core) = (Rc::clone(&self.wf), Rc::clone(&self.core));
        async move {
            let _leave = leave;
            wait.await;
            let Ok(payloads) = received.await;
            let key = fingerprint::of::<T>();
            let mut out = Vec::with_capacity(payloads.len());
            for payload in payloads {
                match codec::decode::<T>(key, &payload) {
                    Ok(value) => out.push(value),
                    Err(err) => {
                        let what = "a message received by recv_many".to_string();
                        wf.fail(codec::type_error(&*core.store, &wf.id, what, key, err));
                        return std::future::pending().await;
                    }
                }
            }
            out
        }
    }

    /// What `recv` and `recv_many` share: the two step ids (rule 1), the place in the
    /// topic's queue, the durable deadline, and the receipt's body, which takes the
    /// letter handed to it and up to `max - 1` more, and records them with `encode`.
    fn receipt(
        &self,
        topic: &str,
        timeout: Duration,
        max: usize,
        encode: fn(&[Letter]) -> Result<Outcome, String>,
    ) -> Receipt {
        let until_id = self.wf.create_step(RECV_UNTIL);
        let recv_id = self.wf.create_step(RECV);
        let topic: Rc<str> = Rc::from(topic);
        // A recorded `recv` already got what it will return; a live one takes its place
        // in the topic's queue now, in call-site order (rule 1).
        let guard = (!self.wf.step_recorded(recv_id)).then(|| {
            let t = Rc::clone(&topic);
            self.wf
                .with_mailbox(Some(&self.core), |m| ((), m.join(&t, recv_id)));
            LeaveOnDrop {
                wf: Rc::clone(&self.wf),
                topic: Rc::clone(&topic),
                step_id: recv_id,
            }
        });
        // Waiting forever records no deadline, which spares a commit per receipt.
        let deadline = self.deadline(until_id, timeout);
        let body: Body = {
            let (core, wf, at) = (
                Rc::clone(&self.core),
                Rc::clone(&self.wf),
                deadline.at.clone(),
            );
            Box::new(move || {
                async move {
                    let at = at.instant(&core);
                    let mut timer = pin!(async move {
                        match at {
                            Some(at) => ordo_executor::sleep_until(at).await,
                            None => std::future::pending::<()>().await,
                        }
                    });
                    let letters = futures::future::poll_fn(|cx| {
                        let taken = wf
                            .with_mailbox(Some(&core), |m| {
                                (m.take(&topic, recv_id, max, cx.waker()), Vec::new())
                            })
                            .flatten();
                        if let Some(letters) = taken {
                            return Poll::Ready(letters);
                        }
                        if timer.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Vec::new());
                        }
                        Poll::Pending
                    })
                    .await;
                    if letters.is_empty() {
                        wf.with_mailbox(None, |m| ((), m.leave(&topic, recv_id)));
                        return BodyOutput::new(encode(&letters));
                    }
                    BodyOutput::new(encode(&letters))
                        .with_effect(Effect::Consume { topic, letters })
                }
                .boxed_local()
            })
        };
        let wait = deadline.recorded().boxed_local();
        Receipt {
            id: recv_id,
            body,
            wait,
            leave: guard,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(number: u64) -> Letter {
        Letter {
            number,
            payload: vec![u8::try_from(number % 256).unwrap_or(0)],
        }
    }

    #[test]
    fn receivers_get_letters_in_call_site_order_whatever_order_they_joined_in() {
        let mut mailbox = Mailbox::default();
        for step_id in [7, 3, 5] {
            mailbox.join("t", step_id);
        }
        for number in [10, 11, 12] {
            mailbox.put("t", letter(number));
        }
        let waker = futures::task::noop_waker();
        assert_eq!(mailbox.take("t", 3, 1, &waker), Some(vec![letter(10)]));
        assert_eq!(mailbox.take("t", 5, 1, &waker), Some(vec![letter(11)]));
        assert_eq!(mailbox.take("t", 7, 1, &waker), Some(vec![letter(12)]));
    }

    #[test]
    fn a_topic_with_nothing_left_in_it_is_dropped() {
        let mut mailbox = Mailbox::default();
        let waker = futures::task::noop_waker();
        // A workflow that receives once on each of many topics keeps none of them.
        for step_id in 0..100 {
            let topic = format!("t{step_id}");
            mailbox.join(&topic, step_id);
            mailbox.put(&topic, letter(step_id));
            assert_eq!(
                mailbox.take(&topic, step_id, 1, &waker),
                Some(vec![letter(step_id)])
            );
        }
        assert!(mailbox.topics.is_empty());
        // A receiver that leaves takes its topic with it; a message left waiting keeps
        // its topic until it is taken.
        mailbox.join("gone", 1);
        mailbox.leave("gone", 1);
        mailbox.put("kept", letter(500));
        assert_eq!(mailbox.topics.len(), 1);
        mailbox.join("kept", 2);
        assert_eq!(mailbox.take("kept", 2, 5, &waker), Some(vec![letter(500)]));
        assert!(mailbox.topics.is_empty());
    }
}
