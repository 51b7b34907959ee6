//! The recorder: finished attempts written to the queue in batches.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::held::Held;
use super::limiter::Limiter;
use super::queue::{AttemptRecord, DeliveryQueue, NextState};
use super::{Backoff, Waker};

/// Attempts the recorder hands to [`DeliveryQueue::record`] at most. While publishes keep
/// the single SQLite writer busy, the recorder gets the writer only every few transactions,
/// and what it records in one turn bounds the delivery rate: with 512 a burst of publishes
/// left the dispatcher waiting for its records (docs/dev/performance.md).
pub const RECORD_BATCH: usize = 4096;

/// A record batch smaller than this waits up to [`RECORD_LINGER`] for more attempts.
const RECORD_FILL: usize = RECORD_BATCH / 4;

/// How long a small record batch waits for more before it is written. Every transaction
/// rewrites the pages it touches (the ends of the attempts table and of its indexes, the
/// deliveries it moves) in full, whether it records ten attempts or a thousand: taking
/// whatever had arrived wrote small transactions under load, and so more bytes to the disk
/// per attempt (docs/dev/performance.md has the figures). The wait delays only the
/// bookkeeping: the attempt was already sent, and its delivery's place in memory is given
/// back 5 ms later at most.
const RECORD_LINGER: Duration = Duration::from_millis(5);

/// Writes finished attempts in batches, retrying a batch until the store takes it: an attempt
/// made is never forgotten while the process lives (and if it dies, the lease brings the
/// delivery back).
pub(super) async fn record_loop<Q: DeliveryQueue>(
    queue: Arc<Q>,
    mut rx: mpsc::UnboundedReceiver<AttemptRecord>,
    release: Release,
    waker: Waker,
    shutdown: CancellationToken,
) {
    /// How long a shutting-down node keeps trying to record into storage that is down.
    const GIVE_UP_AFTER: Duration = Duration::from_secs(10);
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    let mut backoff = Backoff::default();
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        if batch.len() < RECORD_FILL {
            // Whatever arrives meanwhile joins this transaction (see `RECORD_LINGER`).
            let _ = tokio::time::timeout(RECORD_LINGER, async {
                while batch.len() < RECORD_FILL {
                    let room = RECORD_BATCH - batch.len();
                    if rx.recv_many(&mut batch, room).await == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        let attempts: Arc<[AttemptRecord]> = batch.drain(..).collect();
        let mut failing_since = None;
        while let Err(e) = queue.record(attempts.clone()).await {
            let since = *failing_since.get_or_insert_with(std::time::Instant::now);
            if shutdown.is_cancelled() && since.elapsed() > GIVE_UP_AFTER {
                // Exiting beats hanging: these deliveries stay leased, so they are sent again
                // (same webhook-id) after a restart or when the lease runs out.
                tracing::error!(error = %e, attempts = attempts.len(), "storage still down at shutdown; leaving attempts unrecorded");
                break;
            }
            tracing::warn!(error = %e, attempts = attempts.len(), "failed to record attempts; retrying");
            tokio::time::sleep(backoff.next()).await;
        }
        backoff.reset();
        warn_of_failures(&attempts);
        release.recorded(&attempts);
        waker.wake();
    }
}

/// Tells the operator, at `warn`, of each recorded attempt that failed: with a retry
/// scheduled, out of retries, or answered 410 Gone. Logged once the attempt is recorded, so a
/// batch the store refused is not told twice; successes and deferrals are not logged at all,
/// which keeps logging off the path of every delivery that goes well. The error is the one
/// `last_error` shows, which carries no URL, header or secret.
fn warn_of_failures(attempts: &[AttemptRecord]) {
    for a in attempts {
        let retry_at = match a.next {
            NextState::Succeeded | NextState::Deferred(_) => continue,
            NextState::RetryAt(at) => Some(at),
            NextState::Exhausted | NextState::DisableWebhook => None,
        };
        let (webhook_id, delivery_id, attempt, status, error) = (
            a.webhook_id.as_str(),
            a.delivery_id.as_str(),
            a.attempt,
            a.response_status,
            a.error.as_deref(),
        );
        match retry_at {
            Some(retry_at) => tracing::warn!(
                webhook_id,
                delivery_id,
                attempt,
                status,
                error,
                retry_at,
                "delivery attempt failed; retry scheduled"
            ),
            None => tracing::warn!(
                webhook_id,
                delivery_id,
                attempt,
                status,
                error,
                "delivery failed for good; no retry left"
            ),
        }
    }
}

/// What a recorded attempt frees: its delivery's place in the limiter, and its note as held.
pub(super) struct Release {
    pub(super) limiter: Arc<Limiter>,
    pub(super) held: Arc<Held>,
}

impl Release {
    /// Frees what the deliveries of `attempts` held.
    pub(super) fn recorded(&self, attempts: &[AttemptRecord]) {
        self.held
            .remove(attempts.iter().map(|a| a.delivery_id.as_str()));
        let webhooks: Vec<String> = attempts.iter().map(|a| a.webhook_id.clone()).collect();
        self.limiter.release(&webhooks);
    }
}
