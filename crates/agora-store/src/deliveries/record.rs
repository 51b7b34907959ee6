//! Recording attempts: the attempt log, each delivery's next state, its webhook's health, and
//! the webhooks an attempt disables, in one bookkeeping transaction per batch.

use std::collections::HashMap;
use std::time::Duration;

use agora_core::dispatcher::{AttemptRecord, NextState};
use agora_core::event::{Event, EventType};
use agora_core::ids::{new_id, ATTEMPT};
use agora_core::time::now_ms;
use sqlx::Row;

use super::state::{close_queued, put_back, Status};
use crate::metrics::{commit_timed, Commit};
use crate::{placeholders, Backend, Params, Store, StoreError, Tx};

impl Store {
    /// Writes a batch of attempts and their consequences in one bookkeeping transaction.
    pub(super) async fn record_attempts(
        &self,
        attempts: &[AttemptRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_bookkeeping().await?;
        let now = now_ms();
        let (deferred, attempted): (Vec<&AttemptRecord>, Vec<&AttemptRecord>) = attempts
            .iter()
            .partition(|a| matches!(a.next, NextState::Deferred(_)));
        for a in deferred {
            put_back(&mut tx, a).await?;
        }
        for chunk in attempted.chunks(ATTEMPT_CHUNK) {
            insert_attempts(&mut tx, chunk).await?;
        }
        advance_deliveries(&mut tx, &attempted, now).await?;
        update_webhook_health(&mut tx, &attempted).await?;
        let mut disabled = Vec::new();
        for a in attempted
            .iter()
            .filter(|a| a.next == NextState::DisableWebhook)
        {
            let reason = "the endpoint answered 410 Gone";
            if disable_webhook(&mut tx, &a.webhook_id, reason).await? {
                disabled.push((a.webhook_id.clone(), reason.to_owned()));
            }
        }
        let gone = disabled.len();
        disabled.extend(self.auto_disable(&mut tx, &attempted).await?);
        // Only `webhook.disabled` events can have been queued here; this node's own dispatcher
        // is enough to send them, so other nodes are not notified on every batch.
        commit_timed(tx, Commit::Bookkeeping).await?;
        self.waker.wake();
        crate::metrics::auto_disabled(gone, disabled.len() - gone);
        warn_of_disabled(&disabled, &attempted);
        Ok(())
    }
}

/// Tells the operator, at `warn`, of each webhook this batch disabled, with the attempt that
/// did it (its last in the batch). Logged after the commit, so a batch that is rolled back and
/// retried does not tell of it twice.
fn warn_of_disabled(disabled: &[(String, String)], attempted: &[&AttemptRecord]) {
    for (webhook_id, reason) in disabled {
        let Some(a) = attempted.iter().rev().find(|a| &a.webhook_id == webhook_id) else {
            continue;
        };
        tracing::warn!(
            webhook_id = webhook_id.as_str(),
            delivery_id = a.delivery_id.as_str(),
            attempt = a.attempt,
            status = a.response_status,
            error = a.error.as_deref(),
            reason = reason.as_str(),
            "webhook disabled"
        );
    }
}

/// Deliveries moved per `UPDATE … FROM (VALUES …)`: multi-row statements keep the
/// per-statement round trip off every single delivery, but SQLite joins a long `VALUES` list
/// poorly (longer chunks made the recorder's updates slower in all, not faster).
const VALUES_CHUNK: usize = 50;

/// Attempts logged per `INSERT`: every statement is a round trip to the writer, which no other
/// write can use meanwhile, so a batch is logged in few; 512 rows of nine parameters stay well
/// within SQLite's limit on bound parameters (32,766).
const ATTEMPT_CHUNK: usize = 512;

/// How many rows a multi-row statement of the recorder is written for, given `n` to write: the
/// next power of two, the rest filled with rows that change nothing. Written for exactly `n`,
/// nearly every batch was a new statement text, which each connection parses and plans again;
/// with ten sizes they stay in the connection's statement cache.
fn statement_rows(n: usize) -> usize {
    n.next_power_of_two()
}

/// Logs attempts, skipping those whose delivery is gone (its webhook was deleted meanwhile).
async fn insert_attempts(tx: &mut Tx, attempts: &[&AttemptRecord]) -> Result<(), StoreError> {
    const TYPES: [&str; 9] = [
        "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "BIGINT", "TEXT", "TEXT",
    ];
    let rows = statement_rows(attempts.len());
    let backend = Backend::of(tx);
    // The filler rows name no delivery, so the `EXISTS` below drops them.
    let sql = format!(
        "INSERT{} INTO attempts (id, delivery_id, attempt, started_at, duration_ms, request_headers, \
         response_status, response_body, error) \
         SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9 \
         FROM (VALUES {}) AS v WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = v.column2)",
        backend.or_fail(),
        Params::new(backend).typed_rows(rows, &TYPES)
    );
    let mut q = sqlx::query(&sql);
    for a in attempts {
        q = q
            .bind(new_id(ATTEMPT))
            .bind(a.delivery_id.clone())
            .bind(i64::from(a.attempt))
            .bind(a.started_at)
            .bind(a.duration_ms)
            .bind(a.request_headers.as_json().to_owned())
            .bind(a.response_status.map(i64::from))
            .bind(a.response_body.clone())
            .bind(a.error.clone());
    }
    for _ in attempts.len()..rows {
        q = q
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(None::<String>)
            .bind(None::<i64>)
            .bind(None::<String>)
            .bind(None::<String>);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// The state an attempt leaves its delivery in: status, `due_at`, last status code, last error.
type NextRow<'a> = (Status, Option<i64>, Option<i64>, Option<&'a str>);

fn next_row(a: &AttemptRecord) -> NextRow<'_> {
    let (status, due_at) = match a.next {
        NextState::Succeeded => (Status::Succeeded, None),
        NextState::RetryAt(at) => (Status::Failed, Some(at)),
        NextState::Exhausted | NextState::DisableWebhook | NextState::Deferred(_) => {
            (Status::Exhausted, None)
        }
    };
    (
        status,
        due_at,
        a.response_status.map(i64::from),
        a.error.as_deref(),
    )
}

/// Deliveries moved by one `UPDATE … WHERE id IN (…)`: the attempts of one `INSERT`, so that
/// a batch of first attempts answered 200 moves in as few statements as it is logged in.
const ALIKE_CHUNK: usize = ATTEMPT_CHUNK;

/// Moves attempted deliveries to their next state. Only the claim whose attempt number matches
/// may move a delivery, so a late answer from a node whose lease expired changes nothing.
///
/// Deliveries that end alike (the common case: a batch of first attempts answered 200) move
/// together in an `UPDATE … WHERE id IN (…)`, a primary-key lookup each; the others (retries,
/// each due at its own time) through a short `VALUES` list, which SQLite joins less cheaply.
async fn advance_deliveries(
    tx: &mut Tx,
    attempts: &[&AttemptRecord],
    now: i64,
) -> Result<(), StoreError> {
    let mut alike: HashMap<(NextRow<'_>, u32), Vec<&str>> = HashMap::new();
    for a in attempts {
        alike
            .entry((next_row(a), a.attempt))
            .or_default()
            .push(&a.delivery_id);
    }
    let mut singles = Vec::new();
    for ((row, attempt), ids) in alike {
        if ids.len() == 1 {
            singles.push((ids[0], attempt, row));
            continue;
        }
        for chunk in ids.chunks(ALIKE_CHUNK) {
            advance_alike(tx, chunk, attempt, row, now).await?;
        }
    }
    for chunk in singles.chunks(VALUES_CHUNK) {
        advance_each(tx, chunk, now).await?;
    }
    Ok(())
}

/// Moves deliveries, all at attempt `attempt`, to the same next state.
async fn advance_alike(
    tx: &mut Tx,
    ids: &[&str],
    attempt: u32,
    (status, due_at, code, error): NextRow<'_>,
    now: i64,
) -> Result<(), StoreError> {
    let backend = Backend::of(tx);
    let mut params = Params::new(backend);
    // Written for `statement_rows` ids; the list is filled up by repeating the last one.
    let rows = statement_rows(ids.len());
    let sql = format!(
        "UPDATE{} deliveries SET status = {}, due_at = {}, last_status_code = {}, last_error = {}, \
         updated_at = {}, lease_owner = NULL WHERE attempts = {} AND status = 'in_flight' AND id IN ({})",
        backend.or_fail(),
        params.next(),
        params.next(),
        params.next(),
        params.next(),
        params.next(),
        params.next(),
        params.list(rows)
    );
    let mut q = sqlx::query(&sql)
        .bind(status.as_str())
        .bind(due_at)
        .bind(code)
        .bind(error.map(str::to_owned))
        .bind(now)
        .bind(i64::from(attempt));
    let filler = ids.last().into_iter().cycle().take(rows - ids.len());
    for id in ids.iter().chain(filler) {
        q = q.bind(id.to_string());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Moves deliveries each to its own next state.
async fn advance_each(
    tx: &mut Tx,
    rows: &[(&str, u32, NextRow<'_>)],
    now: i64,
) -> Result<(), StoreError> {
    const TYPES: [&str; 6] = ["TEXT", "BIGINT", "TEXT", "BIGINT", "BIGINT", "TEXT"];
    let backend = Backend::of(tx);
    let mut params = Params::new(backend);
    let updated_at = params.next();
    let sql = format!(
        "UPDATE{} deliveries SET status = v.column3, due_at = v.column4, lease_owner = NULL, \
         last_status_code = v.column5, last_error = v.column6, updated_at = {updated_at} \
         FROM (VALUES {}) AS v \
         WHERE deliveries.id = v.column1 AND deliveries.attempts = v.column2 AND deliveries.status = 'in_flight'",
        backend.or_fail(),
        params.typed_rows(rows.len(), &TYPES)
    );
    let mut q = sqlx::query(&sql).bind(now);
    for (id, attempt, (status, due_at, code, error)) in rows {
        q = q
            .bind(id.to_string())
            .bind(i64::from(*attempt))
            .bind(status.as_str())
            .bind(*due_at)
            .bind(*code)
            .bind(error.map(str::to_owned));
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Folds a batch of attempts into each webhook's `last_triggered_at`, `last_error`,
/// `last_success_at` and failure streak: one statement for the batch, not one per attempt or
/// per webhook.
async fn update_webhook_health(tx: &mut Tx, attempts: &[&AttemptRecord]) -> Result<(), StoreError> {
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
    if per_webhook.is_empty() {
        return Ok(());
    }
    const TYPES: [&str; 5] = ["TEXT", "BIGINT", "TEXT", "BIGINT", "BIGINT"];
    let backend = Backend::of(tx);
    let sql = format!(
        "UPDATE{} webhooks SET last_triggered_at = v.column2, last_error = v.column3, \
         last_success_at = COALESCE(v.column4, webhooks.last_success_at), \
         failure_streak = CASE WHEN v.column4 IS NULL THEN webhooks.failure_streak + v.column5 \
         ELSE v.column5 END \
         FROM (VALUES {}) AS v WHERE webhooks.id = v.column1",
        backend.or_fail(),
        Params::new(backend).typed_rows(per_webhook.len(), &TYPES)
    );
    let mut q = sqlx::query(&sql);
    for (webhook_id, h) in per_webhook {
        q = q
            .bind(webhook_id.to_owned())
            .bind(h.last_at)
            .bind(h.last_error)
            .bind(h.last_success)
            .bind(h.failures_after_success);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

impl Store {
    /// Disables the webhooks of this batch that failed `auto_disable_failures` times in a row
    /// with no success for `auto_disable_after` (counted from creation if they never
    /// succeeded). The conditional update makes this safe to run on every node at once.
    /// Answers the webhooks it disabled, with the reason given.
    async fn auto_disable(
        &self,
        tx: &mut Tx,
        attempts: &[&AttemptRecord],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut failing: Vec<&str> = attempts
            .iter()
            .filter(|a| a.next != NextState::Succeeded)
            .map(|a| a.webhook_id.as_str())
            .collect();
        failing.sort_unstable();
        failing.dedup();
        if failing.is_empty() {
            return Ok(Vec::new());
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
        let mut disabled = Vec::new();
        for id in ids {
            let reason = format!(
                "no successful delivery for {} and {} or more failed attempts in a row",
                humanize(self.options.auto_disable_after),
                self.options.auto_disable_failures
            );
            if disable_webhook(tx, &id, &reason).await? {
                disabled.push((id, reason));
            }
        }
        Ok(disabled)
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
/// `webhook.disabled` to the webhooks subscribed to it that may hear of it (its owner's and
/// admins'), in the caller's transaction. Does nothing if the webhook is already inactive, so
/// concurrent callers emit one event. Answers whether it disabled the webhook.
pub(crate) async fn disable_webhook(
    tx: &mut Tx,
    webhook_id: &str,
    reason: &str,
) -> Result<bool, StoreError> {
    let before = match Store::webhook_in(tx, webhook_id).await {
        Err(StoreError::NotFound) => return Ok(false),
        found => found?,
    };
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
        return Ok(false);
    }
    close_queued(tx, webhook_id, "webhook was disabled").await?;
    let webhook = Store::webhook_in(tx, webhook_id).await?;
    let changes = crate::audit::webhook_diff(Some(&before), Some(&webhook));
    crate::audit::record(
        tx,
        &crate::audit::Actor::system(),
        "webhook.disabled",
        webhook_id,
        &changes,
    )
    .await?;
    let event = Event::new(
        EventType::parse("webhook.disabled").expect("a valid name"),
        serde_json::to_value(webhook.event_view()).expect("webhooks serialize"),
    );
    crate::outbox::publish_operational(tx, &event, webhook.owner_key_id.as_deref()).await?;
    Ok(true)
}
