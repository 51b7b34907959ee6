//! Per-key request limits: a token bucket per API key id (GCRA, `governor`), checked by the
//! [`crate::extract::Caller`] extractor right after the key authenticates, so every
//! authenticated route is covered and a key's burst cannot starve another key. A request over
//! the limit is answered 429 `rate_limited` with `Retry-After`, before its handler runs.
//!
//! Buckets live in this process's memory: with several nodes, each enforces the limit on its
//! own share of the traffic. The map holds one small entry per key that has made a request
//! (keys are few and made by an admin), so it stays small.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// The limiter shared by every request; cheap to clone.
#[derive(Clone)]
pub struct KeyRateLimiter {
    /// `None`: unlimited.
    inner: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    clock: DefaultClock,
}

impl KeyRateLimiter {
    /// `per_second` requests a second on average, up to `burst` at once; `per_second == 0`
    /// disables limiting. A burst below the rate is raised to it.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let Some(rate) = NonZeroU32::new(per_second) else {
            return Self::unlimited();
        };
        let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
        let quota = Quota::per_second(rate).allow_burst(burst);
        Self {
            inner: Some(Arc::new(RateLimiter::keyed(quota))),
            clock: DefaultClock::default(),
        }
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Self {
            inner: None,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the key's bucket, or answers 429 with the whole seconds until
    /// the next request would be allowed (at least 1).
    pub fn check(&self, key_id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.inner else {
            return Ok(());
        };
        limiter.check_key(&key_id.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::rate_limited(wait.as_secs_f64().ceil().max(1.0) as u64)
        })
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
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = KeyRateLimiter::new(0, 0);
        for _ in 0..10_000 {
            assert!(limiter.check("key_a").is_ok());
        }
    }
}
