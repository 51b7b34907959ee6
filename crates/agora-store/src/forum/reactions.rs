//! Reactions: one per user, post and kind (the table's unique key enforces it, so two
//! concurrent likes of the same user store one).

use sqlx::any::AnyRow;
use sqlx::Row;

use agora_forum::model::Reaction;

use super::posts::reaction_counts;
use super::rows::{author, author_cols, fetch_all, ts};
use crate::{Conn, StoreError, Tx};

fn select() -> String {
    format!(
        "SELECT r.id, r.post_id, p.thread_id, r.kind, r.created_at, {} FROM reactions r \
         JOIN posts p ON p.id = r.post_id JOIN users u ON u.id = r.user_id",
        author_cols("u", "u_")
    )
}

fn from_row(row: &AnyRow) -> Result<Reaction, StoreError> {
    Ok(Reaction {
        id: row.try_get("id")?,
        post_id: row.try_get("post_id")?,
        thread_id: row.try_get("thread_id")?,
        kind: row.try_get("kind")?,
        user: author(row, "u_")?,
        counts: Default::default(),
        created_at: ts(row, "created_at")?,
    })
}

/// Adds a reaction; `false` when the user already reacted so (nothing changes).
pub async fn add(
    tx: &mut Tx,
    id: &str,
    post_id: &str,
    user_id: &str,
    kind: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO reactions (id, post_id, user_id, kind, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (post_id, user_id, kind) DO NOTHING",
    )
    .bind(id)
    .bind(post_id)
    .bind(user_id)
    .bind(kind)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A user's reaction of a kind to a post, with the post's current counts.
pub async fn find(
    conn: &mut Conn,
    post_id: &str,
    user_id: &str,
    kind: &str,
) -> Result<Option<Reaction>, StoreError> {
    let row = sqlx::query(&format!(
        "{} WHERE r.post_id = $1 AND r.user_id = $2 AND r.kind = $3",
        select()
    ))
    .bind(post_id)
    .bind(user_id)
    .bind(kind)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut r = from_row(&row)?;
    r.counts = counts(conn, post_id).await?;
    Ok(Some(r))
}

/// Removes a reaction; answers it as it was (with the counts after removal), or `None`.
pub async fn remove(
    tx: &mut Tx,
    post_id: &str,
    user_id: &str,
    kind: &str,
) -> Result<Option<Reaction>, StoreError> {
    let Some(mut r) = find(tx, post_id, user_id, kind).await? else {
        return Ok(None);
    };
    let done = sqlx::query("DELETE FROM reactions WHERE id = $1")
        .bind(&r.id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    r.counts = counts(tx, post_id).await?;
    Ok(Some(r))
}

/// A post's reaction counts by kind.
pub async fn counts(
    conn: &mut Conn,
    post_id: &str,
) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
    Ok(reaction_counts(conn, &[post_id.to_owned()])
        .await?
        .remove(post_id)
        .unwrap_or_default())
}

/// A post's reactions by id, after `cursor`, each with the post's current counts.
pub async fn list(
    conn: &mut Conn,
    post_id: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<Reaction>, StoreError> {
    let mut out = fetch_all(
        conn,
        sqlx::query(&format!(
            "{} WHERE r.post_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3",
            select()
        ))
        .bind(post_id)
        .bind(cursor.unwrap_or(""))
        .bind(limit),
        from_row,
    )
    .await?;
    let c = counts(conn, post_id).await?;
    for r in &mut out {
        r.counts = c.clone();
    }
    Ok(out)
}
