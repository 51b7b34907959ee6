//! A [`DeliveryQueue`] in memory, so that the dispatcher can be tested without a database.
//!
//! It keeps the delivery state machine the store keeps (see agora-store's `deliveries.rs`):
//!
//! ```text
//! pending ──claim──▶ in_flight ──2xx──▶ succeeded
//!    ▲                  │ ├──fail, retries left──▶ failed ──due──▶ (claimed again)
//!    │                  │ ├──fail, none left / 410──▶ exhausted
//!    │                  │ └──deferred (not attempted)──▶ pending / failed, due later
//!    └── lease expiry, give back, release ◀┘
//! ```
//!
//! with the same rules: a claim takes due deliveries in due order and counts the attempt, a
//! lease expires at its `lease_until` (as on PostgreSQL; SQLite's never do), a record moves a
//! delivery only if it is still in flight for that attempt, giving back uncounts the attempt,
//! a 410 disables the webhook and closes its queued deliveries. What only SQL does is left out: parking, the claim window, and
//! auto-disable after a long failure streak (this queue keeps the streak the store's rule
//! reads, but never applies the rule).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::queue::{
    AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryQueue, LeasedDelivery, NextState,
    QueueError, WebhookSettings,
};
use super::Lease;
use crate::ids::new_id;
use crate::time::now_ms;

/// Where a delivery is in its life, as a test reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Never attempted, due at `due_at`.
    Pending,
    /// Leased to `owner` until `until` (unix ms), for the attempt counted in `attempts`.
    InFlight {
        /// The node that holds the lease.
        owner: String,
        /// When the lease expires.
        until: i64,
    },
    /// Delivered.
    Succeeded,
    /// Failed, to be attempted again at `due_at`.
    Failed,
    /// Out of retries, or its webhook was disabled.
    Exhausted,
}

/// One delivery as the memory queue keeps it.
#[derive(Clone, Debug)]
pub struct DeliveryState {
    /// `msg_…`.
    pub id: String,
    /// The webhook it goes to.
    pub webhook_id: String,
    /// Where it is in its life.
    pub status: Status,
    /// Attempts counted, including the one a lease is for.
    pub attempts: u32,
    /// When it is next due (pending and failed deliveries).
    pub due_at: Option<i64>,
}

/// A webhook as the memory queue keeps it: its settings and its health.
struct Webhook {
    settings: Arc<WebhookSettings>,
    retry_count: u32,
    active: bool,
    failure_streak: u32,
}

/// One delivery row.
struct Row {
    state: DeliveryState,
    event_id: String,
    event_type: String,
}

#[derive(Default)]
struct State {
    webhooks: HashMap<String, Webhook>,
    /// Event bodies by event id.
    events: HashMap<String, Arc<str>>,
    /// Deliveries by id, which sorts by creation time.
    deliveries: BTreeMap<String, Row>,
    /// The delivery log: every attempt made, deferrals left out.
    log: Vec<AttemptRecord>,
}

/// A [`DeliveryQueue`] held in memory (see the module's documentation).
#[derive(Default)]
pub struct MemoryQueue(Mutex<State>);

