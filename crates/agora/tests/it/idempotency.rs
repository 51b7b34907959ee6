//! `Idempotency-Key`: a repeat answers the first answer and creates nothing, counted at a real
//! receiver; another body is refused; concurrent repeats create one event; keys belong to
//! their caller; forum writes honour it too.

use std::time::Duration;

use serde_json::{json, Value};

use crate::forum::support::{category, login, user};
use crate::helpers::{client_for, make_key, spawn_app, Receiver, TestApp};
use crate::process::ServerProcess;

const QUIET: Duration = Duration::from_millis(400);
const WAIT: Duration = Duration::from_secs(5);

/// One answer, with the replay header.
struct Sent {
    status: u16,
    replayed: bool,
    body: Value,
}

async fn send(
    app: &TestApp,
    key: &str,
    idem: &str,
    method: &str,
    path: &str,
    body: &Value,
) -> Sent {
    send_to(&app.client, app.url(path), key, idem, method, body).await
}

async fn send_to(
    client: &reqwest::Client,
    url: String,
    key: &str,
    idem: &str,
    method: &str,
    body: &Value,
) -> Sent {
    let res = client
        .request(method.parse().unwrap(), url)
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = res.status().as_u16();
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let body = res.json().await.unwrap_or(Value::Null);
    Sent {
        status,
        replayed,
        body,
    }
}

/// An app with `course.enrolled` registered and a receiver subscribed to it.
async fn app_and_receiver() -> (TestApp, Receiver) {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    (app, receiver)
}

fn event(n: i64) -> Value {
    json!({"type": "course.enrolled", "data": {"n": n}})
}

#[tokio::test]
async fn a_repeat_answers_the_first_answer_and_creates_nothing() {
    let (app, receiver) = app_and_receiver().await;
    let first = send(&app, &app.key, "order-1", "POST", "/v1/events", &event(1)).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    assert!(!first.replayed);
    let again = send(&app, &app.key, "order-1", "POST", "/v1/events", &event(1)).await;
    assert_eq!(again.status, 202);
    assert!(again.replayed);
    assert_eq!(again.body, first.body);
    receiver.wait_for(1, WAIT).await;
    receiver.assert_stays_at(1, QUIET).await;

    // A batch too.
    let batch = json!({"events": [event(2), event(3)]});
    let first = send(
        &app,
        &app.key,
        "batch-1",
        "POST",
        "/v1/events/batch",
        &batch,
    )
    .await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let again = send(
        &app,
        &app.key,
        "batch-1",
        "POST",
        "/v1/events/batch",
        &batch,
    )
    .await;
    assert!(again.replayed);
    assert_eq!(again.body, first.body);
    receiver.wait_for(3, WAIT).await;
    receiver.assert_stays_at(3, QUIET).await;
}

#[tokio::test]
async fn the_same_key_for_another_request_is_refused() {
    let (app, receiver) = app_and_receiver().await;
    let first = send(&app, &app.key, "k", "POST", "/v1/events", &event(1)).await;
    assert_eq!(first.status, 202);
    let other = send(&app, &app.key, "k", "POST", "/v1/events", &event(2)).await;
    assert_eq!(other.status, 422, "{:?}", other.body);
    assert_eq!(other.body["code"], "idempotency_key_reused");
    assert_eq!(other.body["status"], 422);
    let batch = json!({"events": [event(1)]});
    let other_path = send(&app, &app.key, "k", "POST", "/v1/events/batch", &batch).await;
    assert_eq!(other_path.body["code"], "idempotency_key_reused");
    receiver.wait_for(1, WAIT).await;
    receiver.assert_stays_at(1, QUIET).await;
}

#[tokio::test]
async fn keys_must_be_short_printable_ascii() {
    let (app, receiver) = app_and_receiver().await;
    for bad in ["x".repeat(256), String::new()] {
        let a = send(&app, &app.key, &bad, "POST", "/v1/events", &event(1)).await;
        assert_eq!(a.status, 400, "{:?}", a.body);
        assert_eq!(a.body["code"], "invalid_idempotency_key");
    }
    let a = send(
        &app,
        &app.key,
        &"x".repeat(255),
        "POST",
        "/v1/events",
        &event(1),
    )
    .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    receiver.wait_for(1, WAIT).await;
    receiver.assert_stays_at(1, QUIET).await;
}

#[tokio::test]
async fn concurrent_repeats_create_one_event() {
    let (app, receiver) = app_and_receiver().await;
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url, key) = (app.client.clone(), app.url("/v1/events"), app.key.clone());
        sends.spawn(async move { send_to(&client, url, &key, "race", "POST", &event(7)).await });
    }
    let answers = sends.join_all().await;
    let mut ids = std::collections::HashSet::new();
    for a in &answers {
        match a.status {
            202 => {
                ids.insert(a.body["id"].clone());
            }
            409 => assert_eq!(a.body["code"], "idempotency_key_in_progress"),
            other => panic!("unexpected {other}: {:?}", a.body),
        }
    }
    assert_eq!(ids.len(), 1, "one event, answered alike: {ids:?}");
    receiver.wait_for(1, WAIT).await;
    receiver.assert_stays_at(1, QUIET).await;
    // Once the first has answered, every repeat is a replay.
    let later = send(&app, &app.key, "race", "POST", "/v1/events", &event(7)).await;
    assert!(later.replayed);
    assert!(ids.contains(&later.body["id"]));
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let (app, receiver) = app_and_receiver().await;
    let (_, other) = make_key(&app, json!(["events:write"])).await;
    let mine = send(&app, &app.key, "shared", "POST", "/v1/events", &event(1)).await;
    let theirs = send(&app, &other, "shared", "POST", "/v1/events", &event(1)).await;
    assert_eq!(mine.status, 202);
    assert_eq!(theirs.status, 202, "{:?}", theirs.body);
    assert!(!theirs.replayed);
    assert_ne!(mine.body["id"], theirs.body["id"]);
    receiver.wait_for(2, WAIT).await;
    receiver.assert_stays_at(2, QUIET).await;
}

