//! The audit trail: every administrative change writes one record (who, from where, what
//! changed, never a secret), readable by admins at `GET /v1/audit-log`, and is emitted as an
//! operational event to the owner key's and admins' webhooks only.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{make_key, spawn_app, Receiver, Reply, TestApp};

const WAIT: Duration = Duration::from_secs(10);

/// The id of the admin key every test server is bootstrapped with.
async fn admin_key_id(app: &TestApp) -> String {
    let keys = app.get("/v1/api-keys").await.body;
    keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The audit records about `target`, newest first.
async fn records_of(app: &TestApp, target: &str) -> Vec<Value> {
    let a = app.get(&format!("/v1/audit-log?target_id={target}")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn each_administrative_change_writes_one_record_with_its_actor_address_and_no_secret() {
    let app = spawn_app().await;
    let admin = admin_key_id(&app).await;
    let receiver = Receiver::start().await;
    let secret = "whsec_dGhpcyBpcyBhIHNlY3JldCBmb3IgdGVzdHM=";
    let created = app
        .create_webhook(json!({"url": format!("{}?token=q-secret", receiver.url()),
                               "events": ["webhook.test"], "secret": secret,
                               "headers": {"Authorization": "Bearer h-secret", "X-Team": "t-value"}}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhooks/{id}");

    let changes: [(&str, &str, Value); 4] = [
        ("PATCH", "webhook.updated", json!({"name": "renamed"})),
        ("PATCH", "webhook.disabled", json!({"status": "inactive"})),
        ("PATCH", "webhook.enabled", json!({"status": "active"})),
        (
            "PUT",
            "webhook.updated",
            json!({"url": receiver.url(), "events": ["webhook.test"],
                   "headers": {"Authorization": "Bearer h-secret-2"}}),
        ),
    ];
    for (method, _, body) in &changes {
        let a = app
            .request_as(&app.key, method, &path, Some(body.clone()))
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    let rotated = app.post(&format!("{path}/rotate-secret"), json!({})).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    let tested = app.post(&format!("{path}/test"), json!({})).await;
    let delivery = tested.body["delivery_id"].as_str().unwrap().to_owned();
    app.wait_for_delivery_status(&delivery, "succeeded").await;
    let redelivered = app
        .post(&format!("/v1/deliveries/{delivery}/redeliver"), json!({}))
        .await;
    assert_eq!(redelivered.status, 202, "{:?}", redelivered.body);
    let recovered = app
        .post(
            &format!("{path}/recover"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(recovered.status, 202, "{:?}", recovered.body);
    assert_eq!(app.delete(&path).await.status, 204);

    let records = records_of(&app, &id).await;
    let actions: Vec<&str> = records
        .iter()
        .rev()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "webhook.created",
            "webhook.updated",
            "webhook.disabled",
            "webhook.enabled",
            "webhook.updated",
            "webhook.secret_rotated",
            "webhook.recovered",
            "webhook.deleted",
        ],
        "newest first, one per change"
    );
    for r in &records {
        assert_eq!(r["actor"], admin.as_str(), "{r}");
        assert_eq!(r["remote_addr"], "127.0.0.1", "{r}");
        assert!(r["id"].as_str().unwrap().starts_with("aud_"), "{r}");
        assert!(r["created_at"].as_str().is_some(), "{r}");
    }
    let of = |action: &str| {
        records
            .iter()
            .find(|r| r["action"] == action)
            .unwrap()
            .clone()
    };
    let creation = &of("webhook.created")["changes"];
    assert_eq!(creation["url"]["from"], Value::Null);
    assert!(creation["url"]["to"].as_str().unwrap().contains("token="));
    assert_eq!(creation["headers"]["to"]["Authorization"], "[redacted]");
    assert!(
        creation.get("description").is_none(),
        "nothing to nothing is no change: {creation}"
    );
    assert_eq!(
        of("webhook.created")["changes"]["secret"]["to"],
        "[redacted]"
    );
    let renamed = &records[records.len() - 2]["changes"];
    assert_eq!(
        renamed,
        &json!({"name": {"from": null, "to": "renamed"}, "updated_at": renamed["updated_at"]})
    );
    assert_eq!(
        of("webhook.disabled")["changes"]["status"],
        json!({"from": "active", "to": "inactive"})
    );
    assert_eq!(
        of("webhook.secret_rotated")["changes"]["secret"],
        json!({"from": "[redacted]", "to": "[redacted]"})
    );
    assert_eq!(of("webhook.deleted")["changes"]["url"]["to"], Value::Null);

    let redelivery = records_of(&app, &delivery).await;
    assert_eq!(redelivery.len(), 1, "{redelivery:?}");
    assert_eq!(redelivery[0]["action"], "delivery.redelivered");
    assert_eq!(redelivery[0]["changes"]["webhook_id"], id.as_str());
    assert_eq!(redelivery[0]["actor"], admin.as_str());

    let everything = app.get("/v1/audit-log?limit=250").await.body.to_string();
    for secret in [
        secret,
        new_secret.as_str(),
        "h-secret",
        "t-value",
        "q-secret",
    ] {
        assert!(!everything.contains(secret), "{secret} in {everything}");
    }

    let filtered = app
        .get(&format!(
            "/v1/audit-log?target_id={id}&action=webhook.updated"
        ))
        .await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn key_creation_and_revocation_are_recorded_with_the_key_that_made_them() {
    let app = spawn_app().await;
    let admin = admin_key_id(&app).await;
    let (_, second_admin) = make_key(&app, json!(["admin"])).await;
    let made = app
        .request_as(
            &second_admin,
            "POST",
            "/v1/api-keys",
            Some(json!({"name": "deployer", "abilities": ["webhooks:write"]})),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let value = made.body["key"].as_str().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/v1/api-keys/{id}")).await.status, 204);

    let records = records_of(&app, &id).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let (revoked, created) = (&records[0], &records[1]);
    assert_eq!(created["action"], "api_key.created");
    assert_ne!(created["actor"], admin.as_str());
    assert!(created["actor"].as_str().unwrap().starts_with("key_"));
    assert_eq!(
        created["changes"]["abilities"]["to"],
        json!(["webhooks:write"])
    );
    assert_eq!(revoked["action"], "api_key.revoked");
    assert_eq!(revoked["actor"], admin.as_str());
    assert_eq!(revoked["remote_addr"], "127.0.0.1");
    let all = app.get("/v1/audit-log").await.body.to_string();
    assert!(!all.contains(&value));
    assert!(!all.contains(&second_admin));
}

#[tokio::test]
async fn only_admins_read_the_audit_log_and_pages_go_back_in_time() {
    let app = spawn_app().await;
    let (_, tenant) = make_key(&app, json!(["webhooks:write"])).await;
    let refused = app.request_as(&tenant, "GET", "/v1/audit-log", None).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(refused.body["code"], "forbidden");

    for _ in 0..3 {
        make_key(&app, json!(["threads:read"])).await;
    }
    let first = app.get("/v1/audit-log?limit=2").await.body;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!("/v1/audit-log?limit=2&cursor={cursor}"))
        .await
        .body;
    let ids: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "{first} {second}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let bad = app.get("/v1/audit-log?limit=251").await;
    assert_eq!(bad.status, 400);
    let unknown = app.get("/v1/audit-log?actor=x").await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test]
async fn change_events_reach_the_owner_and_admins_but_no_other_tenant_and_carry_no_secret() {
    let app = spawn_app().await;
    let (alice_id, alice) = make_key(&app, json!(["webhooks:write"])).await;
    let (_, mallory) = make_key(&app, json!(["webhooks:write"])).await;
    let (admin_rx, alice_rx, mallory_rx) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let subscribe = |rx: &Receiver| json!({"url": rx.url(), "events": ["webhook.created", "webhook.updated", "webhook.deleted", "api_key.*"]});
    app.create_webhook(subscribe(&admin_rx)).await;
    let as_key = |key: &str, body: Value| {
        let key = key.to_owned();
        let app = &app;
        async move {
            let a = app
                .request_as(&key, "POST", "/v1/webhooks", Some(body))
                .await;
            assert_eq!(a.status, 201, "{:?}", a.body);
            a.body
        }
    };
    // A non-admin may not subscribe to key events.
    let refused = app
        .request_as(&alice, "POST", "/v1/webhooks", Some(subscribe(&alice_rx)))
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    let only_webhooks = |rx: &Receiver| json!({"url": rx.url(), "events": ["webhook.*"]});
    as_key(&alice, only_webhooks(&alice_rx)).await;
    as_key(&mallory, only_webhooks(&mallory_rx)).await;

    let hook = as_key(
        &alice,
        json!({"url": "http://127.0.0.1:9/x?token=q-secret", "events": ["webhook.test"],
               "headers": {"X-Secret": "h-secret"}}),
    )
    .await;
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    let patched = app
        .request_as(&alice, "PATCH", &path, Some(json!({"name": "n"})))
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(
        app.request_as(&alice, "DELETE", &path, None).await.status,
        204
    );
    make_key(&app, json!(["threads:read"])).await;

    let about_hook = |rx: &Receiver| -> Vec<String> {
        rx.received()
            .iter()
            .map(|r| r.json())
            .filter(|e| e["data"]["id"] == hook["id"])
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let deadline = std::time::Instant::now() + WAIT;
    let key_created = |rx: &Receiver| {
        rx.received()
            .iter()
            .any(|r| r.json()["type"] == "api_key.created")
    };
    while (about_hook(&alice_rx).len() < 3
        || about_hook(&admin_rx).len() < 3
        || !key_created(&admin_rx))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut types = about_hook(&alice_rx);
    types.sort();
    assert_eq!(
        types,
        ["webhook.created", "webhook.deleted", "webhook.updated"]
    );
    assert_eq!(about_hook(&admin_rx).len(), 3);
    let key_events: Vec<Value> = admin_rx
        .received()
        .iter()
        .map(|r| r.json())
        .filter(|e| e["type"] == "api_key.created")
        .collect();
    assert!(!key_events.is_empty());
    assert!(key_events[0]["data"]["id"]
        .as_str()
        .unwrap()
        .starts_with("key_"));
    assert!(key_events[0]["data"].get("key").is_none());

    for rx in [&admin_rx, &alice_rx] {
        for got in rx.received() {
            let text = got.json().to_string();
            assert!(
                !text.contains("h-secret") && !text.contains("q-secret"),
                "{text}"
            );
            assert!(!text.contains("whsec_"), "{text}");
        }
    }
    let created = alice_rx
        .received()
        .iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "webhook.created" && e["data"]["id"] == hook["id"])
        .unwrap();
    assert_eq!(created["data"]["owner_key_id"], alice_id.as_str());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        about_hook(&mallory_rx).is_empty(),
        "another tenant hears nothing"
    );
}

#[tokio::test]
async fn webhooks_show_the_key_that_owns_them() {
    let app = spawn_app().await;
    let (alice_id, alice) = make_key(&app, json!(["webhooks:write"])).await;
    let a = app
        .request_as(
            &alice,
            "POST",
            "/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/x", "events": ["webhook.test"]})),
        )
        .await;
    assert_eq!(a.body["owner_key_id"], alice_id.as_str());
    let listed = app.get("/v1/webhooks").await.body;
    assert_eq!(listed["data"][0]["owner_key_id"], alice_id.as_str());
    let one = app
        .get(&format!("/v1/webhooks/{}", a.body["id"].as_str().unwrap()))
        .await
        .body;
    assert_eq!(one["owner_key_id"], alice_id.as_str());
}

#[tokio::test]
async fn a_change_refused_in_its_transaction_leaves_no_record() {
    let app = crate::helpers::spawn_app_with(|c| c.max_webhooks_per_key = 1).await;
    let (_, tenant) = make_key(&app, json!(["webhooks:write"])).await;
    let body = json!({"url": "http://127.0.0.1:9/x", "events": ["webhook.test"]});
    let created = app
        .request_as(&tenant, "POST", "/v1/webhooks", Some(body.clone()))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let over = app
        .request_as(&tenant, "POST", "/v1/webhooks", Some(body))
        .await;
    assert_eq!(over.status, 409, "{:?}", over.body);
    let records = app.get("/v1/audit-log?action=webhook.created").await.body;
    assert_eq!(
        records["data"].as_array().unwrap().len(),
        1,
        "the refused creation was rolled back with its record: {records}"
    );
}

#[tokio::test]
async fn a_header_value_change_is_recorded_without_either_value() {
    let app = spawn_app().await;
    let hook = app
        .create_webhook(
            json!({"url": "http://127.0.0.1:9/x", "events": ["webhook.test"],
                               "headers": {"X-Team": "old-value"}}),
        )
        .await;
    let id = hook["id"].as_str().unwrap();
    let a = app
        .patch(
            &format!("/v1/webhooks/{id}"),
            json!({"headers": {"X-Team": "new-value"}}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let records = records_of(&app, id).await;
    assert_eq!(records[0]["action"], "webhook.updated");
    assert_eq!(
        records[0]["changes"]["headers"],
        json!({"from": {"X-Team": "[redacted]"}, "to": {"X-Team": "[redacted]"}})
    );
    let text = json!(records).to_string();
    assert!(
        !text.contains("old-value") && !text.contains("new-value"),
        "{text}"
    );
}

#[tokio::test]
async fn a_webhook_the_server_disables_is_recorded_with_the_system_as_actor() {
    let app = spawn_app().await;
    app.register_type("course.enrolled").await;
    let gone = Receiver::start().await;
    gone.always(Reply::status(410));
    let hook = app
        .create_webhook(json!({"url": gone.url(), "events": ["course.*"]}))
        .await;
    let id = hook["id"].as_str().unwrap();
    app.publish("course.enrolled", json!({})).await;
    let deadline = std::time::Instant::now() + WAIT;
    let disabled = loop {
        let records = records_of(&app, id).await;
        if let Some(r) = records.iter().find(|r| r["action"] == "webhook.disabled") {
            break r.clone();
        }
        assert!(std::time::Instant::now() < deadline, "{records:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(disabled["actor"], "system");
    assert_eq!(disabled["remote_addr"], Value::Null);
    assert_eq!(disabled["changes"]["status"]["to"], "inactive");
    assert!(disabled["changes"]["disabled_reason"]["to"]
        .as_str()
        .unwrap()
        .contains("410"));

    // A revoked key's webhooks: the revocation by its admin, each disable by the system.
    let (key_id, key) = make_key(&app, json!(["webhooks:write", "events:read"])).await;
    let other = Receiver::start().await;
    let owned = app
        .request_as(
            &key,
            "POST",
            "/v1/webhooks",
            Some(json!({"url": other.url(), "events": ["course.*"]})),
        )
        .await;
    assert_eq!(owned.status, 201, "{:?}", owned.body);
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{key_id}")).await.status,
        204
    );
    let records = records_of(&app, owned.body["id"].as_str().unwrap()).await;
    assert_eq!(records[0]["action"], "webhook.disabled", "{records:?}");
    assert_eq!(records[0]["actor"], "system");
    assert!(records[0]["changes"]["disabled_reason"]["to"]
        .as_str()
        .unwrap()
        .contains("revoked"));
}
