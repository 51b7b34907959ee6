//! `GET /v1/stream?events=thread.*,post.created`: new events as Server-Sent Events, for
//! consumers that cannot accept inbound HTTP.
//!
//! Each SSE event carries `id:` the event id, `event:` its type and `data:` the envelope
//! exactly as a webhook delivery's body. Patterns are vetted as a webhook's are (known types,
//! the read ability of each resource, `*` for admins), and every event also passes the
//! caller's [`Caller::audience`] (operational events only to their owner key and admins).
//!
//! A stream starts at the end of the table, or after `Last-Event-ID` (header, or the
//! `last_event_id` parameter), replaying what it missed from the store before going live:
//! it reads the store page by page until it is caught up, subscribes to the process's
//! [`StreamHub`], reads the store once more from where it stands, and then takes the hub's
//! events, skipping those at or before its position. Both sources follow one order, so the
//! seam has neither gap nor duplicate.
//!
//! A stream more than the hub's buffer behind is sent `event: error` saying so and closed;
//! it reconnects with `Last-Event-ID` and replays from the store.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use agora_core::event::EventType;
use agora_core::ids::{has_prefix, EVENT};
use agora_core::subscription::EventPattern;
use agora_core::webhook::Vetting;
use agora_store::events::{Audience, Position};
use agora_store::Store;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Query};
use crate::routes::webhooks::Vet;
use crate::stream::{frame, StreamHub, Streamed};
use crate::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    /// Comma-separated patterns, as a webhook's `events`.
    events: Option<String>,
    /// For clients that cannot send the `Last-Event-ID` header.
    last_event_id: Option<String>,
}

/// Events read from the store per query while replaying.
const PAGE: i64 = 500;

/// How long a live stream stays silent before it sends a keep-alive comment.
const KEEP_ALIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// New events as Server-Sent Events: each message's `id` is the event's id, its `event` the
/// type, its `data` the envelope a webhook delivery carries. Reconnect with `Last-Event-ID` to
/// replay what was missed, in order, then live; a consumer that falls too far behind gets a
/// last `event: error` message (`too_slow`) and is closed.
#[utoipa::path(
    get,
    path = "/v1/stream",
    tag = "events",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (`evt_…`)."),
    ),
    responses((status = 200, description = "The stream, until the client or the server closes it.", content_type = "text/event-stream", body = String)),
    extensions(("x-abilities" = json!(["{resource}:read of each pattern's resource (as for a webhook)", "an API key, not a session"])))
)]
pub(crate) async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.require_key()?;
    let patterns = vetted_patterns(&state, &caller, q.events.as_deref()).await?;
    let last = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| invalid_last_event_id())
        })
        .transpose()?
        .or(q.last_event_id)
        .filter(|v| !v.trim().is_empty());
    let at = match last {
        Some(id) => {
            let id = id.trim();
            if !has_prefix(id, EVENT) {
                return Err(invalid_last_event_id());
            }
            state.store.stream_position(id).await?.ok_or_else(|| {
                ApiError::invalid(
                    "unknown_last_event_id",
                    format!(
                        "event {id} is not recorded (it may have been pruned by retention); \
                             reconnect without Last-Event-ID to start from now"
                    ),
                )
            })?
        }
        None => state.store.stream_end().await?,
    };
    let follower = Follower {
        store: state.store.clone(),
        hub: state.stream.clone(),
        wants: Wants {
            patterns,
            audience: caller.audience(),
        },
        at,
        live: None,
        replaying: true,
        ready: VecDeque::new(),
        done: false,
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(follow(follower)),
    ))
}

fn invalid_last_event_id() -> ApiError {
    ApiError::invalid(
        "invalid_last_event_id",
        "Last-Event-ID must be an event id (`evt_…`)",
    )
}

/// The stream's patterns, each vetted as a webhook's would be.
async fn vetted_patterns(
    state: &AppState,
    caller: &Caller,
    events: Option<&str>,
) -> ApiResult<Vec<EventPattern>> {
    let events = events
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_events",
                "events is required: comma-separated patterns such as `thread.*,post.created`",
            )
        })?;
    let vet = Vet { state, caller };
    let mut patterns = Vec::new();
    for p in events.split(',').map(str::trim) {
        let pattern = EventPattern::parse(p)
            .map_err(|e| ApiError::invalid("invalid_events", e.to_string()))?;
        vet.pattern(&pattern).await?;
        patterns.push(pattern);
    }
    Ok(patterns)
}

