//! Threads: `/v1/threads`, `/v1/threads/{id}`, `/pin`, `/lock`, `/move`.

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
use agora_forum::model::{TagRef, Thread};
use agora_store::forum::threads::{self as rows, Mark, NewThread, ThreadFilter};
use agora_store::forum::{categories, tags, Cursor};
use agora_store::{Conn, StoreError};

use super::{
    acting_user, check_id, found, invalid, keyset, prefix, publish, require_owner, routing,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, Principal, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(read, update, remove))
        .routes(routes!(pin, unpin))
        .routes(routes!(lock, unlock))
        .routes(routes!(move_thread))
}

/// Tags named by id or name, all existing, at most ten.
async fn resolve_tags(conn: &mut Conn, given: &[String]) -> ApiResult<Vec<TagRef>> {
    if given.len() > limits::TAGS_PER_THREAD {
        return Err(ApiError::invalid(
            "invalid_tags",
            format!("a thread carries at most {} tags", limits::TAGS_PER_THREAD),
        ));
    }
    if given.iter().any(|t| t.is_empty() || t.chars().count() > 64) {
        return Err(ApiError::invalid(
            "invalid_tags",
            "tags must be tag ids or names",
        ));
    }
    tags::resolve(conn, given).await?.map_err(|unknown| {
        ApiError::invalid(
            "unknown_tag",
            format!("no tag {unknown:?}; create it with POST /v1/tags first"),
        )
    })
}

/// An existing category, or a 400 naming it.
async fn existing_category(conn: &mut Conn, id: &str) -> ApiResult<()> {
    let exists = has_prefix(id, prefix::CATEGORY)
        && !matches!(categories::get(conn, id).await, Err(StoreError::NotFound));
    if exists {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "unknown_category",
            format!("no category {id:?}"),
        ))
    }
}

/// Pin, lock and move are moderation: sessions need a moderator; keys `threads:write`.
fn require_moderator(caller: &Caller) -> ApiResult<()> {
    caller.require(Ability::Write(Resource::Threads))?;
    match &caller.principal {
        Principal::User(_) if !caller.moderates() => Err(ApiError::forbidden(
            "only moderators pin, lock and move threads",
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewThreadInput {
    title: String,
    body: String,
    category_id: String,
    #[serde(default)]
    tags: Vec<String>,
    /// For API keys: the author.
    user_id: Option<String>,
}

/// Start a thread.
#[utoipa::path(
    post,
    path = "/v1/threads",
    tag = "threads",
    request_body = NewThreadInput,
    responses((status = 201, description = "Created.", body = Thread)),
    extensions(("x-abilities" = json!(["threads:write"])))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<NewThreadInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Threads))?;
    let title = input::text("title", &input.title, 1, limits::TITLE).map_err(invalid)?;
    let body = input::text("body", &input.body, 1, limits::BODY).map_err(invalid)?;
    let mut tx = state.store.begin_publication().await?;
    let user_id = acting_user(&mut tx, &caller, input.user_id.as_deref()).await?;
    existing_category(&mut tx, &input.category_id).await?;
    let thread_tags = resolve_tags(&mut tx, &input.tags).await?;
    let new = NewThread {
        id: new_id(prefix::THREAD),
        category_id: input.category_id,
        user_id,
        title,
        body,
        now: now_ms(),
    };
    rows::insert(&mut tx, &new).await?;
    tags::set_for_thread(&mut tx, &new.id, &thread_tags).await?;
    let thread = rows::get(&mut tx, &new.id).await?;
    publish(&mut tx, "thread.created", &thread, Some(&routing(&thread))).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(thread)))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    category_id: Option<String>,
    /// A tag id or name.
    tag: Option<String>,
    author_id: Option<String>,
    /// Moderators only: also threads flagged as spam.
    #[serde(default)]
    include_spam: bool,
}

