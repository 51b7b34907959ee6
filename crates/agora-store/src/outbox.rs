//! The transactional outbox: an event and one delivery per matching active webhook, written in
//! the same transaction as the change that caused them. Callers publish through a
//! [`Publication`](crate::Publication), whose commit wakes the dispatcher.

use agora_core::dispatcher::{Handoff, LeasedDelivery, Reservation};
use agora_core::event::{Event, EventType};
use agora_core::ids::{new_id, DELIVERY};
use agora_core::subscription::EventPattern;
use agora_core::time::now_ms;
use agora_core::webhook::WebhookFilter;

use std::sync::Arc;

use crate::sqlite::parked::Parked;
use crate::webhooks::Webhook;
use crate::{Backend, Params, Store, StoreError, Tx};

/// Where an event happened, for webhooks whose `filter` restricts categories or tags. Events
/// with no routing (a user registering) pass every filter.
#[derive(Clone, Debug, Default)]
pub struct Routing {
    /// The category of the thread or post.
    pub category_id: Option<String>,
    /// The tags of the thread.
    pub tags: Vec<String>,
}

impl Routing {
    fn passes(&self, filter: &WebhookFilter) -> bool {
        let category_ok = filter.category_ids.is_empty()
            || self
                .category_id
                .as_ref()
                .is_some_and(|c| filter.category_ids.contains(c));
        let tags_ok = filter.tags.is_empty() || self.tags.iter().any(|t| filter.tags.contains(t));
        category_ok && tags_ok
    }
}

/// One active webhook as matching needs it: patterns parsed once.
struct Subscriber {
    id: String,
    patterns: Vec<EventPattern>,
    filter: Option<WebhookFilter>,
}

impl Subscriber {
    fn wants(&self, event_type: &EventType, routing: Option<&Routing>) -> bool {
        let routed = match (routing, &self.filter) {
            (Some(routing), Some(filter)) => routing.passes(filter),
            _ => true,
        };
        routed && self.patterns.iter().any(|p| p.matches(event_type))
    }
}

/// The active webhooks, loaded once and matched against many events of one transaction.
pub(crate) struct Subscribers(Vec<Subscriber>);

impl Subscribers {
    /// Loads the active webhooks as the transaction sees them.
    pub(crate) async fn load(tx: &mut Tx) -> Result<Self, StoreError> {
        Ok(Self::of(Store::active_webhooks(tx).await?))
    }

    /// Matches events against these webhooks.
    fn of(hooks: Vec<Webhook>) -> Self {
        Self(
            hooks
                .into_iter()
                .map(|w| Subscriber {
                    patterns: w.events,
                    filter: w.filter,
                    id: w.id.into(),
                })
                .collect(),
        )
    }

    /// The subscribers that want `event`, routed as `routing` says.
    fn wanting<'a>(
        &'a self,
        event: &'a Event,
        routing: Option<&'a Routing>,
    ) -> impl Iterator<Item = &'a Subscriber> + 'a {
        self.0
            .iter()
            .filter(move |s| s.wants(&event.event_type, routing))
    }

    /// How many deliveries each of `events` queues when published: what the publish will
    /// count, known before it runs.
    pub(crate) fn counts(&self, events: &[(&Event, Option<&Routing>)]) -> Vec<usize> {
        events
            .iter()
            .map(|(event, routing)| self.wanting(event, *routing).count())
            .collect()
    }

    /// How many deliveries `events` would queue, when that is more than `max`: the limit on
    /// one request's work is checked with this before anything is written. Events are matched
    /// only when every webhook wanting every event could go over `max`.
    pub(crate) fn over(&self, events: &[(&Event, Option<&Routing>)], max: usize) -> Option<usize> {
        if events.len().saturating_mul(self.0.len()) <= max {
            return None;
        }
        let deliveries = events
            .iter()
            .map(|(event, routing)| self.wanting(event, *routing).count())
            .sum();
        (deliveries > max).then_some(deliveries)
    }

    /// Records many events and their deliveries with a few multi-row statements. With
    /// `leasing`, the deliveries this node's dispatcher has room for are written leased to it,
    /// and the caller hands them over once the transaction has committed; on SQLite the others
    /// are parked (see the `parked` module) rather than left to a claim.
    pub(crate) async fn publish_many(
        &self,
        tx: &mut Tx,
        events: &[(&Event, Option<&Routing>)],
        leasing: Option<&Leasing>,
    ) -> Result<Published, StoreError> {
        let all: Vec<&Event> = events.iter().map(|(e, _)| *e).collect();
        insert_events(tx, &all).await?;
        let mut rows: Vec<(&Event, &str)> = Vec::new();
        let mut counts = Vec::with_capacity(events.len());
        for (event, routing) in events {
            let before = rows.len();
            rows.extend(
                self.wanting(event, *routing)
                    .map(|s| (*event, s.id.as_str())),
            );
            counts.push(rows.len() - before);
        }
        let ids: Vec<String> = rows.iter().map(|_| new_id(DELIVERY)).collect();
        let backend = Backend::of(tx);
        let (births, reservations): (Vec<Birth<'_>>, Vec<Option<Reservation>>) = rows
            .iter()
            .zip(&ids)
            .map(|((_, webhook_id), id)| match leasing {
                Some(leasing) => leasing.birth(backend, webhook_id, id),
                None => (Birth::Pending, None),
            })
            .unzip();
        queue(tx, &ids, &rows, &births).await?;
        let handed = reservations
            .into_iter()
            .zip(ids)
            .zip(&rows)
            .filter_map(|((reservation, id), (event, webhook_id))| {
                let reservation = reservation?;
                let delivery = LeasedDelivery {
                    id,
                    webhook_id: webhook_id.to_string(),
                    event_id: event.id.to_string(),
                    event_type: event.event_type.as_str().to_owned(),
                    attempt: 1,
                    retries_done: 0,
                };
                Some((delivery, reservation))
            })
            .collect();
        Ok(Published { counts, handed })
    }
}

