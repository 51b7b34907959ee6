//! Per-webhook admission: how many deliveries of each webhook are held in memory, how many may
//! be in flight at once, and whether the webhook's circuit breaker lets them through.
//!
//! The breaker opens after `breaker_threshold` consecutive failures (no answer, timeout, 429 or
//! 5xx). While open, deliveries are deferred without an attempt and the claim skips the
//! webhook; after `breaker_cooldown` one probe goes through, and its success closes the
//! breaker. A dead endpoint thus gets one request per cooldown instead of a stampede, and its
//! deliveries stop occupying memory and workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::lane::{Lane, Place, Work};
use super::queue::{AttemptRecord, NextState};
use super::DispatcherConfig;
use crate::time::now_ms;

/// Counts held deliveries per webhook and in all.
pub(super) struct Limiter {
    slots: Mutex<Slots>,
    /// How many webhooks have a breaker (failures since their last success), kept with the
    /// map under the lock: while none has, the breaker's questions are answered without the
    /// lock, which every delivery would otherwise take twice.
    failing: AtomicUsize,
    concurrency: usize,
    max_queued: usize,
    max_in_memory: usize,
    breaker_threshold: u32,
    breaker_cooldown_ms: i64,
}

#[derive(Default)]
struct Slots {
    held: usize,
    per_webhook: HashMap<String, Slot>,
    /// Webhooks with failures since their last success; absent means healthy.
    breakers: HashMap<String, Breaker>,
    /// Set at shutdown: lanes take no more work.
    closed: bool,
}

#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: i64,
    probing: bool,
}

/// What the breaker says about one delivery about to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gate {
    /// Send it (when the breaker is open, as its one probe).
    Send,
    /// Do not send; defer it to this time (unix ms).
    Defer(i64),
}

struct Slot {
    held: usize,
    lane: Arc<Lane>,
}

/// A held delivery's way into its webhook's lane, once it is loaded.
pub(super) struct Admission(Arc<Lane>);

impl Admission {
    /// Queues the loaded delivery in its webhook's lane. With a place, the caller is to start
    /// a worker for the lane ([`Lane::push`]).
    pub(super) fn queue(self, work: Work) -> Option<Place> {
        self.0.push(work)
    }
}

impl Limiter {
    pub(super) fn new(config: &DispatcherConfig) -> Self {
        Self {
            slots: Mutex::new(Slots::default()),
            failing: AtomicUsize::new(0),
            concurrency: config.max_concurrency_per_webhook.max(1),
            max_queued: config.max_queued_per_webhook.max(1),
            max_in_memory: config.max_in_memory.max(1),
            breaker_threshold: config.breaker_threshold.max(1),
            breaker_cooldown_ms: config.breaker_cooldown.as_millis() as i64,
        }
    }

    /// Closes every webhook's lane, and those opened later: deliveries waiting to be sent, and
    /// any admitted later, are dropped unsent ([`Lane::close`]). One close at shutdown
    /// replaces a shutdown signal in every worker.
    pub(super) fn close(&self) {
        let mut slots = self.slots.lock().expect("limiter lock");
        slots.closed = true;
        for slot in slots.per_webhook.values() {
            slot.lane.close();
        }
    }

    /// How many more deliveries may be claimed now.
    pub(super) fn room(&self) -> usize {
        self.max_in_memory
            .saturating_sub(self.slots.lock().expect("limiter lock").held)
    }

    /// Webhooks not to claim for now: those holding as many deliveries as they may, and those
    /// whose breaker is open.
    pub(super) fn saturated(&self) -> Vec<String> {
        let slots = self.slots.lock().expect("limiter lock");
        let now = now_ms();
        let full = slots
            .per_webhook
            .iter()
            .filter(|(_, s)| s.held >= self.max_queued)
            .map(|(id, _)| id);
        let open = slots
            .breakers
            .iter()
            .filter(|(_, b)| {
                b.failures >= self.breaker_threshold && (b.probing || now < b.open_until)
            })
            .map(|(id, _)| id);
        let mut skip: Vec<String> = full.chain(open).cloned().collect();
        skip.sort_unstable();
        skip.dedup();
        skip
    }

