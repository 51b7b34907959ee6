//! How a webhook is shown: to its owner through the API, and in the `webhook.*` events, which
//! the event history keeps, with less still.

use std::collections::BTreeMap;

use serde::Serialize;

use agora_core::dispatcher::redacted;
use agora_core::format::Format;
use agora_core::ids::{ApiKeyId, WebhookId};
use agora_core::subscription::EventPattern;
use agora_core::time::to_rfc3339;
use agora_core::webhook::{WebhookFilter, WebhookStatus};

use super::Webhook;

/// The webhook as the API shows it and as `webhook.*` events carry it: everything but secrets.
/// Custom header values whose names suggest a credential are write-only: shown as
/// `[redacted]` (and a value given back as `[redacted]` keeps the stored one).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookView<'a> {
    /// `wh_…`.
    #[schema(value_type = String)]
    id: &'a WebhookId,
    /// The API key that created it and owns it; `null` for webhooks made by the operator.
    #[schema(value_type = Option<String>)]
    owner_key_id: &'a Option<ApiKeyId>,
    /// A label for people.
    #[schema(value_type = Option<String>)]
    name: &'a Option<String>,
    /// What it is for.
    #[schema(value_type = Option<String>)]
    description: &'a Option<String>,
    /// Where deliveries go.
    #[schema(value_type = String)]
    url: std::borrow::Cow<'a, str>,
    /// Event patterns: exact names, `resource.*`, or `*`.
    #[schema(value_type = Vec<String>)]
    events: &'a [EventPattern],
    /// Custom headers sent with every delivery; credential-like values read `[redacted]`.
    #[schema(value_type = BTreeMap<String, String>)]
    headers: BTreeMap<&'a str, &'a str>,
    /// Retries after the first attempt.
    retry_count: i64,
    /// Per-attempt timeout.
    timeout_ms: i64,
    /// Whether it receives deliveries.
    status: WebhookStatus,
    /// Why the system disabled it, when it did.
    #[schema(value_type = Option<String>)]
    disabled_reason: &'a Option<String>,
    /// Category and tag restriction.
    #[schema(value_type = Option<WebhookFilter>)]
    filter: &'a Option<WebhookFilter>,
    /// The body format.
    format: Format,
    /// Created (RFC 3339).
    created_at: String,
    /// Last changed (RFC 3339).
    updated_at: String,
    /// The last attempt's time.
    last_triggered_at: Option<String>,
    /// The last attempt's failure, cleared by a success.
    #[schema(value_type = Option<String>)]
    last_error: &'a Option<String>,
}

impl Webhook {
    /// The view its owner (or an admin) is answered: credential-bearing header values redacted.
    pub fn view(&self) -> WebhookView<'_> {
        WebhookView {
            id: &self.id,
            owner_key_id: &self.owner_key_id,
            name: &self.name,
            description: &self.description,
            url: std::borrow::Cow::Borrowed(&self.url),
            events: &self.events,
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), redacted(name, value)))
                .collect(),
            retry_count: self.retry_count,
            timeout_ms: self.timeout_ms,
            status: self.status,
            disabled_reason: &self.disabled_reason,
            filter: &self.filter,
            format: self.format,
            created_at: to_rfc3339(self.created_at),
            updated_at: to_rfc3339(self.updated_at),
            last_triggered_at: self.last_triggered_at.map(to_rfc3339),
            last_error: &self.last_error,
        }
    }

    /// The view operational events (`webhook.disabled`) carry: besides [`Webhook::view`], every
    /// custom header value and the URL's query values are redacted, as a URL's `?token=` is
    /// often a credential and events are kept in the event history.
    pub fn event_view(&self) -> WebhookView<'_> {
        let mut view = self.view();
        view.headers.values_mut().for_each(|v| *v = REDACTED);
        view.url = std::borrow::Cow::Owned(redact_query(&self.url));
        view
    }
}

/// What a write-only value is shown as.
pub const REDACTED: &str = "[redacted]";

/// `url` with the values of its query string redacted (and any user information, which a
/// webhook URL never has), or the URL as it is when it does not parse.
fn redact_query(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if parsed.query().is_some() {
        let names: Vec<String> = parsed
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        parsed
            .query_pairs_mut()
            .clear()
            .extend_pairs(names.iter().map(|name| (name.as_str(), REDACTED)));
    }
    parsed.to_string()
}
