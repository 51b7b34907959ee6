//! Per-webhook admission: how many deliveries of each webhook are held in memory, and how many
//! may be in flight at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::DispatcherConfig;

/// Counts held deliveries per webhook and in all.
pub(super) struct Limiter {
    slots: Mutex<Slots>,
    concurrency: usize,
    max_queued: usize,
    max_in_memory: usize,
}

#[derive(Default)]
struct Slots {
    held: usize,
    per_webhook: HashMap<String, Slot>,
}

struct Slot {
    held: usize,
    permits: Arc<Semaphore>,
}

/// The right to wait for one of a webhook's request permits.
pub(super) struct Admission(Arc<Semaphore>);

impl Admission {
    /// Waits for a request permit of the webhook.
    pub(super) async fn acquire(self) -> OwnedSemaphorePermit {
        self.0
            .acquire_owned()
            .await
            .expect("limiter semaphores are never closed")
    }
}

impl Limiter {
    pub(super) fn new(config: &DispatcherConfig) -> Self {
        Self {
            slots: Mutex::new(Slots::default()),
            concurrency: config.max_concurrency_per_webhook.max(1),
            max_queued: config.max_queued_per_webhook.max(1),
            max_in_memory: config.max_in_memory.max(1),
        }
    }

    /// How many more deliveries may be claimed now.
    pub(super) fn room(&self) -> usize {
        self.max_in_memory
            .saturating_sub(self.slots.lock().expect("limiter lock").held)
    }

    /// Webhooks holding as many deliveries as they may.
    pub(super) fn saturated(&self) -> Vec<String> {
        let slots = self.slots.lock().expect("limiter lock");
        slots
            .per_webhook
            .iter()
            .filter(|(_, s)| s.held >= self.max_queued)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Counts a claimed delivery as held.
    pub(super) fn admit(&self, webhook_id: &str) -> Admission {
        let mut slots = self.slots.lock().expect("limiter lock");
        slots.held += 1;
        let slot = slots
            .per_webhook
            .entry(webhook_id.to_owned())
            .or_insert_with(|| Slot {
                held: 0,
                permits: Arc::new(Semaphore::new(self.concurrency)),
            });
        slot.held += 1;
        Admission(slot.permits.clone())
    }

    /// Forgets deliveries whose attempts are recorded; webhooks holding nothing are dropped so
    /// the map does not grow with every webhook ever seen.
    pub(super) fn release(&self, webhook_ids: &[String]) {
        let mut slots = self.slots.lock().expect("limiter lock");
        slots.held = slots.held.saturating_sub(webhook_ids.len());
        for id in webhook_ids {
            if let Some(slot) = slots.per_webhook.get_mut(id) {
                slot.held -= 1;
                if slot.held == 0 {
                    slots.per_webhook.remove(id);
                }
            }
        }
    }
}
