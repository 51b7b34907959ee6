//! Users: registration, profiles, groups, deletion. A deleted user keeps its row, so content
//! still names its author, but frees its username and email and can no longer sign in.

use sqlx::any::AnyRow;
use sqlx::Row;

use agora_forum::model::{Author, GroupRef, User};
use agora_forum::roles::Role;

use super::rows::{fetch_all, fetch_one, found, ots, set, ts};
use crate::{Conn, StoreError, Tx};

/// A user about to be registered; the handler has parsed every field.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// `usr_…`.
    pub id: String,
    /// As typed; uniqueness is on its lowercase form.
    pub username: String,
    /// As typed; uniqueness is on its lowercase form.
    pub email: String,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// The name shown.
    pub display_name: String,
    /// A picture.
    pub avatar_url: Option<String>,
    /// About.
    pub bio: Option<String>,
    /// Where.
    pub location: Option<String>,
    /// Registration time, unix ms.
    pub now: i64,
}

/// The editable part of a profile, all fields final (the handler merges a PATCH).
#[derive(Clone, Debug)]
pub struct Profile {
    /// Email, unique case-insensitively.
    pub email: String,
    /// The name shown.
    pub display_name: String,
    /// A picture.
    pub avatar_url: Option<String>,
    /// About.
    pub bio: Option<String>,
    /// Where.
    pub location: Option<String>,
}

const SELECT: &str = "SELECT u.id, u.username, u.email, u.display_name, u.avatar_url, u.bio, u.location, \
     u.group_id, g.name AS group_name, u.num_posts, u.num_threads, u.num_followers, u.num_following, \
     u.online, u.last_seen_at, u.created_at, u.updated_at \
     FROM users u LEFT JOIN forum_groups g ON g.id = u.group_id";

