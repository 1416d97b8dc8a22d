-- Bulk and block deals: one row per deal and trade date. Columns are exactly the silver schema
-- of `include/nse/sources/deals.py` (shared by bulk_deals and block_deals), plus loaded_at.
--
-- One partition per trade date although a day holds tens of rows: the warehouse's load swaps a
-- whole partition in with REPLACE PARTITION, and only a partition of exactly one date makes that
-- replace one date's deals and nothing else. Monthly partitions would need the month's other
-- days re-sent with every load.
--
-- Two identical deals (same client, side, quantity and price on a day) are two rows, told apart
-- by deal_ordinal (1, 2, ...): a rerun replaces the day and keeps both, never merges them.
CREATE TABLE IF NOT EXISTS {db}.bulk_deals
(
    trade_date    Date,
    symbol        String,
    security_name String,
    client_name   String,
    side          String,              -- BUY or SELL
    quantity      UInt64,              -- shares
    price         Float64,             -- rupees; the client's weighted average for bulk deals
    remarks       Nullable(String),    -- null where NSE prints '-'
    deal_ordinal  UInt32,
    source_format String,              -- archive_csv, export_csv or api_json
    loaded_at     DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, trade_date, client_name);

CREATE TABLE IF NOT EXISTS {db}.block_deals
(
    trade_date    Date,
    symbol        String,
    security_name String,
    client_name   String,
    side          String,              -- BUY or SELL
    quantity      UInt64,              -- shares
    price         Float64,             -- rupees
    remarks       Nullable(String),    -- NSE gives none for block deals: null
    deal_ordinal  UInt32,
    source_format String,              -- archive_csv, export_csv or api_json
    loaded_at     DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (symbol, trade_date, client_name);
