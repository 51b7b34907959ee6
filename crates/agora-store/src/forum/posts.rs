//! Posts (replies). Creating or deleting one moves its thread's and author's counters in the
//! same transaction, with `SET n = n ± 1`, so they stay exact under any concurrency.

use std::collections::{BTreeMap, HashMap};

use sqlx::any::AnyRow;
use sqlx::Row;

use agora_forum::model::Post;

use super::rows::{
    author, author_cols, fetch_all, fetch_one, for_each_in, ots, set, step, ts, Step,
};
use crate::{Conn, StoreError, Tx};

/// A reply about to be posted; the handler has parsed every field.
#[derive(Clone, Debug)]
pub struct NewPost {
    /// `pst_…`.
    pub id: String,
    /// An existing thread.
    pub thread_id: String,
    /// A live user.
    pub user_id: String,
    /// A post of the same thread, when this one answers it.
    pub reply_to_id: Option<String>,
    /// Parsed body.
    pub body: String,
    /// Creation time, unix ms.
    pub now: i64,
}

fn select() -> String {
    format!(
        "SELECT p.id, p.thread_id, t.category_id, p.body, p.reply_to_id, p.spam_at, p.edited_at, p.edited_by, \
         p.created_at, p.updated_at, {} FROM posts p JOIN threads t ON t.id = p.thread_id JOIN users u ON u.id = p.user_id",
        author_cols("u", "u_")
    )
}

fn from_row(row: &AnyRow) -> Result<Post, StoreError> {
    Ok(Post {
        id: row.try_get("id")?,
        thread_id: row.try_get("thread_id")?,
        category_id: row.try_get("category_id")?,
        user: author(row, "u_")?,
        body: row.try_get("body")?,
        reply_to_id: row.try_get("reply_to_id")?,
        reactions: BTreeMap::new(),
        is_spam: set(row, "spam_at")?,
        edited_at: ots(row, "edited_at")?,
        edited_by: row.try_get("edited_by")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

async fn with_reactions(conn: &mut Conn, mut posts: Vec<Post>) -> Result<Vec<Post>, StoreError> {
    let ids: Vec<String> = posts.iter().map(|p| p.id.clone()).collect();
    let mut counts = reaction_counts(conn, &ids).await?;
    for p in &mut posts {
        p.reactions = counts.remove(&p.id).unwrap_or_default();
    }
    Ok(posts)
}

/// Reaction counts by kind for each of `post_ids`.
pub async fn reaction_counts(
    conn: &mut Conn,
    post_ids: &[String],
) -> Result<HashMap<String, BTreeMap<String, i64>>, StoreError> {
    let mut out: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
    for_each_in(
        conn,
        post_ids,
        |ids| {
            format!(
                "SELECT post_id, kind, COUNT(*) AS n FROM reactions WHERE post_id IN ({ids}) GROUP BY post_id, kind"
            )
        },
        |row| {
            out.entry(row.try_get("post_id")?)
                .or_default()
                .insert(row.try_get("kind")?, row.try_get("n")?);
            Ok(())
        },
    )
    .await?;
    Ok(out)
}

/// Posts a reply, unless its thread is locked: then answers `false` and changes nothing.
///
/// The thread row is updated first, conditionally on it being unlocked, so a lock and a reply
/// racing each other can never both win.
pub async fn insert(tx: &mut Tx, p: &NewPost) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE threads SET num_replies = num_replies + 1, \
         latest_post_id = CASE WHEN latest_post_id IS NULL OR latest_post_id < $1 THEN $2 ELSE latest_post_id END, \
         last_activity_at = CASE WHEN last_activity_at < $3 THEN $4 ELSE last_activity_at END, \
         updated_at = $5 WHERE id = $6 AND locked_at IS NULL",
    )
    .bind(&p.id)
    .bind(&p.id)
    .bind(p.now)
    .bind(p.now)
    .bind(p.now)
    .bind(&p.thread_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO posts (id, thread_id, user_id, reply_to_id, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&p.id)
    .bind(&p.thread_id)
    .bind(&p.user_id)
    .bind(&p.reply_to_id)
    .bind(&p.body)
    .bind(p.now)
    .bind(p.now)
    .execute(&mut **tx)
    .await?;
    step(tx, "users", "num_posts", &p.user_id, Step::Up).await?;
    Ok(true)
}

/// One post (spam or not), with its reaction counts.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Post, StoreError> {
    let post = fetch_one(
        conn,
        sqlx::query(&format!("{} WHERE p.id = $1", select())).bind(id),
        from_row,
    )
    .await?;
    Ok(with_reactions(conn, vec![post]).await?.remove(0))
}

/// The replies of a thread, oldest first, after `cursor` (a post id).
pub async fn list_by_thread(
    conn: &mut Conn,
    thread_id: &str,
    include_spam: bool,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<Post>, StoreError> {
    let spam = if include_spam {
        ""
    } else {
        " AND p.spam_at IS NULL"
    };
    let posts = fetch_all(
        conn,
        sqlx::query(&format!(
            "{} WHERE p.thread_id = $1 AND p.id > $2{spam} ORDER BY p.id LIMIT $3",
            select()
        ))
        .bind(thread_id)
        .bind(cursor.unwrap_or(""))
        .bind(limit),
        from_row,
    )
    .await?;
    with_reactions(conn, posts).await
}

/// Replaces the body, noting who edited.
pub async fn update_body(
    tx: &mut Tx,
    id: &str,
    body: &str,
    edited_by: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE posts SET body = $1, edited_at = $2, edited_by = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(body)
    .bind(now)
    .bind(edited_by)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sets or clears the spam flag; `false` when it already was so.
pub async fn set_spam(tx: &mut Tx, id: &str, on: bool, now: i64) -> Result<bool, StoreError> {
    let done = if on {
        sqlx::query(
            "UPDATE posts SET spam_at = $1, updated_at = $2 WHERE id = $3 AND spam_at IS NULL",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?
    } else {
        sqlx::query("UPDATE posts SET spam_at = NULL, updated_at = $1 WHERE id = $2 AND spam_at IS NOT NULL")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?
    };
    Ok(done.rows_affected() == 1)
}

/// Deletes a reply and its reactions, uncounts it, and points its thread's latest post at the
/// newest reply left. Replies that answered it keep standing, answering nothing.
pub async fn delete(tx: &mut Tx, id: &str) -> Result<(), StoreError> {
    let (thread_id, user_id): (String, String) = fetch_one(
        tx,
        sqlx::query("SELECT thread_id, user_id FROM posts WHERE id = $1").bind(id),
        |row| Ok((row.try_get("thread_id")?, row.try_get("user_id")?)),
    )
    .await?;
    for sql in [
        "DELETE FROM reactions WHERE post_id = $1",
        "UPDATE posts SET reply_to_id = NULL WHERE reply_to_id = $1",
        "DELETE FROM posts WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut **tx).await?;
    }
    sqlx::query(
        "UPDATE threads SET num_replies = num_replies - 1, \
         latest_post_id = (SELECT MAX(p.id) FROM posts p WHERE p.thread_id = $1) WHERE id = $2",
    )
    .bind(&thread_id)
    .bind(&thread_id)
    .execute(&mut **tx)
    .await?;
    step(tx, "users", "num_posts", &user_id, Step::Down).await?;
    Ok(())
}
