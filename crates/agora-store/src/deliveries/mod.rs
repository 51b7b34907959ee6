//! Deliveries: the durable state machine the dispatcher drives, and the delivery log.
//!
//! ```text
//! pending ──claim──▶ in_flight ──2xx──▶ succeeded
//!    ▲                  │ ├──fail, retries left──▶ failed ──due──▶ (claimed again)
//!    │                  │ └──fail, none left / 410──▶ exhausted
//!    └── redeliver, recover, lease expiry, shutdown ◀┘
//! ```
//!
//! `due_at` carries the next attempt time of pending and failed deliveries and the lease expiry
//! of in-flight ones (none on SQLite, where leases never expire: see
//! `Backend::lease_due_at`), so one partial index answers "what is due" whatever the backlog.

mod claim;
mod load;
mod log;
mod record;
mod state;

use std::sync::Arc;

use agora_core::dispatcher::{
    AttemptRecord, ClaimRequest, ClaimedDelivery, DeliveryQueue, Lease, LeasedDelivery, QueueError,
};
use agora_core::time::now_ms;
use sqlx::Row;

pub(crate) use self::claim::skipping;
pub(crate) use self::load::leased;
pub use self::log::{Attempt, Delivery, DeliveryFilter};
pub(crate) use self::record::disable_webhook;
pub(crate) use self::state::close_queued;
use self::state::give_back_where;
pub use self::state::Status;
use crate::{Backend, Store, StoreError};

impl DeliveryQueue for Store {
    fn bookkeeping_runtime(&self) -> Option<tokio::runtime::Handle> {
        self.writer_runtime()
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<LeasedDelivery>, QueueError> {
        let store = self.clone();
        let leased = self
            .on_writer(async move {
                match store.backend {
                    Backend::Sqlite => {
                        let window = store.sqlite.as_ref().and_then(|sqlite| {
                            let skipping = !request.skip_webhooks.is_empty();
                            sqlite.claim_window.rows(request.limit, skipping)
                        });
                        let mut leased = store.claim_on_sqlite(&request, window).await?;
                        let room = request.limit.saturating_sub(leased.len());
                        if room > 0 {
                            leased.extend(store.read_parked(&request.skip_webhooks, room).await?);
                        }
                        Ok(leased)
                    }
                    Backend::Postgres => store.claim_on_postgres(&request).await,
                }
            })
            .await?;
        Ok(leased)
    }

    async fn load(&self, leased: &[LeasedDelivery]) -> Result<Vec<ClaimedDelivery>, QueueError> {
        Ok(self.load_leased(leased).await?)
    }

    async fn record(&self, attempts: Arc<[AttemptRecord]>) -> Result<(), QueueError> {
        let store = self.clone();
        Ok(self
            .on_writer(async move { store.record_attempts(&attempts).await })
            .await?)
    }

    async fn renew_leases(&self, node: &str, until: i64) -> Result<(), QueueError> {
        if self.backend.lease_due_at(until).is_none() {
            // Leases without expiry (SQLite) have nothing to renew.
            return Ok(());
        }
        sqlx::query(
            "UPDATE deliveries SET due_at = $1 WHERE lease_owner = $2 AND status = 'in_flight'",
        )
        .bind(until)
        .bind(node)
        .execute(&self.write)
        .await
        .map_err(StoreError::from)?;
        Ok(())
    }

    async fn leases(&self, node: &str) -> Result<Vec<Lease>, QueueError> {
        let rows = sqlx::query(
            "SELECT id, attempts FROM deliveries WHERE lease_owner = $1 AND status = 'in_flight'",
        )
        .bind(node)
        .fetch_all(&self.read)
        .await
        .map_err(StoreError::from)?;
        Ok(rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    row.try_get::<i64, _>("attempts")? as u32,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)?)
    }

    async fn give_back(&self, node: &str, leases: &[Lease]) -> Result<(), QueueError> {
        let (store, node, leases) = (self.clone(), node.to_owned(), leases.to_vec());
        Ok(self
            .on_writer(async move {
                let mut tx = store.begin_bookkeeping().await?;
                let sql = give_back_where("id = $2 AND attempts = $3 AND lease_owner = $4");
                for (id, attempt) in leases {
                    sqlx::query(&sql)
                        .bind(now_ms())
                        .bind(id)
                        .bind(i64::from(attempt))
                        .bind(node.clone())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await?)
    }

    async fn release_leases(&self, node: &str) -> Result<(), QueueError> {
        // Only deliveries never sent are still leased here: attempts made were recorded first.
        let held = match self.backend {
            // Parked deliveries are in flight with no owner; only this node writes any.
            Backend::Sqlite => "(lease_owner = $2 OR lease_owner IS NULL)",
            // Left to the partial lease index, which holds no unowned row.
            Backend::Postgres => "lease_owner = $2",
        };
        sqlx::query(&give_back_where(held))
            .bind(now_ms())
            .bind(node)
            .execute(&self.write)
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }
}
