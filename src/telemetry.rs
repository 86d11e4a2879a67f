//! Observability: `tracing` spans for workflow runs and step bodies, the W3C trace
//! context a workflow was started with, and metrics through the `metrics` facade.
//!
//! ordo installs nothing: spans go to whatever `tracing` subscriber the program set (a
//! `tracing-opentelemetry` layer, a log formatter...), metrics to whatever `metrics`
//! recorder it installed (a Prometheus exporter...). With neither, the cost is a few
//! cached checks per step: no span is built, no string allocated.
//!
//! # Spans
//!
//! | span name | one per | parent |
//! |---|---|---|
//! | `ordo.workflow` | run of a workflow in this process: a live start, a resumption by `recover()` (replaying, then live), each run of a continue-as-new | none (a root; see "Trace context") |
//! | `ordo.step` | execution of a step body (`step`, `step_with`, and the internal steps of `sleep`, `now`, `random`) | its run's `ordo.workflow` |
//! | `ordo.attempt` | attempt of a [`step_with`](crate::Ctx::step_with) body | its `ordo.step` |
//!
//! A replayed step's body does not run, so it has **no** `ordo.step` span: its recorded
//! outcome is delivered to the run as a `TRACE` event (`step delivered`,
//! `step.replayed = true`) inside the `ordo.workflow` span. The run span's
//! `workflow.replaying` says whether the run began by replaying recorded steps.
//!
//! Retries are visible twice: the `ordo.step` span of a `step_with` covers every attempt
//! and the backoff between them, and records `step.attempts` at its end; each attempt is
//! its own `ordo.attempt` child span with `step.attempt` (1, 2, ...) and its outcome. A
//! plain `step` has one attempt and no `ordo.attempt` span.
//!
//! Fields (OpenTelemetry's names where the `tracing-opentelemetry` bridge reads them:
//! `otel.name` becomes the span's name, `otel.status_code` its status):
//!
//! | field | on | value |
//! |---|---|---|
//! | `otel.name` | all | `workflow <name>`, `step <name>`, `attempt <n>` |
//! | `workflow.id`, `workflow.name` | workflow, step | the workflow's id and registered name |
//! | `workflow.replaying` | workflow | `true` when the run began by replaying recorded steps |
//! | `workflow.recovery_attempt` | workflow | recovery attempts counted for this run (0 for a live start) |
//! | `workflow.outcome` | workflow | `succeeded`, `failed` (returned `Err`), `error` (the runtime stopped it: see `error.type`), `continued` (continue-as-new), `interrupted` (the runtime was dropped while it ran; it stays pending) |
//! | `step.id`, `step.name` | step | the step's call-site number and name |
//! | `step.attempts` | step | attempts its body took, recorded at its end |
//! | `step.attempt` | attempt | this attempt's number, from 1 |
//! | `step.outcome` | step, attempt | `ok`, `err`, `panicked`, `cancelled` (dropped unfinished: a `select!` loser, a stopped workflow), `error` (its outcome could not be encoded) |
//! | `otel.status_code` | all | `OK` or `ERROR` once known; unset for `cancelled` and `interrupted` |
//! | `error.type` | all, on `ERROR` | the Rust type of the step's or workflow's error (`alloc::string::String`...), `panic`, `encode`, or the name of the runtime's [`Error`] variant (`NonDeterminism`, `Cancelled`, `Stopped`...) |
//! | `trace_id`, `parent_span_id`, `traceparent` | workflow | the recorded [`TraceParent`], if the workflow was started with one |
//!
//! # Trace context
//!
//! [`Runtime::start_traced`](crate::Runtime::start_traced) takes the caller's W3C
//! `traceparent` header, checks it ([`TraceParent::parse`]) and journals it in the same
//! commit as the start (an optional record of its own, so a start without one costs
//! nothing more). Every run of that workflow, the first one and any run recovered after a
//! crash, in this process or another, carries it in its `ordo.workflow` span's
//! `trace_id`, `parent_span_id` and `traceparent` fields, so the whole workflow joins the
//! caller's trace. Runs are root spans: a bridge to OpenTelemetry sets the remote parent
//! from these fields (with `tracing-opentelemetry`, `span.set_parent(...)` on the
//! extracted context, e.g. in a layer's `on_new_span`).
//!
//! # Metrics
//!
//! | name | kind | what |
//! |---|---|---|
//! | `ordo_workflows_started_total` | counter, label `workflow` | new workflows whose start was committed (children, dispatched queued and debounced workflows included) |
//! | `ordo_workflows_finished_total` | counter, labels `workflow`, `status` (`succeeded`, `failed`, `cancelled`) | workflows whose final status was committed |
//! | `ordo_workflows_pending` | gauge | workflow runs live in this process (launched, not yet finished or stopped) |
//! | `ordo_steps_executed_total` | counter | outcomes delivered from bodies that ran here: [`Metrics::steps_executed`](crate::Metrics::steps_executed) |
//! | `ordo_steps_replayed_total` | counter | outcomes delivered from the journal: [`Metrics::steps_replayed`](crate::Metrics::steps_replayed) |
//! | `ordo_step_duration_seconds` | histogram, label `outcome` (`ok`, `err`) | a step body's run time on the runtime's clock, retries and backoff included |
//! | `ordo_commits_total` | counter | group commits: [`Metrics::commits`](crate::Metrics::commits) |
//! | `ordo_completions_committed_total` | counter | completions those commits wrote: [`Metrics::completions_committed`](crate::Metrics::completions_committed) |
//! | `ordo_commit_size` | histogram | completions in each group commit (its sum is `ordo_completions_committed_total`) |
//! | `ordo_commit_duration_seconds` | histogram | wall time of each group commit's write and durability point |
//! | `ordo_recovery_duration_seconds` | histogram | wall time of each [`Runtime::recover`](crate::Runtime::recover) |
//!
//! The four counters that [`Runtime::metrics`](crate::Runtime::metrics) also returns
//! are incremented at the very place those counters are, so they always agree. Call
//! [`describe_metrics`] once after installing a recorder to give each metric its unit
//! and help text.
//!
//! A Prometheus exporter is one line with the `metrics-exporter-prometheus` crate
//! (`PrometheusBuilder::new().install()?`). So as not to add an HTTP stack to this
//! workspace's build, the example below renders the Prometheus text format itself from a
//! small hand-written recorder; any `metrics::Recorder` gets the same calls:
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::{Arc, Mutex};
//! use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
//! use ordo::{Ctx, Runtime};
//!
//! /// Counters only, enough for a scrape of `ordo_*_total`.
//! #[derive(Default)]
//! struct Prometheus(Mutex<BTreeMap<String, Arc<AtomicU64>>>);
//!
//! struct Count(Arc<AtomicU64>);
//! impl CounterFn for Count {
//!     fn increment(&self, n: u64) { self.0.fetch_add(n, Ordering::Relaxed); }
//!     fn absolute(&self, n: u64) { self.0.store(n, Ordering::Relaxed); }
//! }
//!
//! impl Recorder for Prometheus {
//!     fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
//!     fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
//!     fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
//!     fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
//!         let labels: Vec<String> =
//!             key.labels().map(|l| format!("{}={:?}", l.key(), l.value())).collect();
//!         let line = format!("{}{{{}}}", key.name(), labels.join(","));
//!         let cell = self.0.lock().unwrap().entry(line).or_default().clone();
//!         Counter::from_arc(Arc::new(Count(cell)))
//!     }
//!     fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge { Gauge::noop() }
//!     fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram { Histogram::noop() }
//! }
//!
//! async fn greet(ctx: Ctx, name: String) -> Result<String, String> {
//!     ctx.step("greet", move || async move { Ok::<_, String>(format!("hello {name}")) }).await
//! }
//!
//! let prometheus = Prometheus::default();
//! metrics::with_local_recorder(&prometheus, || {
//!     let rt = Runtime::builder().temporary().register("greet", greet).build()?;
//!     let handle = rt.start::<_, String, String>("greet", "g-1", "ordo".to_string())?;
//!     rt.block_on(handle.result())?.expect("greets");
//!     Ok::<(), ordo::Error>(())
//! })?;
//! let scrape: String = prometheus.0.lock().unwrap().iter()
//!     .map(|(line, n)| format!("{line} {}\n", n.load(Ordering::Relaxed)))
//!     .collect();
//! assert!(scrape.contains("ordo_steps_executed_total{} 1\n"));
//! assert!(scrape.contains(r#"ordo_workflows_finished_total{workflow="greet",status="succeeded"} 1"#));
//! # Ok::<(), ordo::Error>(())
//! ```

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics::{counter, gauge, histogram, Unit};
use ordo_journal::{Batch, Outcome, Status, Store};
use tracing::field::Empty;
use tracing::{Instrument, Level, Span};

