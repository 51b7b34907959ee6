//! The claim loop, and the intake of deliveries the store hands over without a claim.

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::batch::{BatchStart, Claimed};
use super::handoff::Handed;
use super::queue::DeliveryQueue;
use super::{Backoff, DispatcherConfig, Waker};

/// The loop that leases due work and starts its delivery on the sending runtime.
pub(super) struct ClaimLoop<Q> {
    pub(super) config: DispatcherConfig,
    pub(super) waker: Waker,
    pub(super) sending: Handle,
    /// What every claimed batch is started with; the loop claims through the same queue,
    /// limiter and shutdown token.
    pub(super) batches: BatchStart<Q>,
}

impl<Q: DeliveryQueue> ClaimLoop<Q> {
    /// Claims until shutdown is cancelled.
    pub(super) async fn run(self) {
        let Self {
            config,
            waker,
            sending,
            batches,
        } = self;
        let shutdown = &batches.shutdown;
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let full_batch = match batches.claim(&config).await {
                Ok(Claimed { admitted, full }) => {
                    backoff.reset();
                    if !admitted.is_empty() {
                        batches
                            .tasks
                            .spawn_on(batches.clone().run(admitted), &sending);
                    }
                    full
                }
                Err(e) => {
                    tracing::warn!(error = %e, "failed to claim due deliveries; backing off");
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next()) => {}
                        () = shutdown.cancelled() => {}
                    }
                    continue;
                }
            };
            if full_batch {
                continue;
            }
            tokio::select! {
                () = waker.0.notified() => {}
                () = tokio::time::sleep(config.poll_interval) => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
}

/// Starts the deliveries the store hands over, as claimed batches are started, until shutdown;
/// then stops taking them (handed ones not yet started stay leased and are given back).
pub(super) async fn take_handed<Q: DeliveryQueue>(
    mut handed: mpsc::UnboundedReceiver<Handed>,
    batches: BatchStart<Q>,
    sending: Handle,
) {
    loop {
        tokio::select! {
            biased;
            () = batches.shutdown.cancelled() => return,
            Some(batch) = handed.recv() => {
                batches.tasks.spawn_on(batches.clone().run(batch), &sending);
            }
        }
    }
}
