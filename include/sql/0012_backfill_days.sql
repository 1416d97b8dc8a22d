-- Every day a history load handled (`include/nse/history.py`): loaded, skipped (already loaded
-- with the same bronze), not_published or failed with the error, its rows and seconds, and the
-- digests of the bronze files it was loaded from. A log: each attempt adds a row, and a rerun
-- of a range reads the latest outcome per dataset and day to skip what is loaded already.
CREATE TABLE IF NOT EXISTS {db}.backfill_days
(
    dataset      String,
    trade_date   Date,
    status       String,             -- loaded, skipped, not_published, failed
    rows         Nullable(UInt64),
    seconds      Float64,
    error        Nullable(String),
    bronze       String,             -- part:sha256 of each bronze file, comma-separated
    run_id       String,             -- the Airflow run, or `cli` from the command line
    chunk        String,             -- the chunk's label, e.g. 2024-07
    recorded_at  DateTime DEFAULT now(),
    attempt      UInt64              -- microseconds since 1970 when recorded: orders attempts
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(trade_date)
ORDER BY (dataset, trade_date, attempt);
