//! Groups: `/v1/groups`, `/v1/groups/{id}`, `/v1/groups/{id}/members/{user_id}` (a user has
//! one group; assigning moves them, and fires `user.updated`).

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
use agora_forum::model::{Group, User};
use agora_store::forum::groups::{self as rows, GroupFields};
use agora_store::forum::users;

use super::{check_id, description, found, id_cursor, invalid, prefix, publish, required, unique};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(read, update, remove))
        .routes(routes!(assign, unassign))
        .routes(routes!(assign_body))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GroupInput {
    name: Option<String>,
    description: Option<String>,
    is_moderator: Option<bool>,
    is_admin: Option<bool>,
}

fn parse(input: GroupInput, before: Option<&Group>) -> ApiResult<GroupFields> {
    let name = required(
        "name",
        input.name.as_deref(),
        before.map(|b| b.name.as_str()),
        |n| input::text("name", n, 1, limits::NAME).map_err(invalid),
    )?;
    let description = description(
        input.description.as_deref(),
        before.and_then(|b| b.description.as_deref()),
    )?;
    Ok(GroupFields {
        name,
        description,
        is_moderator: input
            .is_moderator
            .or(before.map(|b| b.is_moderator))
            .unwrap_or(false),
        is_admin: input
            .is_admin
            .or(before.map(|b| b.is_admin))
            .unwrap_or(false),
    })
}

const NAME_TAKEN: &str = "another group already has that name";

/// Create a group.
#[utoipa::path(
    post,
    path = "/v1/groups",
    tag = "groups",
    request_body = GroupInput,
    responses((status = 201, description = "Created.", body = Group)),
    extensions(("x-abilities" = json!(["groups:write"])))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<GroupInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Groups))?;
    let fields = parse(input, None)?;
    let id = new_id(prefix::GROUP);
    let mut tx = state.store.begin_publication().await?;
    unique(
        rows::insert(&mut tx, &id, &fields, now_ms()).await,
        "group_exists",
        NAME_TAKEN,
    )?;
    let group = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "group.created", &group, None).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(group)))
}

/// List groups.
#[utoipa::path(
    get,
    path = "/v1/groups",
    tag = "groups",
    params(PageQuery),
    responses((status = 200, description = "One page.", body = Page<Group>)),
    extensions(("x-abilities" = json!(["groups:read"])))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<Group>>> {
    caller.require(Ability::Read(Resource::Groups))?;
    let limit = page.limit()?;
    let mut conn = state.store.reader().await?;
    let items = rows::list(&mut conn, id_cursor(&page)?, limit).await?;
    Ok(axum::Json(Page::new(items, limit, |g| g.id.clone())))
}

/// Read a group.
#[utoipa::path(
    get,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path)),
    responses((status = 200, description = "The group.", body = Group)),
    extensions(("x-abilities" = json!(["groups:read"])))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Group>> {
    caller.require(Ability::Read(Resource::Groups))?;
    check_id(&id, prefix::GROUP, "group")?;
    let mut conn = state.store.reader().await?;
    Ok(axum::Json(found(rows::get(&mut conn, &id).await, "group")?))
}

/// Change a group.
#[utoipa::path(
    patch,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path)),
    request_body = GroupInput,
    responses((status = 200, description = "The group.", body = Group)),
    extensions(("x-abilities" = json!(["groups:write"])))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<GroupInput>,
) -> ApiResult<axum::Json<Group>> {
    caller.require(Ability::Write(Resource::Groups))?;
    check_id(&id, prefix::GROUP, "group")?;
    let mut tx = state.store.begin_publication().await?;
    let before = found(rows::get(&mut tx, &id).await, "group")?;
    let fields = parse(input, Some(&before))?;
    unique(
        rows::update(&mut tx, &id, &fields, now_ms()).await,
        "group_exists",
        NAME_TAKEN,
    )?;
    let group = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "group.updated", &group, None).await?;
    tx.commit().await?;
    Ok(axum::Json(group))
}

/// Delete a group.
#[utoipa::path(
    delete,
    path = "/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done.")),
    extensions(("x-abilities" = json!(["groups:write"])))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Ability::Write(Resource::Groups))?;
    check_id(&id, prefix::GROUP, "group")?;
    let mut tx = state.store.begin_publication().await?;
    let group = found(rows::get(&mut tx, &id).await, "group")?;
    rows::delete(&mut tx, &id).await?;
    publish(&mut tx, "group.deleted", &group, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Assign {
    user_id: String,
}

/// Put a user (named in the body) in this group.
#[utoipa::path(
    post,
    path = "/v1/groups/{id}/members",
    tag = "groups",
    params(("id" = String, Path)),
    request_body = Assign,
    responses((status = 200, description = "The user.", body = User)),
    extensions(("x-abilities" = json!(["groups:write"])))
)]
async fn assign_body(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<Assign>,
) -> ApiResult<axum::Json<User>> {
    set_group(state, caller, id, input.user_id, true).await
}

/// Put a user in this group.
#[utoipa::path(
    put,
    path = "/v1/groups/{id}/members/{user_id}",
    tag = "groups",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 200, description = "The user.", body = User)),
    extensions(("x-abilities" = json!(["groups:write"])))
)]
async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<User>> {
    set_group(state, caller, id, user_id, true).await
}

/// Take a user out of this group.
#[utoipa::path(
    delete,
    path = "/v1/groups/{id}/members/{user_id}",
    tag = "groups",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 200, description = "The user.", body = User)),
    extensions(("x-abilities" = json!(["groups:write"])))
)]
async fn unassign(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<User>> {
    set_group(state, caller, id, user_id, false).await
}

/// Puts the user in the group (or takes them out of it) and fires `user.updated`.
async fn set_group(
    state: AppState,
    caller: Caller,
    id: String,
    user_id: String,
    on: bool,
) -> ApiResult<axum::Json<User>> {
    caller.require(Ability::Write(Resource::Groups))?;
    check_id(&id, prefix::GROUP, "group")?;
    check_id(&user_id, super::prefix::USER, "user")?;
    let mut tx = state.store.begin_publication().await?;
    found(rows::get(&mut tx, &id).await, "group")?;
    let before = found(users::get(&mut tx, &user_id).await, "user")?;
    let in_group = before.group.as_ref().is_some_and(|g| g.id == id);
    if !on && !in_group {
        return Err(ApiError::not_found("group member"));
    }
    if on == in_group {
        return Ok(axum::Json(before));
    }
    users::set_group(&mut tx, &user_id, on.then_some(id.as_str()), now_ms()).await?;
    let user = users::get(&mut tx, &user_id).await?;
    publish(&mut tx, "user.updated", &user, None).await?;
    tx.commit().await?;
    Ok(axum::Json(user))
}
