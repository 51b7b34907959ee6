//! `agora backup` (the real binary) against a server under publishing load, and a restore
//! from it as docs/operations.md describes: the copy and the secret key in a fresh data
//! directory.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::Row;
use tokio::net::TcpListener;
use tokio::process::Command;

use crate::helpers::{spawn_app_with, spawn_sqlite_app, Receiver};

/// Events acknowledged so far, with when each answer arrived.
type Acknowledged = Arc<Mutex<Vec<(String, Instant)>>>;

/// Publishes `load.tick` events one after another until `stop` is set.
async fn publish_until(
    client: reqwest::Client,
    url: String,
    key: String,
    acked: Acknowledged,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let answer = client
            .post(&url)
            .bearer_auth(&key)
            .json(&json!({"type": "load.tick", "data": {}}))
            .send()
            .await
            .expect("publish sent");
        assert_eq!(answer.status(), 202);
        let body: Value = answer.json().await.unwrap();
        let id = body["id"].as_str().unwrap().to_owned();
        acked.lock().unwrap().push((id, Instant::now()));
    }
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_acknowledged_event_and_sends_its_deliveries() {
    // A receiver that accepts connections and never answers: the original server's deliveries
    // all stay in flight or queued, so the restored server has to send every one of them.
    let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_addr = hung.local_addr().unwrap();
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = hung.accept().await {
            held.push(conn);
        }
    });

    let mut app = spawn_sqlite_app().await;
    app.register_type("load.tick").await;
    app.create_webhook(
        json!({"url": format!("http://{receiver_addr}/hook"), "events": ["load.*"]}),
    )
    .await;

    let acked = Acknowledged::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = tokio::spawn(publish_until(
        app.client.clone(),
        app.url("/v1/events"),
        app.key.clone(),
        acked.clone(),
        stop.clone(),
    ));
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let backup_dir = tempfile::tempdir().unwrap();
    let file = backup_dir.path().join("agora-backup.db");
    let began = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("backup")
        .arg(&file)
        .arg("--data-dir")
        .arg(&app.data_dir)
        .env_remove("AGORA_DATABASE_URL")
        .output()
        .await
        .expect("agora backup runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let during = acked.lock().unwrap().len();
    // Publishing went on while the copy was taken, and goes on a little after it.
    let went_on = Instant::now() + Duration::from_secs(5);
    while acked.lock().unwrap().len() < during + 50 && Instant::now() < went_on {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.await.unwrap();
    let before: HashSet<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(before.len() >= 200);

    // The original goes away with its receiver; a working receiver takes the same address.
    holding.abort();
    let _ = holding.await;
    app.stop().await;
    let receiver = Receiver::start_on(receiver_addr).await;

    // Restore: the copy as the database of a fresh data directory, with the secret key.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&file, restored.path().join("agora.db")).unwrap();
    std::fs::copy(
        app.data_dir.join("secret.key"),
        restored.path().join("secret.key"),
    )
    .unwrap();
    let restored_dir = restored.path().to_path_buf();
    let app = spawn_app_with(move |c| {
        c.data_dir = restored_dir;
        c.database_url = None;
        c.forum_name = Some("Restored".to_owned());
    })
    .await;

    let db = app.database().await;
    let stored: HashSet<String> = sqlx::query("SELECT id FROM events")
        .fetch_all(&db)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get("id"))
        .collect();
    db.close().await;
    let missing: Vec<_> = before.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} events acknowledged before the backup are missing from it, e.g. {:?}",
        missing.len(),
        missing.first()
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let arrived: HashSet<String> = receiver
            .received()
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap().to_owned())
            .collect();
        let undelivered = before.difference(&arrived).count();
        if undelivered == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{undelivered} of {} events never arrived from the restored server",
            before.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(receiver
        .received()
        .iter()
        .all(|r| r.header("x-agora-forum") == "Restored"));
}
