//! A webhook's lane: its loaded deliveries in the order they came, and the workers that send
//! them, at most `max_concurrency_per_webhook` at once.
//!
//! A worker is a task that sends one delivery after another until the lane is empty, so a
//! delivery costs a place in a queue instead of a task of its own waiting on a semaphore (a
//! spawn, a wait and a wake on the semaphore's contended waiter list each). Workers start as
//! work arrives and end when there is none, so an idle webhook holds no task.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::queue::ClaimedDelivery;
use super::sender::Target;

/// One delivery ready to be sent, with where it goes.
pub(super) struct Work {
    pub(super) delivery: ClaimedDelivery,
    pub(super) target: Arc<Target>,
}

/// The deliveries of one webhook waiting for a worker, and how many workers it has.
pub(super) struct Lane {
    state: Mutex<State>,
    concurrency: usize,
}

struct State {
    waiting: VecDeque<Work>,
    workers: usize,
    /// Set at shutdown: nothing more is sent.
    closed: bool,
}

impl Lane {
    /// An empty lane whose webhook may have `concurrency` requests in flight.
    pub(super) fn new(concurrency: usize) -> Self {
        Self {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                workers: 0,
                closed: false,
            }),
            concurrency: concurrency.max(1),
        }
    }

    /// Queues `work`. True when the caller is to start a worker for the lane, which then owns
    /// one of its places until [`Lane::next`] lets it go; false when the workers running will
    /// come to it (or, once closed, when it is dropped unsent).
    pub(super) fn push(&self, work: Work) -> bool {
        let mut state = self.state.lock().expect("lane lock");
        if state.closed {
            return false;
        }
        state.waiting.push_back(work);
        let start = state.workers < self.concurrency;
        if start {
            state.workers += 1;
        }
        start
    }

    /// The next delivery for a worker. `None` means the worker is to end: the lane is empty
    /// or closed, and the worker's place is given back in the same step, so work pushed right
    /// after starts a new one.
    pub(super) fn next(&self) -> Option<Work> {
        let mut state = self.state.lock().expect("lane lock");
        let work = if state.closed {
            None
        } else {
            state.waiting.pop_front()
        };
        if work.is_none() {
            state.workers -= 1;
        }
        work
    }

    /// Stops the lane at shutdown: what waits is dropped unsent (its lease is given back with
    /// the node's others), workers end after the attempt they are making, and nothing pushed
    /// later is taken.
    pub(super) fn close(&self) {
        let mut state = self.state.lock().expect("lane lock");
        state.closed = true;
        state.waiting.clear();
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::dispatcher::WebhookSettings;
    use crate::format::Format;
    use std::time::Duration;

    /// A delivery to nowhere, for tests of what holds it.
    pub(in crate::dispatcher) fn work(id: &str) -> Work {
        Work {
            delivery: ClaimedDelivery {
                id: id.into(),
                event_id: "evt_1".into(),
                event_type: "thread.created".into(),
                webhook_id: "wh_a".into(),
                webhook: Arc::new(WebhookSettings {
                    url: "https://example.com/hook".into(),
                    secrets: Vec::new(),
                    headers: Vec::new(),
                    timeout: Duration::from_secs(5),
                    format: Format::Json,
                }),
                body: "{}".into(),
                attempt: 1,
                retries_done: 0,
                retry_count: 0,
            },
            target: Arc::new(Err("unused".into())),
        }
    }

    fn next_id(lane: &Lane) -> Option<String> {
        lane.next().map(|w| w.delivery.id)
    }

    #[test]
    fn starts_workers_up_to_the_concurrency_and_serves_in_order() {
        let lane = Lane::new(2);
        assert!(lane.push(work("msg_1")), "first worker");
        assert!(lane.push(work("msg_2")), "second worker");
        assert!(!lane.push(work("msg_3")), "two is the limit");
        assert_eq!(next_id(&lane).as_deref(), Some("msg_1"));
        assert_eq!(next_id(&lane).as_deref(), Some("msg_2"));
        assert_eq!(next_id(&lane).as_deref(), Some("msg_3"));
        assert_eq!(next_id(&lane), None, "empty: one worker ends");
        assert!(lane.push(work("msg_4")), "its place is free again");
        assert!(!lane.push(work("msg_5")), "still two at most");
        assert_eq!(next_id(&lane).as_deref(), Some("msg_4"));
        assert_eq!(next_id(&lane).as_deref(), Some("msg_5"));
        assert_eq!(next_id(&lane), None);
        assert_eq!(next_id(&lane), None, "both workers end");
        assert!(
            lane.push(work("msg_6")),
            "an idle lane starts a worker again"
        );
    }

    #[test]
    fn once_closed_nothing_waiting_or_pushed_later_is_sent() {
        let lane = Lane::new(1);
        assert!(lane.push(work("msg_1")));
        assert!(!lane.push(work("msg_2")));
        lane.close();
        assert_eq!(next_id(&lane), None, "the worker ends; msg_2 is dropped");
        assert!(
            !lane.push(work("msg_3")),
            "no worker starts after the close"
        );
        assert_eq!(lane.state.lock().unwrap().waiting.len(), 0);
    }
}
