//! Idempotency keys: a write sent again with the same `Idempotency-Key` is answered with its
//! first answer and changes nothing.
//!
//! The API resolves a request's [`Claim`] (caller, key, a hash of the request) and runs the
//! handler inside [`with_claim`]. The first publication of that request records the key in its
//! own transaction, before any change: [`Store::begin_publication`] for forum writes, the group
//! committer for `POST /v1/events` and batches. So a key is recorded if and only if its write
//! committed, and a second request with the key cannot write: its insert finds the row (on
//! PostgreSQL it waits for the first transaction to end) and the publication fails with
//! [`StoreError::IdempotencyKeyTaken`]. Event publishes store their answer in that same
//! transaction (the handler names how it answers, [`answer_with`]); forum writes store theirs
//! right after the commit ([`Store::record_idempotent_answer`]). A repeat that finds the key
//! without an answer is told the first request is still in progress.
//!
//! On SQLite the keys a publication records go to a log first, which `log` moves into the
//! keys' table about once a second: the publish path then touches no index.
//!
//! The claim travels in a task-local, not through every handler's arguments: a request without
//! the header pays one failed task-local lookup per publication, nothing else.

pub(crate) mod log;

use std::future::Future;
use std::sync::{Arc, Mutex};

use agora_core::event::Event;
use agora_core::time::now_ms;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::publication::Publication;
use crate::{Params, Store, StoreError};

/// How long a key answers with its first answer: 24 hours.
pub const KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

tokio::task_local! {
    static CLAIM: Arc<Claim>;
}

/// One request's idempotency key, scoped to its caller.
#[derive(Debug)]
pub struct Claim {
    caller: String,
    key: String,
    request_hash: String,
    /// Which request recorded the row, so only its own answer is ever stored on it.
    request: String,
    state: Mutex<ClaimState>,
    /// How the request answers its events, when it publishes through the group committer.
    render: Mutex<Option<Render>>,
}

/// Renders a publish's answer (status and body) from its events and the deliveries each
/// queued, so the answer can be stored in the transaction that writes them.
pub type Render = fn(&[&Event], &[usize]) -> (u16, String);

/// An answer as stored: its HTTP status and body.
pub(crate) type Answer = (u16, String);

/// The columns a key's row is written with, in the order [`bind_rows`] binds them.
const COLUMNS: &str = "caller, idem_key, request_hash, request_id, created_at, status, body";

/// Binds the [`COLUMNS`] of each of `claims`' rows, recorded at `now`; an answer's `status`
/// and `body` are `NULL` while there is none.
fn bind_rows<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    claims: &[&(&Claim, Option<Answer>)],
    now: i64,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for (claim, answer) in claims {
        let (status, body) = match answer {
            Some((status, body)) => (Some(i64::from(*status)), Some(body.clone())),
            None => (None, None),
        };
        query = query
            .bind(claim.caller.clone())
            .bind(claim.key.clone())
            .bind(claim.request_hash.clone())
            .bind(claim.request.clone())
            .bind(now)
            .bind(status)
            .bind(body);
    }
    query
}

/// What the request's publications did with its claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimState {
    /// No publication has run (or none recorded the key).
    Unused,
    /// A publication recorded the key in its transaction.
    Recorded,
    /// A publication recorded the key and its answer in its transaction.
    Answered,
    /// The key was already recorded by another request: nothing was written.
    Taken,
}

/// What the store holds for a caller's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// No live record: the request may run.
    Absent,
    /// Recorded for another request body.
    OtherRequest,
    /// Recorded for this request, whose answer is not stored yet.
    InProgress,
    /// Recorded for this request, with its answer.
    Answered {
        /// The HTTP status of the first answer.
        status: u16,
        /// Its body.
        body: String,
    },
}

impl Claim {
    /// A claim of `key` by `caller` (e.g. `key:{api key id}` or `user:{user id}`) for the
    /// request `method path` with `body`; the hash of all three decides what a repeat is.
    pub fn new(caller: String, key: String, method: &str, path: &str, body: &[u8]) -> Self {
        let mut hash = Sha256::new();
        for part in [method.as_bytes(), b" ", path.as_bytes(), b"\n", body] {
            hash.update(part);
        }
        Self {
            caller,
            key,
            request_hash: hex::encode(hash.finalize()),
            request: agora_core::ids::new_id("req"),
            state: Mutex::new(ClaimState::Unused),
            render: Mutex::new(None),
        }
    }

    /// What the request's publications did with the claim.
    pub fn state(&self) -> ClaimState {
        *self.state.lock().expect("claim state lock")
    }

    /// The answer the request gives for `events` queuing `queued` deliveries each, when its
    /// handler named how it answers ([`answer_with`]).
    pub(crate) fn answer(&self, events: &[&Event], queued: &[usize]) -> Option<(u16, String)> {
        let render = (*self.render.lock().expect("claim render lock"))?;
        Some(render(events, queued))
    }

    fn set(&self, state: ClaimState) {
        *self.state.lock().expect("claim state lock") = state;
    }
}

