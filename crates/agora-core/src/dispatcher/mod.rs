//! The dispatcher: moves due deliveries from the queue to their receivers.
//!
//! ```text
//!   commit ──wake──▶ claim loop ──▶ batch load ──▶ webhook lane (its workers) ──▶ recorder ──▶ queue
//!     │              ▲   (poll fallback)  ▲                                                (batched)
//!     └──hand-off────┼────────────────────┘
//!                    └──────────────────────── capacity freed ◀─────────────────────────────┘
//! ```
//!
//! - Deliveries the store wrote already leased to this node, because it had room for them,
//!   are handed over after their commit and join at the batch load without a claim
//!   ([`Handoff`]).
//! - The claim loop leases due deliveries in batches and hands each batch to a task that loads
//!   its bodies and webhook settings, so claiming goes on meanwhile. A webhook that already holds
//!   [`DispatcherConfig::max_queued_per_webhook`] deliveries in memory is skipped by the claim,
//!   so a hanging receiver cannot hoard work, and nobody else waits behind it.
//! - Each webhook has a lane: its loaded deliveries in order, sent by up to
//!   [`DispatcherConfig::max_concurrency_per_webhook`] workers, which bounds concurrent requests
//!   to one receiver.
//! - Finished attempts go to one recorder task that writes them in batches, so a busy node
//!   makes one transaction for many attempts; a small batch waits a few milliseconds for more.
//! - Leases are renewed while the work is held; a node that dies stops renewing and its work
//!   becomes due again when the lease runs out. A lease this node holds but its dispatcher
//!   does not is given back by a sweep (`held.rs`).

mod handoff;
mod headers;
mod held;
mod lane;
mod limiter;
pub mod queue;
pub mod sender;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::handoff::Handed;
pub use self::handoff::{Handoff, Holding, Reservation};
pub use self::headers::{derived_headers, RecordedHeaders};
pub use self::held::Lease;
use self::held::{Held, Sweep};
use self::lane::{Place, Work};
use self::limiter::{Admission, Gate, Limiter};
pub use self::queue::{
    AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryQueue, LeasedDelivery, NextState,
    QueueError, WebhookSettings,
};
pub use self::sender::{Sender, SenderConfig, Target};
use crate::time::now_ms;

/// How the dispatcher paces itself.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Written as the lease owner; unique per process.
    pub node_id: String,
    /// Concurrent requests to one webhook.
    pub max_concurrency_per_webhook: usize,
    /// Deliveries of one webhook held in memory (sending or waiting in its lane).
    pub max_queued_per_webhook: usize,
    /// Deliveries held in memory in all, which bounds memory whatever the backlog.
    pub max_in_memory: usize,
    /// Deliveries claimed per query.
    pub claim_batch: usize,
    /// How often to look for due work when nothing wakes the dispatcher (retries coming due,
    /// expired leases of dead nodes, commits made by other nodes).
    pub poll_interval: Duration,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// Consecutive endpoint failures that open a webhook's circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker waits before letting one probe through.
    pub breaker_cooldown: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            node_id: crate::ids::new_id("node"),
            max_concurrency_per_webhook: 32,
            max_queued_per_webhook: 2048,
            max_in_memory: 20_000,
            claim_batch: 4096,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(10),
        }
    }
}

/// Wakes the dispatcher when new work was committed, so that latency does not depend on the
/// poll interval. Cheap to clone; waking an awake dispatcher costs nothing.
#[derive(Clone, Debug, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    /// Says there may be new due work.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// The dispatcher of one node.
pub struct Dispatcher<Q> {
    queue: Arc<Q>,
    sender: Sender,
    config: DispatcherConfig,
    waker: Waker,
    handoff: Option<Handoff>,
}

impl<Q: DeliveryQueue> Dispatcher<Q> {
    /// A dispatcher over `queue`, woken through `waker`.
    pub fn new(queue: Arc<Q>, sender: Sender, config: DispatcherConfig, waker: Waker) -> Self {
        Self {
            queue,
            sender,
            config,
            waker,
            handoff: None,
        }
    }

