//! Telemetry through the public API: the spans a `tracing` subscriber sees and the
//! metrics a `metrics` recorder sees, for a workflow with concurrent steps and a retried
//! step that crashes after its first commit and is recovered by a new runtime.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use ordo::{Clock, Ctx, Durability, Error, Metrics, RetryPolicy, RuntimeBuilder};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The tests of this file run one at a time. `tracing` caches each callsite's interest
/// globally; run in parallel, a callsite first reached by the metrics test (no
/// subscriber) while a span test was installing its scoped subscriber was sometimes
/// missed by that subscriber (seen for `ordo.attempt`, never when run one at a time).
/// A program's global subscriber, set once at startup, is not subject to this.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Three concurrent reservations, a charge that fails twice before it succeeds, a
/// shipment.
async fn order(ctx: Ctx, items: Vec<String>) -> Result<u64, String> {
    let holds = futures::future::join_all(items.into_iter().map(|item| {
        ctx.step("reserve", move || async move {
            ordo::executor::yield_now().await;
            Ok::<_, String>(item.len() as u64)
        })
    }))
    .await;
    let total: u64 = holds
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .sum();
    let mut tries = 0;
    let policy = RetryPolicy::new(5).backoff(Duration::from_secs(1), 2.0);
    let charged = ctx
        .step_with("charge", policy, move || {
            tries += 1;
            let attempt = tries;
            async move {
                if attempt < 3 {
                    Err(format!("card declined ({attempt})"))
                } else {
                    Ok(total * 100)
                }
            }
        })
        .await?;
    ctx.step("ship", move || async move { Ok::<_, String>(charged) })
        .await
}

/// Fails with its own error after one step.
async fn refuse(ctx: Ctx, _: ()) -> Result<(), String> {
    ctx.step("check", || async {
        Err::<(), _>("out of stock".to_string())
    })
    .await
}

fn items() -> Vec<String> {
    ["book", "pen", "ink"].map(String::from).to_vec()
}

fn builder(path: &Path) -> RuntimeBuilder {
    ordo_testkit::store::runtime(path)
        .durability(Durability::None)
        .clock(Clock::Virtual)
        .register("order", order)
        .register("refuse", refuse)
}

/// Process 1: starts `order-1` with the caller's trace context and dies right after the
/// commit of the three reservations (before the charge ran). Returns its counters.
fn crash_after_reservations(path: &Path) -> Metrics {
    let rt = builder(path)
        .halt_after_commits(1)
        .build()
        .expect("runtime");
    let handle = rt
        .start_traced::<_, u64, String>("order", "order-1", items(), TRACEPARENT)
        .expect("start");
    let stopped = rt.block_on(handle.result());
    assert!(matches!(stopped, Err(Error::Stopped { .. })), "{stopped:?}");
    rt.metrics()
}

/// Process 2: recovers `order-1` from the same journal and runs it to the end.
fn recover_and_finish(path: &Path) -> Metrics {
    let rt = builder(path).build().expect("runtime");
    let report = rt.recover().expect("recover");
    assert_eq!(report.resumed, ["order-1"]);
    let handle = rt.handle::<u64, String>("order-1").expect("handle");
    assert_eq!(rt.block_on(handle.result()).expect("runs"), Ok(1000));
    rt.metrics()
}

// ---------------------------------------------------------------------------------------
// Spans

/// A span or event as the collector saw it.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    /// Index (in `Spans::seen`) of the parent span.
    parent: Option<usize>,
    fields: BTreeMap<String, String>,
    is_event: bool,
    /// Spans created before this one closed (for concurrency).
    created_at: usize,
    closed_at: Option<usize>,
}

