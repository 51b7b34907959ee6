//! The dispatcher one round at a time, for tests that drive it.
//!
//! [`Dispatcher::run`](super::Dispatcher::run) is a set of loops that wait on each other and
//! on the clock; a test of what it does with a failing receiver or an expired lease would have
//! to wait for them too. A [`Stepper`] is made of the same parts (the claim, the batch load,
//! the lanes and their workers, the limiter and breaker, the sweep) and runs one round when
//! asked: what it claims is sent and recorded before [`Stepper::round`] returns, so a test
//! moves the clock, steps, and looks at what happened, as a single-step worker function is
//! tested. Only the loops differ: no poll, no wake-ups, and records are written at the end of
//! the round rather than batched over a few milliseconds.

use std::sync::Arc;

use super::batch::Claimed;
use super::queue::{AttemptRecord, DeliveryQueue, QueueError};
use super::{DispatcherConfig, Parts};

/// A dispatcher driven one round at a time (see [`Dispatcher::stepper`](super::Dispatcher::stepper)).
pub struct Stepper<Q> {
    pub(super) config: DispatcherConfig,
    pub(super) parts: Parts<Q>,
    /// Records a failed [`DeliveryQueue::record`] left to the next round.
    pub(super) unrecorded: Vec<AttemptRecord>,
}

/// What one round did, so that a test can check it without asking the queue.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Round {
    /// Deliveries handed over by the store since the last round, started before the claim.
    pub handed: usize,
    /// Deliveries the claim leased.
    pub claimed: usize,
    /// The records written this round, attempts and deferrals alike, in the order they were
    /// made.
    pub records: Vec<AttemptRecord>,
}

impl<Q: DeliveryQueue> Stepper<Q> {
    /// Starts the deliveries handed over since the last round, claims due work as the claim
    /// loop would, sends all of it, and records every attempt. A round that fails (the queue
    /// refused a claim or a record) leaves what it started to the next one.
    pub async fn round(&mut self) -> Result<Round, QueueError> {
        let Parts {
            batches,
            records,
            release,
            handed,
            ..
        } = &mut self.parts;
        let mut round = Round::default();
        if let Some(handed) = handed {
            while let Ok(batch) = handed.try_recv() {
                round.handed += batch.len();
                batches.clone().run(batch).await;
            }
        }
        let Claimed { admitted, .. } = batches.claim(&self.config).await?;
        round.claimed = admitted.len();
        if !admitted.is_empty() {
            batches.clone().run(admitted).await;
        }
        let tasks = &batches.tasks;
        tasks.close();
        tasks.wait().await;
        tasks.reopen();
        while let Ok(record) = records.try_recv() {
            self.unrecorded.push(record);
        }
        if self.unrecorded.is_empty() {
            return Ok(round);
        }
        let attempts: Arc<[AttemptRecord]> = std::mem::take(&mut self.unrecorded).into();
        if let Err(e) = batches.queue.record(attempts.clone()).await {
            self.unrecorded = attempts.to_vec();
            return Err(e);
        }
        release.recorded(&attempts);
        round.records = attempts.to_vec();
        Ok(round)
    }

    /// What the dispatcher does every `lease / 3`: renews this node's leases, then gives back
    /// those it has not held at two sweeps in a row, and says how many it gave back.
    pub async fn tend_leases(&mut self) -> Result<usize, QueueError> {
        self.parts.keeper.renew().await?;
        self.parts.keeper.sweep().await
    }
}
