//! What a client sends to create or change a webhook, and the one place it is validated: a
//! [`WebhookInput`] becomes a [`WebhookChange`] or is refused with an [`Invalid`] (or whatever
//! the caller's [`Vetting`] answers). Checks run in the order the contract's tests rely on:
//! url, events, secret, name, description, headers, retry count, timeout, status, filter,
//! format; the first failure is the answer.

use std::collections::BTreeMap;
use std::future::Future;

use serde::Deserialize;

use super::{Invalid, WebhookFilter, WebhookStatus};
use crate::dispatcher::sender::is_reserved_header;
use crate::format::Format;
use crate::signing::WebhookSecret;
use crate::subscription::EventPattern;
use crate::target::{TargetError, TargetPolicy};

/// The fields a client may send; which are required depends on the [`Mode`].
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where deliveries go.
    pub url: Option<String>,
    /// Event patterns.
    pub events: Option<Vec<String>>,
    /// A label for people.
    pub name: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// A signing secret of the client's choosing (`whsec_…`).
    pub secret: Option<String>,
    /// Custom headers; a value of `[redacted]` keeps the stored one.
    pub headers: Option<BTreeMap<String, String>>,
    /// Retries after the first attempt.
    pub retry_count: Option<i64>,
    /// Per-attempt timeout.
    pub timeout_ms: Option<i64>,
    /// `active` or `inactive`.
    pub status: Option<String>,
    /// Category and tag restriction.
    pub filter: Option<WebhookFilter>,
    /// `json`, `slack` or `discord`.
    pub format: Option<String>,
}

/// How much of a webhook an input describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// POST and PUT: `url` and `events` required, defaults for the rest (the secret stays
    /// unless one is given).
    Full,
    /// PATCH: only the fields given change.
    Patch,
}

/// The checks that need more than the input: whether an event pattern can match anything,
/// and whether the caller may subscribe to it. Implemented by the API, which knows the
/// registered event types and the caller's abilities.
pub trait Vetting {
    /// What a refusal becomes; an [`Invalid`] of this module turns into it too.
    type Error: From<Invalid>;

