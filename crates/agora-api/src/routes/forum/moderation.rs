//! Moderation: spam flags (`/v1/threads/{id}/spam`, `/v1/posts/{id}/spam`) and reports
//! (`/v1/reports`, `/v1/reports/{id}`, `/v1/reports/{id}/resolve`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_core::ids::{has_prefix, new_id};
use agora_core::time::{now_ms, to_rfc3339};
use agora_forum::abilities::{Ability, Resource};
use agora_forum::input::{self, limits};
use agora_forum::model::{ContentType, Report, ReportStatus, SpamFlag};
use agora_store::forum::threads::Mark;
use agora_store::forum::{posts, reports as rows, threads, users};
use agora_store::{Conn, StoreError};

use super::{check_id, found, id_cursor, invalid, prefix, publish, routing};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(flag_thread, unflag_thread))
        .routes(routes!(flag_post, unflag_post))
        .routes(routes!(report, list))
        .routes(routes!(read))
        .routes(routes!(resolve))
}

/// Flag a thread as spam.
#[utoipa::path(
    post,
    path = "/v1/threads/{id}/spam",
    tag = "moderation",
    params(("id" = String, Path)),
    responses((status = 200, description = "The spam flag.", body = SpamFlag)),
    extensions(("x-abilities" = json!(["moderation:write"])))
)]
async fn flag_thread(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SpamFlag>> {
    spam(s, c, ContentType::Thread, id, true).await
}

/// Clear a thread of the spam flag.
#[utoipa::path(
    delete,
    path = "/v1/threads/{id}/spam",
    tag = "moderation",
    params(("id" = String, Path)),
    responses((status = 200, description = "The spam flag.", body = SpamFlag)),
    extensions(("x-abilities" = json!(["moderation:write"])))
)]
async fn unflag_thread(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SpamFlag>> {
    spam(s, c, ContentType::Thread, id, false).await
}

/// Flag a post as spam.
#[utoipa::path(
    post,
    path = "/v1/posts/{id}/spam",
    tag = "moderation",
    params(("id" = String, Path)),
    responses((status = 200, description = "The spam flag.", body = SpamFlag)),
    extensions(("x-abilities" = json!(["moderation:write"])))
)]
async fn flag_post(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SpamFlag>> {
    spam(s, c, ContentType::Post, id, true).await
}

/// Clear a post of the spam flag.
#[utoipa::path(
    delete,
    path = "/v1/posts/{id}/spam",
    tag = "moderation",
    params(("id" = String, Path)),
    responses((status = 200, description = "The spam flag.", body = SpamFlag)),
    extensions(("x-abilities" = json!(["moderation:write"])))
)]
async fn unflag_post(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SpamFlag>> {
    spam(s, c, ContentType::Post, id, false).await
}

/// Sets or clears a spam flag; the event fires only when the flag changed.
async fn spam(
    state: AppState,
    caller: Caller,
    content_type: ContentType,
    id: String,
    on: bool,
) -> ApiResult<axum::Json<SpamFlag>> {
    caller.require(Ability::Write(Resource::Moderation))?;
    let now = now_ms();
    let mut tx = state.store.begin_publication().await?;
    let (changed, thread, post, r) = match content_type {
        ContentType::Thread => {
            super::threads::load(&mut tx, &id).await?;
            let changed = threads::set_mark(&mut tx, &id, Mark::Spam, on, now).await?;
            let thread = threads::get(&mut tx, &id).await?;
            let r = routing(&thread);
            (changed, Some(thread), None, r)
        }
        _ => {
            super::posts::load(&mut tx, &id).await?;
            let changed = posts::set_spam(&mut tx, &id, on, now).await?;
            let post = posts::get(&mut tx, &id).await?;
            let r = super::posts::post_routing(&mut tx, &post).await?;
            (changed, None, Some(post), r)
        }
    };
    let flag = SpamFlag {
        content_type,
        content_id: id,
        is_spam: on,
        thread,
        post,
        moderated_by: caller.actor_id().to_owned(),
        at: to_rfc3339(now),
    };
    if changed {
        let event = if on {
            "content.flagged_spam"
        } else {
            "content.unflagged_spam"
        };
        publish(&mut tx, event, &flag, Some(&r)).await?;
    }
    tx.commit().await?;
    Ok(axum::Json(flag))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewReport {
    /// `thread`, `post` or `user`.
    target_type: String,
    target_id: String,
    reason: String,
}

/// Whether the reported thing exists.
async fn target_exists(conn: &mut Conn, target: ContentType, id: &str) -> ApiResult<bool> {
    let prefix = match target {
        ContentType::Thread => prefix::THREAD,
        ContentType::Post => prefix::POST,
        ContentType::User => prefix::USER,
    };
    if !has_prefix(id, prefix) {
        return Ok(false);
    }
    let res = match target {
        ContentType::Thread => threads::owner(conn, id).await.map(drop),
        ContentType::Post => posts::get(conn, id).await.map(drop),
        ContentType::User => users::get(conn, id).await.map(drop),
    };
    match res {
        Ok(()) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Files a report. Any signed-in user may; API keys need `moderation:write`.
#[utoipa::path(
    post,
    path = "/v1/reports",
    tag = "moderation",
    request_body = NewReport,
    responses((status = 201, description = "Reported.", body = Report)),
    extensions(("x-abilities" = json!(["moderation:write"])))
)]
async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<NewReport>,
) -> ApiResult<impl IntoResponse> {
    if caller.user_id().is_none() {
        caller.require(Ability::Write(Resource::Moderation))?;
    }
    let target = ContentType::parse(&input.target_type).ok_or_else(|| {
        ApiError::invalid("invalid_target", "target_type must be thread, post or user")
    })?;
    let reason = input::text("reason", &input.reason, 1, limits::DESCRIPTION).map_err(invalid)?;
    let mut tx = state.store.begin_publication().await?;
    if !target_exists(&mut tx, target, &input.target_id).await? {
        return Err(ApiError::invalid(
            "unknown_target",
            format!("no {} {:?}", target.as_str(), input.target_id),
        ));
    }
    let id = new_id(prefix::REPORT);
    rows::insert(
        &mut tx,
        &id,
        target,
        &input.target_id,
        &reason,
        caller.actor_id(),
        now_ms(),
    )
    .await?;
    let report = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "report.created", &report, None).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(report)))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// `open` or `resolved`.
    status: Option<String>,
}

