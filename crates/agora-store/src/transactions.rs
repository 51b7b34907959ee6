//! How transactions begin (durable or relaxed, repairing connections a failed commit left
//! behind) and how a commit is announced: to this node's dispatcher, and on PostgreSQL to every
//! node through `NOTIFY`, which [`listen_for_queued`] turns back into wake-ups.

use std::sync::Arc;
use std::time::Duration;

use agora_core::dispatcher::Waker;
use sqlx::AnyPool;

use crate::{metrics, Backend, StoreError, Tx};

/// The channel on which PostgreSQL nodes announce newly queued deliveries.
const QUEUED_CHANNEL: &str = "agora_deliveries_queued";

/// Begins a transaction on `pool` with `statement`, repairing connections a failed commit left
/// behind. When a `COMMIT` fails (disk full, I/O error), SQLite may already have rolled the
/// transaction back, the driver's own rollback then fails, and sqlx keeps believing the
/// connection is inside a transaction: it can never begin again. Such a connection is closed
/// (the pool opens a fresh one) and the begin retried, so storage that comes back is usable
/// again without a restart.
pub(crate) async fn begin_on(pool: &AnyPool, statement: &'static str) -> Result<Tx, StoreError> {
    for _ in 0..pool.size().max(1) {
        match pool.begin_with(statement).await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                tracing::warn!("closing a database connection left inside a failed transaction");
                pool.acquire().await?.close().await?;
            }
            other => return Ok(other?),
        }
    }
    Ok(pool.begin_with(statement).await?)
}

/// The `BEGIN` of durable transactions. On SQLite the safety level is a property of the
/// connection that cannot change inside a transaction, so it is set right before each one.
pub(crate) fn durable_begin(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    }
}

/// The `BEGIN` of bookkeeping transactions (see [`Store::begin_bookkeeping`]).
pub(crate) fn relaxed_begin(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN; SET LOCAL synchronous_commit = off",
    }
}

/// Commits, announcing queued deliveries to this node and (on PostgreSQL) to every other.
pub(crate) async fn commit_notifying(
    mut tx: Tx,
    backend: Backend,
    waker: &Waker,
) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query(&format!("NOTIFY {QUEUED_CHANNEL}"))
            .execute(&mut *tx)
            .await?;
    }
    metrics::commit_timed(tx, metrics::Commit::Durable).await?;
    waker.wake();
    Ok(())
}

/// Wakes this node's dispatcher and event stream whenever any node commits a publication,
/// reconnecting after errors.
pub(crate) async fn listen_for_queued(
    url: String,
    waker: Waker,
    published: Arc<tokio::sync::Notify>,
) {
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(QUEUED_CHANNEL).await {
                    tracing::warn!(error = %e, "failed to LISTEN; retrying");
                } else {
                    // A wake-up right after (re)connecting covers notifications missed meanwhile.
                    waker.wake();
                    published.notify_one();
                    while listener.recv().await.is_ok() {
                        waker.wake();
                        published.notify_one();
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "failed to connect the LISTEN connection; retrying")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
