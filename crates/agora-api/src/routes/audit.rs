//! `GET /v1/audit-log`: the audit trail, for admins: who changed which webhook, delivery or
//! API key, when, from which address, and what changed.

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_forum::abilities::Ability;
use agora_store::audit::{AuditFilter, AuditRecord};

use crate::error::ApiResult;
use crate::extract::{Caller, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// 1 to 250 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only records about this id (a webhook, delivery or key).
    target_id: Option<String>,
    /// Only records of this action, such as `webhook.updated`.
    action: Option<String>,
}

/// The audit trail, newest first: who changed which webhook, delivery or key, when, from which
/// address, and what changed (secrets and header values redacted).
#[utoipa::path(
    get,
    path = "/v1/audit-log",
    tag = "audit",
    params(ListQuery),
    responses((status = 200, description = "One page of records, newest first.", body = crate::pagination::Page<agora_store::audit::AuditRecord>)),
    extensions(("x-abilities" = json!(["admin"])))
)]
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