/// List reports.
#[utoipa::path(
    get,
    path = "/v1/reports",
    tag = "moderation",
    params(ListQuery),
    responses((status = 200, description = "One page.", body = Page<Report>)),
    extensions(("x-abilities" = json!(["moderation:read"])))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Page<Report>>> {
    caller.require(Ability::Read(Resource::Moderation))?;
    let status = match q.status.as_deref() {
        None => None,
        Some("open") => Some(ReportStatus::Open),
        Some("resolved") => Some(ReportStatus::Resolved),
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_query",
                "status must be open or resolved",
            ))
        }
    };
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let mut conn = state.store.reader().await?;
    let items = rows::list(&mut conn, status, id_cursor(&page)?, limit).await?;
    Ok(axum::Json(Page::new(items, limit, |r| r.id.clone())))
}

/// One report: moderators see any, a reporter their own.
#[utoipa::path(
    get,
    path = "/v1/reports/{id}",
    tag = "moderation",
    params(("id" = String, Path)),
    responses((status = 200, description = "The report.", body = Report)),
    extensions(("x-abilities" = json!(["moderation:read"])))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Report>> {
    check_id(&id, prefix::REPORT, "report")?;
    let mut conn = state.store.reader().await?;
    let report = found(rows::get(&mut conn, &id).await, "report")?;
    if !caller.can(Ability::Read(Resource::Moderation)) && report.reported_by != caller.actor_id() {
        return Err(ApiError::not_found("report"));
    }
    Ok(axum::Json(report))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Resolution {
    resolution: String,
}

/// Resolve a report.
#[utoipa::path(
    post,
    path = "/v1/reports/{id}/resolve",
    tag = "moderation",
    params(("id" = String, Path)),
    request_body = Resolution,
    responses((status = 200, description = "The report.", body = Report)),
    extensions(("x-abilities" = json!(["moderation:write"])))
)]
async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<Resolution>,
) -> ApiResult<axum::Json<Report>> {
    caller.require(Ability::Write(Resource::Moderation))?;
    check_id(&id, prefix::REPORT, "report")?;
    let resolution =
        input::text("resolution", &input.resolution, 1, limits::DESCRIPTION).map_err(invalid)?;
    let mut tx = state.store.begin_publication().await?;
    found(rows::get(&mut tx, &id).await, "report")?;
    if !rows::resolve(&mut tx, &id, &resolution, caller.actor_id(), now_ms()).await? {
        return Err(ApiError::conflict(
            "report_resolved",
            "this report is already resolved",
        ));
    }
    let report = rows::get(&mut tx, &id).await?;
    publish(&mut tx, "report.resolved", &report, None).await?;
    tx.commit().await?;
    Ok(axum::Json(report))
}
