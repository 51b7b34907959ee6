//! Agora's storage: the only crate that knows SQL.
//!
//! # Layout
//!
//! - [`Store`]: the connection pools of one database, SQLite (embedded, WAL) or PostgreSQL,
//!   chosen at run time by URL; migrations for both are embedded in the binary.
//! - [`keys`]: API keys, stored as SHA-256 hashes with their abilities.
//! - [`webhooks`]: webhook rows and their life cycle.
//! - [`catalog`]: custom event types registered through the API.
//! - [`outbox`]: records an event and its deliveries in the caller's transaction.
//! - [`deliveries`]: the [`agora_core::dispatcher::DeliveryQueue`] implementation and the
//!   delivery log.
//! - [`forum`]: the forum's tables (users, sessions, groups, categories, tags, threads, posts,
//!   reactions, follows, reports, presence), as functions on a connection or transaction so a
//!   handler composes a change and its `outbox::publish` in one transaction.
//!
//! Every statement is written once, with `$1` placeholders that both engines accept; where the
//! engines differ (claiming with `FOR UPDATE SKIP LOCKED`) the difference is spelled out next to
//! the statement.

pub mod catalog;
pub mod deliveries;
mod error;
pub mod forum;
pub mod keys;
pub mod outbox;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use agora_core::dispatcher::Waker;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use self::error::StoreError;

/// A transaction on either engine.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A connection on either engine; a [`Tx`] derefs to one (`&mut **tx`), so read functions
/// serve both a handler's transaction and a plain read.
pub type Conn = sqlx::AnyConnection;

/// A connection borrowed from the read pool.
pub type ReadConn = sqlx::pool::PoolConnection<sqlx::Any>;

/// Which engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// One process, an embedded file.
    Sqlite,
    /// Any number of processes sharing one database.
    Postgres,
}

/// The database of one Agora node.
#[derive(Clone)]
pub struct Store {
    /// Writes. On SQLite a single connection, so writers queue in the pool instead of failing
    /// with `SQLITE_BUSY`; on PostgreSQL the same pool as `read`.
    write: AnyPool,
    /// Reads, which on SQLite in WAL mode run beside the writer.
    read: AnyPool,
    backend: Backend,
    /// Woken after every commit that queued deliveries.
    waker: Waker,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite://path` or `postgres://…`.
    pub async fn open(url: &str, waker: Waker) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Config(
                "database URL must start with sqlite: or postgres:".into(),
            ));
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid database URL: {e}")))?;
        let store = match backend {
            Backend::Sqlite => {
                let write = sqlite_pool(options.clone(), 1).await?;
                let read = sqlite_pool(options, 8).await?;
                Self {
                    write,
                    read,
                    backend,
                    waker,
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(32)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Self {
                    write: pool.clone(),
                    read: pool,
                    backend,
                    waker,
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The SQLite URL of a database file in `dir`.
    pub fn sqlite_url(dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", dir.join("agora.db").display())
    }

    /// Applies the embedded migrations of this engine.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&self.write).await?;
        Ok(())
    }

    /// The engine in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(self.write.begin().await?)
    }

    /// A connection for reads outside any transaction (on SQLite, beside the writer).
    pub async fn reader(&self) -> Result<ReadConn, StoreError> {
        Ok(self.read.acquire().await?)
    }

    /// Commits a transaction that may have queued deliveries, then wakes the dispatcher.
    pub async fn commit(&self, tx: Tx) -> Result<(), StoreError> {
        tx.commit().await?;
        self.waker.wake();
        Ok(())
    }

    /// Whether the database answers, for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

async fn sqlite_pool(options: AnyConnectOptions, size: u32) -> Result<AnyPool, StoreError> {
    Ok(AnyPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; FULL makes every commit durable
                // (fsync) before the API acknowledges it.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?)
}

/// `$start, $start+1, …` placeholders for an `IN (…)` list of `n` values.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
