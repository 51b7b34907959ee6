//! Threads: the opening of a discussion, with its counters (replies, latest post) kept by the
//! posts module in the same transaction as each reply.

use sqlx::any::AnyRow;
use sqlx::Row;

use agora_forum::model::{CategoryRef, LatestPost, Thread};

use super::rows::{
    author, author_cols, fetch_all, fetch_one, opt_author, ots, set, step, ts, Step,
};
use super::{tags, Cursor};
use crate::{Conn, StoreError, Tx};

/// A thread about to be created; the handler has parsed every field.
#[derive(Clone, Debug)]
pub struct NewThread {
    /// `thr_…`.
    pub id: String,
    /// An existing category.
    pub category_id: String,
    /// A live user.
    pub user_id: String,
    /// Parsed title.
    pub title: String,
    /// Parsed body.
    pub body: String,
    /// Creation time, unix ms.
    pub now: i64,
}

/// What a thread list is restricted to.
#[derive(Clone, Debug, Default)]
pub struct ThreadFilter {
    /// Only this category.
    pub category_id: Option<String>,
    /// Only threads carrying this tag id.
    pub tag_id: Option<String>,
    /// Only threads by this user.
    pub user_id: Option<String>,
    /// Also threads flagged as spam (moderators only).
    pub include_spam: bool,
}

fn select() -> String {
    format!(
        "SELECT t.id, t.title, t.body, t.num_replies, t.latest_post_id, t.last_activity_at, t.pinned_at, \
         t.locked_at, t.spam_at, t.edited_at, t.edited_by, t.created_at, t.updated_at, \
         c.id AS c_id, c.name AS c_name, c.slug AS c_slug, lp.created_at AS lp_created_at, {}, {} \
         FROM threads t JOIN categories c ON c.id = t.category_id JOIN users u ON u.id = t.user_id \
         LEFT JOIN posts lp ON lp.id = t.latest_post_id LEFT JOIN users lu ON lu.id = lp.user_id",
        author_cols("u", "u_"),
        author_cols("lu", "lu_")
    )
}

fn from_row(row: &AnyRow) -> Result<Thread, StoreError> {
    let latest_post = match (
        row.try_get::<Option<String>, _>("latest_post_id")?,
        opt_author(row, "lu_")?,
    ) {
        (Some(id), Some(user)) => Some(LatestPost {
            id,
            user,
            created_at: ts(row, "lp_created_at")?,
        }),
        _ => None,
    };
    Ok(Thread {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        category: CategoryRef {
            id: row.try_get("c_id")?,
            name: row.try_get("c_name")?,
            slug: row.try_get("c_slug")?,
        },
        user: author(row, "u_")?,
        tags: Vec::new(),
        num_replies: row.try_get("num_replies")?,
        latest_post,
        is_pinned: set(row, "pinned_at")?,
        pinned_at: ots(row, "pinned_at")?,
        is_locked: set(row, "locked_at")?,
        locked_at: ots(row, "locked_at")?,
        is_spam: set(row, "spam_at")?,
        last_activity_at: ts(row, "last_activity_at")?,
        edited_at: ots(row, "edited_at")?,
        edited_by: row.try_get("edited_by")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

async fn with_tags(conn: &mut Conn, mut threads: Vec<Thread>) -> Result<Vec<Thread>, StoreError> {
    let ids: Vec<String> = threads.iter().map(|t| t.id.clone()).collect();
    let mut tags = tags::for_threads(conn, &ids).await?;
    for t in &mut threads {
        t.tags = tags.remove(&t.id).unwrap_or_default();
    }
    Ok(threads)
}

/// Creates a thread and counts it for its author and category.
pub async fn insert(tx: &mut Tx, t: &NewThread) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO threads (id, category_id, user_id, title, body, last_activity_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&t.id)
    .bind(&t.category_id)
    .bind(&t.user_id)
    .bind(&t.title)
    .bind(&t.body)
    .bind(t.now)
    .bind(t.now)
    .bind(t.now)
    .execute(&mut **tx)
    .await?;
    step(tx, "users", "num_threads", &t.user_id, Step::Up).await?;
    step(tx, "categories", "num_threads", &t.category_id, Step::Up).await?;
    Ok(())
}

/// One thread (spam or not), with its tags.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Thread, StoreError> {
    let thread = fetch_one(
        conn,
        sqlx::query(&format!("{} WHERE t.id = $1", select())).bind(id),
        from_row,
    )
    .await?;
    Ok(with_tags(conn, vec![thread]).await?.remove(0))
}

/// The author id of a thread, for ownership checks.
pub async fn owner(conn: &mut Conn, id: &str) -> Result<String, StoreError> {
    fetch_one(
        conn,
        sqlx::query("SELECT user_id FROM threads WHERE id = $1").bind(id),
        |row| Ok(row.try_get("user_id")?),
    )
    .await
}

/// Threads, newest activity first, after `cursor` (`last_activity_at`, id).
pub async fn list(
    conn: &mut Conn,
    filter: &ThreadFilter,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<Thread>, StoreError> {
    let (value, id) = cursor.map_or((i64::MAX, "~"), |c| (c.value, c.id.as_str()));
    let mut sql = format!(
        "{} WHERE (t.last_activity_at < $1 OR (t.last_activity_at = $2 AND t.id < $3))",
        select()
    );
    let mut n = 3;
    let mut binds: Vec<&str> = Vec::new();
    if let Some(c) = &filter.category_id {
        n += 1;
        sql.push_str(&format!(" AND t.category_id = ${n}"));
        binds.push(c);
    }
    if let Some(u) = &filter.user_id {
        n += 1;
        sql.push_str(&format!(" AND t.user_id = ${n}"));
        binds.push(u);
    }
    if let Some(tag) = &filter.tag_id {
        n += 1;
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM thread_tags tt WHERE tt.thread_id = t.id AND tt.tag_id = ${n})"
        ));
        binds.push(tag);
    }
    if !filter.include_spam {
        sql.push_str(" AND t.spam_at IS NULL");
    }
    sql.push_str(&format!(
        " ORDER BY t.last_activity_at DESC, t.id DESC LIMIT ${}",
        n + 1
    ));
    let mut q = sqlx::query(&sql).bind(value).bind(value).bind(id);
    for b in binds {
        q = q.bind(b);
    }
    let threads = fetch_all(conn, q.bind(limit), from_row).await?;
    with_tags(conn, threads).await
}