use crate::core::{Metrics, PendingStart};
use crate::error::Error;
use crate::registry::Registration;
use crate::step::BodyOutput;
use crate::workflow::{Phase, WorkflowState};

/// A checked W3C trace context (`traceparent` header): version, trace id, parent span id
/// and flags.
///
/// ```
/// use ordo::TraceParent;
///
/// let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
/// assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(tp.parent_id(), "00f067aa0ba902b7");
/// assert!(tp.sampled());
/// assert!(TraceParent::parse("not a traceparent").is_err());
/// # Ok::<(), ordo::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The header as given (checked, so its fixed-width fields can be sliced out).
    header: String,
}

impl TraceParent {
    /// Checks `header` against the W3C Trace Context format: `version-traceid-parentid-
    /// flags` in lowercase hex, 2, 32, 16 and 2 digits; version `ff` and all-zero ids are
    /// invalid. A version after `00` may carry more fields after a `-`, which are kept.
    ///
    /// ```
    /// use ordo::{Error, TraceParent};
    /// let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    /// assert!(matches!(TraceParent::parse(zero_trace), Err(Error::InvalidTraceParent { .. })));
    /// assert!(TraceParent::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_err());
    /// ```
    pub fn parse(header: &str) -> Result<TraceParent, Error> {
        let invalid = |reason| Error::InvalidTraceParent {
            traceparent: header.chars().take(128).collect(),
            reason,
        };
        let bytes = header.as_bytes();
        if bytes.len() < 55 {
            return Err(invalid("shorter than the 55 characters of version 00"));
        }
        let is_hex = |range: std::ops::Range<usize>| {
            bytes[range]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        };
        let is_zero = |range: std::ops::Range<usize>| bytes[range].iter().all(|&b| b == b'0');
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(invalid("fields are not separated by '-' at 2, 35 and 52"));
        }
        if !(is_hex(0..2) && is_hex(3..35) && is_hex(36..52) && is_hex(53..55)) {
            return Err(invalid("a field is not lowercase hex"));
        }
        match &header[..2] {
            "ff" => return Err(invalid("version ff is invalid")),
            "00" if bytes.len() != 55 => {
                return Err(invalid("version 00 has exactly 55 characters"))
            }
            _ if bytes.len() > 55 && bytes[55] != b'-' => {
                return Err(invalid("extra fields of a later version must follow a '-'"))
            }
            _ => {}
        }
        if is_zero(3..35) {
            return Err(invalid("the trace id is all zeros"));
        }
        if is_zero(36..52) {
            return Err(invalid("the parent id is all zeros"));
        }
        Ok(TraceParent {
            header: header.to_owned(),
        })
    }

    /// The trace id: 32 lowercase hex digits.
    ///
    /// ```
    /// let tp = ordo::TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")?;
    /// assert_eq!(tp.trace_id(), "0af7651916cd43dd8448eb211c80319c");
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn trace_id(&self) -> &str {
        &self.header[3..35]
    }

    /// The caller's span id (the parent of the workflow's spans): 16 lowercase hex digits.
    ///
    /// ```
    /// let tp = ordo::TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")?;
    /// assert_eq!(tp.parent_id(), "b7ad6b7169203331");
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn parent_id(&self) -> &str {
        &self.header[36..52]
    }

    /// Whether the caller sampled the trace (flag bit 0).
    ///
    /// ```
    /// let tp = ordo::TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")?;
    /// assert!(!tp.sampled());
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(&self.header[53..55], 16).is_ok_and(|flags| flags & 1 == 1)
    }

    /// The header, as given.
    ///
    /// ```
    /// let header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    /// assert_eq!(ordo::TraceParent::parse(header)?.as_str(), header);
    /// # Ok::<(), ordo::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.header
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header)
    }
}

