//! What the store tells the metrics recorder (commit latency, group-commit sizes, storage
//! errors, auto-disables), through the `metrics` facade only, and the one query the metrics
//! sampler runs: the queue and the webhooks as the database holds them.

use std::time::Instant;

use sqlx::Row;

use agora_core::ids::id_time;

use crate::{Backend, Store, StoreError, Tx};

/// How long commits took, by kind: `durable` (a write a client is answered about) or
/// `bookkeeping` (the dispatcher's attempt records).
pub const COMMIT_DURATION: &str = "agora_db_commit_duration_seconds";
/// Events published per group commit (one transaction, one `fsync`).
pub const GROUP_COMMIT_EVENTS: &str = "agora_group_commit_events";
/// Database calls that failed, by kind: `unavailable` (down, full, locked: retrying may
/// succeed) or `internal` (a statement refused).
pub const STORAGE_ERRORS: &str = "agora_storage_errors_total";
/// Webhooks the dispatcher disabled, by reason: `gone` (410) or `failing` (failed too long).
pub const AUTO_DISABLED: &str = "agora_webhooks_auto_disabled_total";

/// Which commit [`commit_timed`] measures.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Commit {
    /// On disk before it returns.
    Durable,
    /// The dispatcher's own bookkeeping.
    Bookkeeping,
}

/// Commits `tx`, recording how long the commit took.
pub(crate) async fn commit_timed(tx: Tx, kind: Commit) -> Result<(), StoreError> {
    let started = Instant::now();
    let committed = tx.commit().await;
    let seconds = started.elapsed().as_secs_f64();
    match kind {
        Commit::Durable => {
            metrics::histogram!(COMMIT_DURATION, "kind" => "durable").record(seconds)
        }
        Commit::Bookkeeping => {
            metrics::histogram!(COMMIT_DURATION, "kind" => "bookkeeping").record(seconds)
        }
    }
    Ok(committed?)
}

/// Counts a database call that failed, by what can be done about it.
pub(crate) fn storage_error(unavailable: bool) {
    if unavailable {
        metrics::counter!(STORAGE_ERRORS, "kind" => "unavailable").increment(1);
    } else {
        metrics::counter!(STORAGE_ERRORS, "kind" => "internal").increment(1);
    }
}

/// Counts webhooks disabled by one batch of attempts.
pub(crate) fn auto_disabled(gone: usize, failing: usize) {
    if gone > 0 {
        metrics::counter!(AUTO_DISABLED, "reason" => "gone").increment(gone as u64);
    }
    if failing > 0 {
        metrics::counter!(AUTO_DISABLED, "reason" => "failing").increment(failing as u64);
    }
}

/// The queue and the webhooks at one moment, for the gauges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueSample {
    /// Deliveries waiting for a first attempt: `pending`, and on SQLite those parked while
    /// their webhook has its share of work in memory.
    pub pending: i64,
    /// Deliveries waiting for a retry (`failed`).
    pub failed: i64,
    /// The earliest `due_at` (unix ms) of any delivery waiting in the database: pending,
    /// failed, (PostgreSQL) leased by a node whose lease has run out, or (SQLite) parked, due
    /// since it was made.
    pub earliest_due_at: Option<i64>,
    /// Webhooks that receive deliveries.
    pub webhooks_active: i64,
    /// Webhooks that receive nothing (disabled by hand or automatically).
    pub webhooks_inactive: i64,
}

impl QueueSample {
    /// Keeps `due` (unix ms) as the earliest due time if it is earlier than the one kept.
    fn earliest_due(&mut self, due: Option<i64>) {
        self.earliest_due_at = match (self.earliest_due_at, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

impl Store {
    /// Counts the waiting deliveries and the webhooks by status. The deliveries are read
    /// through the due index (and on SQLite the parked ones through the webhook index from
    /// each cursor), which hold only the work still to do, so the sample costs in proportion
    /// to the backlog, never to the history kept for the delivery log.
    pub async fn sample_queue(&self) -> Result<QueueSample, StoreError> {
        let mut sample = QueueSample::default();
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n, MIN(due_at) AS earliest FROM deliveries \
             WHERE due_at IS NOT NULL GROUP BY status",
        )
        .fetch_all(&self.read)
        .await?;
        for row in rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            let earliest: Option<i64> = row.try_get("earliest")?;
            match status.as_str() {
                "pending" => sample.pending = n,
                "failed" => sample.failed = n,
                _ => {}
            }
            sample.earliest_due(earliest);
        }
        if self.backend == Backend::Sqlite {
            let (parked, oldest) = self.count_parked().await?;
            sample.pending += parked;
            sample.earliest_due(oldest.as_deref().and_then(id_time));
        }
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM webhooks GROUP BY status")
            .fetch_all(&self.read)
            .await?;
        for row in rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            match status.as_str() {
                "active" => sample.webhooks_active = n,
                _ => sample.webhooks_inactive += n,
            }
        }
        Ok(sample)
    }
}
