-- Full bhavcopy with delivery (sec_bhavdata_full): one row per symbol, series and trade date.
-- Columns are exactly the silver schema of `include/nse/sources/cm_delivery.py`, plus loaded_at.
--
-- One partition per trade date, for the same reason as cm_bhavcopy: REPLACE PARTITION from a
-- staging table makes each date's load atomic and independent of other dates loading
-- concurrently, at the price of many small partitions.
CREATE TABLE IF NOT EXISTS {db}.cm_delivery
(
    trade_date   Date,
    symbol       String,
    series       String,
    prev_close   Float64,
    open         Float64,
    high         Float64,
    low          Float64,
    last_price   Float64,
    close        Float64,
    avg_price    Float64,
    volume       UInt64,
    turnover     Float64,              -- rupees
    trades       UInt64,
    delivery_qty Nullable(UInt64),     -- NSE prints " -" when it has no delivery figure
    delivery_pct Nullable(Float64),
    loaded_at    DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, series, trade_date);