/// How a publish writes the deliveries it may lease at birth: through the hand-off to this
/// node's dispatcher and, on SQLite, the register of parked deliveries. Cheap to clone.
#[derive(Clone)]
pub struct Leasing {
    pub(crate) handoff: Handoff,
    pub(crate) parked: Arc<Parked>,
}

impl Leasing {
    pub(crate) fn new(handoff: Handoff) -> Self {
        Self {
            handoff,
            parked: Arc::default(),
        }
    }

    /// How the delivery `id` of `webhook_id` is written, with its place in the dispatcher
    /// when it is handed over. Without a connected dispatcher everything is pending, as
    /// nothing could take a lease.
    fn birth(
        &self,
        backend: Backend,
        webhook_id: &str,
        id: &str,
    ) -> (Birth<'_>, Option<Reservation>) {
        let Some((node, until)) = self.handoff.lease() else {
            return (Birth::Pending, None);
        };
        let parking = backend == Backend::Sqlite;
        // A webhook with parked deliveries gets no handed ones: they would lie after its cursor.
        if !(parking && self.parked.holds(webhook_id)) {
            if let Some(reservation) = self.handoff.reserve(webhook_id) {
                return (Birth::Leased(node, until), Some(reservation));
            }
        }
        if parking {
            self.parked.park(webhook_id, id);
            return (Birth::Parked, None);
        }
        (Birth::Pending, None)
    }
}

/// How a new delivery row is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Birth<'a> {
    /// Pending and due now, for a claim.
    Pending,
    /// Leased to this node until then (unix ms), for its first attempt.
    Leased(&'a str, i64),
    /// In flight with no lease owner, for a read of parked deliveries (SQLite).
    Parked,
}

/// What [`Subscribers::publish_many`] queued.
pub(crate) struct Published {
    /// How many deliveries each event queued.
    pub counts: Vec<usize>,
    /// The deliveries written leased, to hand to the dispatcher after the commit.
    pub handed: Vec<(LeasedDelivery, Reservation)>,
}

