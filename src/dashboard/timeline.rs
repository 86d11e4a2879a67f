//! A workflow's steps as an SVG timeline.
//!
//! One row per recorded completion, in delivery order (`seq`), each a bar from its
//! first attempt's start to its last attempt's end on a shared time axis: steps that ran
//! concurrently are bars that overlap in time on rows of their own, which is the order
//! question ordo answers (which step ran when, and in which order its outcome was
//! delivered). Colour says how it ended (ok, error); a step that took more than one
//! attempt carries its count; a completion recorded before this process started (so
//! replayed here, not run again, if the workflow resumed here) is drawn hatched.

use std::fmt::Write as _;

use ordo_journal::Completion;

use super::pages::escape;

/// Width of the step labels' column, in pixels.
const LABEL_WIDTH: u64 = 240;
/// Width of the bars' area, in pixels.
const BARS_WIDTH: u64 = 660;
/// Width of the column after the bars (duration, attempts).
const NOTE_WIDTH: u64 = 120;
/// Height of one row, in pixels.
const ROW: u64 = 24;
/// Height of the time axis above the rows (tick labels, the "this process started"
/// label).
const AXIS: u64 = 40;
/// Height of the legend below the rows.
const LEGEND: u64 = 30;

/// Where a completion was recorded, as far as this process can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Recorded by this process: its body ran here (live).
    Live,
    /// Recorded before this process started: replayed here (not run again) if the
    /// workflow resumed in this process.
    Earlier,
}

/// Whether completion `c` was recorded by this process, which started at `since_ms`.
pub(crate) fn origin(c: &Completion, since_ms: u64) -> Origin {
    if c.ended_ms < since_ms {
        Origin::Earlier
    } else {
        Origin::Live
    }
}