    /// Takes the deliveries the store writes leased to this node through `handoff`, so they
    /// skip the claim (see [`Handoff`]).
    pub fn with_handoff(mut self, handoff: Handoff) -> Self {
        self.handoff = Some(handoff);
        self
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets attempts in flight finish
    /// (each bounded by its timeout), records them, and gives back the leases it still holds.
    pub async fn run(self, shutdown: CancellationToken) {
        let limiter = Arc::new(Limiter::new(&self.config));
        let held = Arc::new(Held::default());
        let tasks = TaskTracker::new();
        let (record_tx, record_rx) = mpsc::unbounded_channel();
        let sending = Handle::current();
        let bookkeeping = self
            .queue
            .bookkeeping_runtime()
            .unwrap_or_else(|| sending.clone());
        let recorder = bookkeeping.spawn(record_loop(
            self.queue.clone(),
            record_rx,
            Release {
                limiter: limiter.clone(),
                held: held.clone(),
            },
            self.waker.clone(),
            shutdown.clone(),
        ));
        let renewer = tokio::spawn(renew_loop(
            self.queue.clone(),
            self.config.clone(),
            held.clone(),
            self.waker.clone(),
            shutdown.clone(),
        ));
        // Deliveries still waiting in their lanes are dropped, unsent, at shutdown.
        let closer = tokio::spawn({
            let (limiter, shutdown) = (limiter.clone(), shutdown.clone());
            async move {
                shutdown.cancelled().await;
                limiter.close();
            }
        });
        let batches = BatchStart {
            queue: self.queue.clone(),
            attempts: Arc::new(Attempts {
                sender: self.sender,
                limiter: limiter.clone(),
                record_tx,
            }),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
            held: held.clone(),
        };
        let handed = self.handoff.map(|handoff| {
            let (handed_tx, handed_rx) = mpsc::unbounded_channel();
            handoff.connect(
                limiter,
                held,
                handed_tx,
                self.config.node_id.clone(),
                self.config.lease,
            );
            bookkeeping.spawn(take_handed(handed_rx, batches.clone(), sending.clone()))
        });
        let claimer = ClaimLoop {
            config: self.config.clone(),
            waker: self.waker,
            sending,
            batches,
        };
        // The claim loop ends when shutdown is cancelled. Its panic is the dispatcher's, as when
        // it ran in this task; it cannot be cancelled while this task holds the queue (the
        // writer runtime lives as long as the store).
        if let Err(e) = bookkeeping.spawn(claimer.run()).await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }

        if let Some(handed) = handed {
            let _ = handed.await;
        }
        let _ = closer.await;
        tasks.close();
        tasks.wait().await;
        let _ = recorder.await;
        let _ = renewer.await;
        if let Err(e) = self.queue.release_leases(&self.config.node_id).await {
            tracing::warn!(error = %e, "failed to release leases at shutdown; they will expire");
        }
    }
}

/// The loop that leases due work and starts its delivery on the sending runtime.
struct ClaimLoop<Q> {
    config: DispatcherConfig,
    waker: Waker,
    sending: Handle,
    /// What every claimed batch is started with; the loop claims through the same queue,
    /// limiter and shutdown token.
    batches: BatchStart<Q>,
}

