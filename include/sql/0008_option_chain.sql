-- Intraday option chain snapshots, and the analytics of each (underlying, expiry, snapshot).
-- Columns are exactly the silver schema of `include/nse/sources/option_chain.py` (and the gold
-- schema of `include/nse/chain_analytics.py`), plus loaded_at.
--
-- Sorted by (underlying, snapshot_ts, ...): "the latest snapshot of X" and "X over the day" both
-- read one contiguous range of X's rows in the day's partition, the latest snapshot at its end.
--
-- Loading differs from the end-of-day tables. A day grows by a snapshot of every underlying
-- every few minutes, so replacing the day's partition on each load would rewrite up to millions
-- of rows every cycle, and partitioning by (day, underlying) would make ~200 partitions a day,
-- far more than ClickHouse handles well. So a load inserts only the rows whose (underlying,
-- snapshot_ts, expiry_date) the table does not hold yet (`option_chain.insert_new_snapshots`):
-- loading a snapshot twice leaves one copy at once, with no FINAL needed. Loads of one
-- underlying never run concurrently (one DAG run at a time, one task per underlying), and should
-- two ever race, ReplacingMergeTree on the full natural key folds their copies into one at the
-- next merge (or at once under FINAL / OPTIMIZE ... FINAL). 18.16 has no insert deduplication
-- for non-replicated tables, and the sorting key cannot hold Nullable columns: none of these is.
CREATE TABLE IF NOT EXISTS {db}.option_chain
(
    trade_date         Date,
    snapshot_ts        DateTime('Asia/Kolkata'),   -- the exchange's records.timestamp
    fetched_at         Nullable(DateTime('UTC')),  -- when the response arrived
    underlying         String,
    underlying_value   Float64,
    expiry_date        Date,
    strike_price       Float64,
    option_type        String,                     -- CE or PE
    open_interest      Float64,                    -- contracts; NSE prints fractions at times
    change_in_oi       Float64,
    volume             UInt64,                     -- contracts
    implied_volatility Nullable(Float64),          -- percent; null where NSE prints 0
    last_price         Nullable(Float64),
    change             Float64,
    bid_qty            UInt64,
    bid_price          Nullable(Float64),
    ask_price          Nullable(Float64),
    ask_qty            UInt64,
    source_format      String,                     -- v3, or legacy (records+filtered)
    loaded_at          DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(loaded_at)
PARTITION BY trade_date
ORDER BY (underlying, snapshot_ts, expiry_date, option_type, strike_price);

CREATE TABLE IF NOT EXISTS {db}.option_chain_analytics
(
    trade_date         Date,
    snapshot_ts        DateTime('Asia/Kolkata'),
    underlying         String,
    expiry_date        Date,
    underlying_value   Float64,
    pcr_oi             Nullable(Float64),          -- put OI / call OI
    pcr_volume         Nullable(Float64),
    max_pain           Float64,
    atm_strike         Float64,
    atm_iv             Nullable(Float64),
    iv_spread          Nullable(Float64),          -- mean put minus call IV near the money
    ce_oi              Float64,
    pe_oi              Float64,
    ce_oi_change       Float64,
    pe_oi_change       Float64,
    ce_volume          UInt64,
    pe_volume          UInt64,
    ce_buildup_strikes Array(Float64),             -- largest call OI additions, largest first
    pe_buildup_strikes Array(Float64),
    loaded_at          DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(loaded_at)
PARTITION BY trade_date
ORDER BY (underlying, snapshot_ts, expiry_date);
