//! Upgrades: a database at a released schema, holding deliveries in every unfinished state
//! as that release wrote them, is taken over by the current server, which applies the newer
//! migrations on start and delivers every one.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::json;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, Migrator};
use sqlx::AnyPool;

use agora_core::event::{Event, EventType};
use agora_core::signing::WebhookSecret;
use agora_store::schema::{self, Release};
use agora_store::secretbox::SecretBox;
use agora_store::{Backend, Store};

use crate::helpers::{postgres_schema, postgres_url, spawn_app_with, Receiver};

/// The key the old installation sealed its webhook secrets with.
const SECRET_KEY: &str = "4f0c9a3e1b7d5f2a8c6e0b4d9f1a3c5e7b9d1f3a5c7e9b0d2f4a6c8e0b2d4f6a";

/// The embedded migrations up to a release's last one.
#[derive(Debug)]
struct Through(Vec<Migration>);

impl MigrationSource<'static> for Through {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move { Ok(self.0) })
    }
}

/// Brings the empty database at `url` to `release`'s schema, as that release's start did.
async fn migrate_to(url: &str, backend: Backend, release: &Release) -> AnyPool {
    sqlx::any::install_default_drivers();
    let last = release.last_migration(backend);
    let shipped: Vec<Migration> = schema::migrator(backend)
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect();
    assert_eq!(
        shipped.len() as i64,
        last,
        "a migration of {release:?} is missing"
    );
    let pool = AnyPool::connect(url).await.expect("connect");
    Migrator::new(Through(shipped))
        .await
        .unwrap()
        .run(&pool)
        .await
        .expect("the release's migrations apply");
    pool
}

/// The deliveries an old node left, one per unfinished state.
struct Left {
    pending: String,
    failed: String,
    in_flight: String,
}

/// Writes, with the statements of 0.1.0, a webhook to `url` and three events, whose
/// deliveries are pending (due), failed with a retry scheduled, and in flight on a node that
/// is gone (on PostgreSQL its lease has expired; on SQLite leases have no expiry).
async fn write_as_0_1_0(pool: &AnyPool, backend: Backend, url: &str) -> (Left, WebhookSecret) {
    let now = agora_core::time::now_ms();
    let webhook = format!("wh_{}", ulid::Ulid::new());
    let secret = WebhookSecret::generate();
    let sealed = SecretBox::from_hex(SECRET_KEY)
        .unwrap()
        .seal(secret.expose(), &webhook);
    sqlx::query(
        "INSERT INTO event_types (name, description, schema, created_at) VALUES ($1, $2, NULL, $3)",
    )
    .bind("upgrade.tested")
    .bind("written by 0.1.0")
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO webhooks (id, owner_key_id, name, description, url, events, secret, \
         previous_secret, previous_secret_until, headers, retry_count, timeout_ms, status, \
         disabled_reason, filter, format, created_at, updated_at, last_triggered_at, last_error, \
         last_success_at, failure_streak) \
         VALUES ($1, NULL, 'old', NULL, $2, $3, $4, NULL, NULL, '{}', 10, 5000, 'active', NULL, \
         NULL, 'json', $5, $5, $5, 'HTTP 500', NULL, 1)",
    )
    .bind(&webhook)
    .bind(url)
    .bind(json!(["upgrade.*"]).to_string())
    .bind(sealed)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();

    let in_flight_due = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(now - 60_000),
    };
    let states: [(&str, Option<i64>, i64, Option<&str>); 3] = [
        ("pending", Some(now - 1_000), 0, None),
        ("failed", Some(now + 300), 1, None),
        ("in_flight", in_flight_due, 1, Some("node_gone")),
    ];
    let mut ids = Vec::new();
    for (status, due_at, attempts, lease_owner) in states {
        let event = Event::new(
            EventType::parse("upgrade.tested").unwrap(),
            json!({"state": status}),
        );
        sqlx::query("INSERT INTO events (id, type, body, created_at) VALUES ($1, $2, $3, $4)")
            .bind(event.id.as_str())
            .bind(event.event_type.as_str())
            .bind(event.to_body())
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
        let delivery = format!("msg_{}", ulid::Ulid::new());
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, event_type, status, due_at, \
             lease_owner, attempts, attempt_base, last_status_code, last_error, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $11)",
        )
        .bind(&delivery)
        .bind(event.id.as_str())
        .bind(&webhook)
        .bind(event.event_type.as_str())
        .bind(status)
        .bind(due_at)
        .bind(lease_owner)
        .bind(attempts)
        .bind((status == "failed").then_some(500i64))
        .bind((status == "failed").then_some("HTTP 500"))
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
        ids.push(delivery);
    }
    let [pending, failed, in_flight] = <[String; 3]>::try_from(ids).unwrap();
    (
        Left {
            pending,
            failed,
            in_flight,
        },
        secret,
    )
}

/// Builds `release`'s database at `url` (`data_dir` for SQLite), starts the current server on
/// it and checks that every delivery left arrives, signed with the secret sealed then.
async fn upgrade_from(
    release: &Release,
    backend: Backend,
    url: String,
    data_dir: &std::path::Path,
) {
    let receiver = Receiver::start().await;
    let pool = migrate_to(&url, backend, release).await;
    let (left, secret) = write_as_0_1_0(&pool, backend, &receiver.url()).await;
    pool.close().await;

    let data_dir = data_dir.to_path_buf();
    let postgres = (backend == Backend::Postgres).then_some(url);
    let app = spawn_app_with(move |c| {
        c.data_dir = data_dir;
        c.database_url = postgres;
        c.secret_key = Some(SECRET_KEY.to_owned().into());
    })
    .await;

    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    let arrived: std::collections::HashSet<&str> =
        got.iter().map(|r| r.header("webhook-id")).collect();
    for (state, id) in [
        ("pending", &left.pending),
        ("failed", &left.failed),
        ("in flight", &left.in_flight),
    ] {
        assert!(
            arrived.contains(id.as_str()),
            "the {state} delivery never arrived"
        );
        app.wait_for_delivery_status(id, "succeeded").await;
    }
    for r in &got {
        let timestamp: i64 = r.header("webhook-timestamp").parse().unwrap();
        assert_eq!(
            r.header("webhook-signature"),
            secret.sign_standard(r.header("webhook-id"), timestamp, &r.body),
            "a delivery was not signed with the secret the old release sealed"
        );
    }

    let db = app.database().await;
    let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    assert_eq!(version, schema::latest(backend));
}

#[tokio::test]
async fn deliveries_left_by_0_1_0_on_sqlite_are_delivered_after_the_upgrade() {
    let release = &schema::RELEASES[0];
    assert_eq!(release.version, "0.1.0");
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(dir.path());
    upgrade_from(release, Backend::Sqlite, url, dir.path()).await;
}

#[tokio::test]
async fn deliveries_left_by_0_1_0_on_postgres_are_delivered_after_the_upgrade() {
    if postgres_url().is_none() {
        eprintln!("skipped: AGORA_TEST_POSTGRES_URL is not set");
        return;
    }
    let release = &schema::RELEASES[0];
    let dir = tempfile::tempdir().unwrap();
    upgrade_from(
        release,
        Backend::Postgres,
        postgres_schema().await,
        dir.path(),
    )
    .await;
}
