//! Agora's HTTP API.
//!
//! # Layout
//!
//! - [`AppState`]: what every handler shares: the store, the sender for synchronous test
//!   deliveries, and the settings handlers need.
//! - [`router`]: every route; [`serve()`] runs it on a listener until shutdown.
//! - `error`, `extract`, `pagination`: the error shape, extractors that answer in it, lists.
//! - [`api`], [`openapi`], [`schemas`]: every operation with its annotation; the OpenAPI
//!   document built from them and the /docs page; the schemas of answers built as JSON.
//! - [`ratelimit`]: per-key and per-user request limits, checked when a request authenticates.
//! - [`login`]: login attempt limits and the bounded password hashing pool.
//! - [`metrics`]: requests by route and status with their latency, and `GET /metrics`.
//! - [`idempotency`]: `Idempotency-Key` on the writes that publish (events, batches, forum).
//! - [`readiness`]: what `/readyz` knows besides the database (draining, dispatcher).
//! - [`request_id`]: each request's id, its log span and the access log line.
//! - [`server`]: the accept loop, with bounds on connections, header reads and silence.
//! - [`stream`]: the one reader of new events per process that every `GET /v1/stream`
//!   filters for itself.
//! - `routes::*`: one module per resource; `routes::forum::*` the forum's (users, categories,
//!   groups, tags, threads, posts, reactions, moderation).
//!
//! Handlers never call a webhook receiver themselves, except `POST /v1/webhooks/{id}/test`,
//! which is a synchronous attempt by definition; everything else goes through the outbox.

pub mod error;
pub mod extract;
pub mod idempotency;
pub mod login;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod ratelimit;
pub mod readiness;
pub mod request_id;
pub mod schemas;
pub mod server;
pub mod stream;

mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;

use agora_core::dispatcher::Sender;
use agora_core::target::TargetPolicy;
use agora_store::Store;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What handlers share: [`Shared`] behind one reference count. Extractors and middleware
/// clone the state for every request, so a clone is one atomic increment rather than one per
/// field (the store's and the HTTP client's handles hold a dozen between them).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state handlers share.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The settings and handles every handler may use.
pub struct Shared {
    /// The database.
    pub store: Store,
    /// Sends the synchronous `test` deliveries (the dispatcher has its own clone).
    pub sender: Sender,
    /// Which webhook URLs are allowed.
    pub targets: TargetPolicy,
    /// This node's id, the lease owner of test deliveries.
    pub node_id: String,
    /// How long a test delivery's lease lasts (it is recorded long before).
    pub lease: Duration,
    /// How long an old secret keeps signing after a rotation.
    pub rotation_grace: Duration,
    /// Requests per API key and per user with a session.
    pub rate_limiter: ratelimit::KeyRateLimiter,
    /// Login attempts per account and address, and the password hashing pool.
    pub login: login::LoginGuard,
    /// Webhooks one non-admin API key may own.
    pub max_webhooks_per_key: usize,
    /// Whether the node is draining and its dispatcher runs, for `/readyz`.
    pub readiness: readiness::Readiness,
    /// What `GET /metrics` serves, and the token that may scrape it.
    pub metrics: metrics::MetricsEndpoint,
    /// New events, for `GET /v1/stream`.
    pub stream: stream::StreamHub,
}

/// Every operation of the API with its OpenAPI annotation: the router serves exactly what the
/// document ([`openapi::document`]) describes. A new route is added through its module's
/// `routes!` list, never with a bare `.route`.
pub fn api() -> OpenApiRouter<AppState> {
    administrative().merge(idempotent())
}

/// The operations that honour `Idempotency-Key`: publishing events and the forum's writes.
pub(crate) fn idempotent() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(routes::events::routes())
        .merge(routes::forum::routes())
}

/// Every other operation: webhooks, deliveries, keys, the audit log, the stream, health,
/// metrics and the document itself.
fn administrative() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(routes::health::routes())
        .merge(routes::webhooks::routes())
        .merge(routes::deliveries::routes())
        .merge(routes::keys::routes())
        .merge(routes::audit::routes())
        .merge(routes::stream::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
}

/// Every route of the API, and the reference page at `/docs`. Every error, the router's own
/// included (405, 413, undecodable paths), is answered in the contract's shape; [`serve()`]
/// gives hyper's own answers to requests it cannot parse (400, 414, 431) the same shape.
pub fn router(state: AppState) -> Router {
    let (administrative, _) = administrative().split_for_parts();
    let (idempotent, _) = idempotent().split_for_parts();
    administrative
        .merge(idempotent.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::guard,
        )))
        .merge(openapi::page())
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(error::in_contract_shape))
        .layer(axum::middleware::from_fn(metrics::measure))
        .layer(axum::middleware::from_fn(request_id::trace))
        .with_state(state)
}

/// Serves the API on `listener` within `limits` until `shutdown` completes, then finishes
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: server::ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, router(state), limits, shutdown).await
}