impl FromStr for TraceParent {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        TraceParent::parse(s)
    }
}

/// Gives every `ordo_*` metric its unit and help text, in the recorder installed now
/// (exporters such as Prometheus's print them). Optional.
///
/// ```
/// // With no recorder installed this does nothing.
/// ordo::telemetry::describe_metrics();
/// ```
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "ordo_workflows_started_total",
        "New workflows whose start was committed."
    );
    describe_counter!(
        "ordo_workflows_finished_total",
        "Workflows whose final status (succeeded, failed, cancelled) was committed."
    );
    describe_gauge!(
        "ordo_workflows_pending",
        "Workflow runs live in this process: launched, not yet finished or stopped."
    );
    describe_counter!(
        "ordo_steps_executed_total",
        "Step outcomes delivered from bodies that ran in this process."
    );
    describe_counter!(
        "ordo_steps_replayed_total",
        "Step outcomes delivered from the journal (replay)."
    );
    describe_histogram!(
        "ordo_step_duration_seconds",
        Unit::Seconds,
        "Run time of a step body, retries and backoff included."
    );
    describe_counter!("ordo_commits_total", "Group commits (durability points).");
    describe_counter!(
        "ordo_completions_committed_total",
        "Step completions written by group commits."
    );
    describe_histogram!(
        "ordo_commit_size",
        Unit::Count,
        "Step completions in each group commit."
    );
    describe_histogram!(
        "ordo_commit_duration_seconds",
        Unit::Seconds,
        "Wall time of a group commit's write and durability point."
    );
    describe_histogram!(
        "ordo_recovery_duration_seconds",
        Unit::Seconds,
        "Wall time of a recover() call."
    );
}

