//! Group commit for publishes: concurrent requests (single events, and on SQLite batches too)
//! share one transaction, and so one fsync, instead of queueing for the writer one by one.
//! Each caller is answered only after the commit that made its events durable; a batch is
//! never split, so it is recorded whole or not at all.

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use agora_core::event::Event;

use crate::outbox::Routing;
use crate::publication::Publisher;
use crate::{Backend, Store, StoreError};

/// Events joined into one transaction before it is closed to more callers (a batch that
/// crosses the mark still joins whole).
const MAX_GROUP_EVENTS: usize = 2048;

/// Callers waiting to join a group at most.
const MAX_WAITING: usize = 2048;

/// What a caller gets back: its events, and how many deliveries each queued.
type Answer = Result<(Vec<Event>, Vec<usize>), StoreError>;

/// One waiting publish: an event, or a batch of them.
pub(crate) struct Job {
    events: Vec<(Event, Option<Routing>)>,
    reply: oneshot::Sender<Answer>,
}

/// The sending side, held by every clone of the store.
pub(crate) type Jobs = mpsc::Sender<Job>;

/// Starts the committer, on `runtime` (the writer thread's on SQLite); it stops when every
/// store clone (the senders) is gone.
pub(crate) fn start(publisher: Publisher, runtime: &Handle) -> Jobs {
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
            let pairs: Vec<_> = group
                .iter()
                .flat_map(|job| job.events.iter().map(|(e, routing)| (e, routing.as_ref())))
                .collect();
            let committed = commit_events(&publisher, &pairs).await;
            let mut counts = match committed {
                Ok(counts) => counts.into_iter(),
                Err(e) => {
                    for job in group.drain(..) {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                    continue;
                }
            };
            for job in group.drain(..) {
                let queued = counts.by_ref().take(job.events.len()).collect();
                let events = job.events.into_iter().map(|(event, _)| event).collect();
                let _ = job.reply.send(Ok((events, queued)));
            }
        }
    });
    tx
}

/// Publishes `events` in one publication; answers how many deliveries each event queued, in
/// order.
async fn commit_events(
    publisher: &Publisher,
    events: &[(&Event, Option<&Routing>)],
) -> Result<Vec<usize>, StoreError> {
    let mut publication = publisher.begin().await?;
    let counts = publication.publish_all(events).await?;
    publication.commit().await?;
    Ok(counts)
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
    /// its own, commits alone: joining the group serialized a node's batches there.
    pub async fn publish_batch(
        &self,
        events: Vec<Event>,
    ) -> Result<(Vec<Event>, Vec<usize>), StoreError> {
        if self.backend == Backend::Sqlite {
            return self
                .join_group(events.into_iter().map(|event| (event, None)).collect())
                .await;
        }
        let pairs: Vec<_> = events.iter().map(|event| (event, None)).collect();
        let queued = commit_events(&self.publisher(), &pairs).await?;
        Ok((events, queued))
    }

    /// Hands `events` to the group committer and waits for the commit that holds them. Once
    /// handed over they are committed even if the caller stops waiting.
    async fn join_group(&self, events: Vec<(Event, Option<Routing>)>) -> Answer {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::unavailable("the store is shutting down");
        self.group_commit
            .send(Job { events, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}
