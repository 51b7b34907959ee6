//! `agora-bench`: measures the webhook engine on this machine, against a ceiling measured in
//! the same run, so figures are ratios that hold on a noisy machine. It runs Agora's servers in
//! its own process, through the `agora` library's `start`, as `agora serve` does, and talks to
//! them over HTTP like any client; BENCHMARKS.md has the figures and the commands.
//!
//! Scenarios (each on a fresh server and database in a temporary directory):
//! 1. ceiling: the receiver driven by a plain keep-alive client at the same concurrency (the
//!    best of three parts, each with fresh connections), measured before the scenarios and
//!    again after them, the higher reading being the ceiling (the machine drifts within a
//!    run); and the same with the headers a delivery carries, which the receiver must also
//!    parse;
//! 2. ingest: events/s acknowledged by `POST /v1/events` (and the batch endpoint);
//! 3. end to end: deliveries/s with 1 and with 10 webhooks per event, first publish to last
//!    arrival; each also against a ceiling measured with as many requests in flight as the
//!    dispatcher may have in that run (10 webhooks × 32), since a plain client too slows down
//!    with more connections;
//! 4. latency: publish to arrival at a fixed rate and at saturation;
//! 5. backlog: the fixed-rate latency again with a large backlog scheduled for later;
//! 6. memory: peak RSS of a server process (this binary started again with `--serve`, which
//!    runs the server alone, as `agora serve` does) holding deliveries for an endpoint that
//!    is down.
//!
//! The ceiling and the end-to-end runs also report the process's CPU time per request or
//! delivery, compared the other way round (ceiling / figure): a rate that falls while the
//! CPU cost holds points at idle CPUs, not at costlier deliveries.
//!
//! With `--receiver-latency-ms` the receiver answers each request that long after it arrived,
//! as an endpoint across a network does: the requests in flight then bound every rate, not
//! the CPUs, which is how a second node's share shows on a machine whose CPUs both nodes share.

mod cpu;
mod database;
mod receiver;
mod report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora::config::LogFormat;
use agora::Config;
use anyhow::Context;
use axum::http::StatusCode;
use clap::Parser;
use http::header::{HeaderMap, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::net::TcpListener;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use self::receiver::BenchReceiver;
use self::report::{Figure, Report};

/// The allocator `agora` uses, so that the servers this process runs allocate as it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "agora-bench",
    version,
    about = "Measures Agora's throughput, latency and memory on this machine (see BENCHMARKS.md)"
)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
    /// Serve as `agora serve` does, configured by the `AGORA_*` variables alone: the server
    /// process of the memory scenario.
    #[arg(long, hide = true)]
    serve: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.serve {
        return serve().await;
    }
    // The report goes to stdout (`--json` for machines), so the logs may not.
    agora::init_logging(LogFormat::Text, BoxMakeWriter::new(std::io::stderr));
    run(cli.args).await
}

/// Runs one server configured by the `AGORA_*` variables until the process is killed.
async fn serve() -> anyhow::Result<()> {
    let data_dir = std::env::var_os("AGORA_DATA_DIR").context("AGORA_DATA_DIR is not set")?;
    let config = Config::defaults(data_dir.into());
    agora::init_logging(config.log_format, BoxMakeWriter::new(std::io::stdout));
    let listener = TcpListener::bind(&config.listen).await?;
    agora::start(config, listener).await?.wait().await
}

