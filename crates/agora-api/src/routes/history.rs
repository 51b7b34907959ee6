//! The event history: `GET /v1/events` and `GET /v1/events/{id}`, so an integrator can read
//! past events, and the exact body every delivery of one signed.
//!
//! Both show only what the caller's [`Caller::audience`] sees; an event outside it answers 404
//! like one that does not exist. An event's deliveries are those to the caller's own webhooks
//! (every webhook's for an admin key). User sessions are answered 403: events, like webhooks,
//! are an integration's.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};

use agora_core::event::EventType;
use agora_core::ids::{has_prefix, EVENT};
use agora_core::subscription::EventPattern;
use agora_core::time::{parse_rfc3339, to_rfc3339};
use agora_store::events::{EventFilter, StoredEvent};
use agora_store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// 1 to 250 (default 50).
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only this type (exact).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only types matching this pattern (`thread.*`, `*`).
    pattern: Option<String>,
    /// Recorded at or after (RFC 3339).
    since: Option<String>,
    /// Recorded before (RFC 3339).
    until: Option<String>,
}

impl ListQuery {
    /// The filter, checked: a bad type, pattern or time is answered 400.
    fn filter(&self) -> ApiResult<EventFilter> {
        let time = |name: &str, value: &Option<String>| -> ApiResult<Option<i64>> {
            value
                .as_deref()
                .map(|v| {
                    parse_rfc3339(v).ok_or_else(|| {
                        ApiError::invalid(
                            "invalid_time",
                            format!("{name} must be an RFC 3339 timestamp"),
                        )
                    })
                })
                .transpose()
        };
        let event_type = self
            .event_type
            .as_deref()
            .map(|t| {
                EventType::parse(t)
                    .map(String::from)
                    .map_err(|e| ApiError::invalid("invalid_event", e.to_string()))
            })
            .transpose()?;
        let pattern = self
            .pattern
            .as_deref()
            .map(|p| {
                EventPattern::parse(p)
                    .map_err(|e| ApiError::invalid("invalid_pattern", e.to_string()))
            })
            .transpose()?;
        Ok(EventFilter {
            event_type,
            pattern,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
        })
    }
}

/// An event as the history lists it: its envelope, and when it was recorded.
fn view(event: &StoredEvent) -> ApiResult<Value> {
    let mut v: Value = serde_json::from_str(&event.body).map_err(|e| {
        ApiError::from(StoreError::internal("a stored event body is not JSON").because(e))
    })?;
    v["recorded_at"] = Value::String(to_rfc3339(event.created_at));
    Ok(v)
}

/// The event history, newest first: the events this key may read.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(ListQuery),
    responses((status = 200, description = "One page of recorded events, newest first.", body = crate::schemas::RecordedEventList)),
    extensions(("x-abilities" = json!(["the read ability of each event's resource (`threads:read` for `thread.*`), `events:read` for custom events, `webhooks:read` and ownership for `webhook.*`; an API key, not a session"])))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.require_key()?;
    let limit = PageQuery {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let filter = q.filter()?;
    let events = state
        .store
        .list_events(&caller.audience(), &filter, q.cursor.as_deref(), limit)
        .await?;
    let page = Page::new(events, limit, |e| e.id.clone());
    let data = page.data.iter().map(view).collect::<ApiResult<Vec<_>>>()?;
    Ok(axum::Json(
        json!({ "data": data, "next_cursor": page.next_cursor }),
    ))
}

/// One recorded event: its envelope, `body` (the stored JSON, byte for byte as signed) and the
/// deliveries of it the caller may see, with their states.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    params(("id" = String, Path)),
    responses((status = 200, description = "The event, its exact body and its deliveries.", body = crate::schemas::RecordedEventDetail)),
    extensions(("x-abilities" = json!(["the read ability of the event's resource, as for the list; an API key, not a session"])))
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require_key()?;
    if !has_prefix(&id, EVENT) {
        return Err(ApiError::not_found("event"));
    }
    let event = match state.store.event(&id).await {
        Err(StoreError::NotFound) => return Err(ApiError::not_found("event")),
        other => other?,
    };
    if !caller
        .audience()
        .sees(&event.event_type, event.owner_key_id.as_deref())
    {
        return Err(ApiError::not_found("event"));
    }
    let deliveries = state
        .store
        .event_deliveries(&event.id, caller.owner())
        .await?;
    let mut v = view(&event)?;
    v["body"] = Value::String(event.body);
    v["deliveries"] = serde_json::to_value(deliveries).expect("deliveries serialize");
    Ok(axum::Json(v))
}
