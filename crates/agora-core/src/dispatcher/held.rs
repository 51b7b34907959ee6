//! The deliveries this node's dispatcher holds, the renewal of their leases, and the sweep
//! that gives back the leases it does not hold.
//!
//! A delivery leased to this node is meant to be in its dispatcher's memory from the moment
//! the lease commits until its attempt is recorded. Publishing commits and hands over in a
//! task no client can cancel, so the two cannot be split; the sweep is the safety net for
//! whatever else could (a bug, a panic between the two): every `lease / 3` it lists the
//! deliveries the store says are leased to this node, and gives back those its dispatcher did
//! not hold at two sweeps in a row with the same attempt number. Two sweeps, because a lease
//! commits a moment before its delivery is noted here (a claim returning, a hand-off).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::queue::{DeliveryQueue, QueueError};
use super::{DispatcherConfig, Waker};
use crate::time::now_ms;

/// The ids of the deliveries in this node's dispatcher: claimed or handed, and not yet
/// recorded.
#[derive(Default)]
pub(super) struct Held(Mutex<HashSet<String>>);

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes deliveries that entered the dispatcher.
    pub(super) fn insert<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        held.extend(ids.into_iter().map(str::to_owned));
    }

    /// Forgets deliveries whose attempts were recorded.
    pub(super) fn remove<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        for id in ids {
            held.remove(id);
        }
    }

    /// Keeps, of `leases`, those not held.
    fn unheld(&self, leases: Vec<Lease>) -> HashSet<Lease> {
        let held = self.lock();
        leases
            .into_iter()
            .filter(|(id, _)| !held.contains(id))
            .collect()
    }
}

/// A delivery leased to this node, with the attempt number it is leased for.
pub type Lease = (String, u32);

/// The leases seen unheld at the last sweep.
#[derive(Default)]
struct Sweep {
    suspects: HashSet<Lease>,
}

impl Sweep {
    /// Given the leases the store lists for this node now, answers those to give back: unheld
    /// now and at the last sweep, with the same attempt number.
    fn stranded(&mut self, held: &Held, leases: Vec<Lease>) -> Vec<Lease> {
        let unheld = held.unheld(leases);
        let (stranded, suspects): (HashSet<Lease>, HashSet<Lease>) = unheld
            .into_iter()
            .partition(|lease| self.suspects.contains(lease));
        self.suspects = suspects;
        let mut stranded: Vec<Lease> = stranded.into_iter().collect();
        stranded.sort();
        stranded
    }
}

/// Keeps this node's leases: renews those it holds and gives back those it does not.
pub(super) struct Keeper<Q> {
    queue: Arc<Q>,
    node: String,
    lease: Duration,
    held: Arc<Held>,
    sweep: Sweep,
}

impl<Q: DeliveryQueue> Keeper<Q> {
    pub(super) fn new(queue: Arc<Q>, config: &DispatcherConfig, held: Arc<Held>) -> Self {
        Self {
            queue,
            node: config.node_id.clone(),
            lease: config.lease,
            held,
            sweep: Sweep::default(),
        }
    }

    /// Extends every lease of this node by a lease's length from now.
    pub(super) async fn renew(&self) -> Result<(), QueueError> {
        let until = now_ms() + self.lease.as_millis() as i64;
        self.queue.renew_leases(&self.node, until).await
    }

    /// One round of the sweep: gives back the leases of this node its dispatcher has not held
    /// for two rounds, and says how many.
    pub(super) async fn sweep(&mut self) -> Result<usize, QueueError> {
        let leases = self.queue.leases(&self.node).await?;
        let stranded = self.sweep.stranded(&self.held, leases);
        if !stranded.is_empty() {
            tracing::warn!(
                deliveries = stranded.len(),
                "giving back deliveries leased to this node that its dispatcher did not hold"
            );
            self.queue.give_back(&self.node, &stranded).await?;
        }
        Ok(stranded.len())
    }
}

/// Renews and sweeps every `lease / 3` until shutdown, waking the claim loop when leases were
/// given back, since their deliveries are due at once.
pub(super) async fn keep_leases<Q: DeliveryQueue>(
    mut keeper: Keeper<Q>,
    waker: Waker,
    shutdown: CancellationToken,
) {
    let every = keeper.lease / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = keeper.renew().await {
            tracing::warn!(error = %e, "failed to renew leases");
        }
        match keeper.sweep().await {
            Ok(0) => {}
            Ok(_) => waker.wake(),
            Err(e) => tracing::warn!(error = %e, "failed to look for stranded leases"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: &str, attempt: u32) -> Lease {
        (id.to_owned(), attempt)
    }

    #[test]
    fn a_lease_unheld_at_two_sweeps_in_a_row_is_stranded() {
        let held = Held::default();
        let mut sweep = Sweep::default();
        assert!(sweep.stranded(&held, vec![lease("msg_a", 1)]).is_empty());
        assert_eq!(
            sweep.stranded(&held, vec![lease("msg_a", 1)]),
            vec![lease("msg_a", 1)]
        );
    }

    #[test]
    fn held_deliveries_and_new_attempts_are_not_stranded() {
        let held = Held::default();
        let mut sweep = Sweep::default();
        sweep.stranded(&held, vec![lease("msg_a", 1), lease("msg_b", 1)]);
        held.insert(["msg_a"]);
        assert!(
            sweep
                .stranded(&held, vec![lease("msg_a", 1), lease("msg_b", 2)])
                .is_empty(),
            "msg_a is held now; msg_b is leased for another attempt"
        );
        held.remove(["msg_a"]);
        assert!(sweep.stranded(&held, vec![lease("msg_a", 1)]).is_empty());
        assert_eq!(
            sweep.stranded(&held, vec![lease("msg_a", 1)]),
            vec![lease("msg_a", 1)]
        );
    }
}