/// What to measure and how hard.
#[derive(Clone, Debug, clap::Args)]
struct BenchArgs {
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Concurrent clients, for the ceiling and for ingest.
    #[arg(long, default_value = "64")]
    concurrency: usize,
    /// Seconds each throughput scenario runs.
    #[arg(long, default_value = "5")]
    seconds: u64,
    /// Events per end-to-end run.
    #[arg(long, default_value = "20000")]
    events: usize,
    /// Events per second in the fixed-rate latency runs.
    #[arg(long, default_value = "1000")]
    rate: u64,
    /// Deliveries scheduled for later in the backlog run.
    #[arg(long, default_value = "1000000")]
    backlog: usize,
    /// Deliveries pending for a dead endpoint in the memory run.
    #[arg(long, default_value = "100000")]
    pending: usize,
    /// Run only these scenarios (comma-separated: headers, ingest, e2e, latency, backlog,
    /// memory); the ceiling is always measured.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Run the servers on this PostgreSQL database instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// Servers (nodes) sharing the PostgreSQL database.
    #[arg(long, default_value = "1")]
    nodes: usize,
    /// Milliseconds the receiver waits before answering each request: a slow receiver, where
    /// requests in flight bound the rate instead of the CPUs (as with real endpoints across a
    /// network), so that what more nodes add can be seen on one machine.
    #[arg(long, default_value = "0")]
    receiver_latency_ms: u64,
}

impl BenchArgs {
    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

const KEY: &str = "agora_bench_admin_key_000000000000000000";

/// Runs the benchmark and prints the report.
async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let receiver = BenchReceiver::start(Duration::from_millis(args.receiver_latency_ms)).await?;
    let mut report = Report::new(&args);
    let first = ceiling(&receiver, args.concurrency, args.seconds, &HeaderMap::new()).await?;
    progress(&format!(
        "ceiling: {:.0} POST/s, {:.1} µs of CPU each",
        first.rate, first.cpu_us
    ));
    if args.wants("headers") {
        let headers = delivery_headers(&args).await?;
        let with_headers =
            self::ceiling(&receiver, args.concurrency, args.seconds, &headers).await?;
        progress(&format!(
            "ceiling with a delivery's headers: {:.0} POST/s",
            with_headers.rate
        ));
        push_throughput(
            &mut report,
            "ceiling, requests with a delivery's headers",
            "POST/s",
            with_headers,
            None,
        );
    }

    if args.wants("ingest") {
        let nodes = Nodes::start(&args).await?;
        let single = ingest(&nodes, args.concurrency, args.seconds, 1).await?;
        report.push(Figure::rate(
            "ingest, single events (events/s)",
            single,
            "events/s",
        ));
        let batched = ingest(&nodes, 8, args.seconds, 100).await?;
        report.push(Figure::rate(
            "ingest, batches of 100 (events/s)",
            batched,
            "events/s",
        ));
        nodes.stop().await?;
    }
    if args.wants("e2e") {
        for webhooks in [1, 10] {
            let nodes = Nodes::start(&args).await?;
            let run = end_to_end(&nodes, &receiver, webhooks, args.events).await?;
            let what = format!("end to end, {webhooks} webhook(s) per event");
            push_throughput(&mut report, &what, "deliveries/s", run.throughput, None);
            if webhooks == 1 {
                report.push(Figure::latency(
                    "latency at saturation, 1 webhook",
                    &run.latencies,
                ));
            }
            // The issue's ceiling is a plain client "at the same concurrency": measured again
            // with as many requests in flight as the dispatchers allowed in this run.
            let in_flight = webhooks * nodes.in_flight_per_webhook;
            nodes.stop().await?;
            let matched = ceiling(&receiver, in_flight, args.seconds, &HeaderMap::new()).await?;
            progress(&format!(
                "ceiling with {in_flight} in flight: {:.0} POST/s",
                matched.rate
            ));
            report.push(Figure::rate(
                &format!("ceiling with {in_flight} in flight, as that run (POST/s)"),
                matched.rate,
                "POST/s",
            ));
            push_throughput(
                &mut report,
                &format!("{what}, against that ceiling"),
                "deliveries/s",
                run.throughput,
                Some(matched),
            );
        }
    }
    if args.wants("latency") {
        let nodes = Nodes::start(&args).await?;
        let latencies = fixed_rate(&nodes, &receiver, args.rate, args.seconds * 2).await?;
        report.push(Figure::latency(
            &format!("latency at {} events/s, 1 webhook", args.rate),
            &latencies,
        ));
        nodes.stop().await?;
    }
    if args.wants("backlog") {
        let nodes = Nodes::start(&args).await?;
        progress(&format!(
            "backlog: scheduling {} deliveries for tomorrow",
            args.backlog
        ));
        nodes.seed_backlog(args.backlog).await?;
        let latencies = fixed_rate(&nodes, &receiver, args.rate, args.seconds * 2).await?;
        report.push(Figure::latency(
            &format!(
                "latency at {} events/s with {} scheduled",
                args.rate, args.backlog
            ),
            &latencies,
        ));
        nodes.stop().await?;
    }
    if args.wants("memory") && args.database_url.is_none() {
        let peak = memory(args.pending).await?;
        report.push(Figure::memory(
            &format!(
                "peak RSS, {} deliveries pending for a dead endpoint",
                args.pending
            ),
            peak,
        ));
    }
    let last = if SCENARIOS.iter().any(|s| args.wants(s)) {
        let last = ceiling(&receiver, args.concurrency, args.seconds, &HeaderMap::new()).await?;
        progress(&format!("ceiling again: {:.0} POST/s", last.rate));
        report.push(Figure::rate(
            "ceiling measured before the scenarios (POST/s)",
            first.rate,
            "POST/s",
        ));
        report.push(Figure::rate(
            "ceiling measured after them (POST/s)",
            last.rate,
            "POST/s",
        ));
        last
    } else {
        first
    };
    // The higher reading is the ceiling: a low one would flatter every ratio.
    let best = first.faster(last);
    report.set_ceiling(best.rate, best.cpu_us);
    report.print(args.json);
    Ok(())
}

