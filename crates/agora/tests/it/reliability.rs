//! Reliability under faults: receiver outages, circuit breaking, auto-disable, retention,
//! storage that cannot be written, graceful shutdown.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Receiver, Reply, TestApp};
use crate::process::{free_addr, ServerProcess};

const WAIT: Duration = Duration::from_secs(15);

async fn deliveries(app: &TestApp, webhook_id: &str, query: &str) -> Vec<Value> {
    let a = app
        .get(&format!(
            "/v1/webhooks/{webhook_id}/deliveries?limit=250{query}"
        ))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body["data"].as_array().unwrap().clone()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn everything_arrives_after_a_receiver_outage_on_schedule() {
    let app = spawn_app_with(|c| c.breaker_threshold = 100).await;
    app.register_type("course.enrolled").await;
    let addr = free_addr();
    let hook = app
        .create_webhook(json!({"url": format!("http://{addr}/hook"), "events": ["course.*"]}))
        .await;
    let id = hook["id"].as_str().unwrap();
    let mut published = HashSet::new();
    for n in 0..5 {
        published.insert(app.publish("course.enrolled", json!({"n": n})).await["id"].clone());
    }
    // Down: connections are refused while the first attempts and retries fail. `attempts`
    // counts an attempt from its claim, so a delivery is waited for until its second attempt
    // is recorded as failed, not merely under way.
    eventually("the first retries failed", || async {
        deliveries(&app, id, "")
            .await
            .iter()
            .all(|d| d["attempts"].as_i64() >= Some(2) && d["status"] == "failed")
    })
    .await;
    let receiver = Receiver::start_on(addr).await;
    let got = receiver.wait_for(5, WAIT).await;
    let arrived: HashSet<_> = got.iter().map(|m| m.json()["id"].clone()).collect();
    assert_eq!(arrived, published);

    let schedule = [200, 400, 800];
    for d in deliveries(&app, id, "").await {
        let detail = app
            .wait_for_delivery_status(d["id"].as_str().unwrap(), "succeeded")
            .await;
        let starts: Vec<i64> = detail["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| agora_core::time::parse_rfc3339(a["started_at"].as_str().unwrap()).unwrap())
            .collect();
        assert!(starts.len() >= 3, "{detail}");
        for (i, pair) in starts.windows(2).enumerate() {
            let wanted = schedule[i.min(2)];
            assert!(
                pair[1] - pair[0] >= wanted - 20,
                "retry {} after {} ms, schedule says {wanted}",
                i + 1,
                pair[1] - pair[0]
            );
        }
        let last = detail["attempts"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["response_status"], 200);
        assert!(detail["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("connection"));
    }
}

#[tokio::test]
async fn a_dead_endpoint_is_probed_not_hammered_and_its_neighbour_is_unaffected() {
    let app = spawn_app_with(|c| {
        c.breaker_threshold = 3;
        c.breaker_cooldown = "1s".parse().unwrap();
        c.max_concurrency_per_webhook = 4;
    })
    .await;
    app.register_type("course.enrolled").await;
    let dead = Receiver::start().await;
    dead.always(Reply::status(503));
    let healthy = Receiver::start().await;
    app.create_webhook(json!({"url": dead.url(), "events": ["course.*"]}))
        .await;
    app.create_webhook(json!({"url": healthy.url(), "events": ["course.*"]}))
        .await;

    let started = Instant::now();
    for n in 0..50 {
        app.publish("course.enrolled", json!({"n": n})).await;
    }
    let got = healthy.wait_for(50, WAIT).await;
    let healthy_done = got.last().unwrap().at - started;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let hits = dead.received().len();
    // Without a breaker: 50 first attempts plus their retries every few hundred ms. With it: the
    // first concurrent burst, then about one probe per second.
    assert!(hits < 20, "the dead endpoint got {hits} requests");
    assert!(
        healthy_done < Duration::from_secs(5),
        "healthy deliveries took {healthy_done:?}"
    );

    // When the endpoint comes back, a probe closes the breaker and every event arrives.
    dead.always(Reply::status(200));
    let mut seen = HashSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 50 {
        assert!(
            Instant::now() < deadline,
            "only {} of 50 arrived after recovery",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = dead
            .received()
            .iter()
            .map(|m| m.json()["id"].clone())
            .collect();
    }
}

#[tokio::test]
async fn a_webhook_failing_for_too_long_is_disabled_announced_and_recoverable() {
    let app = spawn_app_with(|c| {
        c.auto_disable_failures = 3;
        c.auto_disable_after = "0s".parse().unwrap();
        c.breaker_threshold = 100;
    })
    .await;
    app.register_type("course.enrolled").await;
    let failing = Receiver::start().await;
    failing.always(Reply::status(500));
    let watcher = Receiver::start().await;
    let hook = app
        .create_webhook(json!({"url": failing.url(), "events": ["course.*"]}))
        .await;
    let id = hook["id"].as_str().unwrap();
    app.create_webhook(json!({"url": watcher.url(), "events": ["webhook.disabled"]}))
        .await;
    let since = agora_core::time::to_rfc3339(agora_core::time::now_ms() - 1000);
    app.publish("course.enrolled", json!({"n": 1})).await;

    let announced = watcher.wait_for(1, WAIT).await;
    assert_eq!(announced[0].header("x-agora-event"), "webhook.disabled");
    let data = announced[0].json()["data"].clone();
    assert_eq!(data["id"], id);
    assert_eq!(data["status"], "inactive");
    assert!(data["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("3 or more failed attempts"));
    assert!(data.get("secret").is_none());
    let webhook = app.get(&format!("/v1/webhooks/{id}")).await.body;
    assert_eq!(webhook["status"], "inactive");
    let attempts_when_disabled = failing.received().len();
    assert_eq!(
        app.publish("course.enrolled", json!({"n": 2})).await["deliveries"],
        0
    );
    failing
        .assert_stays_at(attempts_when_disabled, Duration::from_millis(600))
        .await;
    watcher.assert_stays_at(1, Duration::ZERO).await;

    let enabled = app
        .patch(&format!("/v1/webhooks/{id}"), json!({"status": "active"}))
        .await;
    assert_eq!(enabled.body["status"], "active");
    assert!(enabled.body["disabled_reason"].is_null());
    failing.always(Reply::status(200));
    let recovered = app
        .post(
            &format!("/v1/webhooks/{id}/recover"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(recovered.body["recovered"], 1);
    let got = failing.wait_for(attempts_when_disabled + 1, WAIT).await;
    assert_eq!(got.last().unwrap().json()["data"]["n"], 1);
}

#[tokio::test]
async fn old_records_are_pruned_but_unfinished_work_is_kept() {
    let app = spawn_app_with(|c| {
        c.retention = "1s".parse().unwrap();
        c.retention_interval = "200ms".parse().unwrap();
        c.retry_schedule = "1h".parse().unwrap();
    })
    .await;
    app.register_type("course.enrolled").await;
    let ok = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.always(Reply::status(500));
    let ok_hook = app
        .create_webhook(json!({"url": ok.url(), "events": ["course.*"]}))
        .await;
    let failing_hook = app
        .create_webhook(json!({"url": failing.url(), "events": ["course.*"]}))
        .await;
    app.publish("course.enrolled", json!({})).await;
    ok.wait_for(1, WAIT).await;
    failing.wait_for(1, WAIT).await;
    let done = deliveries(&app, ok_hook["id"].as_str().unwrap(), "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let retrying = deliveries(&app, failing_hook["id"].as_str().unwrap(), "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_delivery_status(&done, "succeeded").await;
    app.wait_for_delivery_status(&retrying, "failed").await;
    eventually("the finished delivery was pruned", || async {
        app.get(&format!("/v1/deliveries/{done}")).await.status == 404
    })
    .await;
    let kept = app.get(&format!("/v1/deliveries/{retrying}")).await;
    assert_eq!(
        kept.status, 200,
        "a delivery still retrying is never pruned"
    );
    assert_eq!(kept.body["status"], "failed");
}

#[tokio::test]
async fn a_locked_database_answers_503_changes_nothing_and_recovers() {
    use sqlx::{Connection, Executor};
    let app = spawn_app_with(|c| c.sqlite_busy_timeout = "200ms".parse().unwrap()).await;
    if app.config.database_url.is_some() {
        eprintln!("skipped: the lock test is about SQLite");
        return;
    }
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(200).after(Duration::from_millis(800))]);
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.publish("course.enrolled", json!({"n": 0})).await;
    receiver.wait_for(1, WAIT).await;

    // Another process takes the write lock while that attempt is in flight.
    let url = format!("sqlite://{}", app.data_dir.join("agora.db").display());
    let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    locker.execute("BEGIN IMMEDIATE").await.unwrap();

    let refused = app
        .post(
            "/v1/webhooks",
            json!({"url": receiver.url(), "events": ["course.*"]}),
        )
        .await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.body["code"], "storage_unavailable");
    let refused = app
        .post(
            "/v1/events",
            json!({"type": "course.enrolled", "data": {"n": 1}}),
        )
        .await;
    assert_eq!(refused.status, 503);
    assert_eq!(
        app.get("/v1/webhooks").await.status,
        200,
        "reads still work"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    locker.execute("ROLLBACK").await.unwrap();
    drop(locker);
    // The attempt made during the outage is recorded once storage is back, not repeated.
    let id = hook["id"].as_str().unwrap();
    let first = deliveries(&app, id, "").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_delivery_status(&first, "succeeded").await;
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(
        app.get("/v1/webhooks").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.publish("course.enrolled", json!({"n": 2})).await;
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(
        got[1].json()["data"]["n"],
        2,
        "the refused event was never recorded"
    );
}

#[tokio::test]
async fn sigterm_lets_attempts_in_flight_finish_and_a_restart_carries_on() {
    stop_gracefully_and_carry_on("TERM").await;
}

#[tokio::test]
async fn sigint_lets_attempts_in_flight_finish_and_a_restart_carries_on() {
    stop_gracefully_and_carry_on("INT").await;
}

async fn stop_gracefully_and_carry_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        ServerProcess::start(dir.path(), &[("AGORA_MAX_CONCURRENCY_PER_WEBHOOK", "2")]).await;
    let app = crate::helpers::client_for(server.addr);
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(200).after(Duration::from_millis(700)));
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let mut published = HashSet::new();
    for n in 0..5 {
        published.insert(app.publish("course.enrolled", json!({"n": n})).await["id"].clone());
    }
    receiver.wait_for(2, WAIT).await;
    assert!(server.signal(signal).await, "exit status after SIG{signal}");
    assert_eq!(
        receiver.received().len(),
        2,
        "nothing new is started after SIG{signal}"
    );

    receiver.always(Reply::status(200));
    server.restart().await;
    let app = crate::helpers::client_for(server.addr);
    receiver
        .assert_received_exactly(&published, WAIT, Duration::from_millis(500))
        .await;
    assert_eq!(app.get("/healthz").await.status, 200);
}

/// A tmpfs of a few MiB, unmounted when dropped; `None` where mounting is not allowed.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_changes_nothing_and_recovers() {
    let Some(disk) = SmallDisk::mount("8m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data_dir = disk.path.join("data");
    let mut app = spawn_app_with(|c| {
        c.data_dir = data_dir.clone();
        c.database_url = None;
    })
    .await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;

    // The write-ahead log keeps the size it grew to and is written again from its start after
    // a checkpoint, so a log the migrations grew could take the batch without a new byte of
    // disk. Truncated, it starts empty.
    let url = format!("sqlite://{}?mode=rw", data_dir.join("agora.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&pool)
            .await
            .unwrap();
        if busy == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the log could not be truncated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close().await;

    // Fill the disk to the last byte.
    let filler = disk.path.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
    }
    let batch = |tag: &str| {
        let events: Vec<Value> = (0..400)
            .map(|n| json!({"type": "course.enrolled", "data": {"batch": tag, "n": n, "pad": "x".repeat(2000)}}))
            .collect();
        json!({ "events": events })
    };
    let refused = app.post("/v1/events/batch", batch("refused")).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.body["code"], "storage_unavailable");

    std::fs::remove_file(&filler).unwrap();
    let accepted = app.post("/v1/events/batch", batch("accepted")).await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let got = receiver.wait_for(400, WAIT).await;
    assert!(
        got.iter().all(|m| m.json()["data"]["batch"] == "accepted"),
        "the refused batch left nothing"
    );
    receiver
        .assert_stays_at(400, Duration::from_millis(500))
        .await;
    app.stop().await;
}
