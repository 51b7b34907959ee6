//! Agora's storage: the only crate that knows SQL.
//!
//! # Layout
//!
//! - [`Store`]: the connection pools of one database, SQLite (embedded, WAL) or PostgreSQL,
//!   chosen at run time by URL; migrations for both are embedded in the binary.
//! - [`keys`]: API keys, stored as SHA-256 hashes with their abilities.
//! - [`webhooks`]: webhook rows and their life cycle.
//! - [`secretbox`]: webhook secrets sealed at rest (XChaCha20-Poly1305).
//! - [`catalog`]: custom event types registered through the API.
//! - [`Publication`]: the one way to publish: a change, its events and their deliveries,
//!   committed and handed to the dispatcher as one unit no cancellation splits.
//! - [`outbox`]: records an event and its deliveries in a publication's transaction.
//! - [`deliveries`]: the [`agora_core::dispatcher::DeliveryQueue`] implementation and the
//!   delivery log.
//! - `transactions`: how durable and bookkeeping transactions begin, and how a commit is
//!   announced (this node's dispatcher; on PostgreSQL every node, by `NOTIFY`/`LISTEN`).
//! - [`schema`]: the embedded migrations and the schema version each release shipped.
//! - [`backup`]: a consistent copy of a live SQLite database.
//! - [`metrics`]: commit latency, group-commit sizes, storage errors and auto-disables, as
//!   the `metrics` facade records them, and the sample of the queue behind the gauges.
//! - [`forum`]: the forum's tables (users, sessions, groups, categories, tags, threads, posts,
//!   reactions, follows, reports, presence), as functions on a connection or transaction so a
//!   handler composes a change and its publish in one [`Publication`].
//!
//! Every statement is written once, with `$1` placeholders that both engines accept; where the
//! engines differ (claiming with `FOR UPDATE SKIP LOCKED`) the difference is spelled out next to
//! the statement.

pub mod audit;
pub mod backup;
pub mod catalog;
pub mod deliveries;
mod error;
pub mod events;
pub mod forum;
mod group_commit;
pub mod idempotency;
mod key_cache;
pub mod keys;
pub mod metrics;
pub mod outbox;
mod params;
mod publication;
pub mod retention;
pub mod schema;
pub mod secretbox;
mod sqlite;
mod transactions;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use agora_core::dispatcher::{Handoff, Waker};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::AnyPool;

pub use self::error::{Limit, StoreError};
pub(crate) use self::params::{placeholders, Params};
pub use self::publication::Publication;
pub(crate) use self::transactions::{begin_on, commit_notifying, durable_begin};
use self::transactions::{listen_for_queued, relaxed_begin};

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

impl Backend {
    /// The engine a transaction runs on.
    pub(crate) fn of(tx: &mut Tx) -> Self {
        if tx.backend_name() == "SQLite" {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// What `due_at` holds for a delivery leased until `until`. On PostgreSQL, the lease
    /// expiry: once it passes, another node takes the work over. On SQLite, nothing: one
    /// process owns the database and its start-up gives back every lease, so a lease never
    /// needs to expire or be renewed, and leaving the due index on the claim (instead of
    /// moving within it) spares the single writer an index insert on every claim and a delete
    /// on every record.
    pub(crate) fn lease_due_at(self, until: i64) -> Option<i64> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(until),
        }
    }

    /// The conflict clause of the hot multi-row writes (`INSERT{}` / `UPDATE{}`): `OR FAIL`
    /// on SQLite, nothing on PostgreSQL. SQLite gives a multi-row statement that may abort on
    /// a constraint a statement journal, a copy of every page the statement first touches, so
    /// that it alone can be undone; these statements violate none (fresh ids, values of the
    /// right kind), and when any statement fails the whole transaction is rolled back.
    pub(crate) fn or_fail(self) -> &'static str {
        match self {
            Backend::Sqlite => " OR FAIL",
            Backend::Postgres => "",
        }
    }
}

