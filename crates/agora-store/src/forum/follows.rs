//! Users following users, with both sides' counters kept exact.

use agora_forum::model::Follow;

use super::rows::{step, ts, Step};
use super::users;
use crate::{Conn, StoreError, Tx};

/// Starts following; `false` when already following (nothing changes).
pub async fn follow(
    tx: &mut Tx,
    follower_id: &str,
    followed_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO follows (follower_id, followed_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (follower_id, followed_id) DO NOTHING",
    )
    .bind(follower_id)
    .bind(followed_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    count(tx, follower_id, followed_id, Step::Up).await?;
    Ok(true)
}

/// Stops following; `false` when not following.
pub async fn unfollow(
    tx: &mut Tx,
    follower_id: &str,
    followed_id: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM follows WHERE follower_id = $1 AND followed_id = $2")
        .bind(follower_id)
        .bind(followed_id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    count(tx, follower_id, followed_id, Step::Down).await?;
    Ok(true)
}

async fn count(
    tx: &mut Tx,
    follower_id: &str,
    followed_id: &str,
    by: Step,
) -> Result<(), StoreError> {
    step(tx, "users", "num_following", follower_id, by).await?;
    step(tx, "users", "num_followers", followed_id, by).await
}

/// The follow as the API shows it; `since` when it no longer exists (an unfollow).
pub async fn view(
    conn: &mut Conn,
    follower_id: &str,
    followed_id: &str,
    since: i64,
) -> Result<Follow, StoreError> {
    let row =
        sqlx::query("SELECT created_at FROM follows WHERE follower_id = $1 AND followed_id = $2")
            .bind(follower_id)
            .bind(followed_id)
            .fetch_optional(&mut *conn)
            .await?;
    let created_at = match row {
        Some(r) => ts(&r, "created_at")?,
        None => agora_core::time::to_rfc3339(since),
    };
    Ok(Follow {
        follower: users::author(&mut *conn, follower_id).await?,
        followed: users::author(conn, followed_id).await?,
        created_at,
    })
}