fn from_row(row: &AnyRow) -> Result<User, StoreError> {
    let group_id: Option<String> = row.try_get("group_id")?;
    let group_name: Option<String> = row.try_get("group_name")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: Some(row.try_get("email")?),
        display_name: row.try_get("display_name")?,
        avatar_url: row.try_get("avatar_url")?,
        bio: row.try_get("bio")?,
        location: row.try_get("location")?,
        group: group_id
            .zip(group_name)
            .map(|(id, name)| GroupRef { id, name }),
        num_posts: row.try_get("num_posts")?,
        num_threads: row.try_get("num_threads")?,
        num_followers: row.try_get("num_followers")?,
        num_following: row.try_get("num_following")?,
        is_online: set(row, "online")?,
        last_seen_at: ots(row, "last_seen_at")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

/// Which of a username and an email another live user already has (`"username"` or
/// `"email"`), checked before inserting so the client hears which one.
pub async fn taken(
    conn: &mut Conn,
    username: Option<&str>,
    email: Option<&str>,
    except_id: &str,
) -> Result<Option<&'static str>, StoreError> {
    let row = sqlx::query(
        "SELECT username_key, email_key FROM users WHERE (username_key = $1 OR email_key = $2) AND id <> $3 LIMIT 1",
    )
    .bind(username.map(agora_forum::input::key).unwrap_or_default())
    .bind(email.map(agora_forum::input::key).unwrap_or_default())
    .bind(except_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let u: String = row.try_get("username_key")?;
    Ok(Some(
        if username.is_some_and(|n| agora_forum::input::key(n) == u) {
            "username"
        } else {
            "email"
        },
    ))
}

/// Registers a user. A username or email taken meanwhile answers [`StoreError::Conflict`].
pub async fn insert(tx: &mut Tx, u: &NewUser) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO users (id, username, username_key, email, email_key, password_hash, display_name, avatar_url, bio, location, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&u.id)
    .bind(&u.username)
    .bind(agora_forum::input::key(&u.username))
    .bind(&u.email)
    .bind(agora_forum::input::key(&u.email))
    .bind(&u.password_hash)
    .bind(&u.display_name)
    .bind(&u.avatar_url)
    .bind(&u.bio)
    .bind(&u.location)
    .bind(u.now)
    .bind(u.now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A live user.
pub async fn get(conn: &mut Conn, id: &str) -> Result<User, StoreError> {
    fetch_one(
        conn,
        sqlx::query(&format!(
            "{SELECT} WHERE u.id = $1 AND u.deleted_at IS NULL"
        ))
        .bind(id),
        from_row,
    )
    .await
}

/// A live user's byline.
pub async fn author(conn: &mut Conn, id: &str) -> Result<Author, StoreError> {
    let u = get(conn, id).await?;
    Ok(Author {
        id: u.id,
        username: u.username,
        display_name: u.display_name,
        avatar_url: u.avatar_url,
    })
}

/// Live users by id (registration order), after `cursor`.
pub async fn list(
    conn: &mut Conn,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<User>, StoreError> {
    fetch_all(
        conn,
        sqlx::query(&format!(
            "{SELECT} WHERE u.deleted_at IS NULL AND u.id > $1 ORDER BY u.id LIMIT $2"
        ))
        .bind(cursor.unwrap_or(""))
        .bind(limit),
        from_row,
    )
    .await
}

/// Replaces the editable profile.
pub async fn update_profile(
    tx: &mut Tx,
    id: &str,
    p: &Profile,
    now: i64,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE users SET email = $1, email_key = $2, display_name = $3, avatar_url = $4, bio = $5, location = $6, updated_at = $7 \
         WHERE id = $8 AND deleted_at IS NULL",
    )
    .bind(&p.email)
    .bind(agora_forum::input::key(&p.email))
    .bind(&p.display_name)
    .bind(&p.avatar_url)
    .bind(&p.bio)
    .bind(&p.location)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    found(done)
}

/// Replaces the password hash and signs the user out everywhere.
pub async fn set_password(tx: &mut Tx, id: &str, hash: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Puts a user in a group (or none).
pub async fn set_group(
    tx: &mut Tx,
    id: &str,
    group_id: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE users SET group_id = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL",
    )
    .bind(group_id)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    found(done)
}

/// Deletes a user: frees the username and email, ends sessions, presence, follows and
/// memberships (keeping the other side's counters exact). Content stays, still attributed.
pub async fn delete(tx: &mut Tx, id: &str, now: i64) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE users SET deleted_at = $1, username_key = $2, email_key = $3, online = 0, updated_at = $4 \
         WHERE id = $5 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(format!("deleted:{id}"))
    .bind(format!("deleted:{id}"))
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    found(done)?;
    for sql in [
        "DELETE FROM user_sessions WHERE user_id = $1",
        "UPDATE users SET num_followers = num_followers - 1 WHERE id IN (SELECT followed_id FROM follows WHERE follower_id = $1)",
        "UPDATE users SET num_following = num_following - 1 WHERE id IN (SELECT follower_id FROM follows WHERE followed_id = $1)",
        "DELETE FROM follows WHERE follower_id = $1",
        "DELETE FROM follows WHERE followed_id = $1",
        "UPDATE categories SET num_members = num_members - 1 WHERE id IN (SELECT category_id FROM category_members WHERE user_id = $1)",
        "DELETE FROM category_members WHERE user_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut **tx).await?;
    }
    Ok(())
}

/// The id and password hash of the live user whose username or email is `login`.
pub async fn credentials(
    conn: &mut Conn,
    login: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let key = agora_forum::input::key(login.trim());
    let row = sqlx::query(
        "SELECT id, password_hash FROM users WHERE (username_key = $1 OR email_key = $2) AND deleted_at IS NULL",
    )
    .bind(&key)
    .bind(&key)
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("password_hash")?)))
        .transpose()
}

/// A live user's role, from their group's flags.
pub async fn role(conn: &mut Conn, id: &str) -> Result<Option<Role>, StoreError> {
    let row = sqlx::query(
        "SELECT g.is_moderator, g.is_admin FROM users u LEFT JOIN forum_groups g ON g.id = u.group_id \
         WHERE u.id = $1 AND u.deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Role::from_flags(
            set(&r, "is_moderator")?,
            set(&r, "is_admin")?,
        ))
    })
    .transpose()
}
