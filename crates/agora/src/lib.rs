//! The `agora` binary's library half: configuration and start-up, shared by `main` and the
//! integration tests so that both run exactly the same code.
//!
//! # Layout
//!
//! - [`config`]: every setting, from flags or `AGORA_*` variables, checked once at start.
//! - [`limits`]: bounds on connections and hashing sized from the process's file limit.
//! - [`listen`]: `agora listen`, which follows a server's event stream and forwards each
//!   event, signed, to a local URL.
//! - [`secret_key`]: the key that seals webhook secrets at rest, loaded once.
//! - [`local`]: the existing database a local command (`migrate`, `keys create`, `backup`)
//!   works on; only `serve` creates one.
//! - [`backup`]: `agora backup`, a consistent copy of a live SQLite database.
//! - [`metrics`]: the Prometheus recorder behind `GET /metrics` and the sampler of the queue.
//! - [`otlp`]: span export over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (feature `otlp`).
//! - [`presence`]: the background sweep that fires `user.offline` when heartbeats stop.
//! - [`start`]: opens the store, bootstraps the admin key, starts the dispatcher and the API on
//!   a listener the caller bound, and hands back a [`Running`] server to stop.

pub mod backup;
pub mod config;
pub mod limits;
pub mod listen;
pub mod local;
mod maintenance;
pub mod metrics;
pub mod otlp;
pub mod presence;
pub mod secret_key;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use agora_api::AppState;
use agora_core::dispatcher::{Dispatcher, DispatcherConfig, Sender, Waker};
use agora_store::Backend;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

pub use agora_store::Store;
pub use config::Config;

/// Sends the process's logs to `writer` in `format`, filtered by `AGORA_LOG` (by default
/// `info,sqlx=warn`): the set-up of `agora` and of the servers `agora-bench` runs. Text has
/// ANSI colours only when `terminal` says the writer is one: escape codes in a file or a log
/// collector are noise that breaks searching.
pub fn init_logging(format: config::LogFormat, writer: BoxMakeWriter, terminal: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGORA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    match otlp::layer() {
        // The log's filter is then the log's own, so that the export may ask for spans the
        // log leaves out (the delivery attempts').
        Some(export) => tracing_subscriber::registry()
            .with(log_lines(format, writer, terminal).with_filter(filter))
            .with(export)
            .init(),
        // Without an export the filter is the process's: a callsite it leaves out is never
        // enabled, so nothing below it (sqlx's statement log, debug spans) is even built.
        None => tracing_subscriber::registry()
            .with(filter)
            .with(log_lines(format, writer, terminal))
            .init(),
    }
}

/// The log's own layer: lines of text or JSON to `writer`.
fn log_lines<S>(
    format: config::LogFormat,
    writer: BoxMakeWriter,
    terminal: bool,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(terminal)
        .with_writer(writer);
    match format {
        config::LogFormat::Json => lines.json().boxed(),
        config::LogFormat::Text => lines.boxed(),
    }
}

/// A server started by [`start`].
pub struct Running {
    /// The address the API listens on (useful when bound to port 0).
    pub addr: SocketAddr,
    /// The admin key generated on this start, when the database was empty and no
    /// `AGORA_ADMIN_KEY` was given (an operator's own key is never printed back).
    pub bootstrap_admin_key: Option<String>,
    shutdown: CancellationToken,
    api: JoinHandle<std::io::Result<()>>,
    dispatcher: JoinHandle<()>,
    /// Timers: retention, the forum's presence sweep and the metrics sampler.
    background: TaskTracker,
    store: Store,
    readiness: agora_api::readiness::Readiness,
    drain: std::time::Duration,
}

impl Running {
    /// Stops gracefully: no new requests or claims, attempts in flight finish (each bounded by
    /// its timeout), their results are recorded, leases still held are given back.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after [`Running::stop`] or a shutdown signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.api.await.context("API task panicked")??;
        self.dispatcher.await.context("dispatcher task panicked")?;
        self.background.wait().await;
        self.store.close().await;
        Ok(())
    }

    /// A token whose cancellation stops the server (wired to SIGTERM and SIGINT by `main`).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The server's store (for tests and tools running beside it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What stops the node the way a signal should: drain first, then stop.
    pub fn drainer(&self) -> Drainer {
        Drainer {
            readiness: self.readiness.clone(),
            shutdown: self.shutdown.clone(),
            period: self.drain,
        }
    }
}

