//! `/v1/api-keys`: admin-only key management. A key's value is answered once, at creation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_core::ids::ApiKeyId;
use agora_forum::abilities::{Abilities, Ability};
use agora_store::keys::generate_value;
use agora_store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, PeerAddr};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    abilities: Vec<String>,
}

/// Create an API key with abilities.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "api-keys",
    request_body = NewKey,
    responses((status = 201, description = "Created; the key is shown this once.", body = crate::schemas::NewApiKeyAnswer)),
    extensions(("x-abilities" = json!(["admin"])))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    peer: PeerAddr,
    Json(input): Json<NewKey>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Admin)?;
    let abilities = Abilities::parse(&input.abilities)
        .map_err(|m| ApiError::invalid("invalid_abilities", m))?;
    if input.name.trim().is_empty() || input.name.chars().count() > 200 {
        return Err(ApiError::invalid(
            "invalid_body",
            "name must be 1 to 200 characters",
        ));
    }
    let value = generate_value();
    let key = state
        .store
        .create_key(&input.name, &abilities, &value, &caller.audit_actor(&peer))
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(
            json!({"id": key.id, "name": key.name, "abilities": key.abilities, "key": value}),
        ),
    ))
}

/// List the API keys.
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "api-keys",
    responses((status = 200, description = "Every API key.", body = crate::schemas::ApiKeyList)),
    extensions(("x-abilities" = json!(["admin"])))
)]
async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Admin)?;
    let keys = state.store.list_keys().await?;
    let data: Vec<_> = keys
        .iter()
        .map(|k| {
            json!({
                "id": k.id,
                "name": k.name,
                "abilities": k.abilities,
                "created_at": agora_core::time::to_rfc3339(k.created_at),
                "last_used_at": k.last_used_at.map(agora_core::time::to_rfc3339),
            })
        })
        .collect();
    Ok(axum::Json(json!({"data": data, "next_cursor": null})))
}

/// Revokes a key at once, and disables its webhooks in the same transaction (see
/// [`agora_store::Store::revoke_key`]).
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "api-keys",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done.")),
    extensions(("x-abilities" = json!(["admin"])))
)]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    peer: PeerAddr,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Ability::Admin)?;
    let id = ApiKeyId::parse(&id).ok_or_else(|| ApiError::not_found("API key"))?;
    match state
        .store
        .revoke_key(&id, &caller.audit_actor(&peer))
        .await
    {
        Err(StoreError::NotFound) => Err(ApiError::not_found("API key")),
        other => other.map(|_| StatusCode::NO_CONTENT).map_err(Into::into),
    }
}
