//! `GET /metrics`: who may scrape it, and whether its series count what happened. The counts
//! are checked on the real binary, the only server in its process, so that no other test's
//! deliveries or requests add to them.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{client_for, make_key, spawn_app_with, Receiver, Reply, ADMIN_KEY};
use crate::process::ServerProcess;

const TOKEN: &str = "metrics-token-for-the-test-0123456789";

/// The value of the series `name` whose labels include every one of `labels`, if any.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let matches = series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
            matches.then(|| value.parse().expect("a number"))
        })
}

async fn scrape(client: &reqwest::Client, url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut request = client.get(url);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let answer = request.send().await.expect("request sent");
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_deliveries_by_outcome_requests_by_route_and_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        dir.path(),
        &[
            ("AGORA_METRICS_TOKEN", TOKEN),
            ("AGORA_METRICS_SAMPLE_INTERVAL", "100ms"),
        ],
    )
    .await;
    let app = client_for(server.addr);
    let url = app.url("/metrics");
    let client = reqwest::Client::new();

    assert_eq!(scrape(&client, &url, None).await.0, 401);
    assert_eq!(scrape(&client, &url, Some("not-the-token")).await.0, 401);
    let (_, reader) = make_key(&app, json!(["webhooks:read"])).await;
    assert_eq!(scrape(&client, &url, Some(&reader)).await.0, 403);
    let (status, by_admin) = scrape(&client, &url, Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "an admin key may scrape too: {by_admin}");

    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500)]);
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.publish("course.enrolled", json!({"n": 1})).await;
    receiver.wait_for(2, Duration::from_secs(10)).await;

    let succeeded = [("outcome", "succeeded"), ("event_type", "course.enrolled")];
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (status, text) = scrape(&client, &url, Some(TOKEN)).await;
        assert_eq!(status, 200, "{text}");
        // The gauges are sampled every 100 ms: wait for one sample after the retry succeeded.
        let sampled = value(&text, "agora_webhooks", &[("status", "active")]) == Some(1.0)
            && value(&text, "agora_deliveries_queued", &[("state", "failed")]) == Some(0.0);
        if value(&text, "agora_deliveries_total", &succeeded) == Some(1.0) && sampled {
            break text;
        }
        assert!(Instant::now() < deadline, "never counted: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let retrying = [
        ("outcome", "failed_retrying"),
        ("event_type", "course.enrolled"),
    ];
    assert_eq!(value(&text, "agora_deliveries_total", &retrying), Some(1.0));
    let exhausted = [("outcome", "exhausted"), ("event_type", "course.enrolled")];
    assert_eq!(
        value(&text, "agora_deliveries_total", &exhausted),
        Some(0.0),
        "nothing was exhausted: {text}"
    );
    assert_eq!(
        value(&text, "agora_delivery_attempt_duration_seconds_count", &[]),
        Some(2.0)
    );
    let created = [
        ("method", "POST"),
        ("route", "/v1/webhooks"),
        ("status", "201"),
    ];
    assert_eq!(
        value(&text, "agora_http_requests_total", &created),
        Some(1.0)
    );
    let refused = [("route", "/metrics"), ("status", "401")];
    assert_eq!(
        value(&text, "agora_http_requests_total", &refused),
        Some(2.0)
    );
    assert!(
        value(
            &text,
            "agora_http_request_duration_seconds_count",
            &[("route", "/v1/events")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let id = hook["id"].as_str().unwrap();
    assert!(
        !text.contains(id),
        "no series is labelled with an id: {text}"
    );
    assert_eq!(
        value(&text, "agora_deliveries_queued", &[("state", "pending")]),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "agora_deliveries_queued", &[("state", "failed")]),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "agora_oldest_due_delivery_age_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(value(&text, "agora_breaker_openings_total", &[]), Some(0.0));
    assert_eq!(
        value(
            &text,
            "agora_webhooks_auto_disabled_total",
            &[("reason", "failing")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            "agora_storage_errors_total",
            &[("kind", "unavailable")]
        ),
        Some(0.0)
    );
    let durable = [("kind", "durable")];
    assert!(
        value(&text, "agora_db_commit_duration_seconds_count", &durable).is_some_and(|n| n >= 1.0)
    );
    let bookkeeping = [("kind", "bookkeeping")];
    assert!(value(
        &text,
        "agora_db_commit_duration_seconds_count",
        &bookkeeping
    )
    .is_some_and(|n| n >= 1.0));
    assert!(value(&text, "agora_group_commit_events_count", &[]).is_some_and(|n| n >= 1.0));
    assert!(text.contains("# TYPE agora_delivery_attempt_duration_seconds histogram"));
}

#[tokio::test]
async fn the_sample_counts_a_delivery_waiting_for_its_retry() {
    // In process, on whichever database the suite runs on; the store is asked directly, since
    // other tests of this process add to the same gauges.
    let app = spawn_app_with(|c| c.retry_schedule = "1h".parse().unwrap()).await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(500));
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let published_at = now_ms();
    app.publish("course.enrolled", json!({"n": 1})).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let sample = loop {
        let sample = app
            .store()
            .sample_queue()
            .await
            .expect("the queue is sampled");
        if sample.failed == 1 {
            break sample;
        }
        assert!(Instant::now() < deadline, "never failed: {sample:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sample.pending, 0, "{sample:?}");
    assert_eq!(sample.webhooks_active, 1, "{sample:?}");
    assert_eq!(sample.webhooks_inactive, 0, "{sample:?}");
    let due = sample.earliest_due_at.expect("the retry is due later");
    assert!(
        due >= published_at + 3_000_000,
        "due an hour later: {sample:?}"
    );
    let (status, text) = scrape(&app.client, &app.url("/metrics"), Some(ADMIN_KEY)).await;
    assert_eq!(status, 200);
    assert!(text.contains("agora_deliveries_queued{"), "{text}");
}

/// Now as unix ms.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn the_sample_counts_deliveries_held_back_behind_a_slow_receiver_as_pending() {
    // One delivery in memory per webhook: while the receiver holds the first, the others wait
    // in the database (parked on SQLite, pending on PostgreSQL), due since they were made.
    let app = spawn_app_with(|c| {
        c.max_queued_per_webhook = 1;
        c.max_concurrency_per_webhook = 1;
    })
    .await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(200).after(Duration::from_secs(3))]);
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let published_at = now_ms();
    for n in 0..5 {
        app.publish("course.enrolled", json!({"n": n})).await;
    }
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let sample = app
        .store()
        .sample_queue()
        .await
        .expect("the queue is sampled");
    assert_eq!(sample.pending, 4, "{sample:?}");
    assert_eq!(sample.failed, 0, "{sample:?}");
    let due = sample.earliest_due_at.expect("the waiting ones are due");
    assert!(
        due >= published_at - 1000 && due <= now_ms(),
        "due since they were published: {sample:?}"
    );
}

#[tokio::test]
async fn a_separate_metrics_address_serves_only_metrics_and_needs_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = crate::process::free_addr();
    let server = ServerProcess::start(
        dir.path(),
        &[("AGORA_METRICS_LISTEN", metrics_addr.to_string().as_str())],
    )
    .await;
    let client = reqwest::Client::new();
    let (status, text) = scrape(&client, &format!("http://{metrics_addr}/metrics"), None).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("# TYPE agora_deliveries_total counter"),
        "{text}"
    );
    let (status, other) = scrape(&client, &format!("http://{metrics_addr}/healthz"), None).await;
    assert_eq!(status, 404, "only /metrics there: {other}");
    let api = client_for(server.addr);
    assert_eq!(scrape(&client, &api.url("/metrics"), None).await.0, 401);
}
