//! `GET /v1/audit-log`: the audit trail, for admins: who changed which webhook, delivery or
//! API key, when, from which address, and what changed.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use agora_forum::abilities::Ability;
use agora_store::audit::{AuditFilter, AuditRecord};

use crate::error::ApiResult;
use crate::extract::{Caller, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/audit-log", get(list))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// Only records about this id (a webhook, delivery or key).
    target_id: Option<String>,
    /// Only records of this action, such as `webhook.updated`.
    action: Option<String>,
}

/// Newest first; `next_cursor` pages to older records.
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Admin)?;
    let limit = PageQuery {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let filter = AuditFilter {
        target_id: q.target_id,
        action: q.action,
    };
    let records = state
        .store
        .audit_log(&filter, q.cursor.as_deref(), limit)
        .await?;
    Ok(axum::Json(Page::new(records, limit, |r: &AuditRecord| {
        r.id.clone()
    })))
}
