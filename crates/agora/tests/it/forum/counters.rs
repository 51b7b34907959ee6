//! Counters stay exact under concurrency: 200 replies at once to one thread.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use super::support::{category, ok, path, thread, user, Events};
use crate::helpers::spawn_app;

#[tokio::test]
async fn counters_are_exact_after_200_concurrent_replies() {
    const REPLIES: usize = 200;
    let app = spawn_app().await;
    let users = [
        user(&app, "alice").await,
        user(&app, "bob").await,
        user(&app, "carol").await,
        user(&app, "dave").await,
    ];
    let general = category(&app, "General").await;
    let t = thread(&app, &general, &users[0], &[]).await;
    let mut ev = Events::subscribe(&app, &["post.created"], None).await;

    let url = app.url(&format!("{}/posts", path("threads", &t)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REPLIES {
        let (client, url, key) = (app.client.clone(), url.clone(), app.key.clone());
        let user_id = users[i % users.len()]["id"].clone();
        tasks.spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"body": format!("reply {i}"), "user_id": user_id}))
                .send()
                .await
                .expect("request sent");
            assert_eq!(res.status().as_u16(), 201);
            res.json::<Value>().await.unwrap()
        });
    }
    let mut created = Vec::new();
    while let Some(r) = tasks.join_next().await {
        created.push(r.expect("reply task"));
    }
    let ids: HashSet<&str> = created.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), REPLIES);

    let thread_now = ok(app.get(&path("threads", &t)).await, 200);
    assert_eq!(thread_now["num_replies"], REPLIES);
    let newest = ids.iter().max().unwrap();
    assert_eq!(thread_now["latest_post"]["id"], *newest);
    for u in &users {
        let n = ok(app.get(&path("users", u)).await, 200);
        assert_eq!(n["num_posts"], REPLIES / users.len(), "{}", u["username"]);
    }
    assert_eq!(
        ok(app.get(&path("users", &users[0])).await, 200)["num_threads"],
        1
    );
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let page = ok(
            app.get(&format!("{}/posts?limit=250{q}", path("threads", &t)))
                .await,
            200,
        );
        listed += page["data"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, REPLIES);

    // Every reply fired exactly one post.created.
    let got = ev.rx.wait_for(REPLIES, Duration::from_secs(30)).await;
    let delivered: HashSet<String> = got
        .iter()
        .map(|d| d.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered.len(), REPLIES);
    for _ in 0..REPLIES {
        ev.next("post.created").await;
    }
    ev.quiet().await;
}
