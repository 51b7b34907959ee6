//! SQLite's claim: a window of the due order read through the due index and leased by rowid,
//! then parked deliveries read back without a write. Both rely on the single writer.

use agora_core::dispatcher::{ClaimRequest, LeasedDelivery};
use sqlx::Row;

use super::parked::Cursor;
use crate::deliveries::{leased, skipping};
use crate::{Store, StoreError};

impl Store {
    /// Leases due work on SQLite, where one process claims: the head of the due order, `window`
    /// rows of it or all, is read through the due index, then webhooks with no room are
    /// filtered out. Without the window (`claim_window.rs`), a claim behind a large backlog of
    /// skipped webhooks would read all of it every time, holding the only writer.
    ///
    /// What is taken is the first rows of the window that pass the filter, without sorting them
    /// again: the window is read in due order, and whatever order SQLite hands its rows on in,
    /// every row taken is among the earliest due. Sorting the window again made the claim's
    /// `SELECT` markedly dearer (`scripts/sqlite_claim_cost.py` measures both).
    ///
    /// The chosen rows come back as one JSON row, and the lease is written by rowid without
    /// `RETURNING`: sqlx hands rows from its SQLite thread to the caller through a channel of 50,
    /// so a claim streaming a thousand rows stopped the writer every time that channel filled
    /// until the dispatcher's task came round to drain it, the writer thread's most frequent
    /// wait.
    pub(crate) async fn claim_on_sqlite(
        &self,
        request: &ClaimRequest,
        window: Option<usize>,
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        // $1 now, $2 limit, $3 window, then the skipped webhooks.
        let skip = skipping(4, &request.skip_webhooks);
        let choose = format!(
            "SELECT json_group_array(json_array(d.rowid, d.id, d.webhook_id, d.event_id, \
             d.event_type, d.attempts, d.attempt_base)) AS claimed FROM deliveries d \
             WHERE d.rowid IN (SELECT rowid FROM (SELECT rowid, webhook_id, due_at FROM deliveries \
             WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $3) AS head \
             WHERE due_at IS NOT NULL {skip} LIMIT $2)"
        );
        let window = window.unwrap_or(usize::MAX).min(i64::MAX as usize) as i64;
        let mut q = sqlx::query(&choose)
            .bind(request.now)
            .bind(request.limit as i64)
            .bind(window);
        for w in &request.skip_webhooks {
            q = q.bind(w.clone());
        }
        let mut tx = self.begin_bookkeeping().await?;
        let claimed: String = q.fetch_one(&mut *tx).await?.try_get("claimed")?;
        let rows: Vec<ChosenRow> = serde_json::from_str(&claimed)
            .map_err(|e| StoreError::internal("unreadable claim").because(e))?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rowids = serde_json::to_string(&rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .expect("integers serialize");
        // `OR FAIL`: see `Backend::or_fail`.
        sqlx::query(
            "UPDATE OR FAIL deliveries SET status = 'in_flight', lease_owner = $1, due_at = $2, \
             attempts = attempts + 1, updated_at = $3 \
             WHERE rowid IN (SELECT value FROM json_each($4))",
        )
        .bind(request.node.clone())
        .bind(self.backend.lease_due_at(request.lease_until))
        .bind(request.now)
        .bind(rowids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(
                |ChosenRow(_, id, webhook_id, event_id, event_type, attempts, base)| {
                    // What the update just wrote: this is attempt `attempts + 1`.
                    leased(id, webhook_id, event_id, event_type, attempts + 1, base)
                },
            )
            .collect())
    }
}

/// One row chosen by a SQLite claim, as its JSON array: rowid, id, webhook, event, event type,
/// attempts and attempt base before the claim.
#[derive(serde::Deserialize)]
struct ChosenRow(i64, String, String, String, String, i64, i64);

/// One parked delivery read back, as its JSON array: id, event, event type, attempts and
/// attempt base.
#[derive(serde::Deserialize)]
struct ParkedRow(String, String, String, i64, i64);

impl Store {
    /// Reads back up to `room` parked deliveries (see [`super::parked`]) of the webhooks not
    /// in `skip`, an equal share each (the last ones may get less), oldest first, writing
    /// nothing. The single write connection is held from the first read to the last move of
    /// the register, so no publish can park a delivery between a read and the move it causes.
    /// A read that fails after others succeeded ends the round with what was read, whose
    /// cursors have moved: failing the whole claim would drop rows already moved past.
    pub(crate) async fn read_parked(
        &self,
        skip: &[String],
        room: usize,
    ) -> Result<Vec<LeasedDelivery>, StoreError> {
        let parked = &self.leasing.parked;
        let readable = parked.readable(skip);
        if readable.is_empty() {
            return Ok(Vec::new());
        }
        let share = room.div_ceil(readable.len());
        let Some(sqlite) = &self.sqlite else {
            return Ok(Vec::new());
        };
        let mut conn = sqlite.writer.acquire().await?;
        let mut read = Vec::new();
        for (webhook_id, cursor) in readable {
            let ask = share.min(room - read.len());
            if ask == 0 {
                break;
            }
            let rows = match parked_rows(&mut conn, &webhook_id, cursor, ask).await {
                Ok(rows) => rows,
                Err(e) if read.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "failed to read parked deliveries; keeping those read");
                    break;
                }
            };
            let last = rows.iter().map(|r| r.0.clone()).max();
            parked.advance(&webhook_id, last, rows.len() < ask);
            read.extend(rows.into_iter().map(
                |ParkedRow(id, event_id, event_type, attempts, base)| {
                    leased(id, webhook_id.clone(), event_id, event_type, attempts, base)
                },
            ));
        }
        Ok(read)
    }
}

