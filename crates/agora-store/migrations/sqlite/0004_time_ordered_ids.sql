-- Retention finds old deliveries and attempts by id (ids sort by creation time), so the
-- time indexes that every insert paid for go. Kept in step with ../postgres/0004_time_ordered_ids.sql.
DROP INDEX deliveries_created;
DROP INDEX attempts_started;