/// Records the keys of a publication's callers (those with a key), each with the answer its
/// request will give when it has one; marks each claim answered, recorded (no answer yet) or
/// taken. A key twice among them (concurrent repeats committed together) is recorded for its
/// first request only.
pub(crate) async fn record_all(
    publication: &mut Publication,
    claims: &[(&Claim, Option<Answer>)],
) -> Result<(), StoreError> {
    let mut firsts: Vec<&(&Claim, Option<Answer>)> = Vec::with_capacity(claims.len());
    for keyed in claims {
        let claim = keyed.0;
        if firsts
            .iter()
            .any(|(first, _)| first.caller == claim.caller && first.key == claim.key)
        {
            claim.set(ClaimState::Taken);
        } else {
            firsts.push(keyed);
        }
    }
    if firsts.is_empty() {
        return Ok(());
    }
    let recorded = match publication.key_log() {
        Some(key_log) => log::record(publication, &key_log, &firsts).await?,
        None => record_in_table(publication, &firsts).await?,
    };
    for (claim, answer) in firsts {
        claim.set(match (recorded.contains(&claim.request), answer) {
            (false, _) => ClaimState::Taken,
            (true, Some(_)) => ClaimState::Answered,
            (true, None) => ClaimState::Recorded,
        });
    }
    Ok(())
}

/// Records `claims` in `idempotency_keys` in one statement, taking over keys recorded more
/// than 24 hours ago (PostgreSQL, where concurrent transactions wait on the key's primary key
/// for each other). Answers the ids of the requests whose keys it recorded.
async fn record_in_table(
    publication: &mut Publication,
    claims: &[&(&Claim, Option<Answer>)],
) -> Result<Vec<String>, StoreError> {
    let mut params = Params::for_tx(publication);
    let rows = params.rows(claims.len(), 7);
    let sql = format!(
        "INSERT INTO idempotency_keys ({COLUMNS}) VALUES {rows} \
         ON CONFLICT (caller, idem_key) DO UPDATE SET request_hash = excluded.request_hash, \
         request_id = excluded.request_id, created_at = excluded.created_at, \
         status = excluded.status, body = excluded.body \
         WHERE idempotency_keys.created_at < {} RETURNING request_id",
        params.next()
    );
    let now = now_ms();
    let rows = bind_rows(sqlx::query(&sql), claims, now)
        .bind(now - KEY_LIFETIME_MS)
        .fetch_all(&mut ***publication)
        .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get("request_id"))
        .collect::<Result<_, _>>()?)
}

/// Names how the running request answers the events it publishes, if it carries an
/// idempotency key: its answer is then stored with its events, in their transaction. The
/// handler must answer with exactly what `render` gives.
pub fn answer_with(render: Render) {
    let _ = CLAIM.try_with(|claim| *claim.render.lock().expect("claim render lock") = Some(render));
}

/// Runs `work` (a request's handler) with `claim` as the request's idempotency key.
pub async fn with_claim<F: Future>(claim: Arc<Claim>, work: F) -> F::Output {
    CLAIM.scope(claim, work).await
}

/// The claim of the request running in this task, if it has one no publication used yet: a
/// request records its key once, in its first publication.
pub(crate) fn unused_claim() -> Option<Arc<Claim>> {
    CLAIM
        .try_with(|claim| (claim.state() == ClaimState::Unused).then(|| claim.clone()))
        .ok()
        .flatten()
}

/// Records the claim of the running request, if any, in `publication`; a key already
/// recorded fails the publication before it changes anything.
pub(crate) async fn record_current(publication: &mut Publication) -> Result<(), StoreError> {
    let Some(claim) = unused_claim() else {
        return Ok(());
    };
    record_all(publication, &[(&claim, None)]).await?;
    match claim.state() {
        ClaimState::Taken => Err(StoreError::IdempotencyKeyTaken),
        _ => Ok(()),
    }
}

impl Store {
    /// What is stored for `claim`'s caller and key, compared with its request.
    pub async fn idempotent_answer(&self, claim: &Claim) -> Result<Stored, StoreError> {
        let logged = match &self.key_log {
            Some(key_log) => log::find(&self.read, key_log, claim).await?,
            None => None,
        };
        let row = match logged {
            Some(row) => Some(row),
            None => {
                sqlx::query(
                    "SELECT request_hash, status, body FROM idempotency_keys \
                     WHERE caller = $1 AND idem_key = $2 AND created_at >= $3",
                )
                .bind(&claim.caller)
                .bind(&claim.key)
                .bind(now_ms() - KEY_LIFETIME_MS)
                .fetch_optional(&self.read)
                .await?
            }
        };
        let Some(row) = row else {
            return Ok(Stored::Absent);
        };
        let hash: String = row.try_get("request_hash")?;
        if hash != claim.request_hash {
            return Ok(Stored::OtherRequest);
        }
        let status: Option<i64> = row.try_get("status")?;
        Ok(match status {
            None => Stored::InProgress,
            Some(status) => Stored::Answered {
                status: u16::try_from(status).unwrap_or(500),
                body: row.try_get("body")?,
            },
        })
    }

