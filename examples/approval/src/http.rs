//! The HTTP routes. Handlers run on tokio's multi-thread runtime and reach the ordo
//! runtime's thread only through a [`Client`]: every start and message is durable
//! before the handler answers.
//!
//! | route | body | does |
//! |---|---|---|
//! | `POST /expenses` | `{"who": "ada", "amount": 120}` | starts a workflow; `201 {"id", "status"}` |
//! | `GET /expenses/{id}` | | `{"id", "status", "result"}` (`result` is `null` until it ends) |
//! | `POST /expenses/{id}/approve` | `{"by": "bob"}` (optional) | sends the decision; answers with the end state |
//! | `POST /expenses/{id}/reject` | `{"reason": "..."}` (optional) | likewise |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ordo::Client;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::workflow::{self, Expense, Settlement};

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    /// The way into the ordo runtime's thread (`Send + Sync + Clone`).
    pub client: Client,
    /// The number of the next expense id (`exp-<n>`): starts past the highest id in
    /// the journal, so a restarted server never hands out an id twice.
    pub next_id: Arc<AtomicU64>,
    /// How long a new expense waits for a decision (48 hours divided by `--speed`).
    pub timeout: Duration,
}

/// How long a handler waits for the workflow to reach the state it reports.
const WAIT: Duration = Duration::from_secs(30);

/// How long a request about an expense with no status yet waits for one before it is
/// answered 404.
const NEW_STATUS_WAIT: Duration = Duration::from_secs(1);

pub fn router(app: App) -> Router {
    Router::new()
        .route("/expenses", post(create))
        .route("/expenses/{id}", get(show))
        .route("/expenses/{id}/approve", post(approve))
        .route("/expenses/{id}/reject", post(reject))
        .with_state(app)
}

/// A failed request: a status code and a message, answered as `{"error": message}`.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ordo::Error> for Failure {
    fn from(err: ordo::Error) -> Self {
        let code = match err {
            ordo::Error::NotFound { .. } | ordo::Error::UnknownDestination { .. } => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(code, err.to_string())
    }
}

fn bad_request(detail: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::BAD_REQUEST, detail.to_string())
}

/// The body parsed as `T`, or `T::default()` for an empty body.
fn parse_body<T: Default + for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Failure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

#[derive(Default, Deserialize)]
struct NewExpense {
    who: String,
    amount: u64,
}

async fn create(State(app): State<App>, body: Bytes) -> Result<Response, Failure> {
    let new: NewExpense = parse_body(&body)?;
    if new.who.trim().is_empty() || new.amount == 0 {
        return Err(bad_request(
            "give who spent it and a positive amount: {\"who\": \"ada\", \"amount\": 120}",
        ));
    }
    let id = format!("exp-{}", app.next_id.fetch_add(1, Ordering::Relaxed));
    let input = Expense {
        who: new.who,
        amount: new.amount,
        timeout_ms: u64::try_from(app.timeout.as_millis()).unwrap_or(u64::MAX),
    };
    app.client
        .start::<Expense, Settlement, String>(workflow::NAME, &id, input)
        .await?;
    // The start is durable; answer once the workflow has said where it stands.
    let status = app
        .client
        .get_event::<String>(&id, workflow::STATUS, WAIT)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "status": status })),
    )
        .into_response())
}

/// The expense's status and, once it has ended, its settlement.
async fn view(app: &App, id: &str) -> Result<Value, Failure> {
    let mut status = app
        .client
        .get_event::<String>(id, workflow::STATUS, Duration::ZERO)
        .await?;
    if status.is_none() {
        // No status yet: no such expense, or one whose workflow has not published its
        // first status (just started, or resumed by a restart after a kill that came
        // between its start and that status). A `Client` cannot ask whether a workflow
        // exists without awaiting its result, so give the second case a moment.
        status = app
            .client
            .get_event::<String>(id, workflow::STATUS, NEW_STATUS_WAIT)
            .await?;
    }
    let status =
        status.ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no expense {id:?}")))?;
    // Asked only once the status is final: the handle's result waits for the end.
    let result = if workflow::is_final(&status) {
        let handle = app.client.handle::<Settlement, String>(id);
        match tokio::time::timeout(WAIT, handle.result()).await {
            Ok(result) => settlement_json(result?),
            Err(_) => Value::Null,
        }
    } else {
        Value::Null
    };
    Ok(json!({ "id": id, "status": status, "result": result }))
}

fn settlement_json(result: Result<Settlement, String>) -> Value {
    match result {
        Ok(Settlement::Paid { by, payment }) => {
            json!({ "outcome": "paid", "by": by, "payment": payment })
        }
        Ok(Settlement::Rejected { reason }) => json!({ "outcome": "rejected", "reason": reason }),
        Ok(Settlement::Expired { waited_ms }) => {
            json!({ "outcome": "expired", "waited_ms": waited_ms })
        }
        Ok(Settlement::Refused { reason }) => json!({ "outcome": "refused", "reason": reason }),
        Err(error) => json!({ "outcome": "failed", "error": error }),
    }
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, Failure> {
    Ok(Json(view(&app, &id).await?))
}

#[derive(Deserialize)]
#[serde(default)]
struct Approval {
    by: String,
}

impl Default for Approval {
    fn default() -> Self {
        Approval {
            by: "someone".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct Rejection {
    reason: String,
}

impl Default for Rejection {
    fn default() -> Self {
        Rejection {
            reason: "no reason given".into(),
        }
    }
}

async fn approve(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Failure> {
    let approval: Approval = parse_body(&body)?;
    decide(&app, &id, workflow::APPROVE, approval.by).await
}

async fn reject(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, Failure> {
    let rejection: Rejection = parse_body(&body)?;
    decide(&app, &id, workflow::REJECT, rejection.reason).await
}

/// Sends a decision and answers with the state it led to.
async fn decide(app: &App, id: &str, topic: &str, payload: String) -> Result<Json<Value>, Failure> {
    let before = view(app, id).await?;
    if before["status"] != workflow::AWAITING {
        return Err(Failure(
            StatusCode::CONFLICT,
            format!(
                "expense {id} is {}, not awaiting approval",
                before["status"]
            ),
        ));
    }
    // One decision per expense: the idempotency key is the same for approve and
    // reject, so whichever is stored first is the only one the workflow can receive
    // (a second one, or a client's retry, is acknowledged and dropped).
    app.client
        .send_idempotent(id, topic, payload, "decision")
        .await?;
    // Durable now. The workflow ends soon after; answer with where it ended.
    let handle = app.client.handle::<Settlement, String>(id);
    if tokio::time::timeout(WAIT, handle.result()).await.is_err() {
        return Ok(Json(
            json!({ "id": id, "status": "decision_sent", "result": null }),
        ));
    }
    Ok(Json(view(app, id).await?))
}
