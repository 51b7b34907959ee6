//! The scenarios' measurements: ingest, end to end, latency at a fixed rate, memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::nodes::Nodes;
use crate::receiver::BenchReceiver;
use crate::{cpu, progress, Throughput, KEY};

/// Events acknowledged per second by `concurrency` clients publishing `batch` events a request;
/// with `keyed`, each request carries an `Idempotency-Key` of its own, so the price of the
/// check is the difference from the same run without.
pub(crate) async fn ingest(
    nodes: &Nodes,
    concurrency: usize,
    seconds: u64,
    batch: usize,
    keyed: bool,
) -> anyhow::Result<f64> {
    progress(&format!(
        "ingest: {concurrency} clients, {batch} event(s) per request, {seconds} s{}",
        if keyed {
            ", an Idempotency-Key each"
        } else {
            ""
        }
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
            let mut sent = 0u64;
            while Instant::now() < deadline {
                sent += 1;
                let body = if batch == 1 {
                    json!({"type": "bench.happened", "data": {"n": 1}})
                } else {
                    json!({"events": vec![json!({"type": "bench.happened", "data": {"n": 1}}); batch]})
                };
                let mut request = client.post(&url).bearer_auth(KEY).json(&body);
                if keyed {
                    request = request.header("idempotency-key", format!("bench-{c}-{sent}"));
                }
                let res = request.send().await;
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
pub(crate) struct EndToEnd {
    /// Deliveries per second from the first publish to the last arrival, and the CPU time per
    /// delivery over the same stretch (publishing and receiving included).
    pub(crate) throughput: Throughput,
    /// Publish to arrival, when each event went to one webhook.
    pub(crate) latencies: Vec<Duration>,
}

/// Publishes `events` events in batches as fast as possible to `webhooks` webhooks.
pub(crate) async fn end_to_end(
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
pub(crate) async fn fixed_rate(
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

/// When each acknowledged event was sent, by its id.
pub(crate) type SentAt = Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

/// Publishes event number `n` to `url` and notes, under the id it was given, when it was
/// sent: where a publish-to-receipt latency starts.
pub(crate) async fn publish_noted(client: reqwest::Client, url: String, n: u64, sent_at: SentAt) {
    let at = Instant::now();
    let body = json!({"type": "bench.happened", "data": {"n": n}});
    if let Ok(res) = client.post(&url).bearer_auth(KEY).json(&body).send().await {
        if let Ok(answer) = res.json::<serde_json::Value>().await {
            if let Some(id) = answer["id"].as_str() {
                sent_at.lock().expect("lock").insert(id.to_owned(), at);
            }
        }
    }
}

pub(crate) async fn paced(
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
        tasks.push(tokio::spawn(publish_noted(
            nodes.client.clone(),
            nodes.url(i as usize, "/v1/events"),
            i,
            sent_at.clone(),
        )));
    }
    for t in tasks {
        t.await?;
    }
    wait_for_count(receiver, before + total, Duration::from_secs(120)).await?;
    let latencies = latencies(receiver, &sent_at.lock().expect("lock"));
    receiver.track(false);
    Ok(latencies)
}

pub(crate) fn latencies(
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

pub(crate) async fn wait_for_count(
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
pub(crate) async fn memory(pending: usize) -> anyhow::Result<u64> {
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
