//! Helpers of the forum tests: an [`Events`] receiver that checks each delivery against the
//! published schema, and short-hands that create resources and assert their status.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{Receiver, TestApp};

pub const WAIT: Duration = Duration::from_secs(10);

/// The JSON Schema of every event type's `data`, as `GET /v1/event-types` publishes it.
pub async fn schemas(app: &TestApp) -> HashMap<String, Value> {
    let a = app.get("/v1/event-types").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t["schema"].clone()))
        .collect()
}

/// Asserts `data` is valid against `schema`, listing every violation otherwise.
pub fn assert_valid(schema: &Value, data: &Value, what: &str) {
    let validator = jsonschema::validator_for(schema)
        .unwrap_or_else(|e| panic!("the published schema of {what} does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(data)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} data does not match its schema: {errors:#?}\ndata: {data:#}"
    );
}

/// A webhook on a real receiver, and the deliveries checked one by one.
pub struct Events {
    pub rx: Receiver,
    schemas: HashMap<String, Value>,
    /// Indexes of the deliveries already checked.
    checked: HashSet<usize>,
}

impl Events {
    /// Subscribes a new receiver to `events` (with an optional filter).
    pub async fn subscribe(app: &TestApp, events: &[&str], filter: Option<Value>) -> Self {
        let rx = Receiver::start().await;
        let mut body = json!({"url": rx.url(), "events": events});
        if let Some(f) = filter {
            body["filter"] = f;
        }
        app.create_webhook(body).await;
        let mut subscribed = Self {
            rx,
            schemas: schemas(app).await,
            checked: HashSet::new(),
        };
        // A webhook that hears of webhook changes hears of its own creation first.
        if events
            .iter()
            .any(|e| matches!(*e, "*" | "webhook.*" | "webhook.created"))
        {
            subscribed.next("webhook.created").await;
        }
        subscribed
    }

    /// Waits for a delivery of `name` not checked yet, asserts its headers and that its data
    /// matches the schema, and answers its data. Deliveries are matched in any order: a
    /// webhook's deliveries run concurrently, and the contract promises no ordering.
    pub async fn next(&mut self, name: &str) -> Value {
        self.take(name, |_| true).await
    }

    /// Waits for a delivery of `name` carrying exactly `answer` (the API's answer).
    pub async fn expect(&mut self, name: &str, answer: &Value) {
        self.take(name, |data| data == answer).await;
    }

    async fn take(&mut self, name: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let got = self.rx.received();
            let found = got
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.checked.contains(i))
                .find(|(_, d)| {
                    let body = d.json();
                    body["type"] == name && wanted(&body["data"])
                });
            if let Some((i, delivery)) = found {
                self.checked.insert(i);
                let body = delivery.json();
                assert_eq!(delivery.header("x-agora-event"), name);
                assert!(body["id"].as_str().unwrap().starts_with("evt_"));
                let schema = self
                    .schemas
                    .get(name)
                    .unwrap_or_else(|| panic!("{name} is not in the catalog"));
                assert_valid(schema, &body["data"], name);
                return body["data"].clone();
            }
            if std::time::Instant::now() > deadline {
                let unchecked: Vec<Value> = got
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !self.checked.contains(i))
                    .map(|(_, d)| d.json())
                    .collect();
                panic!("no matching {name} delivery arrived; unchecked deliveries: {unchecked:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts nothing more arrives for a while.
    pub async fn quiet(&self) {
        self.rx
            .assert_stays_at(self.checked.len(), Duration::from_millis(400))
            .await;
    }

    /// How many deliveries were checked.
    pub fn seen(&self) -> usize {
        self.checked.len()
    }
}

/// Asserts a status and answers the body.
#[track_caller]
pub fn ok(a: crate::helpers::Answer, status: u16) -> Value {
    assert_eq!(a.status, status, "{:#}", a.body);
    a.body
}

/// Asserts an error status and code.
#[track_caller]
pub fn err(a: crate::helpers::Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{:#}", a.body);
    assert_eq!(a.body["code"], code, "{:#}", a.body);
    assert_eq!(a.body["status"], status);
}

/// Asserts that `token` may not send `method path` (with `body`): 403 `forbidden`.
pub async fn forbidden(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) {
    let a = app.request_as(token, method, path, body).await;
    assert_eq!(a.status, 403, "{method} {path}: {:#}", a.body);
    assert_eq!(a.body["code"], "forbidden", "{method} {path}: {:#}", a.body);
    assert_eq!(a.body["status"], 403);
}

pub const PASSWORD: &str = "correct horse battery";

/// Registers a user with the admin key.
pub async fn user(app: &TestApp, username: &str) -> Value {
    ok(
        app.post(
            "/v1/users",
            json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
        )
        .await,
        201,
    )
}

/// Signs a user in; answers the session token.
pub async fn login(app: &TestApp, username: &str) -> String {
    let a = app
        .request_as(
            "",
            "POST",
            "/v1/auth/login",
            Some(json!({"login": username, "password": PASSWORD})),
        )
        .await;
    ok(a, 200)["token"].as_str().unwrap().to_owned()
}

/// Creates a category.
pub async fn category(app: &TestApp, name: &str) -> Value {
    ok(app.post("/v1/categories", json!({"name": name})).await, 201)
}

/// Creates a tag.
pub async fn tag(app: &TestApp, name: &str) -> Value {
    ok(app.post("/v1/tags", json!({"name": name})).await, 201)
}

/// Starts a thread as `user` (through the admin key).
pub async fn thread(app: &TestApp, category: &Value, user: &Value, tags: &[&str]) -> Value {
    ok(
        app.post(
            "/v1/threads",
            json!({"title": "Hello there", "body": "First!", "category_id": category["id"],
                   "user_id": user["id"], "tags": tags}),
        )
        .await,
        201,
    )
}

/// Replies in a thread as `user` (through the admin key).
pub async fn reply(app: &TestApp, thread: &Value, user: &Value) -> Value {
    ok(
        app.post(
            &format!("/v1/threads/{}/posts", thread["id"].as_str().unwrap()),
            json!({"body": "A reply", "user_id": user["id"]}),
        )
        .await,
        201,
    )
}

/// A moderator: a user in a group flagged `is_moderator`, signed in.
pub async fn moderator(app: &TestApp, username: &str) -> (Value, String) {
    let u = user(app, username).await;
    let g = ok(
        app.post(
            "/v1/groups",
            json!({"name": format!("mods-{username}"), "is_moderator": true}),
        )
        .await,
        201,
    );
    ok(
        app.put(
            &format!(
                "/v1/groups/{}/members/{}",
                g["id"].as_str().unwrap(),
                u["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await,
        200,
    );
    let token = login(app, username).await;
    (u, token)
}

/// `/v1/{what}/{id}` of a resource.
pub fn path(what: &str, resource: &Value) -> String {
    format!("/v1/{what}/{}", resource["id"].as_str().unwrap())
}
