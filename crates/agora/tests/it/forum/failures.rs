//! A write that fails (validation, conflict, a rolled-back transaction) fires nothing and
//! changes nothing; no input produces a 5xx.

use serde_json::json;

use super::support::{category, err, ok, path, tag, thread, user, Events, PASSWORD};
use crate::helpers::spawn_app;

#[tokio::test]
async fn failed_writes_fire_nothing_and_change_nothing() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let general = category(&app, "General").await;
    let rust = tag(&app, "rust").await;
    tag(&app, "go").await;
    let t = thread(&app, &general, &alice, &[]).await;
    let mut ev = Events::subscribe(&app, &["*"], None).await;
    let threads = "/v1/threads";

    // Validation failures, before any write.
    err(app.post(threads, json!({"title": "  ", "body": "b", "category_id": general["id"], "user_id": alice["id"]})).await, 400, "invalid_body");
    err(
        app.post(
            threads,
            json!({"title": "t", "body": "b", "category_id": "cat_nope", "user_id": alice["id"]}),
        )
        .await,
        400,
        "unknown_category",
    );
    err(app.post(threads, json!({"title": "t", "body": "b", "category_id": general["id"], "user_id": alice["id"], "tags": ["nope"]})).await, 400, "unknown_tag");
    err(
        app.post(
            threads,
            json!({"title": "t", "body": "b", "category_id": general["id"]}),
        )
        .await,
        400,
        "missing_user_id",
    );
    err(app.post(threads, json!({"title": "t", "body": "b", "category_id": general["id"], "user_id": "usr_01JD8X2V7K3M9Q4T6B1N5C8R0A"})).await, 400, "unknown_user");
    err(app.post(threads, json!({"title": "t", "body": "b", "category_id": general["id"], "user_id": alice["id"], "pinned": true})).await, 400, "invalid_body");
    err(
        app.post(
            "/v1/users",
            json!({"username": "x", "email": "x@example.com", "password": PASSWORD}),
        )
        .await,
        400,
        "invalid_username",
    );
    err(
        app.post(
            "/v1/users",
            json!({"username": "xavier", "email": "nope", "password": PASSWORD}),
        )
        .await,
        400,
        "invalid_email",
    );
    err(
        app.post(
            "/v1/users",
            json!({"username": "xavier", "email": "x@example.com", "password": "short"}),
        )
        .await,
        400,
        "invalid_password",
    );
    err(
        app.post(
            "/v1/users",
            json!({"username": "xavier", "email": "alice@example.com", "password": PASSWORD}),
        )
        .await,
        409,
        "email_taken",
    );

    // Conflicts raised by the database inside the transaction roll it back whole.
    err(
        app.post(
            "/v1/categories",
            json!({"name": "General again", "slug": "general"}),
        )
        .await,
        409,
        "slug_taken",
    );
    err(
        app.patch(&path("tags", &rust), json!({"name": "GO"})).await,
        409,
        "tag_exists",
    );
    assert_eq!(ok(app.get(&path("tags", &rust)).await, 200)["name"], "rust");
    err(
        app.patch(&path("categories", &general), json!({"slug": "Not A Slug"}))
            .await,
        400,
        "invalid_slug",
    );

    // Nothing changed: counts and lists are as before.
    let cats = ok(app.get("/v1/categories").await, 200);
    assert_eq!(cats["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        ok(app.get(&path("users", &alice)).await, 200)["num_threads"],
        1
    );
    assert_eq!(
        ok(app.get("/v1/users").await, 200)["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(ok(app.get(&path("threads", &t)).await, 200), t);
    ev.quiet().await;
    assert_eq!(ev.seen(), 1, "only the webhook's own webhook.created");

    // And the webhook is live: the next valid write is its first delivery.
    let t2 = thread(&app, &general, &alice, &["rust"]).await;
    ev.expect("thread.created", &t2).await;
    ev.quiet().await;
}

#[tokio::test]
async fn hostile_input_is_never_answered_with_5xx() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let general = category(&app, "General").await;
    let t = thread(&app, &general, &alice, &[]).await;
    let huge = "x".repeat(60_000);
    let cases: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("POST", "/v1/threads".into(), Some(json!({"title": 5}))),
        ("POST", "/v1/threads".into(), Some(json!([]))),
        (
            "POST",
            "/v1/threads".into(),
            Some(
                json!({"title": huge, "body": "b", "category_id": general["id"], "user_id": alice["id"]}),
            ),
        ),
        (
            "POST",
            format!("{}/posts", path("threads", &t)),
            Some(json!({"body": huge, "user_id": alice["id"]})),
        ),
        (
            "POST",
            format!("{}/posts", path("threads", &t)),
            Some(json!({"body": "\u{0}", "user_id": alice["id"]})),
        ),
        ("GET", "/v1/threads/thr_%27%20OR%201=1".into(), None),
        (
            "GET",
            "/v1/threads/'; DROP TABLE threads; --".replace(' ', "%20"),
            None,
        ),
        ("GET", "/v1/users/usr_".into(), None),
        (
            "GET",
            "/v1/posts/pst_00000000000000000000000000".into(),
            None,
        ),
        ("GET", "/v1/threads?limit=99999999999999999999".into(), None),
        (
            "GET",
            "/v1/threads?cursor=9223372036854775807.thr_x".into(),
            None,
        ),
        (
            "GET",
            "/v1/threads?cursor=-9223372036854775808.%25".into(),
            None,
        ),
        ("GET", "/v1/categories?cursor=1.".into(), None),
        (
            "POST",
            "/v1/categories".into(),
            Some(json!({"name": "c", "position": 9_223_372_036_854_775_807i64})),
        ),
        (
            "POST",
            format!("{}/move", path("threads", &t)),
            Some(json!({"category_id": 1})),
        ),
        (
            "POST",
            "/v1/reports".into(),
            Some(json!({"target_type": "planet", "target_id": "x", "reason": "r"})),
        ),
        (
            "POST",
            "/v1/users".into(),
            Some(
                json!({"username": "bob", "email": "b@example.com", "password": "p".repeat(5000)}),
            ),
        ),
        (
            "POST",
            "/v1/auth/login".into(),
            Some(json!({"login": "a".repeat(10_000), "password": "x"})),
        ),
        (
            "POST",
            "/v1/users/usr_01JD8X2V7K3M9Q4T6B1N5C8R0A/follow".into(),
            Some(json!({"user_id": alice["id"]})),
        ),
        (
            "POST",
            format!("{}/follow", path("users", &alice)),
            Some(json!({"user_id": alice["id"]})),
        ),
        (
            "POST",
            "/v1/presence".into(),
            Some(json!({"user_id": "usr_nobody"})),
        ),
        (
            "PATCH",
            path("users", &alice),
            Some(json!({"avatar_url": "javascript:alert(1)"})),
        ),
        ("DELETE", "/v1/groups/grp_x/members/usr_y".into(), None),
    ];
    for (method, p, body) in cases {
        let a = app.request_as(&app.key, method, &p, body).await;
        // Extreme but well-formed values (a cursor at i64::MAX) may succeed; nothing may fail
        // on our side.
        let fine = a.status < 500 && (a.status < 300 || a.status >= 400);
        assert!(fine, "{method} {p} answered {}: {:#}", a.status, a.body);
        if a.status >= 400 {
            assert!(a.body["code"].is_string(), "{method} {p}: {:#}", a.body);
        }
    }
}