/// The scenarios `--only` picks from; the ceiling is measured whatever is picked.
const SCENARIOS: [&str; 6] = ["headers", "ingest", "e2e", "latency", "backlog", "memory"];

fn progress(line: &str) {
    eprintln!("agora-bench: {line}");
}

/// Adds `measured` as two figures named after `what`: its rate in `unit`, and its CPU time
/// each; both compared with `against` when given, else with the run's ceiling.
fn push_throughput(
    report: &mut Report,
    what: &str,
    unit: &'static str,
    measured: Throughput,
    against: Option<Throughput>,
) {
    let rate = Figure::rate(&format!("{what} ({unit})"), measured.rate, unit);
    let cpu = Figure::cpu(&format!("{what} (µs CPU each)"), measured.cpu_us);
    match against {
        Some(ceiling) => {
            report.push(rate.against(ceiling.rate));
            report.push(cpu.against(ceiling.cpu_us));
        }
        None => {
            report.push(rate);
            report.push(cpu);
        }
    }
}

/// What a stretch of sending measured: its rate and the CPU time (of the whole process,
/// receiver included) that each request or delivery cost.
#[derive(Clone, Copy)]
struct Throughput {
    rate: f64,
    cpu_us: f64,
}

impl Throughput {
    /// The measurement with the higher rate: of several readings of one ceiling, a low one
    /// would flatter every ratio measured against it.
    fn faster(self, other: Self) -> Self {
        if other.rate > self.rate {
            other
        } else {
            self
        }
    }
}

/// The receiver driven by a plain keep-alive client: what the machine can do at all.
///
/// One measurement settles at one of two levels far apart from run to run, with both CPUs busy
/// at either level and a CPU-bound loop timed between runs not varying; the cause is not known (how the connections' tasks spread
/// over the runtime's workers is the first guess). So the time is split into parts, each with
/// a fresh client and so fresh connections, and the best part is the ceiling: a low reading
/// would flatter every ratio measured against it. A run can still read low in every part.
async fn ceiling(
    receiver: &BenchReceiver,
    concurrency: usize,
    seconds: u64,
    headers: &HeaderMap,
) -> anyhow::Result<Throughput> {
    const PARTS: u32 = 3;
    let part = Duration::from_secs(seconds.max(1)) / PARTS;
    let mut best = Throughput {
        rate: 0.0,
        cpu_us: f64::NAN,
    };
    for _ in 0..PARTS {
        best = best.faster(plain_client_rate(receiver, concurrency, part, headers).await?);
    }
    Ok(best)
}

