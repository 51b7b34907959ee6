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

    /// Queues `work`. With a place, the caller is to start a worker for the lane, which holds
    /// the place until [`Place::next`] lets it go; without, the workers running will come to
    /// it (or, once the lane is closed, it is dropped unsent).
    pub(super) fn push(self: &Arc<Self>, work: Work) -> Option<Place> {
        let mut state = self.state.lock().expect("lane lock");
        if state.closed {
            return None;
        }
        state.waiting.push_back(work);
        if state.workers == self.concurrency {
            return None;
        }
        state.workers += 1;
        Some(Place {
            lane: self.clone(),
            held: true,
        })
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

/// A worker's place in its lane, held while the worker runs. It is given back when the
/// worker ends: by [`Place::next`] finding nothing to do, or by being dropped, so a worker that
/// panics does not leave the lane believing it still runs (the next delivery pushed starts a
/// new one).
pub(super) struct Place {
    lane: Arc<Lane>,
    held: bool,
}

impl Place {
    /// The next delivery to send. `None` means the worker is to end: the lane is empty or
    /// closed, and the place is given back in the same step, so work pushed right after
    /// starts a new worker.
    pub(super) fn next(&mut self) -> Option<Work> {
        let mut state = self.lane.state.lock().expect("lane lock");
        let work = if state.closed {
            None
        } else {
            state.waiting.pop_front()
        };
        if work.is_none() && self.held {
            state.workers -= 1;
            self.held = false;
        }
        work
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.held {
            // Dropped while unwinding, this must not panic itself (that aborts the process), so
            // a poisoned lock is taken as it is: no step under it leaves the count half-changed.
            let mut state = match self.lane.state.lock() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            };
            state.workers -= 1;
        }
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

    fn next_id(worker: &mut Place) -> Option<String> {
        worker.next().map(|w| w.delivery.id)
    }

    #[test]
    fn starts_workers_up_to_the_concurrency_and_serves_in_order() {
        let lane = Arc::new(Lane::new(2));
        let mut first = lane.push(work("msg_1")).expect("first worker");
        let mut second = lane.push(work("msg_2")).expect("second worker");
        assert!(lane.push(work("msg_3")).is_none(), "two is the limit");
        assert_eq!(next_id(&mut first).as_deref(), Some("msg_1"));
        assert_eq!(next_id(&mut second).as_deref(), Some("msg_2"));
        assert_eq!(next_id(&mut first).as_deref(), Some("msg_3"));
        assert_eq!(next_id(&mut second), None, "empty: the second worker ends");
        let mut third = lane.push(work("msg_4")).expect("its place is free again");
        assert!(lane.push(work("msg_5")).is_none(), "still two at most");
        assert_eq!(next_id(&mut first).as_deref(), Some("msg_4"));
        assert_eq!(next_id(&mut third).as_deref(), Some("msg_5"));
        assert_eq!(next_id(&mut first), None);
        assert_eq!(next_id(&mut third), None, "both workers end");
        assert!(
            lane.push(work("msg_6")).is_some(),
            "an idle lane starts a worker again"
        );
    }

    #[test]
    fn once_closed_nothing_waiting_or_pushed_later_is_sent() {
        let lane = Arc::new(Lane::new(1));
        let mut worker = lane.push(work("msg_1")).expect("a worker");
        assert!(lane.push(work("msg_2")).is_none());
        lane.close();
        assert_eq!(
            next_id(&mut worker),
            None,
            "the worker ends; msg_2 is dropped"
        );
        assert!(
            lane.push(work("msg_3")).is_none(),
            "no worker starts after the close"
        );
        assert_eq!(lane.state.lock().unwrap().waiting.len(), 0);
    }

    #[test]
    fn a_worker_that_panics_gives_its_place_back() {
        let lane = Arc::new(Lane::new(1));
        let mut worker = lane.push(work("msg_1")).expect("a worker");
        assert!(lane.push(work("msg_2")).is_none(), "one at a time");
        let taken = next_id(&mut worker);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _worker = worker;
            panic!("sending {taken:?} panicked");
        }));
        assert!(unwound.is_err());
        let mut next = lane
            .push(work("msg_3"))
            .expect("its place is free: a new worker starts");
        assert_eq!(
            next_id(&mut next).as_deref(),
            Some("msg_2"),
            "and takes what waited"
        );
    }
}
