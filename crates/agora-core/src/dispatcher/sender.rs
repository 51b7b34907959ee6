//! One attempt: sign, POST, read a bounded answer, classify, decide.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;

use super::headers::{derived_headers, RecordedHeaders};
use super::queue::{AttemptRecord, ClaimedDelivery, NextState};
use crate::retry::{parse_retry_after, Outcome, RetryPolicy, Verdict};
use crate::signing::sign_all;
use crate::target::{GuardedResolver, Lookup, SystemLookup, TargetPolicy};
use crate::time::now_ms;

/// How much of a response body is kept in the delivery log.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

// The names of the headers every delivery carries besides the derived ones (`headers.rs`):
// a name outside the standard set costs an allocation each time it is parsed, and these are
// sent with every request.
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const X_AGORA_SIGNATURE: HeaderName = HeaderName::from_static("x-agora-signature");
const X_AGORA_FORUM: HeaderName = HeaderName::from_static("x-agora-forum");

/// Header names a webhook's custom headers may not set: they carry the delivery's identity and
/// signatures, or describe the body.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    "host",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-agora-event",
    "x-agora-signature",
    "x-agora-forum",
    "x-agora-attempt",
];

/// Whether a custom header name is reserved (case-insensitive), including the `webhook-` and
/// `x-agora-` families as a whole.
pub fn is_reserved_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("webhook-")
        || lower.starts_with("x-agora-")
}

/// Where a webhook's deliveries are sent, or, when its URL may not be connected to, the words
/// its attempts record as their error.
pub type Target = Result<Uri, String>;

/// Idle keep-alive connections kept per receiving host.
const IDLE_CONNECTIONS_PER_HOST: usize = 4096;

/// How a delivery connects: TLS (or plain HTTP where the policy allows it) over TCP to the
/// addresses the guarded resolver answered.
type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

/// Sends attempts with one shared keep-alive client.
#[derive(Clone)]
pub struct Sender {
    client: Client<Connector, Full<Bytes>>,
    policy: RetryPolicy,
    forum: String,
    user_agent: String,
    /// Checked again before attempts ([`Sender::target`]): an address literal in a URL never
    /// reaches the resolver, and the policy may have changed since the webhook was created.
    targets: TargetPolicy,
    /// Answers in place of the network, when set (`scripted.rs`).
    #[cfg(any(test, feature = "test-util"))]
    pub(super) scripted: Option<super::scripted::ScriptedReceiver>,
    /// One permit per request in flight, shared by every clone (the dispatcher's and the
    /// API's test deliveries): however many webhooks hang, outgoing sockets stay bounded and
    /// the API and the database keep their file descriptors.
    in_flight: Arc<Semaphore>,
}

/// The settings a [`Sender`] is built from.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Sent as `x-agora-forum`.
    pub forum_name: String,
    /// Which targets may be connected to.
    pub targets: TargetPolicy,
    /// When to retry.
    pub retry: RetryPolicy,
    /// Requests in flight at once, over every webhook (each holds at most one connection);
    /// an attempt beyond it waits for a place before its timeout starts.
    pub max_in_flight: usize,
}

impl Sender {
    /// Builds the shared client: rustls, no redirects, connections through the SSRF guard.
    pub fn new(config: SenderConfig) -> Result<Self, rustls::Error> {
        Self::with_lookup(config, Arc::new(SystemLookup))
    }