#[tokio::test]
async fn a_forum_write_is_idempotent() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.create_webhook(json!({"url": receiver.url(), "events": ["thread.created"]}))
        .await;
    let author = user(&app, "ada").await;
    let cat = category(&app, "General").await;
    let body = json!({"title": "Once", "body": "only once", "category_id": cat["id"],
                      "user_id": author["id"]});
    let first = send(&app, &app.key, "thread-1", "POST", "/v1/threads", &body).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let again = send(&app, &app.key, "thread-1", "POST", "/v1/threads", &body).await;
    assert_eq!(again.status, 201);
    assert!(again.replayed);
    assert_eq!(again.body, first.body);
    receiver.wait_for(1, WAIT).await;
    receiver.assert_stays_at(1, QUIET).await;
    let listed = app.get("/v1/threads").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_key_older_than_a_day_may_be_used_again() {
    let (app, receiver) = app_and_receiver().await;
    let first = send(&app, &app.key, "old", "POST", "/v1/events", &event(1)).await;
    assert_eq!(first.status, 202);
    let db = app.database().await;
    // On SQLite the key reaches its table within a second of its log.
    let deadline = std::time::Instant::now() + WAIT;
    let day_and_a_bit = 24 * 3600 * 1000 + 1000;
    while sqlx::query("UPDATE idempotency_keys SET created_at = created_at - $1")
        .bind(day_and_a_bit as i64)
        .execute(&db)
        .await
        .unwrap()
        .rows_affected()
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the key never reached its table"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await;
    let again = send(&app, &app.key, "old", "POST", "/v1/events", &event(2)).await;
    assert_eq!(again.status, 202, "{:?}", again.body);
    assert!(!again.replayed);
    assert_ne!(again.body["id"], first.body["id"]);
    receiver.wait_for(2, WAIT).await;
}

#[tokio::test]
async fn a_request_refused_before_writing_records_nothing() {
    let (app, receiver) = app_and_receiver().await;
    let unknown = json!({"type": "course.unknown", "data": {}});
    let refused = send(&app, &app.key, "fix-me", "POST", "/v1/events", &unknown).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    let fixed = send(&app, &app.key, "fix-me", "POST", "/v1/events", &event(1)).await;
    assert_eq!(fixed.status, 202, "{:?}", fixed.body);
    assert!(!fixed.replayed);
    receiver.wait_for(1, WAIT).await;
    receiver.assert_stays_at(1, QUIET).await;
}

#[tokio::test]
async fn a_signed_in_users_keys_are_theirs() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.create_webhook(json!({"url": receiver.url(), "events": ["thread.created"]}))
        .await;
    let grace = user(&app, "grace").await;
    let token = login(&app, "grace").await;
    let cat = category(&app, "General").await;
    let body = json!({"title": "Mine", "body": "once", "category_id": cat["id"]});
    let first = send(&app, &token, "t", "POST", "/v1/threads", &body).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let again = send(&app, &token, "t", "POST", "/v1/threads", &body).await;
    assert!(again.replayed);
    assert_eq!(again.body, first.body);
    // The admin key's "t" is another key.
    let mut for_grace = body.clone();
    for_grace["user_id"] = grace["id"].clone();
    let admin = send(&app, &app.key, "t", "POST", "/v1/threads", &for_grace).await;
    assert_eq!(admin.status, 201, "{:?}", admin.body);
    assert!(!admin.replayed);
    receiver.wait_for(2, WAIT).await;
    receiver.assert_stays_at(2, QUIET).await;
}

#[tokio::test]
async fn keys_answered_just_before_a_kill_answer_alike_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let app = client_for(server.addr);
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let author = user(&app, "ada").await;
    let cat = category(&app, "General").await;
    let thread = json!({"title": "Once", "body": "only once", "category_id": cat["id"],
                        "user_id": author["id"]});
    let batch = json!({"events": [event(2), event(3)]});
    let requests = [
        ("one", "/v1/events", event(1)),
        ("many", "/v1/events/batch", batch),
        ("thread", "/v1/threads", thread),
    ];
    let mut firsts = Vec::new();
    for (key, path, body) in &requests {
        let first = send(&app, &app.key, key, "POST", path, body).await;
        assert!(first.status < 300, "{:?}", first.body);
        firsts.push(first);
    }
    // Killed within moments of the answers: the keys are still where the publish path put
    // them (on SQLite, the log that is moved into its table once a second).
    server.kill().await;
    server.restart().await;
    let app = client_for(server.addr);
    for ((key, path, body), first) in requests.iter().zip(&firsts) {
        let again = send(&app, &app.key, key, "POST", path, body).await;
        assert!(again.replayed, "{key}: {:?}", again.body);
        assert_eq!((again.status, &again.body), (first.status, &first.body));
    }
    // Deliveries the kill interrupted are sent again: count events, not requests.
    receiver.wait_for(3, WAIT).await;
    tokio::time::sleep(QUIET).await;
    let events: std::collections::HashSet<String> = receiver
        .received()
        .iter()
        .map(|m| m.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        app.get("/v1/threads").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
