//! The event history: `GET /v1/events` (filters, cursor pages) and `GET /v1/events/{id}` (the
//! exact body a receiver got, and the deliveries the caller may see), and who sees what.

use std::time::Duration;

use serde_json::{json, Value};

use crate::forum::support::{category, login, thread, user};
use crate::helpers::{make_key, spawn_app, Receiver, Reply, TestApp};

const WAIT: Duration = Duration::from_secs(10);

/// The ids of a page's events, in order.
fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of `path` (which has a `?`) as `key`, following `next_cursor`.
async fn all_pages(app: &TestApp, key: &str, path: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let a = app.request_as(key, "GET", &url, None).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        seen.extend(ids(&a.body));
        match a.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn history_lists_newest_first_with_filters_and_cursor_pages() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    app.register_type("course.left").await;
    let mut enrolled = Vec::new();
    for i in 0..5 {
        enrolled.push(app.publish("course.enrolled", json!({"i": i})).await["id"].clone());
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let middle = agora_core::time::to_rfc3339(agora_core::time::now_ms());
    tokio::time::sleep(Duration::from_millis(5)).await;
    let left = app.publish("course.left", json!({})).await["id"].clone();

    let mut newest_first: Vec<String> = enrolled
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    newest_first.reverse();
    let by_type = all_pages(&app, &app.key, "/v1/events?type=course.enrolled&limit=2").await;
    assert_eq!(by_type, newest_first);

    let first = app.get("/v1/events?type=course.enrolled&limit=2").await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["data"][0]["type"], "course.enrolled");
    assert_eq!(first.body["data"][0]["data"], json!({"i": 4}));
    assert!(first.body["data"][0]["timestamp"].is_string());
    assert!(first.body["next_cursor"].is_string());

    let by_pattern = all_pages(&app, &app.key, "/v1/events?pattern=course.*&limit=250").await;
    assert_eq!(by_pattern.len(), 6);
    assert_eq!(by_pattern[0], left.as_str().unwrap());

    let since = all_pages(
        &app,
        &app.key,
        &format!("/v1/events?pattern=course.*&since={middle}"),
    )
    .await;
    assert_eq!(since, vec![left.as_str().unwrap().to_owned()]);
    let until = all_pages(
        &app,
        &app.key,
        &format!("/v1/events?pattern=course.*&until={middle}"),
    )
    .await;
    assert_eq!(until, newest_first);

    for (query, code) in [
        ("since=yesterday", "invalid_time"),
        ("until=2024-13-01T00:00:00Z", "invalid_time"),
        ("type=Course", "invalid_event"),
        ("pattern=course", "invalid_pattern"),
        ("limit=0", "invalid_limit"),
        ("limit=251", "invalid_limit"),
    ] {
        let a = app.get(&format!("/v1/events?{query}")).await;
        assert_eq!(a.status, 400, "{query}: {:?}", a.body);
        assert_eq!(a.body["code"], code, "{query}: {:?}", a.body);
    }
    let a = app.get("/v1/events?colour=blue").await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(app.get("/v1/events/evt_nope").await.status, 404);
    assert_eq!(
        app.get("/v1/events/wh_01JD8X3ZQ4T9M2K7C5B6N8P0RS")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn an_event_reads_back_with_the_exact_body_its_receivers_got() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let (json_receiver, slack_receiver) = (Receiver::start().await, Receiver::start().await);
    app.create_webhook(json!({"url": json_receiver.url(), "events": ["course.*"]}))
        .await;
    app.create_webhook(
        json!({"url": slack_receiver.url(), "events": ["course.*"], "format": "slack"}),
    )
    .await;
    let published = app
        .publish(
            "course.enrolled",
            json!({"name": "Ada", "score": 1.5e3, "tags": ["a"]}),
        )
        .await;
    let id = published["id"].as_str().unwrap();
    let got = json_receiver.wait_for(1, WAIT).await;
    let slack = slack_receiver.wait_for(1, WAIT).await;

    let event = app.get(&format!("/v1/events/{id}")).await;
    assert_eq!(event.status, 200, "{:?}", event.body);
    assert_eq!(
        event.body["body"].as_str().unwrap().as_bytes(),
        &got[0].body[..],
        "the stored body is the signed one, byte for byte"
    );
    assert_eq!(event.body["type"], "course.enrolled");
    let deliveries = event.body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    for d in deliveries {
        assert_eq!(d["event_id"], id);
        let detail = app
            .wait_for_delivery_status(d["id"].as_str().unwrap(), "succeeded")
            .await;
        let sent_to = if got[0].header("webhook-id") == d["id"] {
            &got[0]
        } else {
            assert_eq!(slack[0].header("webhook-id"), d["id"]);
            &slack[0]
        };
        assert_eq!(
            detail["body"].as_str().unwrap().as_bytes(),
            &sent_to.body[..],
            "a delivery shows the body its attempts signed"
        );
    }
}

#[tokio::test]
async fn reads_honour_abilities_and_ownership() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let (_, alice) = make_key(
        &app,
        json!(["webhooks:write", "events:read", "threads:read"]),
    )
    .await;
    let (_, mallory) = make_key(&app, json!(["webhooks:write", "events:read"])).await;
    let (_, threads_only) = make_key(&app, json!(["threads:read"])).await;

    let (alices, admins) = (Receiver::start().await, Receiver::start().await);
    alices.always(Reply::status(200));
    let hook = app
        .request_as(
            &alice,
            "POST",
            "/v1/webhooks",
            Some(json!({"url": alices.url(), "events": ["course.*"]})),
        )
        .await;
    assert_eq!(hook.status, 201, "{:?}", hook.body);
    app.create_webhook(json!({"url": admins.url(), "events": ["course.*"]}))
        .await;
    let course = app.publish("course.enrolled", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let author = user(&app, "ada").await;
    thread(&app, &category(&app, "General").await, &author, &[]).await;
    let tested = app
        .request_as(
            &alice,
            "POST",
            &format!("/v1/webhooks/{}/test", hook.body["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(tested.status, 200, "{:?}", tested.body);
    let test_event = tested.body["event_id"].as_str().unwrap().to_owned();

    let listed = |key: &str| {
        let key = key.to_owned();
        let app = &app;
        async move { all_pages(app, &key, "/v1/events?limit=250").await }
    };
    let types_of = |ids: &[String], app_events: &[(String, &str)]| -> Vec<String> {
        ids.iter()
            .filter_map(|id| {
                app_events
                    .iter()
                    .find(|(e, _)| e == id)
                    .map(|(_, t)| t.to_string())
            })
            .collect()
    };
    let thread_event = all_pages(&app, &app.key, "/v1/events?type=thread.created")
        .await
        .pop()
        .unwrap();
    let known = [
        (course.clone(), "course"),
        (thread_event.clone(), "thread"),
        (test_event.clone(), "test"),
    ];
    let by_admin = listed(&app.key).await;
    assert_eq!(types_of(&by_admin, &known), ["test", "thread", "course"]);
    let by_alice = listed(&alice).await;
    assert_eq!(types_of(&by_alice, &known), ["test", "thread", "course"]);
    let by_mallory = listed(&mallory).await;
    assert_eq!(
        types_of(&by_mallory, &known),
        ["course"],
        "another key's operational events and thread events without threads:read stay hidden"
    );
    let by_threads = listed(&threads_only).await;
    assert_eq!(types_of(&by_threads, &known), ["thread"]);
    assert!(by_threads.iter().all(|id| id != &course));

    for (key, id) in [
        (&mallory, &test_event),
        (&mallory, &thread_event),
        (&threads_only, &course),
    ] {
        let a = app
            .request_as(key, "GET", &format!("/v1/events/{id}"), None)
            .await;
        assert_eq!(a.status, 404, "{:?}", a.body);
    }
    let a = app
        .request_as(&alice, "GET", &format!("/v1/events/{test_event}"), None)
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    alices.wait_for(2, WAIT).await;
    admins.wait_for(1, WAIT).await;
    let deliveries = |a: &crate::helpers::Answer| -> Vec<String> {
        a.body["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["webhook_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let as_alice = app
        .request_as(&alice, "GET", &format!("/v1/events/{course}"), None)
        .await;
    assert_eq!(deliveries(&as_alice), [hook.body["id"].as_str().unwrap()]);
    let as_mallory = app
        .request_as(&mallory, "GET", &format!("/v1/events/{course}"), None)
        .await;
    assert_eq!(as_mallory.status, 200);
    assert!(deliveries(&as_mallory).is_empty(), "{:?}", as_mallory.body);
    let as_admin = app.get(&format!("/v1/events/{course}")).await;
    assert_eq!(deliveries(&as_admin).len(), 2);

    // Events are an integration's, as webhooks are: a user session reads none.
    let session = login(&app, "ada").await;
    for path in [
        "/v1/events".to_owned(),
        format!("/v1/events/{thread_event}"),
        "/v1/stream?events=thread.*".to_owned(),
    ] {
        let a = app.request_as(&session, "GET", &path, None).await;
        assert_eq!(a.status, 403, "{path}: {:?}", a.body);
        assert_eq!(a.body["code"], "forbidden");
    }
}
