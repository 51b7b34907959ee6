//! Deliveries leased as they are queued, and handed to this node's dispatcher after the commit.
//!
//! A delivery queued the usual way is written pending and due, then found by a claim, which
//! reads it back and writes its lease: two more statements on the single SQLite writer for
//! every delivery, and a wait for the claim loop. When the dispatcher has room for a webhook,
//! the store instead writes the delivery already leased to this node for its first attempt
//! (as the `test` endpoint's delivery is) and, once the transaction is durable, hands it over
//! in memory. The database stays the source of truth: a handed delivery is an ordinary leased
//! one, so a crash or a shutdown before its attempt is recorded puts it back as any lease is.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;

use super::held::Held;
use super::limiter::{Admission, Limiter};
use super::queue::LeasedDelivery;
use crate::time::now_ms;

/// Leased deliveries on their way from a commit to the dispatcher, with their admissions.
pub(super) type Handed = Vec<(LeasedDelivery, Admission)>;

/// The store's side of the hand-off, shared between the store (which holds it from the start)
/// and the dispatcher (which connects it when it runs). Until then, and on nodes that run no
/// dispatcher, nothing is reserved and every delivery is queued the usual way.
#[derive(Clone, Default)]
pub struct Handoff(Arc<OnceLock<Receiver>>);

/// The running dispatcher the hand-off leads to.
struct Receiver {
    limiter: Arc<Limiter>,
    /// Where handed deliveries are noted as held, for the sweep of stranded leases.
    held: Arc<Held>,
    batches: mpsc::UnboundedSender<Handed>,
    node_id: String,
    lease: Duration,
}

/// A delivery's place in the dispatcher's memory, taken before the delivery is written leased.
/// Dropped without being handed (the transaction failed), it gives the place back.
pub struct Reservation {
    limiter: Arc<Limiter>,
    webhook_id: String,
    admission: Option<Admission>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.admission.take().is_some() {
            self.limiter.release(std::slice::from_ref(&self.webhook_id));
        }
    }
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("connected", &self.0.get().is_some())
            .finish()
    }
}

impl Handoff {
    /// Connects the running dispatcher; a second dispatcher on the same store is not connected.
    pub(super) fn connect(
        &self,
        limiter: Arc<Limiter>,
        held: Arc<Held>,
        batches: mpsc::UnboundedSender<Handed>,
        node_id: String,
        lease: Duration,
    ) {
        let _ = self.0.set(Receiver {
            limiter,
            held,
            batches,
            node_id,
            lease,
        });
    }

    /// Takes a place for one delivery of `webhook_id`, when the dispatcher has room for it and
    /// the webhook is neither full nor failing. With one, the delivery is written leased to
    /// [`Handoff::lease`] and must be [handed](Handoff::hand) after the commit.
    pub fn reserve(&self, webhook_id: &str) -> Option<Reservation> {
        let receiver = self.0.get().filter(|r| !r.batches.is_closed())?;
        let admission = receiver.limiter.try_admit(webhook_id)?;
        Some(Reservation {
            limiter: receiver.limiter.clone(),
            webhook_id: webhook_id.to_owned(),
            admission: Some(admission),
        })
    }

    /// The node and the lease expiry (unix ms) a reserved delivery is written with.
    pub fn lease(&self) -> Option<(&str, i64)> {
        let receiver = self.0.get()?;
        Some((
            &receiver.node_id,
            now_ms() + receiver.lease.as_millis() as i64,
        ))
    }

