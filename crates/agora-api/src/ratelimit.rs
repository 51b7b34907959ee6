//! Request limits: a token bucket per caller (GCRA, `governor`), checked by the
//! [`crate::extract::Caller`] extractor right after an API key or a user session
//! authenticates, so every authenticated route is covered and one caller's burst cannot starve
//! another. A request over the limit is answered 429 `rate_limited` with `Retry-After`, before
//! its handler runs. The same buckets bound login attempts per account and per address
//! (`crate::login`).
//!
//! Buckets live in this process's memory: with several nodes, each enforces the limit on its
//! own share of the traffic. Their memory stays bounded: every few thousand checks, buckets
//! that have refilled completely (and so hold no information) are dropped.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Checks between two sweeps of full buckets.
const SWEEP_EVERY: usize = 4096;

/// One token bucket per key, of bounded memory; cheap to clone.
#[derive(Clone)]
pub struct Buckets<K: Hash + Eq + Clone> {
    /// `None`: unlimited.
    inner: Option<Arc<DefaultKeyedRateLimiter<K>>>,
    clock: DefaultClock,
    checks: Arc<AtomicUsize>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// Buckets of `quota`; `None` lets everything through.
    pub fn new(quota: Option<Quota>) -> Self {
        Self {
            inner: quota.map(|q| Arc::new(RateLimiter::keyed(q))),
            clock: DefaultClock::default(),
            checks: Arc::default(),
        }
    }

    /// Takes one token from `key`'s bucket, or answers the whole seconds until the next one
    /// comes (at least 1).
    pub fn check(&self, key: &K) -> Result<(), u64> {
        let Some(limiter) = &self.inner else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }

    /// How many buckets are held (for tests of the sweep).
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |l| l.len())
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A quota of `per_second` on average and `burst` at once (a burst below the rate is raised
/// to it); `None` when `per_second` is 0, meaning unlimited.
pub fn per_second(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

/// A quota of `n` a minute, all of which may come at once; `None` when `n` is 0.
pub fn per_minute(n: u32) -> Option<Quota> {
    NonZeroU32::new(n).map(Quota::per_minute)
}

/// The request limiter shared by every request: one bucket per API key and one per user
/// with a session; cheap to clone.
#[derive(Clone)]
pub struct KeyRateLimiter(Buckets<String>);

impl KeyRateLimiter {
    /// `per_second` requests a second on average, up to `burst` at once; `per_second == 0`
    /// disables limiting.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self(Buckets::new(self::per_second(per_second, burst)))
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Self(Buckets::new(None))
    }

    /// Takes one request from the key's bucket, or answers 429.
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        self.0
            .check(&key_id.to_owned())
            .map_err(|seconds| ApiError::rate_limited("this API key", seconds))
    }

    /// Takes one request from the bucket of the user a session acts for (all their sessions
    /// share it), or answers 429.
    pub fn check_user(&self, user_id: &str) -> Result<(), ApiError> {
        self.0
            .check(&user_id.to_owned())
            .map_err(|seconds| ApiError::rate_limited("this user", seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_bucket() {
        let limiter = KeyRateLimiter::new(1, 3);
        for _ in 0..3 {
            assert!(limiter.check("key_a").is_ok());
        }
        let refused = limiter.check("key_a").unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert!(
            limiter.check("key_b").is_ok(),
            "another key is not affected"
        );
        assert!(limiter.check_user("usr_a").is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = KeyRateLimiter::new(0, 0);
        for _ in 0..10_000 {
            assert!(limiter.check("key_a").is_ok());
        }
    }

    #[test]
    fn full_buckets_are_swept_so_memory_stays_bounded() {
        let buckets = Buckets::new(per_second(1_000_000, 1_000_000));
        for i in 0..(SWEEP_EVERY * 2) {
            assert!(buckets.check(&i).is_ok());
        }
        assert!(
            buckets.len() < SWEEP_EVERY,
            "{} buckets kept after a sweep",
            buckets.len()
        );
    }
}
