//! Webhook secrets at rest: sealed with XChaCha20-Poly1305 under the node's secret key.
//!
//! A database dump, a backup or a read-only SQL injection yields ciphertext only; signing
//! needs the key, which lives outside the database (`AGORA_SECRET_KEY` or
//! `{data dir}/secret.key`). The webhook id is the associated data, so a sealed secret copied
//! into another webhook's row does not open. Only the sending path opens secrets
//! (`Store::signing_secrets`); the API never reads a stored secret back (a secret is shown
//! once, when it is made).
//!
//! Stored form: `sealed:v1:` + base64(24-byte random nonce ‖ ciphertext ‖ 16-byte tag).

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sqlx::Row;

use agora_core::signing::WebhookSecret;

use crate::{Store, StoreError};

/// The prefix of every sealed value; anything else in a secret column is a legacy plaintext.
pub const SEALED_PREFIX: &str = "sealed:v1:";

const NONCE_BYTES: usize = 24;

/// Why a secret key is refused at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the secret key must be 64 hexadecimal characters (32 bytes)")]
pub struct InvalidSecretKey;

/// The AEAD under the node's secret key. `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Arc<XChaCha20Poly1305>,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(redacted)")
    }
}

impl SecretBox {
    /// The box for a key written as 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(hex_key: &str) -> Result<Self, InvalidSecretKey> {
        let hex_key = hex_key.trim();
        if hex_key.len() != 64 {
            return Err(InvalidSecretKey);
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut key).map_err(|_| InvalidSecretKey)?;
        let cipher = XChaCha20Poly1305::new(&key.into());
        key.fill(0);
        Ok(Self {
            cipher: Arc::new(cipher),
        })
    }

    /// A fresh random key, as the hex text to keep (and the box for it).
    pub fn generate() -> (Self, String) {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let text = hex::encode(key);
        key.fill(0);
        (Self::from_hex(&text).expect("64 hex characters"), text)
    }

    /// Seals `plaintext` for the row of `webhook_id`.
    pub fn seal(&self, plaintext: &str, webhook_id: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad(webhook_id).as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message of this size");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", BASE64.encode(bytes))
    }

    /// Opens a value sealed for the row of `webhook_id`. A wrong key, a value moved from
    /// another row, tampering and a plaintext value all fail, with a message that names the
    /// webhook and never the value.
    pub fn open(&self, sealed: &str, webhook_id: &str) -> Result<String, StoreError> {
        let fail = |why: &str| {
            StoreError::config(format!(
                "cannot decrypt the secret of webhook {webhook_id}: {why}"
            ))
        };
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| fail("it is not sealed"))?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| fail("the stored value is corrupt"))?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(fail("the stored value is corrupt"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad(webhook_id).as_bytes(),
                },
            )
            .map_err(|_| {
                fail(
                    "the secret key (AGORA_SECRET_KEY or secret.key in the data directory) is not \
                     the one it was sealed with, or the row was tampered with",
                )
            })?;
        String::from_utf8(plain).map_err(|_| fail("the stored value is corrupt"))
    }
}

fn aad(webhook_id: &str) -> String {
    format!("agora webhook secret {webhook_id}")
}

/// A webhook secret as the [`crate::webhooks::Webhook`] row holds it: sealed as read from the
/// database (the store never opens it for the API), or fresh from a caller, sealed when written.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredSecret {
    /// As stored: `sealed:v1:…`.
    Sealed(String),
    /// Just made or supplied; sealed on the way into the database.
    Fresh(WebhookSecret),
}

impl StoredSecret {
    /// The secret itself, when it was made in this request (the one time it is shown).
    pub fn fresh(&self) -> Option<&WebhookSecret> {
        match self {
            Self::Fresh(secret) => Some(secret),
            Self::Sealed(_) => None,
        }
    }
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sealed(_) => f.write_str("StoredSecret::Sealed(..)"),
            Self::Fresh(_) => f.write_str("StoredSecret::Fresh(redacted)"),
        }
    }
}

impl Store {
    /// Hands the store the key that seals webhook secrets. Without one, writing or signing
    /// with a secret fails (commands that touch no secret, like `agora keys create`, need none).
    pub fn with_secret_box(mut self, secret_box: SecretBox) -> Self {
        self.secrets = Some(secret_box);
        self
    }

    fn secret_box(&self) -> Result<&SecretBox, StoreError> {
        self.secrets
            .as_ref()
            .ok_or_else(|| StoreError::config("no secret key was loaded"))
    }

    /// The column value for a secret of `webhook_id`.
    pub(crate) fn seal_secret(
        &self,
        webhook_id: &str,
        secret: &StoredSecret,
    ) -> Result<String, StoreError> {
        match secret {
            StoredSecret::Sealed(sealed) => Ok(sealed.clone()),
            StoredSecret::Fresh(fresh) => Ok(self.secret_box()?.seal(fresh.expose(), webhook_id)),
        }
    }

