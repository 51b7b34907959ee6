//! Deliveries: the durable state machine the dispatcher drives, and the delivery log.
//!
//! ```text
//! pending ──claim──▶ in_flight ──2xx──▶ succeeded
//!    ▲                  │ ├──fail, retries left──▶ failed ──due──▶ (claimed again)
//!    │                  │ └──fail, none left / 410──▶ exhausted
//!    └── redeliver, recover, lease expiry, shutdown ◀┘
//! ```
//!
//! `due_at` carries the next attempt time of pending and failed deliveries and the lease expiry
//! of in-flight ones, so one partial index answers "what is due" whatever the backlog.

use std::collections::HashMap;
use std::time::Duration;

use agora_core::dispatcher::{
    AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryQueue, NextState, QueueError,
};
use agora_core::event::{Event, EventType};
use agora_core::format::Format;
use agora_core::ids::{new_id, ATTEMPT};
use agora_core::time::{now_ms, to_rfc3339};
use serde::Serialize;
use sqlx::Row;

use crate::webhooks::close_queued;
use crate::{placeholders, Backend, Params, Store, StoreError, Tx};

/// One delivery as the log shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    /// `msg_…`, also the `webhook-id` header.
    pub id: String,
    /// The event delivered.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The webhook delivered to.
    pub webhook_id: String,
    /// `pending`, `in_flight`, `succeeded`, `failed` (a retry is scheduled) or `exhausted`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due, for pending and failed deliveries.
    pub next_attempt_at: Option<String>,
    /// The last response status.
    pub last_status_code: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Queued at.
    pub created_at: String,
    /// Last changed at.
    pub updated_at: String,
}

/// One attempt as the log shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// `att_…`.
    pub id: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// When it started.
    pub started_at: String,
    /// How long it took.
    pub duration_ms: i64,
    /// Headers sent, credentials redacted.
    pub request_headers: serde_json::Value,
    /// The response status, when there was a response.
    pub response_status: Option<i64>,
    /// The first 4 KiB of the response body.
    pub response_body: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What the log may be filtered by.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    /// `pending` (includes in flight), `succeeded`, or `failed` (includes exhausted).
    pub status: Option<String>,
    /// An exact event type.
    pub event_type: Option<String>,
}

const DELIVERY_COLUMNS: &str = "id, event_id, event_type, webhook_id, status, attempts, due_at, \
    last_status_code, last_error, created_at, updated_at";

fn delivery_from_row(row: &sqlx::any::AnyRow) -> Result<Delivery, StoreError> {
    let status: String = row.try_get("status")?;
    let due_at: Option<i64> = row.try_get("due_at")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        webhook_id: row.try_get("webhook_id")?,
        next_attempt_at: due_at
            .filter(|_| status == "pending" || status == "failed")
            .map(to_rfc3339),
        status,
        attempts: row.try_get("attempts")?,
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        created_at: to_rfc3339(row.try_get("created_at")?),
        updated_at: to_rfc3339(row.try_get("updated_at")?),
    })
}

