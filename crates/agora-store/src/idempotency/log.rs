//! SQLite's idempotency keys, recorded on the publish path without touching an index.
//!
//! `idempotency_keys` is found through its primary key (caller, key), a b-tree in which each
//! new key lands at a random place: a group commit of twenty keys changed twenty of its pages,
//! each a 16 KiB frame of the write-ahead log written and fsynced, four times the bytes of the
//! same commit without keys. So on SQLite a publication appends its key to `idempotency_log`,
//! which has no index but its `seq`, and this process remembers where (SQLite has one server
//! process). About once a second [`merge`] moves the log into `idempotency_keys`, sorted, in one
//! relaxed transaction: each page of the index is written once per move rather than once per
//! commit, and memory holds about a second of keys.
//!
//! Rows only ever move from the log to the table, in one transaction, so whoever looks in the
//! log first and in the table second never misses a key. A remembered place whose transaction
//! rolled back may be reused by another key: every use of it checks the caller and key too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{bind_rows, Answer, Claim, COLUMNS, KEY_LIFETIME_MS};
use crate::transactions::{begin_on, relaxed_begin};
use crate::{metrics, Backend, Params, StoreError, Tx};

/// How often the log is moved into `idempotency_keys`.
const MERGE_EVERY: Duration = Duration::from_secs(1);

/// Where this process wrote the keys that are in `idempotency_log`.
#[derive(Debug, Default)]
pub(crate) struct KeyLog {
    inner: Mutex<Places>,
}

#[derive(Debug, Default)]
struct Places {
    /// Each key's `seq`, and the move during which it was written (see [`Places::moves`]).
    seqs: HashMap<(String, String), (i64, u64)>,
    /// Moves begun. A move holds the single writer, so every key written before it began
    /// is in its transaction (or was rolled back) and is forgotten once it commits.
    moves: u64,
}

impl KeyLog {
    fn places(&self) -> std::sync::MutexGuard<'_, Places> {
        self.inner.lock().expect("key log lock")
    }

    /// Whether this process wrote keys to the log that no move has taken yet.
    pub(crate) fn holds_keys(&self) -> bool {
        !self.places().seqs.is_empty()
    }

    fn seq(&self, claim: &Claim) -> Option<i64> {
        let places = self.places();
        let found = places.seqs.get(&(claim.caller.clone(), claim.key.clone()));
        found.map(|(seq, _)| *seq)
    }

    fn note(&self, claim: &Claim, seq: i64) {
        let mut places = self.places();
        let during = places.moves;
        places
            .seqs
            .insert((claim.caller.clone(), claim.key.clone()), (seq, during));
    }
}

/// Records the keys of `claims` (distinct keys, each with its request's answer when the
/// request has one) in `tx`, but for those already recorded in the last 24 hours. Answers the
/// ids of the requests whose keys it recorded.
pub(crate) async fn record(
    tx: &mut Tx,
    log: &KeyLog,
    claims: &[&(&Claim, Option<Answer>)],
) -> Result<Vec<String>, StoreError> {
    let mut fresh = Vec::with_capacity(claims.len());
    for keyed in claims {
        if !in_log(tx, log, keyed.0).await? {
            fresh.push(*keyed);
        }
    }
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    // One statement: the keys not live in the table go to the log. The table is searched
    // through its primary key, `created_at` only filtering what that finds.
    let mut params = Params::for_tx(tx);
    let rows = params.rows(fresh.len(), 7);
    let sql = format!(
        "INSERT INTO idempotency_log ({COLUMNS}) \
         SELECT column1, column2, column3, column4, column5, column6, column7 \
         FROM (VALUES {rows}) AS fresh WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys AS k \
         WHERE k.caller = fresh.column1 AND k.idem_key = fresh.column2 \
         AND k.created_at >= {}) \
         RETURNING seq, request_id",
        params.next()
    );
    let now = agora_core::time::now_ms();
    let query = bind_rows(sqlx::query(&sql), &fresh, now).bind(now - KEY_LIFETIME_MS);
    let mut recorded = Vec::with_capacity(fresh.len());
    for row in query.fetch_all(&mut **tx).await? {
        let (seq, request): (i64, String) = (row.try_get("seq")?, row.try_get("request_id")?);
        if let Some((claim, _)) = fresh.iter().find(|(claim, _)| claim.request == request) {
            log.note(claim, seq);
        }
        recorded.push(request);
    }
    Ok(recorded)
}