    /// Opens a stored secret for signing.
    pub(crate) fn open_secret(
        &self,
        webhook_id: &str,
        sealed: &str,
    ) -> Result<WebhookSecret, StoreError> {
        let text = self.secret_box()?.open(sealed, webhook_id)?;
        WebhookSecret::from_stored(&text).ok_or_else(|| {
            StoreError::internal(format!("webhook {webhook_id} has a corrupt secret"))
        })
    }

    /// The secrets that sign a delivery now, read from a row with the columns `webhook_id`,
    /// `secret`, `previous_secret` and `previous_secret_until`: the current one, then the
    /// previous one while its rotation grace period lasts (`until > now`).
    pub(crate) fn signing_secrets(
        &self,
        row: &sqlx::any::AnyRow,
        now: i64,
    ) -> Result<Vec<WebhookSecret>, StoreError> {
        let webhook_id: String = row.try_get("webhook_id")?;
        let current: String = row.try_get("secret")?;
        let mut secrets = vec![self.open_secret(&webhook_id, &current)?];
        let previous: Option<String> = row.try_get("previous_secret")?;
        let until: Option<i64> = row.try_get("previous_secret_until")?;
        if let (Some(previous), Some(until)) = (previous, until) {
            if until > now {
                secrets.push(self.open_secret(&webhook_id, &previous)?);
            }
        }
        Ok(secrets)
    }

    /// At start: proves the loaded key opens the secrets already stored (a wrong key fails
    /// here, clearly, instead of at the first delivery), then seals any secret still stored in
    /// plaintext by a version before sealing existed. Returns how many were sealed.
    pub async fn check_and_seal_secrets(&self) -> Result<u64, StoreError> {
        let secret_box = self.secret_box()?;
        let sample = sqlx::query(
            "SELECT id, secret FROM webhooks WHERE secret LIKE 'sealed:v1:%' ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await?;
        if let Some(row) = sample {
            let id: String = row.try_get("id")?;
            let sealed: String = row.try_get("secret")?;
            secret_box.open(&sealed, &id)?;
        }
        let plain = sqlx::query(
            "SELECT id, secret, previous_secret FROM webhooks \
             WHERE secret NOT LIKE 'sealed:v1:%' \
             OR (previous_secret IS NOT NULL AND previous_secret NOT LIKE 'sealed:v1:%')",
        )
        .fetch_all(&self.write)
        .await?;
        let mut sealed = 0;
        for row in &plain {
            let id: String = row.try_get("id")?;
            let seal = |value: String| {
                if value.starts_with(SEALED_PREFIX) {
                    value
                } else {
                    secret_box.seal(&value, &id)
                }
            };
            let secret = seal(row.try_get("secret")?);
            let previous = row
                .try_get::<Option<String>, _>("previous_secret")?
                .map(seal);
            self.execute_durably(
                sqlx::query("UPDATE webhooks SET secret = $1, previous_secret = $2 WHERE id = $3")
                    .bind(secret)
                    .bind(previous)
                    .bind(&id),
            )
            .await?;
            sealed += 1;
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_row() {
        let (box_a, _) = SecretBox::generate();
        let (box_b, _) = SecretBox::generate();
        let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let sealed = box_a.seal(secret, "wh_1");
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains(secret));
        assert!(!sealed.contains("C2FVsBQIhrsc"));
        assert_ne!(
            sealed,
            box_a.seal(secret, "wh_1"),
            "a fresh nonce each time"
        );
        assert_eq!(box_a.open(&sealed, "wh_1").unwrap(), secret);

        let wrong_key = box_b.open(&sealed, "wh_1").unwrap_err().to_string();
        assert!(wrong_key.contains("secret key"), "{wrong_key}");
        assert!(wrong_key.contains("wh_1"));
        assert!(!wrong_key.contains(&sealed[SEALED_PREFIX.len()..]));
        assert!(box_a.open(&sealed, "wh_2").is_err(), "moved to another row");
        assert!(
            box_a.open(secret, "wh_1").is_err(),
            "plaintext is not sealed"
        );

        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(box_a.open(&tampered, "wh_1").is_err());
    }

    #[test]
    fn keys_must_be_64_hex_characters() {
        assert!(SecretBox::from_hex(&"ab".repeat(32)).is_ok());
        assert!(SecretBox::from_hex(&format!(" {}\n", "ab".repeat(32))).is_ok());
        assert_eq!(
            SecretBox::from_hex(&"ab".repeat(31)).unwrap_err(),
            InvalidSecretKey
        );
        assert!(SecretBox::from_hex(&"zz".repeat(32)).is_err());
        let (_, text) = SecretBox::generate();
        assert_eq!(text.len(), 64);
        assert!(!format!("{:?}", SecretBox::from_hex(&text).unwrap()).contains(&text));
    }

    #[test]
    fn stored_secrets_never_print() {
        let fresh = WebhookSecret::generate();
        let debug = format!("{:?}", StoredSecret::Fresh(fresh.clone()));
        assert!(!debug.contains(fresh.expose()));
        let sealed = format!("{:?}", StoredSecret::Sealed("sealed:v1:abc".into()));
        assert!(!sealed.contains("abc"));
    }
}