    /// As [`Sender::new`], resolving host names through `lookup` (tests inject answers).
    ///
    /// hyper's client is used directly rather than through reqwest: a delivery needs none of
    /// reqwest's redirect, retry and URL layers, and they were an eighth of the delivery
    /// runtime's CPU. hyper's client never follows redirects.
    pub fn with_lookup(
        config: SenderConfig,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Self, rustls::Error> {
        let mut tcp =
            HttpConnector::new_with_resolver(GuardedResolver::with_lookup(config.targets, lookup));
        // The TLS layer above takes `https`; plain `http` is refused by the target policy
        // unless private targets are allowed.
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(Duration::from_secs(10)));
        let connector = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            // Every request in flight may go to the same host (many webhooks of one receiver):
            // idle connections up to the dispatcher's concurrency are kept, so none is closed
            // only to be opened again for the next delivery.
            // Never more idle than may be in flight, so idle ones stay within the bound too.
            .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST.min(config.max_in_flight.max(1)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            policy: config.retry,
            forum: config.forum_name,
            user_agent: format!("Agora-Webhooks/{}", env!("CARGO_PKG_VERSION")),
            targets: config.targets,
            #[cfg(any(test, feature = "test-util"))]
            scripted: None,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        })
    }

    /// The body an attempt sends and signs, in a webhook's `format`, for an event's envelope:
    /// the delivery log shows it so that a receiver's maintainer can replay it.
    pub fn body(&self, format: crate::format::Format, envelope: &str) -> String {
        format.body(envelope, &self.forum)
    }

    /// Checks `url` against the target policy and makes it a request target: done once per
    /// webhook of a loaded batch rather than once per attempt (parsing and checking a URL, IDNA
    /// included, is no small part of a send's work).
    pub fn target(&self, url: &str) -> Target {
        // An address literal never reaches the guarded resolver, so the URL itself is checked
        // here; a refused target is never connected to. The checked URL is what is sent to.
        let url = self
            .targets
            .check_url(url)
            .map_err(|e| format!("refused before connecting: {e}"))?;
        url.as_str()
            .parse::<Uri>()
            .map_err(|e| describe(&SendError::Uri(e)))
    }

    /// Makes one attempt and says what follows. Never fails: every failure is an outcome.
    pub async fn attempt(&self, delivery: &ClaimedDelivery) -> AttemptRecord {
        self.attempt_to(delivery, &self.target(&delivery.webhook.url))
            .await
    }

    /// As [`Sender::attempt`], to `target`, which [`Sender::target`] made of the delivery's URL.
    pub async fn attempt_to(&self, delivery: &ClaimedDelivery, target: &Target) -> AttemptRecord {
        // Taken before the attempt starts (its timestamp and timeout), so a wait for a place
        // is never counted against the receiver. The semaphore is never closed: a permit
        // always comes. A refused target connects to nothing and needs none.
        let _permit = match target {
            Ok(_) => self.in_flight.acquire().await.ok(),
            Err(_) => None,
        };
        let started_at = now_ms();
        let body = self.body(delivery.webhook.format, &delivery.body);
        let mut headers = self.own_headers(delivery, started_at, &body);
        let fixed = headers.len();
        // Custom names were checked when the webhook was saved, so one that does not parse
        // cannot occur and is left out.
        headers.extend(delivery.webhook.headers.iter().filter_map(|(name, value)| {
            Some((HeaderName::from_bytes(name.as_bytes()).ok()?, value.clone()))
        }));

        // Recorded before sending, so that the request can take the header values over.
        let request_headers = RecordedHeaders::new(
            headers[..fixed]
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
            delivery
                .webhook
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );

        let clock = Instant::now();
        let exchange = match target {
            Err(words) => Exchange::Refused(words.clone()),
            Ok(uri) => {
                let request = self.send(uri.clone(), headers, body);
                match tokio::time::timeout(delivery.webhook.timeout, request).await {
                    Err(_) => Exchange::TimedOut(delivery.webhook.timeout),
                    Ok(Err(e)) => Exchange::Failed(e),
                    Ok(Ok(answer)) => Exchange::Answered(answer),
                }
            }
        };
        let duration_ms = clock.elapsed().as_millis() as i64;
        let Classified {
            outcome,
            response_status,
            response_body,
            error,
        } = exchange.classify();
        let next = self.decide(&outcome, delivery);
        AttemptRecord {
            delivery_id: delivery.id.clone(),
            webhook_id: delivery.webhook_id.clone(),
            attempt: delivery.attempt,
            started_at,
            duration_ms,
            request_headers,
            response_status,
            response_body,
            error,
            next,
        }
    }

    /// What follows an attempt with this outcome, by the retry policy.
    fn decide(&self, outcome: &Outcome, delivery: &ClaimedDelivery) -> NextState {
        match self
            .policy
            .decide(outcome, delivery.retries_done, delivery.retry_count)
        {
            Verdict::Succeeded => NextState::Succeeded,
            Verdict::Exhausted => NextState::Exhausted,
            Verdict::Disable => NextState::DisableWebhook,
            Verdict::RetryIn(d) => NextState::RetryAt(now_ms() + d.as_millis() as i64),
        }
    }

    /// The headers Agora puts on an attempt started at `started_at` (unix ms), signed over
    /// `body`, apart from the webhook's custom ones: what every delivery carries.
    fn own_headers(
        &self,
        delivery: &ClaimedDelivery,
        started_at: i64,
        body: &str,
    ) -> Vec<(HeaderName, String)> {
        let signatures = sign_all(
            &delivery.webhook.secrets,
            &delivery.id,
            started_at / 1000,
            body.as_bytes(),
        );
        // Names known at compile time are never allocated; room is left for custom ones.
        let mut headers = Vec::with_capacity(9 + delivery.webhook.headers.len());
        headers.extend(derived_headers(
            &delivery.id,
            &delivery.event_type,
            delivery.attempt,
            started_at,
        ));
        headers.extend([
            (USER_AGENT, self.user_agent.clone()),
            (WEBHOOK_SIGNATURE, signatures.standard),
            (X_AGORA_SIGNATURE, signatures.simple),
            (X_AGORA_FORUM, self.forum.clone()),
        ]);
        headers
    }

    /// POSTs `body` with `headers`, whose values become the request's without a copy.
    async fn send(
        &self,
        uri: Uri,
        headers: Vec<(HeaderName, String)>,
        body: String,
    ) -> Result<Answer, SendError> {
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let map = request.headers_mut();
        map.reserve(headers.len());
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::try_from(value) {
                map.insert(name, v);
            }
        }
        #[cfg(any(test, feature = "test-util"))]
        if let Some(receiver) = &self.scripted {
            let (status, retry_after, excerpt) = receiver
                .answer(request)
                .await
                .map_err(SendError::Scripted)?;
            return Ok(Answer {
                status,
                retry_after,
                excerpt,
            });
        }
        let response = self.client.request(request).await?;
        let status = response.status().as_u16();
        let retry_after = matches!(status, 429 | 503)
            .then(|| response.headers().get(RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        let mut body = response.into_body();
        let mut excerpt = Vec::with_capacity(256);
        while excerpt.len() < RESPONSE_EXCERPT_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(chunk) = frame.data_ref() {
                        let room = RESPONSE_EXCERPT_BYTES - excerpt.len();
                        excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                }
                _ => break,
            }
        }
        Ok(Answer {
            status,
            retry_after,
            excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
        })
    }
}

