//! Bounds sized from the process's open-file limit, so that however many webhooks hang and
//! however many clients connect, the API, the database and healthy webhooks keep their file
//! descriptors.
//!
//! Of the soft `RLIMIT_NOFILE` (read from `/proc/self/limits`; 1,024 where it cannot be
//! read), a reserve is kept for the database (SQLite's files and readers, or the PostgreSQL
//! pool), the listener, logs and the resolver; of the rest, half may be outgoing requests in
//! flight and a quarter open API connections. The last quarter is headroom: idle keep-alive
//! connections to receivers, accepts racing the bound.

/// Descriptors kept aside beyond the database pool.
const RESERVE: usize = 64;

/// The least any bound is sized to, however low the file limit.
const FLOOR: usize = 16;

/// What one process may hold at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Outgoing webhook requests in flight (each holds at most one connection).
    pub outgoing: usize,
    /// Open API connections.
    pub connections: usize,
    /// Password hashes computed at once (about 19 MiB each).
    pub hashes: usize,
}

impl Limits {
    /// The bounds for a soft file limit of `open_files` and a database pool of `pool_size`.
    pub fn from_open_files(open_files: usize, pool_size: usize) -> Self {
        let usable = open_files.saturating_sub(RESERVE + 2 * pool_size);
        Self {
            outgoing: (usable / 2).max(FLOOR),
            connections: (usable / 4).max(FLOOR),
            hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// The soft limit on open files, or 1,024 (the usual default) where it cannot be read.
pub fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| soft_open_files(&limits))
        .unwrap_or(1024)
}

/// The soft "Max open files" of a `/proc/self/limits` text; `unlimited` reads as a large
/// number.
fn soft_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(1 << 20),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            4096                 524288               files     \n";
        assert_eq!(soft_open_files(text), Some(4096));
        assert_eq!(soft_open_files("nothing here"), None);
        assert!(open_file_limit() >= 16);
    }

    #[test]
    fn bounds_leave_the_database_its_share() {
        let limits = Limits::from_open_files(1024, 16);
        assert_eq!(limits.outgoing, 464);
        assert_eq!(limits.connections, 232);
        assert!(limits.outgoing + limits.connections + 64 + 32 < 1024);
        let tiny = Limits::from_open_files(50, 16);
        assert_eq!((tiny.outgoing, tiny.connections), (FLOOR, FLOOR));
        assert!(tiny.hashes >= 1);
    }
}
