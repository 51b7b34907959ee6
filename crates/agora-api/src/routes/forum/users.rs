//! Users: `/v1/users`, `/v1/auth/login`, `/v1/auth/logout`, `/v1/users/{id}/follow`,
//! `/v1/presence`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_core::ids::new_id;
use agora_core::time::{now_ms, to_rfc3339};
use agora_forum::abilities::{Ability, Resource};
use agora_forum::input::{self, limits};
use agora_forum::model::User;
use agora_forum::password;
use agora_forum::roles::Role;
use agora_store::forum::{follows, presence, users as rows};

use super::{acting_user, check_id, found, id_cursor, invalid, prefix, publish};
use crate::error::{ApiError, ApiResult};
use crate::extract::{optional_body, Caller, Json, PeerAddr, Principal, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

/// How long a session token lasts.
const SESSION_TTL_MS: i64 = 30 * 24 * 3600 * 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(read, update, remove))
        .routes(routes!(follow, unfollow))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(heartbeat))
}

/// The user as this caller may see it: the email only for the user, moderators and keys.
fn shown(caller: &Caller, mut user: User) -> User {
    let sees_email = match &caller.principal {
        Principal::Key(_) => true,
        Principal::User(s) => s.user_id == user.id || s.role >= Role::Moderator,
    };
    if !sees_email {
        user.email = None;
    }
    user
}

/// Hashes in the bounded pool, on a blocking thread: argon2 is slow and large by design.
async fn hash_password(state: &AppState, pw: String) -> ApiResult<String> {
    state.login.hash(move || password::hash(&pw)).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Registration {
    username: String,
    email: String,
    password: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
    bio: Option<String>,
    location: Option<String>,
}

/// Register a user.
#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    request_body = Registration,
    responses((status = 201, description = "Registered.", body = User)),
    extensions(("x-abilities" = json!(["users:write"])))
)]
async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<Registration>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Users))?;
    if let Principal::User(s) = &caller.principal {
        if s.role < Role::Admin {
            return Err(ApiError::forbidden("only admins register other users"));
        }
    }
    let username = input::username(&input.username).map_err(invalid)?;
    let email = input::email(&input.email).map_err(invalid)?;
    let pw = input::password(&input.password).map_err(invalid)?;
    let display_name = input::optional_text(
        "display_name",
        input.display_name.as_deref(),
        limits::DISPLAY_NAME,
    )
    .map_err(invalid)?
    .unwrap_or_else(|| username.clone());
    let avatar_url = input::avatar_url(input.avatar_url.as_deref()).map_err(invalid)?;
    let bio = input::optional_text("bio", input.bio.as_deref(), limits::BIO).map_err(invalid)?;
    let location = input::optional_text("location", input.location.as_deref(), limits::LOCATION)
        .map_err(invalid)?;
    let password_hash = hash_password(&state, pw).await?;

    let mut tx = state.store.begin_publication().await?;
    let id = new_id(prefix::USER);
    if let Some(field) = rows::taken(&mut tx, Some(&username), Some(&email), &id).await? {
        return Err(ApiError::conflict(
            if field == "username" {
                "username_taken"
            } else {
                "email_taken"
            },
            format!("that {field} is already registered"),
        ));
    }
    let new = rows::NewUser {
        id: id.clone(),
        username,
        email,
        password_hash,
        display_name,
        avatar_url,
        bio,
        location,
        now: now_ms(),
    };
    super::unique(
        rows::insert(&mut tx, &new).await,
        "user_exists",
        "that username or email is already registered",
    )?;
    let user = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "user.registered", &user, None).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(shown(&caller, user))))
}

