//! Claiming due deliveries: leasing them to this node. On PostgreSQL one statement does it
//! here; SQLite's claim, which relies on its single writer, is in `sqlite/claim.rs`.

use agora_core::dispatcher::{ClaimRequest, LeasedDelivery};

use super::load::{leased_from_row, LEASED_COLUMNS};
use crate::{placeholders, Store, StoreError};

impl Store {
    /// Leases due work on PostgreSQL: each node skips the rows other nodes are claiming, so
    /// concurrent claims take disjoint work; the lock applies to the rows taken, never to a
    /// window of rows other nodes could take.
    pub(super) async fn claim_on_postgres(
        &self,
        request: &ClaimRequest,
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        // $1 node, $2 lease expiry, $3 now, $4 limit, then the skipped webhooks.
        let skip = skipping(5, &request.skip_webhooks);
        let sql = format!(
            "UPDATE deliveries SET status = 'in_flight', lease_owner = $1, due_at = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM deliveries WHERE due_at IS NOT NULL AND due_at <= $3 {skip} \
             ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING {LEASED_COLUMNS}"
        );
        let mut q = sqlx::query(&sql)
            .bind(request.node.clone())
            .bind(self.backend.lease_due_at(request.lease_until))
            .bind(request.now)
            .bind(request.limit as i64);
        for w in &request.skip_webhooks {
            q = q.bind(w.clone());
        }
        let mut tx = self.begin_bookkeeping().await?;
        let leased = q
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(leased_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(leased)
    }
}

/// The claim's filter leaving out the webhooks with no room, its parameters numbered from
/// `first`.
pub(crate) fn skipping(first: usize, webhooks: &[String]) -> String {
    if webhooks.is_empty() {
        return String::new();
    }
    format!(
        "AND webhook_id NOT IN ({})",
        placeholders(first, webhooks.len())
    )
}
