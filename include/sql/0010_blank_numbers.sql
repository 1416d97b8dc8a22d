-- NSE leaves numeric fields blank in some rows (a price for a series with no trade that day, a
-- figure it does not have). Silver reads such a field as null and the quality gate judges it
-- (the close must be there; a blank elsewhere is a warning), so these columns take nulls too.
-- Key and sorting columns never do: a blank there is refused by the parser.
ALTER TABLE {db}.cm_bhavcopy
    MODIFY COLUMN open Nullable(Float64),
    MODIFY COLUMN high Nullable(Float64),
    MODIFY COLUMN low Nullable(Float64),
    MODIFY COLUMN close Nullable(Float64),
    MODIFY COLUMN last_price Nullable(Float64),
    MODIFY COLUMN prev_close Nullable(Float64),
    MODIFY COLUMN volume Nullable(UInt64),
    MODIFY COLUMN turnover Nullable(Float64);

ALTER TABLE {db}.cm_delivery
    MODIFY COLUMN prev_close Nullable(Float64),
    MODIFY COLUMN open Nullable(Float64),
    MODIFY COLUMN high Nullable(Float64),
    MODIFY COLUMN low Nullable(Float64),
    MODIFY COLUMN last_price Nullable(Float64),
    MODIFY COLUMN close Nullable(Float64),
    MODIFY COLUMN avg_price Nullable(Float64),
    MODIFY COLUMN volume Nullable(UInt64),
    MODIFY COLUMN turnover Nullable(Float64),
    MODIFY COLUMN trades Nullable(UInt64);

ALTER TABLE {db}.fo_bhavcopy
    MODIFY COLUMN close Nullable(Float64),
    MODIFY COLUMN open_interest Nullable(Int64),
    MODIFY COLUMN change_in_oi Nullable(Int64),
    MODIFY COLUMN contracts Nullable(UInt64),
    MODIFY COLUMN turnover Nullable(Float64);

ALTER TABLE {db}.option_chain
    MODIFY COLUMN open_interest Nullable(Float64),
    MODIFY COLUMN change_in_oi Nullable(Float64),
    MODIFY COLUMN volume Nullable(UInt64),
    MODIFY COLUMN change Nullable(Float64),
    MODIFY COLUMN bid_qty Nullable(UInt64),
    MODIFY COLUMN ask_qty Nullable(UInt64);
