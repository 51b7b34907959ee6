//! The CPU time the whole process has used: what a scenario cost, apart from how long it took.
//!
//! A rate falls both when a delivery costs more and when the CPUs sit idle (the dispatcher
//! waiting on the writer, say); the CPU time per delivery tells the two apart. With both CPUs
//! busy the two views agree, and neither removes the shared machine's own drift (see
//! docs/dev/performance.md).

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux architecture
/// this runs on).
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of this process so far, over all its threads; zero where
/// `/proc` cannot be read.
pub fn used() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The command name (field 2) may hold spaces; fields are counted after its `)`.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace().skip(11);
            let user: u64 = fields.next()?.parse().ok()?;
            let system: u64 = fields.next()?.parse().ok()?;
            Some(Duration::from_millis(
                (user + system) * 1000 / TICKS_PER_SECOND,
            ))
        })
        .unwrap_or_default()
}

/// Microseconds of CPU per item, from the CPU time used since `since`.
pub fn per_item_us(since: Duration, items: u64) -> f64 {
    used().saturating_sub(since).as_secs_f64() * 1e6 / items.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = used();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        // Busy until the process has counted 30 ms more, which a broken reading never does.
        while used().saturating_sub(before) < Duration::from_millis(30) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "20 s of busy loop counted less than 30 ms of CPU time"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
    }
}
