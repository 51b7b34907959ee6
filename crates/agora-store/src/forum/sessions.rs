//! User sessions: bearer tokens answered by `POST /v1/auth/login`, stored only as SHA-256
//! hashes (like API keys: 192 random bits make a fast hash safe, and lookup by hash keeps the
//! comparison independent of the secret).

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use agora_forum::roles::Role;

use crate::{Store, StoreError};

/// Every session token starts with this, telling it apart from an API key at a glance.
pub const TOKEN_PREFIX: &str = "agora_session_";

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Who a session token signs in as.
#[derive(Clone, Debug)]
pub struct Session {
    /// The user.
    pub user_id: String,
    /// Their role when the request arrived.
    pub role: Role,
}

impl Store {
    /// Opens a session for `user_id` lasting until `expires_at` (unix ms); answers the token,
    /// which is never stored.
    pub async fn create_session(
        &self,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<String, StoreError> {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
        self.execute_durably(
            sqlx::query(
                "INSERT INTO user_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(hash(&token))
            .bind(user_id)
            .bind(now)
            .bind(expires_at),
        )
        .await?;
        Ok(token)
    }

    /// The live session of this token, with its user's current role.
    pub async fn authenticate_session(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT s.user_id FROM user_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.deleted_at IS NULL",
        )
        .bind(hash(token))
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user_id: String = row.try_get("user_id")?;
        let mut conn = self.reader().await?;
        let Some(role) = super::users::role(&mut conn, &user_id).await? else {
            return Ok(None);
        };
        Ok(Some(Session { user_id, role }))
    }

    /// Ends a session (logout).
    pub async fn end_session(&self, token: &str) -> Result<(), StoreError> {
        self.execute_durably(
            sqlx::query("DELETE FROM user_sessions WHERE token_hash = $1").bind(hash(token)),
        )
        .await?;
        Ok(())
    }
}