/// List users.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "users",
    params(PageQuery),
    responses((status = 200, description = "One page of users.", body = Page<User>)),
    extensions(("x-abilities" = json!(["users:read"])))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Read(Resource::Users))?;
    let limit = page.limit()?;
    let mut conn = state.store.reader().await?;
    let users = rows::list(&mut conn, id_cursor(&page)?, limit).await?;
    let page = Page::new(users, limit, |u| u.id.clone());
    Ok(axum::Json(Page {
        data: page.data.into_iter().map(|u| shown(&caller, u)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Read a user.
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path)),
    responses((status = 200, description = "The user.", body = User)),
    extensions(("x-abilities" = json!(["users:read"])))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<User>> {
    caller.require(Ability::Read(Resource::Users))?;
    check_id(&id, prefix::USER, "user")?;
    let mut conn = state.store.reader().await?;
    let user = found(rows::get(&mut conn, &id).await, "user")?;
    Ok(axum::Json(shown(&caller, user)))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProfileChange {
    email: Option<String>,
    password: Option<String>,
    display_name: Option<String>,
    avatar_url: Option<String>,
    bio: Option<String>,
    location: Option<String>,
}

/// Change a user's profile.
#[utoipa::path(
    patch,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path)),
    request_body = ProfileChange,
    responses((status = 200, description = "The user.", body = User)),
    extensions(("x-abilities" = json!(["users:write"])))
)]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<ProfileChange>,
) -> ApiResult<axum::Json<User>> {
    caller.require(Ability::Write(Resource::Users))?;
    check_id(&id, prefix::USER, "user")?;
    if let Principal::User(s) = &caller.principal {
        if s.user_id != id && s.role < Role::Admin {
            return Err(ApiError::forbidden(
                "only admins change other users' profiles",
            ));
        }
    }
    let email = input
        .email
        .as_deref()
        .map(input::email)
        .transpose()
        .map_err(invalid)?;
    let display_name = input
        .display_name
        .as_deref()
        .map(|d| input::text("display_name", d, 1, limits::DISPLAY_NAME))
        .transpose()
        .map_err(invalid)?;
    let avatar_url = input
        .avatar_url
        .as_deref()
        .map(|a| input::avatar_url(Some(a)))
        .transpose()
        .map_err(invalid)?;
    let bio = input
        .bio
        .as_deref()
        .map(|b| input::optional_text("bio", Some(b), limits::BIO))
        .transpose()
        .map_err(invalid)?;
    let location = input
        .location
        .as_deref()
        .map(|l| input::optional_text("location", Some(l), limits::LOCATION))
        .transpose()
        .map_err(invalid)?;
    let password_hash = match input.password.as_deref() {
        Some(pw) => Some(hash_password(&state, input::password(pw).map_err(invalid)?).await?),
        None => None,
    };

    let mut tx = state.store.begin_publication().await?;
    let before = found(rows::get(&mut tx, &id).await, "user")?;
    if let Some(e) = &email {
        if rows::taken(&mut tx, None, Some(e), &id).await?.is_some() {
            return Err(ApiError::conflict(
                "email_taken",
                "that email is already registered",
            ));
        }
    }
    let now = now_ms();
    let profile = rows::Profile {
        email: email.or(before.email).unwrap_or_default(),
        display_name: display_name.unwrap_or(before.display_name),
        avatar_url: avatar_url.unwrap_or(before.avatar_url),
        bio: bio.unwrap_or(before.bio),
        location: location.unwrap_or(before.location),
    };
    super::unique(
        rows::update_profile(&mut tx, &id, &profile, now).await,
        "email_taken",
        "that email is already registered",
    )?;
    if let Some(hash) = password_hash {
        rows::set_password(&mut tx, &id, &hash, now).await?;
    }
    let user = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "user.updated", &user, None).await?;
    tx.commit().await?;
    Ok(axum::Json(shown(&caller, user)))
}

/// Delete a user.
#[utoipa::path(
    delete,
    path = "/v1/users/{id}",
    tag = "users",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done.")),
    extensions(("x-abilities" = json!(["users:write"])))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Ability::Write(Resource::Users))?;
    check_id(&id, prefix::USER, "user")?;
    if let Principal::User(s) = &caller.principal {
        if s.user_id != id && s.role < Role::Admin {
            return Err(ApiError::forbidden("only admins delete other users"));
        }
    }
    let mut tx = state.store.begin_publication().await?;
    let user = found(rows::get(&mut tx, &id).await, "user")?;
    rows::delete(&mut tx, &id, now_ms()).await?;
    publish(&mut tx, "user.deleted", &user, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ActAs {
    /// For API keys: the user who follows (or heartbeats).
    user_id: Option<String>,
}

/// Follow a user.
#[utoipa::path(
    post,
    path = "/v1/users/{id}/follow",
    tag = "users",
    params(("id" = String, Path)),
    request_body(content = Option<ActAs>, description = "Optional."),
    responses((status = 200, description = "The follow.", body = agora_forum::model::Follow)),
    extensions(("x-abilities" = json!(["users:write"])))
)]
async fn follow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<agora_forum::model::Follow>> {
    change_follow(state, caller, id, body, true).await
}

/// Stop following a user.
#[utoipa::path(
    delete,
    path = "/v1/users/{id}/follow",
    tag = "users",
    params(("id" = String, Path)),
    request_body(content = Option<ActAs>, description = "Optional."),
    responses((status = 200, description = "The follow.", body = agora_forum::model::Follow)),
    extensions(("x-abilities" = json!(["users:write"])))
)]
async fn unfollow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<agora_forum::model::Follow>> {
    change_follow(state, caller, id, body, false).await
}

