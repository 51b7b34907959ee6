//! Shared pieces of row decoding: times, flags, and authors embedded under a column prefix.

use sqlx::any::AnyRow;
use sqlx::Row;

use agora_core::time::to_rfc3339;
use agora_forum::model::Author;

use crate::StoreError;

/// A stored unix-ms time as the API shows it.
pub(crate) fn ts(row: &AnyRow, col: &str) -> Result<String, StoreError> {
    Ok(to_rfc3339(row.try_get::<i64, _>(col)?))
}

/// An optional stored time as the API shows it.
pub(crate) fn ots(row: &AnyRow, col: &str) -> Result<Option<String>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(to_rfc3339))
}

/// A 0/1 flag, or a nullable time read as "is set".
pub(crate) fn set(row: &AnyRow, col: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.is_some_and(|v| v != 0))
}

/// The select list of an author from table alias `t`, prefixed `p`.
pub(crate) fn author_cols(t: &str, p: &str) -> String {
    format!(
        "{t}.id AS {p}id, {t}.username AS {p}username, {t}.display_name AS {p}display_name, {t}.avatar_url AS {p}avatar_url"
    )
}

/// An author selected with [`author_cols`].
pub(crate) fn author(row: &AnyRow, p: &str) -> Result<Author, StoreError> {
    Ok(Author {
        id: row.try_get(format!("{p}id").as_str())?,
        username: row.try_get(format!("{p}username").as_str())?,
        display_name: row.try_get(format!("{p}display_name").as_str())?,
        avatar_url: row.try_get(format!("{p}avatar_url").as_str())?,
    })
}

/// An optional author (from a LEFT JOIN) selected with [`author_cols`].
pub(crate) fn opt_author(row: &AnyRow, p: &str) -> Result<Option<Author>, StoreError> {
    match row.try_get::<Option<String>, _>(format!("{p}id").as_str())? {
        None => Ok(None),
        Some(_) => author(row, p).map(Some),
    }
}
