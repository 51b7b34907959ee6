-- Idempotency keys: one row per (caller, key), recorded in the transaction of the write it
-- guards, its answer stored after the commit. Kept in step with
-- ../postgres/0009_idempotency_keys.sql.
CREATE TABLE idempotency_keys (
    caller TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status INTEGER,
    body TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (caller, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
