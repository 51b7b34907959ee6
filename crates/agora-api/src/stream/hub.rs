//! One reader of new events per process, fanned out to every open stream.
//!
//! The reader follows the events table in the stream's order ([`Position`]), woken by this
//! node's commits and, on PostgreSQL, every node's (`Store::published`), and polling as a
//! fallback. It sends each event once into a broadcast channel; each stream only filters.
//! The channel's capacity bounds memory whatever the number of streams: a stream that falls
//! that far behind is told so and closed (`routes/stream.rs`), and no publisher ever waits.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use agora_core::event::EventType;
use agora_store::events::{Position, StoredEvent};
use agora_store::{Store, StoreError};

use super::frame;

/// One event as streams receive it, with what every stream needs of it worked out once.
#[derive(Debug)]
pub struct Streamed {
    /// Where it stands in the stream's order.
    pub position: Position,
    /// The event.
    pub event: StoredEvent,
    /// Its type, parsed for the streams' patterns; `None` if the stored name does not parse
    /// (no pattern matches it).
    pub event_type: Option<EventType>,
    /// The SSE message every stream that wants it sends ([`frame::message`]).
    pub frame: Bytes,
}

impl Streamed {
    /// Parses and renders `event` once, for all streams.
    pub fn new(position: Position, event: StoredEvent) -> Self {
        Self {
            event_type: EventType::parse(&event.event_type).ok(),
            frame: frame::message(&event.id, &event.event_type, &event.body),
            position,
            event,
        }
    }
}

/// How the hub reads and buffers.
#[derive(Clone, Copy, Debug)]
pub struct HubSettings {
    /// Events a stream may fall behind the newest before it is closed.
    pub buffer: usize,
    /// How often the reader looks for new events when nothing woke it (other nodes' commits
    /// when a notification was missed, events written outside a publication).
    pub poll: Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            buffer: 1024,
            poll: Duration::from_millis(250),
        }
    }
}

/// Events read per query.
const PAGE: i64 = 500;

/// The process's stream of new events. Cheap to clone.
#[derive(Clone)]
pub struct StreamHub {
    sender: broadcast::Sender<Arc<Streamed>>,
    /// Cancelled at shutdown: every stream then ends, so connections can drain.
    closing: CancellationToken,
}

impl StreamHub {
    /// Starts the reader of `store`'s new events at the current end of the table, before any
    /// stream can subscribe; it and every stream stop when `closing` is cancelled.
    pub async fn start(
        store: Store,
        settings: HubSettings,
        closing: CancellationToken,
    ) -> Result<Self, StoreError> {
        let at = store.stream_end().await?;
        let (sender, _) = broadcast::channel(settings.buffer.max(1));
        tokio::spawn(read_new_events(
            store,
            sender.clone(),
            at,
            settings.poll,
            closing.clone(),
        ));
        Ok(Self { sender, closing })
    }

    /// Receives every event read from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Streamed>> {
        self.sender.subscribe()
    }

    /// Cancelled when the server shuts down.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }
}

/// Follows the events table until `closing`, sending each new event once.
///
/// While no stream listens, the reader only keeps its place at the end of the table, read
/// before it looks at the subscribers: a stream that subscribes after that look has read its
/// own starting point later still, so nothing between the two is missed.
async fn read_new_events(
    store: Store,
    sender: broadcast::Sender<Arc<Streamed>>,
    mut at: Position,
    poll: Duration,
    closing: CancellationToken,
) {
    let published = store.published();
    loop {
        if let Err(e) = read_once(&store, &sender, &mut at).await {
            tracing::warn!(error = %e, "the event stream failed to read new events; retrying");
        }
        // Commits wake the reader only while someone listens: idle, it keeps its place at
        // the poll's pace and costs the publishers nothing.
        let listened = sender.receiver_count() > 0;
        tokio::select! {
            () = closing.cancelled() => return,
            () = published.notified(), if listened => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// One look at the table: new events sent, or only the place kept when nobody listens.
async fn read_once(
    store: &Store,
    sender: &broadcast::Sender<Arc<Streamed>>,
    from: &mut Position,
) -> Result<(), StoreError> {
    if sender.receiver_count() == 0 {
        let end = store.stream_end().await?;
        if sender.receiver_count() == 0 {
            *from = end;
            return Ok(());
        }
    }
    loop {
        let events = store.stream_after(from, PAGE).await?;
        let full = events.len() as i64 == PAGE;
        for (position, event) in events {
            *from = position.clone();
            // No receiver is not an error: the place is kept all the same.
            let _ = sender.send(Arc::new(Streamed::new(position, event)));
        }
        if !full {
            return Ok(());
        }
    }
}
