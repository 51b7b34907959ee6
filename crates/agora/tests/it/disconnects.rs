//! Clients that hang up: a write committed while its client went away is delivered all the
//! same, soon, without a restart; and a lease this node holds but its dispatcher does not is
//! given back while the server runs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Row;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::forum::support::{category, user};
use crate::helpers::{spawn_app, spawn_app_with, Receiver, Reply, TestApp, ADMIN_KEY};

/// Requests sent at once, of every kind in turn.
const WAVE: usize = 400;

/// The latest the first waves' clients hang up, in µs after sending.
const WAVES_MAX_WAIT_US: [u64; 4] = [5_000, 15_000, 40_000, 100_000];

/// How many times a wave may wait twice as long as the one before when nothing has committed
/// yet: a PostgreSQL store under the whole suite's load may answer none of a wave of 400 within
/// 100 ms.
const LONGER_WAVES: usize = 6;

/// A cheap pseudo-random number, different on every run.
fn random(seed: &mut u64, below: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed % below
}

/// Sends one request and hangs up (a reset, as a closed tab or a proxy timeout does) after
/// `wait`, without reading the answer.
async fn send_and_hang_up(addr: SocketAddr, path: &str, body: &Value, wait: Duration) {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {ADMIN_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    tokio::time::sleep(wait).await;
    // A zero linger resets the connection at once; it never blocks the thread on drop.
    #[allow(deprecated)]
    stream.set_linger(Some(Duration::ZERO)).expect("linger");
    drop(stream);
}

/// The ids of every event the server committed, but the first start's `api_key.created`,
/// which came before any webhook.
async fn committed_events(app: &TestApp) -> HashSet<String> {
    let db = app.database().await;
    let rows = sqlx::query("SELECT id FROM events WHERE type <> 'api_key.created'")
        .fetch_all(&db)
        .await
        .unwrap();
    db.close().await;
    rows.iter().map(|r| r.get::<String, _>("id")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_write_is_delivered_soon_when_clients_hang_up() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["*"]}))
        .await;
    let cat = category(&app, "General").await;
    let member = user(&app, "hangs_up").await;
    // The set-up's own events (user.registered, category.created) arrive first.
    let before = committed_events(&app).await.len();
    receiver.wait_for(before, Duration::from_secs(10)).await;

    let test_path = format!("/v1/webhooks/{}/test", hook["id"].as_str().unwrap());
    let thread = json!({"title": "Gone", "body": "Hung up", "category_id": cat["id"], "user_id": member["id"]});
    let event = json!({"type": "course.enrolled", "data": {"course": "rust-101"}});
    let batch = json!({"events": [event, event, event]});
    let kinds: [(&str, &Value); 4] = [
        ("/v1/threads", &thread),
        ("/v1/events", &event),
        ("/v1/events/batch", &batch),
        (&test_path, &json!({})),
    ];
    let mut seed = u64::from(Instant::now().elapsed().subsec_nanos()) | 1;
    // Waves that hang up ever later, from before the handler starts to after it answered,
    // whatever the engine's latency under the load of a wave: while nothing has committed,
    // each further wave waits twice as long as the one before.
    let longer = std::iter::successors(Some(200_000), |us| Some(us * 2)).take(LONGER_WAVES);
    for max_wait_us in WAVES_MAX_WAIT_US.into_iter().chain(longer) {
        if max_wait_us > WAVES_MAX_WAIT_US[3] && committed_events(&app).await.len() > before {
            break;
        }
        let mut clients = Vec::new();
        for n in 0..WAVE {
            let (path, body) = kinds[n % kinds.len()];
            let wait = Duration::from_micros(random(&mut seed, max_wait_us));
            let (addr, path, body) = (app.addr, path.to_owned(), body.clone());
            clients.push(tokio::spawn(async move {
                send_and_hang_up(addr, &path, &body, wait).await
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
    }
    // Whatever the server committed, it delivers within seconds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let committed = committed_events(&app).await;
    assert!(
        committed.len() > before,
        "some of the writes must have committed, even after waves of up to {} ms",
        200 << (LONGER_WAVES - 1)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let arrived: HashSet<String> = receiver
            .received()
            .iter()
            .map(|m| m.json()["id"].as_str().unwrap().to_owned())
            .collect();
        let missing = committed.difference(&arrived).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} committed events never reached the receiver",
            committed.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_the_dispatcher_does_not_hold_is_given_back_while_the_server_runs() {
    // Leases renewed (and so the sweep run) every 200 ms.
    let app = spawn_app_with(|c| c.lease = "600ms".parse().unwrap()).await;
    let slow = Receiver::start().await;
    slow.always(Reply::status(200).after(Duration::from_secs(30)));
    let healthy = Receiver::start().await;
    app.register_type("course.enrolled").await;
    app.create_webhook(json!({"url": slow.url(), "events": ["course.*"]}))
        .await;
    let hook = app
        .create_webhook(json!({"url": healthy.url(), "events": ["course.*"]}))
        .await;
    let event = app.publish("course.enrolled", json!({})).await;
    healthy.wait_for(1, Duration::from_secs(10)).await;
    slow.wait_for(1, Duration::from_secs(10)).await;

    // The slow receiver's delivery is leased to the node; a copy of it for the healthy
    // webhook, leased to the same node, is one the dispatcher never heard of.
    let db = app.database().await;
    let node: String = sqlx::query(
        "SELECT lease_owner FROM deliveries WHERE status = 'in_flight' AND lease_owner IS NOT NULL",
    )
    .fetch_one(&db)
    .await
    .unwrap()
    .get("lease_owner");
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, lease_owner, attempts, \
         created_at, updated_at) VALUES ('msg_stranded', $1, $2, 'course.enrolled', 'in_flight', $3, 1, 0, 0)",
    )
    .bind(event["id"].as_str().unwrap())
    .bind(hook["id"].as_str().unwrap())
    .bind(&node)
    .execute(&db)
    .await
    .unwrap();
    db.close().await;

    let got = healthy.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].header("webhook-id"), "msg_stranded");
    assert_eq!(
        slow.received().len(),
        1,
        "a lease the dispatcher holds is left alone"
    );
}
