//! Categories: `/v1/categories`, `/v1/categories/{id}`, `/v1/categories/{id}/members`.

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
use agora_forum::model::{Category, Membership};
use agora_store::forum::categories::{self as rows, CategoryFields};
use agora_store::forum::Cursor;

use super::{
    acting_user, check_id, description, found, id_cursor, invalid, keyset, prefix, publish,
    required, unique,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{optional_body, Caller, Json, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(read, update, remove))
        .routes(routes!(join, members))
        .routes(routes!(leave))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CategoryInput {
    name: Option<String>,
    slug: Option<String>,
    description: Option<String>,
    position: Option<i64>,
}

fn parse(input: CategoryInput, before: Option<&Category>) -> ApiResult<CategoryFields> {
    let name = required(
        "name",
        input.name.as_deref(),
        before.map(|b| b.name.as_str()),
        |n| input::text("name", n, 1, limits::NAME).map_err(invalid),
    )?;
    let slug = match (input.slug.as_deref(), before) {
        (Some(s), _) => input::slug(s).map_err(invalid)?,
        (None, Some(b)) => b.slug.clone(),
        (None, None) => input::slugify(&name),
    };
    let description = description(
        input.description.as_deref(),
        before.and_then(|b| b.description.as_deref()),
    )?;
    let position = input.position.or(before.map(|b| b.position)).unwrap_or(0);
    if !(-1_000_000..=1_000_000).contains(&position) {
        return Err(ApiError::invalid(
            "invalid_body",
            "position must be between -1000000 and 1000000",
        ));
    }
    Ok(CategoryFields {
        name,
        slug,
        description,
        position,
    })
}

const SLUG_TAKEN: &str = "another category already has that slug";

/// Create a category.
#[utoipa::path(
    post,
    path = "/v1/categories",
    tag = "categories",
    request_body = CategoryInput,
    responses((status = 201, description = "Created.", body = Category)),
    extensions(("x-abilities" = json!(["categories:write"])))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<CategoryInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Categories))?;
    let fields = parse(input, None)?;
    let id = new_id(prefix::CATEGORY);
    let mut tx = state.store.begin_publication().await?;
    unique(
        rows::insert(&mut tx, &id, &fields, now_ms()).await,
        "slug_taken",
        SLUG_TAKEN,
    )?;
    let category = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "category.created", &category, None).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(category)))
}

/// List categories.
#[utoipa::path(
    get,
    path = "/v1/categories",
    tag = "categories",
    params(PageQuery),
    responses((status = 200, description = "One page.", body = Page<Category>)),
    extensions(("x-abilities" = json!(["categories:read"])))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Category>>> {
    caller.require(Ability::Read(Resource::Categories))?;
    let limit = page.limit()?;
    let mut conn = state.store.reader().await?;
    let items = rows::list(&mut conn, keyset(&page)?.as_ref(), limit).await?;
    Ok(axum::Json(Page::new(items, limit, |c| {
        Cursor {
            value: c.position,
            id: c.id.clone(),
        }
        .encode()
    })))
}

/// Read a category.
#[utoipa::path(
    get,
    path = "/v1/categories/{id}",
    tag = "categories",
    params(("id" = String, Path)),
    responses((status = 200, description = "The category.", body = Category)),
    extensions(("x-abilities" = json!(["categories:read"])))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Category>> {
    caller.require(Ability::Read(Resource::Categories))?;
    check_id(&id, prefix::CATEGORY, "category")?;
    let mut conn = state.store.reader().await?;
    Ok(axum::Json(found(
        rows::get(&mut conn, &id).await,
        "category",
    )?))
}

/// Change a category.
#[utoipa::path(
    patch,
    path = "/v1/categories/{id}",
    tag = "categories",
    params(("id" = String, Path)),
    request_body = CategoryInput,
    responses((status = 200, description = "The category.", body = Category)),
    extensions(("x-abilities" = json!(["categories:write"])))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<CategoryInput>,
) -> ApiResult<axum::Json<Category>> {
    caller.require(Ability::Write(Resource::Categories))?;
    check_id(&id, prefix::CATEGORY, "category")?;
    let mut tx = state.store.begin_publication().await?;
    let before = found(rows::get(&mut tx, &id).await, "category")?;
    let fields = parse(input, Some(&before))?;
    unique(
        rows::update(&mut tx, &id, &fields, now_ms()).await,
        "slug_taken",
        SLUG_TAKEN,
    )?;
    let category = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "category.updated", &category, None).await?;
    tx.commit().await?;
    Ok(axum::Json(category))
}