/// What a workflow's state keeps for telemetry: boxed and absent for the common case (no
/// trace context, no subscriber), so a million parked workflows pay one pointer each.
#[derive(Default)]
pub(crate) struct RunTelemetry(RefCell<Option<Box<RunTrace>>>);

#[derive(Default)]
struct RunTrace {
    /// The trace context the workflow was started with, written with its start.
    traceparent: Option<TraceParent>,
    /// The run's span while it runs, the parent of its step spans (which are spawned as
    /// tasks of their own, so they cannot inherit it from the current span).
    span: Option<Span>,
}

impl RunTelemetry {
    fn with(&self, f: impl FnOnce(&mut RunTrace)) {
        f(self.0.borrow_mut().get_or_insert_with(Box::default));
    }

    /// Sets the trace context of a new start (before its commit).
    pub(crate) fn set_traceparent(&self, traceparent: Option<TraceParent>) {
        if let Some(traceparent) = traceparent {
            self.with(|trace| trace.traceparent = Some(traceparent));
        }
    }

    fn traceparent(&self) -> Option<TraceParent> {
        self.0.borrow().as_ref()?.traceparent.clone()
    }

    fn span_id(&self) -> Option<tracing::Id> {
        self.0.borrow().as_ref()?.span.as_ref()?.id()
    }

    fn take_span(&self) -> Option<Span> {
        self.0.borrow_mut().as_mut()?.span.take()
    }
}

/// Adds a new start's trace context, if it has one, to the batch that commits the start.
pub(crate) fn put_trace_context(batch: &mut Batch, wf: &WorkflowState) {
    if let Some(traceparent) = wf.telemetry.traceparent() {
        batch.put_trace_context(&wf.id, traceparent.header);
    }
}

/// Loads the trace context recorded for a workflow being resumed. A recorded value that
/// no longer parses is dropped (with a warning): telemetry never keeps a workflow from
/// running.
pub(crate) fn load_trace_context(store: &dyn Store, wf: &WorkflowState) -> Result<(), Error> {
    if let Some(header) = store.trace_context(&wf.id)? {
        match TraceParent::parse(&header) {
            Ok(traceparent) => wf.telemetry.set_traceparent(Some(traceparent)),
            Err(err) => {
                tracing::warn!(workflow.id = %wf.id, "recorded trace context ignored: {err}")
            }
        }
    }
    Ok(())
}

/// The next run of a workflow that continues as new keeps its trace context.
pub(crate) fn continue_trace(from: &WorkflowState, next: &WorkflowState) {
    next.telemetry.set_traceparent(from.telemetry.traceparent());
}