#[derive(Default)]
struct Spans {
    seen: Vec<Seen>,
    /// Open spans by id (ids are reused once a span closes).
    open: HashMap<u64, usize>,
    clock: usize,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Spans>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut spans = self.0.lock().expect("lock");
        let parent_id = if attrs.is_root() {
            None
        } else if let Some(parent) = attrs.parent() {
            Some(parent.clone())
        } else {
            ctx.current_span().id().cloned()
        };
        let parent = parent_id.and_then(|p| spans.open.get(&p.into_u64()).copied());
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        spans.clock += 1;
        let seen = Seen {
            name: attrs.metadata().name().to_string(),
            parent,
            fields,
            is_event: false,
            created_at: spans.clock,
            closed_at: None,
        };
        spans.seen.push(seen);
        let index = spans.seen.len() - 1;
        spans.open.insert(id.into_u64(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut spans = self.0.lock().expect("lock");
        if let Some(&index) = spans.open.get(&id.into_u64()) {
            values.record(&mut Fields(&mut spans.seen[index].fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut spans = self.0.lock().expect("lock");
        let parent_id = if event.is_root() {
            None
        } else if let Some(parent) = event.parent() {
            Some(parent.clone())
        } else {
            ctx.current_span().id().cloned()
        };
        let parent = parent_id.and_then(|p| spans.open.get(&p.into_u64()).copied());
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let clock = spans.clock;
        spans.seen.push(Seen {
            name: fields.get("message").cloned().unwrap_or_default(),
            parent,
            fields,
            is_event: true,
            created_at: clock,
            closed_at: Some(clock),
        });
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let mut spans = self.0.lock().expect("lock");
        spans.clock += 1;
        let clock = spans.clock;
        if let Some(index) = spans.open.remove(&id.into_u64()) {
            spans.seen[index].closed_at = Some(clock);
        }
    }
}

impl Collector {
    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut self.0.lock().expect("lock").seen)
    }
}

fn field<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.fields.get(name).map(String::as_str)
}

/// Runs `f` with the collector as this thread's subscriber; returns what it saw.
fn traced(f: impl FnOnce()) -> Vec<Seen> {
    let collector = Collector::default();
    let subscriber = tracing_subscriber::registry().with(collector.clone());
    tracing::subscriber::with_default(subscriber, f);
    collector.take()
}

/// The spans named `name` whose parent is `parent`.
fn children<'a>(seen: &'a [Seen], parent: usize, name: &str) -> Vec<(usize, &'a Seen)> {
    seen.iter()
        .enumerate()
        .filter(|(_, s)| !s.is_event && s.parent == Some(parent) && s.name == name)
        .collect()
}