/// Records an operational event about something `owner` (an API key id) owns, queued only for
/// the webhooks that may hear of it: the owner's own, admin keys' and the operator's. Another
/// tenant's webhook never learns of it, whatever it subscribes to; the event keeps its owner,
/// so the event history and the stream show it to the same keys.
pub(crate) async fn publish_operational(
    tx: &mut Tx,
    event: &Event,
    owner: Option<&str>,
) -> Result<usize, StoreError> {
    let published = Subscribers::of(Store::active_webhooks_seen_by(tx, owner).await?)
        .publish_many(tx, &[(event, None)], None)
        .await?;
    sqlx::query("UPDATE events SET owner_key_id = $1 WHERE id = $2")
        .bind(owner)
        .bind(event.id.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(published.counts[0])
}

/// Records `event` for one webhook only, leased to `node` as its first attempt, for a delivery
/// that is sent right away by the caller (the `test` endpoint). The event is operational: it
/// belongs to the webhook's owner key (see [`publish_operational`]). Returns the delivery id.
pub(crate) async fn publish_leased(
    tx: &mut Tx,
    event: &Event,
    webhook_id: &str,
    lease: (&str, i64),
) -> Result<String, StoreError> {
    insert_events(tx, &[event]).await?;
    sqlx::query(
        "UPDATE events SET owner_key_id = (SELECT owner_key_id FROM webhooks WHERE id = $1) \
         WHERE id = $2",
    )
    .bind(webhook_id)
    .bind(event.id.as_str())
    .execute(&mut **tx)
    .await?;
    let id = new_id(DELIVERY);
    let birth = Birth::Leased(lease.0, lease.1);
    queue(
        tx,
        std::slice::from_ref(&id),
        &[(event, webhook_id)],
        &[birth],
    )
    .await?;
    Ok(id)
}

/// Rows inserted per statement: each statement is a round trip to the writer, which no other
/// write can use meanwhile.
const INSERT_CHUNK: usize = 500;

/// Inserts events, [`INSERT_CHUNK`] to a statement.
async fn insert_events(tx: &mut Tx, events: &[&Event]) -> Result<(), StoreError> {
    const COLS: usize = 4;
    let now = now_ms();
    let backend = Backend::of(tx);
    for chunk in events.chunks(INSERT_CHUNK) {
        let mut params = Params::new(backend);
        let rows = params.rows(chunk.len(), COLS);
        let sql = format!(
            "INSERT{} INTO events (id, type, body, created_at) VALUES {rows}",
            backend.or_fail()
        );
        let mut q = sqlx::query(&sql);
        for event in chunk {
            q = q
                .bind(event.id.to_string())
                .bind(event.event_type.as_str().to_owned())
                .bind(event.to_body())
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Inserts the deliveries `ids` of these (event, webhook) pairs, [`INSERT_CHUNK`] to a
/// statement, each as its [`Birth`] says.
async fn queue(
    tx: &mut Tx,
    ids: &[String],
    pairs: &[(&Event, &str)],
    births: &[Birth<'_>],
) -> Result<(), StoreError> {
    const COLS: usize = 10;
    let now = now_ms();
    let backend = Backend::of(tx);
    for ((chunk_ids, chunk_pairs), chunk_births) in ids
        .chunks(INSERT_CHUNK)
        .zip(pairs.chunks(INSERT_CHUNK))
        .zip(births.chunks(INSERT_CHUNK))
    {
        let mut params = Params::new(backend);
        let rows = params.rows(chunk_ids.len(), COLS);
        let sql = format!(
            "INSERT{} INTO deliveries (id, event_id, webhook_id, event_type, status, due_at, lease_owner, attempts, created_at, updated_at) VALUES {rows}",
            backend.or_fail()
        );
        let mut q = sqlx::query(&sql);
        for ((id, (event, webhook_id)), birth) in
            chunk_ids.iter().zip(chunk_pairs).zip(chunk_births)
        {
            let (status, owner, due, attempts) = match *birth {
                Birth::Pending => ("pending", None, Some(now), 0),
                Birth::Leased(node, until) => (
                    "in_flight",
                    Some(node.to_owned()),
                    backend.lease_due_at(until),
                    1,
                ),
                Birth::Parked => ("in_flight", None, None, 1),
            };
            q = q
                .bind(id.clone())
                .bind(event.id.to_string())
                .bind(webhook_id.to_string())
                .bind(event.event_type.as_str().to_owned())
                .bind(status)
                .bind(due)
                .bind(owner)
                .bind(attempts)
                .bind(now)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_restrict_only_routed_events() {
        let filter = WebhookFilter {
            category_ids: vec!["cat_a".into()],
            tags: vec![],
        };
        let in_a = Routing {
            category_id: Some("cat_a".into()),
            tags: vec![],
        };
        let in_b = Routing {
            category_id: Some("cat_b".into()),
            tags: vec!["x".into()],
        };
        assert!(in_a.passes(&filter));
        assert!(!in_b.passes(&filter));
        let by_tag = WebhookFilter {
            category_ids: vec![],
            tags: vec!["x".into()],
        };
        assert!(in_b.passes(&by_tag));
        assert!(!in_a.passes(&by_tag));
    }
}