/// Whether `claim`'s key has a row in the log, as `tx` sees it.
async fn in_log(tx: &mut Tx, log: &KeyLog, claim: &Claim) -> Result<bool, StoreError> {
    let Some(seq) = log.seq(claim) else {
        return Ok(false);
    };
    let row = sqlx::query(
        "SELECT 1 FROM idempotency_log WHERE seq = $1 AND caller = $2 AND idem_key = $3",
    )
    .bind(seq)
    .bind(claim.caller.clone())
    .bind(claim.key.clone())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.is_some())
}

/// `claim`'s row in the log, if it is there (`request_hash`, `status`, `body`).
pub(crate) async fn find(
    read: &AnyPool,
    log: &KeyLog,
    claim: &Claim,
) -> Result<Option<AnyRow>, StoreError> {
    let Some(seq) = log.seq(claim) else {
        return Ok(None);
    };
    Ok(sqlx::query(
        "SELECT request_hash, status, body FROM idempotency_log \
         WHERE seq = $1 AND caller = $2 AND idem_key = $3",
    )
    .bind(seq)
    .bind(claim.caller.clone())
    .bind(claim.key.clone())
    .fetch_optional(read)
    .await?)
}

/// The statement storing the answer of `claim`'s request on its row in the log, if this
/// process wrote one.
pub(crate) fn answer_statement<'q>(
    log: &KeyLog,
    claim: &Claim,
    status: u16,
    body: &str,
) -> Option<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>> {
    let seq = log.seq(claim)?;
    Some(
        sqlx::query(
            "UPDATE idempotency_log SET status = $1, body = $2 \
             WHERE seq = $3 AND caller = $4 AND idem_key = $5 AND request_id = $6",
        )
        .bind(i64::from(status))
        .bind(body.to_owned())
        .bind(seq)
        .bind(claim.caller.clone())
        .bind(claim.key.clone())
        .bind(claim.request.clone()),
    )
}

/// Moves every row of the log into `idempotency_keys`, sorted by key, in one transaction, and
/// forgets the places of the keys written before it began. A row moved replaces a key's
/// expired row, which is what the publication that wrote it found.
pub(crate) async fn merge(pool: &AnyPool, log: &KeyLog) -> Result<(), StoreError> {
    let mut tx = begin_on(pool, relaxed_begin(Backend::Sqlite)).await?;
    let this_move = {
        let mut places = log.places();
        places.moves += 1;
        places.moves
    };
    sqlx::query(&format!(
        "INSERT INTO idempotency_keys ({COLUMNS}) SELECT {COLUMNS} \
         FROM idempotency_log WHERE true ORDER BY caller, idem_key \
         ON CONFLICT (caller, idem_key) DO UPDATE SET request_hash = excluded.request_hash, \
         request_id = excluded.request_id, created_at = excluded.created_at, \
         status = excluded.status, body = excluded.body"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM idempotency_log")
        .execute(&mut *tx)
        .await?;
    metrics::commit_timed(tx, metrics::Commit::Bookkeeping).await?;
    log.places()
        .seqs
        .retain(|_, (_, during)| *during >= this_move);
    Ok(())
}

/// Moves the log every [`MERGE_EVERY`] while it holds keys, until the store is closed or
/// dropped.
pub(crate) async fn merge_continually(pool: AnyPool, log: Arc<KeyLog>) {
    let mut every = tokio::time::interval(MERGE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() || Arc::strong_count(&log) == 1 {
            return;
        }
        if !log.holds_keys() {
            continue;
        }
        if let Err(e) = merge(&pool, &log).await {
            tracing::warn!(error = %e, "idempotency keys were not moved out of their log; retrying");
        }
    }
}
