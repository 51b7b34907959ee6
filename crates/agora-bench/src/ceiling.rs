//! The ceiling: the receiver driven by a plain keep-alive client, what the machine can do at
//! all, measured in the same run as every figure compared with it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::StatusCode;
use http::header::{HeaderMap, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::net::TcpListener;

use crate::nodes::Nodes;
use crate::receiver::BenchReceiver;
use crate::{cpu, BenchArgs, Throughput};

/// The receiver driven by a plain keep-alive client: what the machine can do at all.
///
/// One measurement settles at one of two levels far apart from run to run, with both CPUs busy
/// at either level and a CPU-bound loop timed between runs not varying; the cause is not known (how the connections' tasks spread
/// over the runtime's workers is the first guess). So the time is split into parts, each with
/// a fresh client and so fresh connections, and the best part is the ceiling: a low reading
/// would flatter every ratio measured against it. A run can still read low in every part.
pub(crate) async fn ceiling(
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
pub(crate) async fn delivery_headers(args: &BenchArgs) -> anyhow::Result<HeaderMap> {
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
pub(crate) const CEILING_BODY: &str = r#"{"id":"evt_x","type":"course.enrolled","timestamp":"2026-01-01T00:00:00.000Z","data":{"n":1}}"#;

/// POSTs per second that `concurrency` tasks of a new keep-alive client get from the receiver
/// in `period`, each request carrying `headers`, and the CPU time each cost. The client is
/// hyper's, as the dispatcher's sender uses, so the ceiling is not lowered by layers the
/// sender does without; like the sender, it reads every answer to the end.
pub(crate) async fn plain_client_rate(
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