/// The headers a delivery carries (id, timestamp, event, attempt, signatures, forum, user
/// agent), as a server sent them with one delivery to a receiver of their own: the bench's
/// receiver parses each of them, and allocates each name outside HTTP's standard set, work the
/// plain ceiling never asks of it. The ones the plain client sets itself (host, length) are
/// left out.
async fn delivery_headers(args: &BenchArgs) -> anyhow::Result<HeaderMap> {
    let (sent, received) = tokio::sync::oneshot::channel::<HeaderMap>();
    let sent = Arc::new(std::sync::Mutex::new(Some(sent)));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let sent = sent.lock().expect("lock").take();
        async move {
            if let Some(sent) = sent {
                let _ = sent.send(headers);
            }
            StatusCode::OK
        }
    });
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await });
    let nodes = Nodes::start(args).await?;
    nodes.webhook(&url).await?;
    let published = nodes
        .post(
            0,
            "/v1/events",
            json!({"type": "bench.happened", "data": {"n": 1}}),
        )
        .await?;
    anyhow::ensure!(
        published.status() == 202,
        "cannot publish: {}",
        published.status()
    );
    let arrived = tokio::time::timeout(Duration::from_secs(30), received).await;
    nodes.stop().await?;
    receiver.abort();
    let mut headers = arrived
        .context("no delivery arrived within 30 s")?
        .context("the receiver stopped")?;
    for name in [HOST, CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION] {
        headers.remove(name);
    }
    Ok(headers)
}

/// The body every ceiling request carries: an event envelope of the usual size.
const CEILING_BODY: &str = r#"{"id":"evt_x","type":"course.enrolled","timestamp":"2026-01-01T00:00:00.000Z","data":{"n":1}}"#;

/// POSTs per second that `concurrency` tasks of a new keep-alive client get from the receiver
/// in `period`, each request carrying `headers`, and the CPU time each cost. The client is
/// hyper's, as the dispatcher's sender uses, so the ceiling is not lowered by layers the
/// sender does without; like the sender, it reads every answer to the end.
async fn plain_client_rate(
    receiver: &BenchReceiver,
    concurrency: usize,
    period: Duration,
    headers: &HeaderMap,
) -> anyhow::Result<Throughput> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build(connector);
    let uri: Uri = receiver.url().parse()?;
    let body = CEILING_BODY.to_owned();
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + period;
    let started = Instant::now();
    let cpu_before = cpu::used();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, done, body, uri, headers) = (
            client.clone(),
            done.clone(),
            body.clone(),
            uri.clone(),
            headers.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let mut request = Request::new(Full::new(Bytes::from(body.clone())));
                *request.method_mut() = Method::POST;
                *request.uri_mut() = uri.clone();
                if !headers.is_empty() {
                    *request.headers_mut() = headers.clone();
                }
                let Ok(response) = client.request(request).await else {
                    continue;
                };
                if response.into_body().collect().await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let done = done.load(Ordering::Relaxed);
    Ok(Throughput {
        rate: done as f64 / started.elapsed().as_secs_f64(),
        cpu_us: cpu::per_item_us(cpu_before, done as u64),
    })
}

/// One or more servers on a fresh database.
struct Nodes {
    running: Vec<agora::Running>,
    /// Requests to one webhook the nodes may have in flight together.
    in_flight_per_webhook: usize,
    client: reqwest::Client,
    /// The PostgreSQL database and the schema made for this run, dropped when it stops.
    schema: Option<(String, String)>,
    /// The first node's database.
    database_url: String,
    _dir: tempfile::TempDir,
}

impl Nodes {
    async fn start(args: &BenchArgs) -> anyhow::Result<Self> {
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
    async fn register(&self, name: &str, description: &str) -> anyhow::Result<StatusCode> {
        let res = self
            .post(
                0,
                "/v1/event-types",
                json!({"name": name, "description": description}),
            )
            .await?;
        Ok(res.status())
    }

    fn url(&self, node: usize, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.running[node % self.running.len()].addr
        )
    }

