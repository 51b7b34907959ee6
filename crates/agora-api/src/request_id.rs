//! Request ids and the access log: every request gets an id, taken from its `x-request-id`
//! when that is usable, else a fresh ULID; the answer echoes it, every log line written while
//! the request is handled carries it (the `request` span), and one line at `info` tells of the
//! request once it is answered.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header a request id comes in and goes back out in.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client: enough for a UUID or a trace id, and a bound
/// on what one request can write into every log line of it.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Gives the request its id and span, answers with the id, and writes the access log line:
/// method, matched route (not the path, which may carry ids and is unbounded), status and
/// duration.
pub async fn trace(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| usable(v.as_bytes()))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&ulid::Ulid::new().to_string()).expect("a ULID is a header")
        });
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().expect("checked printable")
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    tracing::info!(
        parent: &span,
        method = method.as_str(),
        route = route.as_deref().unwrap_or("(none)"),
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// Whether a client's request id may be used: 1 to [`MAX_REQUEST_ID_LEN`] printable ASCII
/// characters with no space, so that it cannot forge or break a log line.
fn usable(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_ids_are_taken() {
        assert!(usable(b"abc-123_XYZ.~"));
        assert!(usable(&[b'a'; MAX_REQUEST_ID_LEN]));
        assert!(!usable(&[b'a'; MAX_REQUEST_ID_LEN + 1]));
        assert!(!usable(b""));
        assert!(!usable(b"has space"));
        assert!(!usable(b"new\nline"));
        assert!(!usable("é".as_bytes()));
    }
}
