//! Delivery behaviour end to end: fan-out, bodies intact, retries, timeouts, 410, Retry-After,
//! redelivery, recovery, the test endpoint, custom headers, inactive webhooks, restarts and
//! isolation.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Receiver, Reply, TestApp};

const WAIT: Duration = Duration::from_secs(10);

async fn app_with_type() -> TestApp {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    app
}

async fn only_delivery(app: &TestApp, hook: &Value) -> Value {
    let list = app
        .get(&format!(
            "/v1/webhooks/{}/deliveries",
            hook["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(list.status, 200);
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{data:?}");
    data[0].clone()
}

#[tokio::test]
async fn one_event_fans_out_to_exactly_the_matching_webhooks() {
    let app = app_with_type().await;
    app.register_type("quiz.passed").await;
    let (a, b, c) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    app.create_webhook(json!({"url": a.url(), "events": ["course.*"]}))
        .await;
    app.create_webhook(json!({"url": b.url(), "events": ["course.enrolled", "quiz.passed"]}))
        .await;
    app.create_webhook(json!({"url": c.url(), "events": ["quiz.*"]}))
        .await;

    let event = app.publish("course.enrolled", json!({"n": 1})).await;
    assert_eq!(event["deliveries"], 2);
    let got_a = a.wait_for(1, WAIT).await;
    let got_b = b.wait_for(1, WAIT).await;
    c.assert_stays_at(0, Duration::from_millis(500)).await;
    a.assert_stays_at(1, Duration::ZERO).await;
    b.assert_stays_at(1, Duration::ZERO).await;
    assert_eq!(got_a[0].json()["id"], event["id"]);
    assert_eq!(got_b[0].json()["id"], event["id"]);
    assert_ne!(got_a[0].header("webhook-id"), got_b[0].header("webhook-id"));
}

#[tokio::test]
async fn event_data_arrives_exactly_as_published_whatever_its_characters() {
    // The dispatcher reads event bodies back as one JSON document per batch; escapes, quotes,
    // control characters and non-ASCII text must come through that unchanged.
    let app = app_with_type().await;
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    for receiver in [&a, &b] {
        app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
            .await;
    }
    let data = json!({
        "text": "line one\nline \"two\"\t\\ back\u{1}slash",
        "unicode": "Zoë 🎉 日本語 \u{2028}",
        "html": "<script>alert('x')</script> & more",
        "nested": {"list": [1, 2.5, null, true, "[\"not json\"]"]},
    });
    let event = app.publish("course.enrolled", data.clone()).await;
    for receiver in [&a, &b] {
        let got = receiver.wait_for(1, WAIT).await;
        let body = got[0].json();
        assert_eq!(body["id"], event["id"]);
        assert_eq!(body["data"], data);
    }
    assert_eq!(
        a.wait_for(1, WAIT).await[0].body,
        b.wait_for(1, WAIT).await[0].body,
        "both webhooks get the same bytes"
    );
}

#[tokio::test]
async fn a_failed_attempt_is_retried_with_the_same_webhook_id() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500).body("boom")]);
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.publish("course.enrolled", json!({})).await;

    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(got[0].header("x-agora-attempt"), "1");
    assert_eq!(got[1].header("x-agora-attempt"), "2");
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(150),
        "retry came too early"
    );

    let delivery = only_delivery(&app, &hook).await;
    let detail = app
        .wait_for_delivery_status(delivery["id"].as_str().unwrap(), "succeeded")
        .await;
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["response_status"], 500);
    assert_eq!(attempts[0]["response_body"], "boom");
    assert_eq!(attempts[0]["error"], "HTTP 500");
    assert_eq!(attempts[1]["response_status"], 200);
    assert_eq!(attempts[0]["request_headers"]["webhook-id"], delivery["id"]);
    receiver
        .assert_stays_at(2, Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn retry_count_zero_means_one_attempt() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(500));
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"], "retry_count": 0}))
        .await;
    app.publish("course.enrolled", json!({})).await;
    receiver.wait_for(1, WAIT).await;
    let delivery = only_delivery(&app, &hook).await;
    app.wait_for_delivery_status(delivery["id"].as_str().unwrap(), "exhausted")
        .await;
    receiver
        .assert_stays_at(1, Duration::from_millis(800))
        .await;
    let failed = app
        .get(&format!(
            "/v1/webhooks/{}/deliveries?status=failed",
            hook["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(failed.body["data"].as_array().unwrap().len(), 1);
    let succeeded = app
        .get(&format!(
            "/v1/webhooks/{}/deliveries?status=succeeded",
            hook["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(succeeded.body["data"].as_array().unwrap().len(), 0);
    let webhook = app
        .get(&format!("/v1/webhooks/{}", hook["id"].as_str().unwrap()))
        .await;
    assert_eq!(webhook.body["last_error"], "HTTP 500");
    assert!(webhook.body["last_triggered_at"].is_string());
}

#[tokio::test]
async fn an_attempt_that_times_out_fails_and_is_retried() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(200).after(Duration::from_millis(2500))]);
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"], "timeout_ms": 1000}))
        .await;
    app.publish("course.enrolled", json!({})).await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].header("x-agora-attempt"), "2");
    let delivery = only_delivery(&app, &hook).await;
    let detail = app
        .wait_for_delivery_status(delivery["id"].as_str().unwrap(), "succeeded")
        .await;
    let first = &detail["attempts"][0];
    assert!(
        first["error"].as_str().unwrap().contains("timed out"),
        "{first}"
    );
    assert!(first["response_status"].is_null());
    assert!(first["duration_ms"].as_i64().unwrap() >= 1000);
}