    /// Accepts or refuses one parsed event pattern.
    fn pattern(
        &self,
        pattern: &EventPattern,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A validated change to a webhook: `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct WebhookChange {
    /// The target URL, normalized.
    pub url: Option<String>,
    /// The event patterns, parsed, without duplicates.
    pub events: Option<Vec<EventPattern>>,
    /// A secret the client chose.
    pub secret: Option<WebhookSecret>,
    /// The name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// The description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Custom headers, as given (`[redacted]` values are to keep the stored ones).
    pub headers: Option<BTreeMap<String, String>>,
    /// Retries after the first attempt, 0 to 10.
    pub retry_count: Option<i64>,
    /// Per-attempt timeout, 1 to 30 s.
    pub timeout_ms: Option<i64>,
    /// The status.
    pub status: Option<WebhookStatus>,
    /// The filter (`Some(None)` when it restricts nothing).
    pub filter: Option<Option<WebhookFilter>>,
    /// The body format.
    pub format: Option<Format>,
}

/// Retries after the first attempt when none are given.
pub const DEFAULT_RETRY_COUNT: i64 = 10;
/// Per-attempt timeout when none is given.
pub const DEFAULT_TIMEOUT_MS: i64 = 5_000;
/// The most custom headers a webhook may have.
const MAX_HEADERS: usize = 20;
/// The longest custom header name accepted.
const MAX_HEADER_NAME: usize = 256;
/// The longest custom header value accepted.
const MAX_HEADER_VALUE: usize = 4096;
/// The longest category id or tag a filter may list.
const MAX_FILTER_ITEM: usize = 200;

impl WebhookChange {
    /// Validates `input`: URLs against `targets` (syntax, a literal address, and what the host
    /// resolves to now; it is checked again at every connection), patterns through `vet`.
    pub async fn parse<V: Vetting + Sync>(
        input: WebhookInput,
        mode: Mode,
        targets: &TargetPolicy,
        vet: &V,
    ) -> Result<Self, V::Error> {
        let full = mode == Mode::Full;
        let mut change = Self::default();
        match input.url {
            Some(url) => change.url = Some(check_url(targets, &url).await?),
            None if full => return Err(Invalid::new("invalid_url", "url is required").into()),
            None => {}
        }
        match input.events {
            Some(events) => change.events = Some(check_events(events, vet).await?),
            None if full => return Err(Invalid::new("invalid_events", "events is required").into()),
            None => {}
        }
        if let Some(secret) = input.secret {
            let secret = WebhookSecret::parse(&secret)
                .map_err(|e| Invalid::new("invalid_secret", e.to_string()))?;
            change.secret = Some(secret);
        }
        if full || input.name.is_some() {
            change.name = Some(check_text("name", input.name, 200)?);
        }
        if full || input.description.is_some() {
            change.description = Some(check_text("description", input.description, 2000)?);
        }
        if full || input.headers.is_some() {
            change.headers = Some(check_headers(input.headers.unwrap_or_default())?);
        }
        change.retry_count = input.retry_count.or(full.then_some(DEFAULT_RETRY_COUNT));
        if change.retry_count.is_some_and(|n| !(0..=10).contains(&n)) {
            return Err(Invalid::new(
                "invalid_retry_count",
                "retry_count must be between 0 and 10",
            )
            .into());
        }
        change.timeout_ms = input.timeout_ms.or(full.then_some(DEFAULT_TIMEOUT_MS));
        if change
            .timeout_ms
            .is_some_and(|ms| !(1_000..=30_000).contains(&ms))
        {
            return Err(Invalid::new(
                "invalid_timeout",
                "timeout_ms must be between 1000 and 30000",
            )
            .into());
        }
        if let Some(status) = input.status {
            change.status = Some(WebhookStatus::parse(&status).ok_or_else(|| {
                Invalid::new("invalid_status", "status must be `active` or `inactive`")
            })?);
        } else if full {
            change.status = Some(WebhookStatus::Active);
        }
        if full || input.filter.is_some() {
            change.filter = Some(check_filter(input.filter)?);
        }
        if let Some(format) = input.format {
            change.format = Some(Format::parse(&format).ok_or_else(|| {
                Invalid::new(
                    "invalid_format",
                    "format must be `json`, `slack` or `discord`",
                )
            })?);
        } else if full {
            change.format = Some(Format::Json);
        }
        Ok(change)
    }
}

/// Checks a target URL: syntax and scheme, a literal address, and what the host resolves to
/// now.
async fn check_url(targets: &TargetPolicy, raw: &str) -> Result<String, Invalid> {
    let invalid = |e: TargetError| Invalid::new("invalid_url", e.to_string());
    let url = targets.check_url(raw).map_err(invalid)?;
    if let (Some(url::Host::Domain(host)), false) = (url.host(), targets.allow_private) {
        let port = url.port_or_known_default().unwrap_or(443);
        // A name that does not resolve today may tomorrow: it is checked again when connecting.
        if let Err(TargetError::PrivateAddress) = targets.resolve(host, port).await {
            return Err(invalid(TargetError::PrivateAddress));
        }
    }
    Ok(url.to_string())
}

/// Parses 1 to 100 patterns, each vetted, dropping repeats.
async fn check_events<V: Vetting + Sync>(
    events: Vec<String>,
    vet: &V,
) -> Result<Vec<EventPattern>, V::Error> {
    if events.is_empty() || events.len() > 100 {
        return Err(Invalid::new("invalid_events", "events must list 1 to 100 event names").into());
    }
    let mut out: Vec<EventPattern> = Vec::with_capacity(events.len());
    for raw in events {
        let pattern =
            EventPattern::parse(&raw).map_err(|e| Invalid::new("invalid_events", e.to_string()))?;
        vet.pattern(&pattern).await?;
        if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    Ok(out)
}

fn check_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Invalid> {
    match value {
        Some(v) if v.chars().count() > max => Err(Invalid::new(
            "invalid_body",
            format!("{field} must be at most {max} characters"),
        )),
        other => Ok(other),
    }
}

fn check_headers(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Invalid> {
    let invalid = |message: String| Invalid::new("invalid_header", message);
    if headers.len() > MAX_HEADERS {
        return Err(invalid(format!("at most {MAX_HEADERS} custom headers")));
    }
    for (name, value) in &headers {
        if name.len() > MAX_HEADER_NAME {
            return Err(invalid(format!(
                "a header name may have at most {MAX_HEADER_NAME} characters"
            )));
        }
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(invalid(format!("{name:?} is not a valid header name")));
        }
        if is_reserved_header(name) {
            return Err(invalid(format!(
                "header {name:?} is set by Agora and cannot be overridden"
            )));
        }
        if value.len() > MAX_HEADER_VALUE || http::HeaderValue::from_str(value).is_err() {
            return Err(invalid(format!(
                "the value of {name:?} is not a valid header value"
            )));
        }
    }
    Ok(headers)
}

fn check_filter(filter: Option<WebhookFilter>) -> Result<Option<WebhookFilter>, Invalid> {
    let invalid = |message: String| Invalid::new("invalid_filter", message);
    match filter {
        Some(f) if f.category_ids.len() > 100 || f.tags.len() > 100 => Err(invalid(
            "filter lists at most 100 categories and 100 tags".into(),
        )),
        Some(f)
            if f.category_ids
                .iter()
                .chain(&f.tags)
                .any(|item| item.is_empty() || item.chars().count() > MAX_FILTER_ITEM) =>
        {
            Err(invalid(format!(
                "each category id and tag in a filter has 1 to {MAX_FILTER_ITEM} characters"
            )))
        }
        Some(f) if f.category_ids.is_empty() && f.tags.is_empty() => Ok(None),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts every pattern.
    struct AnyPattern;

    impl Vetting for AnyPattern {
        type Error = Invalid;

        async fn pattern(&self, _: &EventPattern) -> Result<(), Invalid> {
            Ok(())
        }
    }

    async fn parse(input: serde_json::Value, mode: Mode) -> Result<WebhookChange, Invalid> {
        let input: WebhookInput = serde_json::from_value(input).unwrap();
        let targets = TargetPolicy {
            allow_private: true,
        };
        WebhookChange::parse(input, mode, &targets, &AnyPattern).await
    }

    #[tokio::test]
    async fn a_full_input_gets_the_defaults_and_loses_repeated_patterns() {
        let change = parse(
            serde_json::json!({"url": "http://127.0.0.1:9/x", "events": ["thread.*", "thread.*"]}),
            Mode::Full,
        )
        .await
        .unwrap();
        assert_eq!(change.events.unwrap().len(), 1);
        assert_eq!(change.retry_count, Some(DEFAULT_RETRY_COUNT));
        assert_eq!(change.timeout_ms, Some(DEFAULT_TIMEOUT_MS));
        assert_eq!(change.status, Some(WebhookStatus::Active));
        assert_eq!(change.format, Some(Format::Json));
        assert_eq!(change.filter, Some(None));
    }

    #[tokio::test]
    async fn the_first_failure_in_field_order_is_the_answer() {
        let code = |r: Result<WebhookChange, Invalid>| r.unwrap_err().code;
        assert_eq!(
            code(parse(serde_json::json!({"events": ["*"]}), Mode::Full).await),
            "invalid_url"
        );
        let bad = serde_json::json!({"retry_count": 11, "status": "paused", "format": "xml"});
        assert_eq!(code(parse(bad, Mode::Patch).await), "invalid_retry_count");
        let bad = serde_json::json!({"status": "paused", "format": "xml"});
        assert_eq!(code(parse(bad, Mode::Patch).await), "invalid_status");
        let bad = serde_json::json!({"headers": {"webhook-id": "x"}});
        assert_eq!(code(parse(bad, Mode::Patch).await), "invalid_header");
        let patch = parse(serde_json::json!({"format": "slack"}), Mode::Patch)
            .await
            .unwrap();
        assert_eq!(patch.format, Some(Format::Slack));
        assert!(patch.url.is_none() && patch.status.is_none() && patch.name.is_none());
    }
}
