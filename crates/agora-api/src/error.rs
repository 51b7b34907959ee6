//! The one error shape clients see: the HTTP status and `{"code","message","status"}`.
//!
//! Two layers, as in svix-server: errors the client caused carry their own code and message;
//! anything else is logged here with its cause and answered as an opaque 500, so internals
//! never leak into a response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use agora_store::{Limit, StoreError};

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (429).
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    status: u16,
}

impl ApiError {
    /// An error with this status, machine-readable code and human message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429: the caller (`who`: "this API key", "this account", ...) went over a rate limit;
    /// try again in `seconds`, also sent as `Retry-After`.
    pub fn rate_limited(who: &str, seconds: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests for {who}; retry in {seconds} s"),
        );
        e.retry_after = Some(seconds);
        e
    }

    /// 400: the request is well-formed but a field is wrong.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404, also for things that exist but are not the caller's (ids do not leak).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 403: authenticated, but the key lacks an ability.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 500 for a failure the client cannot act on; the cause is logged, not answered.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; it has been logged",
        )
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        self.code
    }

    /// The body, `{"code","message","status"}`, as JSON text.
    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(&Body {
            code: self.code,
            message: &self.message,
            status: self.status.as_u16(),
        })
        .expect("strings and a number serialize")
    }

    /// The error for a `status` answered without a body, by axum's rejections or hyper's
    /// parser: a code named after the status, and `said` (the rejection's words) or the
    /// status's reason as its message.
    pub fn for_status(status: StatusCode, said: &str) -> Self {
        let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
        let message = match said.trim() {
            _ if status.is_server_error() => reason,
            "" => reason,
            said => said.to_owned(),
        };
        let code = match status.as_u16() {
            404 => "not_found",
            405 => "method_not_allowed",
            408 => "request_timeout",
            413 => "payload_too_large",
            414 => "uri_too_long",
            415 => "unsupported_media_type",
            431 => "headers_too_large",
            500..=599 => "internal_error",
            _ => "invalid_request",
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let content_type = [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )];
        let mut response = (self.status, content_type, self.json()).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// A webhook input the domain refused: 422 with the domain's code and message.
impl From<agora_core::webhook::Invalid> for ApiError {
    fn from(e: agora_core::webhook::Invalid) -> Self {
        Self::invalid(e.code, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("resource"),
            StoreError::Conflict(m) => Self::conflict("conflict", m),
            StoreError::IdempotencyKeyTaken => Self::conflict(
                "idempotency_key_in_progress",
                "a request with this Idempotency-Key is still in progress; retry it shortly",
            ),
            StoreError::Limit(Limit::WebhooksPerKey, m) => {
                Self::conflict("webhook_quota_exceeded", m)
            }
            StoreError::Limit(Limit::DeliveriesPerRequest, m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "too_many_deliveries", m)
            }
            StoreError::Unavailable { .. } => {
                tracing::warn!(error = %Chain(&e), "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "storage is unavailable right now; nothing was changed, try again shortly",
                )
            }
            other => Self::internal(Chain(&other)),
        }
    }
}

/// An error with its causes, `: `-separated, for a log line.
struct Chain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Puts an error answered without the contract's body (axum's and tower-http's rejections:
/// 405 with no body, 413, a path segment that is not UTF-8, ...) into the error shape, keeping
/// its status and headers (`Allow`, `Retry-After`). Answers already in JSON pass untouched.
pub async fn in_contract_shape(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // A rejection's text is a line; anything longer is not worth answering.
    let text = axum::body::to_bytes(body, 1024).await.unwrap_or_default();
    let shaped = ApiError::for_status(status, &String::from_utf8_lossy(&text)).into_response();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.extend(shaped.headers().clone());
    Response::from_parts(parts, shaped.into_body())
}
