//! A consistent copy of a live SQLite database, taken beside the server that writes it.
//!
//! `VACUUM INTO` reads the database in one read transaction, so the copy is the database as of
//! one commit: every transaction committed before the copy began is in it whole, and none that
//! commits during the copy is in it at all. In WAL mode that read blocks neither the server's
//! writer nor its readers, and the server's checkpoints are passive, so they never wait for
//! it either: the write-ahead log only grows until the copy ends. The copy is compacted (no
//! free pages) and has no write-ahead log of its own.
//!
//! PostgreSQL has its own tools for this (`pg_dump`), which Agora does not wrap.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::StoreError;

/// How long the copy's read waits for a lock (a checkpoint restarting the log) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Copies the SQLite database `database` into the new file `into`, which must not exist or
/// be empty (SQLite refuses anything else). The database file must exist: it is never
/// created. The copy is written but not synced to disk; the caller syncs it.
pub async fn vacuum_into(database: &Path, into: &Path) -> Result<(), StoreError> {
    let mut conn = SqliteConnectOptions::new()
        .filename(database)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT)
        .connect()
        .await
        .map_err(|e| {
            StoreError::config(format!("cannot open {}", database.display())).because(e)
        })?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(into.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await;
    let closed = conn.close().await;
    copied.map_err(|e| {
        StoreError::unavailable(format!("cannot copy the database into {}", into.display()))
            .because(e)
    })?;
    closed?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[tokio::test]
    async fn the_copy_holds_what_was_committed_and_the_original_is_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let database = Store::sqlite_file(dir.path());
        let missing = vacuum_into(&database, &dir.path().join("copy.db")).await;
        assert!(missing.is_err(), "a missing database was copied");
        assert!(
            !database.exists(),
            "the copy created the database it copies"
        );

        let store = Store::open(
            &Store::sqlite_url(dir.path()),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
        let value = crate::keys::generate_value();
        store
            .create_key(
                "kept",
                &agora_forum::abilities::Abilities::admin(),
                &value,
                &crate::audit::Actor::operator(),
            )
            .await
            .unwrap();
        let into = dir.path().join("copy.db");
        vacuum_into(&database, &into).await.unwrap();
        store.close().await;

        let again = vacuum_into(&database, &into).await;
        assert!(again.is_err(), "an existing copy was overwritten");
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(&into, Store::sqlite_file(copy.path())).unwrap();
        let restored = Store::open(
            &Store::existing_sqlite_url(copy.path()),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(restored.count_keys().await.unwrap(), 1);
        restored.close().await;
    }
}
