//! Threads: every thread event, locking, moving, and lists.

use serde_json::json;

use super::support::{category, err, ok, path, reply, tag, thread, user, Events};
use crate::helpers::spawn_app;

#[tokio::test]
async fn thread_events_fire_once_each_with_the_thread_as_data() {
    let app = spawn_app().await;
    let mut ev = Events::subscribe(&app, &["thread.*"], None).await;
    let alice = user(&app, "alice").await;
    let general = category(&app, "General").await;
    let news = category(&app, "News").await;
    tag(&app, "rust").await;

    let t = thread(&app, &general, &alice, &["rust"]).await;
    assert_eq!(
        t["user"],
        json!({"id": alice["id"], "username": "alice", "display_name": "alice", "avatar_url": null})
    );
    assert_eq!(t["category"]["id"], general["id"]);
    assert_eq!(t["tags"][0]["name"], "rust");
    assert_eq!(t["num_replies"], 0);
    assert!(t["latest_post"].is_null());
    ev.expect("thread.created", &t).await;
    assert_eq!(ok(app.get(&path("threads", &t)).await, 200), t);

    let u = ok(
        app.patch(
            &path("threads", &t),
            json!({"title": "Renamed", "tags": []}),
        )
        .await,
        200,
    );
    assert_eq!(u["title"], "Renamed");
    assert_eq!(u["tags"], json!([]));
    assert!(u["edited_at"].is_string());
    ev.expect("thread.updated", &u).await;

    for (action, method, event) in [
        ("pin", "POST", "thread.pinned"),
        ("pin", "DELETE", "thread.unpinned"),
        ("lock", "POST", "thread.locked"),
        ("lock", "DELETE", "thread.unlocked"),
    ] {
        let a = app
            .request_as(
                &app.key,
                method,
                &format!("{}/{action}", path("threads", &t)),
                None,
            )
            .await;
        let answer = ok(a, 200);
        ev.expect(event, &answer).await;
    }
    // Pinning twice is one transition: the second changes nothing and fires nothing.
    let pinned = ok(
        app.request_as(
            &app.key,
            "POST",
            &format!("{}/pin", path("threads", &t)),
            None,
        )
        .await,
        200,
    );
    ev.expect("thread.pinned", &pinned).await;
    assert_eq!(pinned["is_pinned"], true);
    ok(
        app.request_as(
            &app.key,
            "POST",
            &format!("{}/pin", path("threads", &t)),
            None,
        )
        .await,
        200,
    );

    let moved = ok(
        app.post(
            &format!("{}/move", path("threads", &t)),
            json!({"category_id": news["id"]}),
        )
        .await,
        200,
    );
    assert_eq!(moved["category"]["id"], news["id"]);
    ev.expect("thread.moved", &moved).await;
    assert_eq!(
        ok(app.get(&path("categories", &general)).await, 200)["num_threads"],
        0
    );
    assert_eq!(
        ok(app.get(&path("categories", &news)).await, 200)["num_threads"],
        1
    );

    assert_eq!(app.delete(&path("threads", &t)).await.status, 204);
    ev.expect("thread.deleted", &moved).await;
    err(app.get(&path("threads", &t)).await, 404, "not_found");
    assert_eq!(
        ok(app.get(&path("users", &alice)).await, 200)["num_threads"],
        0
    );
    ev.quiet().await;
}

#[tokio::test]
async fn a_locked_thread_refuses_replies() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let general = category(&app, "General").await;
    let t = thread(&app, &general, &alice, &[]).await;
    let mut ev = Events::subscribe(&app, &["post.*"], None).await;
    ok(
        app.post(&format!("{}/lock", path("threads", &t)), json!({}))
            .await,
        200,
    );
    err(
        app.post(
            &format!("{}/posts", path("threads", &t)),
            json!({"body": "hi", "user_id": alice["id"]}),
        )
        .await,
        409,
        "thread_locked",
    );
    let after = ok(app.get(&path("threads", &t)).await, 200);
    assert_eq!(after["num_replies"], 0);
    assert_eq!(
        ok(app.get(&path("users", &alice)).await, 200)["num_posts"],
        0
    );
    ok(
        app.delete(&format!("{}/lock", path("threads", &t))).await,
        200,
    );
    reply(&app, &t, &alice).await;
    ev.next("post.created").await;
    ev.quiet().await;
}

#[tokio::test]
async fn lists_sort_by_newest_activity_filter_and_paginate() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let bob = user(&app, "bob").await;
    let a = category(&app, "A").await;
    let b = category(&app, "B").await;
    tag(&app, "rust").await;
    let t1 = thread(&app, &a, &alice, &["rust"]).await;
    let t2 = thread(&app, &b, &bob, &[]).await;
    let t3 = thread(&app, &a, &bob, &[]).await;
    // A reply makes t1 the most recently active.
    reply(&app, &t1, &bob).await;

    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = ok(app.get("/v1/threads").await, 200);
    assert_eq!(
        ids(&all),
        [&t1["id"], &t3["id"], &t2["id"]].map(|v| v.as_str().unwrap().to_owned())
    );
    let first = ok(app.get("/v1/threads?limit=2").await, 200);
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = ok(
        app.get(&format!("/v1/threads?limit=2&cursor={cursor}"))
            .await,
        200,
    );
    assert_eq!(ids(&second), [t2["id"].as_str().unwrap()]);
    assert!(second["next_cursor"].is_null());

    let in_a = ok(
        app.get(&format!(
            "/v1/threads?category_id={}",
            a["id"].as_str().unwrap()
        ))
        .await,
        200,
    );
    assert_eq!(ids(&in_a).len(), 2);
    let tagged = ok(app.get("/v1/threads?tag=rust").await, 200);
    assert_eq!(ids(&tagged), [t1["id"].as_str().unwrap()]);
    let by_bob = ok(
        app.get(&format!(
            "/v1/threads?author_id={}",
            bob["id"].as_str().unwrap()
        ))
        .await,
        200,
    );
    assert_eq!(ids(&by_bob).len(), 2);
    err(
        app.get("/v1/threads?cursor=garbage").await,
        400,
        "invalid_cursor",
    );
    err(app.get("/v1/threads?limit=0").await, 400, "invalid_limit");
    let t1_now = ok(app.get(&path("threads", &t1)).await, 200);
    assert_eq!(t1_now["num_replies"], 1);
    assert_eq!(t1_now["latest_post"]["user"]["id"], bob["id"]);
}
