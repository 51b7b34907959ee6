//! Both signature headers verify with an implementation written here from the Standard
//! Webhooks specification and with the official `standardwebhooks` crate, not with Agora's
//! own code.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::helpers::{spawn_app, Received, Receiver};

/// Standard Webhooks verification: the key is the base64 after `whsec_` (the only shape the
/// official libraries read alike), the content `{id}.{timestamp}.{body}`, and any of the
/// space-separated `v1,` signatures may match.
pub(crate) fn verify_standard(secret: &str, msg: &Received) -> bool {
    let b64 = secret.strip_prefix("whsec_").expect("a `whsec_` secret");
    verify_with_key(&B64.decode(b64).unwrap(), msg)
}

/// The official crate's verdict on a delivery, given the secret string as a user would.
fn verify_official(secret: &str, msg: &Received) -> bool {
    let webhook = standardwebhooks::Webhook::new(secret).expect("the library reads the secret");
    webhook.verify(&msg.body, &msg.headers).is_ok()
}

fn verify_with_key(key: &[u8], msg: &Received) -> bool {
    let id = msg.header("webhook-id");
    let ts = msg.header("webhook-timestamp");
    let ts_num: i64 = ts.parse().expect("numeric timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - ts_num).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&msg.body);
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    msg.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

fn verify_simple(secret: &str, msg: &Received) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&msg.body);
    msg.header("x-agora-signature")
        == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn the_test_verifier_agrees_with_the_reference_known_answer() {
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let key = B64.decode(&secret[6..]).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(br#"msg_27UH4WbU6Z5A5EzD8u03UvzRbpk.1649367553.{"email":"test@example.com","username":"test_user"}"#);
    assert_eq!(
        format!("v1,{}", B64.encode(mac.finalize().into_bytes())),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

#[tokio::test]
async fn deliveries_carry_the_contract_headers_and_verify() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.enrolled"]}))
        .await;
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(B64.decode(&secret[6..]).unwrap().len(), 32);

    let event = app
        .publish("course.enrolled", json!({"course": "rust-101"}))
        .await;
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    let msg = &got[0];
    assert!(
        verify_standard(secret, msg),
        "webhook-signature does not verify"
    );
    assert!(
        verify_simple(secret, msg),
        "x-agora-signature does not verify"
    );
    assert!(!verify_standard(
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        msg
    ));

    assert_eq!(msg.header("content-type"), "application/json");
    assert!(msg.header("user-agent").starts_with("Agora-Webhooks/"));
    assert!(msg.header("webhook-id").starts_with("msg_"));
    assert_eq!(msg.header("x-agora-event"), "course.enrolled");
    assert_eq!(msg.header("x-agora-forum"), "Test Forum");
    assert_eq!(msg.header("x-agora-attempt"), "1");
    let body = msg.json();
    assert_eq!(body["id"], event["id"]);
    assert_eq!(body["type"], "course.enrolled");
    assert_eq!(body["data"], json!({"course": "rust-101"}));
    let ts = body["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    let raw = std::str::from_utf8(&msg.body).unwrap();
    assert!(raw.starts_with(r#"{"id":"evt_"#), "{raw}");
}

#[tokio::test]
async fn the_official_library_verifies_chosen_and_generated_secrets() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let chosen = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"], "secret": chosen}))
        .await;
    assert_eq!(hook["secret"], chosen);
    let generated = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.publish("course.enrolled", json!({"n": 1})).await;
    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    for secret in [chosen, &generated] {
        let msg = got
            .iter()
            .find(|m| verify_simple(secret, m))
            .expect("a delivery signed with this secret");
        assert!(verify_official(secret, msg), "the official library refused");
        assert!(verify_standard(secret, msg));
        let mut tampered = msg.clone();
        tampered.body = msg.body.slice(..msg.body.len() - 1);
        assert!(
            !verify_official(secret, &tampered),
            "a tampered body verified"
        );
    }
}

#[tokio::test]
async fn secrets_the_official_libraries_cannot_read_are_refused_everywhere() {
    let app = spawn_app().await;
    let hook = app
        .create_webhook(json!({"url": "http://127.0.0.1:9/h", "events": ["thread.*"]}))
        .await;
    let id = hook["id"].as_str().unwrap();
    let short = format!("whsec_{}", B64.encode([1u8; 23]));
    for refused in [
        "my-own-secret-1234",
        "whsec_not*base64*at*all",
        short.as_str(),
    ] {
        let answers = [
            app.post(
                "/v1/webhooks",
                json!({"url": "http://127.0.0.1:9/h", "events": ["thread.*"], "secret": refused}),
            )
            .await,
            app.patch(&format!("/v1/webhooks/{id}"), json!({"secret": refused}))
                .await,
            app.put(
                &format!("/v1/webhooks/{id}"),
                json!({"url": "http://127.0.0.1:9/h", "events": ["thread.*"], "secret": refused}),
            )
            .await,
            app.post(
                &format!("/v1/webhooks/{id}/rotate-secret"),
                json!({"secret": refused}),
            )
            .await,
        ];
        for a in answers {
            assert_eq!(a.status, 400, "{refused}: {:?}", a.body);
            assert_eq!(a.body["code"], "invalid_secret");
            let message = a.body["message"].as_str().unwrap();
            assert!(
                message.contains("whsec_") && message.contains("base64"),
                "{message}"
            );
            assert!(!message.contains(refused));
        }
    }
    let listed = app.get("/v1/webhooks").await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "nothing created"
    );
}

#[tokio::test]
async fn a_rotation_may_choose_its_secret() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let old = hook["secret"].as_str().unwrap().to_owned();
    let chosen = format!("whsec_{}", B64.encode([42u8; 64]));
    let rotated = app
        .post(
            &format!(
                "/v1/webhooks/{}/rotate-secret",
                hook["id"].as_str().unwrap()
            ),
            json!({"secret": chosen}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    assert_eq!(rotated.body["secret"], chosen.as_str());
    app.publish("course.enrolled", json!({})).await;
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert!(verify_official(&chosen, &got[0]));
    assert!(
        verify_official(&old, &got[0]),
        "the old one signs for the grace period"
    );
}

#[tokio::test]
async fn a_secret_stored_in_the_old_shape_keeps_signing() {
    let mut app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    app.stop().await;
    // A secret chosen before chosen secrets had to be `whsec_`: start-up seals it as it is.
    let old_shape = "my-own-secret-1234";
    let db = app.database().await;
    sqlx::query("UPDATE webhooks SET secret = $1 WHERE id = $2")
        .bind(old_shape)
        .bind(hook["id"].as_str().unwrap())
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    app.restart_with(|_| {}).await;
    app.publish("course.enrolled", json!({})).await;
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert!(verify_with_key(old_shape.as_bytes(), &got[0]));
    assert!(verify_simple(old_shape, &got[0]));
}

#[tokio::test]
async fn a_rotated_secret_signs_with_both_for_the_grace_period() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"]}))
        .await;
    let old = hook["secret"].as_str().unwrap().to_owned();
    let rotated = app
        .post(
            &format!(
                "/v1/webhooks/{}/rotate-secret",
                hook["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    app.publish("course.enrolled", json!({})).await;
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    assert!(verify_standard(&new, &got[0]));
    assert!(verify_standard(&old, &got[0]));
    assert!(verify_simple(&new, &got[0]));
}
