//! Loading leased deliveries for sending: their event bodies and their webhooks' settings,
//! read once per batch and shared.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agora_core::dispatcher::{ClaimedDelivery, LeasedDelivery, WebhookSettings};
use agora_core::format::Format;
use agora_core::time::now_ms;
use sqlx::Row;

use crate::{Backend, Params, Store, StoreError};

impl Store {
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
    pub(super) async fn load_leased(
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
    /// this task and a conversion to a generic row.
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
                .map_err(|e| StoreError::internal("unreadable event bodies").because(e))?;
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
                        .map_err(|e| StoreError::internal("corrupt webhook headers").because(e))?;
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
pub(super) const LEASED_COLUMNS: &str =
    "id, webhook_id, event_id, event_type, attempts, attempt_base";

pub(super) fn leased_from_row(row: &sqlx::any::AnyRow) -> Result<LeasedDelivery, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secretbox::SecretBox;
    use crate::{StoreOptions, Waker};
    use agora_core::dispatcher::DeliveryQueue;

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
}
