//! The event catalog and custom events: `/v1/event-types`, `/v1/events`; the history's reads
//! are in `history.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_core::event::{Event, EventType};
use agora_forum::abilities::{Ability, Resource};
use agora_forum::catalog::{is_builtin_resource, BUILTIN};
use agora_store::catalog::CustomEventType;
use agora_store::idempotency;
use agora_store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_types, register_type))
        .routes(routes!(publish, super::history::list))
        .routes(routes!(super::history::read))
        .routes(routes!(publish_batch))
}

/// The event catalog: built-in and registered types, with schemas.
#[utoipa::path(
    get,
    path = "/v1/event-types",
    tag = "events",
    responses((status = 200, description = "Built-in and registered event types.", body = crate::schemas::EventTypeList)),
    extensions(("x-abilities" = json!([])))
)]
async fn list_types(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<impl IntoResponse> {
    let mut data: Vec<Value> = BUILTIN
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "builtin": true,
                "schema": t.data.schema(),
                "example": t.data.example(),
            })
        })
        .collect();
    for t in state.store.custom_event_types().await? {
        data.push(json!({
            "name": t.name,
            "description": t.description,
            "builtin": false,
            "schema": t.schema,
            "example": null,
        }));
    }
    Ok(axum::Json(json!({ "data": data, "next_cursor": null })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewType {
    name: String,
    description: Option<String>,
    schema: Option<Value>,
}

/// Register a custom event type.
#[utoipa::path(
    post,
    path = "/v1/event-types",
    tag = "events",
    request_body = NewType,
    responses((status = 201, description = "Registered.", body = crate::schemas::EventTypeInfo)),
    extensions(("x-abilities" = json!(["events:write"])))
)]
async fn register_type(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<NewType>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Events))?;
    let name = EventType::parse(&input.name)
        .map_err(|e| ApiError::invalid("invalid_event", e.to_string()))?;
    if is_builtin_resource(name.resource()) {
        return Err(ApiError::invalid(
            "reserved_event",
            format!(
                "`{}.*` events are built in; choose another resource name",
                name.resource()
            ),
        ));
    }
    let description = input.description.unwrap_or_default();
    if description.chars().count() > 2000 {
        return Err(ApiError::invalid(
            "invalid_body",
            "description must be at most 2000 characters",
        ));
    }
    if let Some(schema) = &input.schema {
        if !schema.is_object() && !schema.is_boolean() {
            return Err(ApiError::invalid(
                "invalid_schema",
                "schema must be a JSON Schema object",
            ));
        }
    }
    let t = CustomEventType {
        name: name.to_string(),
        description,
        schema: input.schema,
    };
    match state.store.register_event_type(&t).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "event_type_exists",
                format!("event type `{}` is already registered", t.name),
            ))
        }
        other => other?,
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(
            json!({"name": t.name, "description": t.description, "builtin": false, "schema": t.schema}),
        ),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEvent {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: Value,
}

/// The most events one batch may carry.
const MAX_BATCH: usize = 1000;

/// Publish a custom event.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    request_body = NewEvent,
    responses((status = 202, description = "Recorded, with its deliveries queued.", body = crate::schemas::PublishedEvent)),
    extensions(("x-abilities" = json!(["events:write"])))
)]
async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<NewEvent>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Events))?;
    let event = checked_event(&state, input).await?;
    idempotency::answer_with(answer_one);
    let queued = state.store.publish_event(event.clone(), None).await?;
    Ok(json_answer(answer_one(&[&event], &[queued])))
}

/// The answer to one published event: the event and how many deliveries it queued.
fn answer_one(events: &[&Event], queued: &[usize]) -> (u16, String) {
    let body = answered(events, queued)
        .into_iter()
        .next()
        .unwrap_or_default();
    (StatusCode::ACCEPTED.as_u16(), body.to_string())
}

/// The answer to a published batch: `{"data": [...]}`, each event with its deliveries.
fn answer_batch(events: &[&Event], queued: &[usize]) -> (u16, String) {
    let data = answered(events, queued);
    (
        StatusCode::ACCEPTED.as_u16(),
        json!({ "data": data }).to_string(),
    )
}

/// Each event as answered: its envelope and `deliveries`, how many it queued.
fn answered(events: &[&Event], queued: &[usize]) -> Vec<Value> {
    events
        .iter()
        .zip(queued)
        .map(|(event, queued)| {
            let mut body = serde_json::to_value(event).expect("events serialize");
            body["deliveries"] = json!(queued);
            body
        })
        .collect()
}

/// A rendered JSON answer. The answer of an idempotent publish was stored with its events in
/// exactly these bytes, so a replay is the same answer.
fn json_answer((status, body): (u16, String)) -> impl IntoResponse {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEvents {
    events: Vec<NewEvent>,
}

/// Publishes up to 1,000 custom events in one transaction: all are recorded, or none.
#[utoipa::path(
    post,
    path = "/v1/events/batch",
    tag = "events",
    request_body = NewEvents,
    responses((status = 202, description = "All recorded, with their deliveries queued.", body = crate::schemas::PublishedEvents)),
    extensions(("x-abilities" = json!(["events:write"])))
)]
async fn publish_batch(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<NewEvents>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Events))?;
    if input.events.is_empty() || input.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "invalid_batch",
            format!("events must hold 1 to {MAX_BATCH} events"),
        ));
    }
    let mut events = Vec::with_capacity(input.events.len());
    for e in input.events {
        events.push(checked_event(&state, e).await?);
    }
    idempotency::answer_with(answer_batch);
    let (events, queued) = state.store.publish_batch(events).await?;
    let events: Vec<&Event> = events.iter().collect();
    Ok(json_answer(answer_batch(&events, &queued)))
}

/// A publishable event: a registered custom type, never a built-in one.
async fn checked_event(state: &AppState, input: NewEvent) -> ApiResult<Event> {
    let t = EventType::parse(&input.event_type)
        .map_err(|e| ApiError::invalid("invalid_event", e.to_string()))?;
    if is_builtin_resource(t.resource()) {
        return Err(ApiError::invalid(
            "reserved_event",
            "built-in events are emitted by the forum itself; publish custom types only",
        ));
    }
    if !state.store.is_registered_type(t.as_str()).await? {
        return Err(ApiError::invalid(
            "unknown_event",
            format!("event type `{t}` is not registered; register it with POST /v1/event-types"),
        ));
    }
    Ok(Event::new(t, input.data))
}
