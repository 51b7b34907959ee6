//! The process's metrics recorder (Prometheus's text format, rendered by `GET /metrics`) and
//! the sampler that sets the gauges the database knows: the queue, the age of the oldest due
//! delivery, the webhooks by status.
//!
//! The recorder is the process's global one, installed once: the engine and the store report
//! through the `metrics` facade, which goes to whatever recorder is installed. A process that
//! installed another one first (an embedder) keeps it, and `/metrics` then answers 404.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use agora_core::dispatcher::measure;
use agora_store::metrics as store_metrics;
use agora_store::Store;

/// Deliveries waiting in the database for an attempt, by state (`pending`, `failed`).
pub const QUEUED: &str = "agora_deliveries_queued";
/// How long the oldest delivery that is due has waited past its due time.
pub const OLDEST_DUE_AGE: &str = "agora_oldest_due_delivery_age_seconds";
/// Webhooks by status (`active`, `inactive`).
pub const WEBHOOKS: &str = "agora_webhooks";

/// Bucket bounds of the latency histograms, in seconds: from a fast commit to a receiver's
/// whole timeout.
const SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bucket bounds of the group-commit size, in events.
const EVENTS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
];

/// The process's recorder, installed on the first call; `None` when another recorder was
/// installed before.
pub fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(store_metrics::GROUP_COMMIT_EVENTS.into()),
                        &EVENTS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics are off: no recorder could be installed");
                    None
                }
            }
        })
        .clone()
}

/// Gives every series its help text, and starts the counters an alert looks at from zero, so
/// that they are there before the first event they count.
fn describe() {
    use agora_api::metrics::{REQUESTS, REQUEST_DURATION};
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        measure::DELIVERIES,
        "Delivery attempts by outcome (succeeded, failed_retrying, exhausted) and event type"
    );
    describe_histogram!(
        measure::ATTEMPT_DURATION,
        Unit::Seconds,
        "How long delivery attempts took"
    );
    describe_counter!(
        measure::BREAKER_OPENINGS,
        "Circuit breakers opened on a webhook's failures"
    );
    describe_counter!(
        store_metrics::AUTO_DISABLED,
        "Webhooks disabled by the dispatcher, by reason (gone, failing)"
    );
    describe_histogram!(
        store_metrics::COMMIT_DURATION,
        Unit::Seconds,
        "How long database commits took, by kind (durable, bookkeeping)"
    );
    describe_histogram!(
        store_metrics::GROUP_COMMIT_EVENTS,
        "Events published per group commit"
    );
    describe_counter!(
        store_metrics::STORAGE_ERRORS,
        "Failed database calls, by kind (unavailable, internal)"
    );
    describe_counter!(REQUESTS, "HTTP requests by method, route and status");
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "How long HTTP requests took, by method and route"
    );
    describe_gauge!(QUEUED, "Deliveries waiting for an attempt, by state");
    describe_gauge!(
        OLDEST_DUE_AGE,
        Unit::Seconds,
        "How long the oldest due delivery has waited past its due time"
    );
    describe_gauge!(WEBHOOKS, "Webhooks by status");
    metrics::counter!(measure::BREAKER_OPENINGS).absolute(0);
    for reason in ["gone", "failing"] {
        metrics::counter!(store_metrics::AUTO_DISABLED, "reason" => reason).absolute(0);
    }
    for kind in ["unavailable", "internal"] {
        metrics::counter!(store_metrics::STORAGE_ERRORS, "kind" => kind).absolute(0);
    }
}

/// Samples the queue now and then `every` until `shutdown`, and keeps the recorder's
/// histograms drained between scrapes.
pub async fn sample_forever(
    store: Store,
    handle: PrometheusHandle,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match store.sample_queue().await {
            Ok(sample) => set_gauges(&sample, agora_core::time::now_ms()),
            Err(e) => tracing::warn!(error = %e, "could not sample the delivery queue"),
        }
        handle.run_upkeep();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Sets the gauges from a sample taken at `now` (unix ms).
fn set_gauges(sample: &store_metrics::QueueSample, now: i64) {
    metrics::gauge!(QUEUED, "state" => "pending").set(sample.pending as f64);
    metrics::gauge!(QUEUED, "state" => "failed").set(sample.failed as f64);
    let waited = sample
        .earliest_due_at
        .map_or(0, |due| now.saturating_sub(due).max(0));
    metrics::gauge!(OLDEST_DUE_AGE).set(waited as f64 / 1000.0);
    metrics::gauge!(WEBHOOKS, "status" => "active").set(sample.webhooks_active as f64);
    metrics::gauge!(WEBHOOKS, "status" => "inactive").set(sample.webhooks_inactive as f64);
}