/// Stops a node gracefully for its load balancer: `/readyz` answers 503 for the drain period
/// (`AGORA_DRAIN_SECONDS`) while every request is still served, then the node stops accepting,
/// finishes the requests and attempts in flight, and stops.
pub struct Drainer {
    readiness: agora_api::readiness::Readiness,
    shutdown: CancellationToken,
    period: std::time::Duration,
}

impl Drainer {
    /// Drains, then stops the server, or stops at once when `hurry` completes first (a second
    /// signal: an operator who does not want to wait).
    pub async fn drain_then_stop(self, hurry: impl std::future::Future<Output = ()>) {
        self.readiness.drain();
        tracing::info!(
            seconds = self.period.as_secs_f64(),
            "draining: /readyz answers 503 while requests are still served"
        );
        tokio::select! {
            () = tokio::time::sleep(self.period) => {}
            () = hurry => {}
        }
        tracing::info!("shutting down: finishing requests and attempts in flight");
        self.shutdown.cancel();
    }
}

/// Starts the API and the dispatcher on `listener`.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Running> {
    let url = config.database_url()?;
    let secret_box = secret_key::load(&config)?;
    let waker = Waker::default();
    let store = Store::open(&url, waker.clone(), config.store_options())
        .await
        .context("failed to open the database")?
        .with_secret_box(secret_box);
    let sealed = store.check_and_seal_secrets().await.context(
        "the secret key does not open the webhook secrets already stored; start with the key \
         they were sealed with",
    )?;
    if sealed > 0 {
        tracing::info!(
            webhooks = sealed,
            "sealed webhook secrets stored in plaintext"
        );
    }
    if store.backend() == Backend::Sqlite {
        // One process owns a SQLite database: whatever was in flight when it last stopped
        // is due again now.
        let released = store
            .release_all_leases()
            .await
            .context("failed to release leases left by the previous run")?;
        if released > 0 {
            tracing::info!(
                deliveries = released,
                "re-queued deliveries left in flight by the previous run"
            );
        }
    }
    let bootstrap_admin_key = bootstrap_admin_key(&store, &config).await?;

    let limits = config.limits();
    tracing::info!(
        outgoing = limits.outgoing,
        connections = limits.connections,
        hashes = limits.hashes,
        "bounds on requests in flight, connections and password hashes"
    );
    // Before the dispatcher and the API, whose series register with it as they start.
    let recorder = metrics::install();
    let render = recorder.clone().map(|handle| {
        let render: agora_api::metrics::Render = Arc::new(move || handle.render());
        render
    });
    let metrics_listener = match (&config.metrics_listen, &render) {
        (Some(address), Some(_)) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for metrics"))?,
        ),
        _ => None,
    };
    let sender = Sender::new(config.sender_config()).context("failed to build the HTTP client")?;
    let dispatcher_config = DispatcherConfig {
        max_concurrency_per_webhook: config.max_concurrency_per_webhook,
        max_queued_per_webhook: config.max_queued_per_webhook,
        claim_batch: config.claim_batch,
        poll_interval: config.poll_interval.0,
        lease: config.lease.0,
        breaker_threshold: config.breaker_threshold,
        breaker_cooldown: config.breaker_cooldown.0,
        ..DispatcherConfig::default()
    };
    let shutdown = CancellationToken::new();
    let stream = agora_api::stream::StreamHub::start(
        store.clone(),
        agora_api::stream::HubSettings {
            buffer: config.stream_buffer,
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await
    .context("failed to start the event stream")?;
    let state = AppState::new(agora_api::Shared {
        store: store.clone(),
        sender: sender.clone(),
        targets: config.target_policy(),
        node_id: dispatcher_config.node_id.clone(),
        lease: dispatcher_config.lease,
        rotation_grace: config.rotation_grace.0,
        rate_limiter: agora_api::ratelimit::KeyRateLimiter::new(
            config.rate_limit_per_second,
            config.rate_limit_burst,
        ),
        login: agora_api::login::LoginGuard::new(agora_api::login::LoginLimits {
            per_account_per_minute: config.login_attempts_per_account,
            per_address_per_minute: config.login_attempts_per_address,
            max_concurrent_hashes: limits.hashes,
        }),
        max_webhooks_per_key: config.max_webhooks_per_key,
        readiness: agora_api::readiness::Readiness::default(),
        metrics: agora_api::metrics::MetricsEndpoint {
            render: render.clone(),
            token: config.metrics_token.as_ref().map(|t| t.expose().to_owned()),
        },
        stream,
    });
    let readiness = state.readiness.clone();
    let serve_limits = agora_api::server::ServeLimits {
        max_connections: limits.connections,
        header_read_timeout: config.header_read_timeout.0,
        idle_timeout: config.idle_timeout.0,
    };

    let dispatcher = Dispatcher::new(Arc::new(store.clone()), sender, dispatcher_config, waker)
        .with_handoff(store.handoff());
    let running = readiness.dispatcher_running();
    let dispatcher_shutdown = shutdown.clone();
    let dispatcher = tokio::spawn(async move {
        let _running = running;
        dispatcher.run(dispatcher_shutdown).await;
    });
    let background = TaskTracker::new();
    background.spawn(maintenance::prune_forever(
        store.clone(),
        config.retention.0,
        config.retention_interval.0,
        shutdown.clone(),
    ));
    background.spawn(presence::run(
        store.clone(),
        config.presence_timeout.0,
        shutdown.clone(),
    ));
    if let Some(handle) = recorder {
        background.spawn(metrics::sample_forever(
            store.clone(),
            handle,
            config.metrics_sample_interval.0,
            shutdown.clone(),
        ));
    }
    if let (Some(listener), Some(render)) = (metrics_listener, render) {
        let stop = shutdown.clone();
        background.spawn(async move {
            let served =
                agora_api::metrics::serve_open(
                    listener,
                    render,
                    async move { stop.cancelled().await },
                )
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    background.close();
    let addr = listener.local_addr().context("listener has no address")?;
    let api_shutdown = shutdown.clone();
    let api_readiness = readiness.clone();
    let api = tokio::spawn(agora_api::serve(
        listener,
        state,
        serve_limits,
        async move {
            api_shutdown.cancelled().await;
            // `/readyz` answers 503 on the connections still open while the node stops.
            api_readiness.drain();
        },
    ));
    tracing::info!(%addr, backend = ?store.backend(), "agora is serving");
    Ok(Running {
        addr,
        bootstrap_admin_key,
        shutdown,
        api,
        dispatcher,
        background,
        store,
        readiness,
        drain: std::time::Duration::from_secs(config.drain_seconds),
    })
}

/// On the first start (no key exists), makes the admin key: `AGORA_ADMIN_KEY` when set, else a
/// random one, written to `{data dir}/admin.key` with mode 0600.
async fn bootstrap_admin_key(store: &Store, config: &Config) -> anyhow::Result<Option<String>> {
    if store.count_keys().await? > 0 {
        return Ok(None);
    }
    let value = config
        .admin_key
        .as_ref()
        .map(|k| k.expose().to_owned())
        .unwrap_or_else(agora_store::keys::generate_value);
    match store
        .create_key(
            "admin",
            &agora_forum::abilities::Abilities::admin(),
            &value,
            &agora_store::audit::Actor::operator(),
        )
        .await
    {
        // Another node of the cluster bootstrapped the same key first.
        Err(agora_store::StoreError::Conflict(_)) => return Ok(None),
        other => {
            other.context("failed to create the admin key")?;
        }
    }
    write_secret_file(&config.data_dir.join("admin.key"), &value)
        .context("failed to write the admin key file")?;
    Ok(config.admin_key.is_none().then_some(value))
}

/// Writes a secret to a file only its owner can read.
fn write_secret_file(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(value.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
