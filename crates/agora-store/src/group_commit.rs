//! Group commit for single-event publishes: concurrent requests share one transaction, and so
//! one fsync, instead of queueing for the writer one by one. Each caller is answered only after
//! the commit that made its event durable.

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use agora_core::event::Event;

use crate::outbox::{Leasing, Routing, Subscribers};
use crate::{begin_on, commit_notifying, durable_begin, Backend, Store, StoreError};
use agora_core::dispatcher::Waker;
use sqlx::AnyPool;

/// Publishes joined into one transaction at most.
const MAX_GROUP: usize = 512;

/// One waiting publish.
pub(crate) struct Job {
    event: Event,
    routing: Option<Routing>,
    reply: oneshot::Sender<Result<usize, StoreError>>,
}

/// The sending side, held by every clone of the store.
pub(crate) type Jobs = mpsc::Sender<Job>;

/// Starts the committer on the write pool, on `runtime` (the writer thread's on SQLite); it
/// stops when every store clone (the senders) is gone.
pub(crate) fn start(
    write: AnyPool,
    backend: Backend,
    waker: Waker,
    leasing: Leasing,
    runtime: &Handle,
) -> Jobs {
    let (tx, mut rx) = mpsc::channel::<Job>(4 * MAX_GROUP);
    runtime.spawn(async move {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
            let outcome = commit_group(&write, backend, &waker, &leasing, &group).await;
            for (job, result) in group.drain(..).zip(outcome) {
                let _ = job.reply.send(result);
            }
        }
    });
    tx
}

/// Commits every job's event in one transaction; on failure every job gets the error.
async fn commit_group(
    write: &AnyPool,
    backend: Backend,
    waker: &Waker,
    leasing: &Leasing,
    group: &[Job],
) -> Vec<Result<usize, StoreError>> {
    let attempt = async {
        let mut tx = begin_on(write, durable_begin(backend)).await?;
        let events: Vec<_> = group
            .iter()
            .map(|j| (&j.event, j.routing.as_ref()))
            .collect();
        let published = Subscribers::load(&mut tx)
            .await?
            .publish_many(&mut tx, &events, Some(leasing))
            .await?;
        commit_notifying(tx, backend, waker).await?;
        leasing.handoff.hand(published.handed);
        Ok::<_, StoreError>(published.counts)
    };
    match attempt.await {
        Ok(queued) => queued.into_iter().map(Ok).collect(),
        Err(e) => group.iter().map(|_| Err(e.duplicate())).collect(),
    }
}

impl Store {
    /// Records one event and its deliveries durably, sharing the transaction with concurrent
    /// callers. Returns how many deliveries were queued.
    pub async fn publish_event(
        &self,
        event: Event,
        routing: Option<Routing>,
    ) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            event,
            routing,
            reply,
        };
        let closed = || StoreError::Unavailable("the store is shutting down".into());
        self.group_commit.send(job).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}
