//! What the dispatcher tells the metrics recorder: attempts by outcome and event type, their
//! duration, and circuit breaker openings. Through the `metrics` facade only, which costs next
//! to nothing while no recorder is installed (tests, embedders).
//!
//! Event types are bounded by the catalog, but custom ones are made up by the integrators: the
//! first [`MAX_EVENT_TYPES`] distinct types get a label of their own, later ones share
//! `other`, so no publisher can make the series grow without end. The counters of each type
//! are registered once and kept, so an attempt costs a map lookup under a read lock and an
//! atomic add, no string formatting.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use metrics::{Counter, Histogram};

use super::queue::{AttemptRecord, NextState};

/// Deliveries by outcome and event type.
pub const DELIVERIES: &str = "agora_deliveries_total";
/// How long attempts took, from the request to the answer or the failure.
pub const ATTEMPT_DURATION: &str = "agora_delivery_attempt_duration_seconds";
/// Circuit breakers opened (on reaching the threshold, and again on each failed probe).
pub const BREAKER_OPENINGS: &str = "agora_breaker_openings_total";

/// Event types that get a label of their own; later ones are counted as `other`.
pub const MAX_EVENT_TYPES: usize = 100;

/// The label of event types past [`MAX_EVENT_TYPES`].
pub const OTHER: &str = "other";

/// The series the dispatcher's workers add to, shared by them.
pub(super) struct DeliveryMetrics {
    by_type: RwLock<HashMap<Box<str>, Arc<Outcomes>>>,
    other: Arc<Outcomes>,
    duration: Histogram,
}

/// One event type's counters, one per outcome.
struct Outcomes {
    succeeded: Counter,
    failed_retrying: Counter,
    exhausted: Counter,
}

impl Outcomes {
    fn register(event_type: &str) -> Self {
        let counter = |outcome: &'static str| metrics::counter!(DELIVERIES, "outcome" => outcome, "event_type" => event_type.to_owned());
        Self {
            succeeded: counter("succeeded"),
            failed_retrying: counter("failed_retrying"),
            exhausted: counter("exhausted"),
        }
    }
}

impl DeliveryMetrics {
    /// Registers the series with the recorder installed now (none: every update is a no-op).
    pub(super) fn new() -> Self {
        Self {
            by_type: RwLock::default(),
            other: Arc::new(Outcomes::register(OTHER)),
            duration: metrics::histogram!(ATTEMPT_DURATION),
        }
    }

    /// Counts an attempt of a delivery of `event_type`. A deferral was no attempt and counts
    /// nothing.
    pub(super) fn attempted(&self, event_type: &str, record: &AttemptRecord) {
        let outcomes = self.outcomes(event_type);
        let counter = match record.next {
            NextState::Succeeded => &outcomes.succeeded,
            NextState::RetryAt(_) => &outcomes.failed_retrying,
            NextState::Exhausted | NextState::DisableWebhook => &outcomes.exhausted,
            NextState::Deferred(_) => return,
        };
        counter.increment(1);
        self.duration
            .record(record.duration_ms.max(0) as f64 / 1000.0);
    }

    /// The counters of `event_type`, registered on its first attempt while there is room.
    fn outcomes(&self, event_type: &str) -> Arc<Outcomes> {
        let read = self.by_type.read().unwrap_or_else(|p| p.into_inner());
        if let Some(outcomes) = read.get(event_type) {
            return outcomes.clone();
        }
        let full = read.len() >= MAX_EVENT_TYPES;
        drop(read);
        if full {
            return self.other.clone();
        }
        let mut write = self.by_type.write().unwrap_or_else(|p| p.into_inner());
        if write.len() >= MAX_EVENT_TYPES {
            return self.other.clone();
        }
        write
            .entry(event_type.into())
            .or_insert_with(|| Arc::new(Outcomes::register(event_type)))
            .clone()
    }
}

/// Counts a circuit breaker opening.
pub(super) fn breaker_opened() {
    metrics::counter!(BREAKER_OPENINGS).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_past_the_bound_share_one_label() {
        let measured = DeliveryMetrics::new();
        for n in 0..MAX_EVENT_TYPES {
            let first = measured.outcomes(&format!("custom.t{n}"));
            assert!(Arc::ptr_eq(
                &first,
                &measured.outcomes(&format!("custom.t{n}"))
            ));
            assert!(!Arc::ptr_eq(&first, &measured.other));
        }
        assert!(Arc::ptr_eq(
            &measured.outcomes("custom.one_too_many"),
            &measured.other
        ));
        assert!(!Arc::ptr_eq(
            &measured.outcomes("custom.t0"),
            &measured.other
        ));
    }
}
