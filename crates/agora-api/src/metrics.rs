//! The API's metrics: requests by route and status with their latency (a middleware), and the
//! `GET /metrics` route that serves every series in Prometheus's text format to a scraper
//! holding the metrics token or an admin API key.
//!
//! A request is labelled by its matched route template (`/v1/webhooks/{id}`), never by its
//! path, which carries ids: the series stay as many as the routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::Caller;
use crate::AppState;

/// Requests answered, by method, route and status.
pub const REQUESTS: &str = "agora_http_requests_total";
/// How long requests took to answer, by method and route.
pub const REQUEST_DURATION: &str = "agora_http_request_duration_seconds";

/// The label of requests no route matched (their path is not a label: it is unbounded).
const UNMATCHED: &str = "unmatched";

/// Renders every recorded series in Prometheus's text format.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// What `GET /metrics` serves and to whom.
#[derive(Clone, Default)]
pub struct MetricsEndpoint {
    /// The exporter's rendering; `None` when no recorder is installed (then 404).
    pub render: Option<Render>,
    /// `AGORA_METRICS_TOKEN`: a bearer token that may scrape without an API key.
    pub token: Option<String>,
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(scrape))
}

/// Every metric in Prometheus's text format, for the holder of the metrics token
/// (`AGORA_METRICS_TOKEN`, as `Authorization: Bearer …`) or of an admin API key; 401 to anyone
/// else, 404 when this process records none.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "Prometheus's text exposition format.", content_type = "text/plain", body = String)),
    extensions(("x-abilities" = json!(["admin, or the metrics token"])))
)]
async fn scrape(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let Some(render) = state.metrics.render.clone() else {
        return Err(ApiError::not_found("route"));
    };
    let (mut parts, _) = request.into_parts();
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let by_token = match (&state.metrics.token, bearer) {
        (Some(token), Some(sent)) => bool::from(token.as_bytes().ct_eq(sent.as_bytes())),
        _ => false,
    };
    if !by_token {
        let caller = Caller::from_request_parts(&mut parts, &state).await?;
        if !caller.is_admin() {
            return Err(ApiError::forbidden(
                "metrics are served to the metrics token or an admin API key",
            ));
        }
    }
    Ok(exposition(render()))
}

/// Serves `GET /metrics` alone on `listener` until `shutdown`, to anyone who reaches it: the
/// operator's private scrape address (`AGORA_METRICS_LISTEN`). Any other path answers 404.
pub async fn serve_open(
    listener: TcpListener,
    render: Render,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let scrape_open = get(move || {
        let render = render.clone();
        async move { exposition(render()) }
    });
    let router = Router::new()
        .route("/metrics", scrape_open)
        .fallback(crate::routes::not_found)
        .layer(axum::middleware::map_response(
            crate::error::in_contract_shape,
        ));
    let limits = crate::server::ServeLimits {
        max_connections: 16,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
    };
    crate::server::serve(listener, router, limits, shutdown).await
}

/// Metrics in Prometheus's text format, as an answer.
fn exposition(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Counts the request and times it, labelled by method, matched route and status.
pub async fn measure(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = status_label(response.status());
    metrics::histogram!(REQUEST_DURATION, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(REQUESTS, "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// The method as a label: the standard ones by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status code as a label, without formatting one per request.
fn status_label(status: StatusCode) -> &'static str {
    const CODES: [(u16, &str); 22] = [
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (410, "410"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (501, "501"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    let code = status.as_u16();
    CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, label)| *label)
        .unwrap_or(match code / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(status_label(StatusCode::OK), "200");
        assert_eq!(status_label(StatusCode::IM_A_TEAPOT), "4xx");
        assert_eq!(status_label(StatusCode::from_u16(599).unwrap()), "5xx");
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
