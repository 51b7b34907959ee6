//! Tags: `/v1/tags`, `/v1/tags/{id}`. Threads carry them (`tags` on thread create/update).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use agora_core::ids::new_id;
use agora_core::time::now_ms;
use agora_forum::abilities::{Ability, Resource};
use agora_forum::input::{self, limits};
use agora_forum::model::Tag;
use agora_store::forum::tags as rows;

use super::{check_id, description, found, id_cursor, invalid, prefix, publish, required, unique};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tags", post(create).get(list))
        .route("/v1/tags/{id}", get(read).patch(update).delete(remove))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagInput {
    name: Option<String>,
    description: Option<String>,
}

/// A tag name: 1 to 50 characters, no commas (lists of tags are written with them).
fn name(n: &str) -> ApiResult<String> {
    let n = input::text("name", n, 1, limits::TAG_NAME).map_err(invalid)?;
    if n.contains(',') || n.contains('\n') {
        return Err(ApiError::invalid(
            "invalid_body",
            "a tag name cannot contain commas or newlines",
        ));
    }
    Ok(n)
}

const NAME_TAKEN: &str = "another tag already has that name";

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<TagInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Tags))?;
    let n = required("name", input.name.as_deref(), None, name)?;
    let description = description(input.description.as_deref(), None)?;
    let id = new_id(prefix::TAG);
    let mut tx = state.store.begin_publication().await?;
    unique(
        rows::insert(&mut tx, &id, &n, description.as_deref(), now_ms()).await,
        "tag_exists",
        NAME_TAKEN,
    )?;
    let tag = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "tag.created", &tag, None).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(tag)))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Tag>>> {
    caller.require(Ability::Read(Resource::Tags))?;
    let limit = page.limit()?;
    let mut conn = state.store.reader().await?;
    let items = rows::list(&mut conn, id_cursor(&page)?, limit).await?;
    Ok(axum::Json(Page::new(items, limit, |t| t.id.clone())))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Tag>> {
    caller.require(Ability::Read(Resource::Tags))?;
    check_id(&id, prefix::TAG, "tag")?;
    let mut conn = state.store.reader().await?;
    Ok(axum::Json(found(rows::get(&mut conn, &id).await, "tag")?))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<TagInput>,
) -> ApiResult<axum::Json<Tag>> {
    caller.require(Ability::Write(Resource::Tags))?;
    check_id(&id, prefix::TAG, "tag")?;
    let mut tx = state.store.begin_publication().await?;
    let before = found(rows::get(&mut tx, &id).await, "tag")?;
    let n = required("name", input.name.as_deref(), Some(&before.name), name)?;
    let description = description(input.description.as_deref(), before.description.as_deref())?;
    unique(
        rows::update(&mut tx, &id, &n, description.as_deref(), now_ms()).await,
        "tag_exists",
        NAME_TAKEN,
    )?;
    let tag = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "tag.updated", &tag, None).await?;
    tx.commit().await?;
    Ok(axum::Json(tag))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Ability::Write(Resource::Tags))?;
    check_id(&id, prefix::TAG, "tag")?;
    let mut tx = state.store.begin_publication().await?;
    let tag = found(rows::get(&mut tx, &id).await, "tag")?;
    rows::delete(&mut tx, &id).await?;
    publish(&mut tx, "tag.deleted", &tag, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
