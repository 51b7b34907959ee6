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
//! of in-flight ones (none on SQLite, where leases never expire: see
//! `Backend::lease_due_at`), so one partial index answers "what is due" whatever the backlog.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agora_core::dispatcher::{
    derived_headers, AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryQueue, LeasedDelivery,
    NextState, QueueError, WebhookSettings,
};
use agora_core::event::{Event, EventType};
use agora_core::format::Format;
use agora_core::ids::{new_id, ATTEMPT};
use agora_core::time::{now_ms, to_rfc3339};
use serde::Serialize;
use sqlx::Row;

use crate::parked::Cursor;
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
            let (attempt, started_at) = (row.try_get("attempt")?, row.try_get("started_at")?);
            Ok(Attempt {
                id: row.try_get("id")?,
                attempt,
                started_at: to_rfc3339(started_at),
                duration_ms: row.try_get("duration_ms")?,
                request_headers: logged_headers(pairs, &delivery, attempt, started_at),
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

    /// The deliveries with these ids, ready to send (the `test` endpoint sends its own).
    pub async fn load_claimed(&self, ids: &[String]) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let leased = self
            .read_by_ids(&format!("SELECT {LEASED_COLUMNS} FROM deliveries"), ids)
            .await?
            .iter()
            .map(leased_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.load_leased(&leased).await
    }

    /// Joins leased deliveries with their event bodies and webhook settings in memory: one
    /// query for the distinct events and one for the distinct webhooks of the batch (a batch
    /// often holds many deliveries of few webhooks, and one event for several webhooks), and
    /// each webhook's secrets opened once.
    async fn load_leased(
        &self,
        leased: &[LeasedDelivery],
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let event_ids = distinct(leased.iter().map(|l| l.event_id.as_str()));
        let webhook_ids = distinct(leased.iter().map(|l| l.webhook_id.as_str()));
        let (bodies, webhooks) =
            tokio::try_join!(self.event_bodies(&event_ids), self.senders(&webhook_ids))?;
        Ok(leased
            .iter()
            .filter_map(|l| {
                let body = bodies.get(&l.event_id)?;
                let (settings, retry_count) = webhooks.get(&l.webhook_id)?;
                Some(ClaimedDelivery {
                    id: l.id.clone(),
                    event_id: l.event_id.clone(),
                    event_type: l.event_type.clone(),
                    webhook_id: l.webhook_id.clone(),
                    webhook: settings.clone(),
                    body: body.clone(),
                    attempt: l.attempt,
                    retries_done: l.retries_done,
                    retry_count: *retry_count,
                })
            })
            .collect())
    }

    /// The rows of `select` (a `SELECT … FROM table`) whose `id` is one of `ids`, read on the
    /// read pool in one statement (a claimed batch is at most a few thousand ids).
    async fn read_by_ids(
        &self,
        select: &str,
        ids: &[impl AsRef<str>],
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        let sql = format!(
            "{select} WHERE id IN ({})",
            Params::new(self.backend).list(ids.len())
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id.as_ref().to_owned());
        }
        Ok(q.fetch_all(&self.read).await?)
    }

    /// The bodies of these events, by id, read as one JSON row: a claimed batch names about a
    /// hundred events, and each row of a result is a message from the database's thread to
    /// this task and a conversion to a generic row (a tenth of the CPU time of the 10-webhook
    /// benchmark went to loading batches).
    async fn event_bodies(&self, ids: &[&str]) -> Result<HashMap<String, Arc<str>>, StoreError> {
        let select = match self.backend {
            Backend::Sqlite => "SELECT json_group_array(json_array(id, body)) AS bodies FROM events",
            Backend::Postgres => {
                "SELECT COALESCE(json_agg(json_build_array(id, body)), '[]')::text AS bodies FROM events"
            }
        };
        let rows = self.read_by_ids(select, ids).await?;
        let Some(row) = rows.first() else {
            return Ok(HashMap::new());
        };
        let bodies: Vec<(String, String)> =
            serde_json::from_str(&row.try_get::<String, _>("bodies")?)
                .map_err(|e| StoreError::Internal(format!("unreadable event bodies: {e}")))?;
        Ok(bodies
            .into_iter()
            .map(|(id, body)| (id, body.into()))
            .collect())
    }

    /// The sending settings of these webhooks, secrets opened, with the retries each allows.
    async fn senders(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, (Arc<WebhookSettings>, u32)>, StoreError> {
        let rows = self
            .read_by_ids(
                "SELECT id AS webhook_id, url, secret, previous_secret, previous_secret_until, \
                 headers, timeout_ms, retry_count, format FROM webhooks",
                ids,
            )
            .await?;
        let now = now_ms();
        rows.iter()
            .map(|row| {
                let headers: String = row.try_get("headers")?;
                let headers: std::collections::BTreeMap<String, String> =
                    serde_json::from_str(&headers)
                        .map_err(|_| StoreError::Internal("corrupt webhook headers".into()))?;
                let format: String = row.try_get("format")?;
                let settings = WebhookSettings {
                    url: row.try_get("url")?,
                    secrets: self.signing_secrets(row, now)?,
                    headers: headers.into_iter().collect(),
                    timeout: Duration::from_millis(
                        row.try_get::<i64, _>("timeout_ms")?.max(1) as u64
                    ),
                    format: Format::parse(&format).unwrap_or_default(),
                };
                let retry_count = row.try_get::<i64, _>("retry_count")?.max(0) as u32;
                Ok((
                    row.try_get("webhook_id")?,
                    (Arc::new(settings), retry_count),
                ))
            })
            .collect()
    }
}

fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = values.collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The columns of `deliveries` a [`LeasedDelivery`] is read from.
const LEASED_COLUMNS: &str = "id, webhook_id, event_id, event_type, attempts, attempt_base";

fn leased_from_row(row: &sqlx::any::AnyRow) -> Result<LeasedDelivery, StoreError> {
    Ok(leased(
        row.try_get("id")?,
        row.try_get("webhook_id")?,
        row.try_get("event_id")?,
        row.try_get("event_type")?,
        row.try_get("attempts")?,
        row.try_get("attempt_base")?,
    ))
}

/// A leased delivery from its columns, `attempts` counting the attempt it is leased for.
pub(crate) fn leased(
    id: String,
    webhook_id: String,
    event_id: String,
    event_type: String,
    attempts: i64,
    base: i64,
) -> LeasedDelivery {
    LeasedDelivery {
        id,
        webhook_id,
        event_id,
        event_type,
        attempt: attempts as u32,
        retries_done: (attempts - base - 1).max(0) as u32,
    }
}

impl Store {
    /// Leases due work on SQLite, where one process claims: the head of the due order is read
    /// through the due index, then webhooks with no room are filtered out. Without the window, a
    /// claim behind a large backlog of skipped webhooks would read all of it every time, holding
    /// the only writer.
    ///
    /// What is taken is the first rows of the window that pass the filter, without sorting them
    /// again: the window is read in due order, and whatever order SQLite hands its rows on in,
    /// every row taken is among the earliest due. Sorting the window again made the claim's
    /// `SELECT` 1.7 times as dear (1.72 against 0.96–1.00 µs a row in
    /// `scripts/sqlite_claim_cost.py`).
    ///
    /// The chosen rows come back as one JSON row, and the lease is written by rowid without
    /// `RETURNING`: sqlx hands rows from its SQLite thread to the caller through a channel of 50,
    /// so a claim streaming a thousand rows stopped the writer every time that channel filled
    /// until the dispatcher's task came round to drain it (5,045 of the writer thread's 8,249
    /// waits in 5 s of the 10-webhook benchmark).
    async fn claim_on_sqlite(
        &self,
        request: &ClaimRequest,
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        // $1 now, $2 limit, $3 window, then the skipped webhooks.
        let skip = skipping(4, &request.skip_webhooks);
        let choose = format!(
            "SELECT json_group_array(json_array(d.rowid, d.id, d.webhook_id, d.event_id, \
             d.event_type, d.attempts, d.attempt_base)) AS claimed FROM deliveries d \
             WHERE d.rowid IN (SELECT rowid FROM (SELECT rowid, webhook_id, due_at FROM deliveries \
             WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $3) AS head \
             WHERE due_at IS NOT NULL {skip} LIMIT $2)"
        );
        let window = request.window.unwrap_or(usize::MAX).min(i64::MAX as usize) as i64;
        let mut q = sqlx::query(&choose)
            .bind(request.now)
            .bind(request.limit as i64)
            .bind(window);
        for w in &request.skip_webhooks {
            q = q.bind(w.clone());
        }
        let mut tx = self.begin_bookkeeping().await?;
        let claimed: String = q.fetch_one(&mut *tx).await?.try_get("claimed")?;
        let rows: Vec<ChosenRow> = serde_json::from_str(&claimed)
            .map_err(|e| StoreError::Internal(format!("unreadable claim: {e}")))?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rowids = serde_json::to_string(&rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .expect("integers serialize");
        // `OR FAIL`: see `Backend::or_fail`.
        sqlx::query(
            "UPDATE OR FAIL deliveries SET status = 'in_flight', lease_owner = $1, due_at = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE rowid IN (SELECT value FROM json_each($4))",
        )
        .bind(request.node.clone())
        .bind(self.backend.lease_due_at(request.lease_until))
        .bind(request.now)
        .bind(rowids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(
                |ChosenRow(_, id, webhook_id, event_id, event_type, attempts, base)| {
                    // What the update just wrote: this is attempt `attempts + 1`.
                    leased(id, webhook_id, event_id, event_type, attempts + 1, base)
                },
            )
            .collect())
    }

    /// Leases due work on PostgreSQL: each node skips the rows other nodes are claiming, so
    /// concurrent claims take disjoint work; the lock applies to the rows taken, never to a
    /// window of rows other nodes could take.
    async fn claim_on_postgres(
        &self,
        request: &ClaimRequest,
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        // $1 node, $2 lease expiry, $3 now, $4 limit, then the skipped webhooks.
        let skip = skipping(5, &request.skip_webhooks);
        let sql = format!(
            "UPDATE deliveries SET status = 'in_flight', lease_owner = $1, due_at = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM deliveries WHERE due_at IS NOT NULL AND due_at <= $3 {skip} \
             ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING {LEASED_COLUMNS}"
        );
        let mut q = sqlx::query(&sql)
            .bind(request.node.clone())
            .bind(self.backend.lease_due_at(request.lease_until))
            .bind(request.now)
            .bind(request.limit as i64);
        for w in &request.skip_webhooks {
            q = q.bind(w.clone());
        }
        let mut tx = self.begin_bookkeeping().await?;
        let leased = q
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(leased_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(leased)
    }
}

/// The claim's filter leaving out the webhooks with no room, its parameters numbered from
/// `first`.
fn skipping(first: usize, webhooks: &[String]) -> String {
    if webhooks.is_empty() {
        return String::new();
    }
    format!(
        "AND webhook_id NOT IN ({})",
        placeholders(first, webhooks.len())
    )
}

/// One parked delivery read back, as its JSON array: id, event, event type, attempts and
/// attempt base.
#[derive(serde::Deserialize)]
struct ParkedRow(String, String, String, i64, i64);

impl Store {
    /// Reads back up to `room` parked deliveries (see [`crate::parked`]) of the webhooks not
    /// in `skip`, an equal share each (the last ones may get less), oldest first, writing
    /// nothing. The single write connection is held from the first read to the last move of
    /// the register, so no publish can park a delivery between a read and the move it causes.
    /// A read that fails after others succeeded ends the round with what was read, whose
    /// cursors have moved: failing the whole claim would drop rows already moved past.
    async fn read_parked(
        &self,
        skip: &[String],
        room: usize,
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        let parked = &self.leasing.parked;
        let readable = parked.readable(skip);
        if readable.is_empty() {
            return Ok(Vec::new());
        }
        let share = room.div_ceil(readable.len());
        let mut conn = self.write.acquire().await?;
        let mut read = Vec::new();
        for (webhook_id, cursor) in readable {
            let ask = share.min(room - read.len());
            if ask == 0 {
                break;
            }
            let rows = match parked_rows(&mut conn, &webhook_id, cursor, ask).await {
                Ok(rows) => rows,
                Err(e) if read.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "failed to read parked deliveries; keeping those read");
                    break;
                }
            };
            let last = rows.iter().map(|r| r.0.clone()).max();
            parked.advance(&webhook_id, last, rows.len() < ask);
            read.extend(rows.into_iter().map(
                |ParkedRow(id, event_id, event_type, attempts, base)| {
                    leased(id, webhook_id.clone(), event_id, event_type, attempts, base)
                },
            ));
        }
        Ok(read)
    }
}

/// Up to `ask` parked deliveries of `webhook_id` from `cursor` on, in id order, as one JSON row.
async fn parked_rows(
    conn: &mut sqlx::AnyConnection,
    webhook_id: &str,
    cursor: Cursor,
    ask: usize,
) -> Result<Vec<ParkedRow>, StoreError> {
    let (bound, from) = match cursor {
        Cursor::From(id) => (">=", id),
        Cursor::After(id) => (">", id),
    };
    let sql = format!(
        "SELECT json_group_array(json_array(id, event_id, event_type, attempts, attempt_base)) \
         AS parked FROM (SELECT id, event_id, event_type, attempts, attempt_base FROM deliveries \
         WHERE webhook_id = $1 AND id {bound} $2 AND status = 'in_flight' AND lease_owner IS NULL \
         ORDER BY id LIMIT $3)"
    );
    let rows: String = sqlx::query(&sql)
        .bind(webhook_id.to_owned())
        .bind(from)
        .bind(ask as i64)
        .fetch_one(&mut *conn)
        .await?
        .try_get("parked")?;
    serde_json::from_str(&rows)
        .map_err(|e| StoreError::Internal(format!("unreadable parked deliveries: {e}")))
}

/// One row chosen by a SQLite claim, as its JSON array: rowid, id, webhook, event, event type,
/// attempts and attempt base before the claim.
#[derive(serde::Deserialize)]
struct ChosenRow(i64, String, String, String, String, i64, i64);

impl Store {
    /// Writes a batch of attempts and their consequences in one bookkeeping transaction.
    async fn record_attempts(&self, attempts: &[AttemptRecord]) -> Result<(), StoreError> {
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
        for a in attempted
            .iter()
            .filter(|a| a.next == NextState::DisableWebhook)
        {
            disable_webhook(&mut tx, &a.webhook_id, "the endpoint answered 410 Gone").await?;
        }
        self.auto_disable(&mut tx, &attempted).await?;
        // Only `webhook.disabled` events can have been queued here; this node's own dispatcher
        // is enough to send them, so other nodes are not notified on every batch.
        tx.commit().await?;
        self.waker.wake();
        Ok(())
    }
}

impl DeliveryQueue for Store {
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<LeasedDelivery>, QueueError> {
        let store = self.clone();
        let leased = self
            .on_writer(async move {
                match store.backend {
                    Backend::Sqlite => {
                        let mut leased = store.claim_on_sqlite(&request).await?;
                        let room = request.limit.saturating_sub(leased.len());
                        if room > 0 {
                            leased.extend(store.read_parked(&request.skip_webhooks, room).await?);
                        }
                        Ok(leased)
                    }
                    Backend::Postgres => store.claim_on_postgres(&request).await,
                }
            })
            .await?;
        Ok(leased)
    }

    async fn load(&self, leased: &[LeasedDelivery]) -> Result<Vec<ClaimedDelivery>, QueueError> {
        Ok(self.load_leased(leased).await?)
    }

    async fn record(&self, attempts: Arc<[AttemptRecord]>) -> Result<(), QueueError> {
        let store = self.clone();
        Ok(self
            .on_writer(async move { store.record_attempts(&attempts).await })
            .await?)
    }

    async fn renew_leases(&self, node: &str, until: i64) -> Result<(), QueueError> {
        if self.backend.lease_due_at(until).is_none() {
            // Leases without expiry (SQLite) have nothing to renew.
            return Ok(());
        }
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
        let held = match self.backend {
            // Parked deliveries are in flight with no owner; only this node writes any.
            Backend::Sqlite => "(lease_owner = $2 OR lease_owner IS NULL)",
            // Left to the partial lease index, which holds no unowned row.
            Backend::Postgres => "lease_owner = $2",
        };
        let sql = format!(
            "UPDATE deliveries SET attempts = attempts - 1, \
             status = CASE WHEN attempts - 1 = 0 THEN 'pending' ELSE 'failed' END, \
             due_at = $1, lease_owner = NULL WHERE {held} AND status = 'in_flight'"
        );
        sqlx::query(&sql)
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

/// Deliveries moved per `UPDATE … FROM (VALUES …)`: multi-row statements keep the
/// per-statement round trip off every single delivery, but SQLite joins a long `VALUES` list
/// poorly (in 512-row chunks the 10-webhook benchmark's updates took 3.6 times as long as in
/// 50-row chunks).
const VALUES_CHUNK: usize = 50;

/// Attempts logged per `INSERT`: every statement is a round trip to the writer, which no other
/// write can use meanwhile, so a batch is logged in few; 512 rows of nine parameters stay well
/// within SQLite's limit on bound parameters (32,766).
const ATTEMPT_CHUNK: usize = 512;

/// How many rows a multi-row statement of the recorder is written for, given `n` to write: the
/// next power of two, the rest filled with rows that change nothing. Written for exactly `n`,
/// nearly every batch was a new statement text, which each connection parses and plans again
/// (a sixth of the SQLite writer's time in the 10-webhook benchmark); with ten sizes they stay
/// in the connection's statement cache.
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

/// The headers of an attempt as the log shows them: the stored ones, and those that follow
/// from the delivery and the attempt's start. Attempts stored before the derived headers were
/// left out hold them already, and keep their stored values.
fn logged_headers(
    stored: Vec<(String, String)>,
    delivery: &Delivery,
    attempt: i64,
    started_at: i64,
) -> serde_json::Value {
    let mut headers: serde_json::Map<String, serde_json::Value> = stored
        .into_iter()
        .map(|(name, value)| (name, serde_json::Value::String(value)))
        .collect();
    if !headers.is_empty() {
        let derived = derived_headers(
            &delivery.id,
            &delivery.event_type,
            attempt.max(0) as u32,
            started_at,
        );
        for (name, value) in derived {
            headers
                .entry(name.as_str())
                .or_insert(serde_json::Value::String(value));
        }
    }
    headers.into()
}

/// The state an attempt leaves its delivery in: status, `due_at`, last status code, last error.
type NextRow<'a> = (&'static str, Option<i64>, Option<i64>, Option<&'a str>);

fn next_row(a: &AttemptRecord) -> NextRow<'_> {
    let (status, due_at) = match a.next {
        NextState::Succeeded => ("succeeded", None),
        NextState::RetryAt(at) => ("failed", Some(at)),
        NextState::Exhausted | NextState::DisableWebhook | NextState::Deferred(_) => {
            ("exhausted", None)
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
        .bind(status)
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
            .bind(*status)
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
    async fn auto_disable(
        &self,
        tx: &mut Tx,
        attempts: &[&AttemptRecord],
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
/// `webhook.disabled` to the webhooks subscribed to it that may hear of it (its owner's and
/// admins'), in the caller's transaction. Does nothing if the webhook is already inactive, so
/// concurrent callers emit one event.
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
        serde_json::to_value(webhook.event_view()).expect("webhooks serialize"),
    );
    crate::outbox::publish_operational(tx, &event, webhook.owner_key_id.as_deref()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secretbox::SecretBox;
    use crate::{StoreOptions, Waker};
    use agora_core::dispatcher::RecordedHeaders;

    #[tokio::test]
    async fn load_keeps_the_order_given_and_leaves_out_deliveries_whose_webhook_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (secret_box, _) = SecretBox::generate();
        let sealed = |id: &str| secret_box.seal("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", id);
        let store = Store::open(
            &Store::sqlite_url(dir.path()),
            Waker::default(),
            StoreOptions::default(),
        )
        .await
        .unwrap();
        for id in ["wh_a", "wh_b"] {
            sqlx::query(
                "INSERT INTO webhooks (id, url, events, secret, headers, retry_count, timeout_ms, \
                 status, format, created_at, updated_at) \
                 VALUES ($1, 'https://example.com/hook', '[\"*\"]', $2, '{}', 10, 5000, 'active', 'json', 0, 0)",
            )
            .bind(id)
            .bind(sealed(id))
            .execute(&store.write)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO events (id, type, body, created_at) VALUES ('evt_1', 't.x', '{}', 0)",
        )
        .execute(&store.write)
        .await
        .unwrap();
        let store = store.with_secret_box(secret_box);
        let leased = |id: &str, webhook: &str| LeasedDelivery {
            id: id.into(),
            webhook_id: webhook.into(),
            event_id: "evt_1".into(),
            event_type: "t.x".into(),
            attempt: 1,
            retries_done: 0,
        };
        // Not in id order, and one of them to a webhook that does not exist.
        let batch = [
            leased("msg_3", "wh_b"),
            leased("msg_1", "wh_a"),
            leased("msg_4", "wh_gone"),
            leased("msg_2", "wh_b"),
        ];
        let loaded = DeliveryQueue::load(&store, &batch).await.unwrap();
        let ids: Vec<&str> = loaded.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["msg_3", "msg_1", "msg_2"]);
    }

    fn delivery() -> Delivery {
        Delivery {
            id: "msg_1".into(),
            event_id: "evt_1".into(),
            event_type: "thread.created".into(),
            webhook_id: "wh_1".into(),
            status: "succeeded".into(),
            attempts: 2,
            next_attempt_at: None,
            last_status_code: Some(200),
            last_error: None,
            created_at: to_rfc3339(0),
            updated_at: to_rfc3339(0),
        }
    }

    /// The headers an attempt of `delivery()` sent, as the sender records them.
    fn sent(attempt: u32, started_at: i64) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> =
            derived_headers("msg_1", "thread.created", attempt, started_at)
                .into_iter()
                .map(|(name, value)| (name.as_str().to_owned(), value))
                .collect();
        headers.extend([
            ("user-agent".to_owned(), "Agora-Webhooks/0.1.0".to_owned()),
            ("webhook-signature".to_owned(), "v1,abc=".to_owned()),
            ("x-agora-signature".to_owned(), "sha256=def".to_owned()),
            ("x-agora-forum".to_owned(), "Agora".to_owned()),
            ("X-Team".to_owned(), "blue".to_owned()),
        ]);
        headers
    }

    fn as_log(headers: Vec<(String, String)>) -> serde_json::Value {
        headers
            .into_iter()
            .map(|(name, value)| (name, serde_json::Value::String(value)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    #[test]
    fn the_log_shows_exactly_the_headers_sent_though_it_stores_fewer() {
        let started_at = 1_732_000_123_456;
        let sent = sent(2, started_at);
        let pairs = sent
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()));
        // The last one is the webhook's custom header.
        let recorded = RecordedHeaders::new(
            pairs.clone().take(sent.len() - 1),
            pairs.skip(sent.len() - 1),
        );
        let stored = recorded.as_json();
        assert!(
            !stored.contains("msg_1"),
            "derived headers are not stored: {stored}"
        );
        assert!(!stored.contains("content-type"), "{stored}");
        let pairs: Vec<(String, String)> = serde_json::from_str(stored).unwrap();
        assert_eq!(
            logged_headers(pairs, &delivery(), 2, started_at),
            as_log(sent)
        );
    }

    #[test]
    fn attempts_stored_with_every_header_read_back_unchanged() {
        let mut old = sent(1, 1_000);
        old.retain(|(name, _)| name != "X-Team");
        // Stored in full by an earlier version, under a timestamp taken a moment before start.
        old[2].1 = "0".into();
        assert_eq!(
            logged_headers(old.clone(), &delivery(), 1, 1_000),
            as_log(old)
        );
    }
}
