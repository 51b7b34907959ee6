//! Webhook secrets and the two signature schemes every delivery carries.
//!
//! - Standard Webhooks (`webhook-signature: v1,{base64 HMAC-SHA256(key, "{id}.{ts}.{body}")}`),
//!   so the official verification libraries work unchanged.
//! - `x-agora-signature: sha256={hex HMAC-SHA256(secret string, body)}`, the three-line scheme
//!   of GitHub, Discourse and the platforms Agora replaces.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "whsec_";

/// A webhook's signing secret. `Debug` and `Display` never show it, so it cannot leak into a
/// log line by accident; [`WebhookSecret::expose`] is the one deliberate way out.
///
/// It holds both HMACs already keyed: keying one hashes two blocks, as much as signing a
/// typical event body, and every attempt signs twice. They sit behind an `Arc`, so a secret
/// stays the size of its text and a pointer wherever it is held by value (as in
/// `StoredSecret`) and clones without copying the hash states.
#[derive(Clone)]
pub struct WebhookSecret {
    text: String,
    keyed: Arc<Keyed>,
}

struct Keyed {
    /// Keyed with the decoded key, for `webhook-signature`.
    standard: HmacSha256,
    /// Keyed with the secret string itself, for `x-agora-signature`.
    simple: HmacSha256,
}

/// The fewest key bytes a chosen secret may carry; the Standard Webhooks specification asks
/// for 24 to 64.
pub const MIN_KEY_BYTES: usize = 24;
/// The most key bytes a chosen secret may carry.
pub const MAX_KEY_BYTES: usize = 64;

/// Why a user-supplied secret is refused. Every variant's message states the one accepted
/// shape, so a client learns what to send instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidSecret {
    /// Not `whsec_` followed by standard base64 of 24 to 64 bytes: the official Standard
    /// Webhooks libraries could not verify its signatures with the same string.
    #[error(
        "secret must be `whsec_` followed by standard base64 (with padding) of {MIN_KEY_BYTES} \
         to {MAX_KEY_BYTES} random bytes (as from `openssl rand -base64 32`), the shape the \
         Standard Webhooks libraries verify; or leave it out to have one generated"
    )]
    Shape,
}

impl WebhookSecret {
    /// A fresh `whsec_` secret over 32 random bytes.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Self::keyed(format!("{PREFIX}{}", BASE64.encode(key)), &key)
    }

    /// A secret a client chose: accepted only in the shape every official Standard Webhooks
    /// library reads the same way, `whsec_` + canonical standard base64 of 24 to 64 bytes, so
    /// a receiver given the same string verifies Agora's signatures.
    pub fn parse(text: &str) -> Result<Self, InvalidSecret> {
        let key = text
            .strip_prefix(PREFIX)
            .and_then(|encoded| BASE64.decode(encoded).ok())
            .filter(|key| (MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()))
            .ok_or(InvalidSecret::Shape)?;
        Ok(Self::keyed(text.to_owned(), &key))
    }

    /// A secret read back from the store. Secrets chosen before [`WebhookSecret::parse`]
    /// became strict keep signing as they always did: `whsec_{base64}` keys with the decoded
    /// bytes, anything else with its UTF-8 bytes. `None` for text no version ever stored.
    pub fn from_stored(text: &str) -> Option<Self> {
        let key = match text.strip_prefix(PREFIX) {
            Some(encoded) => BASE64.decode(encoded).ok()?,
            None => text.as_bytes().to_vec(),
        };
        (!key.is_empty()).then(|| Self::keyed(text.to_owned(), &key))
    }

    fn keyed(text: String, key: &[u8]) -> Self {
        let hmac = |key: &[u8]| HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        Self {
            keyed: Arc::new(Keyed {
                standard: hmac(key),
                simple: hmac(text.as_bytes()),
            }),
            text,
        }
    }

    /// The secret as the user sees it, for the one answer that shows it and for storage.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// `v1,{base64 signature}` for the Standard Webhooks `webhook-signature` header.
    pub fn sign_standard(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.keyed.standard.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }

    /// `sha256={hex}` for `x-agora-signature`: keyed with the secret string itself.
    pub fn sign_simple(&self, body: &[u8]) -> String {
        let mut mac = self.keyed.simple.clone();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

// Both keys follow from the text, so the text alone says whether two secrets are the same.
impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for WebhookSecret {}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

/// The signatures of one attempt, for the current secret and, during a rotation, the previous one.
pub struct Signatures {
    /// `webhook-signature`: one `v1,…` per secret, space-separated.
    pub standard: String,
    /// `x-agora-signature`, with the current secret.
    pub simple: String,
}

/// Signs one attempt's body with every secret that is currently valid (newest first).
pub fn sign_all(
    secrets: &[WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Signatures {
    let standard = secrets
        .iter()
        .map(|s| s.sign_standard(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ");
    let simple = secrets
        .first()
        .map(|s| s.sign_simple(body))
        .unwrap_or_default();
    Signatures { standard, simple }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_known_answer() {
        let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let sig = secret.sign_standard(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn generated_secrets_round_trip_and_never_print() {
        let s = WebhookSecret::generate();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(s.expose()).unwrap(), s);
        assert!(!format!("{s:?}").contains(s.expose()));
    }

    #[test]
    fn chosen_secrets_take_the_one_shape_the_libraries_read() {
        let of_len = |n: usize| format!("whsec_{}", BASE64.encode(vec![7u8; n]));
        assert!(WebhookSecret::parse(&of_len(24)).is_ok());
        assert!(WebhookSecret::parse(&of_len(64)).is_ok());
        for refused in [
            of_len(23),
            of_len(65),
            "my-own-secret-1234".to_owned(),
            BASE64.encode([7u8; 32]),
            "whsec_not*base64*at*all".to_owned(),
            of_len(32).trim_end_matches('=').to_owned(),
            format!("{} ", of_len(32)),
        ] {
            assert_eq!(
                WebhookSecret::parse(&refused).unwrap_err(),
                InvalidSecret::Shape,
                "{refused}"
            );
        }
        assert!(InvalidSecret::Shape.to_string().contains("whsec_"));
    }

    #[test]
    fn secrets_stored_in_the_old_shape_keep_signing() {
        let plain = WebhookSecret::from_stored("my-own-secret-1234").unwrap();
        let mut mac = HmacSha256::new_from_slice(b"my-own-secret-1234").unwrap();
        mac.update(b"msg_1.1.{}");
        let keyed_with_text = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        assert_eq!(plain.sign_standard("msg_1", 1, b"{}"), keyed_with_text);
        let short = WebhookSecret::from_stored("whsec_AAAA").unwrap();
        assert_eq!(short.expose(), "whsec_AAAA");
        assert!(WebhookSecret::from_stored("whsec_*").is_none());
    }

    #[test]
    fn rotation_signs_with_both() {
        let new = WebhookSecret::generate();
        let old = WebhookSecret::generate();
        let sigs = sign_all(&[new.clone(), old.clone()], "msg_1", 1, b"{}");
        let parts: Vec<_> = sigs.standard.split(' ').collect();
        assert_eq!(
            parts,
            [
                new.sign_standard("msg_1", 1, b"{}"),
                old.sign_standard("msg_1", 1, b"{}")
            ]
        );
        assert_eq!(sigs.simple, new.sign_simple(b"{}"));
    }
}
