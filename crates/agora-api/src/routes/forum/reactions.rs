//! Reactions: `/v1/posts/{id}/reactions` (add with POST, take back with DELETE, list with GET).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_core::ids::new_id;
use agora_core::time::now_ms;
use agora_forum::abilities::{Ability, Resource};
use agora_forum::input;
use agora_forum::model::Reaction;
use agora_store::forum::reactions as rows;

use super::posts::{load, post_routing};
use super::{acting_user, id_cursor, invalid, prefix, publish};
use crate::error::{ApiError, ApiResult};
use crate::extract::{optional_body, Caller, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, add, remove))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReactionInput {
    /// `like` when left out.
    kind: Option<String>,
    /// For API keys: who reacts.
    user_id: Option<String>,
}

/// React to a post.
#[utoipa::path(
    post,
    path = "/v1/posts/{id}/reactions",
    tag = "reactions",
    params(("id" = String, Path)),
    request_body(content = Option<ReactionInput>, description = "Optional."),
    responses((status = 201, description = "Added.", body = Reaction), (status = 200, description = "Already there.", body = Reaction)),
    extensions(("x-abilities" = json!(["posts:write"])))
)]
async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(post_id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Posts))?;
    let input: ReactionInput = optional_body(&body)?;
    let kind = input::reaction_kind(input.kind.as_deref()).map_err(invalid)?;
    let mut tx = state.store.begin_publication().await?;
    let post = load(&mut tx, &post_id).await?;
    let user_id = acting_user(&mut tx, &caller, input.user_id.as_deref()).await?;
    let added = rows::add(
        &mut tx,
        &new_id(prefix::REACTION),
        &post.id,
        &user_id,
        &kind,
        now_ms(),
    )
    .await?;
    let reaction = rows::find(&mut tx, &post.id, &user_id, &kind)
        .await?
        .ok_or_else(|| ApiError::internal("reaction vanished inside its transaction"))?;
    if added {
        let r = post_routing(&mut tx, &post).await?;
        publish(&mut tx, "reaction.added", &reaction, Some(&r)).await?;
    }
    tx.commit().await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(reaction)))
}

/// Take a reaction back.
#[utoipa::path(
    delete,
    path = "/v1/posts/{id}/reactions",
    tag = "reactions",
    params(("id" = String, Path)),
    request_body(content = Option<ReactionInput>, description = "Optional."),
    responses((status = 200, description = "The reaction.", body = Reaction)),
    extensions(("x-abilities" = json!(["posts:write"])))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(post_id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<Reaction>> {
    caller.require(Ability::Write(Resource::Posts))?;
    let input: ReactionInput = optional_body(&body)?;
    let kind = input::reaction_kind(input.kind.as_deref()).map_err(invalid)?;
    let mut tx = state.store.begin_publication().await?;
    let post = load(&mut tx, &post_id).await?;
    let user_id = acting_user(&mut tx, &caller, input.user_id.as_deref()).await?;
    let reaction = rows::remove(&mut tx, &post.id, &user_id, &kind)
        .await?
        .ok_or_else(|| ApiError::not_found("reaction"))?;
    let r = post_routing(&mut tx, &post).await?;
    publish(&mut tx, "reaction.removed", &reaction, Some(&r)).await?;
    tx.commit().await?;
    Ok(axum::Json(reaction))
}

/// List a post's reactions.
#[utoipa::path(
    get,
    path = "/v1/posts/{id}/reactions",
    tag = "reactions",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, description = "One page.", body = Page<Reaction>)),
    extensions(("x-abilities" = json!(["posts:read"])))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(post_id): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Reaction>>> {
    caller.require(Ability::Read(Resource::Posts))?;
    let limit = page.limit()?;
    let mut conn = state.store.reader().await?;
    let post = load(&mut conn, &post_id).await?;
    let items = rows::list(&mut conn, &post.id, id_cursor(&page)?, limit).await?;
    Ok(axum::Json(Page::new(items, limit, |r| r.id.clone())))
}