/// Which events one stream sends.
struct Wants {
    patterns: Vec<EventPattern>,
    audience: Audience,
}

impl Wants {
    /// Whether the stream sends an event of `event_type` (`None`: a stored name that does not
    /// parse, which no pattern matches) owned by `owner`.
    fn sends(&self, event_type: Option<&EventType>, owner: Option<&str>) -> bool {
        event_type.is_some_and(|t| {
            self.audience.sees(t.as_str(), owner) && self.patterns.iter().any(|p| p.matches(t))
        })
    }
}

/// One stream's state: where it stands, and whether it still replays from the store.
struct Follower {
    store: Store,
    hub: StreamHub,
    wants: Wants,
    /// The last event sent or passed over.
    at: Position,
    /// The hub's events, once subscribed.
    live: Option<broadcast::Receiver<Arc<Streamed>>>,
    /// Whether the store still has events after `at` to replay.
    replaying: bool,
    /// Replayed events' messages waiting to be sent.
    ready: VecDeque<Bytes>,
    done: bool,
}

/// What the follower does next.
enum Step {
    Send(Bytes),
    End,
}

impl Follower {
    async fn next(&mut self) -> Step {
        loop {
            if self.done || self.hub.closing().is_cancelled() {
                return Step::End;
            }
            if let Some(frame) = self.ready.pop_front() {
                return Step::Send(frame);
            }
            if self.replaying {
                if let Err(step) = self.replay_page().await {
                    return step;
                }
                continue;
            }
            let live = self
                .live
                .as_mut()
                .expect("a stream that stopped replaying has subscribed");
            let received = tokio::select! {
                () = self.hub.closing().cancelled() => return Step::End,
                () = tokio::time::sleep(KEEP_ALIVE_EVERY) => return Step::Send(frame::KEEP_ALIVE),
                received = live.recv() => received,
            };
            match received {
                Ok(streamed) => {
                    if streamed.position <= self.at {
                        continue;
                    }
                    self.at = streamed.position.clone();
                    let owner = streamed.event.owner_key_id.as_deref();
                    if self.wants.sends(streamed.event_type.as_ref(), owner) {
                        return Step::Send(streamed.frame.clone());
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    self.done = true;
                    return Step::Send(frame::error(
                        "too_slow",
                        &format!(
                            "this stream fell {missed} events behind and was closed; \
                             reconnect with Last-Event-ID to replay from the store"
                        ),
                    ));
                }
                Err(RecvError::Closed) => return Step::End,
            }
        }
    }

    /// Reads the store's next page after `at`. Once caught up, subscribes to the hub and
    /// reads once more, so events committed meanwhile are replayed rather than lost; after
    /// that the hub takes over.
    async fn replay_page(&mut self) -> Result<(), Step> {
        let page = match self.store.stream_after(&self.at, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "a stream failed to replay events");
                self.done = true;
                return Err(Step::Send(frame::error(
                    "unavailable",
                    "the store could not be read; reconnect with Last-Event-ID",
                )));
            }
        };
        let caught_up = (page.len() as i64) < PAGE;
        for (position, event) in page {
            self.at = position;
            let event_type = EventType::parse(&event.event_type).ok();
            if self
                .wants
                .sends(event_type.as_ref(), event.owner_key_id.as_deref())
            {
                self.ready
                    .push_back(frame::message(&event.id, &event.event_type, &event.body));
            }
        }
        if caught_up {
            if self.live.is_none() {
                self.live = Some(self.hub.subscribe());
            } else {
                self.replaying = false;
            }
        }
        Ok(())
    }
}

/// The follower as the body of an SSE answer.
fn follow(follower: Follower) -> impl Stream<Item = Result<Bytes, Infallible>> {
    stream::unfold(follower, |mut f| async move {
        match f.next().await {
            Step::Send(frame) => Some((Ok(frame), f)),
            Step::End => None,
        }
    })
}
