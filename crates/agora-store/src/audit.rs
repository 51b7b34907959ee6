//! The audit trail: who changed which webhook, delivery or API key, when, from which address,
//! and what changed. A record is written in the transaction of the change it describes, so
//! there is never a change without its record, nor a record of a change rolled back. Records
//! are kept: retention prunes delivery work, never the trail.
//!
//! What changed is a diff, `{field: {"from": …, "to": …}}`, of the webhook as operational
//! events show it ([`Webhook::event_view`]): secrets, custom header values and URL query
//! values never enter it, only the fact that they changed.

use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::Row;

use crate::webhooks::{Webhook, REDACTED};
use crate::{Store, StoreError, Tx};
use agora_core::ids::AuditId;
use agora_core::time::{now_ms, to_rfc3339};

/// Who makes a change, and from where: recorded with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The API key's id (`key_…`) or the signed-in user's (`usr_…`); [`Actor::OPERATOR`] for
    /// the operator's local commands and the first start.
    pub id: String,
    /// The client's address, when the change came over the network.
    pub address: Option<String>,
}

impl Actor {
    /// The actor id of changes made on the server's machine, not through the API.
    pub const OPERATOR: &'static str = "operator";

    /// The actor id of changes the server makes by itself: a webhook disabled because its
    /// endpoint answered 410, kept failing, or lost the key that owned it.
    pub const SYSTEM: &'static str = "system";

    /// The operator, acting locally (`agora keys create` offline, the first start's key).
    pub fn operator() -> Self {
        Self {
            id: Self::OPERATOR.to_owned(),
            address: None,
        }
    }

    /// The server itself, acting on what deliveries or another change found.
    pub fn system() -> Self {
        Self {
            id: Self::SYSTEM.to_owned(),
            address: None,
        }
    }
}

/// One record of the audit trail, as `GET /v1/audit-log` answers it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Its id, `aud_…`; ids sort by time.
    pub id: String,
    /// When, RFC 3339.
    pub created_at: String,
    /// Who: a key id, a user id or `operator`.
    pub actor: String,
    /// The client's address, when the change came over the network.
    pub remote_addr: Option<String>,
    /// What was done, such as `webhook.updated` or `api_key.revoked`.
    pub action: String,
    /// The id of what it was done to.
    pub target_id: String,
    /// What changed; never a secret or a header value.
    #[schema(value_type = Object)]
    pub changes: Value,
}

/// Which records to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only records about this id.
    pub target_id: Option<String>,
    /// Only records of this action.
    pub action: Option<String>,
}

/// Writes one record in `tx`, the transaction of the change it describes.
pub(crate) async fn record(
    tx: &mut Tx,
    actor: &Actor,
    action: &str,
    target_id: &str,
    changes: &Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (id, created_at, actor, remote_addr, action, target_id, changes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(AuditId::generate().to_string())
    .bind(now_ms())
    .bind(&actor.id)
    .bind(&actor.address)
    .bind(action)
    .bind(target_id)
    .bind(changes.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The diff from `before` to `after` (either absent: a creation, a deletion) of a webhook as
/// events show it. A field whose stored value changed but whose shown value did not (a
/// header's value, a URL's query value) is listed with both sides redacted, and a new signing
/// secret appears as `secret`, redacted.
pub fn webhook_diff(before: Option<&Webhook>, after: Option<&Webhook>) -> Value {
    let shown = |w: Option<&Webhook>| object(w.map(|w| json!(w.event_view())));
    let full = |w: Option<&Webhook>| object(w.map(|w| json!(w.view())));
    let (from, to) = (shown(before), shown(after));
    let (raw_from, raw_to) = (full(before), full(after));
    let mut diff = Map::new();
    let mut fields: Vec<&String> = raw_from.keys().chain(raw_to.keys()).collect();
    fields.sort();
    fields.dedup();
    for field in fields {
        let header_changed = field == "headers" && headers_of(before) != headers_of(after);
        let (was, is) = (
            raw_from.get(field).unwrap_or(&Value::Null),
            raw_to.get(field).unwrap_or(&Value::Null),
        );
        if was != is || header_changed {
            diff.insert(
                field.clone(),
                json!({
                    "from": from.get(field).cloned().unwrap_or(Value::Null),
                    "to": to.get(field).cloned().unwrap_or(Value::Null),
                }),
            );
        }
    }
    let new_secret = after.is_some_and(|w| w.secret.fresh().is_some());
    if new_secret {
        diff.insert(
            "secret".into(),
            json!({"from": before.map(|_| REDACTED), "to": REDACTED}),
        );
    }
    Value::Object(diff)
}

fn object(value: Option<Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn headers_of(w: Option<&Webhook>) -> Option<&std::collections::BTreeMap<String, String>> {
    w.map(|w| &w.headers)
}

impl Store {
    /// Audit records, newest first, before the record `before` (a cursor), at most `limit`.
    pub async fn audit_log(
        &self,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT id, created_at, actor, remote_addr, action, target_id, changes \
             FROM audit_log WHERE id < $1",
        );
        let mut next = 3;
        for (column, value) in [("target_id", &filter.target_id), ("action", &filter.action)] {
            if value.is_some() {
                sql.push_str(&format!(" AND {column} = ${next}"));
                next += 1;
            }
        }
        sql.push_str(" ORDER BY id DESC LIMIT $2");
        // `~` sorts after every character of an id.
        let mut query = sqlx::query(&sql).bind(before.unwrap_or("~")).bind(limit);
        for value in [&filter.target_id, &filter.action].into_iter().flatten() {
            query = query.bind(value.as_str());
        }
        query
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<AuditRecord, StoreError> {
    let changes: String = row.try_get("changes")?;
    Ok(AuditRecord {
        id: row.try_get("id")?,
        created_at: to_rfc3339(row.try_get("created_at")?),
        actor: row.try_get("actor")?,
        remote_addr: row.try_get("remote_addr")?,
        action: row.try_get("action")?,
        target_id: row.try_get("target_id")?,
        changes: serde_json::from_str(&changes)
            .map_err(|e| StoreError::internal("corrupt audit record").because(e))?,
    })
}
