//! Webhook rows and their life cycle; `view` is how they are shown.

mod view;

pub use view::{WebhookView, REDACTED};

use std::collections::BTreeMap;

use sqlx::Row;

use crate::audit::{self, webhook_diff, Actor};
use crate::deliveries::close_queued;
use crate::outbox::publish_operational;
use crate::publication::Publication;
use crate::secretbox::StoredSecret;
use crate::{placeholders, Limit, Store, StoreError, Tx};
use agora_core::format::Format;
use agora_core::ids::{ApiKeyId, WebhookId};
use agora_core::signing::WebhookSecret;
use agora_core::subscription::EventPattern;
use agora_core::webhook::change::{DEFAULT_RETRY_COUNT, DEFAULT_TIMEOUT_MS};
use agora_core::webhook::{WebhookChange, WebhookFilter, WebhookStatus};

/// A webhook as stored.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// The API key that created it; a non-admin key sees only its own webhooks.
    pub owner_key_id: Option<ApiKeyId>,
    /// A label for people.
    pub name: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Where deliveries go.
    pub url: String,
    /// Event patterns (`thread.created`, `thread.*`, `*`).
    pub events: Vec<EventPattern>,
    /// The signing secret, sealed at rest.
    pub secret: StoredSecret,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<StoredSecret>,
    /// End of the rotation grace period, unix ms.
    pub previous_secret_until: Option<i64>,
    /// Custom headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// Retries after the first attempt.
    pub retry_count: i64,
    /// Per-attempt timeout.
    pub timeout_ms: i64,
    /// Whether it receives deliveries.
    pub status: WebhookStatus,
    /// Why it was disabled, when the system disabled it.
    pub disabled_reason: Option<String>,
    /// Category and tag restriction.
    pub filter: Option<WebhookFilter>,
    /// The body format.
    pub format: Format,
    /// Created, unix ms.
    pub created_at: i64,
    /// Last changed, unix ms.
    pub updated_at: i64,
    /// Last attempt of any delivery, unix ms.
    pub last_triggered_at: Option<i64>,
    /// The last attempt's failure, cleared by a success.
    pub last_error: Option<String>,
    /// Last successful attempt, unix ms (auto-disable looks at it).
    pub last_success_at: Option<i64>,
    /// Failed attempts since the last success.
    pub failure_streak: i64,
}

impl Webhook {
    /// A new webhook of `owner_key_id` (none: the operator's) made from a full change
    /// ([`agora_core::webhook::Mode::Full`]), with a fresh secret unless it names one.
    pub fn new(owner_key_id: Option<ApiKeyId>, change: WebhookChange, now: i64) -> Self {
        let mut w = Self {
            id: WebhookId::generate(),
            owner_key_id,
            name: None,
            description: None,
            url: String::new(),
            events: Vec::new(),
            secret: StoredSecret::Fresh(WebhookSecret::generate()),
            previous_secret: None,
            previous_secret_until: None,
            headers: BTreeMap::new(),
            retry_count: DEFAULT_RETRY_COUNT,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            status: WebhookStatus::Active,
            disabled_reason: None,
            filter: None,
            format: Format::Json,
            created_at: now,
            updated_at: now,
            last_triggered_at: None,
            last_error: None,
            last_success_at: None,
            failure_streak: 0,
        };
        w.apply(change);
        w
    }

    /// Writes a validated change into the webhook (nothing is stored here). A header value
    /// given back as `[redacted]` keeps the stored one; going active clears why it was
    /// disabled.
    pub fn apply(&mut self, change: WebhookChange) {
        let WebhookChange {
            url,
            events,
            secret,
            name,
            description,
            headers,
            retry_count,
            timeout_ms,
            status,
            filter,
            format,
        } = change;
        if let Some(mut headers) = headers {
            for (header, value) in headers.iter_mut() {
                if value == REDACTED {
                    if let Some(kept) = self.headers.get(header) {
                        value.clone_from(kept);
                    }
                }
            }
            self.headers = headers;
        }
        if status == Some(WebhookStatus::Active) {
            self.disabled_reason = None;
        }
        self.url = url.unwrap_or(std::mem::take(&mut self.url));
        self.events = events.unwrap_or(std::mem::take(&mut self.events));
        if let Some(secret) = secret {
            self.secret = StoredSecret::Fresh(secret);
        }
        self.name = name.unwrap_or(self.name.take());
        self.description = description.unwrap_or(self.description.take());
        self.retry_count = retry_count.unwrap_or(self.retry_count);
        self.timeout_ms = timeout_ms.unwrap_or(self.timeout_ms);
        self.status = status.unwrap_or(self.status);
        self.filter = filter.unwrap_or(self.filter.take());
        self.format = format.unwrap_or(self.format);
    }

