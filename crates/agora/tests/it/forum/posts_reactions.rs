//! Posts and reactions: their events, edits, replies to replies, counts.

use serde_json::json;

use super::support::{category, err, ok, path, reply, thread, user, Events};
use crate::helpers::spawn_app;

#[tokio::test]
async fn post_events_fire_once_each_with_the_post_as_data() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let bob = user(&app, "bob").await;
    let general = category(&app, "General").await;
    let t = thread(&app, &general, &alice, &[]).await;
    let mut ev = Events::subscribe(&app, &["post.*"], None).await;

    let p = reply(&app, &t, &bob).await;
    assert_eq!(p["thread_id"], t["id"]);
    assert_eq!(p["category_id"], general["id"]);
    assert_eq!(p["user"]["username"], "bob");
    assert_eq!(p["reactions"], json!({}));
    ev.expect("post.created", &p).await;
    let answer = ok(
        app.post(
            &format!("{}/posts", path("threads", &t)),
            json!({"body": "To you, bob", "reply_to_id": p["id"], "user_id": alice["id"]}),
        )
        .await,
        201,
    );
    assert_eq!(answer["reply_to_id"], p["id"]);
    ev.expect("post.created", &answer).await;
    let thread_now = ok(app.get(&path("threads", &t)).await, 200);
    assert_eq!(thread_now["num_replies"], 2);
    assert_eq!(thread_now["latest_post"]["id"], answer["id"]);

    let token = super::support::login(&app, "bob").await;
    let edited = ok(
        app.request_as(
            &token,
            "PATCH",
            &path("posts", &p),
            Some(json!({"body": "Edited"})),
        )
        .await,
        200,
    );
    assert_eq!(edited["body"], "Edited");
    assert_eq!(edited["edited_by"], bob["id"]);
    assert!(edited["edited_at"].is_string());
    ev.expect("post.updated", &edited).await;

    let list = ok(
        app.get(&format!("{}/posts", path("threads", &t))).await,
        200,
    );
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert_eq!(list["data"][0], edited);

    assert_eq!(
        app.request_as(&token, "DELETE", &path("posts", &p), None)
            .await
            .status,
        204
    );
    ev.expect("post.deleted", &edited).await;
    let thread_now = ok(app.get(&path("threads", &t)).await, 200);
    assert_eq!(thread_now["num_replies"], 1);
    assert_eq!(ok(app.get(&path("users", &bob)).await, 200)["num_posts"], 0);
    // The reply that answered it stands, answering nothing.
    assert!(ok(app.get(&path("posts", &answer)).await, 200)["reply_to_id"].is_null());
    // A reply cannot answer a post of another thread.
    let other = thread(&app, &general, &alice, &[]).await;
    err(
        app.post(
            &format!("{}/posts", path("threads", &other)),
            json!({"body": "x", "reply_to_id": answer["id"], "user_id": alice["id"]}),
        )
        .await,
        400,
        "invalid_reply_to",
    );
    ev.quiet().await;
}

#[tokio::test]
async fn reactions_fire_added_and_removed_with_counts() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let bob = user(&app, "bob").await;
    let general = category(&app, "General").await;
    let t = thread(&app, &general, &alice, &[]).await;
    let p = reply(&app, &t, &alice).await;
    let mut ev = Events::subscribe(&app, &["reaction.*"], None).await;
    let reactions = format!("{}/reactions", path("posts", &p));

    let token = super::support::login(&app, "bob").await;
    let like = ok(app.request_as(&token, "POST", &reactions, None).await, 201);
    assert_eq!(like["kind"], "like");
    assert_eq!(like["user"]["id"], bob["id"]);
    assert_eq!(like["counts"], json!({"like": 1}));
    ev.expect("reaction.added", &like).await;
    // One per user, post and kind: a second like is the same reaction, and fires nothing.
    let again = ok(app.request_as(&token, "POST", &reactions, None).await, 200);
    assert_eq!(again["id"], like["id"]);
    let heart = ok(
        app.post(&reactions, json!({"kind": "heart", "user_id": alice["id"]}))
            .await,
        201,
    );
    assert_eq!(heart["counts"], json!({"like": 1, "heart": 1}));
    ev.expect("reaction.added", &heart).await;
    assert_eq!(
        ok(app.get(&path("posts", &p)).await, 200)["reactions"],
        json!({"like": 1, "heart": 1})
    );

    let removed = ok(
        app.request_as(&token, "DELETE", &reactions, None).await,
        200,
    );
    assert_eq!(removed["id"], like["id"]);
    assert_eq!(removed["counts"], json!({"heart": 1}));
    ev.expect("reaction.removed", &removed).await;
    err(
        app.request_as(&token, "DELETE", &reactions, None).await,
        404,
        "not_found",
    );
    err(
        app.request_as(&token, "POST", &reactions, Some(json!({"kind": "Not OK"})))
            .await,
        400,
        "invalid_kind",
    );
    let list = ok(app.get(&reactions).await, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    ev.quiet().await;
}
