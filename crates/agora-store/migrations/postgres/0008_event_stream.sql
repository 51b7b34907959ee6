-- Event history and the live stream.
--
-- An operational event (`webhook.*`) is seen only by the key that owns its webhook and by
-- admins, so the event keeps its owner.
--
-- The stream follows events in an order every node agrees on and that never grows behind a
-- reader: (seq, id), where seq is the id of the transaction that wrote the event. Ids made by
-- concurrent transactions commit out of order, so a reader of `id > last` would skip an event
-- whose transaction commits after a later one's. A reader instead reads only events whose
-- transaction is older than the oldest one still running (pg_snapshot_xmin): those are final,
-- and every transaction yet to commit has a larger id. Kept in step with
-- ../sqlite/0008_event_stream.sql.
ALTER TABLE events ADD COLUMN owner_key_id TEXT;
ALTER TABLE events ADD COLUMN seq BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX events_stream ON events (seq, id);
