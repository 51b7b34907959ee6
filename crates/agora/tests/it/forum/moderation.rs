//! Moderation: spam flags (and flagged content leaving lists) and reports.

use serde_json::json;

use super::support::{
    category, err, forbidden, login, moderator, ok, path, reply, thread, user, Events,
};
use crate::helpers::spawn_app;

#[tokio::test]
async fn spam_flags_fire_once_and_hide_content_from_lists() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let general = category(&app, "General").await;
    let t = thread(&app, &general, &alice, &[]).await;
    let p = reply(&app, &t, &alice).await;
    let (_, mod_token) = moderator(&app, "mod").await;
    let mut ev = Events::subscribe(&app, &["content.*"], None).await;

    let flag = ok(
        app.request_as(
            &mod_token,
            "POST",
            &format!("{}/spam", path("threads", &t)),
            None,
        )
        .await,
        200,
    );
    assert_eq!(flag["content_type"], "thread");
    assert_eq!(flag["is_spam"], true);
    assert_eq!(flag["thread"]["is_spam"], true);
    ev.expect("content.flagged_spam", &flag).await;
    assert_eq!(ok(app.get("/v1/threads").await, 200)["data"], json!([]));
    let with_spam = ok(app.get("/v1/threads?include_spam=true").await, 200);
    assert_eq!(with_spam["data"].as_array().unwrap().len(), 1);
    let member = login(&app, "alice").await;
    forbidden(&app, &member, "GET", "/v1/threads?include_spam=true", None).await;
    let unflag = ok(
        app.request_as(
            &mod_token,
            "DELETE",
            &format!("{}/spam", path("threads", &t)),
            None,
        )
        .await,
        200,
    );
    ev.expect("content.unflagged_spam", &unflag).await;
    assert_eq!(
        ok(app.get("/v1/threads").await, 200)["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let pflag = ok(
        app.request_as(
            &mod_token,
            "POST",
            &format!("{}/spam", path("posts", &p)),
            None,
        )
        .await,
        200,
    );
    assert_eq!(pflag["post"]["id"], p["id"]);
    ev.expect("content.flagged_spam", &pflag).await;
    let posts = format!("{}/posts", path("threads", &t));
    assert_eq!(ok(app.get(&posts).await, 200)["data"], json!([]));
    // Flagging again changes nothing.
    ok(
        app.request_as(
            &mod_token,
            "POST",
            &format!("{}/spam", path("posts", &p)),
            None,
        )
        .await,
        200,
    );
    // Members cannot flag.
    forbidden(
        &app,
        &member,
        "POST",
        &format!("{}/spam", path("posts", &p)),
        None,
    )
    .await;
    ev.quiet().await;
}

#[tokio::test]
async fn reports_fire_created_and_resolved() {
    let app = spawn_app().await;
    let alice = user(&app, "alice").await;
    let bob = user(&app, "bob").await;
    let general = category(&app, "General").await;
    let t = thread(&app, &general, &bob, &[]).await;
    let (moderator_user, mod_token) = moderator(&app, "mod").await;
    let mut ev = Events::subscribe(&app, &["report.*"], None).await;

    let member = login(&app, "alice").await;
    let r = ok(
        app.request_as(
            &member,
            "POST",
            "/v1/reports",
            Some(json!({"target_type": "thread", "target_id": t["id"], "reason": "Advertising"})),
        )
        .await,
        201,
    );
    assert_eq!(r["status"], "open");
    assert_eq!(r["reported_by"], alice["id"]);
    ev.expect("report.created", &r).await;
    let on_user = ok(
        app.request_as(
            &member,
            "POST",
            "/v1/reports",
            Some(json!({"target_type": "user", "target_id": bob["id"], "reason": "Rude"})),
        )
        .await,
        201,
    );
    ev.expect("report.created", &on_user).await;
    err(
        app.request_as(&member, "POST", "/v1/reports",
            Some(json!({"target_type": "post", "target_id": "pst_01JD8X4B6D9F2H5K8M1P4R7T0W", "reason": "x"}))).await,
        400,
        "unknown_target",
    );
    // Members cannot list or resolve reports; moderators can.
    forbidden(&app, &member, "GET", "/v1/reports", None).await;
    let resolve = format!("{}/resolve", path("reports", &r));
    forbidden(
        &app,
        &member,
        "POST",
        &resolve,
        Some(json!({"resolution": "no"})),
    )
    .await;
    let open = ok(
        app.request_as(&mod_token, "GET", "/v1/reports?status=open", None)
            .await,
        200,
    );
    assert_eq!(open["data"].as_array().unwrap().len(), 2);
    let done = ok(
        app.request_as(
            &mod_token,
            "POST",
            &resolve,
            Some(json!({"resolution": "Thread removed"})),
        )
        .await,
        200,
    );
    assert_eq!(done["status"], "resolved");
    assert_eq!(done["resolved_by"], moderator_user["id"]);
    ev.expect("report.resolved", &done).await;
    err(
        app.request_as(
            &mod_token,
            "POST",
            &resolve,
            Some(json!({"resolution": "again"})),
        )
        .await,
        409,
        "report_resolved",
    );
    ev.quiet().await;
}