impl Store {
    /// How many deliveries are parked, and the id of the oldest, for the metrics sampler.
    /// Every row of a webhook from its cursor on is parked (its new deliveries are parked
    /// while it has any), so each webhook costs one count over the `(webhook_id, id)` index,
    /// without reading the table. Read beside the writer: a publish or a claim running
    /// meanwhile makes the count a moment old, which a gauge allows.
    pub(crate) async fn count_parked(&self) -> Result<(i64, Option<String>), StoreError> {
        let (mut count, mut oldest) = (0, None::<String>);
        for (webhook_id, cursor) in self.leasing.parked.readable(&[]) {
            let (bound, from) = match cursor {
                Cursor::From(id) => (">=", id),
                Cursor::After(id) => (">", id),
            };
            let row = sqlx::query(&format!(
                "SELECT COUNT(*) AS n, MIN(id) AS first FROM deliveries \
                 WHERE webhook_id = $1 AND id {bound} $2"
            ))
            .bind(webhook_id)
            .bind(from)
            .fetch_one(&self.read)
            .await?;
            count += row.try_get::<i64, _>("n")?;
            if let Some(first) = row.try_get::<Option<String>, _>("first")? {
                if oldest.as_ref().is_none_or(|o| first < *o) {
                    oldest = Some(first);
                }
            }
        }
        Ok((count, oldest))
    }
}

/// Up to `ask` parked deliveries of `webhook_id` from `cursor` on, in id order, as one JSON row.
async fn parked_rows(
    conn: &mut sqlx::AnyConnection,
    webhook_id: &str,
    cursor: Cursor,
    ask: usize,
) -> Result<Vec<ParkedRow>, StoreError> {
    let (bound, from) = match cursor {
        Cursor::From(id) => (">=", id),
        Cursor::After(id) => (">", id),
    };
    let sql = format!(
        "SELECT json_group_array(json_array(id, event_id, event_type, attempts, attempt_base)) \
         AS parked FROM (SELECT id, event_id, event_type, attempts, attempt_base FROM deliveries \
         WHERE webhook_id = $1 AND id {bound} $2 AND status = 'in_flight' AND lease_owner IS NULL \
         ORDER BY id LIMIT $3)"
    );
    let rows: String = sqlx::query(&sql)
        .bind(webhook_id.to_owned())
        .bind(from)
        .bind(ask as i64)
        .fetch_one(&mut *conn)
        .await?
        .try_get("parked")?;
    serde_json::from_str(&rows)
        .map_err(|e| StoreError::internal("unreadable parked deliveries").because(e))
}
