//! Group commit for publishes: concurrent requests (single events, and on SQLite batches too)
//! share one publication, and so one fsync, instead of queueing for the writer one by one.
//! Each caller is answered only after the commit that made its events durable; a batch is
//! never split, so it is recorded whole or not at all.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use agora_core::event::Event;

use crate::idempotency::{self, Claim, ClaimState};
use crate::outbox::Routing;
use crate::publication::Publisher;
use crate::{Backend, Limit, Store, StoreError};

/// Events joined into one transaction before it is closed to more callers (a batch that
/// crosses the mark still joins whole).
const MAX_GROUP_EVENTS: usize = 2048;

/// Callers waiting to join a group at most.
const MAX_WAITING: usize = 2048;

/// What a caller gets back: its events, and how many deliveries each queued.
type Answer = Result<(Vec<Event>, Vec<usize>), StoreError>;

/// The events of one caller, as the publish takes them.
type Pairs<'a> = Vec<(&'a Event, Option<&'a Routing>)>;

/// One waiting publish: an event, or a batch of them, and the request's idempotency key.
pub(crate) struct Job {
    events: Vec<(Event, Option<Routing>)>,
    claim: Option<Arc<Claim>>,
    reply: oneshot::Sender<Answer>,
}

/// The sending side, held by every clone of the store.
pub(crate) type Jobs = mpsc::Sender<Job>;

/// Starts the committer on the write pool, on `runtime` (the writer thread's on SQLite); it
/// stops when every store clone (the senders) is gone.
pub(crate) fn start(publisher: Publisher, max_deliveries: usize, runtime: &Handle) -> Jobs {
    let (tx, mut rx) = mpsc::channel::<Job>(MAX_WAITING);
    runtime.spawn(async move {
        let mut group = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut events = first.events.len();
            group.push(first);
            while events < MAX_GROUP_EVENTS {
                let Ok(job) = rx.try_recv() else { break };
                events += job.events.len();
                group.push(job);
            }
            metrics::histogram!(crate::metrics::GROUP_COMMIT_EVENTS).record(events as f64);
            let callers: Vec<Pairs<'_>> = group
                .iter()
                .map(|job| {
                    job.events
                        .iter()
                        .map(|(e, routing)| (e, routing.as_ref()))
                        .collect()
                })
                .collect();
            let claims: Vec<_> = group.iter().map(|job| job.claim.clone()).collect();
            let committed = commit_events(&publisher, &callers, &claims, max_deliveries).await;
            let answers = match committed {
                Ok(answers) => answers,
                Err(e) => {
                    for job in group.drain(..) {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                    continue;
                }
            };
            for (job, answer) in group.drain(..).zip(answers) {
                let events = job.events.into_iter().map(|(event, _)| event).collect();
                let _ = job.reply.send(answer.map(|queued| (events, queued)));
            }
        }
    });
    tx
}

/// Publishes the events of `callers` in one publication. Answers each caller in order: how
/// many deliveries each of its events queued, or [`Limit::DeliveriesPerRequest`] (and nothing
/// of it written) when its events would queue more than `max_deliveries`, as the transaction
/// sees the webhooks. A caller whose idempotency key (`claims`, one per caller) another
/// request recorded is answered [`StoreError::IdempotencyKeyTaken`], nothing of it written.
async fn commit_events(
    publisher: &Publisher,
    callers: &[Pairs<'_>],
    claims: &[Option<Arc<Claim>>],
    max_deliveries: usize,
) -> Result<Vec<Result<Vec<usize>, StoreError>>, StoreError> {
    let mut publication = publisher.begin().await?;
    let subscribers = publication.subscribers().await?;
    let mut allowed: Vec<Result<(), StoreError>> = callers
        .iter()
        .map(|events| {
            let Some(deliveries) = subscribers.over(events, max_deliveries) else {
                return Ok(());
            };
            Err(StoreError::Limit(
                Limit::DeliveriesPerRequest,
                format!(
                    "these events would create {deliveries} deliveries (events times the \
                     webhooks each matches); one request may create at most {max_deliveries}: \
                     send fewer events at a time"
                ),
            ))
        })
        .collect();
    // An idempotent publish's answer is rendered from the counts the publish will make, and
    // recorded with its key in one statement, in the transaction of its events.
    let keyed: Vec<(&Claim, Option<(u16, String)>)> = allowed
        .iter()
        .zip(claims)
        .zip(callers)
        .filter_map(|((allowed, claim), events)| {
            let claim = allowed.as_ref().ok().and(claim.as_deref())?;
            let published: Vec<&Event> = events.iter().map(|(event, _)| *event).collect();
            Some((claim, claim.answer(&published, &subscribers.counts(events))))
        })
        .collect();
    idempotency::record_all(&mut publication, &keyed).await?;
    for (allowed, claim) in allowed.iter_mut().zip(claims) {
        if claim
            .as_ref()
            .is_some_and(|claim| claim.state() == ClaimState::Taken)
        {
            *allowed = Err(StoreError::IdempotencyKeyTaken);
        }
    }
    let events: Vec<_> = callers
        .iter()
        .zip(&allowed)
        .filter(|(_, allowed)| allowed.is_ok())
        .flat_map(|(events, _)| events.iter().copied())
        .collect();
    let counts = publication.publish_all(&events).await?;
    let mut counts = counts.into_iter();
    let answers: Vec<Result<Vec<usize>, StoreError>> = callers
        .iter()
        .zip(allowed)
        .map(|(events, allowed)| allowed.map(|()| counts.by_ref().take(events.len()).collect()))
        .collect();
    publication.commit().await?;
    Ok(answers)
}

impl Store {
    /// Records one event and its deliveries durably, sharing the transaction with concurrent
    /// callers. Returns how many deliveries were queued.
    pub async fn publish_event(
        &self,
        event: Event,
        routing: Option<Routing>,
    ) -> Result<usize, StoreError> {
        let (_, queued) = self.join_group(vec![(event, routing)]).await?;
        Ok(queued.first().copied().unwrap_or(0))
    }

    /// Records a batch of events and their deliveries durably, all or none. Answers the
    /// events, with how many deliveries each queued.
    ///
    /// On SQLite the batch shares the transaction with concurrent callers: there is one
    /// writer, and batches in transactions of their own each waited for it and paid a `fsync`.
    /// On PostgreSQL transactions run side by side, so a batch, large enough to be a group of
    /// its own, commits alone: joining the group made batched ingest a fifth slower there.
    pub async fn publish_batch(
        &self,
        events: Vec<Event>,
    ) -> Result<(Vec<Event>, Vec<usize>), StoreError> {
        if self.backend == Backend::Sqlite {
            return self
                .join_group(events.into_iter().map(|event| (event, None)).collect())
                .await;
        }
        let pairs: Pairs<'_> = events.iter().map(|event| (event, None)).collect();
        let mut answers = commit_events(
            &self.publisher(),
            std::slice::from_ref(&pairs),
            &[idempotency::unused_claim()],
            self.options.max_deliveries_per_request,
        )
        .await?;
        let queued = answers.pop().unwrap_or_else(|| Ok(Vec::new()))?;
        Ok((events, queued))
    }

    /// Hands `events` to the group committer and waits for the commit that holds them. Once
    /// handed over they are committed even if the caller stops waiting.
    async fn join_group(&self, events: Vec<(Event, Option<Routing>)>) -> Answer {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::unavailable("the store is shutting down");
        let claim = idempotency::unused_claim();
        self.group_commit
            .send(Job {
                events,
                claim,
                reply,
            })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}
