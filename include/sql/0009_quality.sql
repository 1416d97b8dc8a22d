-- One row per validation of a silver partition against its dataset's expectations (Great
-- Expectations, `include/nse/quality.py`); a rerun adds a row, so history is kept. The full
-- result is JSON in the lake, at `result_path`.
CREATE TABLE IF NOT EXISTS {db}.quality_validations
(
    trade_date      Date,
    dataset         String,
    validated_at    DateTime DEFAULT now(),
    rows            UInt64,
    expectations    UInt32,              -- expectations run
    failed          UInt32,              -- of which failed, critical or warning
    critical_failed UInt32,              -- of which critical: the partition was not loaded
    skipped         UInt32,              -- not run (no earlier partition to compare with)
    result_path     String,
    run_id          String               -- the Airflow run, empty outside Airflow
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(trade_date)
ORDER BY (dataset, trade_date, validated_at);
