//! Whether a failed attempt is retried, and when.
//!
//! Deciding *whether* (the [`Outcome`] of an attempt, the webhook's `retry_count`) is kept apart
//! from *how long to wait* (the schedule, jitter, `Retry-After`, the overload penalty), as in
//! vector's and svix's retry logic.

use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

/// What one attempt came to, as far as retrying is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx response within the timeout.
    Delivered,
    /// 410 Gone: the receiver asks never to be called again.
    Gone,
    /// Any other response status, with the `Retry-After` it carried (429 and 503 only).
    Rejected {
        /// The response status.
        status: u16,
        /// `Retry-After`, when the status allows honouring it.
        retry_after: Option<Duration>,
    },
    /// No response within the timeout.
    TimedOut,
    /// No response at all: refused, reset, DNS, TLS, or a target the SSRF guard refused.
    Unreachable,
}

/// What to do after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Done.
    Succeeded,
    /// Try again after this long.
    RetryIn(Duration),
    /// No retries left.
    Exhausted,
    /// Stop, and disable the webhook (410 Gone).
    Disable,
}

/// The delays before retry 1, 2, … (`5s,30s,2m,10m,30m,1h,3h,6h,12h,24h` by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

/// Why a retry schedule could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("retry schedule must be a comma-separated list of durations like `5s,30s,2m,1h` (ms, s, m, h, d), got {0:?}")]
pub struct InvalidSchedule(pub String);

impl Default for RetrySchedule {
    fn default() -> Self {
        "5s,30s,2m,10m,30m,1h,3h,6h,12h,24h"
            .parse()
            .expect("the default schedule parses")
    }
}

impl FromStr for RetrySchedule {
    type Err = InvalidSchedule;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let delays = s
            .split(',')
            .map(|d| parse_duration(d.trim()))
            .collect::<Option<Vec<_>>>()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| InvalidSchedule(s.to_owned()))?;
        Ok(Self(delays))
    }
}

impl RetrySchedule {
    /// The nominal delay before retry `n` (1-based); past the end the last delay repeats.
    pub fn delay(&self, n: u32) -> Duration {
        let i = (n.max(1) as usize - 1).min(self.0.len() - 1);
        self.0[i]
    }
}

/// Parses `250ms`, `5s`, `2m`, `1h`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// The retry policy shared by every webhook; each webhook brings its own `retry_count`.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Delays before each retry.
    pub schedule: RetrySchedule,
    /// Each delay is moved by up to this fraction either way, so that retries after an outage
    /// do not all arrive at once (0.2 = ±20 %).
    pub jitter: f64,
    /// The least wait after a sign of overload (429, 502, 503, 504, timeout).
    pub overload_penalty: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            jitter: 0.2,
            overload_penalty: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// Decides what follows an attempt, given how many retries of the delivery came before it
    /// (0 for the first attempt) and how many the webhook allows.
    pub fn decide(&self, outcome: &Outcome, retries_done: u32, retry_count: u32) -> Verdict {
        match outcome {
            Outcome::Delivered => Verdict::Succeeded,
            Outcome::Gone => Verdict::Disable,
            _ if retries_done >= retry_count => Verdict::Exhausted,
            _ => Verdict::RetryIn(self.delay(outcome, retries_done + 1)),
        }
    }

    /// How long to wait before retry `n` after this outcome.
    pub fn delay(&self, outcome: &Outcome, n: u32) -> Duration {
        let nominal = self.schedule.delay(n);
        let factor = if self.jitter > 0.0 {
            rand::thread_rng().gen_range(1.0 - self.jitter..=1.0 + self.jitter)
        } else {
            1.0
        };
        let mut delay = nominal.mul_f64(factor);
        if is_overload(outcome) {
            delay = delay.max(self.overload_penalty);
        }
        if let Outcome::Rejected {
            retry_after: Some(wanted),
            ..
        } = outcome
        {
            delay = delay.max((*wanted).min(self.max_retry_after));
        }
        delay
    }
}

/// Whether an outcome says the receiver is overloaded, which earns the overload penalty.
pub fn is_overload(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::TimedOut
            | Outcome::Rejected {
                status: 429 | 502 | 503 | 504,
                ..
            }
    )
}

/// Reads a `Retry-After` value: delay seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    fn rejected(status: u16) -> Outcome {
        Outcome::Rejected {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn follows_the_default_schedule() {
        let p = policy();
        assert_eq!(
            p.decide(&rejected(500), 0, 10),
            Verdict::RetryIn(Duration::from_secs(5))
        );
        assert_eq!(
            p.decide(&rejected(500), 1, 10),
            Verdict::RetryIn(Duration::from_secs(30))
        );
        assert_eq!(
            p.decide(&rejected(500), 9, 10),
            Verdict::RetryIn(Duration::from_secs(86400))
        );
        assert_eq!(p.decide(&rejected(500), 10, 10), Verdict::Exhausted);
        assert_eq!(p.decide(&rejected(500), 0, 0), Verdict::Exhausted);
        assert_eq!(p.decide(&Outcome::Delivered, 0, 0), Verdict::Succeeded);
        assert_eq!(p.decide(&Outcome::Gone, 0, 10), Verdict::Disable);
    }

    #[test]
    fn overload_and_retry_after_lengthen_the_wait() {
        let p = policy();
        assert_eq!(p.delay(&Outcome::TimedOut, 1), Duration::from_secs(60));
        assert_eq!(p.delay(&rejected(503), 1), Duration::from_secs(60));
        assert_eq!(p.delay(&rejected(500), 1), Duration::from_secs(5));
        let wants = |s| Outcome::Rejected {
            status: 429,
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(p.delay(&wants(120), 1), Duration::from_secs(120));
        assert_eq!(p.delay(&wants(10), 1), Duration::from_secs(60));
        assert_eq!(p.delay(&wants(10_000_000), 1), Duration::from_secs(86400));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::default();
        for _ in 0..200 {
            let d = p.delay(&rejected(500), 2).as_secs_f64();
            assert!((24.0..=36.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn parses_schedules_and_retry_after() {
        let s: RetrySchedule = "100ms,1s,2m".parse().unwrap();
        assert_eq!(s.delay(1), Duration::from_millis(100));
        assert_eq!(s.delay(9), Duration::from_secs(120));
        assert!("".parse::<RetrySchedule>().is_err());
        assert!("5x".parse::<RetrySchedule>().is_err());
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
