//! Reports against threads, posts and users, and their resolution.

use sqlx::any::AnyRow;
use sqlx::Row;

use agora_forum::model::{ContentType, Report, ReportStatus};

use super::rows::{fetch_all, fetch_one, ots, ts};
use crate::{Conn, StoreError, Tx};

const SELECT: &str = "SELECT id, target_type, target_id, reason, status, resolution, reported_by, resolved_by, created_at, resolved_at FROM reports";

fn from_row(row: &AnyRow) -> Result<Report, StoreError> {
    let target: String = row.try_get("target_type")?;
    let status: String = row.try_get("status")?;
    Ok(Report {
        id: row.try_get("id")?,
        target_type: ContentType::parse(&target)
            .ok_or_else(|| StoreError::internal(format!("corrupt report target {target:?}")))?,
        target_id: row.try_get("target_id")?,
        reason: row.try_get("reason")?,
        status: if status == "resolved" {
            ReportStatus::Resolved
        } else {
            ReportStatus::Open
        },
        resolution: row.try_get("resolution")?,
        reported_by: row.try_get("reported_by")?,
        resolved_by: row.try_get("resolved_by")?,
        created_at: ts(row, "created_at")?,
        resolved_at: ots(row, "resolved_at")?,
    })
}

/// Files an open report.
pub async fn insert(
    tx: &mut Tx,
    id: &str,
    target: ContentType,
    target_id: &str,
    reason: &str,
    reported_by: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO reports (id, target_type, target_id, reason, status, reported_by, created_at) VALUES ($1, $2, $3, $4, 'open', $5, $6)",
    )
    .bind(id)
    .bind(target.as_str())
    .bind(target_id)
    .bind(reason)
    .bind(reported_by)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One report.
pub async fn get(conn: &mut Conn, id: &str) -> Result<Report, StoreError> {
    fetch_one(
        conn,
        sqlx::query(&format!("{SELECT} WHERE id = $1")).bind(id),
        from_row,
    )
    .await
}

/// Reports by id, optionally only those of one status, after `cursor`.
pub async fn list(
    conn: &mut Conn,
    status: Option<ReportStatus>,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Vec<Report>, StoreError> {
    let status = match status {
        None => "%",
        Some(ReportStatus::Open) => "open",
        Some(ReportStatus::Resolved) => "resolved",
    };
    fetch_all(
        conn,
        sqlx::query(&format!(
            "{SELECT} WHERE status LIKE $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(status)
        .bind(cursor.unwrap_or(""))
        .bind(limit),
        from_row,
    )
    .await
}

/// Resolves an open report; `false` when it was already resolved (nothing changes).
pub async fn resolve(
    tx: &mut Tx,
    id: &str,
    resolution: &str,
    resolved_by: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE reports SET status = 'resolved', resolution = $1, resolved_by = $2, resolved_at = $3 WHERE id = $4 AND status = 'open'",
    )
    .bind(resolution)
    .bind(resolved_by)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
