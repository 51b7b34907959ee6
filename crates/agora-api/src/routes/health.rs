//! `GET /healthz`: the process is up and its database answers. `GET /readyz`: the node should
//! get traffic: not draining, its dispatcher running, its database writable and migrated.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

/// 200 when the node should get traffic, else 503 in the contract's error shape, saying why;
/// draining is answered first, without touching the database.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, description = "The node should get traffic.", body = crate::schemas::Ready)),
    security(()),
    extensions(("x-abilities" = json!([])))
)]
async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let unavailable = |code, message| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
    if state.readiness.draining() {
        return Err(unavailable("draining", "the node is shutting down"));
    }
    if !state.readiness.dispatcher_is_running() {
        return Err(unavailable(
            "dispatcher_stopped",
            "the node's dispatcher is not running",
        ));
    }
    if let Err(e) = state.store.ready().await {
        tracing::warn!(error = %e, "readiness check failed");
        return Err(unavailable(
            "storage_unavailable",
            "the database does not take writes or is not migrated",
        ));
    }
    Ok(Json(json!({"status": "ready"})))
}

/// Whether the process is up and its database answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process is up and its database answers.", body = crate::schemas::Health), (status = 503, description = "The database does not answer.", body = crate::schemas::Health)),
    security(()),
    extensions(("x-abilities" = json!([])))
)]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "code": "storage_unavailable"})),
            )
        }
    }
}
