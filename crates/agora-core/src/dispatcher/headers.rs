//! What the delivery log keeps of an attempt's request headers.
//!
//! Both sides of [`DeliveryQueue`](super::DeliveryQueue) need this: the sender writes an
//! attempt's headers as [`RecordedHeaders`] into its [`AttemptRecord`](super::AttemptRecord),
//! and the store gives back the [`derived_headers`] it left out. Kept apart from the sender, so
//! that the queue's contract does not import the HTTP client and imports flow one way:
//! `sender` → `queue` → `headers`.

use http::header::{HeaderName, CONTENT_TYPE};

// The names of the derived headers: a name outside the standard set costs an allocation each
// time it is parsed, and these are sent with every request.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const X_AGORA_EVENT: HeaderName = HeaderName::from_static("x-agora-event");
const X_AGORA_ATTEMPT: HeaderName = HeaderName::from_static("x-agora-attempt");

/// The names of [`derived_headers`], in its order: the one list both the sender and the
/// delivery log go by, so a header left out of the log is always one the log gives back.
const DERIVED_HEADER_NAMES: [HeaderName; 5] = [
    CONTENT_TYPE,
    WEBHOOK_ID,
    WEBHOOK_TIMESTAMP,
    X_AGORA_EVENT,
    X_AGORA_ATTEMPT,
];

/// The headers of an attempt that follow from its delivery (id, event type, attempt number)
/// and from the time it started, exactly as they were sent: a delivery log need not store them
/// (five of the nine headers every attempt carries), and gives them back from this.
pub fn derived_headers(
    delivery_id: &str,
    event_type: &str,
    attempt: u32,
    started_at: i64,
) -> [(HeaderName, String); 5] {
    let [content_type, id, timestamp, event, attempt_number] = DERIVED_HEADER_NAMES;
    [
        (content_type, "application/json".into()),
        (id, delivery_id.to_owned()),
        (timestamp, (started_at / 1000).to_string()),
        (event, event_type.to_owned()),
        (attempt_number, attempt.to_string()),
    ]
}

/// Whether a header name is one of [`derived_headers`] (custom headers cannot be: their names
/// are never reserved ones).
fn is_derived_header(name: &str) -> bool {
    DERIVED_HEADER_NAMES
        .iter()
        .any(|derived| derived.as_str() == name)
}

/// The headers of an attempt as the delivery log stores them: a JSON array of `[name, value]`
/// pairs without the [`derived_headers`] (the log gives those back from the delivery and the
/// attempt's start), custom values redacted where the name suggests a credential. The task
/// that sent the attempt writes it, so the single writer that stores it only binds the text:
/// serializing there took the writer's time from every other transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedHeaders(String);

impl RecordedHeaders {
    /// Records Agora's own headers (`own`, derived ones left out) and then the webhook's
    /// `custom` ones under their names as configured.
    pub fn new<'a>(
        own: impl IntoIterator<Item = (&'a str, &'a str)>,
        custom: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let pairs: Vec<(&str, &str)> = own
            .into_iter()
            .filter(|(name, _)| !is_derived_header(name))
            .chain(
                custom
                    .into_iter()
                    .map(|(name, value)| (name, redacted(name, value))),
            )
            .collect();
        Self(serde_json::to_string(&pairs).expect("string pairs serialize"))
    }

    /// The JSON text, as stored.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl Default for RecordedHeaders {
    /// No headers: the record of a delivery put back without an attempt.
    fn default() -> Self {
        Self("[]".into())
    }
}

/// A custom header's value as recorded, listed and carried in events: kept, unless the name
/// suggests a credential (such values are write-only).
pub fn redacted<'a>(name: &str, value: &'a str) -> &'a str {
    let lower = name.to_ascii_lowercase();
    let credential = [
        "auth",
        "token",
        "secret",
        "key",
        "cookie",
        "password",
        "signature",
        "session",
    ]
    .iter()
    .any(|word| lower.contains(word));
    if credential {
        "[redacted]"
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_headers_leave_out_derived_ones_and_redact_credentials() {
        let recorded = RecordedHeaders::new(
            [("webhook-id", "msg_1"), ("webhook-signature", "v1,abc=")],
            [
                ("Authorization", "Bearer abc"),
                ("X-Api-Key", "abc"),
                ("X-Team", "blue"),
            ],
        );
        assert_eq!(
            recorded.as_json(),
            r#"[["webhook-signature","v1,abc="],["Authorization","[redacted]"],["X-Api-Key","[redacted]"],["X-Team","blue"]]"#
        );
        assert_eq!(RecordedHeaders::default().as_json(), "[]");
    }
}