impl MemoryQueue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().expect("memory queue lock")
    }

    /// Adds an active webhook that allows `retry_count` retries after a first attempt.
    pub fn add_webhook(&self, id: &str, settings: WebhookSettings, retry_count: u32) {
        self.state().webhooks.insert(
            id.to_owned(),
            Webhook {
                settings: Arc::new(settings),
                retry_count,
                active: true,
                failure_streak: 0,
            },
        );
    }

    /// Records an event with `body` and queues one delivery of it to `webhook_id`, due now;
    /// answers the delivery's id.
    pub fn enqueue(&self, webhook_id: &str, event_type: &str, body: &str) -> String {
        let (event_id, id) = (new_id("evt"), new_id("msg"));
        let mut state = self.state();
        state.events.insert(event_id.clone(), body.into());
        state.deliveries.insert(
            id.clone(),
            Row {
                state: DeliveryState {
                    id: id.clone(),
                    webhook_id: webhook_id.to_owned(),
                    status: Status::Pending,
                    attempts: 0,
                    due_at: Some(now_ms()),
                },
                event_id,
                event_type: event_type.to_owned(),
            },
        );
        id
    }

    /// Leases the delivery `id` to `node` until `until` without a claim, as the store writes a
    /// delivery leased at birth for the hand-off, and answers it as a claim would: what a test
    /// needs to hand a delivery over, or to strand a lease.
    pub fn lease(&self, id: &str, node: &str, until: i64) -> Option<LeasedDelivery> {
        let mut state = self.state();
        let row = state.deliveries.get_mut(id)?;
        take_lease(&mut row.state, node, until);
        Some(row.leased())
    }

    /// The delivery `id` as it is now.
    pub fn delivery(&self, id: &str) -> Option<DeliveryState> {
        self.state().deliveries.get(id).map(|row| row.state.clone())
    }

    /// The attempts logged for the delivery `id`, in the order they were recorded.
    pub fn attempts(&self, id: &str) -> Vec<AttemptRecord> {
        let state = self.state();
        state
            .log
            .iter()
            .filter(|a| a.delivery_id == id)
            .cloned()
            .collect()
    }

    /// Whether the webhook `id` is active (not disabled).
    pub fn is_active(&self, id: &str) -> bool {
        self.state().webhooks.get(id).is_some_and(|w| w.active)
    }

    /// The webhook's failed attempts since its last success: what the store's auto-disable
    /// rule reads.
    pub fn failure_streak(&self, id: &str) -> u32 {
        self.state()
            .webhooks
            .get(id)
            .map_or(0, |w| w.failure_streak)
    }

    /// Gives back the in-flight deliveries `pick` chooses, due at `due_at`, the attempt they
    /// were leased for not counted (the store's `give_back_where`).
    fn give_back_where(&self, due_at: i64, pick: impl Fn(&DeliveryState) -> bool) {
        for row in self.state().deliveries.values_mut() {
            let d = &mut row.state;
            if matches!(d.status, Status::InFlight { .. }) && pick(d) {
                give_back(d, due_at);
            }
        }
    }
}

impl Row {
    /// The delivery as a claim answers it, once leased.
    fn leased(&self) -> LeasedDelivery {
        LeasedDelivery {
            id: self.state.id.clone(),
            webhook_id: self.state.webhook_id.clone(),
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            attempt: self.state.attempts,
            retries_done: self.state.attempts - 1,
        }
    }
}

/// Leases `d` to `node` until `until`, counting the attempt the lease is for.
fn take_lease(d: &mut DeliveryState, node: &str, until: i64) {
    d.status = Status::InFlight {
        owner: node.to_owned(),
        until,
    };
    d.attempts += 1;
    d.due_at = None;
}

/// Puts an in-flight delivery back as it was before its lease, due at `due_at`.
fn give_back(d: &mut DeliveryState, due_at: i64) {
    d.attempts -= 1;
    d.status = if d.attempts == 0 {
        Status::Pending
    } else {
        Status::Failed
    };
    d.due_at = Some(due_at);
}

/// Whether `d` may be claimed at `now`: due and queued, or leased and the lease expired.
fn is_due(d: &DeliveryState, now: i64) -> bool {
    match &d.status {
        Status::Pending | Status::Failed => d.due_at.is_some_and(|due| due <= now),
        Status::InFlight { until, .. } => *until <= now,
        Status::Succeeded | Status::Exhausted => false,
    }
}

/// When `d` is due, for the claim's order.
fn due_time(d: &DeliveryState) -> i64 {
    match &d.status {
        Status::InFlight { until, .. } => *until,
        _ => d.due_at.unwrap_or(i64::MAX),
    }
}

