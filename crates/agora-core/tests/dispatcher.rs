//! The dispatcher's behaviour over time, on paused tokio time, without a database or a network:
//! a [`MemoryQueue`] holds the deliveries, a [`ScriptedReceiver`] answers in place of the
//! network (real sockets and paused time mix badly: see `scripted.rs`), and a [`Stepper`] runs
//! one round at a time. `now_ms` follows tokio's clock under the `test-util` feature, so
//! `tokio::time::advance` moves retries, leases and breakers alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agora_core::dispatcher::memory::{MemoryQueue, Status};
use agora_core::dispatcher::scripted::{Answer, ScriptedReceiver};
use agora_core::dispatcher::{
    ClaimRequest, DeliveryQueue, Dispatcher, DispatcherConfig, Handoff, NextState, Sender,
    SenderConfig, Stepper, Waker, WebhookSettings,
};
use agora_core::format::Format;
use agora_core::retry::RetryPolicy;
use agora_core::signing::WebhookSecret;
use agora_core::target::TargetPolicy;
use agora_core::time::now_ms;
use tokio::time::advance;
use tokio_util::sync::CancellationToken;

const WEBHOOK: &str = "wh_a";
const NODE: &str = "node_a";

/// A webhook that allows `retry_count` retries, with a 5 s timeout.
fn webhook(queue: &MemoryQueue, retry_count: u32) {
    queue.add_webhook(
        WEBHOOK,
        WebhookSettings {
            url: "https://hooks.example/a".into(),
            secrets: vec![WebhookSecret::generate()],
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
            format: Format::Json,
        },
        retry_count,
    );
}

