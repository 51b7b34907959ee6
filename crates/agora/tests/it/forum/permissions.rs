//! Who may do what: sessions act as their user; moderators and keys with abilities on
//! anyone's content; keys without an ability are refused.

use serde_json::json;

use super::support::{
    category, err, forbidden, login, moderator, ok, path, reply, thread, user, Events,
};
use crate::helpers::spawn_app;

#[tokio::test]
async fn a_user_cannot_edit_or_delete_another_users_post() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    user(&app, "bob").await;
    let general = category(&app, "General").await;
    let t = thread(&app, &general, &alice, &[]).await;
    let p = reply(&app, &t, &alice).await;
    let mut ev = Events::subscribe(&app, &["post.*", "thread.*"], None).await;

    let bob = login(&app, "bob").await;
    forbidden(
        &app,
        &bob,
        "PATCH",
        &path("posts", &p),
        Some(json!({"body": "mine now"})),
    )
    .await;
    forbidden(&app, &bob, "DELETE", &path("posts", &p), None).await;
    forbidden(
        &app,
        &bob,
        "PATCH",
        &path("threads", &t),
        Some(json!({"title": "mine"})),
    )
    .await;
    forbidden(&app, &bob, "DELETE", &path("threads", &t), None).await;
    forbidden(
        &app,
        &bob,
        "POST",
        &format!("{}/pin", path("threads", &t)),
        None,
    )
    .await;
    forbidden(
        &app,
        &bob,
        "PATCH",
        &path("users", &alice),
        Some(json!({"bio": "hacked"})),
    )
    .await;
    // A session cannot post as somebody else.
    forbidden(
        &app,
        &bob,
        "POST",
        &format!("{}/posts", path("threads", &t)),
        Some(json!({"body": "as alice", "user_id": alice["id"]})),
    )
    .await;
    assert_eq!(ok(app.get(&path("posts", &p)).await, 200), p);
    ev.quiet().await;

    // Its author may; so may a moderator.
    let alice_token = login(&app, "alice").await;
    let mine = ok(
        app.request_as(
            &alice_token,
            "PATCH",
            &path("posts", &p),
            Some(json!({"body": "edited by me"})),
        )
        .await,
        200,
    );
    ev.expect("post.updated", &mine).await;
    let (m, mod_token) = moderator(&app, "mod").await;
    let modded = ok(
        app.request_as(
            &mod_token,
            "PATCH",
            &path("posts", &p),
            Some(json!({"body": "[removed]"})),
        )
        .await,
        200,
    );
    assert_eq!(modded["edited_by"], m["id"]);
    ev.expect("post.updated", &modded).await;
    let pinned = ok(
        app.request_as(
            &mod_token,
            "POST",
            &format!("{}/pin", path("threads", &t)),
            None,
        )
        .await,
        200,
    );
    ev.expect("thread.pinned", &pinned).await;
    ev.quiet().await;
}

#[tokio::test]
async fn a_key_without_threads_write_cannot_create_threads() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let general = category(&app, "General").await;
    let mut ev = Events::subscribe(&app, &["thread.*"], None).await;
    let key = ok(
        app.post(
            "/v1/api-keys",
            json!({"name": "reader", "abilities": ["threads:read", "posts:write"]}),
        )
        .await,
        201,
    );
    let key = key["key"].as_str().unwrap();
    let body =
        json!({"title": "t", "body": "b", "category_id": general["id"], "user_id": alice["id"]});
    forbidden(&app, key, "POST", "/v1/threads", Some(body.clone())).await;
    assert_eq!(
        ok(app.request_as(key, "GET", "/v1/threads", None).await, 200)["data"],
        json!([])
    );
    forbidden(
        &app,
        key,
        "POST",
        "/v1/categories",
        Some(json!({"name": "x"})),
    )
    .await;
    forbidden(
        &app,
        key,
        "POST",
        "/v1/users",
        Some(json!({"username": "zed", "email": "z@example.com", "password": "long enough"})),
    )
    .await;
    ev.quiet().await;

    let writer = ok(
        app.post(
            "/v1/api-keys",
            json!({"name": "writer", "abilities": ["threads:write"]}),
        )
        .await,
        201,
    );
    let t = ok(
        app.request_as(
            writer["key"].as_str().unwrap(),
            "POST",
            "/v1/threads",
            Some(body),
        )
        .await,
        201,
    );
    ev.expect("thread.created", &t).await;
    // Unauthenticated requests are refused.
    err(
        app.request_as("agora_wrong", "GET", "/v1/threads", None)
            .await,
        401,
        "unauthorized",
    );
    err(
        app.request_as("agora_session_wrong", "GET", "/v1/threads", None)
            .await,
        401,
        "unauthorized",
    );
}