#[tokio::test]
async fn gone_disables_the_webhook_at_once() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(410));
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let id = hook["id"].as_str().unwrap();
    app.publish("course.enrolled", json!({})).await;
    receiver.wait_for(1, WAIT).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let w = app.get(&format!("/v1/webhooks/{id}")).await;
        if w.body["status"] == "inactive" {
            assert!(w.body["disabled_reason"].as_str().unwrap().contains("410"));
            break;
        }
        assert!(Instant::now() < deadline, "webhook was not disabled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = app.publish("course.enrolled", json!({})).await;
    assert_eq!(second["deliveries"], 0);
    receiver
        .assert_stays_at(1, Duration::from_millis(800))
        .await;
}

#[tokio::test]
async fn retry_after_is_honoured_when_longer() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(429).header("retry-after", "2")]);
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.publish("course.enrolled", json!({})).await;
    let got = receiver.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, before Retry-After"
    );
}

#[tokio::test]
async fn redeliver_sends_again_with_the_same_webhook_id() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.publish("course.enrolled", json!({})).await;
    receiver.wait_for(1, WAIT).await;
    let delivery = only_delivery(&app, &hook).await;
    let id = delivery["id"].as_str().unwrap();
    app.wait_for_delivery_status(id, "succeeded").await;
    let again = app
        .post(&format!("/v1/deliveries/{id}/redeliver"), json!({}))
        .await;
    assert_eq!(again.status, 202, "{:?}", again.body);
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].header("webhook-id"), id);
    assert_eq!(got[1].header("x-agora-attempt"), "2");
    assert_eq!(got[0].body, got[1].body);
}

