//! `/v1/webhooks`: register, list, read, change, delete, test, rotate, recover.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_core::event::{Event, EventType};
use agora_core::ids::WebhookId;
use agora_core::signing::WebhookSecret;
use agora_core::subscription::EventPattern;
use agora_core::time::{now_ms, parse_rfc3339};
use agora_core::webhook::{Mode, Vetting, WebhookChange, WebhookInput};
use agora_forum::abilities::{Ability, Resource};
use agora_store::secretbox::StoredSecret;
use agora_store::webhooks::Webhook;
use agora_store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::extract::{optional_body, Caller, Json, PeerAddr, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(read, patch, replace, remove))
        .routes(routes!(test))
        .routes(routes!(rotate_secret))
        .routes(routes!(recover))
}

/// The webhook with its secret, for the one answer that shows it (at creation the secret is
/// always fresh: generated or supplied in this request).
fn with_secret(w: &Webhook) -> Value {
    let mut v = serde_json::to_value(w.view()).expect("webhooks serialize");
    if let Some(secret) = w.secret.fresh() {
        v["secret"] = Value::String(secret.expose().to_owned());
    }
    v
}

fn view(w: &Webhook) -> Value {
    serde_json::to_value(w.view()).expect("webhooks serialize")
}

/// Loads a webhook the caller may see, answering 404 for anyone else's.
pub(crate) async fn load(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Webhook> {
    let id = WebhookId::parse(id).ok_or_else(|| ApiError::not_found("webhook"))?;
    match state.store.webhook(&id, caller.owner()).await {
        Err(StoreError::NotFound) => Err(ApiError::not_found("webhook")),
        other => Ok(other?),
    }
}

/// Register a webhook.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = WebhookInput,
    responses((status = 201, description = "Created; the secret is shown this once.", body = crate::schemas::WebhookWithSecret)),
    extensions(("x-abilities" = json!(["webhooks:write"])))
)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    peer: PeerAddr,
    Json(input): Json<WebhookInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let change = parse(&state, &caller, input, Mode::Full).await?;
    let owner = caller.key().map(|k| k.id.clone());
    let w = Webhook::new(owner, change, now_ms());
    let quota = (!caller.is_admin()).then_some(state.max_webhooks_per_key);
    state
        .store
        .insert_webhook(&w, quota, &caller.audit_actor(&peer))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(with_secret(&w))))
}

/// List your webhooks (an admin key sees all).
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    params(PageQuery),
    responses((status = 200, description = "One page of webhooks.", body = Page<agora_store::webhooks::WebhookView>)),
    extensions(("x-abilities" = json!(["webhooks:read"])))
)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Read(Resource::Webhooks))?;
    let limit = page.limit()?;
    let hooks = state
        .store
        .list_webhooks(caller.owner(), page.cursor.as_deref(), limit)
        .await?;
    let page = Page::new(hooks, limit, |w| w.id.to_string());
    Ok(axum::Json(json!({
        "data": page.data.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// Read a webhook.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, description = "The webhook.", body = agora_store::webhooks::WebhookView)),
    extensions(("x-abilities" = json!(["webhooks:read"])))
)]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Read(Resource::Webhooks))?;
    Ok(axum::Json(view(&load(&state, &caller, &id).await?)))
}

/// Change some fields of a webhook.
#[utoipa::path(
    patch,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path)),
    request_body = WebhookInput,
    responses((status = 200, description = "The changed webhook.", body = agora_store::webhooks::WebhookView)),
    extensions(("x-abilities" = json!(["webhooks:write"])))
)]
async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    peer: PeerAddr,
    Path(id): Path<String>,
    Json(input): Json<WebhookInput>,
) -> ApiResult<impl IntoResponse> {
    update(state, caller, peer, id, input, Mode::Patch).await
}

/// Replace a webhook (fields left out are reset).
#[utoipa::path(
    put,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path)),
    request_body = WebhookInput,
    responses((status = 200, description = "The replaced webhook.", body = agora_store::webhooks::WebhookView)),
    extensions(("x-abilities" = json!(["webhooks:write"])))
)]
async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    peer: PeerAddr,
    Path(id): Path<String>,
    Json(input): Json<WebhookInput>,
) -> ApiResult<impl IntoResponse> {
    update(state, caller, peer, id, input, Mode::Full).await
}

