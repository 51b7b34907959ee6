//! The security rules of issue 4, each with a test that fails if the rule is broken: secrets
//! sealed at rest, the secret key, rotation grace, API keys and ownership, rate limits, and
//! receiver answers stored truncated and never interpreted.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::Row;
use tokio::net::TcpListener;

use crate::helpers::{
    make_key, spawn_app, spawn_app_with, spawn_sqlite_app, test_config, Received, Receiver, TestApp,
};

const WAIT: Duration = Duration::from_secs(10);

/// Every byte SQLite holds for the database: the file and its write-ahead log.
fn database_bytes(data_dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["agora.db", "agora.db-wal"] {
        if let Ok(b) = std::fs::read(data_dir.join(name)) {
            bytes.extend(b);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn raw_db(data_dir: &Path) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}?mode=ro", data_dir.join("agora.db").display());
    sqlx::SqlitePool::connect(&url)
        .await
        .expect("open the database file")
}

/// The Standard Webhooks signatures of a delivery that `secret` verifies.
fn verifies(secret: &str, msg: &Received) -> bool {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("a `whsec_` secret"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.",
            msg.header("webhook-id"),
            msg.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    mac.update(&msg.body);
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    msg.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

#[tokio::test]
async fn webhook_secrets_are_sealed_in_the_database() {
    let app = spawn_sqlite_app().await;
    let chosen = "whsec_bXktb3duLXNlY3JldC10aGF0LW11c3Qtbm90LWJl";
    let a = app
        .create_webhook(
            json!({"url": "http://127.0.0.1:9/a", "events": ["thread.*"], "secret": chosen}),
        )
        .await;
    let b = app
        .create_webhook(json!({"url": "http://127.0.0.1:9/b", "events": ["thread.*"]}))
        .await;
    let generated = b["secret"].as_str().unwrap().to_owned();
    let rotated = app
        .post(
            &format!("/v1/webhooks/{}/rotate-secret", a["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    let patched_secret = "whsec_YW5vdGhlci1jaG9zZW4tc2VjcmV0LTAxMjM0NTY3";
    let patched = app
        .patch(
            &format!("/v1/webhooks/{}", b["id"].as_str().unwrap()),
            json!({"secret": patched_secret}),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert!(patched.body.get("secret").is_none());

    let pool = raw_db(&app.data_dir).await;
    let rows = sqlx::query("SELECT id, secret, previous_secret FROM webhooks")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let mut previous_seen = 0;
    for row in &rows {
        let secret: String = row.get("secret");
        assert!(secret.starts_with("sealed:v1:"), "{secret}");
        if let Some(previous) = row.get::<Option<String>, _>("previous_secret") {
            assert!(previous.starts_with("sealed:v1:"), "{previous}");
            previous_seen += 1;
        }
        for plain in [chosen, &generated, &new, patched_secret] {
            assert!(!secret.contains(plain));
        }
    }
    assert_eq!(
        previous_seen, 1,
        "the rotated webhook keeps its old secret, sealed"
    );
    pool.close().await;
    let bytes = database_bytes(&app.data_dir);
    assert!(!bytes.is_empty());
    for plain in [chosen, generated.as_str(), new.as_str(), patched_secret] {
        assert!(!contains(&bytes, plain), "a secret is in the database file");
        let b64 = plain.trim_start_matches("whsec_");
        assert!(
            !contains(&bytes, b64),
            "a secret's key is in the database file"
        );
    }
}

#[tokio::test]
async fn the_secret_key_is_generated_once_private_and_reused() {
    let mut app = spawn_app().await;
    let path = app.data_dir.join("secret.key");
    let key = std::fs::read_to_string(&path).expect("secret.key was generated");
    assert_eq!(key.trim().len(), 64);
    assert!(key.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "secret.key is mode {:o}", mode & 0o777);
    }
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.restart_with(|_| {}).await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        key,
        "never regenerated"
    );
    app.publish("course.enrolled", json!({})).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert!(verifies(hook["secret"].as_str().unwrap(), &got[0]));
}

#[tokio::test]
async fn a_wrong_secret_key_fails_clearly_at_start() {
    let mut app = spawn_sqlite_app().await;
    app.create_webhook(json!({"url": "http://127.0.0.1:9/a", "events": ["thread.*"]}))
        .await;
    app.stop().await;

    let start = |key: &str| {
        let mut config = test_config(app.data_dir.clone());
        config.secret_key = Some(key.to_owned().into());
        async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            agora::start(config, listener).await
        }
    };
    let wrong = "ab".repeat(32);
    let err = match start(&wrong).await {
        Ok(_) => panic!("started with the wrong secret key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("secret key"), "{err}");
    assert!(
        !err.contains(&wrong),
        "the key is never in an error message: {err}"
    );

    let err = match start("not-hex").await {
        Ok(_) => panic!("started with a malformed secret key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("AGORA_SECRET_KEY"), "{err}");
    assert!(err.contains("64 hexadecimal"), "{err}");

    // The right key, given through the setting instead of the file, works.
    let right = std::fs::read_to_string(app.data_dir.join("secret.key")).unwrap();
    let running = start(right.trim())
        .await
        .expect("starts with the right key");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_sealed_secret_moved_to_another_webhook_does_not_open() {
    // The webhook id is the associated data: someone able to write the database cannot
    // make one webhook sign with another's secret.
    let mut app = spawn_sqlite_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let a = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let b = app
        .create_webhook(
            json!({"url": receiver.url(), "events": ["course.*"], "status": "inactive"}),
        )
        .await;
    app.stop().await;
    let url = format!("sqlite://{}", app.data_dir.join("agora.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "UPDATE webhooks SET secret = (SELECT secret FROM webhooks WHERE id = $1) WHERE id = $2",
    )
    .bind(b["id"].as_str().unwrap())
    .bind(a["id"].as_str().unwrap())
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let config = test_config(app.data_dir.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Start-up checks the first sealed secret in id order, which is webhook a's: refused.
    let refused = agora::start(config, listener).await;
    assert!(refused.is_err(), "a moved secret opened");
}

#[tokio::test]
async fn after_the_grace_period_only_the_new_secret_signs() {
    let app = spawn_app_with(|c| c.rotation_grace = "1s".parse().unwrap()).await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap().to_owned();
    let rotated = app
        .post(&format!("/v1/webhooks/{id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(rotated.status, 200);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(rotated.body["previous_secret_expires_at"].is_string());
    assert!(
        app.get(&format!("/v1/webhooks/{id}"))
            .await
            .body
            .get("secret")
            .is_none(),
        "the new secret is answered once"
    );

    app.publish("course.enrolled", json!({"n": 1})).await;
    let during = receiver.wait_for(1, WAIT).await;
    assert_eq!(during[0].header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(&new, &during[0]) && verifies(&old, &during[0]));

    tokio::time::sleep(Duration::from_millis(1300)).await;
    app.publish("course.enrolled", json!({"n": 2})).await;
    let after = receiver.wait_for(2, WAIT).await;
    assert_eq!(after[1].header("webhook-signature").split(' ').count(), 1);
    assert!(verifies(&new, &after[1]));
    assert!(
        !verifies(&old, &after[1]),
        "the old secret still signs after its grace"
    );
}

#[tokio::test]
async fn api_keys_are_hashed_listed_tracked_and_revoked_at_once() {
    let app = spawn_sqlite_app().await;
    let (id, key) = make_key(&app, json!(["webhooks:read"])).await;
    assert!(key.starts_with("agora_"));

    let pool = raw_db(&app.data_dir).await;
    let row = sqlx::query("SELECT key_hash FROM api_keys WHERE id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let stored: String = row.get("key_hash");
    assert_ne!(stored, key);
    assert!(!stored.contains(&key[6..]));
    assert_eq!(stored.len(), 64, "a SHA-256 digest");
    pool.close().await;
    assert!(!contains(&database_bytes(&app.data_dir), &key));

    let listed = app.get("/v1/api-keys").await;
    assert_eq!(listed.status, 200);
    assert!(
        !listed.body.to_string().contains(&key),
        "a key is shown only once"
    );
    let entry = |body: &Value| {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str())
            .cloned()
            .expect("listed")
    };
    let before = entry(&listed.body);
    assert_eq!(before["abilities"], json!(["webhooks:read"]));
    assert!(before["last_used_at"].is_null());

    assert_eq!(
        app.request_as(&key, "GET", "/v1/webhooks", None)
            .await
            .status,
        200
    );
    // The use is noted off the request's path, so a read never waits for a write.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let after = entry(&app.get("/v1/api-keys").await.body);
        if after["last_used_at"].is_string() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{after:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Only an admin manages keys.
    for (method, path, body) in [
        (
            "POST",
            "/v1/api-keys".to_owned(),
            Some(json!({"name": "x", "abilities": ["webhooks:read"]})),
        ),
        ("GET", "/v1/api-keys".to_owned(), None),
        ("DELETE", format!("/v1/api-keys/{id}"), None),
    ] {
        let a = app.request_as(&key, method, &path, body).await;
        assert_eq!(a.status, 403, "{method} {path}: {:?}", a.body);
    }

    assert_eq!(app.delete(&format!("/v1/api-keys/{id}")).await.status, 204);
    let revoked = app.request_as(&key, "GET", "/v1/webhooks", None).await;
    assert_eq!(revoked.status, 401, "a revoked key stops working at once");
    assert_eq!(revoked.body["code"], "unauthorized");
    assert!(!app.get("/v1/api-keys").await.body.to_string().contains(&id));
    assert_eq!(app.delete(&format!("/v1/api-keys/{id}")).await.status, 404);
}

#[tokio::test]
async fn keys_create_on_the_command_line_prints_a_working_key() {
    let app = spawn_sqlite_app().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args([
            "keys",
            "create",
            "--name",
            "ci",
            "--abilities",
            "webhooks:write,threads:read",
        ])
        .arg("--data-dir")
        .arg(&app.data_dir)
        .env_remove("AGORA_DATABASE_URL")
        .output()
        .await
        .expect("the binary runs");
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("agora_"), "{key}");
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains(&key),
        "printed once"
    );

    let threads = json!({"url": "http://127.0.0.1:9/hook", "events": ["thread.created"]});
    let created = app
        .request_as(&key, "POST", "/v1/webhooks", Some(threads))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let users = json!({"url": "http://127.0.0.1:9/hook", "events": ["user.*"]});
    assert_eq!(
        app.request_as(&key, "POST", "/v1/webhooks", Some(users))
            .await
            .status,
        403,
        "the abilities given on the command line are the key's abilities"
    );

    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["keys", "create", "--abilities", "webhooks:everything"])
        .arg("--data-dir")
        .arg(&app.data_dir)
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success(), "an unknown ability is refused");
}

#[tokio::test]
async fn creating_a_webhook_needs_write_and_read_on_every_resource() {
    let app = spawn_app().await;
    let (_, read_only) = make_key(&app, json!(["webhooks:read", "threads:read"])).await;
    let (_, threads) = make_key(&app, json!(["webhooks:write", "threads:read"])).await;
    let body = |events: Value| json!({"url": "http://127.0.0.1:9/hook", "events": events});
    let status = |key: &str, events: Value| {
        let (app, key) = (&app, key.to_owned());
        async move {
            app.request_as(&key, "POST", "/v1/webhooks", Some(body(events)))
                .await
                .status
        }
    };
    assert_eq!(status(&read_only, json!(["thread.created"])).await, 403);
    assert_eq!(status(&threads, json!(["thread.*"])).await, 201);
    assert_eq!(
        status(&threads, json!(["thread.created", "post.created"])).await,
        403
    );
    assert_eq!(status(&threads, json!(["*"])).await, 403);
    let (_, both) = make_key(
        &app,
        json!(["webhooks:write", "threads:read", "posts:write"]),
    )
    .await;
    assert_eq!(
        status(&both, json!(["thread.created", "post.*"])).await,
        201,
        "write holds read"
    );
}

#[tokio::test]
async fn another_keys_webhook_and_its_deliveries_answer_404() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let (_, alice) = make_key(&app, json!(["webhooks:write", "events:read"])).await;
    let (_, bob) = make_key(&app, json!(["webhooks:write", "events:read"])).await;
    let created = app
        .request_as(
            &alice,
            "POST",
            "/v1/webhooks",
            Some(json!({"url": receiver.url(), "events": ["course.enrolled"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    app.publish("course.enrolled", json!({})).await;
    receiver.wait_for(1, WAIT).await;
    let list = app
        .request_as(
            &alice,
            "GET",
            &format!("/v1/webhooks/{id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(list.status, 200);
    let delivery = list.body["data"][0]["id"].as_str().unwrap().to_owned();
    app.wait_for_delivery_status(&delivery, "succeeded").await;

    let since = json!({"since": "2020-01-01T00:00:00Z"});
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/webhooks/{id}"), None),
        (
            "PATCH",
            format!("/v1/webhooks/{id}"),
            Some(json!({"name": "mine now"})),
        ),
        (
            "PUT",
            format!("/v1/webhooks/{id}"),
            Some(json!({"url": receiver.url(), "events": ["course.enrolled"]})),
        ),
        ("POST", format!("/v1/webhooks/{id}/test"), Some(json!({}))),
        (
            "POST",
            format!("/v1/webhooks/{id}/rotate-secret"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/v1/webhooks/{id}/recover"),
            Some(since.clone()),
        ),
        ("GET", format!("/v1/webhooks/{id}/deliveries"), None),
        ("GET", format!("/v1/deliveries/{delivery}"), None),
        (
            "POST",
            format!("/v1/deliveries/{delivery}/redeliver"),
            Some(json!({})),
        ),
        ("DELETE", format!("/v1/webhooks/{id}"), None),
    ];
    for (method, path, body) in &attempts {
        let a = app.request_as(&bob, method, path, body.clone()).await;
        assert_eq!(
            a.status, 404,
            "{method} {path} by another key: {:?}",
            a.body
        );
        assert_eq!(a.body["code"], "not_found");
    }
    let bobs = app.request_as(&bob, "GET", "/v1/webhooks", None).await;
    assert_eq!(bobs.body["data"], json!([]));
    receiver
        .assert_stays_at(1, Duration::from_millis(300))
        .await;

    // Nothing changed, and the owner still reaches everything.
    let mine = app
        .request_as(&alice, "GET", &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(mine.status, 200);
    assert!(mine.body["name"].is_null());
    for path in [
        format!("/v1/deliveries/{delivery}"),
        format!("/v1/webhooks/{id}/deliveries"),
    ] {
        assert_eq!(app.request_as(&alice, "GET", &path, None).await.status, 200);
    }
    let redelivered = app
        .request_as(
            &alice,
            "POST",
            &format!("/v1/deliveries/{delivery}/redeliver"),
            Some(json!({})),
        )
        .await;
    assert_eq!(redelivered.status, 202);
    receiver.wait_for(2, WAIT).await;
}

#[tokio::test]
async fn each_key_is_rate_limited_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 3;
    })
    .await;
    let (_, other) = make_key(&app, json!(["webhooks:read"])).await; // admin: 1 of 3
    assert_eq!(app.get("/v1/webhooks").await.status, 200); // 2
    assert_eq!(app.get("/v1/webhooks").await.status, 200); // 3
    let res = app
        .client
        .get(app.url("/v1/webhooks"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);

    // Another key has its own bucket.
    assert_eq!(
        app.request_as(&other, "GET", "/v1/webhooks", None)
            .await
            .status,
        200
    );
    // And the limited key recovers after waiting.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.get("/v1/webhooks").await.status, 200);
}

/// A receiver that answers every request with fixed raw bytes.
async fn raw_receiver(status: u16, content_type: &'static str, body: Vec<u8>) -> String {
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", content_type)],
                body,
            )
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

async fn last_attempt(app: &TestApp, hook: &Value, status: &str) -> Value {
    let id = hook["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let list = app.get(&format!("/v1/webhooks/{id}/deliveries")).await;
        if let Some(d) = list.body["data"].as_array().and_then(|d| d.first()) {
            if d["status"] == status || (status == "failed" && d["status"] == "exhausted") {
                let detail = app
                    .get(&format!("/v1/deliveries/{}", d["id"].as_str().unwrap()))
                    .await;
                return detail.body["attempts"]
                    .as_array()
                    .unwrap()
                    .last()
                    .unwrap()
                    .clone();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {status}: {:?}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn receiver_answers_are_stored_truncated_and_never_interpreted() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;

    // 10 KB: the first 4 KiB are kept.
    let big: String = (0..10_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let hook_big = app
        .create_webhook(json!({"url": raw_receiver(200, "text/plain", big.clone().into_bytes()).await, "events": ["course.*"]}))
        .await;
    // HTML and invalid UTF-8 on a 200: a success, stored as text.
    let mut html = b"<html><body><script>alert(1)</script><p>\xff\xfe broken \xc3</p>".to_vec();
    html.extend(std::iter::repeat_n(b'x', 100));
    let hook_html = app
        .create_webhook(
            json!({"url": raw_receiver(200, "text/html", html).await, "events": ["course.*"]}),
        )
        .await;
    // A body that claims failure on a 2xx is still a success; one that claims success on a
    // 5xx is still a failure: only the status counts.
    let hook_liar_ok = app
        .create_webhook(json!({"url": raw_receiver(200, "application/json", br#"{"success":false,"error":"rejected"}"#.to_vec()).await, "events": ["course.*"]}))
        .await;
    let hook_liar_fail = app
        .create_webhook(json!({"url": raw_receiver(500, "application/json", br#"{"success":true}"#.to_vec()).await, "events": ["course.*"], "retry_count": 0}))
        .await;
    app.publish("course.enrolled", json!({})).await;

    let attempt = last_attempt(&app, &hook_big, "succeeded").await;
    let stored = attempt["response_body"].as_str().unwrap();
    assert_eq!(stored.len(), 4096);
    assert_eq!(stored, &big[..4096]);

    let attempt = last_attempt(&app, &hook_html, "succeeded").await;
    assert_eq!(attempt["response_status"], 200);
    let stored = attempt["response_body"].as_str().unwrap();
    assert!(stored.starts_with("<html><body><script>"), "{stored}");
    assert!(
        stored.contains('\u{fffd}'),
        "invalid UTF-8 is replaced, not trusted: {stored}"
    );

    let attempt = last_attempt(&app, &hook_liar_ok, "succeeded").await;
    assert!(attempt["error"].is_null());
    let attempt = last_attempt(&app, &hook_liar_fail, "failed").await;
    assert_eq!(attempt["response_status"], 500);
    assert_eq!(attempt["error"], "HTTP 500");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let app = spawn_app().await;
    let target = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let redirect = {
        let location = target.url();
        let router = axum::Router::new().fallback(move || {
            let location = location.clone();
            async move {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [("location", location)],
                    "",
                )
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}/hook")
    };
    let hook = app
        .create_webhook(json!({"url": redirect, "events": ["course.*"], "retry_count": 0}))
        .await;
    app.publish("course.enrolled", json!({})).await;
    let attempt = last_attempt(&app, &hook, "failed").await;
    assert_eq!(attempt["response_status"], 307);
    target.assert_stays_at(0, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn production_mode_refuses_embedded_ipv4_and_local_names_at_creation() {
    let app = spawn_app_with(|c| c.allow_private_targets = false).await;
    for url in [
        "https://[::ffff:93.184.216.34]/hook",
        "https://[::93.184.216.34]/hook",
        "https://[64:ff9b:1:a00:1::5db8:d822]/hook",
        "https://intranet/hook",
        "https://router.home.arpa/hook",
        "https://017700000001/hook",
        "https://%31%32%37.0.0.1/hook",
        "https://[fe80::1%25eth0]/hook",
    ] {
        let a = app
            .post(
                "/v1/webhooks",
                json!({"url": url, "events": ["thread.created"]}),
            )
            .await;
        assert_eq!(a.status, 400, "{url}: {:?}", a.body);
        assert_eq!(a.body["code"], "invalid_url", "{url}");
    }
    let dev = spawn_app().await;
    let a = dev
        .post(
            "/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["thread.created"]}),
        )
        .await;
    assert_eq!(a.status, 201, "allowing private targets lifts the rule");
}
