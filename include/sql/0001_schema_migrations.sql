-- Which migration files have been applied to this database, and the sha256 of each file's text.
-- `include/nse/warehouse.py:migrate` reads this table and refuses to run if an applied file has
-- since changed: fix forward with a new file instead of editing an applied one.
CREATE TABLE IF NOT EXISTS {db}.schema_migrations
(
    name       String,
    sha256     String,
    applied_at DateTime DEFAULT now()
)
ENGINE = MergeTree
ORDER BY name;
