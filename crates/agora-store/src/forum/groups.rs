//! User groups: a user has at most one; its flags make its members moderators or admins.

use sqlx::any::AnyRow;
use sqlx::Row;

use agora_forum::model::Group;

use super::rows::{fetch_all, fetch_one, found, set, ts};
use crate::{Conn, StoreError, Tx};

/// A group's editable fields, final (the handler merges a PATCH).
#[derive(Clone, Debug)]
pub struct GroupFields {
    /// Unique case-insensitively.
    pub name: String,
    /// What the group is.
    pub description: Option<String>,
    /// Members moderate.
    pub is_moderator: bool,
    /// Members administer.
    pub is_admin: bool,
}

const SELECT: &str = "SELECT g.id, g.name, g.description, g.is_moderator, g.is_admin, g.created_at, g.updated_at, \
     (SELECT COUNT(*) FROM users u WHERE u.group_id = g.id AND u.deleted_at IS NULL) AS num_members \
     FROM forum_groups g";

fn from_row(row: &AnyRow) -> Result<Group, StoreError> {
    Ok(Group {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        is_moderator: set(row, "is_moderator")?,
        is_admin: set(row, "is_admin")?,
        num_members: row.try_get("num_members")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// Creates a group; a name taken answers [`StoreError::Conflict`].
pub async fn insert(tx: &mut Tx, id: &str, f: &GroupFields, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO forum_groups (id, name, name_key, description, is_moderator, is_admin, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(&f.name)
    .bind(agora_forum::input::key(&f.name))
    .bind(&f.description)
    .bind(i64::from(f.is_moderator))
    .bind(i64::from(f.is_admin))
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One group.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Group, StoreError> {
    fetch_one(
        conn,
        sqlx::query(&format!("{SELECT} WHERE g.id = $1")).bind(id),
        from_row,
    )
    .await
}

/// Groups by id, after `cursor`.
pub async fn list(
    conn: &mut Conn,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<Group>, StoreError> {
    fetch_all(
        conn,
        sqlx::query(&format!("{SELECT} WHERE g.id > $1 ORDER BY g.id LIMIT $2"))
            .bind(cursor.unwrap_or(""))
            .bind(limit),
        from_row,
    )
    .await
}

/// Replaces a group's fields; a name taken answers [`StoreError::Conflict`].
pub async fn update(tx: &mut Tx, id: &str, f: &GroupFields, now: i64) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE forum_groups SET name = $1, name_key = $2, description = $3, is_moderator = $4, is_admin = $5, updated_at = $6 WHERE id = $7",
    )
    .bind(&f.name)
    .bind(agora_forum::input::key(&f.name))
    .bind(&f.description)
    .bind(i64::from(f.is_moderator))
    .bind(i64::from(f.is_admin))
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    found(done)
}

/// Deletes a group; its members are left without one.
pub async fn delete(tx: &mut Tx, id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET group_id = NULL WHERE group_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query("DELETE FROM forum_groups WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    found(done)
}
