//! What `/readyz` knows besides the database: whether the node is draining, and whether its
//! dispatcher runs. A load balancer stops sending to a node that answers 503, so a node
//! shutting down says so first, and a node whose dispatcher died (deliveries would pile up
//! unsent) is taken out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared between the API, which reads it, and the start-up, which sets it.
#[derive(Clone, Default)]
pub struct Readiness(Arc<Flags>);

#[derive(Default)]
struct Flags {
    draining: AtomicBool,
    dispatcher_running: AtomicBool,
}

impl Readiness {
    /// Marks the node as shutting down: `/readyz` answers 503 from now on.
    pub fn drain(&self) {
        self.0.draining.store(true, Ordering::Release);
    }

    /// Whether [`Readiness::drain`] was called.
    pub fn draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }

    /// Marks the dispatcher as running until the guard is dropped, which happens when its task
    /// ends, panics included.
    pub fn dispatcher_running(&self) -> DispatcherRunning {
        self.0.dispatcher_running.store(true, Ordering::Release);
        DispatcherRunning(self.clone())
    }

    /// Whether a [`DispatcherRunning`] guard is alive.
    pub fn dispatcher_is_running(&self) -> bool {
        self.0.dispatcher_running.load(Ordering::Acquire)
    }
}

/// Held by the dispatcher's task; see [`Readiness::dispatcher_running`].
pub struct DispatcherRunning(Readiness);

impl Drop for DispatcherRunning {
    fn drop(&mut self) {
        self.0 .0.dispatcher_running.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dispatcher_counts_as_running_while_its_guard_lives_and_draining_sticks() {
        let readiness = Readiness::default();
        assert!(!readiness.dispatcher_is_running());
        let guard = readiness.dispatcher_running();
        assert!(readiness.clone().dispatcher_is_running());
        drop(guard);
        assert!(!readiness.dispatcher_is_running());
        assert!(!readiness.draining());
        readiness.clone().drain();
        assert!(readiness.draining());
    }
}
