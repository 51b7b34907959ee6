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
//!
//! Where each part lives: the claim loop and the hand-off's intake in `claim.rs`, a batch's
//! claim, load and workers in `batch.rs`, the recorder in `record.rs`, lease renewal and the
//! sweep in `held.rs`, the metrics of attempts and breakers in `measure`. [`Dispatcher::run`] sets them going; [`Dispatcher::stepper`] makes a
//! [`Stepper`] of the same parts that runs one round when asked, for tests. With the
//! `test-util` feature, `memory` and `scripted` hold what such tests run on: a queue in memory
//! and a receiver in place of the network.

mod batch;
mod claim;
mod handoff;
mod headers;
mod held;
mod lane;
mod limiter;
pub mod measure;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
pub mod queue;
mod record;
#[cfg(any(test, feature = "test-util"))]
pub mod scripted;
pub mod sender;
mod step;

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::batch::{Attempts, BatchStart};
use self::claim::{take_handed, ClaimLoop};
use self::handoff::Handed;
pub use self::handoff::{Handoff, Holding, Reservation};
pub use self::headers::{derived_headers, redacted, RecordedHeaders};
pub use self::held::Lease;
use self::held::{keep_leases, Held, Keeper};
use self::limiter::Limiter;
pub use self::queue::{
    AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryQueue, LeasedDelivery, NextState,
    QueueError, WebhookSettings,
};
pub use self::record::RECORD_BATCH;
use self::record::{record_loop, Release};
pub use self::sender::{Sender, SenderConfig, Target};
pub use self::step::{Round, Stepper};

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

/// The parts [`Dispatcher::run`] sets going and a [`Stepper`] turns by hand.
struct Parts<Q> {
    batches: BatchStart<Q>,
    records: mpsc::UnboundedReceiver<AttemptRecord>,
    release: Release,
    handed: Option<mpsc::UnboundedReceiver<Handed>>,
    keeper: Keeper<Q>,
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

    /// The limiter, the held set and the channels, connected to the hand-off if there is one.
    fn parts(&self, shutdown: CancellationToken) -> Parts<Q> {
        let limiter = Arc::new(Limiter::new(&self.config));
        let held = Arc::new(Held::default());
        let (record_tx, records) = mpsc::unbounded_channel();
        let handed = self.handoff.as_ref().map(|handoff| {
            let (handed_tx, handed_rx) = mpsc::unbounded_channel();
            handoff.connect(
                limiter.clone(),
                held.clone(),
                handed_tx,
                self.config.node_id.clone(),
                self.config.lease,
            );
            handed_rx
        });
        Parts {
            batches: BatchStart {
                queue: self.queue.clone(),
                attempts: Arc::new(Attempts {
                    sender: self.sender.clone(),
                    limiter: limiter.clone(),
                    record_tx,
                    measured: measure::DeliveryMetrics::new(),
                }),
                shutdown,
                tasks: TaskTracker::new(),
                held: held.clone(),
            },
            records,
            release: Release {
                limiter,
                held: held.clone(),
            },
            handed,
            keeper: Keeper::new(self.queue.clone(), &self.config, held),
        }
    }

    /// A dispatcher that runs one round when asked instead of running on its own (see
    /// [`Stepper`]): what tests drive to check its behaviour step by step.
    pub fn stepper(self) -> Stepper<Q> {
        Stepper {
            parts: self.parts(CancellationToken::new()),
            config: self.config,
            unrecorded: Vec::new(),
        }
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, lets attempts in flight finish
    /// (each bounded by its timeout), records them, and gives back the leases it still holds.
    pub async fn run(self, shutdown: CancellationToken) {
        let Parts {
            batches,
            records,
            release,
            handed,
            keeper,
        } = self.parts(shutdown.clone());
        let limiter = release.limiter.clone();
        let tasks = batches.tasks.clone();
        let sending = Handle::current();
        let bookkeeping = self
            .queue
            .bookkeeping_runtime()
            .unwrap_or_else(|| sending.clone());
        let recorder = bookkeeping.spawn(record_loop(
            self.queue.clone(),
            records,
            release,
            self.waker.clone(),
            shutdown.clone(),
        ));
        let renewer = tokio::spawn(keep_leases(keeper, self.waker.clone(), shutdown.clone()));
        // Deliveries still waiting in their lanes are dropped, unsent, at shutdown.
        let closer = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                limiter.close();
            }
        });
        let handed = handed
            .map(|handed| bookkeeping.spawn(take_handed(handed, batches.clone(), sending.clone())));
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
