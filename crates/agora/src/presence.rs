//! The presence sweeper: a background timer that marks users offline (and fires
//! `user.offline`) once their heartbeats stop, rather than waiting for someone's next request.
//!
//! Each sweep is one conditional UPDATE in the store ([`Store::sweep_offline`]), so every node
//! of a cluster may run this loop: a user goes offline, and the event fires, exactly once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use agora_core::time::now_ms;
use agora_store::Store;

/// How often to sweep for a timeout: a quarter of it, between 100 ms and 5 s, so a user is
/// marked offline at most that late.
pub fn sweep_interval(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Sweeps every [`sweep_interval`] until `shutdown`.
pub async fn run(store: Store, timeout: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(sweep_interval(timeout));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = now_ms() - i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        match store.sweep_offline(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(users = n, "presence: marked users offline"),
            Err(e) => tracing::warn!(error = %e, "presence sweep failed; retrying next tick"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_often_enough_but_not_constantly() {
        assert_eq!(
            sweep_interval(Duration::from_secs(60)),
            Duration::from_secs(5)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
        assert_eq!(
            sweep_interval(Duration::from_millis(10)),
            Duration::from_millis(100)
        );
    }
}