    /// Asks the webhook's breaker whether a delivery may be sent now.
    pub(super) fn gate(&self, webhook_id: &str) -> Gate {
        if self.failing.load(Ordering::Acquire) == 0 {
            return Gate::Send;
        }
        let mut slots = self.slots.lock().expect("limiter lock");
        let Some(breaker) = slots.breakers.get_mut(webhook_id) else {
            return Gate::Send;
        };
        let now = now_ms();
        if breaker.failures < self.breaker_threshold {
            Gate::Send
        } else if breaker.probing {
            Gate::Defer(now.max(breaker.open_until) + self.breaker_cooldown_ms)
        } else if now >= breaker.open_until {
            breaker.probing = true;
            Gate::Send
        } else {
            Gate::Defer(breaker.open_until)
        }
    }

    /// Tells the breaker how an attempt went.
    pub(super) fn observe(&self, record: &AttemptRecord) {
        if matches!(record.next, NextState::Deferred(_)) {
            return;
        }
        let endpoint_failed = record.next != NextState::Succeeded
            && record.response_status.is_none_or(|s| s == 429 || s >= 500);
        if !endpoint_failed && self.failing.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut slots = self.slots.lock().expect("limiter lock");
        let mut opened = false;
        if endpoint_failed {
            let breaker = slots.breakers.entry(record.webhook_id.clone()).or_default();
            breaker.failures += 1;
            // It opens on reaching the threshold, and again when its probe fails; failures of
            // attempts already in flight while it is open only extend it.
            opened = breaker.failures == self.breaker_threshold || breaker.probing;
            breaker.probing = false;
            if breaker.failures >= self.breaker_threshold {
                breaker.open_until = now_ms() + self.breaker_cooldown_ms;
            }
        } else {
            slots.breakers.remove(&record.webhook_id);
        }
        self.failing.store(slots.breakers.len(), Ordering::Release);
        drop(slots);
        if opened {
            super::measure::breaker_opened();
            tracing::warn!(
                webhook_id = record.webhook_id.as_str(),
                delivery_id = record.delivery_id.as_str(),
                attempt = record.attempt,
                status = record.response_status,
                error = record.error.as_deref(),
                cooldown_ms = self.breaker_cooldown_ms,
                "circuit breaker opened; the webhook's deliveries wait for the cooldown"
            );
        }
    }

    /// Counts a claimed delivery as held.
    pub(super) fn admit(&self, webhook_id: &str) -> Admission {
        let mut slots = self.slots.lock().expect("limiter lock");
        self.hold(&mut slots, webhook_id)
    }

    /// Counts a delivery being queued as held, if there is room for it and its webhook is
    /// neither full nor failing: what a claim would take next. Otherwise the delivery waits in
    /// the queue, where the claim finds it in its turn.
    pub(super) fn try_admit(&self, webhook_id: &str) -> Option<Admission> {
        let mut slots = self.slots.lock().expect("limiter lock");
        let full = slots.held >= self.max_in_memory
            || slots
                .per_webhook
                .get(webhook_id)
                .is_some_and(|s| s.held >= self.max_queued)
            || slots.breakers.contains_key(webhook_id);
        (!full).then(|| self.hold(&mut slots, webhook_id))
    }