    /// Whether the webhook is `active`.
    pub fn is_active(&self) -> bool {
        self.status == WebhookStatus::Active
    }
}

const COLUMNS: &str = "id, owner_key_id, name, description, url, events, secret, previous_secret, \
    previous_secret_until, headers, retry_count, timeout_ms, status, disabled_reason, filter, format, \
    created_at, updated_at, last_triggered_at, last_error, last_success_at, failure_streak";

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::internal(format!("corrupt webhook {what}")).because(e)
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Webhook, StoreError> {
    let events: String = row.try_get("events")?;
    let headers: String = row.try_get("headers")?;
    let filter: Option<String> = row.try_get("filter")?;
    let status: String = row.try_get("status")?;
    let format: String = row.try_get("format")?;
    Ok(Webhook {
        id: WebhookId::try_from(row.try_get::<String, _>("id")?)?,
        owner_key_id: row
            .try_get::<Option<String>, _>("owner_key_id")?
            .map(ApiKeyId::try_from)
            .transpose()?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        url: row.try_get("url")?,
        events: serde_json::from_str(&events).map_err(|e| corrupt("events", e))?,
        secret: StoredSecret::Sealed(row.try_get("secret")?),
        previous_secret: row
            .try_get::<Option<String>, _>("previous_secret")?
            .map(StoredSecret::Sealed),
        previous_secret_until: row.try_get("previous_secret_until")?,
        headers: serde_json::from_str(&headers).map_err(|e| corrupt("headers", e))?,
        retry_count: row.try_get("retry_count")?,
        timeout_ms: row.try_get("timeout_ms")?,
        status: WebhookStatus::parse(&status)
            .ok_or_else(|| StoreError::internal(format!("corrupt webhook status {status:?}")))?,
        disabled_reason: row.try_get("disabled_reason")?,
        filter: filter
            .map(|f| serde_json::from_str(&f))
            .transpose()
            .map_err(|e| corrupt("filter", e))?,
        format: Format::parse(&format)
            .ok_or_else(|| StoreError::internal(format!("corrupt webhook format {format:?}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_triggered_at: row.try_get("last_triggered_at")?,
        last_error: row.try_get("last_error")?,
        last_success_at: row.try_get("last_success_at")?,
        failure_streak: row.try_get("failure_streak")?,
    })
}

/// Who is asking: an admin sees every webhook, any other key only those it created.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// Every webhook.
    Anyone,
    /// Only webhooks created by this key id.
    Key(&'a ApiKeyId),
    /// None: a user session, which never owns webhooks.
    Nobody,
}

impl Store {
    /// Stores a new webhook; with a `quota`, only while its owner key has fewer webhooks
    /// ([`Limit::WebhooksPerKey`] otherwise). The key's row is locked first (a no-op update),
    /// so concurrent creations by one key on PostgreSQL count one after the other; SQLite has
    /// one writer.
    ///
    /// Records the creation in the audit trail and emits `webhook.created`, in its
    /// transaction.
    pub async fn insert_webhook(
        &self,
        w: &Webhook,
        quota: Option<usize>,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO webhooks ({COLUMNS}) VALUES ({})",
            placeholders(1, 22)
        );
        let sealed = self.sealed_secrets(w)?;
        let mut tx = self.begin_publication().await?;
        if let (Some(quota), Some(owner)) = (quota, &w.owner_key_id) {
            sqlx::query("UPDATE api_keys SET name = name WHERE id = $1")
                .bind(owner.as_str())
                .execute(&mut **tx)
                .await?;
            let owned: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM webhooks WHERE owner_key_id = $1")
                    .bind(owner.as_str())
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("n")?;
            if owned >= quota as i64 {
                return Err(StoreError::Limit(
                    Limit::WebhooksPerKey,
                    format!(
                        "this API key already has {owned} webhooks, its quota; delete one first"
                    ),
                ));
            }
        }
        bind_all(sqlx::query(&sql), w, sealed)
            .execute(&mut **tx)
            .await?;
        audited(&mut tx, actor, "webhook.created", None, w).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One webhook, if the owner may see it.
    pub async fn webhook(&self, id: &WebhookId, owner: Owner<'_>) -> Result<Webhook, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound)?;
        let w = from_row(&row)?;
        match owner {
            Owner::Key(key) if w.owner_key_id.as_ref() != Some(key) => Err(StoreError::NotFound),
            Owner::Nobody => Err(StoreError::NotFound),
            _ => Ok(w),
        }
    }

    /// The owner's webhooks in id order, after `cursor`.
    pub async fn list_webhooks(
        &self,
        owner: Owner<'_>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Webhook>, StoreError> {
        let sql = |owner_clause: &str| {
            format!(
                "SELECT {COLUMNS} FROM webhooks WHERE {owner_clause} id > $1 ORDER BY id LIMIT $2"
            )
        };
        let rows = match owner {
            Owner::Nobody => return Ok(Vec::new()),
            Owner::Anyone => {
                sqlx::query(&sql(""))
                    .bind(after.unwrap_or(""))
                    .bind(limit)
                    .fetch_all(&self.read)
                    .await?
            }
            Owner::Key(key) => {
                sqlx::query(&sql("owner_key_id = $3 AND"))
                    .bind(after.unwrap_or(""))
                    .bind(limit)
                    .bind(key.as_str())
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// Saves what a user may change of a webhook (not its delivery statistics, which the
    /// dispatcher keeps). When it goes inactive, its queued deliveries are closed as exhausted
    /// (an inactive webhook receives nothing; `recover` brings them back); when it goes active,
    /// its failure streak starts over.
    ///
    /// Records the change in the audit trail (as `webhook.secret_rotated` when the previous
    /// secret's grace changed, `webhook.enabled` or `webhook.disabled` when the status did,
    /// else `webhook.updated`) and emits `webhook.updated`, in its transaction.
    pub async fn update_webhook(&self, w: &Webhook, actor: &Actor) -> Result<(), StoreError> {
        let (secret, previous_secret) = self.sealed_secrets(w)?;
        let mut tx = self.begin_publication().await?;
        let before = Self::webhook_in(&mut tx, &w.id).await?;
        let done = sqlx::query(
            "UPDATE webhooks SET name = $2, description = $3, url = $4, events = $5, secret = $6, \
             previous_secret = $7, previous_secret_until = $8, headers = $9, retry_count = $10, \
             timeout_ms = $11, status = $12, disabled_reason = $13, filter = $14, format = $15, \
             updated_at = $16, failure_streak = CASE WHEN $12 = 'active' THEN 0 ELSE failure_streak END \
             WHERE id = $1",
        )
        .bind(w.id.as_str())
        .bind(&w.name)
        .bind(&w.description)
        .bind(&w.url)
        .bind(serde_json::to_string(&w.events).expect("patterns serialize"))
        .bind(secret)
        .bind(previous_secret)
        .bind(w.previous_secret_until)
        .bind(serde_json::to_string(&w.headers).expect("strings serialize"))
        .bind(w.retry_count)
        .bind(w.timeout_ms)
        .bind(w.status.as_str())
        .bind(&w.disabled_reason)
        .bind(w.filter.as_ref().map(|f| serde_json::to_string(f).expect("filter serializes")))
        .bind(w.format.as_str())
        .bind(w.updated_at)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if !w.is_active() {
            close_queued(&mut tx, &w.id, "webhook is inactive").await?;
        }
        let action = if before.previous_secret_until != w.previous_secret_until {
            "webhook.secret_rotated"
        } else if before.status != w.status && w.is_active() {
            "webhook.enabled"
        } else if before.status != w.status {
            "webhook.disabled"
        } else {
            "webhook.updated"
        };
        audited(&mut tx, actor, action, Some(&before), w).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a webhook with its deliveries and their attempts; records the deletion in the
    /// audit trail and emits `webhook.deleted`, in its transaction.
    pub async fn delete_webhook(&self, id: &WebhookId, actor: &Actor) -> Result<(), StoreError> {
        let mut tx = self.begin_publication().await?;
        let before = Self::webhook_in(&mut tx, id).await?;
        sqlx::query(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE webhook_id = $1)",
        )
        .bind(id.as_str())
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM deliveries WHERE webhook_id = $1")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let changes = webhook_diff(Some(&before), None);
        audit::record(&mut tx, actor, "webhook.deleted", &before.id, &changes).await?;
        let event = agora_forum::catalog::event("webhook.deleted", &before.event_view());
        publish_operational(&mut tx, &event, before.owner_key_id.as_deref()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One webhook, read inside a transaction.
    pub(crate) async fn webhook_in(tx: &mut Tx, id: &str) -> Result<Webhook, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_one(&mut **tx).await?;
        from_row(&row)
    }

    /// The secret columns of `w`, sealed.
    fn sealed_secrets(&self, w: &Webhook) -> Result<(String, Option<String>), StoreError> {
        let secret = self.seal_secret(&w.id, &w.secret)?;
        let previous = w
            .previous_secret
            .as_ref()
            .map(|p| self.seal_secret(&w.id, p))
            .transpose()?;
        Ok((secret, previous))
    }

    /// Active webhooks that may hear about something `owner` (an API key id) owns: its own,
    /// admin keys', and the operator's (those with no key).
    pub(crate) async fn active_webhooks_seen_by(
        tx: &mut Tx,
        owner: Option<&str>,
    ) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webhooks WHERE status = 'active' AND (owner_key_id IS NULL \
             OR owner_key_id = $1 OR owner_key_id IN (SELECT id FROM api_keys \
             WHERE revoked_at IS NULL AND abilities LIKE '%\"admin\"%'))"
        );
        sqlx::query(&sql)
            .bind(owner)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// Active webhooks, for matching events to subscriptions.
    pub(crate) async fn active_webhooks(tx: &mut Tx) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE status = 'active'");
        sqlx::query(&sql)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }
}

/// Records a creation or change of `after` in the audit trail as `action`, and emits
/// `webhook.created` (nothing before) or `webhook.updated` to the webhooks that may hear of it.
async fn audited(
    tx: &mut Publication,
    actor: &Actor,
    action: &str,
    before: Option<&Webhook>,
    after: &Webhook,
) -> Result<(), StoreError> {
    let changes = webhook_diff(before, Some(after));
    audit::record(tx, actor, action, &after.id, &changes).await?;
    let kind = if before.is_some() {
        "webhook.updated"
    } else {
        "webhook.created"
    };
    let event = agora_forum::catalog::event(kind, &after.event_view());
    publish_operational(tx, &event, after.owner_key_id.as_deref()).await?;
    Ok(())
}

fn bind_all<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    w: &Webhook,
    (secret, previous_secret): (String, Option<String>),
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(w.id.to_string())
        .bind(w.owner_key_id.as_ref().map(ApiKeyId::to_string))
        .bind(w.name.clone())
        .bind(w.description.clone())
        .bind(w.url.clone())
        .bind(serde_json::to_string(&w.events).expect("patterns serialize"))
        .bind(secret)
        .bind(previous_secret)
        .bind(w.previous_secret_until)
        .bind(serde_json::to_string(&w.headers).expect("strings serialize"))
        .bind(w.retry_count)
        .bind(w.timeout_ms)
        .bind(w.status.as_str())
        .bind(w.disabled_reason.clone())
        .bind(
            w.filter
                .as_ref()
                .map(|f| serde_json::to_string(f).expect("filter serializes")),
        )
        .bind(w.format.as_str())
        .bind(w.created_at)
        .bind(w.updated_at)
        .bind(w.last_triggered_at)
        .bind(w.last_error.clone())
        .bind(w.last_success_at)
        .bind(w.failure_streak)
}
