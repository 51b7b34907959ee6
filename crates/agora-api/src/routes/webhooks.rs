//! `/v1/webhooks`: register, list, read, change, delete, test, rotate, recover.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use agora_core::event::{Event, EventType};
use agora_core::format::Format;
use agora_core::ids::{has_prefix, new_id, WEBHOOK};
use agora_core::signing::WebhookSecret;
use agora_core::subscription::EventPattern;
use agora_core::target::TargetError;
use agora_core::time::{now_ms, parse_rfc3339};
use agora_forum::abilities::{Ability, Resource};
use agora_store::secretbox::StoredSecret;
use agora_store::webhooks::{Webhook, WebhookFilter, REDACTED};
use agora_store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, Query};
use crate::pagination::{Page, PageQuery};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", post(create).get(list))
        .route(
            "/v1/webhooks/{id}",
            get(read).patch(patch).put(replace).delete(remove),
        )
        .route("/v1/webhooks/{id}/test", post(test))
        .route("/v1/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/v1/webhooks/{id}/recover", post(recover))
}

/// The fields a client may send; which are required depends on the method.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookInput {
    url: Option<String>,
    events: Option<Vec<String>>,
    name: Option<String>,
    description: Option<String>,
    secret: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    retry_count: Option<i64>,
    timeout_ms: Option<i64>,
    status: Option<String>,
    filter: Option<WebhookFilter>,
    format: Option<String>,
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
    if !has_prefix(id, WEBHOOK) {
        return Err(ApiError::not_found("webhook"));
    }
    match state.store.webhook(id, caller.owner()).await {
        Err(StoreError::NotFound) => Err(ApiError::not_found("webhook")),
        other => Ok(other?),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<WebhookInput>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let now = now_ms();
    let mut w = Webhook {
        id: new_id(WEBHOOK),
        owner_key_id: caller.key().map(|k| k.id.clone()),
        name: None,
        description: None,
        url: String::new(),
        events: Vec::new(),
        secret: StoredSecret::Fresh(WebhookSecret::generate()),
        previous_secret: None,
        previous_secret_until: None,
        headers: BTreeMap::new(),
        retry_count: 10,
        timeout_ms: 5_000,
        status: "active".into(),
        disabled_reason: None,
        filter: None,
        format: "json".into(),
        created_at: now,
        updated_at: now,
        last_triggered_at: None,
        last_error: None,
        last_success_at: None,
        failure_streak: 0,
    };
    apply(&state, &caller, &mut w, input, Mode::Create).await?;
    let quota = (!caller.is_admin()).then_some(state.max_webhooks_per_key);
    state.store.insert_webhook(&w, quota).await?;
    Ok((StatusCode::CREATED, axum::Json(with_secret(&w))))
}

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
    let page = Page::new(hooks, limit, |w| w.id.clone());
    Ok(axum::Json(json!({
        "data": page.data.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Read(Resource::Webhooks))?;
    Ok(axum::Json(view(&load(&state, &caller, &id).await?)))
}

async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<WebhookInput>,
) -> ApiResult<impl IntoResponse> {
    update(state, caller, id, input, Mode::Patch).await
}

async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(input): Json<WebhookInput>,
) -> ApiResult<impl IntoResponse> {
    update(state, caller, id, input, Mode::Replace).await
}

