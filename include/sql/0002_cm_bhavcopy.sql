-- Capital-market bhavcopy: one row per symbol, series and trade date (legacy and UDiFF formats).
-- Columns are exactly the silver schema of `include/nse/sources/cm_bhavcopy.py`, plus loaded_at.
--
-- One partition per trade date: a date is loaded by filling a staging table and swapping the
-- whole partition in with REPLACE PARTITION, which is atomic and lets several dates load at the
-- same time without touching each other. The cost is many small partitions (about 250 a year);
-- that is fine at this table's size, but queries over long ranges open one set of parts per day,
-- so keep the partition key in mind before copying this layout to a much larger table.
CREATE TABLE IF NOT EXISTS {db}.cm_bhavcopy
(
    trade_date    Date,
    symbol        String,
    series        String,
    isin          Nullable(String),
    open          Float64,
    high          Float64,
    low           Float64,
    close         Float64,
    last_price    Float64,
    prev_close    Float64,
    volume        UInt64,
    turnover      Float64,             -- rupees
    trades        Nullable(UInt64),    -- absent from some legacy files
    source_format String,              -- which NSE file layout the row was parsed from
    loaded_at     DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, series, trade_date);