#[tokio::test]
async fn recover_requeues_failures_since_a_time() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500), Reply::status(500)]);
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"], "retry_count": 0}))
        .await;
    let id = hook["id"].as_str().unwrap();
    app.publish("course.enrolled", json!({"n": 1})).await;
    app.publish("course.enrolled", json!({"n": 2})).await;
    receiver.wait_for(2, WAIT).await;
    let deadline = Instant::now() + WAIT;
    while app
        .get(&format!("/v1/webhooks/{id}/deliveries?status=failed"))
        .await
        .body["data"]
        .as_array()
        .unwrap()
        .len()
        < 2
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bad = app
        .post(
            &format!("/v1/webhooks/{id}/recover"),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let since = agora_core::time::to_rfc3339(agora_core::time::now_ms() - 3_600_000);
    let recovered = app
        .post(
            &format!("/v1/webhooks/{id}/recover"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(recovered.status, 202);
    assert_eq!(recovered.body["recovered"], 2);
    let got = receiver.wait_for(4, WAIT).await;
    let later: HashSet<_> = got[2..]
        .iter()
        .map(|m| m.json()["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(later, HashSet::from([1, 2]));
}

#[tokio::test]
async fn the_test_endpoint_answers_with_the_receivers_verdict() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.script([
        Reply::status(200).after(Duration::from_millis(120)),
        Reply::status(503),
    ]);
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["thread.created"]}))
        .await;
    let id = hook["id"].as_str().unwrap();

    let ok = app
        .post(
            &format!("/v1/webhooks/{id}/test"),
            json!({"event": "thread.created"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.body["success"], true);
    assert_eq!(ok.body["status_code"], 200);
    assert!(ok.body["response_time_ms"].as_i64().unwrap() >= 100);
    assert!(ok.body["error"].is_null());
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-agora-event"), "webhook.test");
    assert_eq!(got[0].json()["data"]["event"], "thread.created");

    let failed = app
        .post(&format!("/v1/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(failed.body["success"], false);
    assert_eq!(failed.body["status_code"], 503);
    // A test is not retried.
    receiver
        .assert_stays_at(2, Duration::from_millis(800))
        .await;

    let unknown = app
        .post(
            &format!("/v1/webhooks/{id}/test"),
            json!({"event": "nope.nothing"}),
        )
        .await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test]
async fn a_test_delivery_is_recorded_even_when_its_caller_hangs_up() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(200).after(Duration::from_millis(600))]);
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["thread.created"]}))
        .await;
    let id = hook["id"].as_str().unwrap();

    let hung_up = app
        .client
        .post(app.url(&format!("/v1/webhooks/{id}/test")))
        .bearer_auth(&app.key)
        .json(&json!({}))
        .timeout(Duration::from_millis(150))
        .send()
        .await;
    assert!(hung_up.is_err(), "the caller was meant to give up first");
    receiver.wait_for(1, WAIT).await;

    let list = app.get(&format!("/v1/webhooks/{id}/deliveries")).await;
    let delivery = list.body["data"][0]["id"].as_str().unwrap().to_owned();
    let done = app.wait_for_delivery_status(&delivery, "succeeded").await;
    assert_eq!(done["attempts"].as_array().unwrap().len(), 1, "{done:?}");
}

#[tokio::test]
async fn custom_headers_are_sent_and_credentials_redacted_in_the_log() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    let hook = app
        .create_webhook(json!({
            "url": receiver.url(),
            "events": ["course.*"],
            "headers": {"X-Team": "blue", "Authorization": "Bearer receiver-token"}
        }))
        .await;
    app.publish("course.enrolled", json!({})).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-team"), "blue");
    assert_eq!(got[0].header("authorization"), "Bearer receiver-token");
    let delivery = only_delivery(&app, &hook).await;
    let detail = app
        .wait_for_delivery_status(delivery["id"].as_str().unwrap(), "succeeded")
        .await;
    let headers = &detail["attempts"][0]["request_headers"];
    assert_eq!(headers["X-Team"], "blue");
    assert_eq!(headers["Authorization"], "[redacted]");
    assert!(!detail
        .to_string()
        .contains(hook["secret"].as_str().unwrap()));
}

#[tokio::test]
async fn an_inactive_webhook_receives_nothing() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    let hook = app
        .create_webhook(
            json!({"url": receiver.url(), "events": ["course.*"], "status": "inactive"}),
        )
        .await;
    let event = app.publish("course.enrolled", json!({})).await;
    assert_eq!(event["deliveries"], 0);
    receiver
        .assert_stays_at(0, Duration::from_millis(600))
        .await;
    let id = hook["id"].as_str().unwrap();
    assert_eq!(
        app.patch(&format!("/v1/webhooks/{id}"), json!({"status": "active"}))
            .await
            .status,
        200
    );
    app.publish("course.enrolled", json!({})).await;
    receiver.wait_for(1, WAIT).await;
}

#[tokio::test]
async fn pending_and_in_flight_deliveries_survive_a_restart() {
    let mut app = spawn_app_with(|c| c.max_concurrency_per_webhook = 2).await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    let slow = Reply::status(200).after(Duration::from_millis(800));
    receiver.script([slow.clone(), slow]);
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let mut published = HashSet::new();
    for n in 0..6 {
        published.insert(app.publish("course.enrolled", json!({"n": n})).await["id"].clone());
    }
    receiver.wait_for(2, WAIT).await;
    app.stop().await;
    assert_eq!(
        receiver.received().len(),
        2,
        "only the two in flight were sent before stopping"
    );

    app.restart_with(|_| {}).await;
    let got = receiver.wait_for(6, WAIT).await;
    let arrived: HashSet<_> = got.iter().map(|m| m.json()["id"].clone()).collect();
    assert_eq!(arrived, published);
}