/// Delete a category.
#[utoipa::path(
    delete,
    path = "/v1/categories/{id}",
    tag = "categories",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done.")),
    extensions(("x-abilities" = json!(["categories:write"])))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Ability::Write(Resource::Categories))?;
    check_id(&id, prefix::CATEGORY, "category")?;
    let mut tx = state.store.begin_publication().await?;
    let category = found(rows::get(&mut tx, &id).await, "category")?;
    if !rows::delete(&mut tx, &id).await? {
        return Err(ApiError::conflict(
            "category_not_empty",
            "move or delete its threads before deleting a category",
        ));
    }
    publish(&mut tx, "category.deleted", &category, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Join {
    /// For API keys: who joins.
    user_id: Option<String>,
}

/// Join a category.
#[utoipa::path(
    post,
    path = "/v1/categories/{id}/members",
    tag = "categories",
    params(("id" = String, Path)),
    request_body(content = Option<Join>, description = "Optional."),
    responses((status = 201, description = "Joined.", body = Membership), (status = 200, description = "Already a member.", body = Membership)),
    extensions(("x-abilities" = json!(["categories:write"])))
)]
async fn join(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Read(Resource::Categories))?;
    check_id(&id, prefix::CATEGORY, "category")?;
    let input: Join = optional_body(&body)?;
    if caller.user_id().is_none() {
        caller.require(Ability::Write(Resource::Categories))?;
    }
    let mut tx = state.store.begin_publication().await?;
    found(rows::get(&mut tx, &id).await, "category")?;
    let user_id = acting_user(&mut tx, &caller, input.user_id.as_deref()).await?;
    let joined = rows::join(&mut tx, &id, &user_id, now_ms()).await?;
    let membership = rows::membership(&mut tx, &id, &user_id)
        .await?
        .ok_or_else(|| ApiError::internal("membership vanished inside its transaction"))?;
    if joined {
        publish(&mut tx, "category.member_joined", &membership, None).await?;
    }
    tx.commit().await?;
    let status = if joined {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(membership)))
}

/// List a category's members.
#[utoipa::path(
    get,
    path = "/v1/categories/{id}/members",
    tag = "categories",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, description = "One page.", body = Page<Membership>)),
    extensions(("x-abilities" = json!(["categories:read"])))
)]
async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Membership>>> {
    caller.require(Ability::Read(Resource::Categories))?;
    check_id(&id, prefix::CATEGORY, "category")?;
    let limit = page.limit()?;
    let mut conn = state.store.reader().await?;
    found(rows::get(&mut conn, &id).await, "category")?;
    let items = rows::members(&mut conn, &id, id_cursor(&page)?, limit).await?;
    Ok(axum::Json(Page::new(items, limit, |m| m.user.id.clone())))
}

/// Leave a category.
#[utoipa::path(
    delete,
    path = "/v1/categories/{id}/members/{user_id}",
    tag = "categories",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 200, description = "The membership.", body = Membership)),
    extensions(("x-abilities" = json!(["categories:write"])))
)]
async fn leave(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Membership>> {
    caller.require(Ability::Read(Resource::Categories))?;
    check_id(&id, prefix::CATEGORY, "category")?;
    check_id(&user_id, prefix::USER, "member")?;
    match caller.user_id() {
        Some(me) if me != user_id && !caller.can(Ability::Write(Resource::Categories)) => {
            return Err(ApiError::forbidden("a member may only remove themselves"))
        }
        None => caller.require(Ability::Write(Resource::Categories))?,
        _ => {}
    }
    let mut tx = state.store.begin_publication().await?;
    let membership = rows::leave(&mut tx, &id, &user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("member"))?;
    publish(&mut tx, "category.member_left", &membership, None).await?;
    tx.commit().await?;
    Ok(axum::Json(membership))
}
