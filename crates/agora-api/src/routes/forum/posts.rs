//! Posts (replies): `/v1/threads/{id}/posts`, `/v1/posts/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_core::ids::{has_prefix, new_id};
use agora_core::time::now_ms;
use agora_forum::abilities::{Ability, Resource};
use agora_forum::input::{self, limits};
use agora_forum::model::Post;
use agora_store::forum::posts::{self as rows, NewPost};
use agora_store::forum::threads;
use agora_store::outbox::Routing;
use agora_store::{Conn, StoreError};

use super::{
    acting_user, check_id, found, id_cursor, invalid, prefix, publish, require_owner, routing,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
}

/// Where a post's events happen: its thread's category and tags.
pub(crate) async fn post_routing(conn: &mut Conn, post: &Post) -> ApiResult<Routing> {
    let thread = threads::get(conn, &post.thread_id).await?;
    Ok(routing(&thread))
}

/// A post that exists.
pub(crate) async fn load(conn: &mut Conn, id: &str) -> ApiResult<Post> {
    check_id(id, prefix::POST, "post")?;
    found(rows::get(conn, id).await, "post")
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPostInput {
    body: String,
    /// A post of the same thread that this one answers.
    reply_to_id: Option<String>,
    /// For API keys: the author.
    user_id: Option<String>,
}

/// Reply in a thread.
#[utoipa::path(
    post,
    path = "/v1/threads/{id}/posts",
    tag = "posts",
    params(("id" = String, Path)),
    request_body = NewPostInput,
    responses((status = 201, description = "Created.", body = Post)),
    extensions(("x-abilities" = json!(["posts:write"])))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
    Json(input): Json<NewPostInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Posts))?;
    let body = input::text("body", &input.body, 1, limits::BODY).map_err(invalid)?;
    let mut tx = state.store.begin_publication().await?;
    let thread = super::threads::load(&mut tx, &thread_id).await?;
    let user_id = acting_user(&mut tx, &caller, input.user_id.as_deref()).await?;
    if let Some(parent) = &input.reply_to_id {
        let same_thread = has_prefix(parent, prefix::POST)
            && match rows::get(&mut tx, parent).await {
                Ok(p) => p.thread_id == thread.id,
                Err(StoreError::NotFound) => false,
                Err(e) => return Err(e.into()),
            };
        if !same_thread {
            return Err(ApiError::invalid(
                "invalid_reply_to",
                "reply_to_id must be a post of the same thread",
            ));
        }
    }
    let new = NewPost {
        id: new_id(prefix::POST),
        thread_id: thread.id.clone(),
        user_id,
        reply_to_id: input.reply_to_id,
        body,
        now: now_ms(),
    };
    if !rows::insert(&mut tx, &new).await? {
        // Refused: the thread is locked, or was deleted meanwhile (another node's commit).
        if let Err(StoreError::NotFound) = threads::owner(&mut tx, &thread.id).await {
            return Err(ApiError::not_found("thread"));
        }
        return Err(ApiError::conflict(
            "thread_locked",
            "this thread is locked and accepts no new posts",
        ));
    }
    let post = rows::get(&mut tx, &new.id).await?;
    publish(&mut tx, "post.created", &post, Some(&routing(&thread))).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(post)))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// Moderators only: also posts flagged as spam.
    #[serde(default)]
    include_spam: bool,
}

/// List a thread's replies.
#[utoipa::path(
    get,
    path = "/v1/threads/{id}/posts",
    tag = "posts",
    params(("id" = String, Path), ListQuery),
    responses((status = 200, description = "One page.", body = Page<Post>)),
    extensions(("x-abilities" = json!(["posts:read"])))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Post>>> {
    caller.require(Ability::Read(Resource::Posts))?;
    if q.include_spam && !caller.can(Ability::Read(Resource::Moderation)) {
        return Err(ApiError::forbidden("only moderators list spam"));
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let mut conn = state.store.reader().await?;
    super::threads::load(&mut conn, &thread_id).await?;
    let posts = rows::list_by_thread(
        &mut conn,
        &thread_id,
        q.include_spam,
        id_cursor(&page)?,
        limit,
    )
    .await?;
    Ok(axum::Json(Page::new(posts, limit, |p| p.id.clone())))
}

/// Read a reply.
#[utoipa::path(
    get,
    path = "/v1/posts/{id}",
    tag = "posts",
    params(("id" = String, Path)),
    responses((status = 200, description = "The post.", body = Post)),
    extensions(("x-abilities" = json!(["posts:read"])))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Post>> {
    caller.require(Ability::Read(Resource::Posts))?;
    let mut conn = state.store.reader().await?;
    Ok(axum::Json(load(&mut conn, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PostChange {
    body: String,
}

/// Edit a reply.
#[utoipa::path(
    patch,
    path = "/v1/posts/{id}",
    tag = "posts",
    params(("id" = String, Path)),
    request_body = PostChange,
    responses((status = 200, description = "The post.", body = Post)),
    extensions(("x-abilities" = json!(["posts:write"])))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<PostChange>,
) -> ApiResult<axum::Json<Post>> {
    caller.require(Ability::Write(Resource::Posts))?;
    let body = input::text("body", &input.body, 1, limits::BODY).map_err(invalid)?;
    let mut tx = state.store.begin_publication().await?;
    let before = load(&mut tx, &id).await?;
    require_owner(&caller, &before.user.id, "post")?;
    rows::update_body(&mut tx, &id, &body, caller.actor_id(), now_ms()).await?;
    let post = rows::get(&mut tx, &id).await?;
    let r = post_routing(&mut tx, &post).await?;
    publish(&mut tx, "post.updated", &post, Some(&r)).await?;
    tx.commit().await?;
    Ok(axum::Json(post))
}

/// Delete a reply.
#[utoipa::path(
    delete,
    path = "/v1/posts/{id}",
    tag = "posts",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done.")),
    extensions(("x-abilities" = json!(["posts:write"])))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Ability::Write(Resource::Posts))?;
    let mut tx = state.store.begin_publication().await?;
    let post = load(&mut tx, &id).await?;
    require_owner(&caller, &post.user.id, "post")?;
    let r = post_routing(&mut tx, &post).await?;
    rows::delete(&mut tx, &id).await?;
    publish(&mut tx, "post.deleted", &post, Some(&r)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
