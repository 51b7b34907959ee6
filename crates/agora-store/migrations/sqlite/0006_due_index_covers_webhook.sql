-- The claim reads a window of the earliest due deliveries and leaves out the webhooks that
-- hold their share of in-memory work. With the webhook in the due index the window is read
-- from the index alone; without it, every row of the window cost a lookup in the table, and
-- those lookups were a third of the single writer's time in the 10-webhook benchmark.
-- PostgreSQL keeps its own index: there nodes claim disjoint rows under row locks, which read
-- the table anyway.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (due_at, webhook_id) WHERE due_at IS NOT NULL;
