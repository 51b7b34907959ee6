-- The webhook engine: keys, webhooks, the event catalog, the outbox and the delivery log.
-- Times are unix milliseconds. Kept in step with ../sqlite/0001_webhooks.sql.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    abilities TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    owner_key_id TEXT,
    name TEXT,
    description TEXT,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until BIGINT,
    headers TEXT NOT NULL,
    retry_count BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    disabled_reason TEXT,
    filter TEXT,
    format TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_triggered_at BIGINT,
    last_error TEXT,
    last_success_at BIGINT,
    failure_streak BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhooks_owner ON webhooks (owner_key_id, id);

CREATE TABLE event_types (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    schema TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_created ON events (created_at);

-- status: pending | in_flight | succeeded | failed (retry scheduled) | exhausted.
-- due_at: when pending or failed, the next attempt; when in_flight, the lease expiry; else NULL.
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    due_at BIGINT,
    lease_owner TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    attempt_base BIGINT NOT NULL DEFAULT 0,
    last_status_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_lease ON deliveries (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    request_headers TEXT NOT NULL,
    response_status BIGINT,
    response_body TEXT,
    error TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
CREATE INDEX attempts_started ON attempts (started_at);
