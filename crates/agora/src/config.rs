//! Every setting of `agora serve`, from a flag or its `AGORA_*` variable (a flag wins), with
//! the defaults the README's configuration table lists. Checked once, at start.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use agora_core::dispatcher::SenderConfig;
use agora_core::retry::{parse_duration, RetryPolicy, RetrySchedule};
use agora_core::target::TargetPolicy;

/// A duration written `250ms`, `5s`, `2m`, `1h` or `1d`.
#[derive(Clone, Copy, Debug)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s)
            .map(Self)
            .ok_or_else(|| format!("{s:?} is not a duration like 250ms, 5s, 2m, 1h or 1d"))
    }
}

/// A setting that is a secret: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Redacted {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// The settings of a server.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address the API listens on.
    #[arg(long, env = "AGORA_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: String,

    /// Directory of the SQLite database and the generated key files.
    #[arg(long, env = "AGORA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://…` to run on PostgreSQL; SQLite in the data directory when unset.
    #[arg(long, env = "AGORA_DATABASE_URL")]
    pub database_url: Option<String>,

    /// PostgreSQL: database connections per node.
    #[arg(long, env = "AGORA_DATABASE_POOL_SIZE", default_value = "16")]
    pub database_pool_size: u32,

    /// Sent as `x-agora-forum`; the host name when unset.
    #[arg(long, env = "AGORA_FORUM_NAME")]
    pub forum_name: Option<String>,

    /// Allow `http` and private, loopback and reserved targets (development and tests only).
    #[arg(long, env = "AGORA_ALLOW_PRIVATE_TARGETS", action = clap::ArgAction::Set,
          default_value = "false", default_missing_value = "true", num_args = 0..=1,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_private_targets: bool,

    /// Delays before retry 1, 2, …
    #[arg(
        long,
        env = "AGORA_RETRY_SCHEDULE",
        default_value = "5s,30s,2m,10m,30m,1h,3h,6h,12h,24h"
    )]
    pub retry_schedule: RetrySchedule,

    /// Jitter applied to each retry delay, as a fraction (0.2 = ±20 %).
    #[arg(long, env = "AGORA_RETRY_JITTER", default_value = "0.2")]
    pub retry_jitter: f64,

    /// The least wait after 429, 502, 503, 504 or a timeout.
    #[arg(long, env = "AGORA_OVERLOAD_PENALTY", default_value = "60s")]
    pub overload_penalty: HumanDuration,

    /// How long an old secret keeps signing after a rotation.
    #[arg(long, env = "AGORA_ROTATION_GRACE", default_value = "24h")]
    pub rotation_grace: HumanDuration,

    /// Concurrent requests to one webhook.
    #[arg(long, env = "AGORA_MAX_CONCURRENCY_PER_WEBHOOK", default_value = "32")]
    pub max_concurrency_per_webhook: usize,

    /// Deliveries of one webhook held in memory at once (sending, or waiting for one of its
    /// requests); the rest wait in the database, so a hanging receiver cannot hoard the
    /// dispatcher's memory.
    #[arg(long, env = "AGORA_MAX_QUEUED_PER_WEBHOOK", default_value = "2048", value_parser = at_least_one())]
    pub max_queued_per_webhook: usize,

    /// Deliveries the dispatcher takes from the database in one claim.
    #[arg(long, env = "AGORA_CLAIM_BATCH", default_value = "4096", value_parser = at_least_one())]
    pub claim_batch: usize,

    /// How often the dispatcher looks for due work when nothing woke it.
    #[arg(long, env = "AGORA_POLL_INTERVAL", default_value = "500ms")]
    pub poll_interval: HumanDuration,

    /// How long a claimed delivery stays leased without renewal (a dead node's work is taken
    /// over after this). Leases are renewed, and leases no worker holds given back, every
    /// third of it.
    #[arg(long, env = "AGORA_LEASE", default_value = "60s")]
    pub lease: HumanDuration,

    /// Consecutive endpoint failures (no answer, timeout, 429, 5xx) that open a webhook's
    /// circuit breaker.
    #[arg(long, env = "AGORA_BREAKER_THRESHOLD", default_value = "5")]
    pub breaker_threshold: u32,

    /// How long an open circuit breaker waits before one probe request.
    #[arg(long, env = "AGORA_BREAKER_COOLDOWN", default_value = "10s")]
    pub breaker_cooldown: HumanDuration,

    /// Auto-disable a webhook after this many failed attempts in a row…
    #[arg(long, env = "AGORA_AUTO_DISABLE_FAILURES", default_value = "50")]
    pub auto_disable_failures: i64,

    /// …with no success for this long.
    #[arg(long, env = "AGORA_AUTO_DISABLE_AFTER", default_value = "5d")]
    pub auto_disable_after: HumanDuration,

    /// Finished deliveries, attempts and events older than this are pruned.
    #[arg(long, env = "AGORA_RETENTION", default_value = "30d")]
    pub retention: HumanDuration,

    /// How often pruning runs.
    #[arg(long, env = "AGORA_RETENTION_INTERVAL", default_value = "10m")]
    pub retention_interval: HumanDuration,

    /// SQLite: how long a write waits for a lock before answering 503 `storage_unavailable`.
    #[arg(long, env = "AGORA_SQLITE_BUSY_TIMEOUT", default_value = "5s")]
    pub sqlite_busy_timeout: HumanDuration,
    /// How long after a user's last presence heartbeat (`POST /v1/presence`) they count as
    /// offline and `user.offline` fires.
    #[arg(long, env = "AGORA_PRESENCE_TIMEOUT", default_value = "60s")]
    pub presence_timeout: HumanDuration,

    /// `text` or `json`.
    #[arg(long, env = "AGORA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Requests a second one API key may make on average (0: unlimited).
    #[arg(long, env = "AGORA_RATE_LIMIT_PER_SECOND", default_value = "1000")]
    pub rate_limit_per_second: u32,

    /// Requests one API key may make at once before the average applies.
    #[arg(long, env = "AGORA_RATE_LIMIT_BURST", default_value = "2000")]
    pub rate_limit_burst: u32,

    /// Webhooks one API key may own (admin keys are not limited).
    #[arg(long, env = "AGORA_MAX_WEBHOOKS_PER_KEY", default_value = "100", value_parser = at_least_one())]
    pub max_webhooks_per_key: usize,

    /// Deliveries one request may create (its events times the webhooks each matches); a
    /// publish over it is refused whole, so one request cannot hold the writer for long.
    #[arg(long, env = "AGORA_MAX_DELIVERIES_PER_REQUEST", default_value = "10000", value_parser = at_least_one())]
    pub max_deliveries_per_request: usize,

    /// Outgoing requests in flight at once, over every webhook; when unset, a share of the
    /// process's open-file limit (half of what is left after a reserve for the database).
    #[arg(long, env = "AGORA_MAX_OUTGOING", value_parser = at_least_one())]
    pub max_outgoing: Option<usize>,

    /// Open API connections at once; when unset, a quarter of the process's open-file limit
    /// left after a reserve for the database.
    #[arg(long, env = "AGORA_MAX_CONNECTIONS", value_parser = at_least_one())]
    pub max_connections: Option<usize>,

    /// How long a connection may take to send a request's headers, counted from when it is
    /// ready for one (a new connection, or a kept-alive one after its last answer).
    #[arg(long, env = "AGORA_HEADER_READ_TIMEOUT", default_value = "10s")]
    pub header_read_timeout: HumanDuration,

    /// How long a connection may read and write nothing while a request is open (a body sent
    /// too slowly, an answer not read) before it is closed.
    #[arg(long, env = "AGORA_IDLE_TIMEOUT", default_value = "60s")]
    pub idle_timeout: HumanDuration,

    /// Events a `GET /v1/stream` consumer may fall behind the newest before it is sent
    /// `event: error` and closed (it then resumes with `Last-Event-ID`); the buffer is shared
    /// by every stream of the process.
    #[arg(long, env = "AGORA_STREAM_BUFFER", default_value = "1024", value_parser = at_least_one())]
    pub stream_buffer: usize,

    /// Login attempts a minute for one account (also the burst; 0: unlimited).
    #[arg(long, env = "AGORA_LOGIN_ATTEMPTS_PER_ACCOUNT", default_value = "10")]
    pub login_attempts_per_account: u32,

    /// Login attempts a minute from one address (an IPv6 /64 counts as one; also the burst;
    /// 0: unlimited).
    #[arg(long, env = "AGORA_LOGIN_ATTEMPTS_PER_ADDRESS", default_value = "60")]
    pub login_attempts_per_address: u32,

    /// Password hashes computed at once (each holds about 19 MiB); when unset, the number of
    /// CPUs.
    #[arg(long, env = "AGORA_MAX_CONCURRENT_HASHES", value_parser = at_least_one())]
    pub max_concurrent_hashes: Option<usize>,

    /// How long a node told to stop (SIGTERM, ctrl-c) keeps serving while `/readyz` answers
    /// 503, so that load balancers take it out before it stops accepting connections.
    #[arg(long, env = "AGORA_DRAIN_SECONDS", default_value = "5")]
    pub drain_seconds: u64,

    /// How often the gauges the database knows (the queue, the oldest due delivery, the
    /// webhooks by status) are sampled; each sample is two grouped counts.
    #[arg(long, env = "AGORA_METRICS_SAMPLE_INTERVAL", default_value = "10s")]
    pub metrics_sample_interval: HumanDuration,

    /// A second address that serves only `GET /metrics`, to anyone who reaches it, without a
    /// token (bind it to a private interface); unset: none, and `/metrics` is served on the
    /// API's address to the token or an admin key.
    #[arg(long, env = "AGORA_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// A bearer token that may read `GET /metrics` (`AGORA_METRICS_TOKEN`); an admin API key
    /// may too. Only an environment variable, never a flag, so it does not show in the process
    /// list.
    #[arg(skip = std::env::var("AGORA_METRICS_TOKEN").ok().filter(|k| !k.is_empty()).map(Redacted))]
    pub metrics_token: Option<Redacted>,

    /// The admin key to create on first start (`AGORA_ADMIN_KEY`); never printed.
    #[arg(skip = std::env::var("AGORA_ADMIN_KEY").ok().filter(|k| !k.is_empty()).map(Redacted))]
    pub admin_key: Option<Redacted>,

    /// The key that seals webhook secrets at rest (`AGORA_SECRET_KEY`, 64 hex characters);
    /// when unset, `{data dir}/secret.key`, generated on first start. Only an environment
    /// variable, never a flag, so it does not show in the process list.
    #[arg(skip = std::env::var("AGORA_SECRET_KEY").ok().filter(|k| !k.is_empty()).map(Redacted))]
    pub secret_key: Option<Redacted>,
}

