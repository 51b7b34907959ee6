//! SQLite's single-writer fast paths, kept together and apart from PostgreSQL's.
//!
//! One process owns a SQLite database and writes it through exactly one connection. Several
//! paths depend on that: the writer thread ([`writer`]) runs every write transaction and the
//! dispatcher's bookkeeping one after another; parked deliveries ([`parked`]) are read back
//! without a write because no publish can run between a read and the move of its cursor; the
//! claim ([`claim`]) reads a window of the due order and leases it by rowid. [`SingleWriter`]
//! is the only way to open SQLite's write pool, so the one connection they rely on is a
//! property of a type, not of a pool size set elsewhere.

pub(crate) mod claim;
mod claim_window;
pub(crate) mod parked;
pub(crate) mod writer;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::StoreError;

/// The write pool of a SQLite database: exactly one connection, so writers queue for it
/// instead of failing with `SQLITE_BUSY`, and whoever holds it holds the whole database's
/// writes.
#[derive(Clone)]
pub(crate) struct SingleWriter(AnyPool);

impl SingleWriter {
    /// The pool, of one connection, for statements that need nothing of the rule.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.0
    }

    /// The one write connection: while it is held, nothing else writes the database.
    pub(crate) async fn acquire(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, StoreError> {
        Ok(self.0.acquire().await?)
    }
}

/// The connection pools of a SQLite database.
pub(crate) struct Pools {
    /// Every write.
    pub(crate) writer: SingleWriter,
    /// Reads, which in WAL mode run beside the writer.
    pub(crate) read: AnyPool,
    /// The connection that copies the write-ahead log back ([`checkpoint_wal`]).
    pub(crate) checkpointer: AnyPool,
}

impl Pools {
    /// Opens the pools of the database `connect` names.
    pub(crate) async fn open(
        connect: AnyConnectOptions,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            writer: SingleWriter(
                sqlite_pool(connect.clone(), 1, busy_timeout, WRITER_CACHE_KIB).await?,
            ),
            read: sqlite_pool(connect.clone(), 8, busy_timeout, READER_CACHE_KIB).await?,
            checkpointer: sqlite_pool(connect, 1, busy_timeout, READER_CACHE_KIB).await?,
        })
    }
}

/// What a store on SQLite has that one on PostgreSQL has not.
#[derive(Clone)]
pub(crate) struct Engine {
    /// The one write connection.
    pub(crate) writer: SingleWriter,
    /// The thread write transactions run on.
    pub(crate) thread: writer::WriterThread,
    /// How much of the due order the next claim looks at.
    pub(crate) claim_window: std::sync::Arc<claim_window::ClaimWindow>,
}

impl Engine {
    /// Starts the writer thread beside the single writer.
    pub(crate) fn start(writer: SingleWriter) -> Result<Self, StoreError> {
        Ok(Self {
            writer,
            thread: writer::WriterThread::start()?,
            claim_window: std::sync::Arc::default(),
        })
    }
}

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Copies the write-ahead log back into the database file on a connection of its own, so
/// that neither the copy nor its `fsync` stalls the single writer, which otherwise checkpoints
/// after the commit that crosses `wal_autocheckpoint` (now only a backstop for when this task
/// falls behind). PASSIVE never blocks readers or the writer.
pub(crate) async fn checkpoint_wal(pool: AnyPool) {
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "WAL checkpoint failed; the writer's backstop remains");
        }
    }
}

/// SQLite page size of a new database. Every page a commit changes is one frame of the
/// write-ahead log (a header, a checksum and a write each), and the dispatcher's commits change
/// runs of neighbouring rows (a batch of attempts appended, the same batch of deliveries moved):
/// with 16 KiB pages instead of SQLite's 4 KiB the writer does less work per delivery
/// (`scripts/sqlite_writer_cost.py --page-size` measures either).
const PAGE_SIZE_BYTES: u32 = 16 * 1024;

/// How large the write-ahead log may grow before a committing writer checkpoints it itself.
const WAL_BACKSTOP_BYTES: i64 = 40 * 1024 * 1024;

/// SQLite page cache of the single writer: large enough to hold the hot end of the
/// deliveries, attempts and their indexes, so a record batch seldom reads pages back, small
/// enough to keep the server's memory low (a larger one raised its peak and gained nothing).
const WRITER_CACHE_KIB: u32 = 16 * 1024;

/// SQLite page cache of each reader (SQLite's own default).
const READER_CACHE_KIB: u32 = 2 * 1024;

async fn sqlite_pool(
    options: AnyConnectOptions,
    size: u32,
    busy_timeout: Duration,
    cache_kib: u32,
) -> Result<AnyPool, StoreError> {
    Ok(AnyPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // Only a new, empty database takes the page size; an existing one keeps its own.
                let page_size = format!("PRAGMA page_size = {PAGE_SIZE_BYTES}");
                conn.execute(page_size.as_str()).await?;
                // WAL lets readers run beside the writer; FULL makes every commit durable
                // (fsync) before the API acknowledges it.
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                let busy = format!("PRAGMA busy_timeout = {}", busy_timeout.as_millis());
                conn.execute(busy.as_str()).await?;
                // Statement journals (multi-row statements inside a transaction) in memory
                // instead of a temporary file, which every multi-row write would wait on.
                conn.execute("PRAGMA temp_store = MEMORY").await?;
                let cache = format!("PRAGMA cache_size = -{cache_kib}");
                conn.execute(cache.as_str()).await?;
                let page_bytes: i64 = sqlx::query_scalar("PRAGMA page_size")
                    .fetch_one(&mut *conn)
                    .await?;
                let pages = WAL_BACKSTOP_BYTES / page_bytes.max(512);
                let backstop = format!("PRAGMA wal_autocheckpoint = {pages}");
                conn.execute(backstop.as_str()).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?)
}