#[test]
fn spans_follow_a_workflow_through_a_crash_and_its_recovery() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let first = traced(|| {
        crash_after_reservations(dir.path());
    });
    let second = traced(|| {
        recover_and_finish(dir.path());
    });

    // Process 1: one run span, a root, carrying the caller's trace.
    let runs: Vec<_> = first
        .iter()
        .enumerate()
        .filter(|(_, s)| s.name == "ordo.workflow")
        .collect();
    assert_eq!(runs.len(), 1, "{first:#?}");
    let (run1, span) = runs[0];
    assert_eq!(span.parent, None);
    assert_eq!(field(span, "otel.name"), Some("workflow order"));
    assert_eq!(field(span, "workflow.id"), Some("order-1"));
    assert_eq!(field(span, "workflow.name"), Some("order"));
    assert_eq!(field(span, "workflow.replaying"), Some("false"));
    assert_eq!(field(span, "trace_id"), Some(TRACE_ID));
    assert_eq!(field(span, "parent_span_id"), Some("00f067aa0ba902b7"));
    assert_eq!(field(span, "traceparent"), Some(TRACEPARENT));
    // The crash stopped it.
    assert_eq!(field(span, "workflow.outcome"), Some("error"));
    assert_eq!(field(span, "otel.status_code"), Some("ERROR"));
    assert_eq!(field(span, "error.type"), Some("Stopped"));
    // Its three reservations ran concurrently, each in a step span under the run.
    let reserves = children(&first, run1, "ordo.step");
    assert_eq!(reserves.len(), 3, "{first:#?}");
    for (i, (_, step)) in reserves.iter().enumerate() {
        assert_eq!(field(step, "otel.name"), Some("step reserve"));
        assert_eq!(field(step, "step.name"), Some("reserve"));
        assert_eq!(field(step, "step.id"), Some(i.to_string().as_str()));
        assert_eq!(field(step, "workflow.id"), Some("order-1"));
        assert_eq!(field(step, "step.outcome"), Some("ok"));
        assert_eq!(field(step, "step.attempts"), Some("1"));
        assert_eq!(field(step, "otel.status_code"), Some("OK"));
    }
    let last_created = reserves
        .iter()
        .map(|(_, s)| s.created_at)
        .max()
        .expect("three reservations");
    let first_closed = reserves
        .iter()
        .map(|(_, s)| s.closed_at.expect("closed"))
        .min()
        .expect("three reservations");
    assert!(
        last_created < first_closed,
        "the three reservations overlap"
    );
    // The charge never started before the crash.
    assert!(!first
        .iter()
        .any(|s| field(s, "step.name") == Some("charge")));

    // Process 2: a new run span, replaying, still in the caller's trace.
    let runs: Vec<_> = second
        .iter()
        .enumerate()
        .filter(|(_, s)| s.name == "ordo.workflow")
        .collect();
    assert_eq!(runs.len(), 1, "{second:#?}");
    let (run2, span) = runs[0];
    assert_eq!(span.parent, None);
    assert_eq!(field(span, "workflow.id"), Some("order-1"));
    assert_eq!(field(span, "workflow.replaying"), Some("true"));
    assert_eq!(field(span, "workflow.recovery_attempt"), Some("1"));
    assert_eq!(field(span, "trace_id"), Some(TRACE_ID));
    assert_eq!(field(span, "parent_span_id"), Some("00f067aa0ba902b7"));
    assert_eq!(field(span, "workflow.outcome"), Some("succeeded"));
    assert_eq!(field(span, "otel.status_code"), Some("OK"));
    assert_eq!(field(span, "error.type"), None);
    assert!(
        span.closed_at.is_some(),
        "the run span closes when the run ends"
    );

    // Replayed reservations have no body span, only a delivery event each.
    let steps = children(&second, run2, "ordo.step");
    let names: Vec<_> = steps
        .iter()
        .map(|(_, s)| field(s, "step.name").expect("field recorded"))
        .collect();
    assert_eq!(
        names,
        ["charge", "ship"],
        "no body span for a replayed step"
    );
    let deliveries: Vec<_> = second
        .iter()
        .filter(|s| s.is_event && s.parent == Some(run2) && s.name == "step delivered")
        .map(|s| {
            (
                field(s, "step.name").expect("field recorded"),
                field(s, "step.replayed").expect("field recorded"),
            )
        })
        .collect();
    assert_eq!(
        deliveries,
        [
            ("reserve", "true"),
            ("reserve", "true"),
            ("reserve", "true"),
            ("charge", "false"),
            ("ship", "false"),
        ]
    );

    // The retried charge: one step span with three attempts under it.
    let (charge, charge_span) = steps[0];
    assert_eq!(field(charge_span, "step.id"), Some("3"));
    assert_eq!(field(charge_span, "step.attempts"), Some("3"));
    assert_eq!(field(charge_span, "step.outcome"), Some("ok"));
    let attempts: Vec<_> = children(&second, charge, "ordo.attempt")
        .into_iter()
        .map(|(_, a)| {
            (
                field(a, "step.attempt")
                    .expect("field recorded")
                    .to_string(),
                field(a, "step.outcome")
                    .expect("field recorded")
                    .to_string(),
                field(a, "otel.status_code")
                    .expect("field recorded")
                    .to_string(),
                field(a, "error.type").map(str::to_string),
            )
        })
        .collect();
    let string = Some(std::any::type_name::<String>().to_string());
    assert_eq!(
        attempts,
        [
            ("1".into(), "err".into(), "ERROR".into(), string.clone()),
            ("2".into(), "err".into(), "ERROR".into(), string),
            ("3".into(), "ok".into(), "OK".into(), None),
        ]
    );
    assert_eq!(field(steps[1].1, "step.attempts"), Some("1"));
    assert!(children(&second, steps[1].0, "ordo.attempt").is_empty());
}