impl Config {
    /// The defaults, as if started with no flag and no variable (for tests to adjust).
    pub fn defaults(data_dir: PathBuf) -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        let mut config = Only::parse_from(["agora"]).config;
        config.data_dir = data_dir;
        config
    }

    /// The database URL in use.
    pub fn database_url(&self) -> anyhow::Result<String> {
        match &self.database_url {
            Some(url) => Ok(url.clone()),
            None => {
                std::fs::create_dir_all(&self.data_dir).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot create data directory {}: {e}",
                        self.data_dir.display()
                    )
                })?;
                Ok(agora_store::Store::sqlite_url(&self.data_dir))
            }
        }
    }

    /// The forum name sent as `x-agora-forum`.
    pub fn forum_name(&self) -> String {
        self.forum_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "agora".to_owned())
        })
    }

    /// Which webhook targets are allowed.
    pub fn target_policy(&self) -> TargetPolicy {
        TargetPolicy {
            allow_private: self.allow_private_targets,
        }
    }

    /// The store's settings.
    pub fn store_options(&self) -> agora_store::StoreOptions {
        agora_store::StoreOptions {
            busy_timeout: self.sqlite_busy_timeout.0,
            auto_disable_failures: self.auto_disable_failures.max(1),
            auto_disable_after: self.auto_disable_after.0,
            pool_size: self.database_pool_size,
            max_deliveries_per_request: self.max_deliveries_per_request,
        }
    }

    /// What the dispatcher's sender is built from.
    pub fn sender_config(&self) -> SenderConfig {
        SenderConfig {
            forum_name: self.forum_name(),
            targets: self.target_policy(),
            retry: self.retry_policy(),
            max_in_flight: self.limits().outgoing,
        }
    }

    /// The bounds on file descriptors and memory that follow from these settings and the
    /// process's limits.
    pub fn limits(&self) -> crate::limits::Limits {
        let sized = crate::limits::Limits::from_open_files(
            crate::limits::open_file_limit(),
            self.database_pool_size as usize,
        );
        crate::limits::Limits {
            outgoing: self.max_outgoing.unwrap_or(sized.outgoing),
            connections: self.max_connections.unwrap_or(sized.connections),
            hashes: self.max_concurrent_hashes.unwrap_or(sized.hashes),
        }
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            schedule: self.retry_schedule.clone(),
            jitter: self.retry_jitter.clamp(0.0, 0.9),
            overload_penalty: self.overload_penalty.0,
            ..RetryPolicy::default()
        }
    }
}

