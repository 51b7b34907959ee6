//! Time as the engine sees it: unix milliseconds everywhere inside, RFC 3339 at the edges.
//!
//! Integers store and compare the same way in SQLite and PostgreSQL, so the store never has to
//! translate time zones or timestamp types.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the unix epoch, now.
#[cfg(not(any(test, feature = "test-util")))]
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Milliseconds since the unix epoch, now, as tokio's clock tells it: the wall clock at the
/// first call, moved on by tokio's `Instant` since. With the `test-util` feature, so that a test
/// on paused time (`start_paused`, `tokio::time::advance`) moves the engine's unix time too:
/// retries, leases and breakers all compare unix times. Off a paused runtime it keeps pace with
/// the wall clock.
#[cfg(any(test, feature = "test-util"))]
pub fn now_ms() -> i64 {
    static START: std::sync::OnceLock<(i64, std::time::Instant)> = std::sync::OnceLock::new();
    let (wall, start) =
        *START.get_or_init(|| (Utc::now().timestamp_millis(), std::time::Instant::now()));
    let now = tokio::time::Instant::now().into_std();
    // A paused runtime's clock may start before the anchor. Rounded down either side of it, so
    // that a time `d` later is always exactly `d` later in milliseconds too.
    let since: i128 = match now.checked_duration_since(start) {
        Some(since) => since.as_nanos() as i128,
        None => -(start.duration_since(now).as_nanos() as i128),
    };
    wall + since.div_euclid(1_000_000) as i64
}

/// RFC 3339 in UTC with milliseconds (`2026-11-23T07:00:00.123Z`), the form of every
/// timestamp in bodies and API answers.
pub fn to_rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 timestamp (any offset) into unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_milliseconds() {
        let s = to_rfc3339(1_732_345_678_123);
        assert_eq!(s, "2024-11-23T07:07:58.123Z");
        assert_eq!(parse_rfc3339(&s), Some(1_732_345_678_123));
        assert_eq!(
            parse_rfc3339("2024-11-23T08:07:58.123+01:00"),
            Some(1_732_345_678_123)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
