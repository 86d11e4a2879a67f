//! The expense workflow: reserve budget, publish a status, wait for a decision or the
//! deadline, then pay or give the budget back.

use std::rc::Rc;
use std::time::Duration;

use futures::{pin_mut, select, FutureExt};
use ordo::Ctx;
use serde::{Deserialize, Serialize};

use crate::ledger::Ledger;

/// The workflow's registered name.
pub const NAME: &str = "expense";

/// The event under which every expense publishes where it is.
pub const STATUS: &str = "status";

/// The message topics a decision arrives on; the payload is who approved, or why not.
pub const APPROVE: &str = "approve";
pub const REJECT: &str = "reject";

/// The statuses an expense goes through (the values of its `status` event).
pub const AWAITING: &str = "awaiting_approval";
pub const PAID: &str = "paid";
pub const REJECTED: &str = "rejected";
pub const EXPIRED: &str = "expired";
pub const REFUSED: &str = "refused";

/// Whether `status` is one an expense ends with (the workflow has ended, or is about to).
pub fn is_final(status: &str) -> bool {
    [PAID, REJECTED, EXPIRED, REFUSED].contains(&status)
}

/// The workflow's input, as recorded in the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Expense {
    /// Who spent the money.
    pub who: String,
    /// How much, in whole currency units.
    pub amount: u64,
    /// How long to wait for a decision. Part of the input, not read from the server's
    /// flags at each run: a restart with another `--speed` leaves the deadlines of
    /// the expenses already waiting as they were recorded.
    pub timeout_ms: u64,
}

/// How an expense ended: the workflow's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settlement {
    /// Approved and paid.
    Paid {
        /// Who approved it.
        by: String,
        /// The payment's reference.
        payment: String,
    },
    /// Rejected; the budget was given back.
    Rejected {
        /// Why, as the rejecter said.
        reason: String,
    },
    /// Nobody decided in time; the budget was given back.
    Expired {
        /// How long it waited, in ms.
        waited_ms: u64,
    },
    /// The budget could not cover it; nothing was reserved.
    Refused {
        /// The ledger's reason.
        reason: String,
    },
}

/// What woke the workflow up.
enum Decision {
    Approve(String),
    Reject(String),
    Expire,
}

/// The workflow. `ledger` is the outside world its steps change.
pub async fn expense(ctx: Ctx, expense: Expense, ledger: Rc<Ledger>) -> Result<Settlement, String> {
    let id = ctx.workflow_id().to_string();
    let amount = expense.amount;

    let reserved = {
        let (ledger, id) = (Rc::clone(&ledger), id.clone());
        ctx.step("reserve", move || async move {
            ledger.reserve(&id, amount, &idempotency_key())
        })
        .await
    };
    if let Err(reason) = reserved {
        ctx.set_event(STATUS, REFUSED.to_string()).await;
        return Ok(Settlement::Refused { reason });
    }
    ctx.set_event(STATUS, AWAITING.to_string()).await;

    // Three arms, each a durable call that took its step ids here, in program order:
    // the journal records which completion was delivered first, so a replay takes the
    // same arm whatever arrives when. A losing `recv` gives its message back.
    let timeout = Duration::from_millis(expense.timeout_ms);
    let approve = ctx.recv::<String>(APPROVE, Duration::MAX).fuse();
    let reject = ctx.recv::<String>(REJECT, Duration::MAX).fuse();
    let expire = ctx.sleep(timeout).fuse();
    pin_mut!(approve, reject, expire);
    let decision = select! {
        by = approve => by.map_or(Decision::Expire, Decision::Approve),
        reason = reject => reason.map_or(Decision::Expire, Decision::Reject),
        () = expire => Decision::Expire,
    };

    let settlement = match decision {
        Decision::Approve(by) => {
            let payment = ctx
                .step("pay", move || async move {
                    ledger.pay(&id, amount, &idempotency_key())
                })
                .await?;
            ctx.set_event(STATUS, PAID.to_string()).await;
            Settlement::Paid { by, payment }
        }
        Decision::Reject(reason) => {
            release(&ctx, ledger, id, amount).await?;
            ctx.set_event(STATUS, REJECTED.to_string()).await;
            Settlement::Rejected { reason }
        }
        Decision::Expire => {
            release(&ctx, ledger, id, amount).await?;
            ctx.set_event(STATUS, EXPIRED.to_string()).await;
            Settlement::Expired {
                waited_ms: expense.timeout_ms,
            }
        }
    };
    Ok(settlement)
}

async fn release(ctx: &Ctx, ledger: Rc<Ledger>, id: String, amount: u64) -> Result<(), String> {
    ctx.step("release", move || async move {
        ledger.release(&id, amount, &idempotency_key())
    })
    .await
}

/// The running step's idempotency key (`<workflow id>:<step id>`), the same in every
/// run of its body.
fn idempotency_key() -> String {
    ordo::current_step()
        .map(|step| step.idempotency_key())
        .unwrap_or_default()
}
