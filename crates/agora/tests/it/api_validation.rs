//! Every validation error answers 4xx with `{code, message, status}` and changes nothing.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};

async fn webhook_count(app: &TestApp) -> usize {
    app.get("/v1/webhooks?limit=250").await.body["data"]
        .as_array()
        .unwrap()
        .len()
}

fn assert_error(status: u16, code: &str, answer: &crate::helpers::Answer) {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    assert_eq!(answer.body["code"], code, "{:?}", answer.body);
    assert_eq!(answer.body["status"], status);
    assert!(answer.body["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn invalid_webhooks_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let ok = json!({"url": "http://127.0.0.1:9/hook", "events": ["thread.created"]});
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"events": ["thread.created"]}), "invalid_url"),
        (json!({"url": "http://127.0.0.1:9/"}), "invalid_events"),
        (with("url", json!("not a url")), "invalid_url"),
        (with("url", json!("ftp://127.0.0.1/")), "invalid_url"),
        (
            with("url", json!("https://user:pw@example.com/")),
            "invalid_url",
        ),
        (with("events", json!([])), "invalid_events"),
        (with("events", json!(["thread"])), "invalid_events"),
        (with("events", json!(["thread.nope"])), "unknown_event"),
        (with("events", json!(["nothing.*"])), "unknown_event"),
        (
            with("headers", json!({"Webhook-Signature": "x"})),
            "invalid_header",
        ),
        (
            with("headers", json!({"X-Agora-Event": "x"})),
            "invalid_header",
        ),
        (
            with("headers", json!({"Content-Type": "text/plain"})),
            "invalid_header",
        ),
        (
            with("headers", json!({"bad header": "x"})),
            "invalid_header",
        ),
        (
            with("headers", json!({"X-Ok": "line\nbreak"})),
            "invalid_header",
        ),
        (with("retry_count", json!(11)), "invalid_retry_count"),
        (with("retry_count", json!(-1)), "invalid_retry_count"),
        (with("timeout_ms", json!(999)), "invalid_timeout"),
        (with("timeout_ms", json!(30_001)), "invalid_timeout"),
        (with("status", json!("paused")), "invalid_status"),
        (with("format", json!("xml")), "invalid_format"),
        (with("secret", json!("short")), "invalid_secret"),
        (
            with("secret", json!("whsec_***not*base64***")),
            "invalid_secret",
        ),
        (with("name", json!("n".repeat(201))), "invalid_body"),
        (with("filter", json!({"category": "x"})), "invalid_body"),
        (with("surprise", json!(1)), "invalid_body"),
        (with("retry_count", json!("ten")), "invalid_body"),
    ];
    for (body, code) in cases {
        let answer = app.post("/v1/webhooks", body.clone()).await;
        assert_error(400, code, &answer);
    }
    assert_eq!(webhook_count(&app).await, 0);
}

#[tokio::test]
async fn malformed_bodies_and_auth_failures_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/v1/webhooks"))
            .bearer_auth(&app.key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let not_json = raw("{not json", "application/json").await.unwrap();
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.unwrap();
    assert_eq!(body["code"], "invalid_json");
    let wrong_type = raw("{}", "text/plain").await.unwrap();
    assert_eq!(wrong_type.status(), 415);

    let huge = json!({"url": "http://127.0.0.1:9/", "events": ["thread.created"], "name": "x".repeat(1_100_000)});
    assert_error(
        413,
        "payload_too_large",
        &app.post("/v1/webhooks", huge).await,
    );

    let anonymous = app
        .client
        .get(app.url("/v1/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    assert_error(
        401,
        "unauthorized",
        &app.request_as("agora_wrong", "GET", "/v1/webhooks", None)
            .await,
    );

    assert_error(
        404,
        "not_found",
        &app.get("/v1/webhooks/wh_doesnotexist").await,
    );
    assert_error(404, "not_found", &app.get("/v1/webhooks/../../etc").await);
    assert_error(
        404,
        "not_found",
        &app.get("/v1/deliveries/msg_nothing").await,
    );
    assert_error(404, "not_found", &app.get("/v1/nowhere").await);
    assert_error(400, "invalid_limit", &app.get("/v1/webhooks?limit=0").await);
    assert_error(
        400,
        "invalid_limit",
        &app.get("/v1/webhooks?limit=251").await,
    );
    assert_eq!(webhook_count(&app).await, 0);
}

#[tokio::test]
async fn an_invalid_update_leaves_the_webhook_as_it_was() {
    let app = spawn_app().await;
    let hook = app
        .create_webhook(json!({"url": "http://127.0.0.1:9/hook", "events": ["thread.created"], "name": "before"}))
        .await;
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    let before = app.get(&path).await.body;
    assert_error(
        400,
        "invalid_timeout",
        &app.patch(&path, json!({"name": "after", "timeout_ms": 1}))
            .await,
    );
    assert_error(
        400,
        "invalid_url",
        &app.put(&path, json!({"url": "nope", "events": ["thread.created"]}))
            .await,
    );
    assert_error(
        400,
        "invalid_events",
        &app.put(&path, json!({"url": "http://127.0.0.1:9/"})).await,
    );
    assert_eq!(app.get(&path).await.body, before);
}

#[tokio::test]
async fn production_mode_requires_https_and_public_targets() {
    let app = spawn_app_with(|c| c.allow_private_targets = false).await;
    for url in [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/",
        "https://0x7f000001/",
    ] {
        let answer = app
            .post(
                "/v1/webhooks",
                json!({"url": url, "events": ["thread.created"]}),
            )
            .await;
        assert_error(400, "invalid_url", &answer);
    }
    assert_eq!(webhook_count(&app).await, 0);
}

#[tokio::test]
async fn custom_event_types_and_events_are_validated() {
    let app = spawn_app().await;
    assert_error(
        400,
        "invalid_event",
        &app.post("/v1/event-types", json!({"name": "Bad Name"}))
            .await,
    );
    assert_error(
        400,
        "reserved_event",
        &app.post("/v1/event-types", json!({"name": "thread.archived"}))
            .await,
    );
    app.register_type("course.enrolled").await;
    assert_error(
        409,
        "event_type_exists",
        &app.post("/v1/event-types", json!({"name": "course.enrolled"}))
            .await,
    );
    assert_error(
        400,
        "unknown_event",
        &app.post("/v1/events", json!({"type": "course.finished"}))
            .await,
    );
    assert_error(
        400,
        "reserved_event",
        &app.post("/v1/events", json!({"type": "thread.created"}))
            .await,
    );
    assert_error(
        400,
        "invalid_body",
        &app.post("/v1/events", json!({"data": {}})).await,
    );
    let types = app.get("/v1/event-types").await.body;
    let names: Vec<&str> = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"thread.created") && names.contains(&"course.enrolled"));
}