async fn update(
    state: AppState,
    caller: Caller,
    peer: PeerAddr,
    id: String,
    input: WebhookInput,
    mode: Mode,
) -> ApiResult<axum::Json<Value>> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let mut w = load(&state, &caller, &id).await?;
    w.apply(parse(&state, &caller, input, mode).await?);
    w.updated_at = now_ms();
    state
        .store
        .update_webhook(&w, &caller.audit_actor(&peer))
        .await?;
    Ok(axum::Json(view(&w)))
}

/// Delete a webhook.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done.")),
    extensions(("x-abilities" = json!(["webhooks:write"])))
)]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    peer: PeerAddr,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let w = load(&state, &caller, &id).await?;
    state
        .store
        .delete_webhook(&w.id, &caller.audit_actor(&peer))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TestInput {
    event: Option<String>,
}

/// Send one signed `webhook.test` delivery now and answer its outcome.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = String, Path)),
    request_body(content = Option<TestInput>, description = "Optional."),
    responses((status = 200, description = "The attempt, made and recorded.", body = crate::schemas::TestResult)),
    extensions(("x-abilities" = json!(["webhooks:write"])))
)]
async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let w = load(&state, &caller, &id).await?;
    let input: TestInput = optional_body(&body)?;
    let sample = match input.event {
        Some(name) => {
            let t = EventType::parse(&name)
                .map_err(|e| ApiError::invalid("invalid_event", e.to_string()))?;
            check_known(&state, &EventPattern::Exact(t.clone())).await?;
            Some(t)
        }
        None => None,
    };
    let event = Event::new(
        EventType::parse("webhook.test").expect("a valid name"),
        json!({
            "webhook_id": w.id,
            "event": sample.as_ref().map(EventType::as_str),
            "message": "This is a test delivery from Agora.",
        }),
    );
    let mut tx = state.store.begin_publication().await?;
    let lease_until = now_ms() + state.lease.as_millis() as i64;
    let delivery_id = tx
        .publish_leased_to(&event, &w.id, &state.node_id, lease_until)
        .await?;
    // Held before its lease commits, so the sweep of stranded leases leaves it alone.
    let holding = state.store.handoff().hold(&delivery_id);
    // The commit, the attempt and its record run in a task of their own, so a client that
    // hangs up mid-test cannot leave the delivery leased and unsent.
    let (sender, store, id) = (
        state.sender.clone(),
        state.store.clone(),
        delivery_id.clone(),
    );
    let (record, recorded) = tokio::spawn(async move {
        use agora_core::dispatcher::DeliveryQueue as _;
        let _holding = holding;
        tx.commit().await?;
        let mut delivery = store
            .load_claimed(std::slice::from_ref(&id))
            .await?
            .pop()
            .ok_or_else(|| StoreError::internal("test delivery vanished after commit"))?;
        // A test is answered now; it is not retried.
        delivery.retry_count = 0;
        let record = sender.attempt(&delivery).await;
        let recorded = store.record(vec![record.clone()].into()).await;
        Ok::<_, StoreError>((record, recorded))
    })
    .await
    .map_err(|_| ApiError::internal("the test delivery's task failed"))??;
    recorded.map_err(|e| {
        ApiError::from(StoreError::unavailable("the test delivery was not recorded").because(e))
    })?;
    let answer = json!({
        "success": record.error.is_none(),
        "status_code": record.response_status,
        "response_time_ms": record.duration_ms,
        "error": record.error,
        "delivery_id": delivery_id,
        "event_id": event.id,
    });
    Ok(axum::Json(answer))
}

/// What a rotation may carry: the new secret, when the client chooses it.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateInput {
    secret: Option<String>,
}

