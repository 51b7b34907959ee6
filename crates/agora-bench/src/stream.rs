//! The live stream's scenario: many `GET /v1/stream` consumers of a server process while
//! events are published at a fixed rate. It measures whether every consumer got every event,
//! publish to receipt over all receipts, and how much the server's RSS grew per consumer.
//!
//! The server runs as a process of its own (this binary with `--serve`, as the memory
//! scenario does), so its RSS is its own and not the consumers'.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::scenarios::{publish_noted, SentAt};
use crate::{progress, KEY};

/// What the stream scenario measured.
pub(crate) struct StreamRun {
    /// Consumers connected.
    pub(crate) consumers: usize,
    /// Consumers that received every published event.
    pub(crate) complete: usize,
    /// Events published.
    pub(crate) published: usize,
    /// Publish to receipt, every receipt of every consumer, sorted.
    pub(crate) latencies: Vec<Duration>,
    /// The server's RSS growth from before the consumers connected to the end, per consumer.
    pub(crate) rss_per_consumer: f64,
}

/// Runs `consumers` streams of `bench.*` on a fresh server process while `rate` events a
/// second are published for `seconds`.
pub(crate) async fn stream(consumers: usize, rate: u64, seconds: u64) -> anyhow::Result<StreamRun> {
    progress(&format!(
        "stream: {consumers} consumers, {rate} events/s for {seconds} s"
    ));
    let dir = tempfile::tempdir()?;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("--serve")
        .env("AGORA_LISTEN", addr.to_string())
        .env("AGORA_DATA_DIR", dir.path())
        .env("AGORA_ADMIN_KEY", KEY)
        .env("AGORA_LOG", "warn")
        .env("AGORA_RATE_LIMIT_PER_SECOND", "0")
        .env("AGORA_MAX_CONNECTIONS", (consumers + 256).to_string())
        .env_remove("AGORA_DATABASE_URL")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("child pid")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(consumers + 64)
        .build()?;
    let base = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let registered = client
        .post(format!("{base}/v1/event-types"))
        .bearer_auth(KEY)
        .json(&json!({"name": "bench.happened"}))
        .send()
        .await?;
    anyhow::ensure!(registered.status().is_success(), "cannot register the type");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss(pid)?;

    let total = (rate * seconds) as usize;
    let connected = Arc::new(AtomicUsize::new(0));
    let stop_at = Arc::new(tokio::sync::OnceCell::<tokio::time::Instant>::new());
    let mut readers = Vec::with_capacity(consumers);
    for _ in 0..consumers {
        let (client, connected, stop_at) = (client.clone(), connected.clone(), stop_at.clone());
        let url = format!("{base}/v1/stream?events=bench.*");
        readers.push(tokio::spawn(async move {
            consume(client, url, connected, stop_at, total).await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::Relaxed) < consumers {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {consumers} consumers connected",
            connected.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress(&format!(
        "stream: {consumers} consumers connected; publishing"
    ));

    let sent_at = publish(&client, &base, rate, total).await?;
    let _ = stop_at.set(tokio::time::Instant::now() + Duration::from_secs(30));
    let mut latencies = Vec::with_capacity(total * consumers);
    let mut complete = 0;
    for reader in readers {
        let arrivals = reader.await??;
        if sent_at.keys().all(|id| arrivals.contains_key(id)) {
            complete += 1;
        }
        latencies.extend(
            arrivals
                .iter()
                .filter_map(|(id, at)| sent_at.get(id).map(|s| at.saturating_duration_since(*s))),
        );
    }
    let rss_after = rss(pid)?;
    child.kill().await?;
    latencies.sort_unstable();
    Ok(StreamRun {
        consumers,
        complete,
        published: sent_at.len(),
        latencies,
        rss_per_consumer: rss_after.saturating_sub(rss_before) as f64 / consumers as f64,
    })
}

/// One consumer: every `bench.*` event's arrival, until it has `total` of them or the run's
/// end (`stop_at`, set once publishing is over) passes.
///
/// It reads the SSE messages itself, noting only their ids and each chunk's arrival: a
/// thousand consumers share the server's two cores, so the less each spends per message, the
/// more the figure measures the server rather than its clients.
async fn consume(
    client: reqwest::Client,
    url: String,
    connected: Arc<AtomicUsize>,
    stop_at: Arc<tokio::sync::OnceCell<tokio::time::Instant>>,
    total: usize,
) -> anyhow::Result<HashMap<String, Instant>> {
    let mut response = client.get(&url).bearer_auth(KEY).send().await?;
    anyhow::ensure!(
        response.status() == 200,
        "stream refused: {}",
        response.status()
    );
    connected.fetch_add(1, Ordering::Relaxed);
    let mut arrivals = HashMap::with_capacity(total);
    let mut unread: Vec<u8> = Vec::new();
    while arrivals.len() < total {
        let next = match stop_at.get() {
            Some(at) => match tokio::time::timeout_at(*at, response.chunk()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            // Checked again every second, so the end of publishing is noticed.
            None => match tokio::time::timeout(Duration::from_secs(1), response.chunk()).await {
                Ok(next) => next,
                Err(_) => continue,
            },
        };
        let Ok(Some(chunk)) = next else { break };
        let arrived = Instant::now();
        unread.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = find(&unread[start..], b"\n\n") {
            if let Some(id) = bench_event_id(&unread[start..start + end]) {
                arrivals.insert(id, arrived);
            }
            start += end + 2;
        }
        unread.drain(..start);
    }
    Ok(arrivals)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The id of one SSE message, if it is a `bench.happened` event.
fn bench_event_id(message: &[u8]) -> Option<String> {
    let mut id = None;
    let mut bench = false;
    for line in message.split(|b| *b == b'\n') {
        if let Some(value) = line.strip_prefix(b"id: ") {
            id = Some(String::from_utf8_lossy(value).into_owned());
        } else if line == b"event: bench.happened" {
            bench = true;
        }
    }
    id.filter(|_| bench)
}

/// Publishes `total` events at `rate` a second; answers when each acknowledged one was sent.
async fn publish(
    client: &reqwest::Client,
    base: &str,
    rate: u64,
    total: usize,
) -> anyhow::Result<HashMap<String, Instant>> {
    let sent_at: SentAt = Arc::new(std::sync::Mutex::new(HashMap::with_capacity(total)));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        tasks.push(tokio::spawn(publish_noted(
            client.clone(),
            format!("{base}/v1/events"),
            i as u64,
            sent_at.clone(),
        )));
    }
    for t in tasks {
        t.await?;
    }
    let sent = std::mem::take(&mut *sent_at.lock().expect("lock"));
    anyhow::ensure!(
        sent.len() == total,
        "only {} of {total} publishes acknowledged",
        sent.len()
    );
    Ok(sent)
}

/// The resident set size of process `pid`, in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS in /proc status")?;
    Ok(kb * 1024)
}
