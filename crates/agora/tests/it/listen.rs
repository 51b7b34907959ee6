//! `agora listen` as a user runs it: the real binary follows a real server's stream and
//! forwards each event, signed with the secret it printed, to a local receiver; the server is
//! killed and restarted midway and no event is lost.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

use crate::helpers::{client_for, Receiver, ADMIN_KEY};
use crate::process::ServerProcess;
use crate::signatures::verify_standard;

const WAIT: Duration = Duration::from_secs(20);

/// The next line `agora listen` printed.
async fn line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line within the wait")
        .expect("stdout readable")
        .expect("agora listen still runs")
}

#[tokio::test]
async fn listen_forwards_signed_events_and_loses_none_across_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]).await;
    let app = client_for(server.addr);
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;

    let mut listen = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args([
            "listen",
            "--server",
            &format!("http://{}", server.addr),
            "--key",
            ADMIN_KEY,
            "--forward-to",
            &receiver.url(),
            "--events",
            "course.*",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agora listen starts");
    let mut lines = BufReader::new(listen.stdout.take().unwrap()).lines();
    let ready = line(&mut lines).await;
    let secret = ready
        .split_whitespace()
        .find(|w| w.starts_with("whsec_"))
        .unwrap_or_else(|| panic!("no secret printed: {ready}"))
        .to_owned();
    // The stream is open once an event published now arrives; events published before it
    // opened are not its to forward.
    let deadline = tokio::time::Instant::now() + WAIT;
    while receiver.received().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "nothing forwarded");
        app.publish("course.enrolled", json!({"warm": true})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warm = receiver.received().len();
    let mut published = Vec::new();
    for i in 0..3 {
        published.push(app.publish("course.enrolled", json!({"i": i})).await);
    }
    receiver.wait_for(warm + published.len(), WAIT).await;

    server.restart().await;
    // Published before `listen` has reconnected: replayed after Last-Event-ID.
    for i in 3..6 {
        published.push(app.publish("course.enrolled", json!({"i": i})).await);
    }
    receiver.wait_for(warm + published.len(), WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = receiver.received();
    assert_eq!(
        got.len(),
        warm + published.len(),
        "no event forwarded twice"
    );

    let ids: Vec<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    let expected: Vec<String> = published
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids[warm..], expected[..], "in order, none lost");
    for r in &got {
        assert!(
            verify_standard(&secret, r),
            "signed with the printed secret"
        );
        assert_eq!(r.header("x-agora-event"), "course.enrolled");
        let stored = app
            .get(&format!("/v1/events/{}", r.header("webhook-id")))
            .await;
        assert_eq!(
            stored.body["body"].as_str().unwrap().as_bytes(),
            &r.body[..]
        );
    }
    let mut printed = 0;
    while printed < got.len() {
        let l = line(&mut lines).await;
        if l.contains("course.enrolled") {
            assert!(l.contains("200"), "{l}");
            assert!(l.contains(&ids[printed]), "{l}");
            printed += 1;
        }
    }
    listen.kill().await.unwrap();
}