#[test]
fn a_failing_workflow_and_step_report_their_error_types() {
    let _serial = serial();
    let seen = traced(|| {
        let rt = ordo_testkit::store::temporary()
            .register("refuse", refuse)
            .build()
            .expect("runtime");
        let handle = rt
            .start::<_, (), String>("refuse", "r-1", ())
            .expect("starts");
        assert_eq!(
            rt.block_on(handle.result()).expect("runs"),
            Err("out of stock".to_string())
        );
    });
    let run = seen
        .iter()
        .find(|s| s.name == "ordo.workflow")
        .expect("span seen");
    assert_eq!(field(run, "workflow.outcome"), Some("failed"));
    assert_eq!(field(run, "otel.status_code"), Some("ERROR"));
    assert_eq!(
        field(run, "error.type"),
        Some(std::any::type_name::<String>())
    );
    assert_eq!(
        field(run, "trace_id"),
        None,
        "started without a trace context"
    );
    let step = seen
        .iter()
        .find(|s| s.name == "ordo.step")
        .expect("span seen");
    assert_eq!(field(step, "step.outcome"), Some("err"));
    assert_eq!(field(step, "otel.status_code"), Some("ERROR"));
    assert_eq!(
        field(step, "error.type"),
        Some(std::any::type_name::<String>())
    );
}

