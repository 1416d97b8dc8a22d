-- Index constituents: one snapshot per trade date of every loaded index's members.
-- Columns are exactly the silver schema of `include/nse/sources/index_constituents.py`, plus
-- loaded_at. One partition per trade date, replaced whole by each load like every dataset.
CREATE TABLE IF NOT EXISTS {db}.index_constituents
(
    trade_date     Date,
    index_name     String,
    symbol         String,
    company_name   String,
    industry       Nullable(String),
    series         Nullable(String),
    isin           Nullable(String),
    weight         Nullable(Float64),   -- percent; monthly archive only
    as_of          Nullable(Date),      -- the day the source dates the list to
    source_format  String,              -- csv, mcwb or api
    loaded_at      DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY trade_date
ORDER BY (index_name, symbol, trade_date);

-- Membership history, derived from the snapshots on every read, so it is the same whatever
-- order days were loaded in and however often they were reloaded. For each index, its
-- snapshot days in order; a member's presences form runs of consecutive snapshot days. A run
-- holds from its first snapshot (valid_from) until the next snapshot of the index that lacks
-- the symbol (valid_to, exclusive; null while it is still in the latest snapshot). Days without
-- a snapshot of the index are no evidence either way. Written without window functions
-- (ClickHouse 18.16): positions in the index's day array, then runs by comparing neighbours.
--
--   members of NIFTY 50 on 2025-06-30:
--   SELECT symbol FROM nse.index_membership WHERE index_name = 'NIFTY 50'
--     AND valid_from <= '2025-06-30' AND (valid_to > '2025-06-30' OR valid_to IS NULL)
CREATE VIEW IF NOT EXISTS {db}.index_membership AS
SELECT
    index_name,
    symbol,
    days[run_start] AS valid_from,
    if(run_end < length(days), days[run_end + 1], NULL) AS valid_to,
    run_start = 1 AS from_first_snapshot
FROM
(
    SELECT
        index_name,
        symbol,
        days,
        arraySort(arrayMap(d -> indexOf(days, d), present)) AS positions,
        arrayFilter(
            (p, i) -> i = 1 OR positions[i - 1] != p - 1, positions, arrayEnumerate(positions)
        ) AS starts,
        arrayFilter(
            (p, i) -> i = length(positions) OR positions[i + 1] != p + 1,
            positions,
            arrayEnumerate(positions)
        ) AS ends
    FROM
    (
        SELECT index_name, symbol, groupUniqArray(trade_date) AS present
        FROM {db}.index_constituents
        GROUP BY index_name, symbol
    ) AS members
    ANY LEFT JOIN
    (
        SELECT index_name, arraySort(groupUniqArray(trade_date)) AS days
        FROM {db}.index_constituents
        GROUP BY index_name
    ) AS snapshots USING (index_name)
)
ARRAY JOIN starts AS run_start, ends AS run_end;

-- Inclusions and exclusions: where one snapshot of an index differs from the one before.
-- Members of an index's first snapshot joined before its history starts: no inclusion for them.
CREATE VIEW IF NOT EXISTS {db}.index_changes AS
SELECT index_name, valid_from AS trade_date, symbol, 'inclusion' AS change
FROM {db}.index_membership
WHERE NOT from_first_snapshot
UNION ALL
SELECT index_name, assumeNotNull(valid_to) AS trade_date, symbol, 'exclusion' AS change
FROM {db}.index_membership
WHERE valid_to IS NOT NULL;
