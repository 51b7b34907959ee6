//! The live stream, `GET /v1/stream`: live events as webhook bodies, resumption with
//! `Last-Event-ID` without gap or duplicate, abilities and filters, the slow consumer's final
//! message, and (with PostgreSQL) a stream on one node of events published on another.

use std::collections::HashSet;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::helpers::{make_key, postgres_schema, postgres_url, spawn_app, spawn_app_with, TestApp};

const WAIT: Duration = Duration::from_secs(10);

/// An open stream: its events, read as they arrive by a task of their own.
pub struct Stream {
    events: mpsc::UnboundedReceiver<Event>,
}

impl Stream {
    /// Opens `GET /v1/stream?{query}` as `key`, after `last` when given; answers the refusal
    /// (status and body) when it is not 200.
    pub async fn open(
        app: &TestApp,
        key: &str,
        query: &str,
        last: Option<&str>,
    ) -> Result<Self, (u16, Value)> {
        let mut request = app
            .client
            .get(app.url(&format!("/v1/stream?{query}")))
            .bearer_auth(key);
        if let Some(id) = last {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        if status != 200 {
            return Err((status, response.json().await.unwrap_or(Value::Null)));
        }
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an SSE answer"
        );
        let chunks = futures_util::stream::unfold(response, |mut r| async move {
            match r.chunk().await {
                Ok(Some(c)) => Some((Ok::<_, reqwest::Error>(c), r)),
                _ => None,
            }
        });
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut parsed = Box::pin(chunks.eventsource());
            while let Some(Ok(event)) = parsed.next().await {
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Ok(Self { events })
    }

    /// The next event; panics after [`WAIT`].
    pub async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event within the wait")
            .expect("the stream is still open")
    }

    /// Whether the stream ended (within [`WAIT`]) with nothing more.
    pub async fn ended(&mut self) -> bool {
        matches!(
            tokio::time::timeout(WAIT, self.events.recv()).await,
            Ok(None)
        )
    }

    /// Asserts nothing arrives for a moment.
    pub async fn quiet(&mut self) {
        let more = tokio::time::timeout(Duration::from_millis(400), self.events.recv()).await;
        assert!(more.is_err(), "unexpected event: {more:?}");
    }
}

/// Opens a stream as the app's admin key, asserting 200.
async fn open(app: &TestApp, query: &str, last: Option<&str>) -> Stream {
    match Stream::open(app, &app.key, query, last).await {
        Ok(stream) => stream,
        Err(refused) => panic!("stream refused: {refused:?}"),
    }
}

#[tokio::test]
async fn a_stream_carries_new_events_as_their_webhook_bodies() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    app.register_type("billing.paid").await;
    let before = app
        .publish("course.enrolled", json!({"before": true}))
        .await;
    let mut stream = open(&app, "events=course.*", None).await;
    let mut published = Vec::new();
    for i in 0..3 {
        app.publish("billing.paid", json!({"i": i})).await;
        published.push(app.publish("course.enrolled", json!({"i": i})).await);
    }
    for p in &published {
        let mut event = stream.next().await;
        // On PostgreSQL a stream opened while other transactions run starts at the last event
        // certain to be final, so an event committed just before may come first.
        if event.id == before["id"] && p == &published[0] {
            event = stream.next().await;
        }
        let id = p["id"].as_str().unwrap();
        assert_eq!(event.id, id);
        assert_eq!(event.event, "course.enrolled");
        let stored = app.get(&format!("/v1/events/{id}")).await;
        assert_eq!(event.data, stored.body["body"].as_str().unwrap());
    }
    stream.quiet().await;
}

#[tokio::test]
async fn a_stream_resumes_after_last_event_id_without_gap_or_duplicate() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let mut stream = open(&app, "events=course.enrolled", None).await;
    let first = app.publish("course.enrolled", json!({"i": 0})).await;
    let seen = stream.next().await;
    assert_eq!(seen.id, first["id"]);
    drop(stream);

    let mut missed = Vec::new();
    for i in 1..=3 {
        missed.push(app.publish("course.enrolled", json!({"i": i})).await["id"].clone());
    }
    let mut resumed = open(&app, "events=course.enrolled", Some(&seen.id)).await;
    for id in &missed {
        assert_eq!(resumed.next().await.id, id.as_str().unwrap());
    }
    let live = app.publish("course.enrolled", json!({"i": 4})).await;
    assert_eq!(resumed.next().await.id, live["id"]);
    resumed.quiet().await;

    // The parameter does the same for clients that cannot send the header.
    let mut by_param = open(
        &app,
        &format!("events=course.enrolled&last_event_id={}", seen.id),
        None,
    )
    .await;
    assert_eq!(by_param.next().await.id, missed[0].as_str().unwrap());

    let unknown = Stream::open(
        &app,
        &app.key,
        "events=course.enrolled",
        Some("evt_01JD8X3ZQ4T9M2K7C5B6N8P0RS"),
    )
    .await;
    let Err((400, body)) = unknown else {
        panic!("an unknown Last-Event-ID is refused");
    };
    assert_eq!(body["code"], "unknown_last_event_id");
}

#[tokio::test]
async fn concurrent_publishes_each_reach_a_stream_once() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let mut stream = open(&app, "events=course.*", None).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (client, url, key) = (app.client.clone(), app.url("/v1/events"), app.key.clone());
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"type": "course.enrolled", "data": {"i": i}}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 202);
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }));
    }
    let mut published = HashSet::new();
    for t in tasks {
        published.insert(t.await.unwrap());
    }
    let mut got = HashSet::new();
    for _ in 0..published.len() {
        assert!(got.insert(stream.next().await.id), "no duplicate");
    }
    assert_eq!(got, published);
    stream.quiet().await;
}

