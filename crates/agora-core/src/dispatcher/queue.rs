//! The contract between the dispatcher and whatever stores deliveries.
//!
//! The store crate implements [`DeliveryQueue`] on SQLite and PostgreSQL; the dispatcher only
//! ever sees these types, which keeps SQL out of the engine and lets tests drive it directly.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::headers::RecordedHeaders;
use crate::format::Format;
use crate::signing::WebhookSecret;

/// A delivery just leased to this node, as the claim returns it: its identity only. Its event
/// body and its webhook's settings are loaded afterwards ([`DeliveryQueue::load`]), outside the
/// claiming transaction, so the next claim need not wait for them.
#[derive(Clone, Debug)]
pub struct LeasedDelivery {
    /// `msg_…`: the delivery id.
    pub id: String,
    /// The webhook it goes to.
    pub webhook_id: String,
    /// The event's id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The number of this attempt, from 1 (`x-agora-attempt`).
    pub attempt: u32,
    /// Retries already made since the delivery was last (re)queued by hand.
    pub retries_done: u32,
}

/// What sending to one webhook needs: loaded once per batch and shared, behind an `Arc`, by
/// the batch's deliveries to it, instead of a copy in each, allocated and freed with every
/// attempt.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Where to POST.
    pub url: String,
    /// The current secret first, then the previous one while its rotation grace period lasts.
    pub secrets: Vec<WebhookSecret>,
    /// The webhook's custom headers, already checked not to override reserved ones.
    pub headers: Vec<(String, String)>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// The webhook's body format.
    pub format: Format,
}

/// A delivery leased to this node, with everything needed to send it.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    /// `msg_…`: the delivery id, sent as `webhook-id`, the same on every attempt.
    pub id: String,
    /// The event's id.
    pub event_id: String,
    /// The event type, sent as `x-agora-event`.
    pub event_type: String,
    /// The webhook this delivery goes to.
    pub webhook_id: String,
    /// That webhook's sending settings, shared with its other deliveries of the batch.
    pub webhook: Arc<WebhookSettings>,
    /// The event envelope as JSON, serialized once when the event was recorded, shared with
    /// the event's other deliveries of the batch.
    pub body: Arc<str>,
    /// The number of this attempt, from 1, counting every attempt ever made (`x-agora-attempt`).
    pub attempt: u32,
    /// Retries already made since the delivery was last (re)queued by hand.
    pub retries_done: u32,
    /// How many retries the webhook allows after a first attempt.
    pub retry_count: u32,
}

/// What the store should do with a delivery after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextState {
    /// Delivered: never attempted again unless redelivered.
    Succeeded,
    /// Failed; attempt again at this time (unix ms).
    RetryAt(i64),
    /// Failed and out of retries.
    Exhausted,
    /// 410 Gone: exhausted, and the webhook is disabled at once.
    DisableWebhook,
    /// Not attempted (the webhook's circuit breaker is open): due again at this time (unix
    /// ms), the attempt not counted and nothing logged.
    Deferred(i64),
}

/// One attempt, as recorded in the delivery log.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    /// The delivery attempted.
    pub delivery_id: String,
    /// Its webhook, whose `last_triggered_at` and `last_error` follow each attempt.
    pub webhook_id: String,
    /// The attempt number (`x-agora-attempt`).
    pub attempt: u32,
    /// When the request started, unix ms.
    pub started_at: i64,
    /// How long until the response (or the failure), ms.
    pub duration_ms: i64,
    /// The headers sent, as the delivery log stores them.
    pub request_headers: RecordedHeaders,
    /// The response status, when a response came.
    pub response_status: Option<u16>,
    /// The first 4 KiB of the response body, stored as text, never interpreted.
    pub response_body: Option<String>,
    /// Why the attempt failed, in words fit for `last_error`.
    pub error: Option<String>,
    /// What happens next.
    pub next: NextState,
}

/// Why the queue could not do what was asked; the dispatcher backs off and tries again. The
/// store's own error is kept whole as the source, so its causes reach the log.
#[derive(Debug, thiserror::Error)]
#[error("delivery queue unavailable: {0}")]
pub struct QueueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// A request for due work.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    /// This node's id, written as the lease owner.
    pub node: String,
    /// At most this many deliveries.
    pub limit: usize,
    /// The time the claim is made, unix ms.
    pub now: i64,
    /// The lease runs until this time, unix ms; the node renews it while the work is held.
    pub lease_until: i64,
    /// Webhooks that already have as much work in memory as they may; claim none of theirs. A
    /// store may bound how much due work it looks through to find deliveries of others, so that
    /// a claim stays cheap however large the skipped webhooks' backlog, as long as every due
    /// delivery of a webhook with room is taken in its turn.
    pub skip_webhooks: Vec<String>,
}

/// Durable delivery state, as the dispatcher needs it.
pub trait DeliveryQueue: Send + Sync + 'static {
    /// The runtime that drives this queue's writes, if it has one of its own (a single-writer
    /// database on its own thread). The dispatcher then runs there the tasks that mostly wait
    /// on those writes (the claim loop, the recorder, the intake of handed deliveries), so each
    /// write follows the last as soon as it commits instead of waiting for a turn on a runtime
    /// busy sending. With `None`, the default, they run on the dispatcher's own runtime;
    /// sending always does.
    fn bookkeeping_runtime(&self) -> Option<Handle> {
        None
    }

    /// Leases up to `limit` due deliveries to this node: pending ones whose time has come and
    /// in-flight ones whose lease expired (their node died).
    fn claim(
        &self,
        request: ClaimRequest,
    ) -> impl Future<Output = Result<Vec<LeasedDelivery>, QueueError>> + Send;

    /// Loads what sending leased deliveries needs: their event bodies and their webhooks'
    /// settings and secrets, in the order given. Deliveries whose webhook or event is gone are
    /// left out.
    fn load(
        &self,
        leased: &[LeasedDelivery],
    ) -> impl Future<Output = Result<Vec<ClaimedDelivery>, QueueError>> + Send;

    /// Records attempts and moves their deliveries to their next state, all in one
    /// transaction. Records of deliveries that no longer exist (their webhook was deleted) are
    /// dropped. The batch is shared, so that one retried after a storage error is not copied.
    fn record(
        &self,
        attempts: Arc<[AttemptRecord]>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Extends every lease this node holds to `until` (unix ms). A store whose leases never
    /// expire (one process owning its database) has nothing to do.
    fn renew_leases(
        &self,
        node: &str,
        until: i64,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The deliveries in flight leased to `node`, each with the attempt it is leased for.
    fn leases(
        &self,
        node: &str,
    ) -> impl Future<Output = Result<Vec<super::Lease>, QueueError>> + Send;

    /// Gives back leases of `node` that its dispatcher never took up, each only while still
    /// leased for that attempt: due now, the attempt not counted, since it was never made.
    fn give_back(
        &self,
        node: &str,
        leases: &[super::Lease],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Gives back every lease this node holds, making that work due now (graceful shutdown).
    fn release_leases(&self, node: &str) -> impl Future<Output = Result<(), QueueError>> + Send;
}