impl<Q: DeliveryQueue> ClaimLoop<Q> {
    /// Claims until shutdown is cancelled.
    async fn run(self) {
        let Self {
            config,
            waker,
            sending,
            batches,
        } = self;
        let BatchStart {
            queue,
            attempts,
            shutdown,
            tasks,
            held,
        } = &batches;
        let limiter = &attempts.limiter;
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let room = limiter.room();
            let claimed = if room == 0 {
                Ok(Vec::new())
            } else {
                let now = now_ms();
                let limit = room.min(config.claim_batch);
                queue
                    .claim(ClaimRequest {
                        node: config.node_id.clone(),
                        limit,
                        now,
                        lease_until: now + config.lease.as_millis() as i64,
                        skip_webhooks: limiter.saturated(),
                    })
                    .await
            };
            let full_batch = match claimed {
                Ok(batch) => {
                    backoff.reset();
                    let full = batch.len() == room.min(config.claim_batch) && room > 0;
                    if !batch.is_empty() {
                        held.insert(batch.iter().map(|leased| leased.id.as_str()));
                        let admitted = batch
                            .into_iter()
                            .map(|leased| {
                                let admission = limiter.admit(&leased.webhook_id);
                                (leased, admission)
                            })
                            .collect();
                        tasks.spawn_on(batches.clone().run(admitted), &sending);
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
async fn take_handed<Q: DeliveryQueue>(
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

/// What a claimed batch needs to get going, apart from the claim loop: the claim loop goes on
/// claiming while the batch's bodies and webhook settings load.
struct BatchStart<Q> {
    queue: Arc<Q>,
    attempts: Arc<Attempts>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Where claimed deliveries are noted as held, for the sweep.
    held: Arc<Held>,
}

/// What every worker uses, shared: one reference count per worker instead of a clone of each
/// (the sender's own clone copies its strings and its retry schedule).
struct Attempts {
    sender: Sender,
    limiter: Arc<Limiter>,
    record_tx: mpsc::UnboundedSender<AttemptRecord>,
}

impl Attempts {
    /// Sends its lane's deliveries one after another until the lane is empty or closed.
    async fn work(&self, mut place: Place) {
        while let Some(work) = place.next() {
            self.make(work).await;
        }
    }

    /// Makes the attempt (or defers it, if the webhook's breaker says so) and hands its record
    /// to the recorder.
    async fn make(&self, Work { delivery, target }: Work) {
        let record = match self.limiter.gate(&delivery.webhook_id) {
            Gate::Send => self.sender.attempt_to(&delivery, &target).await,
            Gate::Defer(until) => {
                deferred(&delivery.id, &delivery.webhook_id, delivery.attempt, until)
            }
        };
        self.limiter.observe(&record);
        let _ = self.record_tx.send(record);
    }
}

// Not derived: that would ask `Q: Clone`, and only the `Arc` around the queue is cloned.
impl<Q> Clone for BatchStart<Q> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            attempts: self.attempts.clone(),
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
            held: self.held.clone(),
        }
    }
}

impl<Q: DeliveryQueue> BatchStart<Q> {
    /// Loads the batch and queues each delivery in its webhook's lane, starting workers where
    /// the lane has room for more. Deliveries that cannot be loaded
    /// (storage down, webhook deleted meanwhile) are put back un-attempted through the
    /// recorder, which also frees their place in the limiter.
    async fn run(self, admitted: Vec<(LeasedDelivery, Admission)>) {
        let (leased, admissions): (Vec<LeasedDelivery>, Vec<Admission>) =
            admitted.into_iter().unzip();
        let loaded = match self.queue.load(&leased).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!(error = %e, deliveries = leased.len(), "failed to load claimed deliveries; putting them back");
                Vec::new()
            }
        };
        // Loaded in the order leased, with the ones that could not be loaded left out.
        let mut loaded = loaded.into_iter().peekable();
        let retry_at = now_ms() + LOAD_RETRY.as_millis() as i64;
        let mut targets: HashMap<String, Arc<Target>> = HashMap::new();
        for (leased, admission) in leased.into_iter().zip(admissions) {
            let Some(delivery) = loaded.next_if(|d| d.id == leased.id) else {
                let _ = self.attempts.record_tx.send(deferred(
                    &leased.id,
                    &leased.webhook_id,
                    leased.attempt,
                    retry_at,
                ));
                continue;
            };
            let target = match targets.get(&delivery.webhook.url) {
                Some(target) => target.clone(),
                None => {
                    let target = Arc::new(self.attempts.sender.target(&delivery.webhook.url));
                    targets.insert(delivery.webhook.url.clone(), target.clone());
                    target
                }
            };
            if let Some(place) = admission.queue(Work { delivery, target }) {
                let attempts = self.attempts.clone();
                self.tasks.spawn(async move { attempts.work(place).await });
            }
        }
    }
}

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

/// How long a delivery that could not be loaded waits before it is claimed again.
const LOAD_RETRY: Duration = Duration::from_secs(1);

/// The record of a delivery put back without an attempt, due again at `until`.
fn deferred(delivery_id: &str, webhook_id: &str, attempt: u32, until: i64) -> AttemptRecord {
    AttemptRecord {
        delivery_id: delivery_id.to_owned(),
        webhook_id: webhook_id.to_owned(),
        attempt,
        started_at: now_ms(),
        duration_ms: 0,
        request_headers: RecordedHeaders::default(),
        response_status: None,
        response_body: None,
        error: None,
        next: NextState::Deferred(until),
    }
}

/// Writes finished attempts in batches, retrying a batch until the store takes it: an attempt
/// made is never forgotten while the process lives (and if it dies, the lease brings the
/// delivery back).
async fn record_loop<Q: DeliveryQueue>(
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
        let webhooks: Vec<String> = batch.iter().map(|r| r.webhook_id.clone()).collect();
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
        release.recorded(&attempts, &webhooks);
        waker.wake();
    }
}

/// What a recorded attempt frees: its delivery's place in the limiter, and its note as held.
struct Release {
    limiter: Arc<Limiter>,
    held: Arc<Held>,
}

impl Release {
    fn recorded(&self, attempts: &[AttemptRecord], webhooks: &[String]) {
        self.held
            .remove(attempts.iter().map(|a| a.delivery_id.as_str()));
        self.limiter.release(webhooks);
    }
}

/// Keeps this node's leases alive while it holds work, and gives back those it holds in the
/// store but not in memory (see `held.rs`).
async fn renew_loop<Q: DeliveryQueue>(
    queue: Arc<Q>,
    config: DispatcherConfig,
    held: Arc<Held>,
    waker: Waker,
    shutdown: CancellationToken,
) {
    let every = config.lease / 3;
    let mut sweep = Sweep::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        let until = now_ms() + config.lease.as_millis() as i64;
        if let Err(e) = queue.renew_leases(&config.node_id, until).await {
            tracing::warn!(error = %e, "failed to renew leases");
        }
        match give_back_stranded(&*queue, &config.node_id, &held, &mut sweep).await {
            Ok(0) => {}
            Ok(_) => waker.wake(),
            Err(e) => tracing::warn!(error = %e, "failed to look for stranded leases"),
        }
    }
}

/// One round of the sweep: gives back the leases of `node` its dispatcher has not held for two
/// rounds.
async fn give_back_stranded<Q: DeliveryQueue>(
    queue: &Q,
    node: &str,
    held: &Held,
    sweep: &mut Sweep,
) -> Result<usize, QueueError> {
    let stranded = sweep.stranded(held, queue.leases(node).await?);
    if !stranded.is_empty() {
        tracing::warn!(
            deliveries = stranded.len(),
            "giving back deliveries leased to this node that its dispatcher did not hold"
        );
        queue.give_back(node, &stranded).await?;
    }
    Ok(stranded.len())
}

/// Exponential backoff for storage errors: 50 ms doubling to 5 s.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        self.0 = (self.0 + 1).min(7);
        Duration::from_millis(50 << (self.0 - 1)).min(Duration::from_secs(5))
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}
