//! The servers a scenario runs on: one or more nodes on a fresh database.

use std::path::PathBuf;

use crate::{database, BenchArgs, KEY};
use agora::Config;
use anyhow::Context;
use axum::http::StatusCode;
use serde_json::json;
use tokio::net::TcpListener;

/// One or more servers on a fresh database.
pub(crate) struct Nodes {
    pub(crate) running: Vec<agora::Running>,
    /// Requests to one webhook the nodes may have in flight together.
    pub(crate) in_flight_per_webhook: usize,
    pub(crate) client: reqwest::Client,
    /// The PostgreSQL database and the schema made for this run, dropped when it stops.
    pub(crate) schema: Option<(String, String)>,
    /// The first node's database.
    pub(crate) database_url: String,
    pub(crate) _dir: tempfile::TempDir,
}

impl Nodes {
    pub(crate) async fn start(args: &BenchArgs) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let schema = args.database_url.as_ref().map(|url| {
            let name = format!("bench_{}", ulid::Ulid::new().to_string().to_lowercase());
            (url.clone(), name)
        });
        let database_url = match &schema {
            Some((url, name)) => Some(database::create_schema(url, name).await?),
            None => None,
        };
        let mut running = Vec::new();
        let mut in_flight_per_webhook = 0;
        let mut first_database = None;
        for n in 0..args.nodes.max(1) {
            let mut config = bench_config(dir.path().join(format!("node{n}")));
            config.database_url = database_url.clone();
            in_flight_per_webhook += config.max_concurrency_per_webhook;
            first_database.get_or_insert(config.database_url()?);
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            running.push(agora::start(config, listener).await?);
        }
        let nodes = Self {
            running,
            in_flight_per_webhook,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
            schema,
            database_url: first_database.context("no node")?,
            _dir: dir,
        };
        let registered = nodes.register("bench.happened", "benchmark").await?;
        anyhow::ensure!(
            registered.is_success() || registered == 409,
            "cannot register the event type"
        );
        Ok(nodes)
    }

    /// Registers the custom event type `name`; answers the API's status.
    pub(crate) async fn register(
        &self,
        name: &str,
        description: &str,
    ) -> anyhow::Result<StatusCode> {
        let res = self
            .post(
                0,
                "/v1/event-types",
                json!({"name": name, "description": description}),
            )
            .await?;
        Ok(res.status())
    }

    pub(crate) fn url(&self, node: usize, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.running[node % self.running.len()].addr
        )
    }

    pub(crate) async fn post(
        &self,
        node: usize,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .client
            .post(self.url(node, path))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await?)
    }

    pub(crate) async fn webhook(&self, url: &str) -> anyhow::Result<String> {
        self.webhook_for(url, "bench.happened").await
    }

    pub(crate) async fn webhook_for(&self, url: &str, event: &str) -> anyhow::Result<String> {
        let res = self
            .post(0, "/v1/webhooks", json!({"url": url, "events": [event]}))
            .await?;
        anyhow::ensure!(
            res.status() == 201,
            "cannot create a webhook: {}",
            res.text().await?
        );
        let body: serde_json::Value = res.json().await?;
        Ok(body["id"].as_str().context("webhook id")?.to_owned())
    }

    pub(crate) async fn seed_backlog(&self, n: usize) -> anyhow::Result<()> {
        // The backlog belongs to a webhook that receives none of the measured events.
        anyhow::ensure!(
            self.register("bench.backlog", "backlog")
                .await?
                .is_success(),
            "cannot register the backlog type"
        );
        let dead = self
            .webhook_for("http://127.0.0.1:9/dead", "bench.backlog")
            .await?;
        database::insert_backlog(
            &self.database_url,
            &dead,
            n,
            agora_core::time::now_ms() + 86_400_000,
        )
        .await
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        for r in self.running {
            r.stop().await?;
        }
        if let Some((url, name)) = &self.schema {
            database::drop_schema(url, name).await?;
        }
        Ok(())
    }
}

pub(crate) fn bench_config(data_dir: PathBuf) -> Config {
    let mut config = Config::defaults(data_dir);
    config.allow_private_targets = true;
    config.admin_key = Some(KEY.to_owned().into());
    config.forum_name = Some("bench".to_owned());
    config.retention_interval = "1d".parse().expect("a duration");
    config.rate_limit_per_second = 0;
    // Every node of a cluster seals webhook secrets with the same key.
    config.secret_key = Some("be".repeat(32).into());
    config
}
