//! What an operator sees: the log lines of failing deliveries, requests and start-up.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Receiver, Reply};

/// Every log line of this test binary at `info` and above, as JSON, from the first test that
/// reads them on: the dispatcher's recorder runs on the store's own thread, which a
/// thread-local subscriber would not see. Tests pick their own lines by the ids they know.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        logs
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured lines, raw and parsed, that contain `needle`.
fn lines_with(needle: &str) -> Vec<(String, Value)> {
    let logs = captured().lock().unwrap();
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| {
            (
                l.to_owned(),
                serde_json::from_str(l).expect("JSON log line"),
            )
        })
        .collect()
}

/// Waits until `check` holds of the lines containing `needle`, and answers them.
async fn wait_for_lines(
    needle: &str,
    check: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lines = lines_with(needle);
        if check(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "log lines never came: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn failing_deliveries_breaker_openings_and_auto_disables_are_logged_at_warn() {
    captured();
    let app = spawn_app_with(|c| {
        c.retry_schedule = "100ms,100ms,100ms".parse().unwrap();
        c.breaker_threshold = 2;
        c.auto_disable_failures = 4;
        c.auto_disable_after = "0s".parse().unwrap();
    })
    .await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    receiver.always(Reply::status(500).body("boom"));
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let id = hook["id"].as_str().unwrap();
    app.publish("course.enrolled", json!({"n": 1})).await;

    let lines = wait_for_lines(id, |lines| {
        lines.iter().any(|(_, l)| message(l) == "webhook disabled")
    })
    .await;
    let of = |prefix: &str| -> Vec<&Value> {
        lines
            .iter()
            .map(|(_, l)| l)
            .filter(|l| message(l).starts_with(prefix))
            .collect()
    };
    let retries = of("delivery attempt failed; retry scheduled");
    let attempts: Vec<u64> = retries
        .iter()
        .map(|l| l["fields"]["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4], "{lines:#?}");
    // At the threshold, then on each failed probe.
    let opened: Vec<u64> = of("circuit breaker opened")
        .iter()
        .map(|l| l["fields"]["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(opened, [2, 3, 4], "{lines:#?}");
    let disabled = of("webhook disabled");
    assert_eq!(disabled.len(), 1);
    assert!(disabled[0]["fields"]["reason"]
        .as_str()
        .unwrap()
        .contains("4 or more failed attempts"));
    assert_warn_lines(id, &lines, &hook, &receiver);
}

#[tokio::test]
async fn an_exhausted_delivery_is_logged_at_warn_and_a_success_is_not() {
    captured();
    let app = spawn_app_with(|c| {
        c.retry_schedule = "100ms".parse().unwrap();
        c.breaker_threshold = 100;
    })
    .await;
    app.register_type("course.enrolled").await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(503), Reply::status(503), Reply::status(200)]);
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"], "retry_count": 1}))
        .await;
    let id = hook["id"].as_str().unwrap();
    app.publish("course.enrolled", json!({"n": 1})).await;
    let lines = wait_for_lines(id, |lines| {
        lines
            .iter()
            .any(|(_, l)| message(l).starts_with("delivery failed for good"))
    })
    .await;
    let exhausted: Vec<&Value> = lines
        .iter()
        .map(|(_, l)| l)
        .filter(|l| message(l).starts_with("delivery failed for good"))
        .collect();
    assert_eq!(exhausted.len(), 1, "{lines:#?}");
    assert_eq!(exhausted[0]["fields"]["attempt"], 2);
    assert_eq!(exhausted[0]["fields"]["status"], 503);

    // The next delivery succeeds, and says nothing at warn.
    app.publish("course.enrolled", json!({"n": 2})).await;
    receiver.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = lines_with(id);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_warn_lines(id, &lines, &hook, &receiver);
}

/// Every line about the webhook is at `warn`, carries the ids, the attempt, the status and the
/// error, and neither the secret nor the URL.
fn assert_warn_lines(id: &str, lines: &[(String, Value)], hook: &Value, receiver: &Receiver) {
    let secret = hook["secret"].as_str().unwrap();
    for (raw, line) in lines {
        assert_eq!(line["level"], "WARN");
        let fields = &line["fields"];
        assert_eq!(fields["webhook_id"], id);
        assert!(fields["delivery_id"].as_str().unwrap().starts_with("msg_"));
        assert!(fields["attempt"].is_u64(), "{line}");
        assert!(fields["status"].is_u64(), "{line}");
        assert!(fields["error"].is_string(), "{line}");
        assert!(
            !raw.contains(secret),
            "a log line carries the secret: {raw}"
        );
        assert!(
            !raw.contains(&receiver.url()),
            "a log line carries the URL: {raw}"
        );
    }
}

#[tokio::test]
async fn the_binary_logs_without_colours_to_a_pipe_and_keeps_the_admin_key_out_of_its_logs() {
    let dir = tempfile::tempdir().unwrap();
    let addr = crate::process::free_addr();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("serve")
        .env_remove("AGORA_DATABASE_URL")
        .env_remove("AGORA_ADMIN_KEY")
        .env_remove("NO_COLOR")
        .env("AGORA_LISTEN", addr.to_string())
        .env("AGORA_DATA_DIR", dir.path())
        .env("AGORA_LOG", "info")
        .env("AGORA_LOG_FORMAT", "text")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("agora starts");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "server did not become healthy");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let key = std::fs::read_to_string(dir.path().join("admin.key")).unwrap();
    let key = key.trim();
    assert!(stdout.contains("agora is serving"), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}'),
        "ANSI codes on a pipe: {stdout:?}"
    );
    assert!(!stdout.contains(key), "the admin key is in the log stream");
    assert!(
        stderr.contains(key),
        "the admin key is not on stderr: {stderr}"
    );
}

#[tokio::test]
async fn every_request_gets_an_id_echoed_and_an_access_log_line() {
    captured();
    let app = spawn_app_with(|_| {}).await;
    let sent = format!("ops-{}", ulid::Ulid::new());
    let answer = app
        .client
        .get(app.url("/v1/webhooks"))
        .bearer_auth(&app.key)
        .header("x-request-id", &sent)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-request-id"], sent.as_str());
    let lines = wait_for_lines(&sent, |lines| !lines.is_empty()).await;
    let access = &lines[0].1;
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["span"]["request_id"], sent.as_str());
    assert_eq!(access["fields"]["method"], "GET");
    assert_eq!(access["fields"]["route"], "/v1/webhooks");
    assert_eq!(access["fields"]["status"], 200);
    assert!(access["fields"]["duration_ms"].is_number());

    // An unusable id (too long, or not printable) is replaced by a fresh ULID.
    for bad in ["x".repeat(65), "two words".to_owned()] {
        let answer = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", &bad)
            .send()
            .await
            .unwrap();
        let id = answer.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(id, bad);
        assert!(id.parse::<ulid::Ulid>().is_ok(), "{id}");
        wait_for_lines(&id, |lines| !lines.is_empty()).await;
    }
}

#[tokio::test]
async fn readyz_answers_503_when_migrations_are_missing() {
    let app = spawn_app_with(|_| {}).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    assert_eq!(ready.body["status"], "ready");

    let db = app.database().await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&db)
    .await
    .unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["code"], "storage_unavailable");
    assert_eq!(ready.body["status"], 503);
    assert!(ready.body["message"].is_string());
    // `/healthz` only asks whether the database answers.
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn readyz_answers_503_while_the_sqlite_database_takes_no_writes() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.database_url = None;
        c.sqlite_busy_timeout = "200ms".parse().unwrap();
    })
    .await;
    let db = app.database().await;
    let mut other = db.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{:?}", ready.body);
    assert_eq!(ready.body["code"], "storage_unavailable");
    sqlx::query("SELECT 1").execute(&mut *other).await.unwrap();
    other.rollback().await.unwrap();
    assert_eq!(app.get("/readyz").await.status, 200);
}