#[tokio::test]
async fn a_stream_sends_only_what_the_key_may_read_and_asked_for() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let (_, custom_reader) = make_key(&app, json!(["events:read"])).await;
    let (_, alice) = make_key(&app, json!(["webhooks:write"])).await;
    let (_, mallory) = make_key(&app, json!(["webhooks:write"])).await;

    for (key, query, status, code) in [
        (custom_reader.as_str(), "events=thread.*", 403, "forbidden"),
        (custom_reader.as_str(), "events=*", 403, "forbidden"),
        (
            custom_reader.as_str(),
            "events=nope.*",
            400,
            "unknown_event",
        ),
        (
            custom_reader.as_str(),
            "events=Thread",
            400,
            "invalid_events",
        ),
        (custom_reader.as_str(), "", 400, "invalid_events"),
        (
            custom_reader.as_str(),
            "events=course.*&colour=blue",
            400,
            "invalid_query",
        ),
        ("agora_wrong_key", "events=course.*", 401, "unauthorized"),
    ] {
        match Stream::open(&app, key, query, None).await {
            Ok(_) => panic!("{query} was accepted"),
            Err((s, body)) => {
                assert_eq!(s, status, "{query}: {body:?}");
                assert_eq!(body["code"], code, "{query}: {body:?}");
            }
        }
    }

    let mut custom = Stream::open(&app, &custom_reader, "events=course.*", None)
        .await
        .unwrap();
    let mut alices = Stream::open(&app, &alice, "events=webhook.*", None)
        .await
        .unwrap();
    let receiver = crate::helpers::Receiver::start().await;
    let hook_of = |key: &str| {
        let (key, url, app) = (key.to_owned(), receiver.url(), &app);
        async move {
            let a = app
                .request_as(
                    &key,
                    "POST",
                    "/v1/webhooks",
                    Some(json!({"url": url, "events": ["webhook.*"]})),
                )
                .await;
            assert_eq!(a.status, 201, "{:?}", a.body);
            a.body["id"].as_str().unwrap().to_owned()
        }
    };
    let (hers, his) = (hook_of(&alice).await, hook_of(&mallory).await);
    let test = |key: &str, hook: &str| {
        let (key, path, app) = (key.to_owned(), format!("/v1/webhooks/{hook}/test"), &app);
        async move {
            let a = app.request_as(&key, "POST", &path, None).await;
            assert_eq!(a.status, 200, "{:?}", a.body);
            a.body["event_id"].as_str().unwrap().to_owned()
        }
    };
    test(&mallory, &his).await;
    let her_test = test(&alice, &hers).await;
    let course = app.publish("course.enrolled", json!({})).await;

    let created = alices.next().await;
    assert_eq!(created.event, "webhook.created");
    let created: Value = serde_json::from_str(&created.data).unwrap();
    assert_eq!(created["data"]["id"], hers.as_str(), "her own webhook only");
    let got = alices.next().await;
    assert_eq!(got.id, her_test, "only her own operational events");
    assert_eq!(got.event, "webhook.test");
    alices.quiet().await;
    assert_eq!(custom.next().await.id, course["id"]);
    custom.quiet().await;
}

#[tokio::test]
async fn a_slow_consumer_gets_a_final_error_and_resumes_from_the_store() {
    let app = spawn_app_with(|c| c.stream_buffer = 4).await;
    app.register_type("course.enrolled").await;
    let mut stream = open(&app, "events=course.*", None).await;
    let first = app.publish("course.enrolled", json!({"i": -1})).await;
    assert_eq!(stream.next().await.id, first["id"]);

    // One batch is read by the hub at once, far past the buffer of 4.
    let batch: Vec<Value> = (0..600)
        .map(|i| json!({"type": "course.enrolled", "data": {"i": i}}))
        .collect();
    let a = app.post("/v1/events/batch", json!({"events": batch})).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let published: Vec<String> = a.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();

    let mut last = first["id"].as_str().unwrap().to_owned();
    let error = loop {
        let event = stream.next().await;
        if event.event == "error" {
            break event;
        }
        last = event.id;
    };
    let message: Value = serde_json::from_str(&error.data).unwrap();
    assert_eq!(message["code"], "too_slow", "{message}");
    assert!(message["message"]
        .as_str()
        .unwrap()
        .contains("Last-Event-ID"));
    assert!(stream.ended().await, "the stream closes after its error");

    let mut resumed = open(&app, "events=course.*", Some(&last)).await;
    let from = published
        .iter()
        .position(|id| *id == last)
        .map_or(0, |i| i + 1);
    for id in &published[from..] {
        assert_eq!(&resumed.next().await.id, id);
    }
}

#[tokio::test]
async fn events_published_on_one_node_reach_a_stream_on_another() {
    if postgres_url().is_none() {
        eprintln!("skipped: AGORA_TEST_POSTGRES_URL is not set");
        return;
    }
    let url = postgres_schema().await;
    let secret_key = "5e".repeat(32);
    let node = |url: String, key: String| {
        spawn_app_with(move |c| {
            c.database_url = Some(url);
            c.secret_key = Some(key.into());
        })
    };
    let a = node(url.clone(), secret_key.clone()).await;
    let b = node(url, secret_key).await;
    a.register_type("course.enrolled").await;
    let mut on_b = open(&b, "events=course.*", None).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(a.publish("course.enrolled", json!({"i": i})).await["id"].clone());
    }
    for id in ids {
        assert_eq!(on_b.next().await.id, id.as_str().unwrap());
    }
}
