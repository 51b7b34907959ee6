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
//!    is down;
//! 7. stream: `--consumers` `GET /v1/stream` consumers of such a server process while events
//!    are published at `--stream-rate`: consumers that got every event, publish to receipt,
//!    and the server's RSS growth per consumer.
//!
//! The ceiling and the end-to-end runs also report the process's CPU time per request or
//! delivery, compared the other way round (ceiling / figure): a rate that falls while the
//! CPU cost holds points at idle CPUs, not at costlier deliveries.
//!
//! With `--receiver-latency-ms` the receiver answers each request that long after it arrived,
//! as an endpoint across a network does: the requests in flight then bound every rate, not
//! the CPUs, which is how a second node's share shows on a machine whose CPUs both nodes share.

mod ceiling;
mod cpu;
mod database;
mod nodes;
mod receiver;
mod report;
mod scenarios;
mod stream;

use std::time::Duration;

use agora::config::LogFormat;
use agora::Config;
use anyhow::Context;
use clap::Parser;
use http::header::HeaderMap;
use tokio::net::TcpListener;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use self::ceiling::*;
use self::nodes::*;
use self::receiver::BenchReceiver;
use self::report::{Figure, Report};
use self::scenarios::*;

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
    agora::init_logging(
        LogFormat::Text,
        BoxMakeWriter::new(std::io::stderr),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    run(cli.args).await
}

/// Runs one server configured by the `AGORA_*` variables until the process is killed.
async fn serve() -> anyhow::Result<()> {
    let data_dir = std::env::var_os("AGORA_DATA_DIR").context("AGORA_DATA_DIR is not set")?;
    let config = Config::defaults(data_dir.into());
    agora::init_logging(
        config.log_format,
        BoxMakeWriter::new(std::io::stdout),
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
    );
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
    /// Concurrent consumers of the live stream in the stream run.
    #[arg(long, default_value = "1000")]
    consumers: usize,
    /// Events per second published in the stream run.
    #[arg(long, default_value = "100")]
    stream_rate: u64,
    /// Run only these scenarios (comma-separated: headers, ingest, e2e, latency, backlog,
    /// memory, stream); the ceiling is always measured.
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
        let single = ingest(&nodes, args.concurrency, args.seconds, 1, false).await?;
        report.push(Figure::rate(
            "ingest, single events (events/s)",
            single,
            "events/s",
        ));
        let batched = ingest(&nodes, 8, args.seconds, 100, false).await?;
        report.push(Figure::rate(
            "ingest, batches of 100 (events/s)",
            batched,
            "events/s",
        ));
        nodes.stop().await?;
        // On a fresh database, as the single events had: the two rates compare the keys'
        // cost alone, and the figures before this one are taken as 0.1.0 took them.
        let nodes = Nodes::start(&args).await?;
        let keyed = ingest(&nodes, args.concurrency, args.seconds, 1, true).await?;
        report.push(Figure::rate(
            "ingest, single events with an Idempotency-Key each (events/s)",
            keyed,
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
            // The ceiling is a plain client "at the same concurrency": measured again
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
    if args.wants("stream") && args.database_url.is_none() {
        let run = stream::stream(args.consumers, args.stream_rate, args.seconds * 2).await?;
        report.push(Figure::rate(
            &format!(
                "stream: consumers of {} that got all {} events",
                run.consumers, run.published
            ),
            run.complete as f64,
            "consumers",
        ));
        report.push(Figure::latency(
            &format!(
                "stream: publish to receipt, {} consumers at {} events/s",
                run.consumers, args.stream_rate
            ),
            &run.latencies,
        ));
        report.push(Figure::rate(
            "stream: server RSS growth per consumer (KiB)",
            run.rss_per_consumer / 1024.0,
            "KiB",
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
const SCENARIOS: [&str; 7] = [
    "headers", "ingest", "e2e", "latency", "backlog", "memory", "stream",
];

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