/// A receiver's answer, as far as an attempt reads it.
struct Answer {
    status: u16,
    /// Its `Retry-After`, on a 429 or 503.
    retry_after: Option<Duration>,
    /// The first [`RESPONSE_EXCERPT_BYTES`] of its body.
    excerpt: String,
}

/// What became of one request, before it is judged: a refused target is one of the ways an
/// attempt ends, not a request that pretends to have been answered.
enum Exchange {
    /// The target policy refused the URL (the words say why); nothing was sent.
    Refused(String),
    /// No answer within the webhook's timeout.
    TimedOut(Duration),
    /// No answer: the connection or the request failed.
    Failed(SendError),
    /// An answer came.
    Answered(Answer),
}

/// An exchange as the retry policy and the delivery log see it.
struct Classified {
    outcome: Outcome,
    response_status: Option<u16>,
    response_body: Option<String>,
    error: Option<String>,
}

impl Exchange {
    /// Sorts the exchange into an outcome, with what the log keeps of it.
    fn classify(self) -> Classified {
        let failed = |outcome, error| Classified {
            outcome,
            response_status: None,
            response_body: None,
            error: Some(error),
        };
        match self {
            Exchange::Refused(words) => failed(Outcome::Unreachable, words),
            Exchange::TimedOut(after) => failed(
                Outcome::TimedOut,
                format!("timed out after {} ms", after.as_millis()),
            ),
            Exchange::Failed(e) => {
                let outcome = if e.timed_out() {
                    Outcome::TimedOut
                } else {
                    Outcome::Unreachable
                };
                failed(outcome, describe(&e))
            }
            Exchange::Answered(Answer {
                status,
                retry_after,
                excerpt,
            }) => Classified {
                outcome: match status {
                    200..=299 => Outcome::Delivered,
                    410 => Outcome::Gone,
                    _ => Outcome::Rejected {
                        status,
                        retry_after,
                    },
                },
                response_status: Some(status),
                response_body: Some(excerpt),
                error: (!(200..=299).contains(&status)).then(|| format!("HTTP {status}")),
            },
        }
    }
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("the URL is not a valid request target: {0}")]
    Uri(#[from] http::uri::InvalidUri),
    #[error(transparent)]
    Client(#[from] hyper_util::client::legacy::Error),
    /// A scripted receiver's refusal (`scripted.rs`).
    #[cfg(any(test, feature = "test-util"))]
    #[error("{0}")]
    Scripted(String),
}

impl SendError {
    /// Whether connecting or answering took too long (the attempt's own timeout is applied
    /// around the request, so this is the connect timeout).
    fn timed_out(&self) -> bool {
        use std::error::Error as _;
        let mut source = self.source();
        while let Some(cause) = source {
            if cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
            {
                return true;
            }
            source = cause.source();
        }
        false
    }
}

/// Words for a transport failure, without the URL (which may itself be a secret, as Slack's
/// are) but with the cause chain.
fn describe(e: &SendError) -> String {
    use std::error::Error as _;
    let mut words = match e {
        _ if e.timed_out() => "timed out",
        SendError::Client(e) if e.is_connect() => "connection failed",
        SendError::Client(_) => "request failed",
        SendError::Uri(_) => "invalid request target",
        #[cfg(any(test, feature = "test-util"))]
        SendError::Scripted(_) => "connection failed",
    }
    .to_owned();
    let mut source = e.source();
    while let Some(cause) = source {
        words.push_str(": ");
        words.push_str(&cause.to_string());
        source = cause.source();
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_headers_are_recognized_in_any_case() {
        assert!(is_reserved_header("Webhook-Signature"));
        assert!(is_reserved_header("X-Agora-Whatever"));
        assert!(is_reserved_header("Content-Type"));
        assert!(!is_reserved_header("X-Team"));
    }
}