/// The timeline of `completions` (in `seq` order) as an `<svg>` element.
pub(crate) fn svg(completions: &[Completion], since_ms: u64) -> String {
    let start = completions.iter().map(|c| c.started_ms).min().unwrap_or(0);
    let end = completions.iter().map(|c| c.ended_ms).max().unwrap_or(0);
    // At least a millisecond, so instantaneous steps still have an axis.
    let span = end.saturating_sub(start).max(1);
    let x = |ms: u64| LABEL_WIDTH + ms.saturating_sub(start).min(span) * BARS_WIDTH / span;
    let rows = completions.len() as u64;
    let width = LABEL_WIDTH + BARS_WIDTH + NOTE_WIDTH;
    let height = AXIS + rows * ROW + LEGEND;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="timeline of {rows} steps">
<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#cbd5e1"/><line x1="0" y1="0" x2="0" y2="6" stroke="#94a3b8" stroke-width="3"/></pattern></defs>
<rect width="{width}" height="{height}" fill="#ffffff"/>
"##
    );
    // The axis: five ticks, in milliseconds since the first step started.
    for tick in 0..=4u64 {
        let ms = span * tick / 4;
        let tx = LABEL_WIDTH + BARS_WIDTH * tick / 4;
        let _ = writeln!(
            out,
            r##"<line x1="{tx}" y1="{AXIS}" x2="{tx}" y2="{}" stroke="#e2e8f0"/><text x="{tx}" y="{}" font-size="11" text-anchor="middle" fill="#475569">{ms} ms</text>"##,
            AXIS + rows * ROW,
            AXIS - 24
        );
    }
    // Where this process took over, when that falls inside the timeline: the rows
    // before it were recorded by an earlier process.
    if (start..end).contains(&since_ms) {
        let rx = x(since_ms);
        let _ = writeln!(
            out,
            r##"<g class="recovered"><line x1="{rx}" y1="{AXIS}" x2="{rx}" y2="{}" stroke="#7c3aed" stroke-width="2" stroke-dasharray="4 3"/><text x="{}" y="{}" font-size="11" fill="#7c3aed">this process started</text></g>"##,
            AXIS + rows * ROW,
            rx + 4,
            AXIS - 6
        );
    }
    for (row, c) in completions.iter().enumerate() {
        let y = AXIS + row as u64 * ROW;
        let (x0, x1) = (x(c.started_ms), x(c.ended_ms));
        // Instantaneous steps get a visible sliver.
        let bar_width = x1.saturating_sub(x0).max(3);
        let origin = origin(c, since_ms);
        let fill = match (origin, c.outcome.is_ok()) {
            (Origin::Earlier, _) => "url(#hatch)",
            (Origin::Live, true) => "#2563eb",
            (Origin::Live, false) => "#dc2626",
        };
        let stroke = if c.outcome.is_ok() {
            "#1e3a8a"
        } else {
            "#7f1d1d"
        };
        let outcome = if c.outcome.is_ok() { "ok" } else { "error" };
        let recorded = match origin {
            Origin::Live => "live",
            Origin::Earlier => "earlier",
        };
        let name = escape(&c.name);
        let duration = c.ended_ms.saturating_sub(c.started_ms);
        let attempts = if c.attempts > 1 {
            format!(" · {} attempts", c.attempts)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            r##"<g class="step" data-seq="{seq}" data-step-id="{step_id}" data-name="{name}" data-attempts="{att}" data-outcome="{outcome}" data-recorded="{recorded}">
<title>seq {seq} · step {step_id} {name}: {outcome}, {duration} ms, {att} attempt(s), recorded {recorded}</title>
<rect x="0" y="{y}" width="{width}" height="{ROW}" fill="#0f172a" fill-opacity="{band}"/>
<text x="8" y="{ty}" font-size="12" fill="#0f172a"><tspan font-weight="bold" fill="#475569">#{seq}</tspan> {name} <tspan fill="#64748b">(step {step_id})</tspan></text>
<rect x="{x0}" y="{by}" width="{bar_width}" height="{bh}" rx="3" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>
<circle cx="{dx}" cy="{cy}" r="3" fill="#f59e0b"/>
<text x="{nx}" y="{ty}" font-size="11" fill="#334155">{duration} ms{attempts}</text>
</g>
"##,
            seq = c.seq,
            step_id = c.step_id,
            att = c.attempts,
            // Translucent, so the grid and the recovery mark show through.
            band = if row % 2 == 0 { "0.035" } else { "0" },
            ty = y + 16,
            by = y + 5,
            bh = ROW - 10,
            sw = if c.attempts > 1 { 2 } else { 1 },
            dx = x0 + bar_width,
            cy = y + ROW / 2,
            nx = LABEL_WIDTH + BARS_WIDTH + 8,
        );
    }
    let ly = AXIS + rows * ROW + 18;
    let _ = write!(
        out,
        r##"<g class="legend" font-size="11" fill="#334155">
<rect x="8" y="{r}" width="14" height="10" fill="#2563eb"/><text x="26" y="{ly}">ok (live)</text>
<rect x="96" y="{r}" width="14" height="10" fill="#dc2626"/><text x="114" y="{ly}">error</text>
<rect x="166" y="{r}" width="14" height="10" fill="url(#hatch)"/><text x="184" y="{ly}">recorded by an earlier process (replayed)</text>
<circle cx="430" cy="{c}" r="3" fill="#f59e0b"/><text x="438" y="{ly}">outcome recorded; rows in delivery order (#seq)</text>
</g>
</svg>"##,
        r = ly - 9,
        c = ly - 4,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_journal::Outcome;

    fn completion(seq: u64, name: &str, started_ms: u64, ended_ms: u64) -> Completion {
        Completion {
            seq,
            step_id: seq,
            name: name.into(),
            outcome: Outcome::Ok(vec![]),
            attempts: 1,
            started_ms,
            ended_ms,
        }
    }

    /// The x of the bar of the step with `seq` in `svg`.
    fn bar_x(svg: &str, seq: u64) -> u64 {
        let group = svg
            .split(r#"<g class="step""#)
            .find(|g| g.contains(&format!(r#"data-seq="{seq}""#)))
            .expect("a group per step");
        let bar = group.split("<rect").nth(2).expect("band, then bar");
        let x = bar.split("x=\"").nth(1).expect("an x");
        x.split('"')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number")
    }

    #[test]
    fn bars_sit_at_their_times_and_names_are_escaped() {
        let steps = [
            completion(0, "a", 1_000, 1_100),
            completion(1, "<script>", 1_050, 1_200),
        ];
        let svg = svg(&steps, 0);
        assert_eq!(bar_x(&svg, 0), LABEL_WIDTH);
        // Started a quarter of the span after the first: a quarter of the way along.
        assert_eq!(bar_x(&svg, 1), LABEL_WIDTH + BARS_WIDTH / 4);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn completions_before_the_process_started_are_earlier() {
        let steps = [completion(0, "a", 10, 20), completion(1, "b", 30, 40)];
        let svg = svg(&steps, 25);
        // The process started half-way through: its mark is half-way along.
        let mark = format!(
            r#"<line x1="{x}" y1="{AXIS}" x2="{x}""#,
            x = LABEL_WIDTH + BARS_WIDTH / 2
        );
        assert!(svg.contains(&mark), "{svg}");
        assert!(!super::svg(&steps, 5).contains("this process started"));
        assert!(svg.contains(r#"data-seq="0" data-step-id="0" data-name="a" data-attempts="1" data-outcome="ok" data-recorded="earlier""#));
        assert!(svg.contains(r#"data-seq="1" data-step-id="1" data-name="b" data-attempts="1" data-outcome="ok" data-recorded="live""#));
    }
}