async fn change_follow(
    state: AppState,
    caller: Caller,
    id: String,
    body: axum::body::Bytes,
    on: bool,
) -> ApiResult<axum::Json<agora_forum::model::Follow>> {
    caller.require(Ability::Write(Resource::Users))?;
    check_id(&id, prefix::USER, "user")?;
    let input: ActAs = optional_body(&body)?;
    let mut tx = state.store.begin_publication().await?;
    found(rows::get(&mut tx, &id).await, "user")?;
    let follower = acting_user(&mut tx, &caller, input.user_id.as_deref()).await?;
    if follower == id {
        return Err(ApiError::invalid(
            "cannot_follow_self",
            "a user cannot follow themselves",
        ));
    }
    let now = now_ms();
    if on {
        let changed = follows::follow(&mut tx, &follower, &id, now).await?;
        let view = follows::view(&mut tx, &follower, &id, now).await?;
        if changed {
            publish(&mut tx, "user.followed", &view, None).await?;
        }
        tx.commit().await?;
        Ok(axum::Json(view))
    } else {
        let view = follows::view(&mut tx, &follower, &id, now).await?;
        if !follows::unfollow(&mut tx, &follower, &id).await? {
            return Err(ApiError::not_found("follow"));
        }
        publish(&mut tx, "user.unfollowed", &view, None).await?;
        tx.commit().await?;
        Ok(axum::Json(view))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Login {
    /// Username or email.
    login: String,
    password: String,
}

/// Signs a user in: answers a bearer token that acts as them. No API key needed.
/// Attempts are limited per account and per address before any hashing, and the hash runs
/// in the bounded pool (see [`crate::login`]).
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "users",
    request_body = Login,
    responses((status = 200, description = "Signed in.", body = crate::schemas::SessionAnswer)),
    security(()),
    extensions(("x-abilities" = json!([])))
)]
async fn login(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    Json(input): Json<Login>,
) -> ApiResult<impl IntoResponse> {
    if input.login.len() > 254 || input.password.len() > 1024 {
        return Err(ApiError::invalid(
            "invalid_body",
            "login or password too long",
        ));
    }
    state.login.admit(&input.login, peer)?;
    let mut conn = state.store.reader().await?;
    let creds = rows::credentials(&mut conn, &input.login).await?;
    drop(conn);
    let (user_id, hash) = match creds {
        Some((id, hash)) => (Some(id), hash),
        None => (None, password::decoy().to_owned()),
    };
    let pw = input.password;
    let ok = state
        .login
        .hash(move || password::verify(&pw, &hash))
        .await?;
    let Some(user_id) = user_id.filter(|_| ok) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong login or password",
        ));
    };
    let now = now_ms();
    let expires_at = now + SESSION_TTL_MS;
    let token = state
        .store
        .create_session(&user_id, now, expires_at)
        .await?;
    let mut conn = state.store.reader().await?;
    let user = rows::get(&mut conn, &user_id).await?;
    Ok(axum::Json(json!({
        "token": token,
        "token_type": "Bearer",
        "expires_at": to_rfc3339(expires_at),
        "user": user,
    })))
}

/// End the session that sends this request.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "users",
    responses((status = 204, description = "Done.")),
    extensions(("x-abilities" = json!([])))
)]
async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> ApiResult<StatusCode> {
    if caller.user_id().is_none() {
        return Err(ApiError::invalid(
            "not_a_session",
            "log out with a session token",
        ));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .unwrap_or_default()
        .trim();
    state.store.end_session(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A presence heartbeat: the first after a silence fires `user.online`; the sweeper fires
/// `user.offline` once they stop.
#[utoipa::path(
    post,
    path = "/v1/presence",
    tag = "users",
    request_body(content = Option<ActAs>, description = "Optional."),
    responses((status = 200, description = "The user.", body = User)),
    extensions(("x-abilities" = json!(["users:write"])))
)]
async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> ApiResult<axum::Json<User>> {
    caller.require(Ability::Write(Resource::Users))?;
    let input: ActAs = optional_body(&body)?;
    let mut tx = state.store.begin_publication().await?;
    let user_id = acting_user(&mut tx, &caller, input.user_id.as_deref()).await?;
    let came_online = presence::heartbeat(&mut tx, &user_id, now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let user = rows::get(&mut tx, &user_id).await?;
    if came_online {
        publish(&mut tx, "user.online", &user, None).await?;
    }
    tx.commit().await?;
    Ok(axum::Json(shown(&caller, user)))
}