/// Replaces the title and body, noting who edited.
pub async fn update_content(
    tx: &mut Tx,
    id: &str,
    title: &str,
    body: &str,
    edited_by: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE threads SET title = $1, body = $2, edited_at = $3, edited_by = $4, updated_at = $5 WHERE id = $6",
    )
    .bind(title)
    .bind(body)
    .bind(now)
    .bind(edited_by)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A time column of threads that a moderator sets or clears.
#[derive(Clone, Copy, Debug)]
pub enum Mark {
    /// `pinned_at`.
    Pinned,
    /// `locked_at`.
    Locked,
    /// `spam_at`.
    Spam,
}

/// Sets (`on`) or clears a mark; `false` when it already was so (nothing changes, so no
/// event fires twice for one transition).
pub async fn set_mark(
    tx: &mut Tx,
    id: &str,
    mark: Mark,
    on: bool,
    now: i64,
) -> Result<bool, StoreError> {
    let col = match mark {
        Mark::Pinned => "pinned_at",
        Mark::Locked => "locked_at",
        Mark::Spam => "spam_at",
    };
    let sql = if on {
        format!("UPDATE threads SET {col} = $1, updated_at = $2 WHERE id = $3 AND {col} IS NULL")
    } else {
        format!(
            "UPDATE threads SET {col} = NULL, updated_at = $1 WHERE id = $2 AND {col} IS NOT NULL"
        )
    };
    let mut q = sqlx::query(&sql);
    if on {
        q = q.bind(now);
    }
    let done = q.bind(now).bind(id).execute(&mut **tx).await?;
    Ok(done.rows_affected() == 1)
}

/// Moves a thread to another category, keeping both categories' counts; `false` when it is
/// already there.
pub async fn move_to(
    tx: &mut Tx,
    id: &str,
    category_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let from: String = fetch_one(
        tx,
        sqlx::query("SELECT category_id FROM threads WHERE id = $1").bind(id),
        |row| Ok(row.try_get("category_id")?),
    )
    .await?;
    let done = sqlx::query(
        "UPDATE threads SET category_id = $1, updated_at = $2 WHERE id = $3 AND category_id = $4",
    )
    .bind(category_id)
    .bind(now)
    .bind(id)
    .bind(&from)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 || from == category_id {
        return Ok(false);
    }
    step(tx, "categories", "num_threads", &from, Step::Down).await?;
    step(tx, "categories", "num_threads", category_id, Step::Up).await?;
    Ok(true)
}

/// Deletes a thread with its replies, their reactions and its tags, and uncounts them all.
pub async fn delete(tx: &mut Tx, id: &str) -> Result<(), StoreError> {
    let (user_id, category_id): (String, String) = fetch_one(
        tx,
        sqlx::query("SELECT user_id, category_id FROM threads WHERE id = $1").bind(id),
        |row| Ok((row.try_get("user_id")?, row.try_get("category_id")?)),
    )
    .await?;
    // Uncount each replier's posts in this thread before they go.
    let repliers = sqlx::query(
        "SELECT user_id, COUNT(*) AS n FROM posts WHERE thread_id = $1 GROUP BY user_id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    for r in repliers {
        let n: i64 = r.try_get("n")?;
        let uid: String = r.try_get("user_id")?;
        sqlx::query("UPDATE users SET num_posts = num_posts - $1 WHERE id = $2")
            .bind(n)
            .bind(uid)
            .execute(&mut **tx)
            .await?;
    }
    for sql in [
        "DELETE FROM reactions WHERE post_id IN (SELECT id FROM posts WHERE thread_id = $1)",
        "DELETE FROM posts WHERE thread_id = $1",
        "DELETE FROM thread_tags WHERE thread_id = $1",
        "DELETE FROM threads WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut **tx).await?;
    }
    step(tx, "users", "num_threads", &user_id, Step::Down).await?;
    step(tx, "categories", "num_threads", &category_id, Step::Down).await?;
    Ok(())
}
