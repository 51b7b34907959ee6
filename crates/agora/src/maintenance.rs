//! Background timers of a node. Each is safe to run on every node of a cluster at once: the
//! work it does is idempotent or guarded by a conditional update.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use agora_core::time::now_ms;
use agora_store::Store;

/// Rows deleted per transaction: small, so the writer is never held for long.
const PRUNE_BATCH: i64 = 500;

/// Every `interval`, deletes what is older than `retention`, batch by batch, pausing between
/// batches so that delivery traffic goes first.
pub async fn prune_forever(
    store: Store,
    retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        let cutoff = now_ms() - retention.as_millis() as i64;
        let mut removed = 0;
        loop {
            match store.prune_batch(cutoff, PRUNE_BATCH).await {
                Ok(pruned) if pruned.total() == 0 => break,
                Ok(pruned) => removed += pruned.total(),
                Err(e) => {
                    tracing::warn!(error = %e, "retention pass failed; retrying next interval");
                    break;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if removed > 0 {
            tracing::info!(
                rows = removed,
                "pruned records older than the retention age"
            );
        }
    }
}
