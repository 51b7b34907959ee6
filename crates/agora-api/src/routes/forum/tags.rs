//! Tags: `/v1/tags`, `/v1/tags/{id}`. Threads carry them (`tags` on thread create/update).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(read, update, remove))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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

/// Create a tag.
#[utoipa::path(
    post,
    path = "/v1/tags",
    tag = "tags",
    request_body = TagInput,
    responses((status = 201, description = "Created.", body = Tag)),
    extensions(("x-abilities" = json!(["tags:write"])))
)]
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

/// List tags.
#[utoipa::path(
    get,
    path = "/v1/tags",
    tag = "tags",
    params(PageQuery),
    responses((status = 200, description = "One page.", body = Page<Tag>)),
    extensions(("x-abilities" = json!(["tags:read"])))
)]
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

/// Read a tag.
#[utoipa::path(
    get,
    path = "/v1/tags/{id}",
    tag = "tags",
    params(("id" = String, Path)),
    responses((status = 200, description = "The tag.", body = Tag)),
    extensions(("x-abilities" = json!(["tags:read"])))
)]
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

/// Change a tag.
#[utoipa::path(
    patch,
    path = "/v1/tags/{id}",
    tag = "tags",
    params(("id" = String, Path)),
    request_body = TagInput,
    responses((status = 200, description = "The tag.", body = Tag)),
    extensions(("x-abilities" = json!(["tags:write"])))
)]
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

/// Delete a tag.
#[utoipa::path(
    delete,
    path = "/v1/tags/{id}",
    tag = "tags",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done.")),
    extensions(("x-abilities" = json!(["tags:write"])))
)]
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