    fn hold(&self, slots: &mut Slots, webhook_id: &str) -> Admission {
        slots.held += 1;
        let slot = slots
            .per_webhook
            .entry(webhook_id.to_owned())
            .or_insert_with(|| Slot {
                held: 0,
                lane: Arc::new(Lane::new(self.concurrency)),
            });
        slot.held += 1;
        if slots.closed {
            slot.lane.close();
        }
        Admission(slot.lane.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatcher::lane::tests::work;
    use crate::dispatcher::RecordedHeaders;
    use std::time::Duration;

    fn record(webhook: &str, status: Option<u16>, next: NextState) -> AttemptRecord {
        AttemptRecord {
            delivery_id: "msg_1".into(),
            webhook_id: webhook.into(),
            attempt: 1,
            started_at: 0,
            duration_ms: 0,
            request_headers: RecordedHeaders::default(),
            response_status: status,
            response_body: None,
            error: None,
            next,
        }
    }

    fn limiter(cooldown: Duration) -> Limiter {
        Limiter::new(&DispatcherConfig {
            breaker_threshold: 3,
            breaker_cooldown: cooldown,
            ..DispatcherConfig::default()
        })
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_probes_once() {
        let l = limiter(Duration::from_secs(60));
        let fail = record("wh_a", Some(500), NextState::RetryAt(0));
        for _ in 0..2 {
            l.observe(&fail);
            assert_eq!(l.gate("wh_a"), Gate::Send);
        }
        l.observe(&fail);
        assert!(matches!(l.gate("wh_a"), Gate::Defer(_)));
        assert_eq!(l.saturated(), vec!["wh_a".to_owned()]);
        assert_eq!(l.gate("wh_b"), Gate::Send, "other webhooks are unaffected");
    }

    #[test]
    fn a_successful_probe_closes_the_breaker() {
        let l = limiter(Duration::ZERO);
        for _ in 0..3 {
            l.observe(&record("wh_a", None, NextState::RetryAt(0)));
        }
        assert_eq!(l.gate("wh_a"), Gate::Send, "cooldown over: one probe");
        assert!(
            matches!(l.gate("wh_a"), Gate::Defer(_)),
            "only one probe at a time"
        );
        l.observe(&record("wh_a", Some(200), NextState::Succeeded));
        assert_eq!(l.gate("wh_a"), Gate::Send);
        assert!(l.saturated().is_empty());
    }

    #[test]
    fn deliveries_being_queued_are_admitted_only_where_a_claim_would_take_them() {
        let l = Limiter::new(&DispatcherConfig {
            max_queued_per_webhook: 2,
            max_in_memory: 3,
            ..DispatcherConfig::default()
        });
        assert!(l.try_admit("wh_a").is_some());
        assert!(l.try_admit("wh_a").is_some());
        assert!(l.try_admit("wh_a").is_none(), "the webhook holds its share");
        assert!(l.try_admit("wh_b").is_some());
        assert!(l.try_admit("wh_c").is_none(), "memory is full");
        l.release(&["wh_a".to_owned()]);
        assert!(l.try_admit("wh_c").is_some());
        l.observe(&record("wh_d", Some(500), NextState::RetryAt(0)));
        l.release(&["wh_b".to_owned()]);
        assert!(
            l.try_admit("wh_d").is_none(),
            "a failing webhook's work waits its turn"
        );
    }

    #[test]
    fn once_closed_no_lane_takes_work_old_or_new() {
        let l = Limiter::new(&DispatcherConfig {
            max_concurrency_per_webhook: 1,
            ..DispatcherConfig::default()
        });
        let mut worker = l
            .admit("wh_a")
            .queue(work("msg_1"))
            .expect("a worker starts while open");
        assert!(
            l.admit("wh_a").queue(work("msg_2")).is_none(),
            "one at a time"
        );
        l.close();
        assert!(
            worker.next().is_none(),
            "what waits is dropped, the worker ends"
        );
        assert!(
            l.admit("wh_a").queue(work("msg_3")).is_none(),
            "nothing later is taken"
        );
        assert!(
            l.admit("wh_b").queue(work("msg_4")).is_none(),
            "a new webhook's lane is closed too"
        );
    }

    #[test]
    fn client_errors_do_not_trip_the_breaker() {
        let l = limiter(Duration::from_secs(60));
        for _ in 0..5 {
            l.observe(&record("wh_a", Some(400), NextState::RetryAt(0)));
        }
        assert_eq!(l.gate("wh_a"), Gate::Send);
    }
}