/// Settings of the store that come from configuration.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// SQLite: how long a write waits for a lock before failing as unavailable.
    pub busy_timeout: Duration,
    /// Auto-disable: failed attempts in a row, with no success for `auto_disable_after`.
    pub auto_disable_failures: i64,
    /// Auto-disable: how long without a success.
    pub auto_disable_after: Duration,
    /// PostgreSQL: connections per node.
    pub pool_size: u32,
    /// Deliveries one published event or batch may create; more is refused whole
    /// ([`StoreError::Limit`]), so one request cannot hold the writer for seconds.
    pub max_deliveries_per_request: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            auto_disable_failures: 50,
            auto_disable_after: Duration::from_secs(5 * 24 * 3600),
            pool_size: 16,
            max_deliveries_per_request: 10_000,
        }
    }
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
    options: StoreOptions,
    /// PostgreSQL: the task that turns other nodes' commits (`NOTIFY`) into wake-ups. SQLite:
    /// the task that checkpoints the write-ahead log.
    background: Option<Arc<tokio::task::JoinHandle<()>>>,
    /// Single-event publishes waiting to share a transaction.
    group_commit: group_commit::Jobs,
    /// Custom event type names known to exist. Types are never deleted, so a name seen once
    /// stays valid on every node; a miss reloads from the database.
    known_types: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
    /// When each API key's use was last noted (unix ms), so a key's `last_used_at` is written
    /// at most once a minute, off the request's path.
    key_uses: keys::KeyUses,
    /// Keys authenticated lately (SQLite only; see [`key_cache`]).
    key_cache: key_cache::KeyCache,
    /// Seals and opens webhook secrets; set by [`Store::with_secret_box`].
    secrets: Option<secretbox::SecretBox>,
    /// SQLite: its single writer, and the thread the dispatcher's and the publishers' write
    /// transactions run on.
    sqlite: Option<sqlite::Engine>,
    /// How publishes write deliveries leased to this node: the hand-off to its dispatcher,
    /// and on SQLite the register of parked deliveries.
    leasing: outbox::Leasing,
    /// Notified after every publication's commit (on PostgreSQL, any node's), so the event
    /// stream reads new events at once rather than at its next poll.
    published: Arc<tokio::sync::Notify>,
    /// SQLite: the idempotency keys in their log (see [`idempotency`]).
    key_log: Option<Arc<idempotency::log::KeyLog>>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// `url` is `sqlite://path` or `postgres://…`.
    pub async fn open(url: &str, waker: Waker, options: StoreOptions) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::config(
                "database URL must start with sqlite: or postgres:",
            ));
        };
        let connect = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::config("invalid database URL").because(e))?;
        let leasing = outbox::Leasing::new(Handoff::default());
        let published = Arc::new(tokio::sync::Notify::new());
        let store = match backend {
            Backend::Sqlite => {
                let sqlite::Pools {
                    writer,
                    read,
                    checkpointer,
                } = sqlite::Pools::open(connect, options.busy_timeout).await?;
                let write = writer.pool().clone();
                let engine = sqlite::Engine::start(writer)?;
                let key_log = Some(Arc::default());
                Self {
                    group_commit: group_commit::start(
                        publication::Publisher {
                            write: write.clone(),
                            backend,
                            waker: waker.clone(),
                            leasing: leasing.clone(),
                            published: published.clone(),
                            key_log: key_log.clone(),
                        },
                        options.max_deliveries_per_request,
                        &engine.thread.handle(),
                    ),
                    known_types: Arc::default(),
                    key_uses: keys::KeyUses::default(),
                    key_cache: key_cache::KeyCache::default(),
                    write,
                    read,
                    backend,
                    waker,
                    options,
                    background: Some(Arc::new(tokio::spawn(sqlite::checkpoint_wal(checkpointer)))),
                    secrets: None,
                    sqlite: Some(engine),
                    leasing,
                    published,
                    key_log,
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(options.pool_size.max(2))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(connect)
                    .await?;
                let background = Some(Arc::new(tokio::spawn(listen_for_queued(
                    url.to_owned(),
                    waker.clone(),
                    published.clone(),
                ))));
                Self {
                    group_commit: group_commit::start(
                        publication::Publisher {
                            write: pool.clone(),
                            backend,
                            waker: waker.clone(),
                            leasing: leasing.clone(),
                            published: published.clone(),
                            key_log: None,
                        },
                        options.max_deliveries_per_request,
                        &tokio::runtime::Handle::current(),
                    ),
                    known_types: Arc::default(),
                    key_uses: keys::KeyUses::default(),
                    key_cache: key_cache::KeyCache::default(),
                    write: pool.clone(),
                    read: pool,
                    backend,
                    waker,
                    options,
                    background,
                    secrets: None,
                    sqlite: None,
                    leasing,
                    published,
                    key_log: None,
                }
            }
        };
        store.migrate().await?;
        if let Some(key_log) = &store.key_log {
            // Keys a stopped process left in the log, which this one does not know of.
            idempotency::log::merge(&store.write, key_log).await?;
            tokio::spawn(idempotency::log::merge_continually(
                store.write.clone(),
                key_log.clone(),
            ));
        }
        Ok(store)
    }

    /// The SQLite URL of the database file in `dir`, created when it does not exist (the
    /// server's start).
    pub fn sqlite_url(dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", Self::sqlite_file(dir).display())
    }

    /// The SQLite URL of the database file in `dir`, which opening never creates (local
    /// commands: a mistyped data directory must not yield a new, empty database).
    pub fn existing_sqlite_url(dir: &Path) -> String {
        format!("sqlite://{}?mode=rw", Self::sqlite_file(dir).display())
    }

    /// The SQLite database file of the data directory `dir`.
    pub fn sqlite_file(dir: &Path) -> std::path::PathBuf {
        dir.join("agora.db")
    }

    /// Applies the embedded migrations of this engine.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.migrator().run(&self.write).await?;
        Ok(())
    }

    /// The embedded migrations of this engine.
    fn migrator(&self) -> sqlx::migrate::Migrator {
        schema::migrator(self.backend)
    }

    /// Whether the database takes writes and has every embedded migration applied, for
    /// `/readyz`: a write transaction is begun (on SQLite `BEGIN IMMEDIATE`, which takes the
    /// writer's lock, on the writer's thread like any write) and rolled back, with nothing
    /// written. A node whose database is read-only or locked out answers not ready, where
    /// `/healthz`'s read still succeeds.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let latest = schema::latest(self.backend);
        let (write, backend) = (self.write.clone(), self.backend);
        self.on_writer(async move {
            let mut tx = begin_on(&write, relaxed_begin(backend)).await?;
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&mut *tx)
                    .await?;
            tx.rollback().await?;
            if applied.unwrap_or(0) < latest {
                return Err(StoreError::unavailable("migrations are not all applied"));
            }
            Ok(())
        })
        .await
    }

    /// Notified after publications commit (on PostgreSQL, any node's); one waiter, the
    /// event stream's reader, takes each wake-up.
    pub fn published(&self) -> Arc<tokio::sync::Notify> {
        self.published.clone()
    }

    /// The engine in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a durable write transaction: its commit is on disk (SQLite `synchronous = FULL`,
    /// PostgreSQL `synchronous_commit = on`) before it returns. Writes that publish nothing
    /// use one; every other goes through a [`Publication`].
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        begin_on(&self.write, durable_begin(self.backend)).await
    }

    /// A connection for reads outside any transaction (on SQLite, beside the writer).
    pub async fn reader(&self) -> Result<ReadConn, StoreError> {
        Ok(self.read.acquire().await?)
    }

    /// Starts a transaction for the dispatcher's own bookkeeping (claims, attempt records,
    /// leases), whose commit need not wait for the disk: losing the last few of them to a power
    /// failure only makes a delivery due again, which at-least-once delivery allows (the copy
    /// carries the same `webhook-id`). It survives a crash of the process either way.
    pub(crate) async fn begin_bookkeeping(&self) -> Result<Tx, StoreError> {
        begin_on(&self.write, relaxed_begin(self.backend)).await
    }

    /// Runs a write transaction on the SQLite writer's thread (see `sqlite/writer.rs`), or in the
    /// caller's task on PostgreSQL.
    pub(crate) async fn on_writer<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.sqlite {
            Some(sqlite) => sqlite.thread.run(work).await,
            None => work.await,
        }
    }

    /// SQLite: the runtime of the writer thread, where the dispatcher's claim loop and recorder
    /// belong (see
    /// [`agora_core::dispatcher::DeliveryQueue::bookkeeping_runtime`]).
    pub(crate) fn writer_runtime(&self) -> Option<tokio::runtime::Handle> {
        self.sqlite.as_ref().map(|sqlite| sqlite.thread.handle())
    }

    /// Runs one statement in its own durable transaction.
    pub(crate) async fn execute_durably<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<sqlx::any::AnyQueryResult, StoreError> {
        let mut tx = self.begin().await?;
        let done = query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// What a publication needs of this store.
    pub(crate) fn publisher(&self) -> publication::Publisher {
        publication::Publisher {
            write: self.write.clone(),
            backend: self.backend,
            waker: self.waker.clone(),
            leasing: self.leasing.clone(),
            published: self.published.clone(),
            key_log: self.key_log.clone(),
        }
    }

    /// Whether the database answers, for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        if let Some(task) = &self.background {
            task.abort();
        }
        self.write.close().await;
        self.read.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    async fn sqlite_store(dir: &Path) -> Store {
        Store::open(
            &Store::sqlite_url(dir),
            Waker::default(),
            StoreOptions::default(),
        )
        .await
        .unwrap()
    }

    async fn synchronous(tx: &mut Tx) -> i64 {
        sqlx::query("PRAGMA synchronous")
            .fetch_one(&mut **tx)
            .await
            .unwrap()
            .get::<i64, _>(0)
    }

    #[tokio::test]
    async fn start_up_gives_parked_deliveries_back_unspent_and_leased_ones_as_attempted() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        for (id, owner) in [("msg_parked", None), ("msg_leased", Some("node_a"))] {
            sqlx::query(
                "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, lease_owner, \
                 attempts, created_at, updated_at) VALUES ($1, 'evt_1', 'wh_1', 't.x', 'in_flight', $2, 1, 0, 0)",
            )
            .bind(id)
            .bind(owner)
            .execute(&store.write)
            .await
            .unwrap();
        }
        assert_eq!(store.release_all_leases().await.unwrap(), 2);
        let rows = sqlx::query("SELECT id, status, attempts FROM deliveries ORDER BY id")
            .fetch_all(&store.write)
            .await
            .unwrap();
        let state: Vec<(String, String, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(
            state,
            vec![
                ("msg_leased".to_owned(), "failed".to_owned(), 1),
                ("msg_parked".to_owned(), "pending".to_owned(), 0),
            ]
        );
        store.close().await;
    }

    #[tokio::test]
    async fn acknowledged_writes_are_durable_and_bookkeeping_is_relaxed() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let mut relaxed = store.begin_bookkeeping().await.unwrap();
        assert_eq!(synchronous(&mut relaxed).await, 1, "NORMAL");
        relaxed.commit().await.unwrap();
        let mut durable = store.begin().await.unwrap();
        assert_eq!(
            synchronous(&mut durable).await,
            2,
            "FULL after a relaxed transaction"
        );
        durable.commit().await.unwrap();
        store.close().await;
    }

    #[tokio::test]
    async fn a_publish_whose_caller_stops_waiting_still_commits_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path()).await;
        let events: Vec<_> = (0..50)
            .map(|n| {
                agora_core::event::Event::new(
                    agora_core::event::EventType::parse("test.happened").unwrap(),
                    serde_json::json!({ "n": n }),
                )
            })
            .collect();
        // Polled once, which hands the transaction to the writer thread, then dropped.
        let first_poll_pending = {
            let mut publish = std::pin::pin!(store.publish_batch(events));
            std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::future::Future::poll(publish.as_mut(), cx).is_pending())
            })
            .await
        };
        assert!(
            first_poll_pending,
            "the publish cannot have finished on its first poll"
        );
        let count = || async {
            sqlx::query("SELECT COUNT(*) FROM events")
                .fetch_one(&store.read)
                .await
                .unwrap()
                .get::<i64, _>(0)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count().await < 50 {
            assert!(
                std::time::Instant::now() < deadline,
                "the batch never landed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(count().await, 50, "all of the batch, not part of it");
        store.close().await;
    }
}