/// Rotate the signing secret; the old one keeps signing for the grace period.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    params(("id" = String, Path)),
    request_body(content = Option<RotateInput>, description = "Optional: the new secret, `whsec_` and the base64 of 24 to 64 bytes; generated when left out."),
    responses((status = 200, description = "The new secret, shown this once.", body = crate::schemas::RotatedSecret)),
    extensions(("x-abilities" = json!(["webhooks:write"])))
)]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    peer: PeerAddr,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let input: RotateInput = optional_body(&body)?;
    let fresh = match input.secret {
        Some(chosen) => WebhookSecret::parse(&chosen)
            .map_err(|e| ApiError::invalid("invalid_secret", e.to_string()))?,
        None => WebhookSecret::generate(),
    };
    let mut w = load(&state, &caller, &id).await?;
    let now = now_ms();
    w.previous_secret = Some(std::mem::replace(
        &mut w.secret,
        StoredSecret::Fresh(fresh.clone()),
    ));
    w.previous_secret_until = Some(now + state.rotation_grace.as_millis() as i64);
    w.updated_at = now;
    state
        .store
        .update_webhook(&w, &caller.audit_actor(&peer))
        .await?;
    Ok(axum::Json(json!({
        "secret": fresh.expose(),
        "previous_secret_expires_at": w.previous_secret_until.map(agora_core::time::to_rfc3339),
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RecoverInput {
    since: String,
}

/// Queue again every failed or exhausted delivery since a time.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/recover",
    tag = "webhooks",
    params(("id" = String, Path)),
    request_body = RecoverInput,
    responses((status = 202, description = "Deliveries queued again.", body = crate::schemas::Recovered)),
    extensions(("x-abilities" = json!(["webhooks:write"])))
)]
async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    peer: PeerAddr,
    Path(id): Path<String>,
    Json(input): Json<RecoverInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let w = load(&state, &caller, &id).await?;
    let since = parse_rfc3339(&input.since)
        .ok_or_else(|| ApiError::invalid("invalid_since", "since must be an RFC 3339 timestamp"))?;
    if !w.is_active() {
        return Err(ApiError::conflict(
            "webhook_inactive",
            "the webhook is inactive; set status to active first",
        ));
    }
    let recovered = state
        .store
        .recover(&w.id, since, &caller.audit_actor(&peer))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "recovered": recovered })),
    ))
}

/// Validates a webhook's input in the domain ([`WebhookChange::parse`]); what needs the
/// store or the caller (known event types, abilities) is vetted here.
async fn parse(
    state: &AppState,
    caller: &Caller,
    input: WebhookInput,
    mode: Mode,
) -> ApiResult<WebhookChange> {
    WebhookChange::parse(input, mode, &state.targets, &Vet { state, caller }).await
}

/// What an event pattern needs beyond its syntax: to match something, and the caller's
/// ability to read it (`*` needs `admin`). The event stream vets its patterns the same way.
pub(crate) struct Vet<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) caller: &'a Caller,
}

impl Vetting for Vet<'_> {
    type Error = ApiError;

    async fn pattern(&self, pattern: &EventPattern) -> ApiResult<()> {
        check_known(self.state, pattern).await?;
        match pattern.resource() {
            Some(resource) => self
                .caller
                .require(agora_forum::catalog::read_ability(resource)),
            None if self.caller.is_admin() => Ok(()),
            None => Err(ApiError::forbidden(
                "subscribing to `*` needs the `admin` ability",
            )),
        }
    }
}

/// Refuses patterns that can never match: unknown exact names and unknown resources.
async fn check_known(state: &AppState, pattern: &EventPattern) -> ApiResult<()> {
    let known = match pattern {
        EventPattern::All => true,
        EventPattern::Exact(t) if agora_forum::catalog::is_builtin(t.as_str()) => true,
        EventPattern::Resource(r) if agora_forum::catalog::is_builtin_resource(r) => true,
        EventPattern::Exact(t) => state.store.is_registered_type(t.as_str()).await?,
        EventPattern::Resource(r) => state
            .store
            .custom_event_types()
            .await?
            .iter()
            .any(|c| c.name.split_once('.').is_some_and(|(res, _)| res == r)),
    };
    if known {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "unknown_event",
            format!("`{pattern}` matches no known event type; see GET /v1/event-types"),
        ))
    }
}
