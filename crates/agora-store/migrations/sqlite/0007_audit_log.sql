-- The audit trail: one row per administrative change (webhooks, deliveries re-queued, API
-- keys), written in the transaction of the change. Kept, never pruned. Ids sort by time, so
-- the list pages newest first by id; target and action filters have their own indexes.
-- Kept in step with ../postgres/0007_audit_log.sql.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    remote_addr TEXT,
    action TEXT NOT NULL,
    target_id TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
