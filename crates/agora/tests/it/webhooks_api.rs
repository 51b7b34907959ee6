//! The webhook resource: create, read, list, patch, put, delete, ownership.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn webhooks_can_be_created_read_listed_changed_and_deleted() {
    let app = spawn_app().await;
    let created = app
        .create_webhook(json!({
            "url": "http://127.0.0.1:9/hook",
            "events": ["thread.*", "post.created", "thread.*"],
            "name": "moderation bot",
            "description": "sends posts to the classifier",
            "retry_count": 3,
            "timeout_ms": 2000,
            "format": "slack",
            "filter": {"category_ids": ["cat_1"]}
        }))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["events"], json!(["thread.*", "post.created"]));
    assert_eq!(created["status"], "active");
    assert_eq!(created["retry_count"], 3);
    assert_eq!(created["filter"]["category_ids"], json!(["cat_1"]));

    let read = app.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(read.status, 200);
    assert!(
        read.body.get("secret").is_none(),
        "the secret is shown only once"
    );
    assert_eq!(read.body["name"], "moderation bot");
    assert!(read.body["last_triggered_at"].is_null());

    let patched = app
        .patch(&format!("/v1/webhooks/{id}"), json!({"name": "renamed"}))
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["name"], "renamed");
    assert_eq!(
        patched.body["retry_count"], 3,
        "PATCH keeps what it does not name"
    );

    let replaced = app
        .put(
            &format!("/v1/webhooks/{id}"),
            json!({"url": "http://127.0.0.1:9/other", "events": ["user.registered"]}),
        )
        .await;
    assert_eq!(replaced.status, 200);
    assert_eq!(
        replaced.body["retry_count"], 10,
        "PUT resets what it does not name"
    );
    assert!(replaced.body["name"].is_null());
    assert_eq!(replaced.body["format"], "json");

    for n in 0..2 {
        app.create_webhook(json!({"url": format!("http://127.0.0.1:9/{n}"), "events": ["tag.*"]}))
            .await;
    }
    let page1 = app.get("/v1/webhooks?limit=2").await.body;
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = app
        .get(&format!("/v1/webhooks?limit=2&cursor={cursor}"))
        .await
        .body;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());

    assert_eq!(app.delete(&format!("/v1/webhooks/{id}")).await.status, 204);
    assert_eq!(app.get(&format!("/v1/webhooks/{id}")).await.status, 404);
    assert_eq!(app.delete(&format!("/v1/webhooks/{id}")).await.status, 404);
}

#[tokio::test]
async fn a_key_sees_only_its_own_webhooks_and_needs_abilities() {
    let app = spawn_app().await;
    let make_key = |abilities: serde_json::Value| {
        let app = &app;
        async move {
            let a = app
                .post(
                    "/v1/api-keys",
                    json!({"name": "integration", "abilities": abilities}),
                )
                .await;
            assert_eq!(a.status, 201, "{:?}", a.body);
            a.body["key"].as_str().unwrap().to_owned()
        }
    };
    let alice = make_key(json!(["webhooks:write", "threads:read"])).await;
    let bob = make_key(json!(["webhooks:write", "threads:read"])).await;
    let reader = make_key(json!(["threads:read"])).await;

    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["thread.created"]});
    let created = app
        .request_as(&alice, "POST", "/v1/webhooks", Some(body.clone()))
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap();

    assert_eq!(
        app.request_as(&bob, "GET", &format!("/v1/webhooks/{id}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        app.request_as(&bob, "DELETE", &format!("/v1/webhooks/{id}"), None)
            .await
            .status,
        404
    );
    let bobs = app.request_as(&bob, "GET", "/v1/webhooks", None).await;
    assert_eq!(bobs.body["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        app.request_as(&alice, "GET", &format!("/v1/webhooks/{id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}")).await.status,
        200,
        "admin sees all"
    );

    let denied = app
        .request_as(&reader, "POST", "/v1/webhooks", Some(body))
        .await;
    assert_eq!(denied.status, 403);
    let users = json!({"url": "http://127.0.0.1:9/hook", "events": ["user.registered"]});
    let denied = app
        .request_as(&alice, "POST", "/v1/webhooks", Some(users))
        .await;
    assert_eq!(
        denied.status, 403,
        "subscribing to user events needs users:read"
    );
    assert_eq!(
        app.request_as(
            &alice,
            "POST",
            "/v1/api-keys",
            Some(json!({"name": "x", "abilities": ["admin"]}))
        )
        .await
        .status,
        403
    );
}