/// Publishes `chunks` batches of 1,000 events and answers their ids.
async fn publish_thousands(app: &TestApp, chunks: usize) -> HashSet<String> {
    let mut published = HashSet::new();
    for _ in 0..chunks {
        let batch: Vec<Value> = (0..1000)
            .map(|n| json!({"type": "course.enrolled", "data": {"n": n}}))
            .collect();
        let res = app
            .post("/v1/events/batch", json!({ "events": batch }))
            .await;
        assert_eq!(res.status, 202, "{:?}", res.body);
        for event in res.body["data"].as_array().expect("the events") {
            published.insert(event["id"].as_str().expect("an id").to_owned());
        }
    }
    published
}

#[tokio::test]
async fn deliveries_queued_beyond_a_webhooks_share_arrive_once_each_across_a_restart() {
    // Thousands of deliveries for one webhook, which may hold 1,024 in memory and take at most
    // 1,024 per claim: the rest wait in the database (on SQLite parked and read back by id in
    // several reads without a claim, on PostgreSQL pending for a claim). All of a first burst
    // must arrive without any restart; a graceful restart in the middle of a second gives back
    // whatever was not sent.
    let mut app = spawn_app_with(|c| {
        c.max_concurrency_per_webhook = 4;
        c.max_queued_per_webhook = 1024;
        c.claim_batch = 1024;
    })
    .await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(200).after(Duration::from_millis(2)));
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    // The whole test takes 13 s alone and 27-39 s beside three busy loops (debug build), so
    // its waits are long: they end as soon as the deliveries are in.
    let mut published = publish_thousands(&app, 4).await;
    receiver.wait_for(4000, Duration::from_secs(90)).await;

    published.extend(publish_thousands(&app, 2).await);
    receiver.wait_for(4300, WAIT).await;
    app.stop().await;
    assert!(
        receiver.received().len() < 6000,
        "the restart came too late to matter"
    );
    app.restart_with(|_| {}).await;
    let got = receiver.wait_for(6000, Duration::from_secs(90)).await;
    receiver
        .assert_stays_at(6000, Duration::from_millis(500))
        .await;
    let mut arrived = HashSet::new();
    for message in &got {
        let id = message.json()["id"].as_str().expect("an id").to_owned();
        assert!(arrived.insert(id.clone()), "{id} arrived twice");
    }
    assert_eq!(arrived, published);
}

/// A webhook on `hanging_events` whose receiver answers only after its 15 s timeout, and one on
/// `course.*` whose receiver answers at once.
async fn hanging_and_healthy(app: &TestApp, hanging_events: &str) -> (Receiver, Receiver) {
    let hanging = Receiver::start().await;
    hanging.always(Reply::status(200).after(Duration::from_secs(20)));
    let healthy = Receiver::start().await;
    app.create_webhook(
        json!({"url": hanging.url(), "events": [hanging_events], "timeout_ms": 15000}),
    )
    .await;
    app.create_webhook(json!({"url": healthy.url(), "events": ["course.*"]}))
        .await;
    (hanging, healthy)
}

#[tokio::test]
async fn a_hanging_receiver_does_not_delay_a_healthy_one() {
    let app = app_with_type().await;
    let (hanging, healthy) = hanging_and_healthy(&app, "course.*").await;
    let started = Instant::now();
    for n in 0..100 {
        app.publish("course.enrolled", json!({"n": n})).await;
    }
    healthy.wait_for(100, WAIT).await;
    // Every healthy delivery arrived while the hanging receiver still held its first requests:
    // nothing waited behind it.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "healthy deliveries waited for the hanging receiver"
    );
    assert!(!hanging.received().is_empty());
}

