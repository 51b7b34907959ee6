//! Crash safety: 5,000 events to 3 webhooks while the server is SIGKILLed at random moments.
//! Every acknowledged (and every committed) event reaches every webhook at least once, every
//! duplicate carries the same `webhook-id`, and the delivery log agrees with the receivers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Row};

use crate::helpers::{client_for, Receiver};
use crate::process::ServerProcess;

const EVENTS: usize = 5_000;
const KILLS: usize = 6;

/// A cheap pseudo-random delay, different on every run.
fn random_ms(seed: &mut u64, low: u64, high: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    low + *seed % (high - low)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_the_server_is_killed_again_and_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let addr = server.addr;
    let app = client_for(addr);
    app.register_type("course.enrolled").await;
    let receivers = [
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    ];
    let mut hook_of = HashMap::new();
    for (i, r) in receivers.iter().enumerate() {
        let hook = app
            .create_webhook(json!({"url": r.url(), "events": ["course.*"]}))
            .await;
        hook_of.insert(hook["id"].as_str().unwrap().to_owned(), i);
    }

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let claimed = Arc::new(AtomicUsize::new(0));
    let mut publishers = Vec::new();
    for _ in 0..8 {
        let (acked, claimed) = (acked.clone(), claimed.clone());
        let client = reqwest::Client::new();
        publishers.push(tokio::spawn(async move {
            while claimed.fetch_add(1, Ordering::SeqCst) < EVENTS {
                loop {
                    let sent = client
                        .post(format!("http://{addr}/v1/events"))
                        .bearer_auth(crate::helpers::ADMIN_KEY)
                        .json(&json!({"type": "course.enrolled", "data": {"x": 1}}))
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    if let Ok(res) = sent {
                        if res.status() == 202 {
                            if let Ok(body) = res.json::<serde_json::Value>().await {
                                acked
                                    .lock()
                                    .unwrap()
                                    .push(body["id"].as_str().unwrap().to_owned());
                                break;
                            }
                        }
                    }
                    // Not acknowledged (the server was down): publish again, as a client would.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(random_ms(&mut seed, 200, 900))).await;
        server.kill().await;
        server.restart().await;
    }
    for p in publishers {
        p.await.unwrap();
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert_eq!(acked.len(), EVENTS);

    // Every acknowledged event reaches every webhook.
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = |r: &Receiver| -> HashMap<String, HashSet<String>> {
        let mut by_event: HashMap<String, HashSet<String>> = HashMap::new();
        for m in r.received() {
            let id = m.json()["id"].as_str().unwrap().to_owned();
            by_event
                .entry(id)
                .or_default()
                .insert(m.header("webhook-id").to_owned());
        }
        by_event
    };
    for r in &receivers {
        loop {
            let got = seen(r);
            if acked.iter().all(|e| got.contains_key(e)) {
                break;
            }
            let missing = acked.iter().filter(|e| !got.contains_key(*e)).count();
            assert!(
                Instant::now() < deadline,
                "{missing} acknowledged events never arrived"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(server.terminate().await);

    // The log agrees: every committed event (acknowledged or not) has one delivery per webhook,
    // succeeded, whose id is the webhook-id its receiver saw.
    let url = format!("sqlite://{}", dir.path().join("agora.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT id, event_id, webhook_id, status FROM deliveries")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let events: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM events WHERE type = 'course.enrolled'")
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get("n");
    assert_eq!(
        rows.len() as i64,
        events * 3,
        "one delivery per event and webhook"
    );
    let seen_by: Vec<_> = receivers.iter().map(seen).collect();
    let mut total_received = 0;
    for r in &receivers {
        total_received += r.received().len();
    }
    for row in &rows {
        let (id, event, webhook, status): (String, String, String, String) = (
            row.get("id"),
            row.get("event_id"),
            row.get("webhook_id"),
            row.get("status"),
        );
        assert_eq!(status, "succeeded", "delivery {id}");
        let ids = seen_by[hook_of[&webhook]]
            .get(&event)
            .unwrap_or_else(|| panic!("event {event} never reached {webhook}"));
        assert_eq!(
            ids,
            &HashSet::from([id]),
            "every copy carries the delivery's webhook-id"
        );
    }
    let pairs = rows.len();
    let duplicates = total_received - pairs;
    println!(
        "crash test: {EVENTS} acknowledged events ({events} committed), {KILLS} SIGKILLs, {pairs} deliveries, \
         {total_received} requests received, duplicate rate {:.3} %",
        100.0 * duplicates as f64 / pairs as f64
    );
}
