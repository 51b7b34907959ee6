//! `agora listen`: follows a server's event stream and forwards each event to a local URL,
//! signed exactly as a real delivery, so a receiver can be built on a laptop without a public
//! URL (in the manner of `stripe listen`).
//!
//! A fresh secret is printed at start; every forwarded event carries the headers of a real
//! delivery (`webhook-id` is the event id, stable across resends), signed with it. One line
//! per event is printed. After a disconnect the stream is resumed with `Last-Event-ID`, with a
//! growing pause between attempts, so no event is lost while the server restarts.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;

use agora_core::dispatcher::derived_headers;
use agora_core::signing::{sign_all, WebhookSecret};
use agora_core::time::{now_ms, to_rfc3339};

/// The flags of `agora listen`.
#[derive(Clone, Debug, clap::Args)]
pub struct ListenArgs {
    /// The Agora server, e.g. `http://localhost:7070`.
    #[arg(long, env = "AGORA_URL")]
    pub server: String,
    /// An API key with the read abilities of the events listened to.
    #[arg(long, env = "AGORA_KEY", hide_env_values = true)]
    pub key: String,
    /// Where each event is POSTed, e.g. `http://localhost:3000/hook`.
    #[arg(long)]
    pub forward_to: String,
    /// Comma-separated patterns, as a webhook's `events` (`thread.*,post.created`).
    #[arg(long)]
    pub events: String,
}

/// The longest pause between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long the local receiver may take to answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// Why following the stream stopped.
enum Stop {
    /// Worth retrying: the server is away, restarting, or closed the stream.
    Retry(String),
    /// Not worth retrying: a wrong key, ability or pattern.
    Fatal(anyhow::Error),
}

/// Runs until interrupted, or until the server refuses the stream for good.
pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let secret = WebhookSecret::generate();
    println!(
        "Ready! Forwarding {} to {}. Your webhook signing secret is {} (^C to quit)",
        args.events,
        args.forward_to,
        secret.expose()
    );
    let stream_client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("failed to build the HTTP client")?;
    let forward_client = reqwest::Client::builder()
        .timeout(FORWARD_TIMEOUT)
        .build()
        .context("failed to build the HTTP client")?;
    let mut last: Option<String> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        let started = Instant::now();
        match follow(&stream_client, &forward_client, &args, &secret, &mut last).await {
            Stop::Fatal(e) => return Err(e),
            Stop::Retry(why) => {
                // A stream that ran a while starts the pauses over.
                if started.elapsed() > MAX_BACKOFF {
                    backoff = Duration::from_millis(250);
                }
                eprintln!(
                    "{}  {why}; reconnecting in {} ms",
                    to_rfc3339(now_ms()),
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Follows the stream from after `last`, forwarding every event, until it ends.
async fn follow(
    stream_client: &reqwest::Client,
    forward_client: &reqwest::Client,
    args: &ListenArgs,
    secret: &WebhookSecret,
    last: &mut Option<String>,
) -> Stop {
    let url = format!("{}/v1/stream", args.server.trim_end_matches('/'));
    let mut request = stream_client
        .get(&url)
        .query(&[("events", args.events.as_str())])
        .bearer_auth(&args.key)
        .header("accept", "text/event-stream");
    if let Some(id) = last.as_deref() {
        request = request.header("last-event-id", id);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Stop::Retry(format!("cannot reach {url}: {e}")),
    };
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let why = format!("{url} answered {status}: {body}");
        return if status.is_server_error() || status.as_u16() == 429 {
            Stop::Retry(why)
        } else {
            Stop::Fatal(anyhow::anyhow!(why))
        };
    }
    let chunks = futures_util::stream::unfold(response, |mut response| async move {
        match response.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), response)),
            Ok(None) => None,
            Err(e) => Some((Err(e), response)),
        }
    });
    let mut events = Box::pin(chunks.eventsource());
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => return Stop::Retry(format!("the stream broke: {e}")),
        };
        if event.event == "error" {
            return Stop::Retry(format!("the server closed the stream: {}", event.data));
        }
        let line = forward(forward_client, args, secret, &event).await;
        println!("{line}");
        *last = Some(event.id);
    }
    Stop::Retry("the server ended the stream".into())
}

/// POSTs one event to the local URL, signed as a real delivery; answers the line to print.
async fn forward(
    client: &reqwest::Client,
    args: &ListenArgs,
    secret: &WebhookSecret,
    event: &eventsource_stream::Event,
) -> String {
    let started_at = now_ms();
    let body = event.data.clone();
    let signatures = sign_all(
        std::slice::from_ref(secret),
        &event.id,
        started_at / 1000,
        body.as_bytes(),
    );
    let mut request = client.post(&args.forward_to);
    for (name, value) in derived_headers(&event.id, &event.event, 1, started_at) {
        request = request.header(name, value);
    }
    let request = request
        .header("webhook-signature", signatures.standard)
        .header("x-agora-signature", signatures.simple)
        .header(
            "user-agent",
            format!("Agora-Listen/{}", env!("CARGO_PKG_VERSION")),
        )
        .body(body);
    let clock = Instant::now();
    let outcome = match request.send().await {
        Ok(response) => format!("[{}]", response.status()),
        Err(e) => format!("[failed: {e}]"),
    };
    format!(
        "{}  --> {} [{}]  <-- {} ({} ms)",
        to_rfc3339(started_at),
        event.event,
        event.id,
        outcome,
        clock.elapsed().as_millis()
    )
}

/// Checks the flags before anything is printed.
pub fn check(args: &ListenArgs) -> anyhow::Result<()> {
    for (name, value) in [
        ("--server", &args.server),
        ("--forward-to", &args.forward_to),
    ] {
        let url = url::Url::parse(value).with_context(|| format!("{name} must be a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("{name} must be an http or https URL");
        }
    }
    Ok(())
}