#[tokio::test]
async fn work_behind_a_saturated_webhooks_backlog_is_still_claimed() {
    let app = spawn_app_with(|c| {
        c.max_queued_per_webhook = 1024;
        c.claim_batch = 1024;
    })
    .await;
    app.register_type("course.enrolled").await;
    app.register_type("quiz.passed").await;
    let (_hanging, healthy) = hanging_and_healthy(&app, "quiz.*").await;
    // More due work of the hanging webhook than it may hold in memory (its share of 1,024 and
    // at most one claim batch of 1,024 beyond) plus the window a claim looks at while it is
    // saturated (4 × 1,024), all due before the healthy one's.
    let batch: Vec<Value> = (0..1000)
        .map(|n| json!({"type": "quiz.passed", "data": {"n": n}}))
        .collect();
    for _ in 0..8 {
        let res = app
            .post("/v1/events/batch", json!({ "events": batch }))
            .await;
        assert_eq!(res.status, 202, "{:?}", res.body);
    }
    let started = Instant::now();
    for n in 0..20 {
        app.publish("course.enrolled", json!({"n": n})).await;
    }
    healthy.wait_for(20, WAIT).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the healthy webhook's work waited behind the hanging one's backlog"
    );
}

#[tokio::test]
async fn concurrent_publishes_sharing_a_commit_each_get_their_own_answer() {
    // On SQLite, batches and single events published at once share one commit; each caller
    // must still be told about its own events: a webhook takes `course.*` and none `quiz.*`.
    let app = app_with_type().await;
    app.register_type("quiz.passed").await;
    let receiver = Receiver::start().await;
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let batch = |event_type: &str| {
        let events: Vec<Value> = (0..20)
            .map(|n| json!({"type": event_type, "data": {"n": n}}))
            .collect();
        json!({ "events": events })
    };
    let (course_a, quiz_a, course_b, quiz_b, single) = tokio::join!(
        app.post("/v1/events/batch", batch("course.enrolled")),
        app.post("/v1/events/batch", batch("quiz.passed")),
        app.post("/v1/events/batch", batch("course.enrolled")),
        app.post("/v1/events/batch", batch("quiz.passed")),
        app.post("/v1/events", json!({"type": "course.enrolled", "data": {}})),
    );
    let mut course_ids = HashSet::new();
    for (answer, event_type, deliveries) in [
        (&course_a, "course.enrolled", 1),
        (&quiz_a, "quiz.passed", 0),
        (&course_b, "course.enrolled", 1),
        (&quiz_b, "quiz.passed", 0),
    ] {
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        let events = answer.body["data"].as_array().expect("events");
        assert_eq!(events.len(), 20);
        for event in events {
            assert_eq!(event["type"], event_type);
            assert_eq!(event["deliveries"], deliveries, "{event}");
            if deliveries == 1 {
                course_ids.insert(event["id"].clone());
            }
        }
    }
    assert_eq!(single.status, 202, "{:?}", single.body);
    assert_eq!(single.body["deliveries"], 1);
    course_ids.insert(single.body["id"].clone());
    assert_eq!(course_ids.len(), 41);
    receiver
        .assert_received_exactly(&course_ids, WAIT, Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn a_batch_of_events_is_recorded_whole_or_not_at_all() {
    let app = app_with_type().await;
    let receiver = Receiver::start().await;
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let bad = app
        .post(
            "/v1/events/batch",
            json!({"events": [{"type": "course.enrolled", "data": {"n": 0}}, {"type": "course.unknown"}]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["code"], "unknown_event");
    assert_eq!(
        app.post("/v1/events/batch", json!({"events": []}))
            .await
            .body["code"],
        "invalid_batch"
    );
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"type": "course.enrolled"}))
        .collect();
    assert_eq!(
        app.post("/v1/events/batch", json!({"events": too_many}))
            .await
            .status,
        400
    );
    receiver
        .assert_stays_at(0, Duration::from_millis(300))
        .await;

    let events: Vec<Value> = (0..50)
        .map(|n| json!({"type": "course.enrolled", "data": {"n": n}}))
        .collect();
    let ok = app
        .post("/v1/events/batch", json!({"events": events}))
        .await;
    assert_eq!(ok.status, 202, "{:?}", ok.body);
    let ids: HashSet<_> = ok.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids.len(), 50);
    receiver
        .assert_received_exactly(&ids, WAIT, Duration::from_millis(300))
        .await;
}