/// Wraps a run's root future: its span, its outcome, the pending gauge.
pub(crate) fn run<F>(wf: &Rc<WorkflowState>, registration: &Registration, fut: F) -> Run<F> {
    let traceparent = wf.telemetry.traceparent();
    let span = tracing::info_span!(
        parent: None,
        "ordo.workflow",
        otel.name = %format_args!("workflow {}", wf.name),
        workflow.id = %wf.id,
        workflow.name = %wf.name,
        workflow.replaying = wf.is_replaying(),
        workflow.recovery_attempt = wf.recovery_attempts.get(),
        workflow.outcome = Empty,
        otel.status_code = Empty,
        error.type = Empty,
        trace_id = traceparent.as_ref().map(TraceParent::trace_id),
        parent_span_id = traceparent.as_ref().map(TraceParent::parent_id),
        traceparent = traceparent.as_ref().map(TraceParent::as_str),
    );
    if !span.is_disabled() {
        wf.telemetry.with(|trace| trace.span = Some(span.clone()));
    }
    gauge!("ordo_workflows_pending").increment(1.0);
    Run {
        fut,
        span,
        wf: Rc::clone(wf),
        error_type: registration.error.name,
        ended: false,
    }
}

/// A run's root future inside its span. Records how the run ended; keeps the
/// `ordo_workflows_pending` gauge up from its launch to its drop.
pub(crate) struct Run<F> {
    fut: F,
    span: Span,
    wf: Rc<WorkflowState>,
    /// The workflow's registered error type, the `error.type` of a run that returned `Err`.
    error_type: &'static str,
    ended: bool,
}

impl<F: Future<Output = Result<Outcome, Error>> + Unpin> Future for Run<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let guard = PanicGuard {
            span: &this.span,
            ended: &mut this.ended,
            outcome: "workflow.outcome",
        };
        let poll = Pin::new(&mut this.fut).poll(cx);
        guard.disarm();
        if poll.is_pending() {
            // The root waits: the place to give back what a burst of steps grew.
            this.wf.compact_steps();
        }
        if let Poll::Ready(output) = &poll {
            this.ended = true;
            match output {
                Ok(Outcome::Ok(_)) => end(&this.span, "workflow.outcome", "succeeded", None),
                Ok(Outcome::Err(_)) => {
                    end(
                        &this.span,
                        "workflow.outcome",
                        "failed",
                        Some(this.error_type),
                    );
                }
                Err(err) => end(
                    &this.span,
                    "workflow.outcome",
                    "error",
                    Some(error_kind(err)),
                ),
            }
        }
        poll
    }
}

impl<F> Drop for Run<F> {
    fn drop(&mut self) {
        if !self.ended {
            match self.wf.failure() {
                Some(err) => end(
                    &self.span,
                    "workflow.outcome",
                    "error",
                    Some(error_kind(&err)),
                ),
                None if self.wf.phase.get() == Phase::Done => {
                    end(&self.span, "workflow.outcome", "continued", None);
                }
                None => {
                    self.span.record("workflow.outcome", "interrupted");
                }
            }
        }
        // The run is over: its span closes once its step bodies are gone, not when the
        // last handle on the workflow is dropped.
        drop(self.wf.telemetry.take_span());
        gauge!("ordo_workflows_pending").decrement(1.0);
    }
}

/// Records an outcome field, `otel.status_code` and (for errors) `error.type`.
fn end(span: &Span, field: &str, outcome: &str, error_type: Option<&str>) {
    if span.is_disabled() {
        return;
    }
    span.record(field, outcome);
    match error_type {
        None => span.record("otel.status_code", "OK"),
        Some(error_type) => span
            .record("otel.status_code", "ERROR")
            .record("error.type", error_type),
    };
}

/// Records `panicked` when a poll unwinds (the caught panic is reported later, but the
/// span must say so before the future is dropped).
struct PanicGuard<'a> {
    span: &'a Span,
    ended: &'a mut bool,
    outcome: &'static str,
}

impl PanicGuard<'_> {
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        *self.ended = true;
        end(self.span, self.outcome, "panicked", Some("panic"));
    }
}

