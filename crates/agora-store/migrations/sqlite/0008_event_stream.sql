-- Event history and the live stream.
--
-- An operational event (`webhook.*`) is seen only by the key that owns its webhook and by
-- admins, so the event keeps its owner.
--
-- The stream follows events by `seq`. SQLite has one writer, so `seq` grows in commit order:
-- a reader never finds a smaller one appearing behind a larger one it has read. AUTOINCREMENT
-- keeps it from ever being reused, even after retention has pruned the newest events (a plain
-- rowid would start again below a reader's position). Kept in step with
-- ../postgres/0008_event_stream.sql.
CREATE TABLE events_by_seq (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    owner_key_id TEXT
);
INSERT INTO events_by_seq (id, type, body, created_at)
    SELECT id, type, body, created_at FROM events ORDER BY rowid;
DROP TABLE events;
ALTER TABLE events_by_seq RENAME TO events;
CREATE INDEX events_created ON events (created_at);