    /// Hands deliveries written leased, once their transaction is durable, to the dispatcher.
    /// If it has stopped meanwhile, they stay leased in the database and come back as any
    /// lease does (at shutdown, at the next start, or when the lease runs out).
    pub fn hand(&self, deliveries: Vec<(LeasedDelivery, Reservation)>) {
        let Some(receiver) = self.0.get() else {
            return;
        };
        let handed: Handed = deliveries
            .into_iter()
            .filter_map(|(delivery, mut reservation)| {
                Some((delivery, reservation.admission.take()?))
            })
            .collect();
        if handed.is_empty() {
            return;
        }
        let count = handed.len();
        receiver
            .held
            .insert(handed.iter().map(|(d, _)| d.id.as_str()));
        if let Err(mpsc::error::SendError(lost)) = receiver.batches.send(handed) {
            receiver
                .held
                .remove(lost.iter().map(|(d, _)| d.id.as_str()));
            let webhooks: Vec<String> = lost.into_iter().map(|(d, _)| d.webhook_id).collect();
            receiver.limiter.release(&webhooks);
            tracing::debug!(
                deliveries = count,
                "dispatcher stopped; handed deliveries stay leased"
            );
        }
    }

    /// Notes a delivery leased to this node that its caller sends itself (the `test`
    /// endpoint's), so that the sweep of stranded leases leaves it alone until the guard is
    /// dropped, once its attempt is recorded. Take it before the lease commits.
    pub fn hold(&self, delivery_id: &str) -> Holding {
        let held = self.0.get().map(|receiver| receiver.held.clone());
        if let Some(held) = &held {
            held.insert([delivery_id]);
        }
        Holding {
            held,
            id: delivery_id.to_owned(),
        }
    }
}

/// A delivery its caller sends outside the dispatcher, noted as held while this lives.
#[must_use = "the delivery counts as held only while the guard lives"]
pub struct Holding {
    held: Option<Arc<Held>>,
    id: String,
}

impl Drop for Holding {
    fn drop(&mut self) {
        if let Some(held) = &self.held {
            held.remove([self.id.as_str()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatcher::DispatcherConfig;

    fn connected(max_in_memory: usize) -> (Handoff, mpsc::UnboundedReceiver<Handed>) {
        let handoff = Handoff::default();
        let limiter = Arc::new(Limiter::new(&DispatcherConfig {
            max_in_memory,
            ..DispatcherConfig::default()
        }));
        let (tx, rx) = mpsc::unbounded_channel();
        handoff.connect(
            limiter,
            Arc::default(),
            tx,
            "node_a".into(),
            Duration::from_secs(60),
        );
        (handoff, rx)
    }

    fn delivery(id: &str) -> LeasedDelivery {
        LeasedDelivery {
            id: id.into(),
            webhook_id: "wh_a".into(),
            event_id: "evt_1".into(),
            event_type: "thread.created".into(),
            attempt: 1,
            retries_done: 0,
        }
    }

    #[test]
    fn nothing_is_reserved_before_a_dispatcher_connects() {
        let handoff = Handoff::default();
        assert!(handoff.reserve("wh_a").is_none());
        assert!(handoff.lease().is_none());
    }

    #[test]
    fn a_reservation_not_handed_gives_its_place_back() {
        let (handoff, _rx) = connected(1);
        let reservation = handoff.reserve("wh_a").expect("room for one");
        assert!(handoff.reserve("wh_a").is_none(), "memory is full");
        drop(reservation);
        assert!(handoff.reserve("wh_a").is_some(), "the place came back");
    }

    #[test]
    fn handed_deliveries_reach_the_dispatcher_and_keep_their_place() {
        let (handoff, mut rx) = connected(1);
        let reservation = handoff.reserve("wh_a").expect("room for one");
        handoff.hand(vec![(delivery("msg_1"), reservation)]);
        let batch = rx.try_recv().expect("handed over");
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].0.id, "msg_1");
        assert!(
            handoff.reserve("wh_a").is_none(),
            "held until its attempt is recorded"
        );
    }

    #[test]
    fn a_stopped_dispatcher_takes_nothing_more() {
        let (handoff, rx) = connected(10);
        let reservation = handoff.reserve("wh_a").expect("room");
        drop(rx);
        handoff.hand(vec![(delivery("msg_1"), reservation)]);
        assert!(handoff.reserve("wh_a").is_none());
    }
}
