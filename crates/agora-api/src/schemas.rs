//! The OpenAPI schemas of answers that handlers build as JSON rather than from one type, and
//! of the error shape. They only describe; the schemathesis run in CI checks every answer
//! against them, so a field added to a handler's `json!` without its line here fails CI.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use agora_forum::model::User;
use agora_store::deliveries::{Attempt, Delivery};

/// Every error: the HTTP status again, a machine-readable code, and a message for people.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// Machine-readable (`not_found`, `invalid_body`, `rate_limited`…).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The HTTP status, again.
    pub status: u16,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// `storage_unavailable` when the database does not answer.
    pub code: Option<String>,
}

/// `GET /readyz` when the node should get traffic.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
}

/// A webhook as created: every field of a webhook, and its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    /// The webhook.
    #[serde(flatten)]
    #[schema(value_type = agora_store::webhooks::WebhookView)]
    pub webhook: Value,
    /// `whsec_…`: verify deliveries with it.
    pub secret: String,
}

/// The attempt a test made, already recorded in the delivery log.
#[derive(Serialize, ToSchema)]
pub struct TestResult {
    /// Whether the receiver answered 2xx.
    pub success: bool,
    /// The receiver's status, when it answered.
    pub status_code: Option<i64>,
    /// How long the attempt took.
    pub response_time_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// `msg_…`.
    pub delivery_id: String,
    /// `evt_…` of the `webhook.test` event.
    pub event_id: String,
}

/// A rotated secret.
#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new `whsec_…`, shown this once.
    pub secret: String,
    /// Until when the previous secret still signs (deliveries carry both signatures).
    pub previous_secret_expires_at: Option<String>,
}

/// `POST /v1/webhooks/{id}/recover`.
#[derive(Serialize, ToSchema)]
pub struct Recovered {
    /// Failed and exhausted deliveries since `since`, queued again.
    pub recovered: i64,
}

/// A delivery with every attempt.
#[derive(Serialize, ToSchema)]
pub struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Exactly the body its attempts sent and signed (the envelope, or for `slack` and
    /// `discord` webhooks the formatted message), to replay by hand; `null` once its event
    /// was pruned.
    pub body: Option<String>,
    /// Its attempts, oldest first.
    pub attempts: Vec<Attempt>,
}

/// `POST /v1/deliveries/{id}/redeliver`.
#[derive(Serialize, ToSchema)]
pub struct Redelivery {
    /// `msg_…`: the same `webhook-id` as before.
    pub id: String,
    /// `pending`.
    pub status: String,
}

/// An event type: built in, or registered for custom events.
#[derive(Serialize, ToSchema)]
pub struct EventTypeInfo {
    /// `resource.action`.
    pub name: String,
    /// What it means.
    pub description: String,
    /// Whether the forum emits it itself.
    pub builtin: bool,
    /// The JSON Schema (2020-12) of its `data`, when it has one.
    pub schema: Option<Value>,
    /// An example `data` (built-in types; `null` for custom ones).
    pub example: Option<Value>,
}

/// `GET /v1/event-types`: all of them, on one page.
#[derive(Serialize, ToSchema)]
pub struct EventTypeList {
    /// Built-in types first, then registered ones.
    pub data: Vec<EventTypeInfo>,
    /// Always `null`.
    pub next_cursor: Option<String>,
}

/// A published event, as every webhook receives it, with its delivery count.
#[derive(Serialize, ToSchema)]
pub struct PublishedEvent {
    /// `evt_…`.
    pub id: String,
    /// `resource.action`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// What was published.
    pub data: Value,
    /// Deliveries queued for it.
    pub deliveries: i64,
}

/// A recorded event as the history lists it: the envelope every delivery carries, and when
/// it was recorded.
#[derive(Serialize, ToSchema)]
pub struct RecordedEvent {
    /// `evt_…`.
    pub id: String,
    /// `resource.action`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    /// The event's data.
    pub data: Value,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
}

/// `GET /v1/events`: one page, newest first.
#[derive(Serialize, ToSchema)]
pub struct RecordedEventList {
    /// The events.
    pub data: Vec<RecordedEvent>,
    /// Pass as `cursor` for the next (older) page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `GET /v1/events/{id}`: the event, its exact body and the caller's deliveries of it.
#[derive(Serialize, ToSchema)]
pub struct RecordedEventDetail {
    /// The event.
    #[serde(flatten)]
    pub event: RecordedEvent,
    /// The stored JSON, byte for byte as every delivery of it was signed.
    pub body: String,
    /// Its deliveries to the caller's webhooks (every webhook's for an admin key).
    pub deliveries: Vec<Delivery>,
}

/// `POST /v1/events/batch`.
#[derive(Serialize, ToSchema)]
pub struct PublishedEvents {
    /// In the order sent.
    pub data: Vec<PublishedEvent>,
}

/// A new API key: its value is shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewApiKeyAnswer {
    /// `key_…`.
    pub id: String,
    /// A label.
    pub name: String,
    /// `admin` or `{resource}:read|write`.
    pub abilities: Vec<String>,
    /// The secret value, `agora_…`: send it as `Authorization: Bearer …` or `x-api-key`.
    pub key: String,
}

/// An API key as listed (never its value).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyInfo {
    /// `key_…`.
    pub id: String,
    /// A label.
    pub name: String,
    /// `admin` or `{resource}:read|write`.
    pub abilities: Vec<String>,
    /// Created.
    pub created_at: String,
    /// Last authenticated request.
    pub last_used_at: Option<String>,
}

/// `GET /v1/api-keys`: all of them, on one page.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Every key not revoked.
    pub data: Vec<ApiKeyInfo>,
    /// Always `null`.
    pub next_cursor: Option<String>,
}

/// A session: send the token as `Authorization: Bearer agora_session_…`.
#[derive(Serialize, ToSchema)]
pub struct SessionAnswer {
    /// `agora_session_…`.
    pub token: String,
    /// `Bearer`.
    pub token_type: String,
    /// When it stops working.
    pub expires_at: String,
    /// Who is signed in.
    pub user: User,
}
