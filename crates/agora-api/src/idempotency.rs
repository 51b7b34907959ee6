//! `Idempotency-Key` on the writes that publish (`POST /v1/events`, the batch, forum writes):
//! a repeat with the same key and the same request from the same caller within 24 hours is
//! answered with the first answer and creates nothing.
//!
//! A request without the header passes through untouched. With it, [`guard`] authenticates the
//! caller once (the handler's [`Caller`] reuses it), then:
//! - a key recorded for another request (method, path or body differ) → 422
//!   `idempotency_key_reused`;
//! - a key answered → that answer again, with `Idempotent-Replayed: true`;
//! - a key recorded whose first request has not answered yet → 409
//!   `idempotency_key_in_progress` (retry later; nothing is written);
//! - otherwise the handler runs with the claim, which its publication records in its own
//!   transaction (`agora_store::idempotency`); an event publish stores its answer in that
//!   transaction too, a forum write right after the commit.
//!
//! Concurrent repeats race on the key's primary key inside the write transactions: one
//! records it and writes, the others write nothing and answer as above.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use agora_store::idempotency::{with_claim, Claim, ClaimState, Stored, MAX_KEY_LEN};

use crate::error::ApiError;
use crate::extract::{Caller, Principal};
use crate::{AppState, MAX_BODY_BYTES};

/// The request header carrying the key.
pub const HEADER: &str = "idempotency-key";

/// The answer header marking a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// The middleware: see the module's documentation.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(key) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let key = match checked_key(key) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        // Routes that need no caller (sign-up, login) run as they would without the key.
        Err(_) => return next.run(Request::from_parts(parts, body)).await,
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than 1 MiB",
            )
            .into_response()
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let claim = Arc::new(Claim::new(
        scope(&caller),
        key,
        parts.method.as_str(),
        path,
        &body,
    ));
    // An event publish whose input is valid always reaches its publication, which finds a
    // recorded key itself (`Taken`, below); only other writes, which may fail on state the
    // first request changed (a name now taken), look for the key before they run.
    if !publishes_events_only(&parts.method, parts.uri.path()) {
        match stored(&state, &claim).await {
            Ok(None) => {}
            Ok(Some(answer)) => return answer,
            Err(e) => return e.into_response(),
        }
    }
    parts.extensions.insert(caller);
    let request = Request::from_parts(parts, Body::from(body));
    let response = with_claim(claim.clone(), next.run(request)).await;
    match claim.state() {
        ClaimState::Unused | ClaimState::Answered => response,
        // Another request recorded the key while this one ran: answer as a repeat would be.
        ClaimState::Taken => match stored(&state, &claim).await {
            Ok(Some(answer)) => answer,
            Ok(None) | Err(_) => response,
        },
        ClaimState::Recorded => remember(&state, &claim, response).await,
    }
}

/// Whether the request is `POST /v1/events` or `POST /v1/events/batch`: writes of nothing
/// but events, which the read before the handler can be spared.
fn publishes_events_only(method: &Method, path: &str) -> bool {
    *method == Method::POST && matches!(path, "/v1/events" | "/v1/events/batch")
}

/// The key, if it is 1 to 255 printable ASCII characters.
fn checked_key(value: &HeaderValue) -> Result<String, ApiError> {
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_KEY_LEN
        || !bytes.iter().all(|b| (b' '..=b'~').contains(b))
    {
        return Err(ApiError::invalid(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters"),
        ));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Whose keys these are: an API key's own, or a user's (all their sessions share them).
fn scope(caller: &Caller) -> String {
    match &caller.principal {
        Principal::Key(key) => format!("key:{}", key.id),
        Principal::User(session) => format!("user:{}", session.user_id),
    }
}

/// The answer a key already recorded calls for, or `None` when the request may run.
async fn stored(state: &AppState, claim: &Claim) -> Result<Option<Response>, ApiError> {
    Ok(match state.store.idempotent_answer(claim).await? {
        Stored::Absent => None,
        Stored::OtherRequest => Some(
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request (method, path or body) \
                 in the last 24 hours; use a new key for a new request",
            )
            .into_response(),
        ),
        Stored::InProgress => {
            Some(ApiError::from(agora_store::StoreError::IdempotencyKeyTaken).into_response())
        }
        Stored::Answered { status, body } => Some(replay(status, body)),
    })
}

/// A stored answer, sent again.
fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = if body.is_empty() {
        status.into_response()
    } else {
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    };
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Stores the first answer of a key and sends it. If it cannot be stored, the answer is sent
/// all the same: the write is committed, and a repeat is told the key is in progress.
async fn remember(state: &AppState, claim: &Claim, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let text = String::from_utf8_lossy(&bytes);
    if let Err(e) = state
        .store
        .record_idempotent_answer(claim, parts.status.as_u16(), &text)
        .await
    {
        tracing::warn!(error = %e, "an idempotent answer was not stored");
    }
    Response::from_parts(parts, Body::from(bytes))
}