/// Parses a count that must be at least 1 (a claim of none would spin without progress).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Only {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn the_dispatchers_counts_are_refused_below_one() {
        for flag in [
            "--claim-batch",
            "--max-queued-per-webhook",
            "--max-webhooks-per-key",
            "--max-deliveries-per-request",
            "--max-outgoing",
            "--max-connections",
            "--max-concurrent-hashes",
        ] {
            assert!(
                Only::try_parse_from(["agora", flag, "0"]).is_err(),
                "{flag} 0 was taken"
            );
        }
        let config = Only::try_parse_from(["agora", "--claim-batch", "7"])
            .expect("7 is a count")
            .config;
        assert_eq!(config.claim_batch, 7);
        assert_eq!(config.max_queued_per_webhook, 2048);
    }

    #[test]
    fn limits_left_unset_are_sized_from_the_file_limit_and_set_ones_win() {
        let config = Only::try_parse_from(["agora", "--max-outgoing", "7"])
            .expect("7 is a count")
            .config;
        let limits = config.limits();
        assert_eq!(limits.outgoing, 7);
        assert!(limits.connections >= 16 && limits.hashes >= 1);
        assert_eq!(config.sender_config().max_in_flight, 7);
        assert_eq!(config.max_webhooks_per_key, 100);
        assert_eq!(config.max_deliveries_per_request, 10_000);
    }
}