impl Store {
    /// A webhook's deliveries, newest first, before `cursor` (a delivery id).
    pub async fn list_deliveries(
        &self,
        webhook_id: &str,
        filter: &DeliveryFilter,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let statuses: &[&str] = match filter.status.as_deref() {
            Some("pending") => &["pending", "in_flight"],
            Some("succeeded") => &["succeeded"],
            Some("failed") => &["failed", "exhausted"],
            _ => &["pending", "in_flight", "succeeded", "failed", "exhausted"],
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE webhook_id = $1 AND id < $2 \
             AND ($3 = '' OR event_type = $3) AND status IN ({}) ORDER BY id DESC LIMIT $4",
            placeholders(5, statuses.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(webhook_id)
            .bind(before.unwrap_or("msg_~"))
            .bind(filter.event_type.clone().unwrap_or_default())
            .bind(limit);
        for s in statuses {
            q = q.bind(*s);
        }
        q.fetch_all(&self.read)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    /// One delivery and its attempts, oldest attempt first.
    pub async fn delivery(&self, id: &str) -> Result<(Delivery, Vec<Attempt>), StoreError> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound)?;
        let delivery = delivery_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT id, attempt, started_at, duration_ms, request_headers, response_status, response_body, error \
             FROM attempts WHERE delivery_id = $1 ORDER BY started_at, id",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|row| {
            let headers: String = row.try_get("request_headers")?;
            let pairs: Vec<(String, String)> = serde_json::from_str(&headers)
                .map_err(|e| StoreError::Internal(format!("corrupt attempt headers: {e}")))?;
            Ok(Attempt {
                id: row.try_get("id")?,
                attempt: row.try_get("attempt")?,
                started_at: to_rfc3339(row.try_get("started_at")?),
                duration_ms: row.try_get("duration_ms")?,
                request_headers: pairs
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect::<serde_json::Map<_, _>>()
                    .into(),
                response_status: row.try_get("response_status")?,
                response_body: row.try_get("response_body")?,
                error: row.try_get("error")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((delivery, attempts))
    }

    /// Queues a delivery again now, with the same id and a fresh retry budget. A delivery in
    /// flight is left alone ([`StoreError::Conflict`]).
    pub async fn redeliver(&self, id: &str) -> Result<(), StoreError> {
        let now = now_ms();
        let done = self
            .execute_durably(
                sqlx::query(
                    "UPDATE deliveries SET status = 'pending', due_at = $1, attempt_base = attempts, updated_at = $1 \
                     WHERE id = $2 AND status <> 'in_flight'",
                )
                .bind(now)
                .bind(id),
            )
            .await?;
        if done.rows_affected() == 0 {
            self.delivery(id).await?;
            return Err(StoreError::Conflict(
                "the delivery is being attempted right now".into(),
            ));
        }
        self.waker.wake();
        Ok(())
    }

    /// Queues again every failed or exhausted delivery of a webhook created since `since`
    /// (unix ms). Returns how many.
    pub async fn recover(&self, webhook_id: &str, since: i64) -> Result<u64, StoreError> {
        let now = now_ms();
        let done = self
            .execute_durably(
                sqlx::query(
                    "UPDATE deliveries SET status = 'pending', due_at = $1, attempt_base = attempts, updated_at = $1 \
                     WHERE webhook_id = $2 AND status IN ('failed', 'exhausted') AND created_at >= $3",
                )
                .bind(now)
                .bind(webhook_id)
                .bind(since),
            )
            .await?;
        self.waker.wake();
        Ok(done.rows_affected())
    }

    /// Gives back every lease, whoever holds it. Only for a single-process database (SQLite)
    /// at start-up, where no other node can be holding one.
    pub async fn release_all_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = CASE WHEN attempts = 0 THEN 'pending' ELSE 'failed' END, \
             due_at = $1, lease_owner = NULL WHERE status = 'in_flight'",
        )
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// The deliveries with these ids, joined with their event and webhook, ready to send.
    pub async fn load_claimed(&self, ids: &[String]) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT d.id, d.event_id, d.event_type, d.webhook_id, d.attempts, d.attempt_base, e.body, \
             w.url, w.secret, w.previous_secret, w.previous_secret_until, w.headers, w.timeout_ms, \
             w.retry_count, w.format \
             FROM deliveries d JOIN events e ON e.id = d.event_id JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.id IN ({})",
            Params::new(self.backend).list(ids.len())
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id.clone());
        }
        let now = now_ms();
        let mut opened = HashMap::new();
        q.fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| claimed_from_row(self, row, now, &mut opened))
            .collect()
    }
}

/// A webhook's secrets, opened, and its custom headers, parsed: once per claimed batch, not
/// once per delivery (a batch often holds many deliveries of few webhooks).
type OpenedWebhook = (
    Vec<agora_core::signing::WebhookSecret>,
    Vec<(String, String)>,
);