/// The name of an [`Error`] variant, for `error.type`.
fn error_kind(err: &Error) -> &'static str {
    match err {
        Error::Journal(_) => "Journal",
        Error::UnknownWorkflow { .. } => "UnknownWorkflow",
        Error::NotFound { .. } => "NotFound",
        Error::Conflict { .. } => "Conflict",
        Error::NonDeterminism { .. } => "NonDeterminism",
        Error::TypeMismatch { .. } => "TypeMismatch",
        Error::Encode { .. } => "Encode",
        Error::Panicked { .. } => "Panicked",
        Error::RecoveryExhausted { .. } => "RecoveryExhausted",
        Error::Cancelled { .. } => "Cancelled",
        Error::DeadlineExceeded { .. } => "DeadlineExceeded",
        Error::Stopped { .. } => "Stopped",
        Error::InvalidTraceParent { .. } => "InvalidTraceParent",
        Error::UnknownDestination { .. } => "UnknownDestination",
        Error::UnknownAwakeable { .. } => "UnknownAwakeable",
        Error::AwakeableResolved { .. } => "AwakeableResolved",
        Error::RuntimeGone => "RuntimeGone",
        Error::NotResumable { .. } => "NotResumable",
        Error::ForkPointOutOfRange { .. } => "ForkPointOutOfRange",
        Error::AlreadyExists { .. } => "AlreadyExists",
        Error::UnknownQueue { .. } => "UnknownQueue",
        Error::QueueOption { .. } => "QueueOption",
        Error::Duplicate { .. } => "Duplicate",
        Error::InvalidSchedule { .. } => "InvalidSchedule",
        Error::Dashboard { .. } => "Dashboard",
        Error::AdminSocket { .. } => "AdminSocket",
    }
}

/// Wraps a live step body (`E` is the step's error type): its span, its duration.
pub(crate) fn step_body<E, F>(
    wf: &WorkflowState,
    step_id: u64,
    name: &str,
    body: F,
) -> StepBody<F> {
    let span = tracing::info_span!(
        parent: wf.telemetry.span_id(),
        "ordo.step",
        otel.name = %format_args!("step {name}"),
        workflow.id = %wf.id,
        workflow.name = %wf.name,
        step.id = step_id,
        step.name = %name,
        step.attempts = Empty,
        step.outcome = Empty,
        otel.status_code = Empty,
        error.type = Empty,
    );
    StepBody {
        body,
        span,
        started: None,
        ended: false,
        error_type: std::any::type_name::<E>(),
    }
}

/// A step body inside its span, timed from its first poll.
pub(crate) struct StepBody<F> {
    body: F,
    span: Span,
    /// On the executor's clock: a virtual clock times virtual backoffs.
    started: Option<Instant>,
    ended: bool,
    error_type: &'static str,
}

impl<F: Future<Output = BodyOutput> + Unpin> Future for StepBody<F> {
    type Output = BodyOutput;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BodyOutput> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let started = *this.started.get_or_insert_with(ordo_executor::now);
        let guard = PanicGuard {
            span: &this.span,
            ended: &mut this.ended,
            outcome: "step.outcome",
        };
        let poll = Pin::new(&mut this.body).poll(cx);
        guard.disarm();
        if let Poll::Ready(output) = &poll {
            this.ended = true;
            let seconds = ordo_executor::now()
                .saturating_duration_since(started)
                .as_secs_f64();
            match &output.outcome {
                Ok(Outcome::Ok(_)) => {
                    histogram!("ordo_step_duration_seconds", "outcome" => "ok").record(seconds);
                    end(&this.span, "step.outcome", "ok", None);
                }
                Ok(Outcome::Err(_)) => {
                    histogram!("ordo_step_duration_seconds", "outcome" => "err").record(seconds);
                    end(&this.span, "step.outcome", "err", Some(this.error_type));
                }
                Err(_) => end(&this.span, "step.outcome", "error", Some("encode")),
            }
            this.span.record("step.attempts", output.attempts);
        }
        poll
    }
}

impl<F> Drop for StepBody<F> {
    fn drop(&mut self) {
        if !self.ended {
            self.span.record("step.outcome", "cancelled");
        }
    }
}

/// One attempt of a `step_with` body, in its own span under the step's.
pub(crate) async fn attempt<T, E, F>(attempt: u32, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let span = tracing::info_span!(
        "ordo.attempt",
        otel.name = %format_args!("attempt {attempt}"),
        step.attempt = attempt,
        step.outcome = Empty,
        otel.status_code = Empty,
        error.type = Empty,
    );
    let result = fut.instrument(span.clone()).await;
    match &result {
        Ok(_) => end(&span, "step.outcome", "ok", None),
        Err(_) => end(
            &span,
            "step.outcome",
            "err",
            Some(std::any::type_name::<E>()),
        ),
    }
    result
}

