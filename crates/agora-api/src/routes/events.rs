//! The event catalog and custom events: `/v1/event-types`, `/v1/events`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use agora_core::event::{Event, EventType};
use agora_forum::catalog::{is_builtin_resource, BUILTIN};
use agora_store::catalog::CustomEventType;
use agora_store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/event-types", get(list_types).post(register_type))
        .route("/v1/events", post(publish))
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewType {
    name: String,
    description: Option<String>,
    schema: Option<Value>,
}

async fn register_type(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<NewType>,
) -> ApiResult<impl IntoResponse> {
    caller.require("events:write")?;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEvent {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    data: Value,
}

async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<NewEvent>,
) -> ApiResult<impl IntoResponse> {
    caller.require("events:write")?;
    let t = EventType::parse(&input.event_type)
        .map_err(|e| ApiError::invalid("invalid_event", e.to_string()))?;
    if is_builtin_resource(t.resource()) {
        return Err(ApiError::invalid(
            "reserved_event",
            "built-in events are emitted by the forum itself; publish custom types only",
        ));
    }
    let registered = state
        .store
        .custom_event_types()
        .await?
        .into_iter()
        .any(|c| c.name == t.as_str());
    if !registered {
        return Err(ApiError::invalid(
            "unknown_event",
            format!("event type `{t}` is not registered; register it with POST /v1/event-types"),
        ));
    }
    let event = Event::new(t, input.data);
    let mut tx = state.store.begin().await?;
    let queued = agora_store::outbox::publish(&mut tx, &event, None).await?;
    state.store.commit(tx).await?;
    let mut body = serde_json::to_value(&event).expect("events serialize");
    body["deliveries"] = json!(queued);
    Ok((StatusCode::ACCEPTED, axum::Json(body)))
}
