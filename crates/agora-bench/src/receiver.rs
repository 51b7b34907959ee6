//! The benchmark's receiver: a minimal loopback endpoint that counts arrivals and, when asked,
//! notes when each event arrived.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use tokio::net::TcpListener;

/// What arrived, shared with the handler.
#[derive(Default)]
pub struct Arrivals {
    /// Requests received.
    pub count: AtomicU64,
    /// Nanoseconds since `epoch` of the latest arrival.
    pub last_ns: AtomicU64,
    /// Arrival time per event id, when `track` is on (latency runs).
    pub by_event: Mutex<HashMap<String, Instant>>,
    track: std::sync::atomic::AtomicBool,
}

/// A running receiver.
#[derive(Clone)]
pub struct BenchReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub arrivals: Arc<Arrivals>,
    epoch: Instant,
}

impl BenchReceiver {
    /// Starts a receiver answering 200 to everything, `latency` after each request arrived.
    pub async fn start(latency: Duration) -> anyhow::Result<Self> {
        let arrivals = Arc::new(Arrivals::default());
        let epoch = Instant::now();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app =
            axum::Router::new()
                .fallback(receive)
                .with_state((arrivals.clone(), epoch, latency));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            addr,
            arrivals,
            epoch,
        })
    }

    /// The URL webhooks point at.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Starts (or stops) noting arrival times per event, and forgets earlier ones.
    pub fn track(&self, on: bool) {
        self.arrivals.by_event.lock().expect("lock").clear();
        self.arrivals.track.store(on, Ordering::SeqCst);
    }

    /// Requests received so far.
    pub fn count(&self) -> u64 {
        self.arrivals.count.load(Ordering::SeqCst)
    }

    /// When the latest request arrived.
    pub fn last_arrival(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.arrivals.last_ns.load(Ordering::SeqCst))
    }
}

async fn receive(
    State((arrivals, epoch, latency)): State<(Arc<Arrivals>, Instant, Duration)>,
    body: Bytes,
) -> StatusCode {
    let now = Instant::now();
    if arrivals.track.load(Ordering::Relaxed) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
            if let Some(id) = v.get("id").and_then(|i| i.as_str()) {
                arrivals
                    .by_event
                    .lock()
                    .expect("lock")
                    .insert(id.to_owned(), now);
            }
        }
    }
    arrivals
        .last_ns
        .fetch_max((now - epoch).as_nanos() as u64, Ordering::SeqCst);
    arrivals.count.fetch_add(1, Ordering::SeqCst);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    StatusCode::OK
}
