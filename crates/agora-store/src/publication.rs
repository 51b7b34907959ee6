//! The one way to publish: a write transaction that records a change, its events and their
//! deliveries, and that is committed and handed to this node's dispatcher as one unit.
//!
//! Deliveries the dispatcher has room for are written already leased to this node and handed
//! over in memory once the transaction is durable (see [`Handoff`]). If the commit and the
//! hand-off could be separated, the deliveries would stay leased to a dispatcher that never
//! heard of them. An HTTP handler's future is dropped when its client hangs up, at any await
//! point, so [`Publication::commit`] does both in a task of its own, which the handler only
//! awaits: dropping the handler drops the wait, never the work.

use std::ops::{Deref, DerefMut};

use agora_core::dispatcher::{Handoff, LeasedDelivery, Reservation, Waker};
use agora_core::event::Event;
use sqlx::AnyPool;

use crate::idempotency;
use crate::outbox::{self, Leasing, Routing, Subscribers};
use crate::{begin_on, commit_notifying, durable_begin, Backend, Store, StoreError, Tx};

/// A durable write transaction that may publish events: a forum write, a custom event, a
/// batch, a test delivery. It derefs to its [`Tx`], so the change itself is written with the
/// store's ordinary functions; dropped without [`commit`](Publication::commit), everything in
/// it is rolled back and the places it took in the dispatcher are given back.
#[must_use = "a publication is rolled back unless it is committed"]
pub struct Publication {
    tx: Tx,
    /// How the commit is announced and the leased deliveries handed over.
    publisher: Publisher,
    /// The active webhooks, loaded at the first publish of the transaction.
    subscribers: Option<Subscribers>,
    /// Deliveries written leased to this node, to hand over after the commit.
    handed: Vec<(LeasedDelivery, Reservation)>,
}

/// What a publication needs of its store besides a connection: held by the store and by the
/// group committer, which must not hold the store itself (it stops when the store is gone).
#[derive(Clone)]
pub(crate) struct Publisher {
    pub(crate) write: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) waker: Waker,
    pub(crate) leasing: Leasing,
    /// Notified after each commit, for the event stream ([`Store::published`]).
    pub(crate) published: std::sync::Arc<tokio::sync::Notify>,
    /// SQLite: where idempotency keys are recorded (see [`idempotency::log`]).
    pub(crate) key_log: Option<std::sync::Arc<idempotency::log::KeyLog>>,
}

impl Publisher {
    /// Begins a publication on the write pool.
    pub(crate) async fn begin(&self) -> Result<Publication, StoreError> {
        Ok(Publication {
            tx: begin_on(&self.write, durable_begin(self.backend)).await?,
            publisher: self.clone(),
            subscribers: None,
            handed: Vec::new(),
        })
    }
}

impl Store {
    /// Starts a publication: the durable transaction of every write an API client is told
    /// about (its commit is on disk before it returns). When the running request carries an
    /// idempotency key, its first publication records it first (see [`crate::idempotency`]),
    /// and fails with [`StoreError::IdempotencyKeyTaken`] if another request has.
    pub async fn begin_publication(&self) -> Result<Publication, StoreError> {
        let mut publication = self.publisher().begin().await?;
        idempotency::record_current(&mut publication).await?;
        Ok(publication)
    }

    /// The hand-off a dispatcher of this node takes new deliveries from without claiming them
    /// (see [`Dispatcher::with_handoff`](agora_core::dispatcher::Dispatcher::with_handoff)).
    pub fn handoff(&self) -> Handoff {
        self.leasing.handoff.clone()
    }
}

impl Publication {
    /// Records `event` and one delivery per active webhook that wants it. Answers how many
    /// deliveries it queued.
    pub async fn publish(
        &mut self,
        event: &Event,
        routing: Option<&Routing>,
    ) -> Result<usize, StoreError> {
        Ok(self.publish_all(&[(event, routing)]).await?[0])
    }

    /// Records many events and their deliveries with a few multi-row statements. Answers how
    /// many deliveries each event queued, in order.
    pub async fn publish_all(
        &mut self,
        events: &[(&Event, Option<&Routing>)],
    ) -> Result<Vec<usize>, StoreError> {
        let subscribers = loaded(&mut self.subscribers, &mut self.tx).await?;
        let published = subscribers
            .publish_many(&mut self.tx, events, Some(&self.publisher.leasing))
            .await?;
        self.handed.extend(published.handed);
        Ok(published.counts)
    }

    /// Where this publication records idempotency keys when not in `idempotency_keys`.
    pub(crate) fn key_log(&self) -> Option<std::sync::Arc<idempotency::log::KeyLog>> {
        self.publisher.key_log.clone()
    }

    /// The active webhooks as this transaction sees them, loaded once.
    pub(crate) async fn subscribers(&mut self) -> Result<&Subscribers, StoreError> {
        loaded(&mut self.subscribers, &mut self.tx).await
    }

    /// Records `event` for one webhook only, leased to this node as its first attempt until
    /// `lease_until` (unix ms), for a delivery its caller sends itself (the `test` endpoint).
    /// Answers the delivery's id.
    pub async fn publish_leased_to(
        &mut self,
        event: &Event,
        webhook_id: &str,
        node: &str,
        lease_until: i64,
    ) -> Result<String, StoreError> {
        outbox::publish_leased(&mut self.tx, event, webhook_id, (node, lease_until)).await
    }

    /// Commits, announces the queued deliveries (to this node's dispatcher and, on
    /// PostgreSQL, every other node's) and hands the deliveries written leased to this node's
    /// dispatcher, in a task the caller cannot cancel. If the commit fails, the handed
    /// deliveries are dropped, which gives their places back.
    pub async fn commit(self) -> Result<(), StoreError> {
        let Self {
            tx,
            publisher,
            handed,
            ..
        } = self;
        tokio::spawn(async move {
            commit_notifying(tx, publisher.backend, &publisher.waker).await?;
            publisher.published.notify_one();
            publisher.leasing.handoff.hand(handed);
            Ok(())
        })
        .await
        .map_err(|e| StoreError::internal("the commit's task failed").because(e))?
    }
}

/// The subscribers in `slot`, loaded in `tx` the first time they are asked for.
async fn loaded<'a>(
    slot: &'a mut Option<Subscribers>,
    tx: &mut Tx,
) -> Result<&'a Subscribers, StoreError> {
    match slot {
        Some(subscribers) => Ok(subscribers),
        None => Ok(slot.insert(Subscribers::load(tx).await?)),
    }
}

impl Deref for Publication {
    type Target = Tx;

    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl DerefMut for Publication {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}