#[test]
fn the_trace_context_is_journaled_only_when_given_and_checked() {
    let _serial = serial();
    let rt = ordo_testkit::store::temporary()
        .register("refuse", refuse)
        .build()
        .expect("runtime");
    rt.start::<_, (), String>("refuse", "plain", ())
        .expect("starts");
    rt.start_traced::<_, (), String>("refuse", "traced", (), TRACEPARENT)
        .expect("starts traced");
    for garbage in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    ] {
        let err = rt
            .start_traced::<_, (), String>("refuse", "garbage", (), garbage)
            .err();
        assert!(
            matches!(&err, Some(Error::InvalidTraceParent { traceparent, .. }) if traceparent == garbage),
            "{garbage:?}: {err:?}"
        );
    }
    let plain = rt.handle::<(), String>("plain").expect("a handle");
    let _ = rt.block_on(plain.result());
    let _ = rt.block_on(rt.handle::<(), String>("traced").expect("runs").result());
    assert_eq!(
        rt.journal().trace_context("plain").expect("journal read"),
        None
    );
    assert_eq!(
        rt.journal()
            .trace_context("traced")
            .expect("journal read")
            .as_deref(),
        Some(TRACEPARENT)
    );
    assert!(matches!(
        rt.handle::<(), String>("garbage"),
        Err(Error::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Metrics

/// Every metric by `name{label=value,...}` (labels in the order given).
#[derive(Default)]
struct TestRecorder {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<GaugeCell>>>,
    histograms: Mutex<BTreeMap<String, Arc<Mutex<Vec<f64>>>>>,
}

#[derive(Default)]
struct GaugeCell {
    value: Mutex<f64>,
    max: Mutex<f64>,
}

struct CounterCell(Arc<AtomicU64>);
impl CounterFn for CounterCell {
    fn increment(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn absolute(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

struct GaugeHandle(Arc<GaugeCell>);
impl GaugeFn for GaugeHandle {
    fn increment(&self, n: f64) {
        let mut value = self.0.value.lock().expect("lock");
        *value += n;
        let mut max = self.0.max.lock().expect("lock");
        *max = max.max(*value);
    }
    fn decrement(&self, n: f64) {
        *self.0.value.lock().expect("lock") -= n;
    }
    fn set(&self, n: f64) {
        *self.0.value.lock().expect("lock") = n;
    }
}

struct HistogramCell(Arc<Mutex<Vec<f64>>>);
impl HistogramFn for HistogramCell {
    fn record(&self, value: f64) {
        self.0.lock().expect("lock").push(value);
    }
}

fn line(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().expect("lock");
        let cell = counters.entry(line(key)).or_default().clone();
        Counter::from_arc(Arc::new(CounterCell(cell)))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().expect("lock");
        let cell = gauges.entry(line(key)).or_default().clone();
        Gauge::from_arc(Arc::new(GaugeHandle(cell)))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().expect("lock");
        let cell = histograms.entry(line(key)).or_default().clone();
        Histogram::from_arc(Arc::new(HistogramCell(cell)))
    }
}

impl TestRecorder {
    fn counter(&self, line: &str) -> u64 {
        self.counters
            .lock()
            .expect("lock")
            .get(line)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
    fn histogram(&self, line: &str) -> Vec<f64> {
        self.histograms
            .lock()
            .expect("lock")
            .get(line)
            .map(|h| h.lock().expect("lock").clone())
            .unwrap_or_default()
    }
    fn gauge(&self, line: &str) -> (f64, f64) {
        let gauges = self.gauges.lock().expect("lock");
        let cell = gauges.get(line).expect("gauge registered");
        let value = *cell.value.lock().expect("lock");
        let max = *cell.max.lock().expect("lock");
        (value, max)
    }

    /// The counters `Runtime::metrics()` also keeps (summed over the runtimes that ran
    /// with this recorder) must equal them.
    fn assert_matches(&self, runtimes: &[Metrics]) {
        let sum = |f: fn(&Metrics) -> u64| runtimes.iter().map(f).sum::<u64>();
        let metrics = Totals {
            commits: sum(|m| m.commits),
            completions_committed: sum(|m| m.completions_committed),
            steps_executed: sum(|m| m.steps_executed),
            steps_replayed: sum(|m| m.steps_replayed),
        };
        assert_eq!(self.counter("ordo_commits_total{}"), metrics.commits);
        assert_eq!(
            self.counter("ordo_completions_committed_total{}"),
            metrics.completions_committed
        );
        assert_eq!(
            self.counter("ordo_steps_executed_total{}"),
            metrics.steps_executed
        );
        assert_eq!(
            self.counter("ordo_steps_replayed_total{}"),
            metrics.steps_replayed
        );
        let sizes = self.histogram("ordo_commit_size{}");
        assert_eq!(sizes.len() as u64, metrics.commits, "one size per commit");
        assert_eq!(
            sizes.iter().sum::<f64>() as u64,
            metrics.completions_committed
        );
        assert_eq!(
            self.histogram("ordo_commit_duration_seconds{}").len() as u64,
            metrics.commits
        );
    }
}

/// `Metrics` summed (it is `non_exhaustive`, so not constructible here).
struct Totals {
    commits: u64,
    completions_committed: u64,
    steps_executed: u64,
    steps_replayed: u64,
}

#[test]
fn metrics_match_the_runtime_counters_across_a_crash_and_recovery() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");

    let first = TestRecorder::default();
    let (before_crash, refusals) = metrics::with_local_recorder(&first, || {
        let metrics = crash_after_reservations(dir.path());
        // A workflow that returns its error, and one cancelled before it ran, in a
        // runtime of their own.
        let rt = ordo_testkit::store::temporary()
            .register("refuse", refuse)
            .build()
            .expect("runtime");
        let refused = rt
            .start::<_, (), String>("refuse", "r-1", ())
            .expect("starts");
        rt.start::<_, (), String>("refuse", "r-2", ())
            .expect("starts");
        assert!(rt.cancel("r-2").expect("cancels"));
        assert!(rt.block_on(refused.result()).expect("runs").is_err());
        (metrics, rt.metrics())
    });
    first.assert_matches(&[before_crash, refusals]);
    assert_eq!(refusals.steps_executed, 1);
    // The reservations ran and were committed, but the crash came before their delivery.
    assert_eq!(before_crash.completions_committed, 3, "three reservations");
    assert_eq!(before_crash.steps_executed, 0);
    assert_eq!(before_crash.steps_replayed, 0);
    assert_eq!(
        first.counter("ordo_workflows_started_total{workflow=order}"),
        1
    );
    assert_eq!(
        first.counter("ordo_workflows_started_total{workflow=refuse}"),
        1,
        "the cancelled start never committed as a start"
    );
    assert_eq!(
        first.counter("ordo_workflows_finished_total{workflow=refuse,status=failed}"),
        1
    );
    assert_eq!(
        first.counter("ordo_workflows_finished_total{workflow=refuse,status=cancelled}"),
        1
    );
    assert_eq!(
        first.counter("ordo_workflows_finished_total{workflow=order,status=succeeded}"),
        0
    );
    // Three reservations and the refused check.
    assert_eq!(
        first
            .histogram("ordo_step_duration_seconds{outcome=ok}")
            .len(),
        3
    );
    assert_eq!(
        first
            .histogram("ordo_step_duration_seconds{outcome=err}")
            .len(),
        1
    );
    let (pending, max) = first.gauge("ordo_workflows_pending{}");
    assert_eq!((pending, max), (0.0, 1.0), "one run at a time, none left");

    let second = TestRecorder::default();
    let after_recovery = metrics::with_local_recorder(&second, || recover_and_finish(dir.path()));
    second.assert_matches(&[after_recovery]);
    assert_eq!(after_recovery.steps_replayed, 3, "the reservations");
    assert_eq!(
        after_recovery.steps_executed, 2,
        "the charge and the shipment"
    );
    assert_eq!(
        second.counter("ordo_workflows_started_total{workflow=order}"),
        0,
        "a recovery is no new start"
    );
    assert_eq!(
        second.counter("ordo_workflows_finished_total{workflow=order,status=succeeded}"),
        1
    );
    assert_eq!(
        second.histogram("ordo_recovery_duration_seconds{}").len(),
        1
    );
    let durations = second.histogram("ordo_step_duration_seconds{outcome=ok}");
    assert_eq!(durations.len(), 2);
    // The charge waited 1 s and 2 s of (virtual) backoff between its attempts.
    assert!(
        durations.iter().any(|&d| (3.0..3.5).contains(&d)),
        "{durations:?}"
    );
    assert_eq!(second.gauge("ordo_workflows_pending{}"), (0.0, 1.0));
}

#[test]
fn children_and_queued_workflows_count_as_started() {
    let _serial = serial();
    async fn leaf(_: Ctx, n: u32) -> Result<u32, String> {
        Ok(n)
    }
    async fn parent(ctx: Ctx, _: ()) -> Result<u32, String> {
        let child = ctx.start_child::<_, u32, String>("leaf", 1u32);
        child.result().await.map_err(|e| e.to_string())?
    }
    let recorder = TestRecorder::default();
    metrics::with_local_recorder(&recorder, || {
        let rt = ordo_testkit::store::temporary()
            .queue("q", ordo::QueueOptions::new().concurrency(1))
            .register("leaf", leaf)
            .register("parent", parent)
            .build()
            .expect("runtime");
        let p = rt
            .start::<_, u32, String>("parent", "p", ())
            .expect("starts");
        let queued: Vec<_> = (0..3u32)
            .map(|n| {
                rt.enqueue::<_, u32, String>("q", "leaf", n, ordo::EnqueueOptions::new())
                    .expect("enqueues")
            })
            .collect();
        assert_eq!(rt.block_on(p.result()).expect("runs"), Ok(1));
        for q in &queued {
            rt.block_on(q.result()).expect("runs").expect("ok");
        }
    });
    assert_eq!(
        recorder.counter("ordo_workflows_started_total{workflow=parent}"),
        1
    );
    // The child and the three queued workflows, each once.
    assert_eq!(
        recorder.counter("ordo_workflows_started_total{workflow=leaf}"),
        4
    );
    assert_eq!(
        recorder.counter("ordo_workflows_finished_total{workflow=leaf,status=succeeded}"),
        4
    );
}

#[test]
fn starts_committed_together_count_each_under_its_own_name() {
    let _serial = serial();
    async fn a(_ctx: Ctx, n: u32) -> Result<u32, String> {
        Ok(n)
    }
    async fn b(_ctx: Ctx, n: u32) -> Result<u32, String> {
        Ok(n + 1)
    }
    let recorder = TestRecorder::default();
    let commits = metrics::with_local_recorder(&recorder, || {
        let rt = ordo_testkit::store::temporary()
            .register("a", a)
            .register("b", b)
            .build()
            .expect("runtime");
        // Interleaved names, all started before the runtime runs: one commit of starts.
        let names = ["a", "a", "b", "a", "b", "b", "b", "a"];
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                rt.start::<_, u32, String>(name, &format!("w-{i}"), 1u32)
                    .expect("starts")
            })
            .collect();
        for handle in &handles {
            rt.block_on(handle.result()).expect("runs").expect("ok");
        }
        rt.metrics().commits
    });
    assert!(
        commits <= 2,
        "the starts shared a commit ({commits} commits)"
    );
    assert_eq!(
        recorder.counter("ordo_workflows_started_total{workflow=a}"),
        4
    );
    assert_eq!(
        recorder.counter("ordo_workflows_started_total{workflow=b}"),
        4
    );
}
