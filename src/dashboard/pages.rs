//! The dashboard's HTML: the workflow list and a workflow's page, rendered on the
//! HTTP thread from what the runtime's thread answered.
//!
//! Every string that comes from a user or the journal (ids, names, values, errors) goes
//! through [`escape`]; the pages load nothing from elsewhere (inline CSS, one inline
//! script that shows times in the browser's time zone).

use std::fmt::Write as _;

use ordo_journal::{Status, WorkflowRecord};

use super::http::percent_encode;
use super::query::{Listing, WorkflowView, LIST_LIMIT};
use super::timeline::{self, Origin};
use super::values::{self, Shown};

/// `text` with `& < > " '` escaped, for HTML text and attribute values alike.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#0f172a;background:#f1f5f9}\
header{background:#0f172a;color:#fff;padding:10px 20px}header a{color:#fff;text-decoration:none;font-weight:bold}\
main{padding:16px 20px;max-width:1100px}table{border-collapse:collapse;width:100%;background:#fff}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e2e8f0;vertical-align:top}\
th{background:#e2e8f0;font-weight:600}code,pre{font-family:ui-monospace,monospace;font-size:12px}\
pre{background:#fff;padding:8px;border:1px solid #e2e8f0;white-space:pre-wrap;word-break:break-all;margin:4px 0}\
.status{padding:1px 8px;border-radius:9px;font-size:12px;color:#fff}.pending{background:#d97706}\
.succeeded{background:#16a34a}.failed{background:#dc2626}.cancelled{background:#64748b}\
nav.filters a{margin-right:12px}nav.filters a.on{font-weight:bold;text-decoration:none;color:#0f172a}\
.actions form{display:inline}.actions button{margin-right:8px;padding:4px 12px}\
.muted{color:#64748b}.box{background:#fff;padding:10px 14px;margin:10px 0;border:1px solid #e2e8f0}\
.timeline{max-width:100%;height:auto}";

/// Shows every `<time data-ms>` in the browser's zone (the text is UTC milliseconds
/// without it).
const SCRIPT: &str = "document.querySelectorAll('time[data-ms]').forEach(function(t){\
var d=new Date(Number(t.dataset.ms));t.textContent=d.toLocaleString();t.title=d.toISOString();});";

/// A whole page around `body`.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{} · ordo</title>\
         <style>{STYLE}</style></head><body><header><a href=\"/\">ordo</a> \
         <span class=\"muted\">dashboard</span></header><main>{body}</main>\
         <script>{SCRIPT}</script></body></html>",
        escape(title)
    )
}

fn time(ms: u64) -> String {
    format!("<time data-ms=\"{ms}\">{ms}</time>")
}

fn status_badge(status: Status) -> String {
    format!("<span class=\"status {s}\">{s}</span>", s = status.as_str())
}

fn workflow_link(id: &str) -> String {
    format!(
        "<a class=\"workflow\" href=\"/workflow?id={}\">{}</a>",
        percent_encode(id),
        escape(id)
    )
}

/// The workflow list, filtered by `status` and `search`.
pub(crate) fn list(listing: &Listing, status: Option<Status>, search: &str) -> String {
    let mut body = String::from("<h1>Workflows</h1><nav class=\"filters\">");
    let total: usize = listing.counts.values().sum();
    let query = |s: Option<Status>| {
        let mut q = String::from("/?");
        if let Some(s) = s {
            q.push_str(&format!("status={}&", s.as_str()));
        }
        q.push_str(&format!("q={}", percent_encode(search)));
        q
    };
    let _ = write!(
        body,
        "<a href=\"{}\"{}>all ({total})</a>",
        escape(&query(None)),
        if status.is_none() {
            " class=\"on\""
        } else {
            ""
        }
    );
    for s in Status::ALL {
        let _ = write!(
            body,
            "<a href=\"{}\"{}>{} ({})</a>",
            escape(&query(Some(s))),
            if status == Some(s) {
                " class=\"on\""
            } else {
                ""
            },
            s.as_str(),
            listing.counts.get(&s).copied().unwrap_or(0)
        );
    }
    let _ = write!(
        body,
        "</nav><form class=\"box\" method=\"get\" action=\"/\">{}\
         <label>Search by id <input name=\"q\" value=\"{}\" placeholder=\"order-\"></label> \
         <button>Search</button></form>",
        status.map_or(String::new(), |s| format!(
            "<input type=\"hidden\" name=\"status\" value=\"{}\">",
            s.as_str()
        )),
        escape(search)
    );
    let shown = listing.workflows.len();
    let _ = write!(
        body,
        "<p class=\"muted\">{} matching{}</p><table id=\"workflows\"><thead><tr><th>id</th>\
         <th>name</th><th>status</th><th>started</th><th>updated</th><th>version</th></tr>\
         </thead><tbody>",
        listing.matched,
        if listing.matched > shown {
            format!(", the newest {LIST_LIMIT} shown")
        } else {
            String::new()
        }
    );
    for record in &listing.workflows {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            workflow_link(&record.id),
            escape(&record.name),
            status_badge(record.status),
            time(record.created_ms),
            time(record.updated_ms),
            escape(record.app_version.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table>");
    page("Workflows", &body)
}

fn shown_value(shown: &Shown) -> String {
    let value = shown.value.as_ref().map_or(String::new(), |v| {
        format!("<pre class=\"value\">{}</pre>", escape(v))
    });
    format!(
        "<div><code>{}</code>{value}<div class=\"muted\"><code>{}</code></div></div>",
        escape(&shown.type_name),
        escape(&shown.bytes)
    )
}

/// A workflow's page: its record, input and output, actions, timeline and steps.
/// `since_ms` is when this process started (see [`timeline::origin`]); `token` goes
/// into the action forms.
pub(crate) fn workflow(view: &WorkflowView, since_ms: u64, token: &str) -> String {
    let record: &WorkflowRecord = &view.record;
    let id = escape(&record.id);
    let mut body = format!(
        "<h1 id=\"workflow-id\">{id}</h1><p>{} <b>{}</b>{}</p><table class=\"box\">\
         <tr><th>started</th><td>{}</td></tr><tr><th>updated</th><td>{}</td></tr>\
         <tr><th>recovery attempts</th><td>{}</td></tr>",
        status_badge(record.status),
        escape(&record.name),
        if view.running_here {
            " <span class=\"muted\">running in this process</span>"
        } else {
            ""
        },
        time(record.created_ms),
        time(record.updated_ms),
        record.recovery_attempts,
    );
    if let Some(version) = &record.app_version {
        let _ = write!(
            body,
            "<tr><th>app version</th><td>{}</td></tr>",
            escape(version)
        );
    }
    if let Some(trace) = &view.trace_context {
        let _ = write!(
            body,
            "<tr><th>traceparent</th><td><code>{}</code></td></tr>",
            escape(trace)
        );
    }
    if !view.children.is_empty() {
        let children: Vec<String> = view.children.iter().map(|c| workflow_link(c)).collect();
        let _ = write!(
            body,
            "<tr><th>children</th><td>{}</td></tr>",
            children.join(", ")
        );
    }
    body.push_str("</table>");

    let actions = [
        (record.status == Status::Pending, "cancel", "Cancel"),
        (
            record.status == Status::Cancelled
                || (record.status == Status::Pending && !view.running_here),
            "resume",
            "Resume",
        ),
    ];
    if actions.iter().any(|(shown, ..)| *shown) {
        body.push_str("<div class=\"actions box\">");
        for (_, action, label) in actions.iter().filter(|(shown, ..)| *shown) {
            let _ = write!(
                body,
                "<form method=\"post\" action=\"/{action}\"><input type=\"hidden\" name=\"id\" \
                 value=\"{id}\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
                 <button id=\"{action}\">{label}</button></form>",
                escape(token)
            );
        }
        body.push_str("</div>");
    }

    let _ = write!(
        body,
        "<h2>Input</h2>{}<h2>Output</h2>",
        shown_value(&values::show(&record.input, &view.type_names))
    );
    match &record.output {
        None => body.push_str("<p class=\"muted\">none yet</p>"),
        Some(outcome) => {
            let _ = write!(
                body,
                "<p>{}</p>{}",
                if outcome.is_ok() { "Ok" } else { "Err" },
                shown_value(&values::show(outcome.bytes(), &view.type_names))
            );
        }
    }

    let _ = write!(
        body,
        "<h2>Timeline</h2><p class=\"muted\">{} completions, one row each in delivery order \
         (#seq); bars span first attempt's start to last attempt's end.</p>",
        view.completions.len()
    );
    if !view.completions.is_empty() {
        let _ = write!(
            body,
            "<div class=\"box\" id=\"timeline\">{}</div>",
            timeline::svg(&view.completions, since_ms)
        );
    }
    body.push_str(
        "<h2>Steps</h2><table id=\"steps\"><thead><tr><th>seq</th><th>step</th><th>name</th>\
         <th>outcome</th><th>attempts</th><th>started</th><th>ms</th><th>recorded</th></tr>\
         </thead><tbody>",
    );
    for c in &view.completions {
        let recorded = match timeline::origin(c, since_ms) {
            Origin::Live => "live, by this process",
            Origin::Earlier => "by an earlier process (replayed)",
        };
        let _ = write!(
            body,
            "<tr class=\"step-row\"><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{recorded}</td></tr>",
            c.seq,
            c.step_id,
            escape(&c.name),
            if c.outcome.is_ok() { "Ok" } else { "Err" },
            shown_value(&values::show(c.outcome.bytes(), &view.type_names)),
            c.attempts,
            time(c.started_ms),
            c.ended_ms.saturating_sub(c.started_ms),
        );
    }
    body.push_str("</tbody></table>");
    page(&record.id, &body)
}

/// A page that only says what went wrong (the message is escaped).
pub(crate) fn message(title: &str, text: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1><p class=\"message\">{}</p><p><a href=\"/\">All workflows</a></p>",
            escape(title),
            escape(text)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
