//! From due work to the webhooks' lanes: the claim of one batch, its load, the check of its
//! targets, and the workers that make the attempts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::held::Held;
use super::lane::{Place, Work};
use super::limiter::{Admission, Gate, Limiter};
use super::measure::DeliveryMetrics;
use super::queue::{
    AttemptRecord, ClaimRequest, DeliveryQueue, LeasedDelivery, NextState, QueueError,
};
use super::{DispatcherConfig, RecordedHeaders, Sender, Target};
use crate::time::now_ms;

/// How long a delivery that could not be loaded waits before it is claimed again.
const LOAD_RETRY: Duration = Duration::from_secs(1);

/// What a claimed batch needs to get going, apart from the claim loop: the claim loop goes on
/// claiming while the batch's bodies and webhook settings load.
pub(super) struct BatchStart<Q> {
    pub(super) queue: Arc<Q>,
    pub(super) attempts: Arc<Attempts>,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: TaskTracker,
    /// Where claimed deliveries are noted as held, for the sweep.
    pub(super) held: Arc<Held>,
}

/// What every worker uses, shared: one reference count per worker instead of a clone of each
/// (the sender's own clone copies its strings and its retry schedule).
pub(super) struct Attempts {
    pub(super) sender: Sender,
    pub(super) limiter: Arc<Limiter>,
    pub(super) record_tx: mpsc::UnboundedSender<AttemptRecord>,
    /// Attempts by outcome and event type, and their duration.
    pub(super) measured: DeliveryMetrics,
}

impl Attempts {
    /// Sends its lane's deliveries one after another until the lane is empty or closed.
    async fn work(&self, mut place: Place) {
        while let Some(work) = place.next() {
            self.make(work).await;
        }
    }

    /// Makes the attempt (or defers it, if the webhook's breaker says so) and hands its record
    /// to the recorder.
    async fn make(&self, Work { delivery, target }: Work) {
        let record = match self.limiter.gate(&delivery.webhook_id) {
            Gate::Send => {
                // At `debug` under a target of its own: made only when a span export asks for
                // it (`agora::otlp`), never for the log's sake on every delivery.
                let span = tracing::debug_span!(
                    target: "agora::attempt",
                    "attempt",
                    webhook_id = delivery.webhook_id.as_str(),
                    delivery_id = delivery.id.as_str(),
                    event_type = delivery.event_type.as_str(),
                    attempt = delivery.attempt,
                );
                let record = self
                    .sender
                    .attempt_to(&delivery, &target)
                    .instrument(span)
                    .await;
                self.measured.attempted(&delivery.event_type, &record);
                record
            }
            Gate::Defer(until) => {
                deferred(&delivery.id, &delivery.webhook_id, delivery.attempt, until)
            }
        };
        self.limiter.observe(&record);
        let _ = self.record_tx.send(record);
    }
}

// Not derived: that would ask `Q: Clone`, and only the `Arc` around the queue is cloned.
impl<Q> Clone for BatchStart<Q> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            attempts: self.attempts.clone(),
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
            held: self.held.clone(),
        }
    }
}

/// Deliveries a claim leased and the limiter admitted.
pub(super) struct Claimed {
    pub(super) admitted: Vec<(LeasedDelivery, Admission)>,
    /// The claim took as many as it asked for, so more may be due at once.
    pub(super) full: bool,
}

impl<Q: DeliveryQueue> BatchStart<Q> {
    /// Leases as much due work as the limiter has room for, up to a claim batch, skipping the
    /// webhooks it holds enough of, and notes it as held and admitted.
    pub(super) async fn claim(&self, config: &DispatcherConfig) -> Result<Claimed, QueueError> {
        let limiter = &self.attempts.limiter;
        let limit = limiter.room().min(config.claim_batch);
        if limit == 0 {
            return Ok(Claimed {
                admitted: Vec::new(),
                full: false,
            });
        }
        let now = now_ms();
        let batch = self
            .queue
            .claim(ClaimRequest {
                node: config.node_id.clone(),
                limit,
                now,
                lease_until: now + config.lease.as_millis() as i64,
                skip_webhooks: limiter.saturated(),
            })
            .await?;
        let full = batch.len() == limit;
        self.held
            .insert(batch.iter().map(|leased| leased.id.as_str()));
        let admitted = batch
            .into_iter()
            .map(|leased| {
                let admission = limiter.admit(&leased.webhook_id);
                (leased, admission)
            })
            .collect();
        Ok(Claimed { admitted, full })
    }

    /// Loads the batch and queues each delivery in its webhook's lane, starting workers where
    /// the lane has room for more. Deliveries that cannot be loaded
    /// (storage down, webhook deleted meanwhile) are put back un-attempted through the
    /// recorder, which also frees their place in the limiter.
    pub(super) async fn run(self, admitted: Vec<(LeasedDelivery, Admission)>) {
        let (leased, admissions): (Vec<LeasedDelivery>, Vec<Admission>) =
            admitted.into_iter().unzip();
        let loaded = match self.queue.load(&leased).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!(error = %e, deliveries = leased.len(), "failed to load claimed deliveries; putting them back");
                Vec::new()
            }
        };
        // Loaded in the order leased, with the ones that could not be loaded left out.
        let mut loaded = loaded.into_iter().peekable();
        let retry_at = now_ms() + LOAD_RETRY.as_millis() as i64;
        let mut targets: HashMap<String, Arc<Target>> = HashMap::new();
        for (leased, admission) in leased.into_iter().zip(admissions) {
            let Some(delivery) = loaded.next_if(|d| d.id == leased.id) else {
                let _ = self.attempts.record_tx.send(deferred(
                    &leased.id,
                    &leased.webhook_id,
                    leased.attempt,
                    retry_at,
                ));
                continue;
            };
            let target = match targets.get(&delivery.webhook.url) {
                Some(target) => target.clone(),
                None => {
                    let target = Arc::new(self.attempts.sender.target(&delivery.webhook.url));
                    targets.insert(delivery.webhook.url.clone(), target.clone());
                    target
                }
            };
            if let Some(place) = admission.queue(Work { delivery, target }) {
                let attempts = self.attempts.clone();
                self.tasks.spawn(async move { attempts.work(place).await });
            }
        }
    }
}

/// The record of a delivery put back without an attempt, due again at `until`.
fn deferred(delivery_id: &str, webhook_id: &str, attempt: u32, until: i64) -> AttemptRecord {
    AttemptRecord {
        delivery_id: delivery_id.to_owned(),
        webhook_id: webhook_id.to_owned(),
        attempt,
        started_at: now_ms(),
        duration_ms: 0,
        request_headers: RecordedHeaders::default(),
        response_status: None,
        response_body: None,
        error: None,
        next: NextState::Deferred(until),
    }
}
