//! Tags and their attachment to threads.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use agora_forum::model::{Tag, TagRef};

use super::rows::{fetch_all, fetch_one, for_each_in, found, ts};
use crate::{Conn, StoreError, Tx};

const SELECT: &str = "SELECT id, name, description, created_at, updated_at FROM tags";

fn from_row(row: &AnyRow) -> Result<Tag, StoreError> {
    Ok(Tag {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// Creates a tag; a name taken answers [`StoreError::Conflict`].
pub async fn insert(
    tx: &mut Tx,
    id: &str,
    name: &str,
    description: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tags (id, name, name_key, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(name)
    .bind(agora_forum::input::key(name))
    .bind(description)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One tag.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Tag, StoreError> {
    fetch_one(
        conn,
        sqlx::query(&format!("{SELECT} WHERE id = $1")).bind(id),
        from_row,
    )
    .await
}

/// Tags by id, after `cursor`.
pub async fn list(
    conn: &mut Conn,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<Tag>, StoreError> {
    fetch_all(
        conn,
        sqlx::query(&format!("{SELECT} WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(cursor.unwrap_or(""))
            .bind(limit),
        from_row,
    )
    .await
}

/// Renames or redescribes a tag; a name taken answers [`StoreError::Conflict`].
pub async fn update(
    tx: &mut Tx,
    id: &str,
    name: &str,
    description: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE tags SET name = $1, name_key = $2, description = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(name)
    .bind(agora_forum::input::key(name))
    .bind(description)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    found(done)
}

/// Deletes a tag and detaches it from every thread.
pub async fn delete(tx: &mut Tx, id: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM thread_tags WHERE tag_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query("DELETE FROM tags WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    found(done)
}

/// The tag named by each of `refs` (an id or a name, case-insensitively); the first that
/// names no tag is the error.
pub async fn resolve(
    conn: &mut Conn,
    refs: &[String],
) -> Result<Result<Vec<TagRef>, String>, StoreError> {
    let mut out: Vec<TagRef> = Vec::with_capacity(refs.len());
    for r in refs {
        let row = sqlx::query("SELECT id, name FROM tags WHERE id = $1 OR name_key = $2")
            .bind(r)
            .bind(agora_forum::input::key(r))
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else {
            return Ok(Err(r.clone()));
        };
        let tag = TagRef {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
        };
        if !out.iter().any(|t| t.id == tag.id) {
            out.push(tag);
        }
    }
    Ok(Ok(out))
}

/// Replaces a thread's tags.
pub async fn set_for_thread(
    tx: &mut Tx,
    thread_id: &str,
    tags: &[TagRef],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM thread_tags WHERE thread_id = $1")
        .bind(thread_id)
        .execute(&mut **tx)
        .await?;
    for t in tags {
        sqlx::query("INSERT INTO thread_tags (thread_id, tag_id) VALUES ($1, $2)")
            .bind(thread_id)
            .bind(&t.id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The tags of each of `thread_ids`, by name.
pub async fn for_threads(
    conn: &mut Conn,
    thread_ids: &[String],
) -> Result<HashMap<String, Vec<TagRef>>, StoreError> {
    let mut out: HashMap<String, Vec<TagRef>> = HashMap::new();
    for_each_in(
        conn,
        thread_ids,
        |ids| {
            format!(
                "SELECT tt.thread_id, t.id, t.name FROM thread_tags tt JOIN tags t ON t.id = tt.tag_id \
                 WHERE tt.thread_id IN ({ids}) ORDER BY t.name_key"
            )
        },
        |row| {
            out.entry(row.try_get("thread_id")?)
                .or_default()
                .push(TagRef {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                });
            Ok(())
        },
    )
    .await?;
    Ok(out)
}
