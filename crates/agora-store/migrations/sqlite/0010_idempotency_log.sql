-- Idempotency keys recorded by publications go first to this log, appended in commit order
-- with no index to update, and are moved into idempotency_keys in sorted batches about once a
-- second (agora-store/src/idempotency/log.rs). `seq` never goes back, even once the log is
-- emptied, so a row's place tells whether a move has taken it. SQLite only: PostgreSQL
-- records keys in idempotency_keys directly.
CREATE TABLE idempotency_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    caller TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status INTEGER,
    body TEXT,
    created_at INTEGER NOT NULL
);
