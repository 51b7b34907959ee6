//! The delivery log: `/v1/webhooks/{id}/deliveries`, `/v1/deliveries/{id}`, redelivery.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_core::ids::DeliveryId;
use agora_forum::abilities::{Ability, Resource};
use agora_store::deliveries::{Delivery, DeliveryFilter};
use agora_store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, PeerAddr, Query};
use crate::pagination::Page;
use crate::routes::webhooks::load;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read))
        .routes(routes!(redeliver))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
    event: Option<String>,
}

/// A webhook's delivery log, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "deliveries",
    params(("id" = String, Path), ListQuery),
    responses((status = 200, description = "One page of deliveries, newest first.", body = Page<agora_store::deliveries::Delivery>)),
    extensions(("x-abilities" = json!(["webhooks:read"])))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Read(Resource::Webhooks))?;
    let webhook = load(&state, &caller, &id).await?;
    let limit = crate::pagination::PageQuery {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    if let Some(s) = &q.status {
        if !["pending", "succeeded", "failed"].contains(&s.as_str()) {
            return Err(ApiError::invalid(
                "invalid_status",
                "status must be `pending`, `succeeded` or `failed`",
            ));
        }
    }
    let filter = DeliveryFilter {
        status: q.status,
        event_type: q.event,
    };
    let items = state
        .store
        .list_deliveries(&webhook.id, &filter, q.cursor.as_deref(), limit)
        .await?;
    Ok(axum::Json(Page::new(items, limit, |d: &Delivery| {
        d.id.clone()
    })))
}

/// Loads a delivery whose webhook the caller may see.
async fn load_delivery(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(Delivery, Vec<agora_store::deliveries::Attempt>)> {
    let id = DeliveryId::parse(id).ok_or_else(|| ApiError::not_found("delivery"))?;
    let found = match state.store.delivery(&id).await {
        Err(StoreError::NotFound) => return Err(ApiError::not_found("delivery")),
        other => other?,
    };
    load(state, caller, &found.0.webhook_id)
        .await
        .map_err(|_| ApiError::not_found("delivery"))?;
    Ok(found)
}

/// One delivery with every attempt.
#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    tag = "deliveries",
    params(("id" = String, Path)),
    responses((status = 200, description = "The delivery and its attempts.", body = crate::schemas::DeliveryDetail)),
    extensions(("x-abilities" = json!(["webhooks:read"])))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Read(Resource::Webhooks))?;
    let (delivery, attempts) = load_delivery(&state, &caller, &id).await?;
    let webhook = load(&state, &caller, &delivery.webhook_id).await?;
    // The body every attempt signed: the event's envelope in the webhook's format.
    let signed = match state.store.event(&delivery.event_id).await {
        Ok(event) => Some(state.sender.body(webhook.format, &event.body)),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let mut body = serde_json::to_value(delivery).expect("deliveries serialize");
    body["body"] = signed.map_or(serde_json::Value::Null, serde_json::Value::String);
    body["attempts"] = serde_json::to_value(attempts).expect("attempts serialize");
    Ok(axum::Json(body))
}

/// Deliver again now, with the same `webhook-id`.
#[utoipa::path(
    post,
    path = "/v1/deliveries/{id}/redeliver",
    tag = "deliveries",
    params(("id" = String, Path)),
    responses((status = 202, description = "Queued again.", body = crate::schemas::Redelivery)),
    extensions(("x-abilities" = json!(["webhooks:write"])))
)]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    peer: PeerAddr,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let (delivery, _) = load_delivery(&state, &caller, &id).await?;
    // An inactive webhook receives nothing, a redelivery included (as `recover` answers).
    if !load(&state, &caller, &delivery.webhook_id)
        .await?
        .is_active()
    {
        return Err(ApiError::conflict(
            "webhook_inactive",
            "the webhook is inactive; set status to active first",
        ));
    }
    match state
        .store
        .redeliver(&delivery.id, &caller.audit_actor(&peer))
        .await
    {
        Err(StoreError::Conflict(m)) => return Err(ApiError::conflict("delivery_in_flight", m)),
        other => other?,
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": delivery.id, "status": "pending"})),
    ))
}