/// List threads.
#[utoipa::path(
    get,
    path = "/v1/threads",
    tag = "threads",
    params(ListQuery),
    responses((status = 200, description = "One page.", body = Page<Thread>)),
    extensions(("x-abilities" = json!(["threads:read"])))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Thread>>> {
    caller.require(Ability::Read(Resource::Threads))?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let cursor = keyset(&page)?;
    if q.include_spam && !caller.can(Ability::Read(Resource::Moderation)) {
        return Err(ApiError::forbidden("only moderators list spam"));
    }
    let mut conn = state.store.reader().await?;
    let tag_id = match q.tag.as_deref() {
        None => None,
        Some(t) => match tags::resolve(&mut conn, &[t.to_owned()]).await? {
            Ok(found) => found.into_iter().next().map(|t| t.id),
            // No such tag: no thread carries it.
            Err(_) => {
                return Ok(axum::Json(Page::new(Vec::new(), limit, |t: &Thread| {
                    t.id.clone()
                })))
            }
        },
    };
    let filter = ThreadFilter {
        category_id: q.category_id,
        tag_id,
        user_id: q.author_id,
        include_spam: q.include_spam,
    };
    let threads = rows::list(&mut conn, &filter, cursor.as_ref(), limit).await?;
    Ok(axum::Json(Page::new(threads, limit, |t| {
        Cursor {
            value: agora_core::time::parse_rfc3339(&t.last_activity_at).unwrap_or_default(),
            id: t.id.clone(),
        }
        .encode()
    })))
}

