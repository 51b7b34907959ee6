//! The test harness: [`spawn_app`] starts the real server in-process on a random port with its
//! own data directory; [`Receiver`] is a real HTTP endpoint whose answers a test can script.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use agora::Config;

/// The admin key every test server is bootstrapped with.
pub const ADMIN_KEY: &str = "agora_test_admin_key_0123456789abcdef";

/// A running server and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub key: String,
    pub data_dir: PathBuf,
    /// The config the server was started with, reused by restarts.
    pub config: Config,
    running: Option<agora::Running>,
    _dir: Option<tempfile::TempDir>,
}

/// A config for tests: private targets allowed, a fast retry schedule, no jitter.
pub fn test_config(data_dir: PathBuf) -> Config {
    let mut config = Config::defaults(data_dir);
    config.allow_private_targets = true;
    config.retry_schedule = "200ms,400ms,800ms".parse().unwrap();
    config.retry_jitter = 0.0;
    config.overload_penalty = "300ms".parse().unwrap();
    config.poll_interval = "100ms".parse().unwrap();
    config.breaker_cooldown = "500ms".parse().unwrap();
    config.rate_limit_per_second = 0;
    config.admin_key = Some(ADMIN_KEY.to_owned().into());
    config.forum_name = Some("Test Forum".to_owned());
    config
}

/// Starts a server with the test config.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server on SQLite whatever `AGORA_TEST_DATABASE` says, for tests that inspect the
/// database file itself.
pub async fn spawn_sqlite_app() -> TestApp {
    spawn_app_with(|c| c.database_url = None).await
}

/// Starts a server with the test config as changed by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(dir.path().to_path_buf());
    if std::env::var("AGORA_TEST_DATABASE").as_deref() == Ok("postgres") {
        config.database_url = Some(postgres_schema().await);
    }
    adjust(&mut config);
    let mut app = start(config).await;
    app._dir = Some(dir);
    app
}

