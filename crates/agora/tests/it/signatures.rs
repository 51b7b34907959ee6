//! Both signature headers verify with an implementation written here from the Standard
//! Webhooks specification, not with Agora's own code.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::helpers::{spawn_app, Received, Receiver};

/// Standard Webhooks verification: the key is the base64 after `whsec_` (or the raw bytes of
/// a secret of another form, per the README's signature section), the content `{id}.{timestamp}.{body}`, and any
/// of the space-separated `v1,` signatures may match.
pub(crate) fn verify_standard(secret: &str, msg: &Received) -> bool {
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => B64.decode(b64).unwrap(),
        None => secret.as_bytes().to_vec(),
    };
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
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
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
async fn a_user_supplied_secret_signs_too() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.register_type("course.enrolled").await;
    let plain = "my-very-own-secret-123";
    let hook = app
        .create_webhook(json!({"url": receiver.url(), "events": ["course.*"], "secret": plain}))
        .await;
    assert_eq!(hook["secret"], plain);
    let whsec = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    app.create_webhook(json!({"url": receiver.url(), "events": ["course.*"], "secret": whsec}))
        .await;
    app.publish("course.enrolled", json!({})).await;
    let got = receiver.wait_for(2, Duration::from_secs(5)).await;
    let plain_msg = got
        .iter()
        .find(|m| verify_simple(plain, m))
        .expect("plain-secret delivery");
    assert!(verify_standard(plain, plain_msg));
    let whsec_msg = got
        .iter()
        .find(|m| verify_simple(whsec, m))
        .expect("whsec delivery");
    assert!(verify_standard(whsec, whsec_msg));
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
