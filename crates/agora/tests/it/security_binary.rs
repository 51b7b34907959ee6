//! Secrets never leak: the real `agora` binary runs as a child with debug logging while
//! webhooks are created, delivered to (with failures and retries), tested, redelivered and
//! rotated; then none of the secrets may appear in its stdout or stderr, in any API answer but
//! the one that shows a secret once, or in the database file.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{Receiver, Reply, ADMIN_KEY};

const WAIT: Duration = Duration::from_secs(15);
const SECRET_KEY: &str = "5ec4e7b0a1f2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071829304156";

/// A child `agora serve` and everything it printed.
struct ChildServer {
    child: Child,
    output: Arc<Mutex<String>>,
}

fn collect(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static, into: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}

async fn spawn_binary(data_dir: &std::path::Path) -> (ChildServer, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agora"))
        .arg("serve")
        .env_remove("AGORA_DATABASE_URL")
        .env("AGORA_DATA_DIR", data_dir)
        .env("AGORA_LISTEN", "127.0.0.1:0")
        .env("AGORA_ADMIN_KEY", ADMIN_KEY)
        .env("AGORA_SECRET_KEY", SECRET_KEY)
        .env("AGORA_ALLOW_PRIVATE_TARGETS", "1")
        .env("AGORA_LOG", "debug")
        .env("AGORA_LOG_FORMAT", "json")
        .env("AGORA_RETRY_SCHEDULE", "100ms,200ms")
        .env("AGORA_RETRY_JITTER", "0")
        .env("AGORA_OVERLOAD_PENALTY", "100ms")
        .env("AGORA_POLL_INTERVAL", "100ms")
        .env("AGORA_FORUM_NAME", "Leak Test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let output = Arc::new(Mutex::new(String::new()));
    collect(child.stdout.take().unwrap(), output.clone());
    collect(child.stderr.take().unwrap(), output.clone());
    let deadline = Instant::now() + WAIT;
    let addr = loop {
        let found = output.lock().unwrap().lines().find_map(|line| {
            let v: Value = serde_json::from_str(line).ok()?;
            (v["fields"]["message"] == "agora is serving")
                .then(|| v["fields"]["addr"].as_str().map(str::to_owned))
                .flatten()
        });
        if let Some(addr) = found {
            break addr;
        }
        assert!(
            Instant::now() < deadline,
            "the server never said where it listens: {}",
            output.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (ChildServer { child, output }, format!("http://{addr}"))
}

/// Requests to the child, keeping every answer body that is not allowed to show a secret.
struct Client {
    base: String,
    http: reqwest::Client,
    answers: String,
}

impl Client {
    async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A call whose answer must not contain any secret.
    async fn checked(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, value) = self.call(method, path, body).await;
        self.answers.push_str(&value.to_string());
        self.answers.push('\n');
        (status, value)
    }
}

#[tokio::test]
async fn secrets_appear_in_no_log_line_error_message_or_attempt_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn_binary(dir.path()).await;
    let mut api = Client {
        base,
        http: reqwest::Client::new(),
        answers: String::new(),
    };
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(500).body("try again"), Reply::status(503)]);
    let mut secrets: Vec<String> = vec![SECRET_KEY.to_owned(), ADMIN_KEY.to_owned()];

    let (s, _) = api
        .checked(
            "POST",
            "/v1/event-types",
            Some(json!({"name": "course.enrolled", "description": "d"})),
        )
        .await;
    assert_eq!(s, 201);

    // A chosen secret, a generated one, and one on an endpoint that refuses connections.
    let chosen = "whsec_chosenSecretLEAKCANARY0001AAAAAA";
    let (s, a) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(
                json!({"url": receiver.url(), "events": ["course.*"], "secret": chosen,
                        "headers": {"Authorization": "Bearer header-LEAKCANARY-0002"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{a:?}");
    assert_eq!(a["secret"], chosen);
    secrets.push(chosen.to_owned());
    let (s, b) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": receiver.url(), "events": ["course.enrolled"]})),
        )
        .await;
    assert_eq!(s, 201);
    secrets.push(b["secret"].as_str().unwrap().to_owned());
    let (s, dead) = api
        .call(
            "POST",
            "/v1/webhooks",
            Some(
                json!({"url": "http://127.0.0.1:1/hook", "events": ["course.*"],
                        "secret": "whsec_deadEndLEAKCANARY0003AAAAAAAAAAA", "retry_count": 1}),
            ),
        )
        .await;
    assert_eq!(s, 201);
    secrets.push("whsec_deadEndLEAKCANARY0003AAAAAAAAAAA".to_owned());

    // Refused secrets are not echoed in the error.
    for refused in [
        "whsec_LEAKCANARY*not*base64*0004",
        "has space LEAKCANARY 0005 xx",
        "plain-text-LEAKCANARY-0006-secret",
    ] {
        let (s, e) = api
            .checked(
                "POST",
                "/v1/webhooks",
                Some(json!({"url": receiver.url(), "events": ["course.*"], "secret": refused})),
            )
            .await;
        assert_eq!(s, 400, "{e:?}");
        assert_eq!(e["code"], "invalid_secret");
        secrets.push(refused.to_owned());
    }

    // Deliveries: failures and retries, then rotation, the test endpoint and a redelivery.
    let (s, _) = api
        .checked(
            "POST",
            "/v1/events",
            Some(json!({"type": "course.enrolled", "data": {"n": 1}})),
        )
        .await;
    assert_eq!(s, 202);
    receiver.wait_for(4, WAIT).await;
    for hook in [&a, &b] {
        let (s, rotated) = api
            .call(
                "POST",
                &format!(
                    "/v1/webhooks/{}/rotate-secret",
                    hook["id"].as_str().unwrap()
                ),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, 200);
        secrets.push(rotated["secret"].as_str().unwrap().to_owned());
    }
    let (s, _) = api
        .checked(
            "POST",
            "/v1/events",
            Some(json!({"type": "course.enrolled", "data": {"n": 2}})),
        )
        .await;
    assert_eq!(s, 202);
    let (s, tested) = api
        .checked(
            "POST",
            &format!("/v1/webhooks/{}/test", b["id"].as_str().unwrap()),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(tested["success"], true, "{tested:?}");
    let (s, tested) = api
        .checked(
            "POST",
            &format!("/v1/webhooks/{}/test", dead["id"].as_str().unwrap()),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(tested["success"], false);
    receiver.wait_for(7, WAIT).await;

    // Read everything back: webhooks, logs, every delivery with its attempts.
    let mut attempts_seen = 0;
    api.checked("GET", "/v1/webhooks", None).await;
    for hook in [&a, &b, &dead] {
        let id = hook["id"].as_str().unwrap();
        api.checked("GET", &format!("/v1/webhooks/{id}"), None)
            .await;
        let deadline = Instant::now() + WAIT;
        let list = loop {
            let (_, list) = api
                .checked("GET", &format!("/v1/webhooks/{id}/deliveries"), None)
                .await;
            let settled = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| ["succeeded", "exhausted"].contains(&d["status"].as_str().unwrap()));
            if settled || Instant::now() > deadline {
                break list;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for d in list["data"].as_array().unwrap() {
            let path = format!("/v1/deliveries/{}", d["id"].as_str().unwrap());
            let (_, detail) = api.checked("GET", &path, None).await;
            for attempt in detail["attempts"].as_array().unwrap() {
                attempts_seen += 1;
                if let Some(auth) = attempt["request_headers"].get("Authorization") {
                    assert_eq!(auth, "[redacted]");
                }
            }
            api.checked("POST", &format!("{path}/redeliver"), Some(json!({})))
                .await;
        }
    }
    assert!(attempts_seen >= 8, "only {attempts_seen} attempts recorded");
    tokio::time::sleep(Duration::from_millis(500)).await;

    child.child.kill().await.unwrap();
    let _ = child.child.wait().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = child.output.lock().unwrap().clone();
    assert!(logs.contains("agora is serving"));
    assert!(logs.contains("\"DEBUG\""), "debug logging was on");
    assert!(
        logs.lines().count() > 20,
        "the child logged too little to prove anything"
    );

    let mut database = Vec::new();
    for name in ["agora.db", "agora.db-wal"] {
        database.extend(std::fs::read(dir.path().join(name)).unwrap_or_default());
    }
    let database = String::from_utf8_lossy(&database);
    for secret in &secrets {
        let key_part = secret.trim_start_matches("whsec_");
        for (what, text) in [("the logs", &logs), ("an API answer", &api.answers)] {
            assert!(
                !text.contains(secret.as_str()),
                "a secret is in {what}: {secret}"
            );
            assert!(
                !text.contains(key_part),
                "a secret's key is in {what}: {secret}"
            );
        }
        if secret != SECRET_KEY && secret != ADMIN_KEY {
            assert!(
                !database.contains(secret.as_str()),
                "a secret is in the database: {secret}"
            );
        }
    }
    assert!(
        !logs.contains("header-LEAKCANARY-0002"),
        "a credential header is in the logs"
    );
}
