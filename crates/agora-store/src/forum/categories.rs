//! Categories (forums, spaces) and their members.

use sqlx::any::AnyRow;
use sqlx::Row;

use agora_forum::model::{Category, CategoryRef, Membership};

use super::rows::{author, author_cols, fetch_all, fetch_one, found, step, ts, Step};
use super::Cursor;
use crate::{Conn, StoreError, Tx};

/// A category's editable fields, final (the handler merges a PATCH).
#[derive(Clone, Debug)]
pub struct CategoryFields {
    /// The name shown.
    pub name: String,
    /// Unique.
    pub slug: String,
    /// What belongs here.
    pub description: Option<String>,
    /// Sort order.
    pub position: i64,
}

const SELECT: &str = "SELECT id, name, slug, description, position, num_threads, num_members, created_at, updated_at FROM categories";

fn from_row(row: &AnyRow) -> Result<Category, StoreError> {
    Ok(Category {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        description: row.try_get("description")?,
        position: row.try_get("position")?,
        num_threads: row.try_get("num_threads")?,
        num_members: row.try_get("num_members")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// Creates a category; a slug taken answers [`StoreError::Conflict`].
pub async fn insert(tx: &mut Tx, id: &str, f: &CategoryFields, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO categories (id, name, slug, description, position, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&f.name)
    .bind(&f.slug)
    .bind(&f.description)
    .bind(f.position)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One category.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Category, StoreError> {
    fetch_one(
        conn,
        sqlx::query(&format!("{SELECT} WHERE id = $1")).bind(id),
        from_row,
    )
    .await
}

/// Categories by position, then id, after `cursor`.
pub async fn list(
    conn: &mut Conn,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<Category>, StoreError> {
    let (value, id) = cursor.map_or((i64::MIN, ""), |c| (c.value, c.id.as_str()));
    fetch_all(
        conn,
        sqlx::query(&format!(
            "{SELECT} WHERE position > $1 OR (position = $2 AND id > $3) ORDER BY position, id LIMIT $4"
        ))
        .bind(value)
        .bind(value)
        .bind(id)
        .bind(limit),
        from_row,
    )
    .await
}

/// Replaces a category's fields; a slug taken answers [`StoreError::Conflict`].
pub async fn update(tx: &mut Tx, id: &str, f: &CategoryFields, now: i64) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE categories SET name = $1, slug = $2, description = $3, position = $4, updated_at = $5 WHERE id = $6",
    )
    .bind(&f.name)
    .bind(&f.slug)
    .bind(&f.description)
    .bind(f.position)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    found(done)
}

/// Deletes an empty category and its memberships; answers `false` (changing nothing) when
/// threads still live in it.
pub async fn delete(tx: &mut Tx, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "DELETE FROM categories WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM threads WHERE category_id = $2)",
    )
    .bind(id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM category_members WHERE category_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// Adds a member; `false` when already one (nothing changes).
pub async fn join(tx: &mut Tx, id: &str, user_id: &str, now: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO category_members (category_id, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (category_id, user_id) DO NOTHING",
    )
    .bind(id)
    .bind(user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    step(tx, "categories", "num_members", id, Step::Up).await?;
    Ok(true)
}

/// Removes a member; answers the membership as it was, or `None` when not one.
pub async fn leave(tx: &mut Tx, id: &str, user_id: &str) -> Result<Option<Membership>, StoreError> {
    let Some(m) = membership(tx, id, user_id).await? else {
        return Ok(None);
    };
    let done = sqlx::query("DELETE FROM category_members WHERE category_id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    step(tx, "categories", "num_members", id, Step::Down).await?;
    Ok(Some(m))
}

const MEMBER_SELECT: &str =
    "SELECT c.id AS c_id, c.name AS c_name, c.slug AS c_slug, m.created_at AS joined_at";

fn membership_from_row(row: &AnyRow) -> Result<Membership, StoreError> {
    Ok(Membership {
        category: CategoryRef {
            id: row.try_get("c_id")?,
            name: row.try_get("c_name")?,
            slug: row.try_get("c_slug")?,
        },
        user: author(row, "u_")?,
        joined_at: ts(row, "joined_at")?,
    })
}

/// One membership.
pub async fn membership(
    conn: &mut Conn,
    id: &str,
    user_id: &str,
) -> Result<Option<Membership>, StoreError> {
    let row = sqlx::query(&format!(
        "{MEMBER_SELECT}, {} FROM category_members m JOIN categories c ON c.id = m.category_id \
         JOIN users u ON u.id = m.user_id WHERE m.category_id = $1 AND m.user_id = $2",
        author_cols("u", "u_")
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(membership_from_row).transpose()
}

/// Members of a category by user id, after `cursor`.
pub async fn members(
    conn: &mut Conn,
    id: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<Membership>, StoreError> {
    fetch_all(
        conn,
        sqlx::query(&format!(
            "{MEMBER_SELECT}, {} FROM category_members m JOIN categories c ON c.id = m.category_id \
             JOIN users u ON u.id = m.user_id WHERE m.category_id = $1 AND m.user_id > $2 ORDER BY m.user_id LIMIT $3",
            author_cols("u", "u_")
        ))
        .bind(id)
        .bind(cursor.unwrap_or(""))
        .bind(limit),
        membership_from_row,
    )
    .await
}