/// A sender answered by `receiver`, retrying on `schedule` without jitter.
fn sender(receiver: &ScriptedReceiver, schedule: &str) -> Sender {
    Sender::new(SenderConfig {
        forum_name: "Test forum".into(),
        targets: TargetPolicy::default(),
        retry: RetryPolicy {
            schedule: schedule.parse().expect("a schedule"),
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        max_in_flight: 64,
    })
    .expect("a client")
    .answered_by(receiver.clone())
}

fn config() -> DispatcherConfig {
    DispatcherConfig {
        node_id: NODE.into(),
        ..DispatcherConfig::default()
    }
}

fn stepper(
    queue: &Arc<MemoryQueue>,
    receiver: &ScriptedReceiver,
    schedule: &str,
    config: DispatcherConfig,
) -> Stepper<MemoryQueue> {
    Dispatcher::new(
        queue.clone(),
        sender(receiver, schedule),
        config,
        Waker::default(),
    )
    .stepper()
}

fn status(queue: &MemoryQueue, id: &str) -> Status {
    queue.delivery(id).expect("the delivery").status
}

#[tokio::test(start_paused = true)]
async fn a_failing_receiver_is_retried_at_the_scheduled_times_then_exhausted() {
    let queue = Arc::new(MemoryQueue::default());
    webhook(&queue, 3);
    let receiver = ScriptedReceiver::always(Answer::Status(500));
    let mut dispatcher = stepper(&queue, &receiver, "5s,30s,2m", config());
    let t0 = now_ms();
    let id = queue.enqueue(WEBHOOK, "thread.created", r#"{"n":1}"#);

    let round = dispatcher.round().await.unwrap();
    assert_eq!(round.claimed, 1);
    assert_eq!(round.records[0].next, NextState::RetryAt(t0 + 5_000));
    assert_eq!(status(&queue, &id), Status::Failed);

    advance(Duration::from_millis(4_999)).await;
    assert_eq!(dispatcher.round().await.unwrap().claimed, 0, "not due yet");
    for (wait, next) in [
        (1, NextState::RetryAt(t0 + 35_000)),
        (30_000, NextState::RetryAt(t0 + 155_000)),
        (120_000, NextState::Exhausted),
    ] {
        advance(Duration::from_millis(wait)).await;
        let round = dispatcher.round().await.unwrap();
        assert_eq!(round.claimed, 1);
        assert_eq!(round.records[0].next, next);
    }
    assert_eq!(status(&queue, &id), Status::Exhausted);
    advance(Duration::from_secs(24 * 3600)).await;
    assert_eq!(dispatcher.round().await.unwrap().claimed, 0, "never again");

    let received = receiver.received();
    let times: Vec<i64> = received.iter().map(|r| r.at - t0).collect();
    assert_eq!(times, [0, 5_000, 35_000, 155_000]);
    let attempts: Vec<u32> = received.iter().map(|r| r.attempt()).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    assert!(received.iter().all(|r| r.delivery_id() == id));
    assert_eq!(queue.attempts(&id).len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_receiver_that_never_answers_times_out_and_waits_the_overload_penalty() {
    let queue = Arc::new(MemoryQueue::default());
    webhook(&queue, 3);
    let receiver = ScriptedReceiver::always(Answer::Silence);
    let mut dispatcher = stepper(&queue, &receiver, "1s", config());
    let t0 = now_ms();
    queue.enqueue(WEBHOOK, "thread.created", "{}");

    let round = dispatcher.round().await.unwrap();
    let record = &round.records[0];
    assert_eq!(record.error.as_deref(), Some("timed out after 5000 ms"));
    assert_eq!(record.response_status, None);
    assert_eq!(
        record.next,
        NextState::RetryAt(t0 + 5_000 + 60_000),
        "a timeout is a sign of overload: at least a minute, not the scheduled second"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_longer_than_the_schedule_is_honoured() {
    let queue = Arc::new(MemoryQueue::default());
    webhook(&queue, 3);
    let receiver = ScriptedReceiver::always(Answer::RetryAfter(429, Duration::from_secs(300)));
    let mut dispatcher = stepper(&queue, &receiver, "1s", config());
    let t0 = now_ms();
    queue.enqueue(WEBHOOK, "thread.created", "{}");

    let round = dispatcher.round().await.unwrap();
    assert_eq!(round.records[0].response_status, Some(429));
    assert_eq!(round.records[0].next, NextState::RetryAt(t0 + 300_000));
    advance(Duration::from_secs(299)).await;
    assert_eq!(dispatcher.round().await.unwrap().claimed, 0);
    advance(Duration::from_secs(1)).await;
    assert_eq!(dispatcher.round().await.unwrap().claimed, 1);
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_failures_defers_without_attempts_and_probes_once_per_cooldown() {
    let queue = Arc::new(MemoryQueue::default());
    webhook(&queue, 100);
    let healthy = Arc::new(AtomicBool::new(false));
    let receiver = ScriptedReceiver::new({
        let healthy = healthy.clone();
        move |_| {
            if healthy.load(Ordering::SeqCst) {
                Answer::Status(200)
            } else {
                Answer::Unreachable
            }
        }
    });
    let mut dispatcher = stepper(
        &queue,
        &receiver,
        "1s",
        DispatcherConfig {
            // One at a time, so the breaker sees each answer before the next delivery.
            max_concurrency_per_webhook: 1,
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(10),
            ..config()
        },
    );
    let t0 = now_ms();
    let ids: Vec<String> = (0..5)
        .map(|_| queue.enqueue(WEBHOOK, "thread.created", "{}"))
        .collect();

    let round = dispatcher.round().await.unwrap();
    let next: Vec<&NextState> = round.records.iter().map(|r| &r.next).collect();
    assert_eq!(
        next,
        [
            &NextState::RetryAt(t0 + 1_000),
            &NextState::RetryAt(t0 + 1_000),
            &NextState::RetryAt(t0 + 1_000),
            &NextState::Deferred(t0 + 10_000),
            &NextState::Deferred(t0 + 10_000),
        ],
        "the third failure opens the breaker; the rest wait for its cooldown, unattempted"
    );
    assert_eq!(receiver.received().len(), 3);
    let deferred = queue.delivery(&ids[4]).unwrap();
    assert_eq!(
        (deferred.status, deferred.attempts, deferred.due_at),
        (Status::Pending, 0, Some(t0 + 10_000)),
        "a deferral is not an attempt"
    );

    advance(Duration::from_secs(1)).await;
    assert_eq!(
        dispatcher.round().await.unwrap().claimed,
        0,
        "retries come due, but the claim skips a webhook whose breaker is open"
    );
    assert_eq!(receiver.received().len(), 3);

    advance(Duration::from_secs(9)).await;
    let round = dispatcher.round().await.unwrap();
    assert_eq!(round.claimed, 5);
    assert_eq!(
        receiver.received().len(),
        4,
        "after the cooldown one probe goes through"
    );
    assert!(matches!(round.records[0].next, NextState::RetryAt(_)));
    assert!(
        round.records[1..]
            .iter()
            .all(|r| r.next == NextState::Deferred(t0 + 20_000)),
        "the failed probe opens the breaker for another cooldown"
    );
    assert_eq!(
        queue.failure_streak(WEBHOOK),
        4,
        "deferrals do not count as failures (the store's auto-disable reads this streak)"
    );

    healthy.store(true, Ordering::SeqCst);
    advance(Duration::from_secs(10)).await;
    let round = dispatcher.round().await.unwrap();
    assert!(round.records.iter().all(|r| r.next == NextState::Succeeded));
    assert_eq!(
        receiver.received().len(),
        9,
        "a successful probe closes the breaker"
    );
    assert!(ids.iter().all(|id| status(&queue, id) == Status::Succeeded));
    assert_eq!(queue.failure_streak(WEBHOOK), 0);
}

#[tokio::test(start_paused = true)]
async fn a_delivery_whose_lease_expired_is_claimed_again_with_its_attempt_counted() {
    let queue = Arc::new(MemoryQueue::default());
    webhook(&queue, 3);
    let receiver = ScriptedReceiver::always(Answer::Status(200));
    let mut dispatcher = stepper(&queue, &receiver, "5s", config());
    let id = queue.enqueue(WEBHOOK, "thread.created", "{}");
    let now = now_ms();
    let taken = queue
        .claim(ClaimRequest {
            node: "node_dead".into(),
            limit: 10,
            now,
            lease_until: now + 60_000,
            skip_webhooks: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "another node leases it, then dies");

    advance(Duration::from_millis(59_999)).await;
    assert_eq!(dispatcher.round().await.unwrap().claimed, 0, "still leased");
    advance(Duration::from_millis(1)).await;
    let round = dispatcher.round().await.unwrap();
    assert_eq!(round.claimed, 1, "the lease expired");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].delivery_id(), id, "the same webhook-id");
    assert_eq!(
        received[0].attempt(),
        2,
        "the dead node's attempt may have been made"
    );
    assert_eq!(status(&queue, &id), Status::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn the_sweep_gives_back_a_lease_its_dispatcher_never_took_up() {
    let queue = Arc::new(MemoryQueue::default());
    webhook(&queue, 3);
    let receiver = ScriptedReceiver::always(Answer::Status(200));
    let mut dispatcher = stepper(&queue, &receiver, "5s", config());
    let id = queue.enqueue(WEBHOOK, "thread.created", "{}");
    // Written leased to this node, as for a hand-off, and never handed.
    queue.lease(&id, NODE, now_ms() + 60_000);

    assert_eq!(dispatcher.tend_leases().await.unwrap(), 0, "first seen");
    advance(Duration::from_secs(20)).await;
    assert_eq!(dispatcher.round().await.unwrap().claimed, 0);
    assert_eq!(
        dispatcher.tend_leases().await.unwrap(),
        1,
        "unheld at two sweeps in a row"
    );
    let given_back = queue.delivery(&id).unwrap();
    assert_eq!(
        (given_back.status, given_back.attempts),
        (Status::Pending, 0)
    );
    let round = dispatcher.round().await.unwrap();
    assert_eq!(
        round.claimed, 1,
        "due at once, long before the lease would expire"
    );
    assert_eq!(
        receiver.received()[0].attempt(),
        1,
        "the attempt was never made"
    );
    assert_eq!(status(&queue, &id), Status::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn handed_deliveries_are_sent_without_a_claim() {
    let queue = Arc::new(MemoryQueue::default());
    webhook(&queue, 3);
    let receiver = ScriptedReceiver::always(Answer::Status(204));
    let handoff = Handoff::default();
    let mut dispatcher = Dispatcher::new(
        queue.clone(),
        sender(&receiver, "5s"),
        config(),
        Waker::default(),
    )
    .with_handoff(handoff.clone())
    .stepper();
    let id = queue.enqueue(WEBHOOK, "thread.created", "{}");
    let reservation = handoff.reserve(WEBHOOK).expect("room");
    let (node, until) = handoff.lease().expect("a connected dispatcher");
    let leased = queue.lease(&id, node, until).expect("written leased");
    handoff.hand(vec![(leased, reservation)]);

    let round = dispatcher.round().await.unwrap();
    assert_eq!((round.handed, round.claimed), (1, 0));
    assert_eq!(status(&queue, &id), Status::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_410_disables_the_webhook_at_once() {
    let queue = Arc::new(MemoryQueue::default());
    webhook(&queue, 10);
    let receiver = ScriptedReceiver::always(Answer::Status(410));
    let mut dispatcher = stepper(&queue, &receiver, "5s", config());
    let id = queue.enqueue(WEBHOOK, "thread.created", "{}");

    let round = dispatcher.round().await.unwrap();
    assert_eq!(round.records[0].next, NextState::DisableWebhook);
    assert_eq!(status(&queue, &id), Status::Exhausted, "no retry follows");
    assert!(!queue.is_active(WEBHOOK));
}

#[tokio::test(start_paused = true)]
async fn run_delivers_due_work_and_stops_when_told() {
    let queue = Arc::new(MemoryQueue::default());
    webhook(&queue, 3);
    let receiver = ScriptedReceiver::always(Answer::Status(200));
    let waker = Waker::default();
    let dispatcher = Dispatcher::new(
        queue.clone(),
        sender(&receiver, "5s"),
        config(),
        waker.clone(),
    );
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(dispatcher.run(shutdown.clone()));
    let id = queue.enqueue(WEBHOOK, "thread.created", "{}");
    waker.wake();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status(&queue, &id), Status::Succeeded);
    shutdown.cancel();
    running.await.unwrap();
}
