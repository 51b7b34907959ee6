//! The delivery state machine: the statuses, and the transitions that are statements of
//! their own. The claim's lease is in `claim`, the attempt's outcome in `record`, a delivery's
//! birth in the outbox; see the table in ARCHITECTURE.md.

use agora_core::dispatcher::{AttemptRecord, NextState};
use agora_core::time::{now_ms, to_rfc3339};
use serde_json::json;
use sqlx::Row;

use crate::audit::{self, Actor};
use crate::{Store, StoreError, Tx};

/// Where a delivery is in its life. Stored as its [`as_str`](Status::as_str) form, shown so in
/// the delivery log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Due at `due_at`, never attempted since it was (re)queued.
    Pending,
    /// Leased: being sent by `lease_owner`'s dispatcher (parked on SQLite when it has none).
    InFlight,
    /// Delivered; never attempted again unless redelivered.
    Succeeded,
    /// Attempted and failed; the next attempt is due at `due_at`.
    Failed,
    /// Failed with no retry left (or its webhook was disabled).
    Exhausted,
}

impl Status {
    /// Every status, in the order of a delivery's life.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::InFlight,
        Status::Succeeded,
        Status::Failed,
        Status::Exhausted,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InFlight => "in_flight",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Exhausted => "exhausted",
        }
    }

    /// The status stored as `name`.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether a delivery in this status waits for an attempt at `due_at`.
    pub fn is_due_later(self) -> bool {
        matches!(self, Status::Pending | Status::Failed)
    }
}

impl Store {
    /// Queues a delivery again now, with the same id and a fresh retry budget, and records it
    /// in the audit trail (`delivery.redelivered`). A delivery in flight is left alone
    /// ([`StoreError::Conflict`]).
    pub async fn redeliver(&self, id: &str, actor: &Actor) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT webhook_id, status FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let (webhook_id, status): (String, String) =
            (row.try_get("webhook_id")?, row.try_get("status")?);
        let done = sqlx::query(&requeue_where("id = $2 AND status <> 'in_flight'"))
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "the delivery is being attempted right now".into(),
            ));
        }
        let changes = json!({
            "webhook_id": webhook_id,
            "status": {"from": status, "to": "pending"},
        });
        audit::record(&mut tx, actor, "delivery.redelivered", id, &changes).await?;
        tx.commit().await?;
        self.waker.wake();
        Ok(())
    }

    /// Queues again every failed or exhausted delivery of a webhook created since `since`
    /// (unix ms), and records it in the audit trail (`webhook.recovered`). Returns how many.
    pub async fn recover(
        &self,
        webhook_id: &str,
        since: i64,
        actor: &Actor,
    ) -> Result<u64, StoreError> {
        let filter = "webhook_id = $2 AND status IN ('failed', 'exhausted') AND created_at >= $3";
        let mut tx = self.begin().await?;
        let done = sqlx::query(&requeue_where(filter))
            .bind(now_ms())
            .bind(webhook_id)
            .bind(since)
            .execute(&mut *tx)
            .await?;
        let changes = json!({"since": to_rfc3339(since), "requeued": done.rows_affected()});
        audit::record(&mut tx, actor, "webhook.recovered", webhook_id, &changes).await?;
        tx.commit().await?;
        self.waker.wake();
        Ok(done.rows_affected())
    }

    /// Gives back every lease, whoever holds it. Only for a single-process database (SQLite)
    /// at start-up, where no other node can be holding one. A leased delivery's attempt may
    /// have reached its receiver before the crash, so it counts as made; a parked one (no
    /// owner, always at its first attempt) was almost always never read back, so it is
    /// pending again with its attempt number given back, not a failure that spent a retry.
    /// (Every `SET` expression reads the row as it was.)
    pub async fn release_all_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET \
             attempts = CASE WHEN lease_owner IS NULL THEN attempts - 1 ELSE attempts END, \
             status = CASE WHEN lease_owner IS NULL OR attempts = 0 THEN 'pending' ELSE 'failed' END, \
             due_at = $1, lease_owner = NULL WHERE status = 'in_flight'",
        )
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Gives back the in-flight deliveries `filter` picks (its parameters from `$2`), due at `$1`,
/// as they were before their lease: the attempt they were leased for is not counted, since it
/// was never made. The one statement that undoes a lease; a deferred delivery, a shutdown and
/// the sweep of stranded leases all go through it.
pub(super) fn give_back_where(filter: &str) -> String {
    format!(
        "UPDATE deliveries SET attempts = attempts - 1, \
         status = CASE WHEN attempts - 1 = 0 THEN 'pending' ELSE 'failed' END, \
         due_at = $1, lease_owner = NULL WHERE {filter} AND status = 'in_flight'"
    )
}

/// Puts a deferred delivery back as it was before the claim: not attempted, due at the time
/// the breaker gave.
pub(super) async fn put_back(tx: &mut Tx, a: &AttemptRecord) -> Result<(), StoreError> {
    let NextState::Deferred(until) = a.next else {
        return Ok(());
    };
    sqlx::query(&give_back_where("id = $2 AND attempts = $3"))
        .bind(until)
        .bind(a.delivery_id.clone())
        .bind(i64::from(a.attempt))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Queues the deliveries `filter` picks (its parameters from `$2`) again, due at `$1`, with a
/// fresh retry budget: redeliver and recover.
fn requeue_where(filter: &str) -> String {
    format!(
        "UPDATE deliveries SET status = 'pending', due_at = $1, attempt_base = attempts, \
         updated_at = $1 WHERE {filter}"
    )
}

/// Closes a webhook's queued (not in-flight) deliveries as exhausted.
pub(crate) async fn close_queued(
    tx: &mut Tx,
    webhook_id: &str,
    why: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET status = 'exhausted', due_at = NULL, last_error = $1, updated_at = $2 \
         WHERE webhook_id = $3 AND status IN ('pending', 'failed')",
    )
    .bind(why)
    .bind(now_ms())
    .bind(webhook_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
