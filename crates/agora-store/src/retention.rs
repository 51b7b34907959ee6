//! Retention: finished deliveries, their attempts and events older than the retention age are
//! deleted in small batches, each its own short transaction, so pruning never holds the
//! writer for long and never blocks delivery. Deleting is idempotent, so every node of a
//! cluster may prune at once. Idempotency keys go once their 24 hours are over, whatever the
//! retention age.

use agora_core::ids::{id_floor, ATTEMPT, DELIVERY};
use agora_core::time::now_ms;
use sqlx::Row;

use crate::idempotency::KEY_LIFETIME_MS;
use crate::{Store, StoreError};

/// What one pruning pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Attempt records.
    pub attempts: u64,
    /// Finished deliveries.
    pub deliveries: u64,
    /// Events no delivery refers to any more.
    pub events: u64,
    /// Idempotency keys past their lifetime.
    pub idempotency_keys: u64,
}

impl Pruned {
    /// Rows removed in all.
    pub fn total(&self) -> u64 {
        self.attempts + self.deliveries + self.events + self.idempotency_keys
    }
}

impl Store {
    /// Deletes up to `batch` rows of each kind created before `cutoff` (unix ms). Deliveries
    /// still pending or failing are kept whatever their age, and so are their events.
    /// Deliveries and attempts are found by id, which sorts by creation time ([`id_floor`]),
    /// so neither table pays for an index on a time column on every insert. Idempotency keys
    /// are deleted once older than [`KEY_LIFETIME_MS`], whatever `cutoff` says.
    pub async fn prune_batch(&self, cutoff: i64, batch: i64) -> Result<Pruned, StoreError> {
        let mut tx = self.begin_bookkeeping().await?;
        let finished: Vec<String> = sqlx::query(
            "SELECT id FROM deliveries WHERE id < $1 AND status IN ('succeeded', 'exhausted') \
             ORDER BY id LIMIT $2",
        )
        .bind(id_floor(DELIVERY, cutoff))
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
        let mut pruned = Pruned::default();
        if !finished.is_empty() {
            let list = crate::Params::for_tx(&mut tx).list(finished.len());
            let attempts = format!("DELETE FROM attempts WHERE delivery_id IN ({list})");
            let deliveries = format!("DELETE FROM deliveries WHERE id IN ({list})");
            for (sql, counter) in [
                (&attempts, &mut pruned.attempts),
                (&deliveries, &mut pruned.deliveries),
            ] {
                let mut q = sqlx::query(sql);
                for id in &finished {
                    q = q.bind(id.clone());
                }
                *counter += q.execute(&mut *tx).await?.rows_affected();
            }
        }
        pruned.attempts += sqlx::query(
            "DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE id < $1 LIMIT $2)",
        )
        .bind(id_floor(ATTEMPT, cutoff))
        .bind(batch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        pruned.events = sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) LIMIT $2)",
        )
        .bind(cutoff)
        .bind(batch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        pruned.idempotency_keys = sqlx::query(
            "DELETE FROM idempotency_keys WHERE (caller, idem_key) IN (SELECT caller, idem_key \
             FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
        )
        .bind(now_ms() - KEY_LIFETIME_MS)
        .bind(batch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(pruned)
    }
}
