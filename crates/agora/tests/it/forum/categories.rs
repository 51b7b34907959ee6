//! Categories and their members.

use serde_json::json;

use super::support::{category, err, forbidden, login, ok, path, thread, user, Events};
use crate::helpers::spawn_app;

#[tokio::test]
async fn category_events_fire_once_each() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let mut ev = Events::subscribe(&app, &["category.*"], None).await;

    let c = category(&app, "Show & Tell").await;
    assert_eq!(c["slug"], "show-tell");
    ev.expect("category.created", &c).await;
    let u = ok(
        app.patch(
            &path("categories", &c),
            json!({"description": "Demos", "position": 2}),
        )
        .await,
        200,
    );
    assert_eq!(u["description"], "Demos");
    ev.expect("category.updated", &u).await;

    let token = login(&app, "alice").await;
    let members = format!("{}/members", path("categories", &c));
    let joined = ok(app.request_as(&token, "POST", &members, None).await, 201);
    assert_eq!(joined["user"]["id"], alice["id"]);
    assert_eq!(joined["category"]["id"], c["id"]);
    ev.expect("category.member_joined", &joined).await;
    // Joining twice changes nothing.
    ok(app.request_as(&token, "POST", &members, None).await, 200);
    assert_eq!(
        ok(app.get(&path("categories", &c)).await, 200)["num_members"],
        1
    );
    let listed = ok(app.get(&members).await, 200);
    assert_eq!(listed["data"], json!([joined]));
    let left = ok(
        app.request_as(
            &token,
            "DELETE",
            &format!("{members}/{}", alice["id"].as_str().unwrap()),
            None,
        )
        .await,
        200,
    );
    assert_eq!(left, joined);
    ev.expect("category.member_left", &left).await;
    assert_eq!(
        ok(app.get(&path("categories", &c)).await, 200)["num_members"],
        0
    );

    // A category with threads cannot be deleted; an empty one can.
    let t = thread(&app, &c, &alice, &[]).await;
    err(
        app.delete(&path("categories", &c)).await,
        409,
        "category_not_empty",
    );
    assert_eq!(app.delete(&path("threads", &t)).await.status, 204);
    let before = ok(app.get(&path("categories", &c)).await, 200);
    assert_eq!(app.delete(&path("categories", &c)).await.status, 204);
    ev.expect("category.deleted", &before).await;
    ev.quiet().await;
    // Members and sessions cannot create categories.
    forbidden(
        &app,
        &token,
        "POST",
        "/v1/categories",
        Some(json!({"name": "Mine"})),
    )
    .await;
}