/// Read a thread.
#[utoipa::path(
    get,
    path = "/v1/threads/{id}",
    tag = "threads",
    params(("id" = String, Path)),
    responses((status = 200, description = "The thread.", body = Thread)),
    extensions(("x-abilities" = json!(["threads:read"])))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Thread>> {
    caller.require(Ability::Read(Resource::Threads))?;
    check_id(&id, prefix::THREAD, "thread")?;
    let mut conn = state.store.reader().await?;
    Ok(axum::Json(found(
        rows::get(&mut conn, &id).await,
        "thread",
    )?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ThreadChange {
    title: Option<String>,
    body: Option<String>,
    tags: Option<Vec<String>>,
}

/// Change a thread's title, body or tags.
#[utoipa::path(
    patch,
    path = "/v1/threads/{id}",
    tag = "threads",
    params(("id" = String, Path)),
    request_body = ThreadChange,
    responses((status = 200, description = "The thread.", body = Thread)),
    extensions(("x-abilities" = json!(["threads:write"])))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<ThreadChange>,
) -> ApiResult<axum::Json<Thread>> {
    caller.require(Ability::Write(Resource::Threads))?;
    check_id(&id, prefix::THREAD, "thread")?;
    let title = input
        .title
        .as_deref()
        .map(|t| input::text("title", t, 1, limits::TITLE))
        .transpose()
        .map_err(invalid)?;
    let body = input
        .body
        .as_deref()
        .map(|b| input::text("body", b, 1, limits::BODY))
        .transpose()
        .map_err(invalid)?;
    let mut tx = state.store.begin_publication().await?;
    let before = found(rows::get(&mut tx, &id).await, "thread")?;
    require_owner(&caller, &before.user.id, "thread")?;
    let now = now_ms();
    if let Some(given) = &input.tags {
        let new_tags = resolve_tags(&mut tx, given).await?;
        tags::set_for_thread(&mut tx, &id, &new_tags).await?;
    }
    if title.is_some() || body.is_some() || input.tags.is_some() {
        rows::update_content(
            &mut tx,
            &id,
            title.as_deref().unwrap_or(&before.title),
            body.as_deref().unwrap_or(&before.body),
            caller.actor_id(),
            now,
        )
        .await?;
    }
    let thread = rows::get(&mut tx, &id).await?;
    // Route by the tags before and after, so a filter on a removed tag still hears of it.
    let mut r = routing(&thread);
    r.tags.extend(routing(&before).tags);
    publish(&mut tx, "thread.updated", &thread, Some(&r)).await?;
    tx.commit().await?;
    Ok(axum::Json(thread))
}

/// Delete a thread.
#[utoipa::path(
    delete,
    path = "/v1/threads/{id}",
    tag = "threads",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done.")),
    extensions(("x-abilities" = json!(["threads:write"])))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Ability::Write(Resource::Threads))?;
    check_id(&id, prefix::THREAD, "thread")?;
    let mut tx = state.store.begin_publication().await?;
    let thread = found(rows::get(&mut tx, &id).await, "thread")?;
    require_owner(&caller, &thread.user.id, "thread")?;
    rows::delete(&mut tx, &id).await?;
    publish(&mut tx, "thread.deleted", &thread, Some(&routing(&thread))).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets or clears a mark and fires `event` only when that changed something.
async fn mark(
    state: AppState,
    caller: Caller,
    id: String,
    mark: Mark,
    on: bool,
    event: &'static str,
) -> ApiResult<axum::Json<Thread>> {
    require_moderator(&caller)?;
    check_id(&id, prefix::THREAD, "thread")?;
    let mut tx = state.store.begin_publication().await?;
    found(rows::get(&mut tx, &id).await, "thread")?;
    let changed = rows::set_mark(&mut tx, &id, mark, on, now_ms()).await?;
    let thread = rows::get(&mut tx, &id).await?;
    if changed {
        publish(&mut tx, event, &thread, Some(&routing(&thread))).await?;
    }
    tx.commit().await?;
    Ok(axum::Json(thread))
}

/// Pin a thread (moderators).
#[utoipa::path(
    post,
    path = "/v1/threads/{id}/pin",
    tag = "threads",
    params(("id" = String, Path)),
    responses((status = 200, description = "The thread.", body = Thread)),
    extensions(("x-abilities" = json!(["threads:write"])))
)]
async fn pin(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Thread>> {
    mark(s, c, id, Mark::Pinned, true, "thread.pinned").await
}

/// Unpin a thread (moderators).
#[utoipa::path(
    delete,
    path = "/v1/threads/{id}/pin",
    tag = "threads",
    params(("id" = String, Path)),
    responses((status = 200, description = "The thread.", body = Thread)),
    extensions(("x-abilities" = json!(["threads:write"])))
)]
async fn unpin(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Thread>> {
    mark(s, c, id, Mark::Pinned, false, "thread.unpinned").await
}

/// Lock a thread (moderators).
#[utoipa::path(
    post,
    path = "/v1/threads/{id}/lock",
    tag = "threads",
    params(("id" = String, Path)),
    responses((status = 200, description = "The thread.", body = Thread)),
    extensions(("x-abilities" = json!(["threads:write"])))
)]
async fn lock(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Thread>> {
    mark(s, c, id, Mark::Locked, true, "thread.locked").await
}

/// Unlock a thread (moderators).
#[utoipa::path(
    delete,
    path = "/v1/threads/{id}/lock",
    tag = "threads",
    params(("id" = String, Path)),
    responses((status = 200, description = "The thread.", body = Thread)),
    extensions(("x-abilities" = json!(["threads:write"])))
)]
async fn unlock(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Thread>> {
    mark(s, c, id, Mark::Locked, false, "thread.unlocked").await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MoveInput {
    category_id: String,
}

/// Move a thread to another category (moderators).
#[utoipa::path(
    post,
    path = "/v1/threads/{id}/move",
    tag = "threads",
    params(("id" = String, Path)),
    request_body = MoveInput,
    responses((status = 200, description = "The thread.", body = Thread)),
    extensions(("x-abilities" = json!(["threads:write"])))
)]
async fn move_thread(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<MoveInput>,
) -> ApiResult<axum::Json<Thread>> {
    require_moderator(&caller)?;
    check_id(&id, prefix::THREAD, "thread")?;
    let mut tx = state.store.begin_publication().await?;
    found(rows::get(&mut tx, &id).await, "thread")?;
    existing_category(&mut tx, &input.category_id).await?;
    let moved = rows::move_to(&mut tx, &id, &input.category_id, now_ms()).await?;
    let thread = rows::get(&mut tx, &id).await?;
    if moved {
        publish(&mut tx, "thread.moved", &thread, Some(&routing(&thread))).await?;
    }
    tx.commit().await?;
    Ok(axum::Json(thread))
}

/// A thread that exists, for the routes nested under it.
pub(crate) async fn load(conn: &mut Conn, id: &str) -> ApiResult<Thread> {
    check_id(id, prefix::THREAD, "thread")?;
    found(rows::get(conn, id).await, "thread")
}
