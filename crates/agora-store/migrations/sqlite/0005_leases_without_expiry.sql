-- On SQLite a lease never expires (one process owns the database and its start-up gives back
-- every lease), so in-flight deliveries leave the due index and nothing looks leases up by
-- owner except the shutdown, which may scan. Every claim and every record paid for this index.
-- PostgreSQL keeps its own: there leases expire, and each node renews its own by owner.
DROP INDEX deliveries_lease;
UPDATE deliveries SET due_at = NULL WHERE status = 'in_flight';