    /// Stores the answer of the request that recorded `claim`'s key; does nothing for a
    /// request that did not.
    pub async fn record_idempotent_answer(
        &self,
        claim: &Claim,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        if claim.state() != ClaimState::Recorded {
            return Ok(());
        }
        let in_log = self
            .key_log
            .as_ref()
            .and_then(|key_log| log::answer_statement(key_log, claim, status, body));
        if let Some(statement) = in_log {
            if self.execute_durably(statement).await?.rows_affected() == 1 {
                return Ok(());
            }
        }
        self.execute_durably(
            sqlx::query(
                "UPDATE idempotency_keys SET status = $1, body = $2 \
                 WHERE caller = $3 AND idem_key = $4 AND request_id = $5",
            )
            .bind(i64::from(status))
            .bind(body.to_owned())
            .bind(claim.caller.clone())
            .bind(claim.key.clone())
            .bind(claim.request.clone()),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;
    use agora_core::dispatcher::Waker;

    fn claim(body: &[u8]) -> Arc<Claim> {
        Arc::new(Claim::new(
            "key:key_1".into(),
            "k".into(),
            "POST",
            "/v1/threads",
            body,
        ))
    }

    async fn log_rows(store: &Store) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM idempotency_log")
            .fetch_one(&store.read)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_key_is_recorded_with_its_write_once_answered_and_pruned_after_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &Store::sqlite_url(dir.path()),
            Waker::default(),
            StoreOptions::default(),
        )
        .await
        .unwrap();

        // Rolled back with its write: not recorded.
        let first = claim(b"{}");
        with_claim(first.clone(), async {
            drop(store.begin_publication().await.unwrap());
        })
        .await;
        assert_eq!(
            store.idempotent_answer(&first).await.unwrap(),
            Stored::Absent
        );

        let first = claim(b"{}");
        with_claim(first.clone(), async {
            store
                .begin_publication()
                .await
                .unwrap()
                .commit()
                .await
                .unwrap();
        })
        .await;
        assert_eq!(first.state(), ClaimState::Recorded);
        assert_eq!(
            store.idempotent_answer(&first).await.unwrap(),
            Stored::InProgress
        );
        let other = claim(b"{\"x\":1}");
        assert_eq!(
            store.idempotent_answer(&other).await.unwrap(),
            Stored::OtherRequest
        );

        let repeat = claim(b"{}");
        let taken = with_claim(repeat.clone(), store.begin_publication()).await;
        assert!(matches!(taken, Err(StoreError::IdempotencyKeyTaken)));
        assert_eq!(repeat.state(), ClaimState::Taken);
        store
            .record_idempotent_answer(&repeat, 500, "no")
            .await
            .unwrap();
        store
            .record_idempotent_answer(&first, 201, "{\"id\":1}")
            .await
            .unwrap();
        assert_eq!(
            store.idempotent_answer(&repeat).await.unwrap(),
            Stored::Answered {
                status: 201,
                body: "{\"id\":1}".into()
            }
        );

        // An event publish stores its answer with its event.
        fn render(events: &[&Event], queued: &[usize]) -> (u16, String) {
            (202, format!("{} {}", events[0].id, queued[0]))
        }
        let event = Event::new(
            agora_core::event::EventType::parse("course.enrolled").unwrap(),
            serde_json::json!({}),
        );
        let published = Arc::new(Claim::new(
            "key:key_1".into(),
            "e".into(),
            "POST",
            "/v1/events",
            b"{}",
        ));
        with_claim(published.clone(), async {
            answer_with(render);
            store.publish_event(event.clone(), None).await.unwrap();
        })
        .await;
        assert_eq!(published.state(), ClaimState::Answered);
        assert_eq!(
            store.idempotent_answer(&published).await.unwrap(),
            Stored::Answered {
                status: 202,
                body: format!("{} 0", event.id)
            }
        );

        // Moved out of the log (where the merger may have moved some already), the keys
        // answer as before and are still taken.
        log::merge(&store.write, store.key_log.as_ref().unwrap())
            .await
            .unwrap();
        assert_eq!(log_rows(&store).await, 0);
        assert!(!store.key_log.as_ref().unwrap().holds_keys());
        assert_eq!(
            store.idempotent_answer(&published).await.unwrap(),
            Stored::Answered {
                status: 202,
                body: format!("{} 0", event.id)
            }
        );
        let repeat = claim(b"{}");
        let taken = with_claim(repeat.clone(), store.begin_publication()).await;
        assert!(matches!(taken, Err(StoreError::IdempotencyKeyTaken)));

        assert_eq!(store.prune_batch(0, 100).await.unwrap().idempotency_keys, 0);
        sqlx::query("UPDATE idempotency_keys SET created_at = created_at - $1")
            .bind(KEY_LIFETIME_MS + 1)
            .execute(&store.write)
            .await
            .unwrap();
        assert_eq!(
            store.idempotent_answer(&first).await.unwrap(),
            Stored::Absent
        );
        assert_eq!(store.prune_batch(0, 100).await.unwrap().idempotency_keys, 2);
        store.close().await;
    }
}
