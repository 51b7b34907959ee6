//! The hostile-tenant suite of issue 22: a key or a client doing its worst must neither learn
//! another key's secrets nor take the server down. One test per finding, each bounded in
//! seconds and run against the real server on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::forum::support::{login, user, PASSWORD};
use crate::helpers::{make_key, spawn_app, spawn_app_with, Receiver, Reply, TestApp};

const WAIT: Duration = Duration::from_secs(10);

/// A tenant that may manage webhooks and publish custom events.
async fn tenant(app: &TestApp) -> (String, String) {
    make_key(app, json!(["webhooks:write", "events:write"])).await
}

/// Creates a webhook as `key`, asserting 201.
async fn webhook_as(app: &TestApp, key: &str, body: Value) -> Value {
    let a = app
        .request_as(key, "POST", "/v1/webhooks", Some(body))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    a.body
}

/// Asserts an answer is `status` with `code` in the contract's shape.
fn refused(a: &crate::helpers::Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.body["code"], code, "{:?}", a.body);
    assert_eq!(a.body["status"], status, "{:?}", a.body);
    assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// The `type`s of the events a receiver got.
fn types(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn webhook_disabled_reaches_only_its_owner_and_admins_and_carries_no_credential() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let (_, alice) = tenant(&app).await;
    let (_, mallory) = tenant(&app).await;

    let gone = Receiver::start().await;
    gone.always(Reply::status(410));
    let hook = webhook_as(
        &app,
        &alice,
        json!({"url": format!("{}?token=s3cret-token", gone.url()), "events": ["course.*"],
               "headers": {"Authorization": "Bearer alice-credential", "X-Team": "blue"}}),
    )
    .await;
    let (owner, spy, admin) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    webhook_as(
        &app,
        &alice,
        json!({"url": owner.url(), "events": ["webhook.disabled"]}),
    )
    .await;
    webhook_as(
        &app,
        &mallory,
        json!({"url": spy.url(), "events": ["webhook.disabled"]}),
    )
    .await;
    app.create_webhook(json!({"url": admin.url(), "events": ["webhook.disabled"]}))
        .await;

    // The credential is write-only: listed redacted, sent in clear.
    let listed = app.request_as(&alice, "GET", "/v1/webhooks", None).await;
    let shown = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == hook["id"])
        .unwrap()
        .clone();
    assert_eq!(shown["headers"]["Authorization"], "[redacted]");
    assert_eq!(shown["headers"]["X-Team"], "blue");
    assert!(!listed.body.to_string().contains("alice-credential"));
    assert!(!hook.to_string().contains("alice-credential"));

    app.publish("course.enrolled", json!({"n": 1})).await;
    let sent = gone.wait_for(1, WAIT).await;
    assert_eq!(sent[0].header("authorization"), "Bearer alice-credential");
    owner.wait_for(1, WAIT).await;
    admin.wait_for(1, WAIT).await;
    for got in [owner.received(), admin.received()] {
        let event = got[0].json();
        assert_eq!(event["type"], "webhook.disabled");
        assert_eq!(event["data"]["id"], hook["id"]);
        let text = event.to_string();
        assert!(!text.contains("alice-credential"), "{text}");
        assert!(!text.contains("s3cret-token"), "{text}");
        assert!(
            !text.contains("blue"),
            "every custom value is left out: {text}"
        );
    }
    spy.assert_stays_at(0, Duration::from_millis(500)).await;
    assert!(types(&spy).is_empty());
}

#[tokio::test]
async fn a_webhook_given_back_redacted_keeps_its_credential() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"],
                               "headers": {"X-Api-Key": "k-123"}}))
        .await;
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    let read = app.get(&path).await.body;
    assert_eq!(read["headers"]["X-Api-Key"], "[redacted]");
    let a = app
        .patch(&path, json!({"headers": read["headers"].clone()}))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    app.publish("course.enrolled", json!({})).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-api-key"), "k-123");
}

#[tokio::test]
async fn each_key_has_a_webhook_quota_and_admins_do_not() {
    let app = spawn_app_with(|c| c.max_webhooks_per_key = 3).await;
    let (_, tenant) = tenant(&app).await;
    let body = json!({"url": "http://127.0.0.1:9/a", "events": ["webhook.*"]});
    for _ in 0..3 {
        webhook_as(&app, &tenant, body.clone()).await;
    }
    let over = app
        .request_as(&tenant, "POST", "/v1/webhooks", Some(body.clone()))
        .await;
    refused(&over, 409, "webhook_quota_exceeded");
    for _ in 0..4 {
        app.create_webhook(body.clone()).await;
    }
    let listed = app.request_as(&tenant, "GET", "/v1/webhooks", None).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn outgoing_requests_in_flight_are_bounded() {
    let app = spawn_app_with(|c| c.max_outgoing = Some(3)).await;
    app.register_type("course.enrolled").await;
    let slow = Receiver::start().await;
    slow.always(Reply::status(200).after(Duration::from_millis(1500)));
    for _ in 0..6 {
        app.create_webhook(json!({"url": slow.url(), "events": ["course.*"]}))
            .await;
    }
    app.publish("course.enrolled", json!({})).await;
    slow.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        slow.received().len(),
        3,
        "only 3 requests may be in flight at once"
    );
    slow.wait_for(6, WAIT).await;
}