impl State {
    /// Records one attempt as the store does: a deferral puts its delivery back; an attempt
    /// is logged and counts for its webhook's health even when late, but moves its delivery
    /// only if that is still in flight for this attempt.
    fn record(&mut self, a: &AttemptRecord) {
        let Some(row) = self.deliveries.get_mut(&a.delivery_id) else {
            return;
        };
        let d = &mut row.state;
        let current = matches!(d.status, Status::InFlight { .. }) && d.attempts == a.attempt;
        if let NextState::Deferred(until) = a.next {
            if current {
                give_back(d, until);
            }
            return;
        }
        if current {
            (d.status, d.due_at) = match a.next {
                NextState::Succeeded => (Status::Succeeded, None),
                NextState::RetryAt(at) => (Status::Failed, Some(at)),
                _ => (Status::Exhausted, None),
            };
        }
        if let Some(webhook) = self.webhooks.get_mut(&a.webhook_id) {
            if a.next == NextState::Succeeded {
                webhook.failure_streak = 0;
            } else {
                webhook.failure_streak += 1;
            }
        }
        self.log.push(a.clone());
        if a.next == NextState::DisableWebhook {
            self.disable(&a.webhook_id);
        }
    }

    /// Disables a webhook and closes its queued deliveries, as the store does on a 410.
    fn disable(&mut self, webhook_id: &str) {
        if let Some(webhook) = self.webhooks.get_mut(webhook_id) {
            webhook.active = false;
        }
        for row in self.deliveries.values_mut() {
            let d = &mut row.state;
            if d.webhook_id == webhook_id && matches!(d.status, Status::Pending | Status::Failed) {
                d.status = Status::Exhausted;
                d.due_at = None;
            }
        }
    }
}

impl DeliveryQueue for MemoryQueue {
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<LeasedDelivery>, QueueError> {
        let mut state = self.state();
        let mut due: Vec<&mut Row> = state
            .deliveries
            .values_mut()
            .filter(|row| {
                is_due(&row.state, request.now)
                    && !request.skip_webhooks.contains(&row.state.webhook_id)
            })
            .collect();
        due.sort_by_key(|row| due_time(&row.state));
        Ok(due
            .into_iter()
            .take(request.limit)
            .map(|row| {
                take_lease(&mut row.state, &request.node, request.lease_until);
                row.leased()
            })
            .collect())
    }

    async fn load(&self, leased: &[LeasedDelivery]) -> Result<Vec<ClaimedDelivery>, QueueError> {
        let state = self.state();
        Ok(leased
            .iter()
            .filter_map(|l| {
                let webhook = state.webhooks.get(&l.webhook_id)?;
                Some(ClaimedDelivery {
                    id: l.id.clone(),
                    event_id: l.event_id.clone(),
                    event_type: l.event_type.clone(),
                    webhook_id: l.webhook_id.clone(),
                    webhook: webhook.settings.clone(),
                    body: state.events.get(&l.event_id)?.clone(),
                    attempt: l.attempt,
                    retries_done: l.retries_done,
                    retry_count: webhook.retry_count,
                })
            })
            .collect())
    }

    async fn record(&self, attempts: Arc<[AttemptRecord]>) -> Result<(), QueueError> {
        let mut state = self.state();
        for a in attempts.iter() {
            state.record(a);
        }
        Ok(())
    }

    async fn renew_leases(&self, node: &str, until: i64) -> Result<(), QueueError> {
        for row in self.state().deliveries.values_mut() {
            if let Status::InFlight {
                owner,
                until: expiry,
            } = &mut row.state.status
            {
                if owner == node {
                    *expiry = until;
                }
            }
        }
        Ok(())
    }

    async fn leases(&self, node: &str) -> Result<Vec<Lease>, QueueError> {
        Ok(self
            .state()
            .deliveries
            .values()
            .filter_map(|row| match &row.state.status {
                Status::InFlight { owner, .. } if owner == node => {
                    Some((row.state.id.clone(), row.state.attempts))
                }
                _ => None,
            })
            .collect())
    }

    async fn give_back(&self, node: &str, leases: &[Lease]) -> Result<(), QueueError> {
        self.give_back_where(now_ms(), |d| {
            matches!(&d.status, Status::InFlight { owner, .. } if owner == node)
                && leases
                    .iter()
                    .any(|(id, attempt)| *id == d.id && *attempt == d.attempts)
        });
        Ok(())
    }

    async fn release_leases(&self, node: &str) -> Result<(), QueueError> {
        self.give_back_where(
            now_ms(),
            |d| matches!(&d.status, Status::InFlight { owner, .. } if owner == node),
        );
        Ok(())
    }
}
