//! Presence: heartbeats mark a user online; a sweep marks them offline once heartbeats stop.
//!
//! Both transitions are conditional UPDATEs (`WHERE online = 0` / `WHERE online = 1 AND
//! last_seen_at < cutoff`), so however many nodes heartbeat or sweep at once, each transition
//! happens once and its event is published once.

use sqlx::Row;

use crate::{StoreError, Tx};

/// Records a heartbeat. Answers `Some(true)` when it brought the user online (fire
/// `user.online`), `Some(false)` when they already were, `None` for no such live user.
pub async fn heartbeat(tx: &mut Tx, user_id: &str, now: i64) -> Result<Option<bool>, StoreError> {
    let came_online = sqlx::query(
        "UPDATE users SET online = 1, last_seen_at = $1 WHERE id = $2 AND online = 0 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    if came_online.rows_affected() == 1 {
        return Ok(Some(true));
    }
    let seen =
        sqlx::query("UPDATE users SET last_seen_at = $1 WHERE id = $2 AND deleted_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
    Ok((seen.rows_affected() == 1).then_some(false))
}

/// Marks offline every online user whose last heartbeat is older than `cutoff` (unix ms) and
/// answers their ids: the caller publishes one `user.offline` for each in the same
/// transaction.
pub async fn sweep(tx: &mut Tx, cutoff: i64) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "UPDATE users SET online = 0 WHERE online = 1 AND (last_seen_at IS NULL OR last_seen_at < $1) RETURNING id",
    )
    .bind(cutoff)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("id").map_err(StoreError::from))
        .collect()
}

impl crate::Store {
    /// One presence sweep: marks offline everyone silent since before `cutoff` (unix ms) and
    /// publishes a `user.offline` carrying each user, all in one transaction. Answers how many
    /// went offline. Safe to run on every node at once (see the module doc).
    pub async fn sweep_offline(&self, cutoff: i64) -> Result<usize, StoreError> {
        let mut tx = self.begin_publication().await?;
        let ids = sweep(&mut tx, cutoff).await?;
        if ids.is_empty() {
            // Dropping the publication rolls it back.
            return Ok(0);
        }
        for id in &ids {
            let user = super::users::get(&mut tx, id).await?;
            let event = agora_forum::catalog::event("user.offline", &user);
            tx.publish(&event, None).await?;
        }
        tx.commit().await?;
        Ok(ids.len())
    }
}
