-- Retention prunes finished deliveries by age. Kept in step with ../sqlite/0003_retention.sql.
CREATE INDEX deliveries_created ON deliveries (created_at);
