//! The benchmark's own database work: a PostgreSQL schema per scenario, and a backlog of
//! deliveries scheduled for later. The product's API reaches neither (it schedules a delivery
//! for later only after a failed attempt), so this module is the one place outside
//! `agora-store` that holds SQL (see ARCHITECTURE.md). It writes the tables as the store's
//! migrations leave them; the bench's tests run it on SQLite, and on PostgreSQL when
//! `AGORA_TEST_POSTGRES_URL` is set, so a migration that breaks it fails there.

use std::time::Duration;

use agora_core::event::{Event, EventType};
use agora_core::time::now_ms;
use sqlx::{AnyConnection, Connection, Row};

/// Creates schema `name` in the PostgreSQL database at `url` and answers a URL whose
/// connections use it, so that a scenario starts from an empty database.
pub async fn create_schema(url: &str, name: &str) -> anyhow::Result<String> {
    execute_once(url, &format!("CREATE SCHEMA {}", plain(name)?)).await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options[search_path]={name}"))
}

/// Drops a schema [`create_schema`] made, with everything in it, so that a run leaves the
/// database it ran on as it found it.
pub async fn drop_schema(url: &str, name: &str) -> anyhow::Result<()> {
    execute_once(
        url,
        &format!("DROP SCHEMA IF EXISTS {} CASCADE", plain(name)?),
    )
    .await
}

/// Schedules `n` deliveries of one synthetic event to `webhook_id` at `due_at` (unix ms),
/// generated inside the database at `url`: a backlog to measure claiming against. On SQLite it
/// then copies the write-ahead log back into the database file (trying for up to 2 s while the
/// server's checkpointer holds the lock), so that a measurement right after does not race the
/// copy of the whole backlog.
pub async fn insert_backlog(
    url: &str,
    webhook_id: &str,
    n: usize,
    due_at: i64,
) -> anyhow::Result<()> {
    let event = Event::new(EventType::parse("bench.backlog")?, serde_json::json!({}));
    let now = now_ms();
    let mut conn = connect(url).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("INSERT INTO events (id, type, body, created_at) VALUES ($1, $2, $3, $4)")
        .bind(event.id.as_str())
        .bind(event.event_type.as_str())
        .bind(event.to_body())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, due_at, attempts, created_at, updated_at) \
         WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1) \
         SELECT $2 || CAST(n AS TEXT), $3, $4, 'bench.backlog', 'pending', $5, 0, $6, $6 FROM seq",
    )
    .bind(i64::try_from(n)?)
    .bind(format!("msg_backlog{}_", ulid::Ulid::new()))
    .bind(event.id.as_str())
    .bind(webhook_id)
    .bind(due_at)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if url.starts_with("sqlite:") {
        // The checkpointer's own pass may hold the checkpoint lock; then this one reports busy
        // (in its answer, not as an error) and is tried again.
        for _ in 0..100 {
            let busy: i64 = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut conn)
                .await?
                .try_get(0)?;
            if busy == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    conn.close().await?;
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<AnyConnection> {
    sqlx::any::install_default_drivers();
    Ok(AnyConnection::connect(url).await?)
}

async fn execute_once(url: &str, statement: &str) -> anyhow::Result<()> {
    let mut conn = connect(url).await?;
    sqlx::query(statement).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// `name`, if it is a plain identifier (letters, digits, `_`): it is written into a statement,
/// since PostgreSQL takes no parameter for an identifier.
fn plain(name: &str) -> anyhow::Result<&str> {
    anyhow::ensure!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "schema name {name:?} is not a plain identifier"
    );
    Ok(name)
}
