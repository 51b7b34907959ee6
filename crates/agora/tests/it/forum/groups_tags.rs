//! Groups (and what their flags grant) and tags.

use serde_json::json;

use super::support::{err, forbidden, login, ok, path, tag, user, Events};
use crate::helpers::spawn_app;

#[tokio::test]
async fn group_events_fire_once_each_and_assignment_updates_the_user() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let mut ev = Events::subscribe(&app, &["group.*", "user.updated"], None).await;

    let g = ok(
        app.post(
            "/v1/groups",
            json!({"name": "Staff", "description": "The team"}),
        )
        .await,
        201,
    );
    assert_eq!(g["is_moderator"], false);
    assert_eq!(g["num_members"], 0);
    ev.expect("group.created", &g).await;
    let u = ok(
        app.patch(&path("groups", &g), json!({"is_admin": true}))
            .await,
        200,
    );
    assert_eq!(u["is_admin"], true);
    ev.expect("group.updated", &u).await;

    let member = format!(
        "{}/members/{}",
        path("groups", &g),
        alice["id"].as_str().unwrap()
    );
    let assigned = ok(app.put(&member, json!({})).await, 200);
    assert_eq!(assigned["group"], json!({"id": g["id"], "name": "Staff"}));
    ev.expect("user.updated", &assigned).await;
    assert_eq!(
        ok(app.get(&path("groups", &g)).await, 200)["num_members"],
        1
    );

    // An admin's session may create categories.
    let token = login(&app, "alice").await;
    ok(
        app.request_as(
            &token,
            "POST",
            "/v1/categories",
            Some(json!({"name": "Admins only"})),
        )
        .await,
        201,
    );

    let before = ok(app.get(&path("groups", &g)).await, 200);
    assert_eq!(app.delete(&path("groups", &g)).await.status, 204);
    ev.expect("group.deleted", &before).await;
    assert!(ok(app.get(&path("users", &alice)).await, 200)["group"].is_null());
    forbidden(
        &app,
        &token,
        "POST",
        "/v1/categories",
        Some(json!({"name": "Not any more"})),
    )
    .await;
    ev.quiet().await;
}

#[tokio::test]
async fn tag_events_fire_once_each() {
    let app = spawn_app().await;
    let mut ev = Events::subscribe(&app, &["tag.*"], None).await;
    let t = tag(&app, "rust").await;
    ev.expect("tag.created", &t).await;
    err(
        app.post("/v1/tags", json!({"name": "RUST"})).await,
        409,
        "tag_exists",
    );
    let u = ok(
        app.patch(
            &path("tags", &t),
            json!({"name": "rustlang", "description": "Rust"}),
        )
        .await,
        200,
    );
    ev.expect("tag.updated", &u).await;
    assert_eq!(app.delete(&path("tags", &t)).await.status, 204);
    ev.expect("tag.deleted", &u).await;
    ev.quiet().await;
}
