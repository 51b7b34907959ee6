//! SQLite: how much of the due order a claim looks at while the dispatcher skips webhooks.
//!
//! A claim leaves out the webhooks that hold as much work in memory as they may. On SQLite the
//! single writer runs the claim, and a claim behind a large backlog of skipped webhooks would
//! read all of it every time to find little or nothing; so while some webhooks are skipped, a
//! claim looks only at a window of the earliest due deliveries. Every so often it looks at all
//! of them, so that webhooks with room whose work lies behind a long backlog of skipped ones
//! still get theirs. PostgreSQL claims need no window (see `claim_on_postgres`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many due deliveries a bounded claim looks at, per delivery it may take.
const WINDOW_FACTOR: usize = 4;

/// How often a claim looks at every due delivery although webhooks are skipped: the dispatcher's
/// default poll interval, the longest a webhook with room waits behind a skipped backlog. Longer
/// periods were measured to gain nothing (docs/dev/performance.md).
const FULL_CLAIM_EVERY: Duration = Duration::from_millis(500);

/// When the last claim looked at every due delivery.
pub(crate) struct ClaimWindow(Mutex<Instant>);

impl Default for ClaimWindow {
    fn default() -> Self {
        Self(Mutex::new(Instant::now()))
    }
}

impl ClaimWindow {
    /// How many of the earliest due deliveries a claim of up to `limit` looks at, or `None` for
    /// all of them: all when it skips no webhook, or when the last full look is old enough.
    pub(crate) fn rows(&self, limit: usize, skipping: bool) -> Option<usize> {
        let mut last_full = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !skipping || last_full.elapsed() >= FULL_CLAIM_EVERY {
            *last_full = Instant::now();
            return None;
        }
        Some(limit.saturating_mul(WINDOW_FACTOR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_windowed_only_while_it_skips_webhooks_and_until_a_full_look_is_due() {
        let window = ClaimWindow::default();
        assert_eq!(window.rows(10, false), None, "nothing skipped: look at all");
        assert_eq!(window.rows(10, true), Some(40));
        *window.0.lock().unwrap() -= FULL_CLAIM_EVERY;
        assert_eq!(window.rows(10, true), None, "a full look is due");
        assert_eq!(window.rows(10, true), Some(40));
    }
}
