//! Users: registration, login, profile, follows, presence, deletion, and their events.

use std::time::Duration;

use serde_json::json;

use super::support::{err, forbidden, login, ok, path, user, Events, PASSWORD, WAIT};
use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn user_events_fire_once_each_with_the_user_as_data() {
    let app = spawn_app().await;
    let mut ev = Events::subscribe(&app, &["user.*"], None).await;

    let alice = user(&app, "alice").await;
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["display_name"], "alice");
    assert!(alice["id"].as_str().unwrap().starts_with("usr_"));
    ev.expect("user.registered", &alice).await;
    let bob = user(&app, "bob").await;
    ev.expect("user.registered", &bob).await;

    let token = login(&app, "alice").await;
    assert!(token.starts_with("agora_session_"));
    let updated = ok(
        app.request_as(
            &token,
            "PATCH",
            &path("users", &alice),
            Some(json!({"display_name": "Alice M.", "bio": "Hi", "location": "Paris"})),
        )
        .await,
        200,
    );
    assert_eq!(updated["display_name"], "Alice M.");
    ev.expect("user.updated", &updated).await;

    let follow = ok(
        app.request_as(
            &token,
            "POST",
            &format!("{}/follow", path("users", &bob)),
            None,
        )
        .await,
        200,
    );
    assert_eq!(follow["follower"]["id"], alice["id"]);
    assert_eq!(follow["followed"]["id"], bob["id"]);
    ev.expect("user.followed", &follow).await;
    // Following again changes nothing and fires nothing.
    ok(
        app.request_as(
            &token,
            "POST",
            &format!("{}/follow", path("users", &bob)),
            None,
        )
        .await,
        200,
    );
    let b = ok(app.get(&path("users", &bob)).await, 200);
    assert_eq!(b["num_followers"], 1);
    let unfollow = ok(
        app.request_as(
            &token,
            "DELETE",
            &format!("{}/follow", path("users", &bob)),
            None,
        )
        .await,
        200,
    );
    ev.expect("user.unfollowed", &unfollow).await;
    let b = ok(app.get(&path("users", &bob)).await, 200);
    assert_eq!(b["num_followers"], 0);

    let gone = ok(app.get(&path("users", &bob)).await, 200);
    assert_eq!(app.delete(&path("users", &bob)).await.status, 204);
    ev.expect("user.deleted", &gone).await;
    err(app.get(&path("users", &bob)).await, 404, "not_found");
    ev.quiet().await;
}

#[tokio::test]
async fn presence_fires_online_on_the_first_heartbeat_and_offline_from_the_timer() {
    let app = spawn_app_with(|c| c.presence_timeout = "1s".parse().unwrap()).await;
    let mut ev = Events::subscribe(&app, &["user.online", "user.offline"], None).await;
    let alice = user(&app, "alice").await;
    let token = login(&app, "alice").await;

    let me = ok(
        app.request_as(&token, "POST", "/v1/presence", None).await,
        200,
    );
    assert_eq!(me["is_online"], true);
    ev.expect("user.online", &me).await;
    // Heartbeats within the timeout keep the user online without new events.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ok(
            app.request_as(&token, "POST", "/v1/presence", None).await,
            200,
        );
    }
    assert_eq!(
        ev.rx.received().len(),
        1,
        "no event while heartbeats arrive"
    );

    // Heartbeats stop: the sweeper, not a request, marks the user offline.
    let offline = ev.next("user.offline").await;
    assert_eq!(offline["id"], alice["id"]);
    assert_eq!(offline["is_online"], false);
    assert_eq!(
        ok(app.get(&path("users", &alice)).await, 200)["is_online"],
        false
    );
    ev.quiet().await;

    // An API key heartbeats for a user it names.
    let again = ok(
        app.post("/v1/presence", json!({"user_id": alice["id"]}))
            .await,
        200,
    );
    ev.expect("user.online", &again).await;
    let _ = WAIT;
}

#[tokio::test]
async fn login_and_sessions() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let bad = app
        .request_as(
            "",
            "POST",
            "/v1/auth/login",
            Some(json!({"login": "alice", "password": "nope nope"})),
        )
        .await;
    err(bad, 401, "invalid_credentials");
    let nobody = app
        .request_as(
            "",
            "POST",
            "/v1/auth/login",
            Some(json!({"login": "nobody", "password": PASSWORD})),
        )
        .await;
    err(nobody, 401, "invalid_credentials");
    // Email works as the login too, case-insensitively.
    let a = app
        .request_as(
            "",
            "POST",
            "/v1/auth/login",
            Some(json!({"login": "ALICE@example.com", "password": PASSWORD})),
        )
        .await;
    let token = ok(a, 200)["token"].as_str().unwrap().to_owned();
    assert_eq!(
        ok(
            app.request_as(&token, "GET", &path("users", &alice), None)
                .await,
            200
        )["id"],
        alice["id"]
    );
    // A session never manages webhooks.
    forbidden(&app, &token, "GET", "/v1/webhooks", None).await;
    assert_eq!(
        app.request_as(&token, "POST", "/v1/auth/logout", None)
            .await
            .status,
        204
    );
    err(
        app.request_as(&token, "GET", "/v1/users", None).await,
        401,
        "unauthorized",
    );
    // Another user's email is hidden from a member's session.
    let bob = user(&app, "bob").await;
    let token = login(&app, "alice").await;
    let seen = ok(
        app.request_as(&token, "GET", &path("users", &bob), None)
            .await,
        200,
    );
    assert!(seen["email"].is_null());
    // Taken names are refused, case-insensitively.
    err(
        app.post(
            "/v1/users",
            json!({"username": "ALICE", "email": "x@example.com", "password": PASSWORD}),
        )
        .await,
        409,
        "username_taken",
    );
}
