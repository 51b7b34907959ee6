//! An Agora webhook receiver: verifies each delivery with the official Standard Webhooks
//! crate, refuses bad signatures and stale timestamps, ignores repeats of a `webhook-id`,
//! answers at once and does its work after answering, on a worker task.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use standardwebhooks::Webhook;
use tokio::sync::mpsc;

/// How many accepted ids are remembered. Bounded and in memory: enough for an example; a real
/// receiver records ids where its work is stored (a unique column), so they survive a restart
/// and are shared by every instance.
const SEEN_MAX: usize = 10_000;

/// The ids already accepted, oldest first.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// Whether `id` is new; remembers it.
    fn first_time(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > SEEN_MAX {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        true
    }
}

struct Receiver {
    webhook: Webhook,
    seen: Mutex<Seen>,
    work: mpsc::UnboundedSender<(String, serde_json::Value)>,
}

/// What the receiver is for. Runs after the answer, so slow work never makes Agora retry.
fn handle(id: &str, event: &serde_json::Value) {
    println!(
        "accepted {id} {} {}",
        event["type"].as_str().unwrap_or("?"),
        event["id"].as_str().unwrap_or("?")
    );
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    // The signature covers the exact bytes sent: verify the raw body, then parse it. The
    // crate also refuses a timestamp more than 5 minutes away.
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    if let Err(e) = receiver.webhook.verify(&body, &headers) {
        println!("refused {id}: {e}");
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(event) = serde_json::from_slice(&body) else {
        println!("refused {id}: not JSON");
        return StatusCode::BAD_REQUEST;
    };
    if receiver.seen.lock().expect("seen lock").first_time(&id) {
        let _ = receiver.work.send((id, event));
    } else {
        println!("duplicate {id}");
    }
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() {
    let secret = std::env::var("AGORA_WEBHOOK_SECRET")
        .expect("set AGORA_WEBHOOK_SECRET to the webhook's secret (whsec_...)");
    let webhook = Webhook::new(&secret).expect("AGORA_WEBHOOK_SECRET is not a whsec_ secret");
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let (work, mut jobs) = mpsc::unbounded_channel::<(String, serde_json::Value)>();
    tokio::spawn(async move {
        while let Some((id, event)) = jobs.recv().await {
            handle(&id, &event);
        }
    });
    let receiver = Arc::new(Receiver {
        webhook,
        seen: Mutex::default(),
        work,
    });
    let app = Router::new()
        .route("/webhook", post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the port");
    println!("listening on 127.0.0.1:{port}");
    axum::serve(listener, app).await.expect("serve");
}