#[tokio::test]
async fn logins_are_limited_per_account_and_per_address() {
    let app = spawn_app_with(|c| {
        c.login_attempts_per_account = 5;
        c.login_attempts_per_address = 8;
    })
    .await;
    for name in ["alice", "bob"] {
        user(&app, name).await;
    }
    let attempt = |who: &str, password: &str| {
        let body = json!({"login": who, "password": password});
        app.client
            .post(app.url("/v1/auth/login"))
            .json(&body)
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("alice", "wrong").await.unwrap().status(), 401);
    }
    let limited = attempt("ALICE", PASSWORD).await.unwrap();
    assert_eq!(
        limited.status(),
        429,
        "the right password after 5 wrong ones"
    );
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);

    // Another account is not locked by alice's, until the address has had its share.
    assert_eq!(attempt("bob", PASSWORD).await.unwrap().status(), 200);
    assert_eq!(attempt("bob", "wrong").await.unwrap().status(), 401);
    let limited = attempt("bob", PASSWORD).await.unwrap();
    assert_eq!(limited.status(), 429, "the address had its 8 attempts");
}

#[tokio::test]
async fn sessions_are_rate_limited_like_keys() {
    let app = spawn_app_with(|c| {
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 5;
    })
    .await;
    user(&app, "member").await;
    let token = login(&app, "member").await;
    let mut limited = 0;
    for _ in 0..20 {
        let a = app.request_as(&token, "GET", "/v1/threads", None).await;
        if a.status == 429 {
            refused(&a, 429, "rate_limited");
            limited += 1;
        }
    }
    assert!(limited >= 10, "only {limited} of 20 requests were limited");
}

#[tokio::test]
async fn revoking_a_key_disables_its_webhooks_in_the_same_change() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let (id, tenant) = make_key(&app, json!(["webhooks:write", "events:read"])).await;
    let receiver = Receiver::start().await;
    let hook = webhook_as(
        &app,
        &tenant,
        json!({"url": receiver.url(), "events": ["course.*"]}),
    )
    .await;
    let admin = Receiver::start().await;
    app.create_webhook(json!({"url": admin.url(), "events": ["webhook.disabled"]}))
        .await;

    assert_eq!(app.delete(&format!("/v1/api-keys/{id}")).await.status, 204);
    let read = app
        .get(&format!("/v1/webhooks/{}", hook["id"].as_str().unwrap()))
        .await;
    assert_eq!(read.body["status"], "inactive", "{:?}", read.body);
    assert!(read.body["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    let told = admin.wait_for(1, WAIT).await;
    assert_eq!(told[0].json()["type"], "webhook.disabled");

    app.publish("course.enrolled", json!({"email": "x@example.com"}))
        .await;
    receiver
        .assert_stays_at(0, Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn one_request_may_create_only_so_many_deliveries() {
    let app = spawn_app_with(|c| c.max_deliveries_per_request = 100).await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    for _ in 0..3 {
        app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
            .await;
    }
    let batch = |n: usize| {
        json!({"events": (0..n).map(|i| json!({"type": "course.enrolled", "data": {"i": i}}))
            .collect::<Vec<_>>()})
    };
    let over = app.post("/v1/events/batch", batch(34)).await;
    refused(&over, 422, "too_many_deliveries");
    let history = app.get("/v1/events?type=course.enrolled&limit=250").await;
    assert_eq!(
        history.body["data"].as_array().map_or(0, Vec::len),
        0,
        "nothing of a refused batch is written: {:?}",
        history.body
    );
    let within = app.post("/v1/events/batch", batch(33)).await;
    assert_eq!(within.status, 202, "{:?}", within.body);
    receiver.wait_for(99, WAIT).await;
    receiver
        .assert_stays_at(99, Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn an_inactive_webhook_is_not_redelivered_to() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.publish("course.enrolled", json!({})).await;
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    receiver.wait_for(1, WAIT).await;
    let log = app.get(&format!("{path}/deliveries")).await;
    let delivery = log.body["data"][0]["id"].as_str().unwrap().to_owned();
    app.wait_for_delivery_status(&delivery, "succeeded").await;
    assert_eq!(
        app.patch(&path, json!({"status": "inactive"})).await.status,
        200
    );
    let a = app
        .post(&format!("/v1/deliveries/{delivery}/redeliver"), json!({}))
        .await;
    refused(&a, 409, "webhook_inactive");
    receiver
        .assert_stays_at(1, Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn reads_do_not_wait_for_a_write_to_note_a_keys_use() {
    use sqlx::{Connection, Executor};
    let app = spawn_app_with(|c| c.sqlite_busy_timeout = "200ms".parse().unwrap()).await;
    let (_, reader) = make_key(&app, json!(["webhooks:read"])).await;
    // Another connection holds the lock that writing `api_keys` needs.
    let _locker: Box<dyn std::any::Any> = match &app.config.database_url {
        None => {
            let url = format!("sqlite://{}", app.data_dir.join("agora.db").display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            c.execute("BEGIN IMMEDIATE").await.unwrap();
            Box::new(c)
        }
        Some(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            c.execute("BEGIN").await.unwrap();
            c.execute("LOCK TABLE api_keys IN EXCLUSIVE MODE")
                .await
                .unwrap();
            Box::new(c)
        }
    };
    let read = tokio::time::timeout(
        Duration::from_secs(3),
        app.request_as(&reader, "GET", "/v1/webhooks", None),
    )
    .await
    .expect("a read does not wait for the lock");
    assert_eq!(read.status, 200, "{:?}", read.body);
}

#[tokio::test]
async fn filter_items_and_header_names_are_bounded() {
    let app = spawn_app().await;
    let long = "x".repeat(100_000);
    let a = app
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/a", "events": ["thread.*"],
                   "filter": {"category_ids": [long.clone()]}}),
        )
        .await;
    refused(&a, 400, "invalid_filter");
    let a = app
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/a", "events": ["thread.*"],
                   "filter": {"tags": [long]}}),
        )
        .await;
    refused(&a, 400, "invalid_filter");
    let mut headers = serde_json::Map::new();
    headers.insert("x".repeat(10_000), json!("v"));
    let a = app
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/a", "events": ["thread.*"], "headers": headers}),
        )
        .await;
    refused(&a, 400, "invalid_header");
}