fn claimed_from_row(
    store: &Store,
    row: &sqlx::any::AnyRow,
    now: i64,
    opened: &mut HashMap<String, OpenedWebhook>,
) -> Result<ClaimedDelivery, StoreError> {
    let webhook_id: String = row.try_get("webhook_id")?;
    if !opened.contains_key(&webhook_id) {
        let secrets = store.signing_secrets(row, now)?;
        let headers: String = row.try_get("headers")?;
        let headers: std::collections::BTreeMap<String, String> = serde_json::from_str(&headers)
            .map_err(|_| StoreError::Internal("corrupt webhook headers".into()))?;
        opened.insert(webhook_id.clone(), (secrets, headers.into_iter().collect()));
    }
    let (secrets, headers) = opened[&webhook_id].clone();
    let attempts: i64 = row.try_get("attempts")?;
    let base: i64 = row.try_get("attempt_base")?;
    let format: String = row.try_get("format")?;
    Ok(ClaimedDelivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        webhook_id,
        url: row.try_get("url")?,
        secrets,
        headers,
        timeout: Duration::from_millis(row.try_get::<i64, _>("timeout_ms")?.max(1) as u64),
        format: Format::parse(&format).unwrap_or_default(),
        body: row.try_get("body")?,
        attempt: attempts as u32,
        retries_done: (attempts - base - 1).max(0) as u32,
        retry_count: row.try_get::<i64, _>("retry_count")?.max(0) as u32,
    })
}

impl DeliveryQueue for Store {
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<ClaimedDelivery>, QueueError> {
        let skip = if request.skip_webhooks.is_empty() {
            String::new()
        } else {
            format!(
                "AND webhook_id NOT IN ({})",
                placeholders(5, request.skip_webhooks.len())
            )
        };
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE deliveries SET status = 'in_flight', lease_owner = $1, due_at = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM deliveries WHERE due_at IS NOT NULL AND due_at <= $3 {skip} \
             ORDER BY due_at LIMIT $4 {lock}) RETURNING id"
        );
        let mut q = sqlx::query(&sql)
            .bind(request.node.clone())
            .bind(request.lease_until)
            .bind(request.now)
            .bind(request.limit as i64);
        for w in &request.skip_webhooks {
            q = q.bind(w.clone());
        }
        let mut tx = self.begin_bookkeeping().await?;
        let ids: Vec<String> = q
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(self.load_claimed(&ids).await?)
    }

    async fn record(&self, attempts: Vec<AttemptRecord>) -> Result<(), QueueError> {
        let mut tx = self.begin_bookkeeping().await?;
        let now = now_ms();
        let (deferred, attempted): (Vec<_>, Vec<_>) = attempts
            .into_iter()
            .partition(|a| matches!(a.next, NextState::Deferred(_)));
        for a in &deferred {
            put_back(&mut tx, a).await?;
        }
        for chunk in attempted.chunks(RECORD_CHUNK) {
            insert_attempts(&mut tx, chunk).await?;
            advance_deliveries(&mut tx, chunk, now).await?;
        }
        update_webhook_health(&mut tx, &attempted).await?;
        for a in attempted
            .iter()
            .filter(|a| a.next == NextState::DisableWebhook)
        {
            disable_webhook(&mut tx, &a.webhook_id, "the endpoint answered 410 Gone").await?;
        }
        self.auto_disable(&mut tx, &attempted).await?;
        // Only `webhook.disabled` events can have been queued here; this node's own dispatcher
        // is enough to send them, so other nodes are not notified on every batch.
        tx.commit().await.map_err(StoreError::from)?;
        self.waker.wake();
        Ok(())
    }

    async fn renew_leases(&self, node: &str, until: i64) -> Result<(), QueueError> {
        sqlx::query(
            "UPDATE deliveries SET due_at = $1 WHERE lease_owner = $2 AND status = 'in_flight'",
        )
        .bind(until)
        .bind(node)
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        Ok(())
    }

    async fn release_leases(&self, node: &str) -> Result<(), QueueError> {
        // Only deliveries never sent are still leased here: attempts made were recorded first.
        sqlx::query(
            "UPDATE deliveries SET attempts = attempts - 1, \
             status = CASE WHEN attempts - 1 = 0 THEN 'pending' ELSE 'failed' END, \
             due_at = $1, lease_owner = NULL WHERE lease_owner = $2 AND status = 'in_flight'",
        )
        .bind(now_ms())
        .bind(node)
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        Ok(())
    }
}