    async fn post(
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

    async fn webhook(&self, url: &str) -> anyhow::Result<String> {
        self.webhook_for(url, "bench.happened").await
    }

    async fn webhook_for(&self, url: &str, event: &str) -> anyhow::Result<String> {
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

    async fn seed_backlog(&self, n: usize) -> anyhow::Result<()> {
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

    async fn stop(self) -> anyhow::Result<()> {
        for r in self.running {
            r.stop().await?;
        }
        if let Some((url, name)) = &self.schema {
            database::drop_schema(url, name).await?;
        }
        Ok(())
    }
}

fn bench_config(data_dir: PathBuf) -> Config {
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

/// Events acknowledged per second by `concurrency` clients publishing `batch` events a request.
async fn ingest(
    nodes: &Nodes,
    concurrency: usize,
    seconds: u64,
    batch: usize,
) -> anyhow::Result<f64> {
    progress(&format!(
        "ingest: {concurrency} clients, {batch} event(s) per request, {seconds} s"
    ));
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (client, done) = (nodes.client.clone(), done.clone());
        let url = if batch == 1 {
            nodes.url(c, "/v1/events")
        } else {
            nodes.url(c, "/v1/events/batch")
        };
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let body = if batch == 1 {
                    json!({"type": "bench.happened", "data": {"n": 1}})
                } else {
                    json!({"events": vec![json!({"type": "bench.happened", "data": {"n": 1}}); batch]})
                };
                let res = client.post(&url).bearer_auth(KEY).json(&body).send().await;
                if res.is_ok_and(|r| r.status() == 202) {
                    done.fetch_add(batch, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// What an end-to-end run measured.
struct EndToEnd {
    /// Deliveries per second from the first publish to the last arrival, and the CPU time per
    /// delivery over the same stretch (publishing and receiving included).
    throughput: Throughput,
    /// Publish to arrival, when each event went to one webhook.
    latencies: Vec<Duration>,
}

/// Publishes `events` events in batches as fast as possible to `webhooks` webhooks.
async fn end_to_end(
    nodes: &Nodes,
    receiver: &BenchReceiver,
    webhooks: usize,
    events: usize,
) -> anyhow::Result<EndToEnd> {
    progress(&format!(
        "end to end: {events} events × {webhooks} webhook(s)"
    ));
    for _ in 0..webhooks {
        nodes.webhook(&receiver.url()).await?;
    }
    receiver.track(webhooks == 1);
    let before = receiver.count();
    let expected = before + (events * webhooks) as u64;
    let started = Instant::now();
    let cpu_before = cpu::used();
    let sent_at = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    const BATCH: usize = 100;
    for c in 0..8 {
        let (client, next, sent_at) = (nodes.client.clone(), next.clone(), sent_at.clone());
        let url = nodes.url(c, "/v1/events/batch");
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(BATCH, Ordering::SeqCst) < events {
                let body = json!({"events": vec![json!({"type": "bench.happened", "data": {"n": 1}}); BATCH]});
                let at = Instant::now();
                if let Ok(res) = client.post(&url).bearer_auth(KEY).json(&body).send().await {
                    if let Ok(answer) = res.json::<serde_json::Value>().await {
                        let mut sent = sent_at.lock().expect("lock");
                        for e in answer["data"].as_array().into_iter().flatten() {
                            if let Some(id) = e["id"].as_str() {
                                sent.insert(id.to_owned(), at);
                            }
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    wait_for_count(receiver, expected, Duration::from_secs(600)).await?;
    let cpu_us = cpu::per_item_us(cpu_before, (events * webhooks) as u64);
    let elapsed = receiver.last_arrival().saturating_duration_since(started);
    let latencies = latencies(receiver, &sent_at.lock().expect("lock"));
    receiver.track(false);
    Ok(EndToEnd {
        throughput: Throughput {
            rate: (events * webhooks) as f64 / elapsed.as_secs_f64(),
            cpu_us,
        },
        latencies,
    })
}

/// Publishes single events at a fixed rate for `seconds` after a one-second warm-up that is not
/// measured; returns publish-to-arrival latencies.
async fn fixed_rate(
    nodes: &Nodes,
    receiver: &BenchReceiver,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<Vec<Duration>> {
    progress(&format!(
        "latency: {rate} events/s for {seconds} s (after 1 s of warm-up)"
    ));
    nodes.webhook(&receiver.url()).await?;
    paced(nodes, receiver, rate, 1).await?;
    paced(nodes, receiver, rate, seconds).await
}

async fn paced(
    nodes: &Nodes,
    receiver: &BenchReceiver,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<Vec<Duration>> {
    receiver.track(true);
    let before = receiver.count();
    let total = rate * seconds;
    let sent_at = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticker.tick().await;
        let (client, sent_at, url) = (
            nodes.client.clone(),
            sent_at.clone(),
            nodes.url(i as usize, "/v1/events"),
        );
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            let body = json!({"type": "bench.happened", "data": {"n": i}});
            if let Ok(res) = client.post(&url).bearer_auth(KEY).json(&body).send().await {
                if let Ok(answer) = res.json::<serde_json::Value>().await {
                    if let Some(id) = answer["id"].as_str() {
                        sent_at.lock().expect("lock").insert(id.to_owned(), at);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    wait_for_count(receiver, before + total, Duration::from_secs(120)).await?;
    let latencies = latencies(receiver, &sent_at.lock().expect("lock"));
    receiver.track(false);
    Ok(latencies)
}

fn latencies(
    receiver: &BenchReceiver,
    sent_at: &std::collections::HashMap<String, Instant>,
) -> Vec<Duration> {
    let arrived = receiver.arrivals.by_event.lock().expect("lock");
    let mut out: Vec<Duration> = sent_at
        .iter()
        .filter_map(|(id, at)| arrived.get(id).map(|t| t.saturating_duration_since(*at)))
        .collect();
    out.sort_unstable();
    out
}

async fn wait_for_count(
    receiver: &BenchReceiver,
    expected: u64,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut last_report = Instant::now();
    while receiver.count() < expected {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {expected} deliveries arrived",
            receiver.count()
        );
        if last_report.elapsed() > Duration::from_secs(1) {
            progress(&format!("… {} of {expected} delivered", receiver.count()));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Peak RSS (bytes) of a separate server process after `pending` events were queued for an
/// endpoint that refuses connections.
async fn memory(pending: usize) -> anyhow::Result<u64> {
    progress(&format!("memory: {pending} deliveries for a dead endpoint"));
    let dir = tempfile::tempdir()?;
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--serve")
        .env("AGORA_LISTEN", addr.to_string())
        .env("AGORA_DATA_DIR", dir.path())
        .env("AGORA_ADMIN_KEY", KEY)
        .env("AGORA_ALLOW_PRIVATE_TARGETS", "1")
        .env("AGORA_LOG", "warn")
        .env("AGORA_RATE_LIMIT_PER_SECOND", "0")
        .env_remove("AGORA_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(KEY)
            .json(&body)
            .send()
    };
    post("/v1/event-types", json!({"name": "bench.happened"})).await?;
    post(
        "/v1/webhooks",
        json!({"url": "http://127.0.0.1:9/dead", "events": ["bench.*"]}),
    )
    .await?;
    let batch =
        vec![json!({"type": "bench.happened", "data": {"n": 1, "text": "x".repeat(200)}}); 100];
    for _ in 0..pending.div_ceil(100) {
        let res = post("/v1/events/batch", json!({"events": batch})).await?;
        anyhow::ensure!(res.status() == 202, "publish failed: {}", res.status());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.id().context("child pid")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmHWM in /proc status")?;
    child.kill().await?;
    Ok(peak_kb * 1024)
}