#[tokio::test]
async fn router_errors_come_in_the_contract_shape() {
    let app = spawn_app().await;
    let a = app.request_as(&app.key, "PATCH", "/v1/events", None).await;
    refused(&a, 405, "method_not_allowed");
    let a = app.get("/v1/threads/%FF").await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert!(
        a.body["code"].is_string() && a.body["status"] == 400,
        "{:?}",
        a.body
    );

    let hook = app
        .create_webhook(json!({"url": "http://127.0.0.1:9/a", "events": ["thread.*"]}))
        .await;
    let big = "x".repeat(2 * 1024 * 1024);
    let res = app
        .client
        .post(app.url(&format!(
            "/v1/webhooks/{}/test",
            hook["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.key)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.expect("a JSON body");
    assert_eq!(body["code"], "payload_too_large");

    // Too many headers, and one too large: hyper refuses both before any route.
    let request = || {
        app.client
            .get(app.url("/v1/webhooks"))
            .bearer_auth(&app.key)
    };
    let many = (0..150).fold(request(), |req, i| req.header(format!("x-filler-{i}"), "v"));
    let large = request().header("x-filler", "v".repeat(100 * 1024));
    for req in [many, large] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 431);
        let body: Value = res.json().await.expect("a JSON body");
        assert_eq!(body["code"], "headers_too_large");
        assert_eq!(body["status"], 431);
    }
}

/// Reads until the server closes the connection; answers how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => panic!("the connection stayed open for {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_and_silent_connections_are_closed() {
    let app = spawn_app_with(|c| {
        c.header_read_timeout = "1s".parse().unwrap();
        c.idle_timeout = "1s".parse().unwrap();
    })
    .await;
    // Headers that never end.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    closed_within(&mut slow, Duration::from_secs(4)).await;
    // A connection that never sends anything.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(4)).await;
    // A body that stops halfway.
    let mut trickle = TcpStream::connect(app.addr).await.unwrap();
    trickle
        .write_all(
            format!(
                "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
                 content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"type\"",
                app.key
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    closed_within(&mut trickle, Duration::from_secs(4)).await;
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn open_connections_are_bounded_and_freed_by_the_header_timeout() {
    let app = spawn_app_with(|c| {
        c.max_connections = Some(4);
        c.header_read_timeout = "2s".parse().unwrap();
    })
    .await;
    let mut hogs = Vec::new();
    for _ in 0..4 {
        hogs.push(TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let health = tokio::spawn({
        let url = app.url("/healthz");
        async move { reqwest::get(url).await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !health.is_finished(),
        "a fifth connection is not served while four are open"
    );
    let status = tokio::time::timeout(Duration::from_secs(5), health)
        .await
        .expect("served once the silent ones timed out")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(1500));
}
