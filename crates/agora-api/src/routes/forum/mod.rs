//! The forum's routes (docs/forum-api.md), one module per resource. Every write does its change
//! and publishes its event through the outbox in one transaction, and the event's `data` is
//! the resource exactly as the route answers it (re-read inside that transaction).

pub mod categories;
pub mod groups;
pub mod moderation;
pub mod posts;
pub mod reactions;
pub mod tags;
pub mod threads;
pub mod users;

use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

use agora_core::ids::has_prefix;
use agora_forum::input::{self, limits, Invalid};
use agora_forum::model::Thread;
use agora_store::forum::{users as user_rows, Cursor};
use agora_store::outbox::Routing;
use agora_store::{Publication, StoreError, Tx};

use crate::error::{ApiError, ApiResult};
use crate::extract::Caller;
use crate::pagination::PageQuery;
use crate::AppState;

/// Prefixes of forum ids.
pub mod prefix {
    /// Users.
    pub const USER: &str = "usr";
    /// Categories.
    pub const CATEGORY: &str = "cat";
    /// Threads.
    pub const THREAD: &str = "thr";
    /// Posts.
    pub const POST: &str = "pst";
    /// Groups.
    pub const GROUP: &str = "grp";
    /// Tags.
    pub const TAG: &str = "tag";
    /// Reports.
    pub const REPORT: &str = "rpt";
    /// Reactions.
    pub const REACTION: &str = "rxn";
}

/// Every forum route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(users::routes())
        .merge(categories::routes())
        .merge(groups::routes())
        .merge(tags::routes())
        .merge(threads::routes())
        .merge(posts::routes())
        .merge(reactions::routes())
        .merge(moderation::routes())
}

/// A parse failure of the domain, answered as a 400.
pub(crate) fn invalid(e: Invalid) -> ApiError {
    ApiError::invalid(e.code, e.message)
}

/// Answers 404 for an id that cannot be one of `prefix`, before touching the database.
pub(crate) fn check_id(id: &str, prefix: &str, what: &str) -> ApiResult<()> {
    if has_prefix(id, prefix) {
        Ok(())
    } else {
        Err(ApiError::not_found(what))
    }
}

/// Maps "no such row" to a 404 naming `what`.
pub(crate) fn found<T>(r: Result<T, StoreError>, what: &str) -> ApiResult<T> {
    match r {
        Err(StoreError::NotFound) => Err(ApiError::not_found(what)),
        other => Ok(other?),
    }
}

/// Records the built-in event `name` with `resource` as its data in the handler's publication.
pub(crate) async fn publish(
    tx: &mut Publication,
    name: &'static str,
    resource: &impl Serialize,
    routing: Option<&Routing>,
) -> ApiResult<()> {
    let event = agora_forum::catalog::event(name, resource);
    tx.publish(&event, routing).await?;
    Ok(())
}

/// Where a thread's events happen, for webhook filters: its category, and its tags by id and
/// by name (a filter may list either).
pub(crate) fn routing(thread: &Thread) -> Routing {
    Routing {
        category_id: Some(thread.category.id.clone()),
        tags: thread
            .tags
            .iter()
            .flat_map(|t| [t.id.clone(), t.name.clone()])
            .collect(),
    }
}

/// The user a write acts as: a session's own user (naming another in `user_id` is refused),
/// or, for an API key, the live user it names in `user_id`.
pub(crate) async fn acting_user(
    tx: &mut Tx,
    caller: &Caller,
    user_id: Option<&str>,
) -> ApiResult<String> {
    match (caller.user_id(), user_id) {
        (Some(me), None) => Ok(me.to_owned()),
        (Some(me), Some(other)) if other == me => Ok(me.to_owned()),
        (Some(_), Some(_)) => Err(ApiError::forbidden(
            "a session acts only as its own user; leave out user_id",
        )),
        (None, None) => Err(ApiError::invalid(
            "missing_user_id",
            "an API key must say which user acts: send user_id",
        )),
        (None, Some(id)) => {
            let exists = has_prefix(id, prefix::USER)
                && !matches!(user_rows::get(tx, id).await, Err(StoreError::NotFound));
            if exists {
                Ok(id.to_owned())
            } else {
                Err(ApiError::invalid("unknown_user", format!("no user {id:?}")))
            }
        }
    }
}

/// Answers 403 unless the caller may change content owned by `owner_id`.
pub(crate) fn require_owner(caller: &Caller, owner_id: &str, what: &str) -> ApiResult<()> {
    if caller.may_act_on(owner_id) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "only its author or a moderator may change this {what}"
        )))
    }
}

/// The keyset cursor of a list sorted by a number then an id.
pub(crate) fn keyset(page: &PageQuery) -> ApiResult<Option<Cursor>> {
    page.cursor
        .as_deref()
        .map(|c| {
            Cursor::decode(c).ok_or_else(|| {
                ApiError::invalid("invalid_cursor", "cursor is not one this API answered")
            })
        })
        .transpose()
}

/// The id cursor of a list sorted by id.
pub(crate) fn id_cursor(page: &PageQuery) -> ApiResult<Option<&str>> {
    match page.cursor.as_deref() {
        None => Ok(None),
        Some(c) if c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            Ok(Some(c))
        }
        Some(_) => Err(ApiError::invalid(
            "invalid_cursor",
            "cursor is not one this API answered",
        )),
    }
}

/// A required field of a create or PATCH body: the value sent, checked by `parse`, else the
/// value `before` the PATCH; a create without it answers 400 `invalid_body`.
pub(crate) fn required(
    field: &str,
    sent: Option<&str>,
    before: Option<&str>,
    parse: impl FnOnce(&str) -> ApiResult<String>,
) -> ApiResult<String> {
    match (sent, before) {
        (Some(v), _) => parse(v),
        (None, Some(b)) => Ok(b.to_owned()),
        (None, None) => Err(ApiError::invalid(
            "invalid_body",
            format!("{field} is required"),
        )),
    }
}

/// The `description` of a create or PATCH body: the one sent, checked (empty clears it), else
/// the one `before` the PATCH.
pub(crate) fn description(sent: Option<&str>, before: Option<&str>) -> ApiResult<Option<String>> {
    match sent {
        Some(d) => {
            input::optional_text("description", Some(d), limits::DESCRIPTION).map_err(invalid)
        }
        None => Ok(before.map(str::to_owned)),
    }
}

/// A conflict on a unique name, answered as 409 with `code`.
pub(crate) fn unique<T>(
    r: Result<T, StoreError>,
    code: &'static str,
    message: &str,
) -> ApiResult<T> {
    match r {
        Err(StoreError::Conflict(_)) => Err(ApiError::conflict(code, message.to_owned())),
        other => Ok(other?),
    }
}
