//! The delivery log: what the API shows of deliveries and their attempts.

use agora_core::dispatcher::derived_headers;
use agora_core::time::to_rfc3339;
use serde::Serialize;
use sqlx::Row;

use super::state::Status;
use crate::{placeholders, Store, StoreError};

/// One delivery as the log shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// `msg_…`, also the `webhook-id` header.
    pub id: String,
    /// The event delivered.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The webhook delivered to.
    pub webhook_id: String,
    /// Where it is in its life.
    pub status: Status,
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
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
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
    let stored: String = row.try_get("status")?;
    let status = Status::parse(&stored)
        .ok_or_else(|| StoreError::internal(format!("unknown delivery status {stored:?}")))?;
    let due_at: Option<i64> = row.try_get("due_at")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        webhook_id: row.try_get("webhook_id")?,
        next_attempt_at: due_at.filter(|_| status.is_due_later()).map(to_rfc3339),
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
        let statuses: &[Status] = match filter.status.as_deref() {
            Some("pending") => &[Status::Pending, Status::InFlight],
            Some("succeeded") => &[Status::Succeeded],
            Some("failed") => &[Status::Failed, Status::Exhausted],
            _ => &Status::ALL,
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
            q = q.bind(s.as_str());
        }
        q.fetch_all(&self.read)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    /// An event's deliveries, oldest first; with `owner_key`, only those to its webhooks.
    pub async fn deliveries_of_event(
        &self,
        event_id: &str,
        owner_key: Option<&str>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let owned = if owner_key.is_some() {
            " AND webhook_id IN (SELECT id FROM webhooks WHERE owner_key_id = $2)"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = $1{owned} ORDER BY id"
        );
        let mut q = sqlx::query(&sql).bind(event_id);
        if let Some(key) = owner_key {
            q = q.bind(key);
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
                .map_err(|e| StoreError::internal("corrupt attempt headers").because(e))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use agora_core::dispatcher::RecordedHeaders;

    fn delivery() -> Delivery {
        Delivery {
            id: "msg_1".into(),
            event_id: "evt_1".into(),
            event_type: "thread.created".into(),
            webhook_id: "wh_1".into(),
            status: Status::Succeeded,
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