async fn update(
    state: AppState,
    caller: Caller,
    id: String,
    input: WebhookInput,
    mode: Mode,
) -> ApiResult<axum::Json<Value>> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let mut w = load(&state, &caller, &id).await?;
    apply(&state, &caller, &mut w, input, mode).await?;
    w.updated_at = now_ms();
    state.store.update_webhook(&w).await?;
    Ok(axum::Json(view(&w)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let w = load(&state, &caller, &id).await?;
    state.store.delete_webhook(&w.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestInput {
    event: Option<String>,
}

async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let w = load(&state, &caller, &id).await?;
    let input: TestInput = if body.iter().all(u8::is_ascii_whitespace) {
        TestInput::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?
    };
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
    recorded.map_err(|e| ApiError::from(StoreError::unavailable(e.0)))?;
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

async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Ability::Write(Resource::Webhooks))?;
    let mut w = load(&state, &caller, &id).await?;
    let now = now_ms();
    let fresh = WebhookSecret::generate();
    w.previous_secret = Some(std::mem::replace(
        &mut w.secret,
        StoredSecret::Fresh(fresh.clone()),
    ));
    w.previous_secret_until = Some(now + state.rotation_grace.as_millis() as i64);
    w.updated_at = now;
    state.store.update_webhook(&w).await?;
    Ok(axum::Json(json!({
        "secret": fresh.expose(),
        "previous_secret_expires_at": w.previous_secret_until.map(agora_core::time::to_rfc3339),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverInput {
    since: String,
}

async fn recover(
    State(state): State<AppState>,
    caller: Caller,
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
    let recovered = state.store.recover(&w.id, since).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "recovered": recovered })),
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// POST: `url` and `events` required, defaults for the rest.
    Create,
    /// PUT: as create, but the secret stays unless one is given.
    Replace,
    /// PATCH: only the fields given change.
    Patch,
}

/// Validates `input` and writes it into `w`. Nothing is stored here: any error leaves the
/// webhook as it was.
async fn apply(
    state: &AppState,
    caller: &Caller,
    w: &mut Webhook,
    input: WebhookInput,
    mode: Mode,
) -> ApiResult<()> {
    let full = mode != Mode::Patch;
    match input.url {
        Some(url) => w.url = check_url(state, &url).await?,
        None if full => return Err(ApiError::invalid("invalid_url", "url is required")),
        None => {}
    }
    match input.events {
        Some(events) => w.events = check_events(state, caller, events).await?,
        None if full => return Err(ApiError::invalid("invalid_events", "events is required")),
        None => {}
    }
    if let Some(secret) = input.secret {
        let secret = WebhookSecret::parse(&secret)
            .map_err(|e| ApiError::invalid("invalid_secret", e.to_string()))?;
        w.secret = StoredSecret::Fresh(secret);
    }
    if full || input.name.is_some() {
        w.name = check_text("name", input.name, 200)?;
    }
    if full || input.description.is_some() {
        w.description = check_text("description", input.description, 2000)?;
    }
    if full || input.headers.is_some() {
        let mut headers = input.headers.unwrap_or_default();
        keep_write_only_values(&mut headers, &w.headers);
        w.headers = check_headers(headers)?;
    }
    if let Some(n) = input.retry_count.or(full.then_some(10)) {
        if !(0..=10).contains(&n) {
            return Err(ApiError::invalid(
                "invalid_retry_count",
                "retry_count must be between 0 and 10",
            ));
        }
        w.retry_count = n;
    }
    if let Some(ms) = input.timeout_ms.or(full.then_some(5_000)) {
        if !(1_000..=30_000).contains(&ms) {
            return Err(ApiError::invalid(
                "invalid_timeout",
                "timeout_ms must be between 1000 and 30000",
            ));
        }
        w.timeout_ms = ms;
    }
    if let Some(status) = input.status.or(full.then(|| "active".to_owned())) {
        if status != "active" && status != "inactive" {
            return Err(ApiError::invalid(
                "invalid_status",
                "status must be `active` or `inactive`",
            ));
        }
        if status == "active" {
            w.disabled_reason = None;
        }
        w.status = status;
    }
    if full || input.filter.is_some() {
        w.filter = check_filter(input.filter)?;
    }
    if let Some(format) = input.format.or(full.then(|| "json".to_owned())) {
        Format::parse(&format).ok_or_else(|| {
            ApiError::invalid(
                "invalid_format",
                "format must be `json`, `slack` or `discord`",
            )
        })?;
        w.format = format;
    }
    Ok(())
}

/// Checks a target URL: syntax and scheme, a literal address, and what the host resolves to now
/// (it is checked again at every connection).
async fn check_url(state: &AppState, raw: &str) -> ApiResult<String> {
    let invalid = |e: TargetError| ApiError::invalid("invalid_url", e.to_string());
    let url = state.targets.check_url(raw).map_err(invalid)?;
    if let (Some(url::Host::Domain(host)), false) = (url.host(), state.targets.allow_private) {
        let port = url.port_or_known_default().unwrap_or(443);
        // A name that does not resolve today may tomorrow: it is checked again when connecting.
        if let Err(TargetError::PrivateAddress) = state.targets.resolve(host, port).await {
            return Err(invalid(TargetError::PrivateAddress));
        }
    }
    Ok(url.to_string())
}

async fn check_events(
    state: &AppState,
    caller: &Caller,
    events: Vec<String>,
) -> ApiResult<Vec<String>> {
    if events.is_empty() || events.len() > 100 {
        return Err(ApiError::invalid(
            "invalid_events",
            "events must list 1 to 100 event names",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for raw in events {
        let pattern = EventPattern::parse(&raw)
            .map_err(|e| ApiError::invalid("invalid_events", e.to_string()))?;
        check_known(state, &pattern).await?;
        match pattern.resource() {
            Some(resource) => caller.require(agora_forum::catalog::read_ability(resource))?,
            None => {
                if !caller.is_admin() {
                    return Err(ApiError::forbidden(
                        "subscribing to `*` needs the `admin` ability",
                    ));
                }
            }
        }
        let normalized = pattern.to_string();
        if !out.contains(&normalized) {
            out.push(normalized);
        }
    }
    Ok(out)
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

fn check_text(field: &str, value: Option<String>, max: usize) -> ApiResult<Option<String>> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::invalid(
            "invalid_body",
            format!("{field} must be at most {max} characters"),
        )),
        other => Ok(other),
    }
}

/// Header values are write-only where they carry credentials: they are shown as
/// `[redacted]`, so a webhook read and sent back keeps the values it had.
fn keep_write_only_values(given: &mut BTreeMap<String, String>, stored: &BTreeMap<String, String>) {
    for (name, value) in given.iter_mut() {
        if value == REDACTED {
            if let Some(kept) = stored.get(name) {
                value.clone_from(kept);
            }
        }
    }
}

/// The longest custom header name accepted.
const MAX_HEADER_NAME: usize = 256;

/// The longest category id or tag a filter may list.
const MAX_FILTER_ITEM: usize = 200;

fn check_headers(headers: BTreeMap<String, String>) -> ApiResult<BTreeMap<String, String>> {
    if headers.len() > 20 {
        return Err(ApiError::invalid(
            "invalid_header",
            "at most 20 custom headers",
        ));
    }
    for (name, value) in &headers {
        if name.len() > MAX_HEADER_NAME {
            return Err(ApiError::invalid(
                "invalid_header",
                format!("a header name may have at most {MAX_HEADER_NAME} characters"),
            ));
        }
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid(
                "invalid_header",
                format!("{name:?} is not a valid header name"),
            ));
        }
        if agora_core::dispatcher::sender::is_reserved_header(name) {
            return Err(ApiError::invalid(
                "invalid_header",
                format!("header {name:?} is set by Agora and cannot be overridden"),
            ));
        }
        if value.len() > 4096 || axum::http::HeaderValue::from_str(value).is_err() {
            return Err(ApiError::invalid(
                "invalid_header",
                format!("the value of {name:?} is not a valid header value"),
            ));
        }
    }
    Ok(headers)
}

fn check_filter(filter: Option<WebhookFilter>) -> ApiResult<Option<WebhookFilter>> {
    match filter {
        Some(f) if f.category_ids.len() > 100 || f.tags.len() > 100 => Err(ApiError::invalid(
            "invalid_filter",
            "filter lists at most 100 categories and 100 tags",
        )),
        Some(f)
            if f.category_ids
                .iter()
                .chain(&f.tags)
                .any(|item| item.is_empty() || item.chars().count() > MAX_FILTER_ITEM) =>
        {
            Err(ApiError::invalid(
                "invalid_filter",
                format!(
                    "each category id and tag in a filter has 1 to {MAX_FILTER_ITEM} characters"
                ),
            ))
        }
        Some(f) if f.category_ids.is_empty() && f.tags.is_empty() => Ok(None),
        other => Ok(other),
    }
}