/// The PostgreSQL URL of `AGORA_TEST_POSTGRES_URL`, if set.
pub fn postgres_url() -> Option<String> {
    std::env::var("AGORA_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh, empty schema in the test PostgreSQL database, as a URL whose connections use it:
/// every test gets its own, so tests run in parallel without seeing each other.
pub async fn postgres_schema() -> String {
    use sqlx::Connection;
    let base = postgres_url().expect("AGORA_TEST_DATABASE=postgres needs AGORA_TEST_POSTGRES_URL");
    let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to PostgreSQL");
    drop_stale_schemas(&mut conn).await;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create schema");
    conn.close().await.expect("close");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options[search_path]={schema}")
}

/// Drops test schemas older than ten minutes (their names carry a ULID, hence a time), so the
/// test database does not grow with every run.
async fn drop_stale_schemas(conn: &mut sqlx::PgConnection) {
    use sqlx::Row;
    let rows = sqlx::query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'")
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_default();
    let cutoff = std::time::SystemTime::now() - Duration::from_secs(600);
    for row in rows {
        let name: String = row.get("nspname");
        let stale =
            ulid::Ulid::from_string(&name[2..].to_uppercase()).is_ok_and(|u| u.datetime() < cutoff);
        if stale {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&mut *conn)
                .await;
        }
    }
}

async fn start(config: Config) -> TestApp {
    let data_dir = config.data_dir.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let running = agora::start(config.clone(), listener)
        .await
        .expect("server starts");
    TestApp {
        addr: running.addr,
        client: reqwest::Client::new(),
        key: ADMIN_KEY.to_owned(),
        data_dir,
        config,
        running: Some(running),
        _dir: None,
    }
}

/// A client for a server started elsewhere (a child process), with the admin key.
pub fn client_for(addr: SocketAddr) -> TestApp {
    TestApp {
        addr,
        client: reqwest::Client::new(),
        key: ADMIN_KEY.to_owned(),
        data_dir: PathBuf::new(),
        config: test_config(PathBuf::new()),
        running: None,
        _dir: None,
    }
}

/// Creates an API key with `abilities` using the admin key; answers its id and value.
pub async fn make_key(app: &TestApp, abilities: Value) -> (String, String) {
    let a = app
        .post(
            "/v1/api-keys",
            json!({"name": "test", "abilities": abilities}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    (
        a.body["id"].as_str().unwrap().to_owned(),
        a.body["key"].as_str().unwrap().to_owned(),
    )
}

/// A JSON answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A connection pool on the server's own database (SQLite file or PostgreSQL schema), for
    /// tests that check or set up what the API does not show.
    pub async fn database(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = self.config.database_url().expect("a database URL");
        sqlx::AnyPool::connect(&url)
            .await
            .expect("connect to the server's database")
    }

    /// Sends a request with the app's key (or `key` when given) and a JSON body.
    pub async fn request_as(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer { status, body }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request_as(&self.key, "GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.request_as(&self.key, "POST", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.request_as(&self.key, "PATCH", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.request_as(&self.key, "PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.request_as(&self.key, "DELETE", path, None).await
    }

    /// Creates a webhook, asserting 201; returns its body (with `secret`).
    pub async fn create_webhook(&self, body: Value) -> Value {
        let a = self.post("/v1/webhooks", body).await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        a.body
    }

    /// Registers a custom event type, asserting 201.
    pub async fn register_type(&self, name: &str) {
        let a = self
            .post(
                "/v1/event-types",
                json!({"name": name, "description": "test type"}),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.body);
    }

    /// Publishes a custom event, asserting 202; returns its body.
    pub async fn publish(&self, event_type: &str, data: Value) -> Value {
        let a = self
            .post("/v1/events", json!({"type": event_type, "data": data}))
            .await;
        assert_eq!(a.status, 202, "{:?}", a.body);
        a.body
    }

    /// Waits until a delivery reaches `status` (as the log names it).
    pub async fn wait_for_delivery_status(&self, delivery_id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = self.get(&format!("/v1/deliveries/{delivery_id}")).await;
            if a.body["status"] == status {
                return a.body;
            }
            assert!(
                Instant::now() < deadline,
                "delivery never became {status}: {:?}",
                a.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The running server's store, for what only the store answers.
    pub fn store(&self) -> &agora::Store {
        self.running.as_ref().expect("running in process").store()
    }

    /// Stops the server gracefully, keeping its data directory.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean stop");
        }
    }

    /// Starts a new server on the same database (and a new port).
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Config)) {
        self.stop().await;
        let mut config = self.config.clone();
        adjust(&mut config);
        let fresh = start(config).await;
        self.addr = fresh.addr;
        self.running = fresh.running;
    }
}

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// How a receiver answers one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            headers: Vec::new(),
            body: "ok".into(),
        }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    arrived: Notify,
}

/// A real HTTP endpoint on loopback that records what it gets and answers as scripted: the
/// queued replies first, then the default (200 unless set).
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// A receiver on a given address (to bring back one that was down).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Answers every unscripted request with this reply.
    pub fn always(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (at most `within`), and returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.state.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "expected {n} requests within {within:?}, got {}",
                got.len()
            );
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Waits `quiet` and asserts nothing more than `n` requests arrived.
    pub async fn assert_stays_at(&self, n: usize, quiet: Duration) {
        tokio::time::sleep(quiet).await;
        assert_eq!(self.received().len(), n, "unexpected extra deliveries");
    }

    /// Waits (up to `within`) until the events `ids` arrived, then checks that they are all
    /// that arrived, each once, and that nothing more comes for `quiet`.
    pub async fn assert_received_exactly(
        &self,
        ids: &HashSet<Value>,
        within: Duration,
        quiet: Duration,
    ) {
        let got = self.wait_for(ids.len(), within).await;
        let arrived: HashSet<_> = got.iter().map(|m| m.json()["id"].clone()).collect();
        assert_eq!(&arrived, ids);
        self.assert_stays_at(ids.len(), quiet).await;
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.default.lock().unwrap().clone())
        .unwrap_or_else(|| Reply::status(200));
    state.received.lock().unwrap().push(Received {
        headers,
        body,
        at: Instant::now(),
    });
    state.arrived.notify_waiters();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}
