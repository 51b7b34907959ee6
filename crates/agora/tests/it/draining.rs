//! Draining on SIGTERM, on the real binary: `/readyz` answers 503 first while every request
//! is still served, then the process stops, finishing what it was doing, and exits 0.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{client_for, Receiver, Reply};
use crate::process::ServerProcess;

#[tokio::test]
async fn sigterm_drains_readiness_first_then_finishes_the_attempt_in_flight_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[("AGORA_DRAIN_SECONDS", "3")]).await;
    let app = client_for(server.addr);
    assert_eq!(app.get("/readyz").await.status, 200);
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    // Answered after the drain period: the attempt is in flight when the node stops accepting.
    receiver.script([Reply::status(200).after(Duration::from_millis(3500))]);
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.publish("course.enrolled", json!({"n": 1})).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;

    server.send_signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let ready = app.get("/readyz").await;
        if ready.status == 503 {
            assert_eq!(ready.body["code"], "draining", "{:?}", ready.body);
            break;
        }
        assert!(Instant::now() < deadline, "readyz never answered 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.get("/healthz").await.status,
        200,
        "still serving while draining"
    );
    let listed = app
        .get(&format!("/v1/webhooks/{}", hook["id"].as_str().unwrap()))
        .await;
    assert_eq!(listed.status, 200, "the API answers while draining");

    assert!(server.wait_exit().await, "the process exits 0");
    assert!(
        app.client.get(app.url("/healthz")).send().await.is_err(),
        "nothing listens once it has stopped"
    );

    // The attempt that was in flight finished and was recorded: after a restart the delivery
    // is succeeded and nothing is sent again.
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let app = client_for(server.addr);
    let deliveries = app
        .get(&format!(
            "/v1/webhooks/{}/deliveries",
            hook["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        deliveries.body["data"][0]["status"], "succeeded",
        "{:?}",
        deliveries.body
    );
    receiver
        .assert_stays_at(1, Duration::from_millis(500))
        .await;
    assert!(server.terminate().await);
}
