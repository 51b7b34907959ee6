//! Shared pieces of row access: fetching one row or a list of rows as resources, checking that
//! a write found its row, and decoding times, flags, and authors embedded under a column prefix.

use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use agora_core::time::to_rfc3339;
use agora_forum::model::Author;

use crate::{placeholders, Conn, StoreError, Tx};

/// A query with its parameters bound, ready to run.
pub(crate) type Bound<'q> = Query<'q, Any, AnyArguments<'q>>;

/// The one row `q` selects, decoded by `map`; no row is [`StoreError::NotFound`].
pub(crate) async fn fetch_one<T>(
    conn: &mut Conn,
    q: Bound<'_>,
    map: impl FnOnce(&AnyRow) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let row = q.fetch_optional(conn).await?.ok_or(StoreError::NotFound)?;
    map(&row)
}

/// Every row `q` selects, in order, each decoded by `map`.
pub(crate) async fn fetch_all<T>(
    conn: &mut Conn,
    q: Bound<'_>,
    map: impl Fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    q.fetch_all(conn).await?.iter().map(map).collect()
}

/// Runs `sql` (given the placeholder list) for every chunk of `ids`, 200 at a time to stay
/// under the engines' parameter limits, handing each row to `each`.
pub(crate) async fn for_each_in(
    conn: &mut Conn,
    ids: &[String],
    sql: impl Fn(&str) -> String,
    mut each: impl FnMut(&AnyRow) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for chunk in ids.chunks(200) {
        let sql = sql(&placeholders(1, chunk.len()));
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            each(&row)?;
        }
    }
    Ok(())
}

/// Which way [`step`] moves a counter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step {
    /// `n = n + 1`.
    Up,
    /// `n = n - 1`.
    Down,
}

/// Moves the counter `column` of the row `id` of `table` by one, with `SET n = n ± 1` in the
/// writing transaction, so it stays exact however many writers run at once.
pub(crate) async fn step(
    tx: &mut Tx,
    table: &str,
    column: &str,
    id: &str,
    way: Step,
) -> Result<(), StoreError> {
    let op = match way {
        Step::Up => "+",
        Step::Down => "-",
    };
    sqlx::query(&format!(
        "UPDATE {table} SET {column} = {column} {op} 1 WHERE id = $1"
    ))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A write that must have touched its row: none touched is [`StoreError::NotFound`].
pub(crate) fn found(done: AnyQueryResult) -> Result<(), StoreError> {
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

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
