//! A webhook's `filter` routes thread, post and reaction events by category and tag.

use serde_json::json;

use super::support::{category, ok, path, reply, tag, thread, user, Events};
use crate::helpers::spawn_app;

#[tokio::test]
async fn filters_route_thread_post_and_reaction_events_by_category_and_tag() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let a = category(&app, "A").await;
    let b = category(&app, "B").await;
    let rust = tag(&app, "rust").await;
    let events = ["thread.*", "post.*", "reaction.*", "user.*"];
    let mut only_a =
        Events::subscribe(&app, &events, Some(json!({"category_ids": [a["id"]]}))).await;
    let mut only_rust = Events::subscribe(&app, &events, Some(json!({"tags": ["rust"]}))).await;
    let mut by_tag_id = Events::subscribe(&app, &events, Some(json!({"tags": [rust["id"]]}))).await;
    let mut everything = Events::subscribe(&app, &events, None).await;

    let in_a = thread(&app, &a, &alice, &[]).await;
    let in_b_rust = thread(&app, &b, &alice, &["rust"]).await;
    let in_b = thread(&app, &b, &alice, &[]).await;
    let p_a = reply(&app, &in_a, &alice).await;
    let p_b_rust = reply(&app, &in_b_rust, &alice).await;
    reply(&app, &in_b, &alice).await;
    let like = ok(
        app.post(
            &format!("{}/reactions", path("posts", &p_a)),
            json!({"user_id": alice["id"]}),
        )
        .await,
        201,
    );
    // Events without a category or tag (a user's) pass every filter.
    let bob = user(&app, "bob").await;

    only_a.expect("thread.created", &in_a).await;
    only_a.expect("post.created", &p_a).await;
    only_a.expect("reaction.added", &like).await;
    only_a.expect("user.registered", &bob).await;
    for rust_hook in [&mut only_rust, &mut by_tag_id] {
        rust_hook.expect("thread.created", &in_b_rust).await;
        rust_hook.expect("post.created", &p_b_rust).await;
        rust_hook.expect("user.registered", &bob).await;
    }
    for name in [
        "thread.created",
        "thread.created",
        "thread.created",
        "post.created",
        "post.created",
        "post.created",
        "reaction.added",
        "user.registered",
    ] {
        everything.next(name).await;
    }
    only_a.quiet().await;
    only_rust.quiet().await;
    by_tag_id.quiet().await;
    everything.quiet().await;

    // Moving a thread out of A: later events of it no longer reach A's webhook.
    ok(
        app.post(
            &format!("{}/move", path("threads", &in_a)),
            json!({"category_id": b["id"]}),
        )
        .await,
        200,
    );
    everything.next("thread.moved").await;
    reply(&app, &in_a, &alice).await;
    everything.next("post.created").await;
    only_a.quiet().await;
}