/// A step's outcome was delivered to its workflow (a `TRACE` event in the run's span).
pub(crate) fn step_delivered(
    wf: &WorkflowState,
    step_id: u64,
    name: &str,
    ok: bool,
    replayed: bool,
) {
    if tracing::enabled!(Level::TRACE) {
        tracing::trace!(
            parent: wf.telemetry.span_id(),
            workflow.id = %wf.id,
            step.id = step_id,
            step.name = %name,
            step.replayed = replayed,
            step.outcome = if ok { "ok" } else { "err" },
            "step delivered"
        );
    }
}

/// Counts what changed in the runtime's [`Metrics`]: called wherever they change, so
/// the `metrics` counters and `Runtime::metrics()` never disagree.
pub(crate) fn metrics_changed(before: &Metrics, after: &Metrics) {
    let delta = |a: u64, b: u64| b.saturating_sub(a);
    let commits = delta(before.commits, after.commits);
    if commits > 0 {
        counter!("ordo_commits_total").increment(commits);
    }
    let completions = delta(before.completions_committed, after.completions_committed);
    if completions > 0 {
        counter!("ordo_completions_committed_total").increment(completions);
    }
    let executed = delta(before.steps_executed, after.steps_executed);
    if executed > 0 {
        counter!("ordo_steps_executed_total").increment(executed);
    }
    let replayed = delta(before.steps_replayed, after.steps_replayed);
    if replayed > 0 {
        counter!("ordo_steps_replayed_total").increment(replayed);
    }
}

/// Times one group commit.
pub(crate) struct CommitTimer(Instant);

impl CommitTimer {
    /// Starts timing, right before the store commits.
    pub(crate) fn start() -> Self {
        CommitTimer(Instant::now())
    }

    /// The commit of `batch`, holding `starts`, is durable.
    /// `starts` are the commit's starts and resumptions (only new ones count), `launched`
    /// the workflows it starts on behalf of others: children, queued workflows
    /// dispatched, debounced ones.
    pub(crate) fn committed<'a>(
        self,
        batch: &Batch,
        starts: &'a [PendingStart],
        launched: impl IntoIterator<Item = &'a PendingStart>,
    ) {
        histogram!("ordo_commit_duration_seconds").record(self.0.elapsed().as_secs_f64());
        histogram!("ordo_commit_size").record(batch.completion_count() as f64);
        let new = starts.iter().filter(|start| start.is_new);
        // One increment per run of one workflow name (a burst of starts is mostly one
        // name): the counter's key is built, and its name copied, once per run, not once
        // per start.
        let mut run: Option<(&str, u64)> = None;
        for start in new.chain(launched) {
            match &mut run {
                Some((name, count)) if *name == start.wf.name => *count += 1,
                _ => {
                    if let Some((name, count)) = run.replace((&start.wf.name, 1)) {
                        started(name, count);
                    }
                }
            }
        }
        if let Some((name, count)) = run {
            started(name, count);
        }
    }
}

/// `count` workflows named `name` were started (their start records committed).
fn started(name: &str, count: u64) {
    counter!("ordo_workflows_started_total", "workflow" => name.to_owned()).increment(count);
}

/// A workflow's final status was committed.
pub(crate) fn workflow_finished(name: &str, status: Status) {
    counter!(
        "ordo_workflows_finished_total",
        "workflow" => name.to_owned(),
        "status" => status.as_str()
    )
    .increment(1);
}

/// A workflow's final record, of a run that returned `Ok` (`ok`) or `Err`, was
/// committed.
pub(crate) fn workflow_returned(name: &str, ok: bool) {
    let status = if ok {
        Status::Succeeded
    } else {
        Status::Failed
    };
    workflow_finished(name, status);
}

/// `recover()`, begun at `began`, resumed `resumed` workflows.
pub(crate) fn recovered(began: Instant, resumed: usize) {
    let seconds = began.elapsed().as_secs_f64();
    histogram!("ordo_recovery_duration_seconds").record(seconds);
    tracing::info!(resumed, seconds, "ordo recovered pending workflows");
}

/// A runtime on a shared journal took over workflows of workers that died.
pub(crate) fn took_over(resumed: usize) {
    counter!("ordo_workflows_taken_over_total").increment(resumed as u64);
    tracing::info!(resumed, "ordo took over workflows of a dead worker");
}