/// Puts a deferred delivery back as it was before the claim: not attempted, due at the time
/// the breaker gave.
async fn put_back(tx: &mut Tx, a: &AttemptRecord) -> Result<(), StoreError> {
    let NextState::Deferred(until) = a.next else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE deliveries SET attempts = attempts - 1, \
         status = CASE WHEN attempts - 1 = 0 THEN 'pending' ELSE 'failed' END, \
         due_at = $1, lease_owner = NULL WHERE id = $2 AND attempts = $3 AND status = 'in_flight'",
    )
    .bind(until)
    .bind(a.delivery_id.clone())
    .bind(i64::from(a.attempt))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Attempts recorded per statement: multi-row statements keep the per-statement overhead
/// (a round trip to SQLite's worker thread, a PostgreSQL message) off every single attempt.
const RECORD_CHUNK: usize = 50;

/// Logs attempts, skipping those whose delivery is gone (its webhook was deleted meanwhile).
async fn insert_attempts(tx: &mut Tx, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
    const TYPES: [&str; 9] = [
        "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "TEXT", "TEXT",
    ];
    let sql = format!(
        "INSERT INTO attempts (id, delivery_id, attempt, started_at, duration_ms, request_headers, \
         response_status, response_body, error) \
         SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9 \
         FROM (VALUES {}) AS v WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = v.column2)",
        Params::for_tx(tx).typed_rows(attempts.len(), &TYPES)
    );
    let mut q = sqlx::query(&sql);
    for a in attempts {
        q = q
            .bind(new_id(ATTEMPT))
            .bind(a.delivery_id.clone())
            .bind(i64::from(a.attempt))
            .bind(a.started_at)
            .bind(a.duration_ms)
            .bind(serde_json::to_string(&a.request_headers).expect("strings serialize"))
            .bind(a.response_status.map(i64::from))
            .bind(a.response_body.clone())
            .bind(a.error.clone());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Moves attempted deliveries to their next state. Only the claim whose attempt number matches
/// may move a delivery, so a late answer from a node whose lease expired changes nothing.
async fn advance_deliveries(
    tx: &mut Tx,
    attempts: &[AttemptRecord],
    now: i64,
) -> Result<(), StoreError> {
    const TYPES: [&str; 6] = ["TEXT", "BIGINT", "TEXT", "BIGINT", "BIGINT", "TEXT"];
    let mut params = Params::for_tx(tx);
    let updated_at = params.next();
    let sql = format!(
        "UPDATE deliveries SET status = v.column3, due_at = v.column4, lease_owner = NULL, \
         last_status_code = v.column5, last_error = v.column6, updated_at = {updated_at} \
         FROM (VALUES {}) AS v \
         WHERE deliveries.id = v.column1 AND deliveries.attempts = v.column2 AND deliveries.status = 'in_flight'",
        params.typed_rows(attempts.len(), &TYPES)
    );
    let mut q = sqlx::query(&sql).bind(now);
    for a in attempts {
        let (status, due_at) = match a.next {
            NextState::Succeeded => ("succeeded", None),
            NextState::RetryAt(at) => ("failed", Some(at)),
            NextState::Exhausted | NextState::DisableWebhook | NextState::Deferred(_) => {
                ("exhausted", None)
            }
        };
        q = q
            .bind(a.delivery_id.clone())
            .bind(i64::from(a.attempt))
            .bind(status)
            .bind(due_at)
            .bind(a.response_status.map(i64::from))
            .bind(a.error.clone());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Folds a batch of attempts into each webhook's `last_triggered_at`, `last_error`,
/// `last_success_at` and failure streak: one statement per webhook, not per attempt.
async fn update_webhook_health(tx: &mut Tx, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
    struct Health {
        last_at: i64,
        last_error: Option<String>,
        last_success: Option<i64>,
        failures_after_success: i64,
    }
    let mut per_webhook: HashMap<&str, Health> = HashMap::new();
    for a in attempts {
        let h = per_webhook.entry(&a.webhook_id).or_insert(Health {
            last_at: 0,
            last_error: None,
            last_success: None,
            failures_after_success: 0,
        });
        if a.started_at >= h.last_at {
            h.last_at = a.started_at;
            h.last_error = a.error.clone();
        }
        if a.next == NextState::Succeeded {
            h.last_success = Some(h.last_success.unwrap_or(0).max(a.started_at));
            h.failures_after_success = 0;
        } else {
            h.failures_after_success += 1;
        }
    }
    for (webhook_id, h) in per_webhook {
        sqlx::query(
            "UPDATE webhooks SET last_triggered_at = $1, last_error = $2, \
             last_success_at = COALESCE($3, last_success_at), \
             failure_streak = CASE WHEN $3 IS NULL THEN failure_streak + $4 ELSE $4 END \
             WHERE id = $5",
        )
        .bind(h.last_at)
        .bind(h.last_error)
        .bind(h.last_success)
        .bind(h.failures_after_success)
        .bind(webhook_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Disables the webhooks of this batch that failed `auto_disable_failures` times in a row
    /// with no success for `auto_disable_after` (counted from creation if they never
    /// succeeded). The conditional update makes this safe to run on every node at once.
    async fn auto_disable(
        &self,
        tx: &mut Tx,
        attempts: &[AttemptRecord],
    ) -> Result<(), StoreError> {
        let mut failing: Vec<&str> = attempts
            .iter()
            .filter(|a| a.next != NextState::Succeeded)
            .map(|a| a.webhook_id.as_str())
            .collect();
        failing.sort_unstable();
        failing.dedup();
        if failing.is_empty() {
            return Ok(());
        }
        let quiet_since = now_ms() - self.options.auto_disable_after.as_millis() as i64;
        let sql = format!(
            "SELECT id FROM webhooks WHERE status = 'active' AND failure_streak >= $1 \
             AND COALESCE(last_success_at, created_at) <= $2 AND id IN ({})",
            placeholders(3, failing.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(self.options.auto_disable_failures)
            .bind(quiet_since);
        for id in &failing {
            q = q.bind(id.to_string());
        }
        let ids: Vec<String> = q
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        for id in ids {
            let reason = format!(
                "no successful delivery for {} and {} or more failed attempts in a row",
                humanize(self.options.auto_disable_after),
                self.options.auto_disable_failures
            );
            disable_webhook(tx, &id, &reason).await?;
        }
        Ok(())
    }
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s >= 3_600 && s % 3_600 == 0 => format!("{} hours", s / 3_600),
        s => format!("{s} seconds"),
    }
}

/// Disables a webhook for a reason the system found: closes its queued deliveries and emits
/// `webhook.disabled` to the webhooks subscribed to it, in the caller's transaction. Does
/// nothing if the webhook is already inactive, so concurrent callers emit one event.
pub(crate) async fn disable_webhook(
    tx: &mut Tx,
    webhook_id: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE webhooks SET status = 'inactive', disabled_reason = $1, updated_at = $2 \
         WHERE id = $3 AND status = 'active'",
    )
    .bind(reason)
    .bind(now_ms())
    .bind(webhook_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    close_queued(tx, webhook_id, "webhook was disabled").await?;
    let webhook = Store::webhook_in(tx, webhook_id).await?;
    let event = Event::new(
        EventType::parse("webhook.disabled").expect("a valid name"),
        serde_json::to_value(webhook.view()).expect("webhooks serialize"),
    );
    crate::outbox::publish(tx, &event, None).await?;
    Ok(())
}
